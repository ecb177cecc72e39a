//! `/v1/jobs` and `/v1/credits`.

use axum::Json;
use axum::extract::{Path, State as AxState};
use axum::response::{IntoResponse, Response};
use bv_catalog::{Job, JobState};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, Q};
use crate::extract::{AppJson, Scoped, scope};
use crate::state::State;
use crate::time::rfc3339_ms;
use bv_service::offers::Choice;

/// A job as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Job)]
pub struct JobOut {
    id: String,
    /// `probe` or `enhance`.
    kind: String,
    video_id: String,
    /// What it runs: model, scale, codec (as stored with the job).
    #[schema(value_type = Object)]
    preset: serde_json::Value,
    state: JobState,
    price: i64,
    attempts: i64,
    frames_done: i64,
    #[schema(required = true)]
    frames_total: Option<i64>,
    #[schema(required = true)]
    output_video_id: Option<String>,
    #[schema(required = true)]
    error: Option<String>,
    cancel_requested: bool,
    /// How a job run in segments is cut and how far it got (`GET` of one job only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Segments)]
    segments: Option<Segments>,
    created_at: String,
    #[schema(required = true)]
    started_at: Option<String>,
    #[schema(required = true)]
    finished_at: Option<String>,
}

/// How many segments a job is cut into, and how many are done.
#[derive(Debug, Serialize, ToSchema)]
pub struct Segments {
    total: i64,
    done: i64,
}

impl From<Job> for JobOut {
    fn from(j: Job) -> Self {
        let preset: serde_json::Value = serde_json::from_str(&j.preset).unwrap_or_default();
        let kind = match bv_job::JobKind::from_stored(&j.preset) {
            Ok(k) if k.is_probe() => "probe",
            _ => "enhance",
        };
        Self {
            id: j.id,
            kind: kind.into(),
            video_id: j.input_video_id,
            preset,
            state: j.state,
            price: j.price,
            attempts: j.attempts,
            frames_done: j.frames_done,
            frames_total: j.frames_total,
            output_video_id: j.output_video_id.filter(|_| j.state == JobState::Succeeded),
            error: j.last_error.filter(|_| j.state != JobState::Succeeded),
            cancel_requested: j.cancel_requested,
            segments: None,
            created_at: rfc3339_ms(j.created_ms),
            started_at: j.started_ms.map(rfc3339_ms),
            finished_at: j.finished_ms.map(rfc3339_ms),
        }
    }
}

/// `POST /v1/jobs` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Submit {
    video_id: String,
    /// A preset names the model, scale and codec (model and scale may not
    /// be given with it; codec and crf override its own).
    preset: Option<String>,
    model: Option<String>,
    scale: Option<u32>,
    #[schema(value_type = Option<bv_job::Codec>)]
    codec: Option<String>,
    #[schema(minimum = 0, maximum = 63)]
    crf: Option<u32>,
    /// The same key within a day answers the job it made (200) instead
    /// of making another.
    idempotency_key: Option<String>,
}

impl Submit {
    fn choice(&self) -> Choice {
        Choice {
            preset: self.preset.clone(),
            model: self.model.clone(),
            scale: self.scale,
            codec: self.codec.clone(),
            crf: self.crf,
        }
    }
}

/// The model a job gets when it names none.
pub use bv_service::offers::DEFAULT_MODEL;

fn default_model() -> String {
    DEFAULT_MODEL.into()
}

/// `POST /v1/jobs`: reserves the price and queues an enhancement.
#[utoipa::path(post, path = "/v1/jobs", request_body = Submit,
    responses(
        (status = 201, description = "Success", body = JobOut),
        (status = 200, description = "Success", body = JobOut)))]
pub async fn submit(
    AxState(st): AxState<State>,
    auth: Scoped<scope::JobsWrite>,
    headers: http::HeaderMap,
    AppJson(sub): AppJson<Submit>,
) -> ApiResult<Response> {
    let run = st.offers.choose(&sub.choice())?;
    let v = st.catalog.video(&auth.tenant_id, &sub.video_id).await?;
    bv_service::jobs::check_input(&v)?;
    let ck = crate::custody::for_tenant(&st, &auth.tenant_id, &headers).await?;
    bv_service::jobs::reprobe_if_uncounted(
        &st.catalog,
        &st.vault,
        &st.domain.jobs,
        &v,
        &auth.principal_id,
        ck.as_deref(),
    )
    .await?;
    let price = bv_service::jobs::price(&st.domain.billing, &v, run.scale)?;
    let lim = crate::throttle::for_tenant(&st, &auth.tenant_id).await?;
    let model = run.model.clone();
    let kind = bv_job::JobKind::Enhance(run);
    let submission = bv_service::jobs::Submission {
        tenant: &auth.tenant_id,
        principal: &auth.principal_id,
        video: &v.id,
        kind: &kind,
        price,
        priority: 0,
        idempotency_key: sub.idempotency_key.as_deref(),
        customer_key: ck.as_deref(),
        max_active: crate::throttle::on(lim.active_jobs),
    };
    let queued = bv_service::jobs::enqueue(&st.catalog, &st.vault, &st.domain.jobs, submission)
        .await
        .map_err(ApiError::from);
    let (j, made) = match queued {
        Ok(q) => q,
        Err(e) => {
            let detail = serde_json::json!({"code": e.code, "price": price});
            auth.audit(
                &st,
                "job.submit",
                &format!("video:{}", v.id),
                "refused",
                detail,
            )
            .await;
            return Err(e);
        }
    };
    // The job an idempotency key made before: answered as it is, 200.
    if !made {
        return Ok((StatusCode::OK, Json(JobOut::from(j))).into_response());
    }
    let detail = serde_json::json!({"video": v.id, "price": price, "preset": model});
    auth.audit(&st, "job.submit", &format!("job:{}", j.id), "ok", detail)
        .await;
    Ok((StatusCode::CREATED, Json(JobOut::from(j))).into_response())
}

/// `?video_id=&model=&scale=`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QuoteQuery {
    #[param(pattern = "^[0-9a-f]{32}$")]
    video_id: String,
    #[serde(default = "default_model")]
    model: String,
    /// Default: x2 when the model offers it, else its smallest scale.
    scale: Option<u32>,
}

/// What a job would cost.
#[derive(Debug, Serialize, ToSchema)]
pub struct Quote {
    /// Credits the job reserves.
    price: i64,
    /// Credits available now.
    available: i64,
    /// Whether they cover the price.
    enough: bool,
    /// The output's size, when the probe knows the input's.
    #[schema(required = true)]
    output_width: Option<i64>,
    #[schema(required = true)]
    output_height: Option<i64>,
}

/// `GET /v1/jobs/quote`: what a job would cost, and whether the balance covers it.
#[utoipa::path(get, path = "/v1/jobs/quote", params(QuoteQuery),
    responses((status = 200, description = "Success", body = Quote)))]
pub async fn quote(
    AxState(st): AxState<State>,
    auth: Scoped<scope::VideosRead>,
    uri: http::Uri,
) -> ApiResult<Json<Quote>> {
    let Q(q) = Q::<QuoteQuery>::from_uri(&uri)?;
    let scale = q.scale.unwrap_or_else(|| st.offers.default_scale(&q.model));
    st.offers.check(&q.model, scale)?;
    let v = st.catalog.video(&auth.tenant_id, &q.video_id).await?;
    let price = bv_service::jobs::price(&st.domain.billing, &v, scale)?;
    let b = st.catalog.credit_balance(&auth.tenant_id).await?;
    Ok(Json(Quote {
        price,
        available: b.available,
        enough: b.available >= price,
        output_width: v.width.map(|w| w * i64::from(scale)),
        output_height: v.height.map(|h| h * i64::from(scale)),
    }))
}

/// `?state=&limit=`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[param(inline, value_type = Option<JobState>)]
    state: Option<String>,
    limit: Option<i64>,
}

/// The tenant's jobs.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    jobs: Vec<JobOut>,
}

/// `GET /v1/jobs`
#[utoipa::path(get, path = "/v1/jobs", params(ListQuery),
    responses((status = 200, description = "Success", body = JobList)))]
pub async fn list(
    AxState(st): AxState<State>,
    auth: Scoped<scope::VideosRead>,
    Q(q): Q<ListQuery>,
) -> ApiResult<Json<JobList>> {
    let state = q
        .state
        .as_deref()
        .map(str::parse::<JobState>)
        .transpose()
        .map_err(|_| {
            ApiError::bad_request("state: queued, running, succeeded, failed or cancelled")
        })?;
    let jobs: Vec<JobOut> = st
        .catalog
        .jobs(&auth.tenant_id, state, q.limit.unwrap_or(100))
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(JobList { jobs }))
}

/// `GET /v1/jobs/{id}`
#[utoipa::path(get, path = "/v1/jobs/{id}", responses((status = 200, description = "Success", body = JobOut)))]
pub async fn get(
    AxState(st): AxState<State>,
    auth: Scoped<scope::VideosRead>,
    Path(id): Path<String>,
) -> ApiResult<Json<JobOut>> {
    let job = st.catalog.job(&auth.tenant_id, &id).await?;
    let (total, done) = st.catalog.segment_counts(&job.id).await?;
    let mut out = JobOut::from(job);
    if total > 0 {
        out.segments = Some(Segments { total, done });
    }
    Ok(Json(out))
}

/// `POST /v1/jobs/{id}/cancel`
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", responses((status = 200, description = "Success", body = JobOut)))]
pub async fn cancel(
    AxState(st): AxState<State>,
    auth: Scoped<scope::JobsWrite>,
    Path(id): Path<String>,
) -> ApiResult<Json<JobOut>> {
    let j = st.catalog.cancel_job(&auth.tenant_id, &id).await?;
    auth.audit(
        &st,
        "job.cancel",
        &format!("job:{id}"),
        "ok",
        serde_json::json!({}),
    )
    .await;
    Ok(Json(j.into()))
}

/// A tenant's credits.
#[derive(Debug, Serialize, ToSchema)]
pub struct Credits {
    /// Spendable now.
    available: i64,
    /// Held by jobs that have not settled.
    reserved: i64,
    /// Always null: credits never expire.
    #[schema(required = true)]
    expires: Option<String>,
    /// The latest 200 movements, newest first.
    ledger: Vec<LedgerEntry>,
}

/// One movement of credits.
#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerEntry {
    /// `grant`, `reserve`, `capture`, `release` or `refund`.
    kind: String,
    /// Credits (always positive; the kind says which way).
    amount: i64,
    /// The job it settles, if any.
    #[schema(required = true)]
    job_id: Option<String>,
    /// Why.
    note: String,
    /// When, RFC 3339.
    at: String,
}

/// `GET /v1/credits`: balance and ledger (credits never expire).
#[utoipa::path(get, path = "/v1/credits", responses((status = 200, description = "Success", body = Credits)))]
pub async fn credits(
    AxState(st): AxState<State>,
    auth: Scoped<scope::VideosRead>,
) -> ApiResult<Json<Credits>> {
    let b = st.catalog.credit_balance(&auth.tenant_id).await?;
    let ledger = st
        .catalog
        .credit_history(&auth.tenant_id, 200, None)
        .await?
        .into_iter()
        .map(|e| LedgerEntry {
            kind: e.kind,
            amount: e.amount,
            job_id: e.job_id,
            note: e.note,
            at: rfc3339_ms(e.created_ms),
        })
        .collect();
    Ok(Json(Credits {
        available: b.available,
        reserved: b.reserved,
        expires: None,
        ledger,
    }))
}

/// Progress as the events stream reports it.
fn progress_event(j: &Job) -> serde_json::Value {
    let now = bv_catalog::now_ms();
    let secs = j.started_ms.map(|s| (now - s).max(1) as f64 / 1000.0);
    let fps = secs
        .filter(|_| j.frames_done > 0)
        .map(|s| j.frames_done as f64 / s);
    let eta = match (fps, j.frames_total) {
        (Some(f), Some(t)) if f > 0.0 && t >= j.frames_done => Some((t - j.frames_done) as f64 / f),
        _ => None,
    };
    serde_json::json!({
        "state": j.state,
        "frames_done": j.frames_done,
        "frames_total": j.frames_total,
        "fps": fps,
        "eta_s": eta,
    })
}

/// A server-sent event as the document describes it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct SseEvent {
    /// `progress` or `end`.
    event: String,
    /// JSON: progress (frames, fps, ETA), or the finished job.
    data: String,
}

/// `GET /v1/jobs/{id}/events`: Server-Sent Events — `progress` whenever the
/// job moves, then one `end` with the finished job, then the stream closes.
#[utoipa::path(get, path = "/v1/jobs/{id}/events",
    responses((status = 200, description = "Server-sent events: progress, then end",
        body = SseEvent, content_type = "text/event-stream")))]
pub async fn events(
    AxState(st): AxState<State>,
    auth: Scoped<scope::VideosRead>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let first = st.catalog.job(&auth.tenant_id, &id).await?;
    let tenant = auth.tenant_id.clone();
    let stream = futures::stream::unfold(
        (Some(first), None::<serde_json::Value>, false),
        move |(cur, last, ended)| {
            let (st, tenant, id) = (st.clone(), tenant.clone(), id.clone());
            async move {
                if ended {
                    return None;
                }
                let mut job = cur;
                loop {
                    let j = match job.take() {
                        Some(j) => j,
                        None => {
                            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                            st.catalog.job(&tenant, &id).await.ok()?
                        }
                    };
                    let terminal = matches!(
                        j.state,
                        JobState::Succeeded | JobState::Failed | JobState::Cancelled
                    );
                    if terminal {
                        let ev = Event::default()
                            .event("end")
                            .json_data(JobOut::from(j))
                            .ok()?;
                        return Some((Ok::<_, std::convert::Infallible>(ev), (None, None, true)));
                    }
                    let p = progress_event(&j);
                    if last.as_ref() != Some(&p) {
                        let ev = Event::default().event("progress").json_data(&p).ok()?;
                        return Some((Ok(ev), (None, Some(p), false)));
                    }
                }
            }
        },
    );
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}
