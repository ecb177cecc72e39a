//! `/v1/encryption`: who holds the tenant's keys (scope `admin`).
//!
//! `key_holder: "tenant"` means the tenant keeps a 256-bit key of its own and
//! sends it (header `X-BV-Customer-Key`) with every request that seals or
//! opens content; the service keeps only a keyed fingerprint. It can change
//! only while the tenant stores no videos.

use axum::Json;
use axum::extract::State as AxState;
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::extract::{AppJson, Scoped, scope};
use crate::state::State;

/// `PUT /v1/encryption` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Custody {
    #[schema(value_type = KeyHolder)]
    key_holder: String,
}

/// Who holds the tenant's keys.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyHolder {
    /// The service (wrapped by its root key).
    Service,
    /// The tenant, who sends its key with every request.
    Tenant,
}

/// How the tenant's content is encrypted, and who holds the key.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustodyOut {
    /// `AES-256-GCM`.
    algorithm: &'static str,
    key_holder: KeyHolder,
    /// The header that carries the tenant's key (when the tenant holds it).
    #[schema(required = true)]
    header: Option<&'static str>,
}

fn out(holder_is_tenant: bool) -> Json<CustodyOut> {
    Json(CustodyOut {
        algorithm: "AES-256-GCM",
        key_holder: if holder_is_tenant {
            KeyHolder::Tenant
        } else {
            KeyHolder::Service
        },
        header: holder_is_tenant.then_some(crate::custody::HEADER),
    })
}

/// `GET /v1/encryption`
#[utoipa::path(get, path = "/v1/encryption", responses((status = 200, description = "Success", body = CustodyOut)))]
pub async fn get(
    AxState(st): AxState<State>,
    auth: Scoped<scope::Admin>,
) -> ApiResult<Json<CustodyOut>> {
    let fp = st.catalog.customer_key_fp(&auth.tenant_id).await?;
    Ok(out(fp.is_some()))
}

/// `PUT /v1/encryption`: `{"key_holder": "tenant"}` with the key in the
/// header, or `{"key_holder": "service"}`.
#[utoipa::path(put, path = "/v1/encryption", request_body = Custody,
    params(("X-BV-Customer-Key" = Option<String>, Header, pattern = "^[A-Za-z0-9+/]{43}=$")),
    responses((status = 200, description = "Success", body = CustodyOut)))]
pub async fn set(
    AxState(st): AxState<State>,
    auth: Scoped<scope::Admin>,
    headers: HeaderMap,
    AppJson(req): AppJson<Custody>,
) -> ApiResult<Json<CustodyOut>> {
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
