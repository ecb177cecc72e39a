//! `/v1/keys`: the tenant's API keys (scope `admin`).

use axum::Json;
use axum::extract::{Path, State as AxState};
use axum::response::{IntoResponse, Response};
use bv_catalog::ApiKey;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiResult;
use crate::extract::{AppJson, Scoped, scope};
use crate::state::State;
use crate::time::rfc3339_ms;

/// A key as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ApiKey)]
pub struct KeyOut {
    id: String,
    name: String,
    principal_id: String,
    scopes: Vec<String>,
    created_at: String,
    #[schema(required = true)]
    expires_at: Option<String>,
    #[schema(required = true)]
    last_used_at: Option<String>,
    #[schema(required = true)]
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

/// The tenant's keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    keys: Vec<KeyOut>,
}

/// A new key and its secret (shown this once).
#[derive(Debug, Serialize, ToSchema)]
pub struct NewKeyOut {
    key: KeyOut,
    /// The whole key to send as `Authorization: Bearer …`.
    secret: String,
}

/// `GET /v1/keys`
#[utoipa::path(get, path = "/v1/keys", responses((status = 200, description = "Success", body = KeyList)))]
pub async fn list(
    AxState(st): AxState<State>,
    auth: Scoped<scope::Admin>,
) -> ApiResult<Json<KeyList>> {
    let keys: Vec<KeyOut> = st
        .catalog
        .api_keys(&auth.tenant_id)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(KeyList { keys }))
}

/// `POST /v1/keys` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    #[schema(pattern = "^[A-Za-z0-9._@-]{1,64}$")]
    name: String,
    #[schema(min_items = 1, value_type = Vec<bv_catalog::Scope>)]
    scopes: Vec<String>,
    /// Lifetime; more than 10 years counts as 10 years.
    #[schema(minimum = 1, maximum = 18446744073709551615u64)]
    expires_in_seconds: Option<u64>,
}

/// `POST /v1/keys`: a new key for the caller's principal, shown once.
#[utoipa::path(post, path = "/v1/keys", request_body = NewKey,
    responses((status = 201, description = "Success", body = NewKeyOut)))]
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
        Json(NewKeyOut {
            key: KeyOut::from(k),
            secret,
        }),
    )
        .into_response())
}

/// `DELETE /v1/keys/{id}`: revoked at once.
#[utoipa::path(delete, path = "/v1/keys/{id}", responses((status = 200, description = "Success", body = KeyOut)))]
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
