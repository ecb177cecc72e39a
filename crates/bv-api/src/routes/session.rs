//! `/v1/session`: browser sign-in and sign-out; `/v1/me`: who is calling.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State as AxState};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Deserialize;

use crate::audit::Event;
use crate::auth::{Auth, SESSION_COOKIE};
use crate::error::{ApiError, ApiResult};
use crate::state::State;

/// `POST /v1/session` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    login: String,
    password: String,
}

/// `POST /v1/session`: signs in; sets the session cookie, returns the CSRF token.
pub async fn login(
    AxState(st): AxState<State>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    crate::audit::Source(origin): crate::audit::Source,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let address = peer.ip().to_string();
    crate::throttle::admit_address(&st, crate::throttle::AddressAction::Login, &address).await?;
    let req: Login = crate::error::parse_json(&body)?;
    let subjects = vec![format!("login:{}", req.login), format!("ip:{}", peer.ip())];
    let window = (st.cfg.login_window_seconds * 1000) as i64;
    if st.catalog.login_failures(&subjects, window).await? >= st.cfg.login_max_failures {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            "too many failed sign-ins; wait a while before trying again",
        ));
    }
    let Some(p) = st.catalog.check_password(&req.login, &req.password).await? else {
        st.catalog.record_login_failure(&subjects).await?;
        let e = Event {
            tenant: None,
            actor: "anonymous",
            action: "session.login",
            target: &format!("login:{}", req.login),
            outcome: "refused",
        };
        crate::audit::record(&st, &origin, e, serde_json::json!({})).await;
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "login_failed",
            "wrong login or password",
        ));
    };
    let abs = (st.cfg.session_absolute_seconds * 1000) as i64;
    let s = st.catalog.create_session(&p.tenant_id, &p.id, abs).await?;
    let e = Event {
        tenant: Some(&p.tenant_id),
        actor: &format!("principal:{}", p.id),
        action: "session.login",
        target: &format!("login:{}", req.login),
        outcome: "ok",
    };
    crate::audit::record(&st, &origin, e, serde_json::json!({})).await;
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}",
        s.token, st.cfg.session_absolute_seconds
    );
    let mut r = Json(serde_json::json!({
        "csrf_token": s.csrf,
        "expires_at": crate::time::rfc3339_ms(s.expires_ms),
        "idle_timeout_seconds": st.cfg.session_idle_seconds,
    }))
    .into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
    );
    Ok(r)
}

/// `DELETE /v1/session`: signs out.
pub async fn logout(AxState(st): AxState<State>, auth: Auth) -> ApiResult<Response> {
    if let Some(h) = &auth.session {
        st.catalog.end_session(h).await?;
        auth.audit(
            &st,
            "session.logout",
            "session",
            "ok",
            serde_json::json!({}),
        )
        .await;
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&format!(
            "{SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"
        ))
        .map_err(ApiError::internal)?,
    );
    Ok(r)
}

/// `GET /v1/me`
pub async fn me(auth: Auth) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "tenant_id": auth.tenant_id,
        "principal_id": auth.principal_id,
        "scopes": auth.scopes.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        "via": if auth.session.is_some() { "session" } else { "api_key" },
    }))
}
