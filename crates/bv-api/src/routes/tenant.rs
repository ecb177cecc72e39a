//! `/v1/tenant`: the tenant's own export, and its self-service erasure
//! (scope `admin`).

use axum::Json;
use axum::extract::State as AxState;
use bv_catalog::Scope;
use serde::Deserialize;

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::state::State;

/// `GET /v1/tenant/export`: the tenant's metadata and ledger as JSON.
pub async fn export(AxState(st): AxState<State>, auth: Auth) -> ApiResult<Json<serde_json::Value>> {
    auth.require(Scope::Admin)?;
    let doc = crate::export::export(&st.catalog, &st.vault, &auth.tenant_id).await?;
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Erase {
    /// The tenant's exact name.
    confirm: String,
}

/// `DELETE /v1/tenant`: erases the caller's whole tenant; answers the
/// signed receipt (the key that asked is gone with it).
pub async fn erase(
    AxState(st): AxState<State>,
    auth: Auth,
    body: axum::body::Bytes,
) -> ApiResult<Json<crate::erasure::SignedReceipt>> {
    auth.require(Scope::Admin)?;
    let req: Erase = crate::error::parse_json(&body)?;
    let t = st.catalog.tenant(&auth.tenant_id).await?;
    crate::erasure::check_confirmation(&t, &req.confirm)?;
    let who = format!("principal:{}", auth.principal_id);
    let r = crate::erasure::erase(&st.catalog, &st.vault, &t, &who, &auth.origin).await?;
    Ok(Json(r))
}
