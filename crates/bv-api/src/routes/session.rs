//! `/v1/session`: browser sign-in and sign-out; `/v1/me`: who is calling;
//! `/v1/setup`: the first administrator's one-time link.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State as AxState};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::Event;
use crate::auth::{Auth, SESSION_COOKIE};
use crate::error::{ApiError, ApiResult};
use crate::state::State;

/// Largest sign-in body read (a login and a password).
const LOGIN_BODY_MAX: usize = 64 * 1024;

/// `POST /v1/session` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    login: String,
    password: String,
}

/// A signed-in session, as `POST /v1/session` answers it (the token itself
/// is in the cookie only).
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginOut {
    /// Send it as `X-CSRF-Token` with every state-changing request.
    csrf_token: String,
    /// When the session ends whatever happens, RFC 3339.
    expires_at: String,
    /// Seconds without a request after which it ends.
    idle_timeout_seconds: u64,
}

/// Who is calling, as `GET /v1/me` answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// The caller's tenant.
    tenant_id: String,
    /// The caller's principal (person or service account).
    principal_id: String,
    /// What the caller may do.
    scopes: Vec<String>,
    /// `api_key` or `session`.
    via: &'static str,
}

/// The JSON body of a sign-in-like request, read only once the address's
/// sign-in limit admits it (a refused client's body is never read), and at
/// most [`LOGIN_BODY_MAX`] bytes of it.
async fn admitted_body<T: serde::de::DeserializeOwned>(
    st: &State,
    address: &str,
    body: axum::body::Body,
) -> ApiResult<T> {
    crate::throttle::admit_address(st, crate::throttle::AddressAction::Login, address).await?;
    let body = axum::body::to_bytes(body, LOGIN_BODY_MAX)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("a sign-in body is at most {LOGIN_BODY_MAX} bytes"),
            )
        })?;
    crate::error::parse_json(&body)
}

/// `POST /v1/session`: signs in; sets the session cookie, returns the CSRF token.
#[utoipa::path(post, path = "/v1/session", request_body = Login,
    responses((status = 200, description = "Success", body = LoginOut)))]
pub async fn login(
    AxState(st): AxState<State>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    crate::audit::Source(origin): crate::audit::Source,
    body: axum::body::Body,
) -> ApiResult<Response> {
    let address = peer.ip().to_string();
    let req: Login = admitted_body(&st, &address, body).await?;
    // Failures are counted per (login, address), per address, and per login
    // (subjects hold a hash of the login: bounded, whatever was sent). A
    // guesser locks out its own address, never the user: failures of a login
    // from every address together only slow its sign-ins down.
    let login_hash = bv_crypto::secret::token_hash(req.login.as_bytes());
    let pair = format!("pair:{login_hash}:{address}");
    let window = (st.cfg.login_window_seconds * 1000) as i64;
    let by_address = format!("ip:{address}");
    // The pair locks at the limit; an address (which many users may share
    // behind one NAT) only at four times it, for guessing across logins.
    let max = st.cfg.login_max_failures;
    if st
        .catalog
        .login_failures(std::slice::from_ref(&pair), window)
        .await?
        >= max
        || st
            .catalog
            .login_failures(std::slice::from_ref(&by_address), window)
            .await?
            >= max * 4
    {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            "too many failed sign-ins from this address; wait a while before trying again",
        )
        .retry_after(st.cfg.login_window_seconds));
    }
    let everywhere = [format!("login:{login_hash}")];
    let failed = st.catalog.login_failures(&everywhere, window).await?;
    if failed >= st.cfg.login_max_failures {
        // A second more per failure beyond the limit, at most five: slows a
        // guesser spread over many addresses, and lets the user in.
        let over = (failed - st.cfg.login_max_failures + 1).clamp(1, 5) as u64;
        tokio::time::sleep(std::time::Duration::from_secs(over)).await;
    }
    let subjects = [pair, by_address, everywhere[0].clone()];
    // A login longer than any we hand out cannot match: not even looked up.
    let found = if req.login.len() > 256 {
        None
    } else {
        st.catalog.check_password(&req.login, &req.password).await?
    };
    let shown = format!("login:{}", crate::logsafe::text(&req.login, 100));
    let Some(p) = found else {
        st.catalog.record_login_failure(&subjects).await?;
        let e = Event {
            tenant: None,
            actor: "anonymous",
            action: "session.login",
            target: &shown,
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
        target: &shown,
        outcome: "ok",
    };
    crate::audit::record(&st, &origin, e, serde_json::json!({})).await;
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}",
        s.token, st.cfg.session_absolute_seconds
    );
    let mut r = Json(LoginOut {
        csrf_token: s.csrf,
        expires_at: crate::time::rfc3339_ms(s.expires_ms),
        idle_timeout_seconds: st.cfg.session_idle_seconds,
    })
    .into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
    );
    Ok(r)
}

/// `POST /v1/setup` body: the one-time link's token and the new user's sign-in.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Setup {
    /// The token after `#/setup/` in the link `bv serve` printed.
    token: String,
    /// The new user's login.
    login: String,
    /// At least 12 characters.
    password: String,
}

/// The user a setup link made.
#[derive(Debug, Serialize, ToSchema)]
pub struct SetupOut {
    /// Its tenant.
    tenant_id: String,
    /// The new principal.
    principal_id: String,
    /// Sign in with this and the password just set.
    login: String,
}

/// `POST /v1/setup`: redeems the one-time link `bv serve` prints while no
/// user exists: creates the first administrator with a password chosen in
/// the browser (so no password is printed or typed on the server). Then sign
/// in with `POST /v1/session`.
#[utoipa::path(post, path = "/v1/setup", request_body = Setup,
    responses((status = 201, description = "Created", body = SetupOut)))]
pub async fn setup(
    AxState(st): AxState<State>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    crate::audit::Source(origin): crate::audit::Source,
    body: axum::body::Body,
) -> ApiResult<Response> {
    // Guessing a 256-bit token is hopeless; the sign-in limit keeps it cheap.
    let req: Setup = admitted_body(&st, &peer.ip().to_string(), body).await?;
    let made = st
        .catalog
        .redeem_setup_link(&req.token, &req.login, &req.password)
        .await
        .map_err(|e| match e {
            // The link stays usable: say what to change.
            bv_catalog::CatalogError::Exists(_) => ApiError::new(
                StatusCode::CONFLICT,
                "already_exists",
                "that login is taken in this tenant; choose another (the link still works)",
            ),
            e => e.into(),
        })?;
    let Some(p) = made else {
        let e = Event {
            tenant: None,
            actor: "anonymous",
            action: "setup_link.use",
            target: "setup-link",
            outcome: "refused",
        };
        crate::audit::record(&st, &origin, e, serde_json::json!({})).await;
        return Err(ApiError::new(
            StatusCode::GONE,
            "setup_link_invalid",
            "this sign-in link was used, has expired or is unknown: `bv admin user setup-link` makes \
             a new one while nobody can sign in; `bv admin user create` makes an account",
        ));
    };
    let e = Event {
        tenant: Some(&p.tenant_id),
        actor: "setup-link",
        action: "user.create",
        target: &format!("principal:{}", p.id),
        outcome: "ok",
    };
    let detail = serde_json::json!({"login": req.login, "via": "setup link"});
    crate::audit::record(&st, &origin, e, detail).await;
    let out = SetupOut {
        tenant_id: p.tenant_id,
        principal_id: p.id,
        login: req.login,
    };
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// `DELETE /v1/session`: signs out.
#[utoipa::path(delete, path = "/v1/session",
    responses((status = 204, description = "Success, no body")))]
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
#[utoipa::path(get, path = "/v1/me", responses((status = 200, description = "Success", body = Me)))]
pub async fn me(auth: Auth) -> Json<Me> {
    Json(Me {
        via: if auth.session.is_some() {
            "session"
        } else {
            "api_key"
        },
        scopes: auth.scopes.iter().map(|s| s.to_string()).collect(),
        tenant_id: auth.tenant_id,
        principal_id: auth.principal_id,
    })
}
