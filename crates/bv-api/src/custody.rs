//! Customer-held keys at the API edge: the `X-BV-Customer-Key` header (the
//! tenant's 256-bit key, base64, sent over TLS with each request that opens
//! or seals content, like S3's SSE-C), checked against the fingerprint the
//! catalog keeps, and sealed into a job for that job's life only.

use std::sync::Arc;

use base64::Engine;
use bv_vault::{CustomerKey, TenantId};
use http::{HeaderMap, StatusCode};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The request header that carries the tenant's own key.
pub const HEADER: &str = "x-bv-customer-key";

/// The key a request carries, if any (malformed: 400 `invalid_customer_key`).
fn from_headers(headers: &HeaderMap) -> ApiResult<Option<CustomerKey>> {
    let Some(v) = headers.get(HEADER) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_customer_key",
            format!("{HEADER} must be 32 bytes, base64-encoded"),
        )
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.as_bytes())
        .map_err(|_| bad())?;
    CustomerKey::from_slice(&bytes).map(Some).map_err(|_| bad())
}

/// The customer key content of `tenant` needs for this request: `None` for a
/// tenant whose keys the service holds; for one that holds its own, the
/// request's key, checked against the stored fingerprint before any byte moves.
pub async fn for_tenant(
    st: &AppState,
    tenant: &str,
    headers: &HeaderMap,
) -> ApiResult<Option<Arc<CustomerKey>>> {
    let given = from_headers(headers)?;
    let Some(fp) = st.catalog.customer_key_fp(tenant).await? else {
        if given.is_some() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "customer_key_not_enabled",
                "this tenant's keys are held by the service; send no customer key",
            ));
        }
        return Ok(None);
    };
    let Some(ck) = given else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "customer_key_required",
            format!("this tenant holds its own key: send it in {HEADER}"),
        ));
    };
    let t: TenantId = crate::media::tenant_id(tenant)?;
    let mine = st.vault.customer_fingerprint(&t, &ck).await?;
    if !bv_crypto::secret::ct_eq(mine.as_bytes(), fp.as_bytes()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "customer_key_mismatch",
            "that is not this tenant's key",
        ));
    }
    Ok(Some(Arc::new(ck)))
}

/// The fingerprint to store when a tenant starts holding its own key.
pub async fn fingerprint_of(st: &AppState, tenant: &str, headers: &HeaderMap) -> ApiResult<String> {
    let Some(ck) = from_headers(headers)? else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "customer_key_required",
            format!("send the key to hold in {HEADER}"),
        ));
    };
    Ok(st
        .vault
        .customer_fingerprint(&crate::media::tenant_id(tenant)?, &ck)
        .await?)
}
