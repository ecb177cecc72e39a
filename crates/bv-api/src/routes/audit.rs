//! `GET /v1/audit`: a tenant's own audit entries, newest first.

use axum::Json;
use axum::extract::State as AxState;
use bv_catalog::AuditEntry;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiResult, Q};
use crate::extract::{Scoped, scope};
use crate::state::State;
use crate::time::rfc3339_ms;

/// An entry as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AuditEntry)]
pub struct AuditOut {
    seq: i64,
    at: String,
    actor: String,
    action: String,
    target: String,
    outcome: String,
    request_id: String,
    source: String,
    #[schema(value_type = Object)]
    detail: serde_json::Value,
}

/// A page of entries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub(crate) entries: Vec<AuditOut>,
    /// `before` for the next page (null: this is the last).
    #[schema(required = true)]
    pub(crate) next_before: Option<i64>,
}

impl From<AuditEntry> for AuditOut {
    fn from(e: AuditEntry) -> Self {
        Self {
            seq: e.seq,
            at: rfc3339_ms(e.at_ms),
            actor: e.actor,
            action: e.action,
            target: e.target,
            outcome: e.outcome,
            request_id: e.request_id,
            source: e.source,
            detail: serde_json::from_str(&e.detail).unwrap_or_default(),
        }
    }
}

/// `?before=&limit=`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    before: Option<i64>,
    limit: Option<i64>,
}

/// `GET /v1/audit`: `before` pages back (the `next_before` of the last page).
#[utoipa::path(get, path = "/v1/audit", params(AuditQuery),
    responses((status = 200, description = "Success", body = AuditPage)))]
pub async fn list(
    AxState(st): AxState<State>,
    auth: Scoped<scope::Admin>,
    uri: http::Uri,
) -> ApiResult<Json<AuditPage>> {
    let Q(q) = Q::<AuditQuery>::from_uri(&uri)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let entries = st
        .catalog
        .audit_entries_before(&auth.tenant_id, q.before.unwrap_or(i64::MAX), limit)
        .await?;
    let next = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    let entries: Vec<AuditOut> = entries.into_iter().map(Into::into).collect();
    Ok(Json(AuditPage {
        entries,
        next_before: next,
    }))
}
