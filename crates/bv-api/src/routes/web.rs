//! The web app: a handful of static files compiled into the binary and
//! served from this origin only (no CDN, no third-party origin).
//!
//! Every page response carries the app's Content-Security-Policy: scripts,
//! styles, images, media and requests from this origin only; no inline script
//! or style, no `eval`, no framing, no `<base>`, forms only to this origin.
//! The app builds its DOM with `textContent` and `createElement`, never from
//! HTML strings, so user-controlled names cannot become markup.

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::error::ApiError;

/// The policy of the app's pages.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self'; media-src 'self'; connect-src 'self'; form-action 'self'; \
frame-ancestors 'none'; base-uri 'none'; manifest-src 'self'";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("../../web/index.html"),
};

/// The files under `/assets/`.
const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/app.js"),
    },
    Asset {
        name: "tus.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/tus.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../web/app.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../web/icon.svg"),
    },
];

/// A strong validator from the bytes, so browsers revalidate cheaply after an upgrade.
fn etag(body: &[u8]) -> String {
    format!("\"{}\"", &bv_crypto::secret::token_hash(body)[..32])
}

fn serve(a: &Asset, headers: &HeaderMap) -> Response {
    let tag = etag(a.body);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, a.content_type)], a.body).into_response()
    };
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    // Revalidate every time: the app and the API must never disagree after an upgrade.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    r
}

/// `GET /`: the app's page.
pub async fn index(headers: HeaderMap) -> Response {
    serve(&INDEX, &headers)
}

/// `GET /assets/{name}`
pub async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => serve(a, &headers),
        None => ApiError::not_found().into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_nothing_inline_and_no_framing() {
        assert!(!CSP.contains("unsafe-inline"));
        assert!(!CSP.contains("unsafe-eval"));
        assert!(CSP.contains("frame-ancestors 'none'"));
        assert!(CSP.contains("default-src 'none'"));
    }

    #[test]
    fn the_page_loads_only_embedded_files() {
        let page = std::str::from_utf8(INDEX.body).unwrap();
        for src in page
            .split("src=\"")
            .skip(1)
            .chain(page.split("href=\"").skip(1))
        {
            let url = &src[..src.find('"').unwrap()];
            if url.starts_with('#') {
                continue;
            }
            let name = url
                .strip_prefix("/assets/")
                .unwrap_or_else(|| panic!("{url}"));
            assert!(ASSETS.iter().any(|a| a.name == name), "{url}");
        }
        assert!(!page.contains("<script>") && !page.contains("style="));
    }
}
