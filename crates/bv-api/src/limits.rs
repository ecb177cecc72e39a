//! Limits that protect the service from slow and oversized clients: a
//! request body that stops sending for too long is cut off (and the request
//! answered 408 `body_timeout`), and whatever axum or hyper refuse on their
//! own (too large, malformed) is answered in the API's error format.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{StatusCode, header};

use crate::error::{ApiError, ErrorCode};

/// What became of a request's body: whether it timed out (the handler then
/// fails to read it) and whether it was read to its end.
#[derive(Debug, Clone, Default)]
pub struct BodyState {
    /// The client stopped sending for longer than the idle limit.
    pub timed_out: Arc<AtomicBool>,
    /// The body was read to its end.
    pub finished: Arc<AtomicBool>,
}

/// How much of a body arrived in how much waiting for it (the current
/// window of the minimum-rate check).
#[derive(Default, Clone, Copy)]
struct Window {
    waited: Duration,
    bytes: u64,
}

/// `body`, failing once no byte has arrived for `idle`, or when, over each
/// `idle` of waiting for the client, fewer than `min_rate` bytes a second
/// arrived (a stalled or trickling client cannot hold a connection and a
/// handler forever). Only time spent waiting for the client counts: a
/// handler that pauses to store what it read is not the client's fault.
pub fn idle_timeout(body: Body, idle: Duration, min_rate: u64, flag: BodyState) -> Body {
    let start = (Some(body.into_data_stream()), Window::default());
    let stream = futures::stream::unfold(start, move |(s, mut w)| {
        let flag = flag.clone();
        async move {
            let mut s = s?;
            let asked = std::time::Instant::now();
            match tokio::time::timeout(idle, s.next()).await {
                Ok(Some(Ok(b))) => {
                    w.waited += asked.elapsed();
                    w.bytes += b.len() as u64;
                    if min_rate > 0 && w.waited >= idle {
                        if (w.bytes as f64) < min_rate as f64 * w.waited.as_secs_f64() {
                            flag.timed_out.store(true, Ordering::Relaxed);
                            let e = std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                "the client sends the request body too slowly",
                            );
                            return Some((Err(e), (None, w)));
                        }
                        w = Window::default();
                    }
                    Some((Ok(b), (Some(s), w)))
                }
                Ok(Some(Err(e))) => Some((Err(std::io::Error::other(e)), (None, w))),
                Ok(None) => {
                    flag.finished.store(true, Ordering::Relaxed);
                    None
                }
                Err(_) => {
                    flag.timed_out.store(true, Ordering::Relaxed);
                    Some((
                        Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "the client stopped sending the request body",
                        )),
                        (None, w),
                    ))
                }
            }
        }
    });
    Body::from_stream(stream)
}

/// A response that is not in the API's error format (a rejection by axum, a
/// 404 of the router) rewritten into it; ours pass through untouched.
pub fn normalise(resp: Response, timed_out: bool) -> Response {
    let status = resp.status();
    if timed_out && (status.is_client_error() || status.is_server_error()) {
        return ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            "the request body stopped arriving or arrived too slowly; send it again (uploads resume where they stopped)",
        )
        .into_response();
    }
    if resp.extensions().get::<ErrorCode>().is_some()
        || !(status.is_client_error() || status.is_server_error())
        || resp
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
    {
        return resp;
    }
    let (code, message) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such resource"),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "this method is not allowed here"),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "body_too_large",
            "the request body is larger than this endpoint takes",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ("unsupported_media_type", "unsupported Content-Type")
        }
        s if s.is_server_error() => (
            "internal_error",
            "internal error; see the server log for this request id",
        ),
        _ => ("invalid_request", "the request could not be read"),
    };
    let mut out = ApiError::new(status, code, message).into_response();
    if let Some(allow) = resp.headers().get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}

/// Whether the percent-decoded `path` holds a control character.
pub fn has_control(path: &str) -> bool {
    let b = path.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz");
            match u8::from_str_radix(hex, 16) {
                Ok(v) => {
                    i += 3;
                    v
                }
                Err(_) => {
                    i += 1;
                    b'%'
                }
            }
        } else {
            i += 1;
            b[i - 1]
        };
        if c < 0x20 || c == 0x7f {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_in_paths_are_found_encoded_or_not() {
        assert!(super::has_control("/v1/keys/%00"));
        assert!(super::has_control("/v1/videos/a%0D%0Ab"));
        assert!(super::has_control("/v1/videos/%7f"));
        assert!(!super::has_control("/v1/videos/0123abcd"));
        assert!(!super::has_control("/v1/videos/%2e%2e%2fetc"));
        assert!(!super::has_control("/v1/videos/%"));
        assert!(!super::has_control("/v1/videos/%4"));
        assert!(!super::has_control("/v1/videos/%zz"));
    }
}
