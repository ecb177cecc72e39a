//! Around every request: a request id, security headers, one structured
//! access-log line, metrics.
//!
//! The log line names the route *template* (`/v1/dl/{id}`), never the raw
//! path or query, so signed-link signatures, ids and file names stay out of
//! logs; every logged string is JSON-escaped by the formatter (no forged lines).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State as AxState};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::HeaderValue;
use http::header::{self, HeaderName};

use crate::error::ErrorCode;
use crate::state::State;

/// The Strict-Transport-Security header every response carries.
pub const HSTS: &str = "max-age=63072000; includeSubDomains";

/// The request id header.
pub const REQUEST_ID: &str = "x-request-id";

/// A request id: the caller's if it is short and plain, else a fresh one.
fn request_id(req: &Request) -> String {
    req.headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_string)
        .unwrap_or_else(|| bv_crypto::secret::random_hex(8).unwrap_or_default())
}

/// The headers every response carries.
const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("strict-transport-security", HSTS),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=()",
    ),
];

/// The middleware.
pub async fn observe(AxState(st): AxState<State>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = request_id(&req);
    req.extensions_mut()
        .insert(crate::audit::RequestId(id.clone()));
    let method = req.method().to_string();
    // Kept as bytes: a header may carry obs-text (even C1 controls) that
    // to_str() would refuse; logsafe::text makes it harmless.
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .map(|v| crate::logsafe::text(&String::from_utf8_lossy(v.as_bytes()), 200))
        .unwrap_or_default();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    // A path with a control character once decoded (NUL, CR, …) names
    // nothing of ours; refusing it here keeps such bytes out of every query
    // (PostgreSQL refuses NUL in text with an error, not a miss).
    if crate::limits::has_control(req.uri().path()) {
        return crate::error::ApiError::not_found().into_response();
    }
    let body = crate::limits::BodyState::default();
    let idle = Duration::from_secs(st.cfg.body_idle_timeout_seconds);
    let flag = body.clone();
    let http1 = req.version() < http::Version::HTTP_2;
    let sends_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    let min_rate = st.cfg.min_body_bytes_per_second;
    let req = req.map(|b| crate::limits::idle_timeout(b, idle, min_rate, flag));
    let resp = next.run(req).await;
    let mut resp = crate::limits::normalise(resp, body.timed_out.load(Ordering::Relaxed));
    let h = resp.headers_mut();
    // A request answered before its body was read (refused by its headers,
    // too large, …) leaves unread bytes on an HTTP/1.1 connection, which
    // hyper then closes. Saying so in the response stops a client from
    // sending its next request down a connection that is going away (it
    // would see a reset or a TLS EOF instead of an answer).
    if http1 && sends_body && !body.finished.load(Ordering::Relaxed) {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert(REQUEST_ID, v);
    }
    for (k, v) in SECURITY_HEADERS {
        h.entry(HeaderName::from_static(k))
            .or_insert(HeaderValue::from_static(v));
    }
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    let status = resp.status().as_u16();
    let secs = start.elapsed().as_secs_f64();
    st.metrics.request(&route, &method, status, secs);
    let code = resp.extensions().get::<ErrorCode>().map(|c| c.0);
    tracing::info!(
        target: "access",
        request_id = %id,
        method = %method,
        route = %route,
        status,
        ms = (secs * 1000.0).round() as u64,
        code,
        user_agent = %user_agent,
        "request"
    );
    resp
}
