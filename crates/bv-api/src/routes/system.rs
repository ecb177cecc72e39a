//! Health, readiness, metrics.

use axum::extract::State as AxState;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::state::State;

/// `GET /healthz`: the process answers.
#[utoipa::path(get, path = "/healthz",
    responses((status = 200, description = "Success", body = String, content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: the catalog answers (the vault is checked at start-up).
#[utoipa::path(get, path = "/readyz",
    responses((status = 200, description = "Success", body = String, content_type = "text/plain")))]
pub async fn readyz(AxState(st): AxState<State>) -> Response {
    if st.catalog.ping().await {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "catalog unreachable\n").into_response()
    }
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
