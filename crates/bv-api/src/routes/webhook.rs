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

/// Refuses a URL the service must not POST to (format, scheme, and places
/// inside a network: `bv_service::webhooks::check_url`).
async fn check_url(st: &State, url: &str) -> ApiResult<()> {
    let (http, private) = (st.cfg.webhook_allow_http, st.cfg.webhook_allow_private);
    Ok(bv_service::webhooks::check_url(url, http, private).await?)
}

/// `PUT /v1/webhook`: sets the URL; a new webhook's secret is shown this once.
pub async fn set(
    AxState(st): AxState<State>,
    auth: Scoped<scope::Admin>,
    AppJson(req): AppJson<SetWebhook>,
) -> ApiResult<Response> {
    check_url(&st, &req.url).await?;
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
    // What became of the latest events: delivered, failing (and why), next try.
    let deliveries: Vec<serde_json::Value> = st
        .catalog
        .webhook_deliveries(&auth.tenant_id, 20)
        .await?
        .into_iter()
        .map(|d| {
            serde_json::json!({
                "id": d.id,
                "event": d.event,
                "attempts": d.attempts,
                "last_error": d.last_error,
                "delivered_at": d.delivered_ms.map(rfc3339_ms),
                "next_attempt_at": d.next_ms.map(rfc3339_ms),
                "created_at": rfc3339_ms(d.created_ms),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({
        "url": url,
        "secret_version": h.secret_version,
        "previous_secret_valid_until": h.previous_until_ms.map(rfc3339_ms),
        "deliveries": deliveries,
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
