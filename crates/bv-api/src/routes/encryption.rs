//! `/v1/encryption`: who holds the tenant's keys (scope `admin`).
//!
//! `key_holder: "tenant"` means the tenant keeps a 256-bit key of its own and
//! sends it (header `X-BV-Customer-Key`) with every request that seals or
//! opens content; the service keeps only a keyed fingerprint. It can change
//! only while the tenant stores no videos.

use axum::Json;
use axum::extract::State as AxState;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::extract::{AppJson, Scoped, scope};
use crate::state::State;

/// `PUT /v1/encryption` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Custody {
    key_holder: String,
}

fn out(holder_is_tenant: bool) -> Json<serde_json::Value> {
    Json(json!({
        "algorithm": "AES-256-GCM",
        "key_holder": if holder_is_tenant { "tenant" } else { "service" },
        "header": if holder_is_tenant { Some(crate::custody::HEADER) } else { None },
    }))
}

/// `GET /v1/encryption`
pub async fn get(
    AxState(st): AxState<State>,
    auth: Scoped<scope::Admin>,
) -> ApiResult<Json<serde_json::Value>> {
    let fp = st.catalog.customer_key_fp(&auth.tenant_id).await?;
    Ok(out(fp.is_some()))
}

/// `PUT /v1/encryption`: `{"key_holder": "tenant"}` with the key in the
/// header, or `{"key_holder": "service"}`.
pub async fn set(
    AxState(st): AxState<State>,
    auth: Scoped<scope::Admin>,
    headers: HeaderMap,
    AppJson(req): AppJson<Custody>,
) -> ApiResult<Json<serde_json::Value>> {
    let fp = match req.key_holder.as_str() {
        "tenant" => Some(crate::custody::fingerprint_of(&st, &auth.tenant_id, &headers).await?),
        "service" => None,
        _ => return Err(ApiError::bad_request("key_holder is tenant or service")),
    };
    st.catalog
        .set_customer_key_fp(&auth.tenant_id, fp.as_deref())
        .await?;
    auth.audit(
        &st,
        "encryption.custody",
        "tenant-keys",
        "ok",
        json!({ "key_holder": req.key_holder }),
    )
    .await;
    Ok(out(fp.is_some()))
}
