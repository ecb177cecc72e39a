//! Health, readiness (what [`crate::ready`] publishes), metrics.

use std::time::Duration;

use axum::Json;
use axum::extract::State as AxState;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::ready::{Check, Readiness};
use crate::state::State;

/// `GET /healthz`: the process answers.
#[utoipa::path(get, path = "/healthz",
    responses((status = 200, description = "Success", body = String, content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: the catalog answers and, where this process runs jobs,
/// it can run them (models verified, sandbox self-test passed, FFmpeg
/// present); 503 with the failing checks otherwise (their details and
/// fixes for a caller on this host or with a key or session).
#[utoipa::path(get, path = "/readyz",
    responses((status = 200, description = "Success", body = Readiness),
              (status = 503, description = "Not ready: a check failed", body = Readiness)))]
pub async fn readyz(AxState(st): AxState<State>, req: axum::extract::Request) -> Response {
    // Paths, versions and which confinement failed help whoever runs the
    // host, and an attacker: only a caller on this host or with a valid key
    // or session gets them; anyone else (a load balancer) gets names and
    // statuses.
    let (mut parts, _) = req.into_parts();
    let local = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .is_some_and(|c| c.0.ip().is_loopback());
    let detailed = local
        || <crate::auth::Auth as axum::extract::FromRequestParts<State>>::from_request_parts(
            &mut parts, &st,
        )
        .await
        .is_ok();
    // A catalog that hangs must not hang the probe: a deadline, then "no".
    let ping = tokio::time::timeout(Duration::from_secs(5), st.catalog.ping()).await;
    let mut checks = vec![if ping == Ok(true) {
        Check::ok("catalog", "answers")
    } else {
        Check::fail(
            "catalog",
            "does not answer within 5 s",
            "check that the database runs and catalog.url points at it (`bv doctor` on this host)",
        )
    }];
    checks.extend(st.host.processing.current());
    let ready = checks.iter().all(Check::passed);
    if !detailed {
        for c in &mut checks {
            c.detail = "details for a caller on this host or with a key".into();
            c.fix = None;
        }
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(Readiness { ready, checks })).into_response()
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(get, path = "/metrics",
    responses((status = 200, description = "Success", body = String, content_type = "text/plain")))]
pub async fn metrics(AxState(st): AxState<State>) -> Response {
    let mut r = st.metrics.render().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}
