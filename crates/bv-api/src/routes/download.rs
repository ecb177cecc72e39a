//! Answering a download: `Range` (one range; `bytes=a-b`, `a-`, `-n`),
//! `206`/`416`, and the headers every download carries.

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::response::Response;
use bv_catalog::Video;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::error::{ApiError, ApiResult};
use crate::media;
use crate::state::State;

/// What a `Range` header asks of an object of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Wanted {
    /// The whole object (no header, or one we may ignore: several ranges, another unit).
    All,
    /// Bytes `start..end`.
    Part(u64, u64),
    /// A range outside the object.
    Unsatisfiable,
}

/// Parses `Range` for an object of `len` bytes (RFC 9110 §14).
pub fn wanted(headers: &HeaderMap, len: u64) -> Wanted {
    let Some(v) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Wanted::All;
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Wanted::All;
    };
    if spec.contains(',') {
        return Wanted::All;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Wanted::Unsatisfiable;
    };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.is_empty(), b.is_empty()) {
        (true, false) => b
            .parse::<u64>()
            .ok()
            .and_then(|n| (n > 0 && len > 0).then(|| (len.saturating_sub(n), len))),
        (false, _) => a.parse::<u64>().ok().and_then(|s| {
            let e = if b.is_empty() {
                Some(len)
            } else {
                b.parse::<u64>().ok().map(|e| e.saturating_add(1).min(len))
            };
            e.filter(|e| s < *e).map(|e| (s, e))
        }),
        (true, true) => None,
    };
    match parsed {
        Some((s, e)) => Wanted::Part(s, e),
        None => Wanted::Unsatisfiable,
    }
}

/// Whether a request begins a download worth an audit entry: a GET without a
/// Range or from byte 0 (a player's later Range requests are the same viewing).
pub fn starts_a_download(method: &http::Method, headers: &HeaderMap) -> bool {
    method == http::Method::GET
        && headers
            .get(http::header::RANGE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|r| r.trim_start().starts_with("bytes=0-"))
}

/// A video's strong entity tag. A video's bytes never change once stored
/// (ids are random and never reused), so its id and size name them.
pub fn etag(video: &Video) -> String {
    format!("\"{}-{:x}\"", video.id, video.size_bytes)
}

/// Whether a Range request applies: always, unless it carries `If-Range`
/// naming another representation (RFC 9110 §13.1.5: then the whole object
/// is sent, so a client resuming a partial file of something else starts
/// over instead of splicing two objects together). Dates are not validators
/// here: only our entity tag is.
fn range_applies(headers: &HeaderMap, tag: &str) -> bool {
    match headers.get(header::IF_RANGE) {
        None => true,
        Some(v) => v.to_str().is_ok_and(|v| v.trim() == tag),
    }
}

/// Streams a video (or the range asked for) with `extra` headers.
pub async fn send(
    st: &State,
    video: &Video,
    headers: &HeaderMap,
    head_only: bool,
    extra: &[(header::HeaderName, HeaderValue)],
) -> ApiResult<Response> {
    // A rejected video's bytes were shredded: say so, not "200, 0 bytes".
    bv_service::jobs::check_input(video)?;
    let len = video.size_bytes as u64;
    let tag = etag(video);
    let asked = if range_applies(headers, &tag) {
        wanted(headers, len)
    } else {
        Wanted::All
    };
    let (status, start, end) = match asked {
        Wanted::All => (StatusCode::OK, 0, len),
        Wanted::Part(s, e) => (StatusCode::PARTIAL_CONTENT, s, e),
        Wanted::Unsatisfiable => {
            let mut r = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the video has {len} bytes"),
            )
            .into_response_with_range(len);
            r.headers_mut()
                .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            return Ok(r);
        }
    };
    // Checked before any byte moves: a missing or wrong key is an error
    // response, not a transfer that stops short.
    let ck = crate::custody::for_tenant(st, &video.tenant_id, headers).await?;
    let body = if head_only || start == end {
        Body::empty()
    } else {
        let pieces = st.catalog.pieces(&video.id).await?;
        let tenant = media::tenant_id(&video.tenant_id)?;
        let st2 = std::sync::Arc::clone(st);
        media::body_for_range(
            std::sync::Arc::clone(&st.vault),
            tenant,
            pieces,
            start,
            end,
            ck,
            move |n| {
                st2.metrics.download_bytes.fetch_add(n, Ordering::Relaxed);
            },
        )
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&tag).expect("hex and quotes"),
    );
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&video.content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {start}-{}/{len}", end - 1)).expect("ascii"),
        );
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    let name = crate::sealed::open(
        &st.vault,
        &video.tenant_id,
        crate::sealed::VIDEO_NAME,
        &video.name,
    )
    .await?;
    h.insert(header::CONTENT_DISPOSITION, disposition(&name));
    for (k, v) in extra {
        h.insert(k.clone(), v.clone());
    }
    Ok(r)
}

/// `attachment` with the file name, ASCII fallback plus RFC 8187 UTF-8 form.
pub fn disposition(name: &str) -> HeaderValue {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut enc = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            enc.push(b as char);
        } else {
            enc.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{enc}"
    ))
    .unwrap_or(HeaderValue::from_static("attachment"))
}

impl ApiError {
    fn into_response_with_range(self, len: u64) -> Response {
        use axum::response::IntoResponse;
        let mut r = self.into_response();
        r.headers_mut().insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes */{len}")).expect("ascii"),
        );
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(v: &str, len: u64) -> Wanted {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(v).unwrap());
        wanted(&h, len)
    }

    #[test]
    fn ranges() {
        assert_eq!(wanted(&HeaderMap::new(), 10), Wanted::All);
        assert_eq!(w("bytes=0-0", 10), Wanted::Part(0, 1));
        assert_eq!(w("bytes=2-5", 10), Wanted::Part(2, 6));
        assert_eq!(w("bytes=2-", 10), Wanted::Part(2, 10));
        assert_eq!(w("bytes=2-100", 10), Wanted::Part(2, 10));
        assert_eq!(w("bytes=-3", 10), Wanted::Part(7, 10));
        assert_eq!(w("bytes=-30", 10), Wanted::Part(0, 10));
        assert_eq!(w("bytes=10-", 10), Wanted::Unsatisfiable);
        assert_eq!(w("bytes=5-2", 10), Wanted::Unsatisfiable);
        assert_eq!(w("bytes=-0", 10), Wanted::Unsatisfiable);
        assert_eq!(w("bytes=x-y", 10), Wanted::Unsatisfiable);
        assert_eq!(w("bytes=0-1,3-4", 10), Wanted::All);
        assert_eq!(w("items=0-1", 10), Wanted::All);
    }

    #[test]
    fn dispositions_are_safe() {
        let v = disposition("a \"b\"\r\n\u{e9}.mp4");
        let s = v.to_str().unwrap();
        assert!(!s.contains('\r') && !s.contains('\n'));
        assert!(
            s.contains("filename*=UTF-8''a%20%22b%22%0D%0A%C3%A9.mp4"),
            "{s}"
        );
    }
}
