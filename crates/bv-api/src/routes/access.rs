//! `/v1/access/…`: the tenant's side of operator access (scope `admin`).
//!
//! Whether operators need the tenant's approval, the requests and grants
//! that name the tenant's videos (approve, deny, end early), and the
//! access-transparency log: every operator action on the tenant's data.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State as AxState};
use bv_catalog::{Grant, now_ms};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiResult, Q};
use crate::extract::{AppJson, Scoped, scope};
use crate::routes::audit::{AuditOut, AuditPage};
use crate::state::State;
use crate::time::rfc3339_ms;

/// Whether operators need the tenant's approval (`PUT /v1/access/settings`
/// body and both answers).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AccessSettings)]
pub struct Settings {
    require_approval: bool,
}

/// A grant as the tenant sees it, with who the operator is.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AccessGrant)]
pub struct GrantOut {
    id: String,
    video_id: String,
    operator: String,
    /// The operator's employer and location, as registered.
    #[schema(required = true)]
    employer: Option<String>,
    #[schema(required = true)]
    location: Option<String>,
    reason_code: String,
    reason: String,
    ticket: String,
    ttl_seconds: i64,
    /// `pending`, `active`, `denied`, `expired` or `revoked`.
    status: &'static str,
    requested_at: String,
    #[schema(required = true)]
    decided_by: Option<String>,
    #[schema(required = true)]
    decided_at: Option<String>,
    #[schema(required = true)]
    expires_at: Option<String>,
}

/// The requests and grants that name the tenant's videos.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantList {
    requests: Vec<GrantOut>,
}

/// `GET /v1/access/settings`
#[utoipa::path(get, path = "/v1/access/settings",
    responses((status = 200, description = "Success", body = Settings)))]
pub async fn get_settings(
    AxState(st): AxState<State>,
    auth: Scoped<scope::Admin>,
) -> ApiResult<Json<Settings>> {
    let on = st.catalog.access_approval(&auth.tenant_id).await?;
    Ok(Json(Settings {
        require_approval: on,
    }))
}

/// `PUT /v1/access/settings`: applies to requests made from now on.
#[utoipa::path(put, path = "/v1/access/settings", request_body = Settings,
    responses((status = 200, description = "Success", body = Settings)))]
pub async fn set_settings(
    AxState(st): AxState<State>,
    auth: Scoped<scope::Admin>,
    AppJson(s): AppJson<Settings>,
) -> ApiResult<Json<Settings>> {
    st.catalog
        .set_access_approval(&auth.tenant_id, s.require_approval)
        .await?;
    auth.audit(
        &st,
        "access.settings",
        "access-approval",
        "ok",
        json!({ "require_approval": s.require_approval }),
    )
    .await;
    Ok(Json(s))
}

/// `g` as the tenant sees it, with who the operator is.
fn grant_out(g: &Grant, who: Option<&bv_catalog::Operator>) -> GrantOut {
    GrantOut {
        id: g.id.clone(),
        video_id: g.video_id.clone(),
        operator: g.operator.clone(),
        employer: who.map(|o| o.employer.clone()),
        location: who.map(|o| o.location.clone()),
        reason_code: g.reason_code.clone(),
        reason: g.reason.clone(),
        ticket: g.ticket.clone(),
        ttl_seconds: g.ttl_ms / 1000,
        status: g.status(now_ms()).as_str(),
        requested_at: rfc3339_ms(g.requested_ms),
        decided_by: g.decided_by.clone(),
        decided_at: g.decided_ms.map(rfc3339_ms),
        expires_at: g.expires_ms.map(rfc3339_ms),
    }
}

async fn out(st: &State, gs: &[Grant]) -> ApiResult<Vec<GrantOut>> {
    let mut ops = HashMap::new();
    for g in gs {
        if !ops.contains_key(&g.operator) {
            ops.insert(
                g.operator.clone(),
                st.catalog.operator(&g.operator).await.ok(),
            );
        }
    }
    Ok(gs
        .iter()
        .map(|g| grant_out(g, ops.get(&g.operator).and_then(Option::as_ref)))
        .collect())
}

/// `GET /v1/access/requests`: newest first (the latest 1000).
#[utoipa::path(get, path = "/v1/access/requests",
    responses((status = 200, description = "Success", body = GrantList)))]
pub async fn list(
    AxState(st): AxState<State>,
    auth: Scoped<scope::Admin>,
) -> ApiResult<Json<GrantList>> {
    let gs = st.catalog.tenant_grants(&auth.tenant_id, 1000).await?;
    Ok(Json(GrantList {
        requests: out(&st, &gs).await?,
    }))
}

async fn decide(
    st: State,
    auth: Scoped<scope::Admin>,
    id: String,
    approve: bool,
) -> ApiResult<Json<GrantOut>> {
    let by = format!("principal:{}", auth.principal_id);
    let g = st
        .catalog
        .decide_access(&auth.tenant_id, &id, approve, &by)
        .await?;
    let action = match g.state.as_str() {
        "approved" => "access.approved",
        "denied" => "access.denied",
        _ => "access.revoked",
    };
    auth.audit(
        &st,
        action,
        &format!("video:{}", g.video_id),
        "ok",
        json!({ "grant": g.id, "operator": g.operator }),
    )
    .await;
    let mut v = out(&st, std::slice::from_ref(&g)).await?;
    Ok(Json(v.remove(0)))
}

/// `POST /v1/access/requests/{id}/approve`: in effect from now for its lifetime.
#[utoipa::path(post, path = "/v1/access/requests/{id}/approve",
    responses((status = 200, description = "Success", body = GrantOut)))]
pub async fn approve(
    AxState(st): AxState<State>,
    auth: Scoped<scope::Admin>,
    Path(id): Path<String>,
) -> ApiResult<Json<GrantOut>> {
    decide(st, auth, id, true).await
}

/// `POST /v1/access/requests/{id}/deny`: refuses a pending request, or ends
/// a grant in effect.
#[utoipa::path(post, path = "/v1/access/requests/{id}/deny",
    responses((status = 200, description = "Success", body = GrantOut)))]
pub async fn deny(
    AxState(st): AxState<State>,
    auth: Scoped<scope::Admin>,
    Path(id): Path<String>,
) -> ApiResult<Json<GrantOut>> {
    decide(st, auth, id, false).await
}

/// `?before=&limit=`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    before: Option<i64>,
    limit: Option<i64>,
}

/// `GET /v1/access/log`: operators' requests and actions on the tenant's data
/// and the tenant's answers, newest first (from the sealed audit chain).
#[utoipa::path(get, path = "/v1/access/log", params(LogQuery),
    responses((status = 200, description = "Success", body = AuditPage)))]
pub async fn log(
    AxState(st): AxState<State>,
    auth: Scoped<scope::Admin>,
    uri: http::Uri,
) -> ApiResult<Json<AuditPage>> {
    let Q(q) = Q::<LogQuery>::from_uri(&uri)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let entries = st
        .catalog
        .access_log_before(&auth.tenant_id, q.before.unwrap_or(i64::MAX), limit)
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
