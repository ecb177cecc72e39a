//! Who is calling: an API key (`Authorization: Bearer bv_…`) or a web
//! session cookie (with a CSRF token on every unsafe request).

use axum::extract::FromRequestParts;
use bv_catalog::Scope;
use http::StatusCode;
use http::request::Parts;

use crate::error::ApiError;
use crate::state::State;

/// The session cookie. `__Host-` makes browsers insist on Secure, Path=/ and
/// no Domain, so no sibling host can set or read it.
pub const SESSION_COOKIE: &str = "__Host-bv_session";
/// The header that must echo the session's CSRF token on unsafe methods.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Auth {
    /// Tenant every query is scoped to.
    pub tenant_id: String,
    /// The principal acting.
    pub principal_id: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// The session's stored hash, when the caller is a browser session.
    pub session: Option<String>,
    /// Where the request came from (for the audit log).
    pub origin: crate::audit::Origin,
}

impl Auth {
    /// Records an audit event by this caller in its tenant.
    pub async fn audit(
        &self,
        st: &crate::state::AppState,
        action: &str,
        target: &str,
        outcome: &str,
        detail: serde_json::Value,
    ) {
        let actor = format!("principal:{}", self.principal_id);
        let e = crate::audit::Event {
            tenant: Some(&self.tenant_id),
            actor: &actor,
            action,
            target,
            outcome,
        };
        crate::audit::record(st, &self.origin, e, detail).await;
    }

    /// Refuses with 403 `insufficient_scope` unless the caller holds `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.contains(&scope) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                format!("this needs the {scope} scope"),
            ))
        }
    }
}

/// The value of cookie `name` in the request.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl FromRequestParts<State> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &State) -> Result<Self, ApiError> {
        if let Some(h) = parts.headers.get(http::header::AUTHORIZATION) {
            let token = h
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or_else(ApiError::unauthenticated)?;
            let k = st
                .catalog
                .authenticate_key(token.trim())
                .await?
                .ok_or_else(ApiError::unauthenticated)?;
            crate::throttle::admit(st, &format!("key:{}", k.key_id), &k.tenant_id).await?;
            let auth = Self {
                tenant_id: k.tenant_id,
                principal_id: k.principal_id,
                scopes: k.scopes,
                session: None,
                origin: crate::audit::origin_of(parts),
            };
            if k.recorded_use {
                let target = format!("key:{}", k.key_id);
                auth.audit(st, "key.used", &target, "ok", serde_json::json!({}))
                    .await;
            }
            return Ok(auth);
        }
        let Some(token) = cookie(parts, SESSION_COOKIE) else {
            return Err(ApiError::unauthenticated());
        };
        let idle = (st.cfg.session_idle_seconds * 1000) as i64;
        let s = st
            .catalog
            .authenticate_session(token, idle)
            .await?
            .ok_or_else(ApiError::unauthenticated)?;
        let caller = format!("principal:{}", s.principal_id);
        crate::throttle::admit(st, &caller, &s.tenant_id).await?;
        if !parts.method.is_safe() {
            let given = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let hash = bv_crypto::secret::token_hash(given.as_bytes());
            if given.is_empty()
                || !bv_crypto::secret::ct_eq(hash.as_bytes(), s.csrf_hash.as_bytes())
            {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "csrf_failed",
                    "this request needs the session's X-CSRF-Token header",
                ));
            }
        }
        Ok(Self {
            tenant_id: s.tenant_id,
            principal_id: s.principal_id,
            // A signed-in person may do everything in their tenant.
            scopes: Scope::ALL.to_vec(),
            session: Some(s.token_hash),
            origin: crate::audit::origin_of(parts),
        })
    }
}
