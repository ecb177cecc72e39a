//! `/v1/webhook`: the tenant's webhook (scope `admin`).

use axum::Json;
use axum::extract::State as AxState;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::extract::{AppJson, Scoped, scope};
use crate::state::State;
use crate::time::rfc3339_ms;

/// How long the previous secret keeps signing after a rotation.
const OVERLAP_MS: i64 = 24 * 3600 * 1000;

/// `PUT /v1/webhook` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetWebhook {
    /// Where events are POSTed: a public `https://` address.
    #[schema(max_length = 2048, pattern = "^https://[^/\\s][^\\s]*$")]
    url: String,
}

/// The webhook as set; a new one's secret is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookSet {
    url: String,
    secret_version: i64,
    /// The signing secret (a new webhook only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    secret: Option<String>,
}

/// The tenant's webhook and what became of its latest events.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookOut {
    url: String,
    secret_version: i64,
    /// Until when the previous secret also signs (after a rotation), RFC 3339.
    #[schema(required = true)]
    previous_secret_valid_until: Option<String>,
    /// The latest 20 events: delivered, failing (and why), next try.
    deliveries: Vec<DeliveryOut>,
}

/// One event's delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryOut {
    /// The event's id.
    id: String,
    /// `job.succeeded`, …
    event: String,
    attempts: i64,
    /// Why the last attempt failed, if it did.
    #[schema(required = true)]
    last_error: Option<String>,
    #[schema(required = true)]
    delivered_at: Option<String>,
    #[schema(required = true)]
    next_attempt_at: Option<String>,
    created_at: String,
}

/// A rotated secret (shown this once).
#[derive(Debug, Serialize, ToSchema)]
pub struct Rotated {
    secret: String,
    secret_version: i64,
    /// The previous secret signs too until then, RFC 3339.
    #[schema(required = true)]
    previous_secret_valid_until: Option<String>,
}

/// Refuses a URL the service must not POST to (format, scheme, and places
/// inside a network: `bv_service::webhooks::check_url`).
async fn check_url(st: &State, url: &str) -> ApiResult<()> {
    let (http, private) = (st.cfg.webhook_allow_http, st.cfg.webhook_allow_private);
    Ok(bv_service::webhooks::check_url(url, http, private).await?)
}

/// `PUT /v1/webhook`: sets the URL; a new webhook's secret is shown this once.
#[utoipa::path(put, path = "/v1/webhook", request_body = SetWebhook,
    responses(
        (status = 200, description = "Success", body = WebhookSet),
        (status = 201, description = "Success", body = WebhookSet)))]
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
    let secret = if existed {
        None
    } else {
        Some(bv_service::webhooks::secret(&st.vault, &auth.tenant_id, h.secret_version).await?)
    };
    let out = WebhookSet {
        url: req.url,
        secret_version: h.secret_version,
        secret,
    };
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
#[utoipa::path(get, path = "/v1/webhook", responses((status = 200, description = "Success", body = WebhookOut)))]
pub async fn get(
    AxState(st): AxState<State>,
    auth: Scoped<scope::Admin>,
) -> ApiResult<Json<WebhookOut>> {
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
    let deliveries = st
        .catalog
        .webhook_deliveries(&auth.tenant_id, 20)
        .await?
        .into_iter()
        .map(|d| DeliveryOut {
            id: d.id,
            event: d.event,
            attempts: d.attempts,
            last_error: d.last_error,
            delivered_at: d.delivered_ms.map(rfc3339_ms),
            next_attempt_at: d.next_ms.map(rfc3339_ms),
            created_at: rfc3339_ms(d.created_ms),
        })
        .collect();
    Ok(Json(WebhookOut {
        url,
        secret_version: h.secret_version,
        previous_secret_valid_until: h.previous_until_ms.map(rfc3339_ms),
        deliveries,
    }))
}

/// `POST /v1/webhook/rotate`: a new secret (shown once); the previous one
/// signs too for 24 hours, so receivers can switch without missing events.
#[utoipa::path(post, path = "/v1/webhook/rotate", responses((status = 200, description = "Success", body = Rotated)))]
pub async fn rotate(
    AxState(st): AxState<State>,
    auth: Scoped<scope::Admin>,
) -> ApiResult<Json<Rotated>> {
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
    Ok(Json(Rotated {
        secret: bv_service::webhooks::secret(&st.vault, &auth.tenant_id, h.secret_version).await?,
        secret_version: h.secret_version,
        previous_secret_valid_until: h.previous_until_ms.map(rfc3339_ms),
    }))
}

/// `DELETE /v1/webhook`
#[utoipa::path(delete, path = "/v1/webhook", responses((status = 204, description = "Success, no body")))]
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
