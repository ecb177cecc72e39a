//! `/v1/webhook`: the tenant's webhook (scope `admin`).

use axum::Json;
use axum::extract::State as AxState;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::extract::{AppJson, Scoped, scope};
use crate::state::State;
use crate::time::rfc3339_ms;

/// How long the previous secret keeps signing after a rotation.
const OVERLAP_MS: i64 = 24 * 3600 * 1000;

/// `PUT /v1/webhook` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetWebhook {
    url: String,
}

fn check_url(st: &State, url: &str) -> ApiResult<()> {
    let ok_scheme =
        url.starts_with("https://") || (st.cfg.webhook_allow_http && url.starts_with("http://"));
    let host = url.split("://").nth(1).unwrap_or_default();
    if !ok_scheme
        || url.len() > 2048
        || host.is_empty()
        || host.starts_with('/')
        || url.chars().any(char::is_whitespace)
    {
        return Err(ApiError::bad_request(
            "url must be an https:// URL of at most 2048 characters",
        ));
    }
    Ok(())
}

/// `PUT /v1/webhook`: sets the URL; a new webhook's secret is shown this once.
pub async fn set(
    AxState(st): AxState<State>,
    auth: Scoped<scope::Admin>,
    AppJson(req): AppJson<SetWebhook>,
) -> ApiResult<Response> {
    check_url(&st, &req.url)?;
    let existed = st.catalog.webhook(&auth.tenant_id).await?.is_some();
    let sealed = crate::sealed::seal(
        &st.vault,
        &auth.tenant_id,
        crate::sealed::WEBHOOK_URL,
        &req.url,
    )
    .await?;
    let h = st.catalog.set_webhook(&auth.tenant_id, &sealed).await?;
    let mut out = serde_json::json!({"url": req.url, "secret_version": h.secret_version});
    if !existed {
        out["secret"] = bv_service::webhooks::secret(&st.vault, &auth.tenant_id, h.secret_version)
            .await?
            .into();
    }
    auth.audit(&st, "webhook.set", "webhook", "ok", serde_json::json!({}))
        .await;
    Ok((
        if existed {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        },
        Json(out),
    )
        .into_response())
}

/// `GET /v1/webhook`
pub async fn get(
    AxState(st): AxState<State>,
    auth: Scoped<scope::Admin>,
) -> ApiResult<Json<serde_json::Value>> {
    let h = st
        .catalog
        .webhook(&auth.tenant_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let url = crate::sealed::open(
        &st.vault,
        &auth.tenant_id,
        crate::sealed::WEBHOOK_URL,
        &h.url,
    )
    .await?;
    Ok(Json(serde_json::json!({
        "url": url,
        "secret_version": h.secret_version,
        "previous_secret_valid_until": h.previous_until_ms.map(rfc3339_ms),
    })))
}

/// `POST /v1/webhook/rotate`: a new secret (shown once); the previous one
/// signs too for 24 hours, so receivers can switch without missing events.
pub async fn rotate(
    AxState(st): AxState<State>,
    auth: Scoped<scope::Admin>,
) -> ApiResult<Json<serde_json::Value>> {
    let h = st
        .catalog
        .rotate_webhook(&auth.tenant_id, OVERLAP_MS)
        .await?;
    auth.audit(
        &st,
        "webhook.rotate",
        "webhook",
        "ok",
        serde_json::json!({}),
    )
    .await;
    Ok(Json(serde_json::json!({
        "secret": bv_service::webhooks::secret(&st.vault, &auth.tenant_id, h.secret_version).await?,
        "secret_version": h.secret_version,
        "previous_secret_valid_until": h.previous_until_ms.map(rfc3339_ms),
    })))
}

/// `DELETE /v1/webhook`
pub async fn delete(
    AxState(st): AxState<State>,
    auth: Scoped<scope::Admin>,
) -> ApiResult<StatusCode> {
    st.catalog.delete_webhook(&auth.tenant_id).await?;
    auth.audit(
        &st,
        "webhook.delete",
        "webhook",
        "ok",
        serde_json::json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
