//! `/v1/keys`: the tenant's API keys (scope `admin`).

use axum::Json;
use axum::extract::{Path, State as AxState};
use axum::response::{IntoResponse, Response};
use bv_catalog::ApiKey;
use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::error::ApiResult;
use crate::extract::{AppJson, Scoped, scope};
use crate::state::State;
use crate::time::rfc3339_ms;

/// A key as listed: never its secret.
#[derive(Debug, Serialize)]
pub struct KeyOut {
    id: String,
    name: String,
    principal_id: String,
    scopes: Vec<String>,
    created_at: String,
    expires_at: Option<String>,
    last_used_at: Option<String>,
    revoked_at: Option<String>,
}

impl From<ApiKey> for KeyOut {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id,
            name: k.name,
            principal_id: k.principal_id,
            scopes: k.scopes.iter().map(|s| s.to_string()).collect(),
            created_at: rfc3339_ms(k.created_ms),
            expires_at: k.expires_ms.map(rfc3339_ms),
            last_used_at: k.last_used_ms.map(rfc3339_ms),
            revoked_at: k.revoked_ms.map(rfc3339_ms),
        }
    }
}

/// `GET /v1/keys`
pub async fn list(
    AxState(st): AxState<State>,
    auth: Scoped<scope::Admin>,
) -> ApiResult<Json<serde_json::Value>> {
    let keys: Vec<KeyOut> = st
        .catalog
        .api_keys(&auth.tenant_id)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(serde_json::json!({ "keys": keys })))
}

/// `POST /v1/keys` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    name: String,
    scopes: Vec<String>,
    expires_in_seconds: Option<u64>,
}

/// `POST /v1/keys`: a new key for the caller's principal, shown once.
pub async fn create(
    AxState(st): AxState<State>,
    auth: Scoped<scope::Admin>,
    AppJson(req): AppJson<NewKey>,
) -> ApiResult<Response> {
    let scopes = bv_catalog::api_keys::parse_scopes(&req.scopes.join(" "))?;
    let expires = req
        .expires_in_seconds
        .map(|s| bv_catalog::now_ms() + (s.min(10 * 365 * 86400) * 1000) as i64);
    let (k, secret) = st
        .catalog
        .create_api_key(
            &auth.tenant_id,
            &auth.principal_id,
            &req.name,
            &scopes,
            expires,
        )
        .await?;
    let detail =
        serde_json::json!({"name": k.name, "scopes": req.scopes, "expires_ms": k.expires_ms});
    auth.audit(&st, "key.create", &format!("key:{}", k.id), "ok", detail)
        .await;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "key": KeyOut::from(k), "secret": secret })),
    )
        .into_response())
}

/// `DELETE /v1/keys/{id}`: revoked at once.
pub async fn revoke(
    AxState(st): AxState<State>,
    auth: Scoped<scope::Admin>,
    Path(id): Path<String>,
) -> ApiResult<Json<KeyOut>> {
    let k = st.catalog.revoke_api_key(&auth.tenant_id, &id).await?;
    auth.audit(
        &st,
        "key.revoke",
        &format!("key:{}", k.id),
        "ok",
        serde_json::json!({}),
    )
    .await;
    Ok(Json(k.into()))
}
