//! `/v1/tenant`: the tenant's own export, and its self-service erasure
//! (scope `admin`).

use axum::Json;
use axum::extract::State as AxState;
use serde::Deserialize;

use crate::error::ApiResult;
use crate::extract::{AppJson, Scoped, scope};
use crate::state::State;

/// `GET /v1/tenant/export`: the tenant's metadata and ledger as JSON.
#[utoipa::path(get, path = "/v1/tenant/export",
    responses((status = 200, description = "Success", body = bv_service::export::Export)))]
pub async fn export(
    AxState(st): AxState<State>,
    auth: Scoped<scope::Admin>,
) -> ApiResult<Json<bv_service::export::Export>> {
    let doc = bv_service::export::export(&st.catalog, &st.vault, &auth.tenant_id).await?;
    auth.audit(
        &st,
        "tenant.export",
        &format!("tenant:{}", auth.tenant_id),
        "ok",
        serde_json::json!({}),
    )
    .await;
    Ok(Json(doc))
}

/// `DELETE /v1/tenant` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Erase {
    /// The tenant's exact name.
    #[schema(max_length = 255)]
    confirm: String,
}

/// `DELETE /v1/tenant`: erases the caller's whole tenant; answers the
/// signed receipt (the key that asked is gone with it).
#[utoipa::path(delete, path = "/v1/tenant", request_body = Erase,
    responses((status = 200, description = "Success", body = bv_service::erasure::SignedReceipt)))]
pub async fn erase(
    AxState(st): AxState<State>,
    auth: Scoped<scope::Admin>,
    AppJson(req): AppJson<Erase>,
) -> ApiResult<Json<bv_service::erasure::SignedReceipt>> {
    let t = st.catalog.tenant(&auth.tenant_id).await?;
    bv_service::erasure::check_confirmation(&t, &req.confirm)?;
    let who = format!("principal:{}", auth.principal_id);
    let r = bv_service::erasure::erase(&st.catalog, &st.vault, &t, &who, &auth.origin).await?;
    Ok(Json(r))
}
