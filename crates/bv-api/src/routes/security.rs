//! The security report (`GET /v1/security-report`, JSON or Markdown), the
//! `/security` page that shows it, and `/.well-known/security.txt` (RFC 9116).

use axum::extract::{FromRequestParts, Request, State as AxState};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Deserialize;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Q};
use crate::report;
use crate::state::State;

/// `?format=json|markdown`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    #[param(inline, value_type = Option<ReportFormat>)]
    format: Option<String>,
}

/// How the report is written.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub(crate) enum ReportFormat {
    /// JSON (the default).
    Json,
    /// Markdown.
    Markdown,
}

/// The caller's tenant, when the request carries a valid key or session.
async fn tenant_of(req: Request, st: &State) -> Option<String> {
    let (mut parts, _) = req.into_parts();
    Auth::from_request_parts(&mut parts, st)
        .await
        .ok()
        .map(|a| a.tenant_id)
}

/// `GET /v1/security-report`: public; a key or session adds the caller's own tenant.
#[utoipa::path(get, path = "/v1/security-report", params(ReportQuery),
    responses((status = 200, description = "The report",
        content((super::openapi::AnyObject = "application/json"), (String = "text/markdown")))))]
pub async fn report(
    AxState(st): AxState<State>,
    crate::audit::Source(origin): crate::audit::Source,
    req: Request,
) -> ApiResult<Response> {
    let report = crate::throttle::AddressAction::Report;
    crate::throttle::admit_address(&st, report, &origin.source).await?;
    let Q(q) = Q::<ReportQuery>::from_uri(req.uri())?;
    let tenant = tenant_of(req, &st).await;
    let r = report::build(&st, tenant.as_deref()).await?;
    Ok(match q.format.as_deref() {
        None | Some("json") => axum::Json(r).into_response(),
        Some("markdown") => (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            report::markdown(&r),
        )
            .into_response(),
        Some(_) => return Err(ApiError::bad_request("format is json or markdown")),
    })
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Inline Markdown of our own report: `code` spans only (after escaping).
fn inline(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in escape(s).split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str("<code>");
            out.push_str(part);
            out.push_str("</code>");
        } else {
            out.push_str(part);
        }
    }
    out
}

/// The report's Markdown as HTML (the subset it uses: headings, one- and
/// two-level lists, paragraphs, code spans).
fn html(md: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    let close_to = |out: &mut String, depth: &mut usize, to: usize| {
        while *depth > to {
            out.push_str("</ul>");
            *depth -= 1;
        }
    };
    for line in md.lines() {
        let (level, text) = if let Some(t) = line.strip_prefix("  - ") {
            (2, t)
        } else if let Some(t) = line.strip_prefix("- ") {
            (1, t)
        } else {
            (0, line)
        };
        if level > 0 {
            close_to(&mut out, &mut depth, level);
            while depth < level {
                out.push_str("<ul>");
                depth += 1;
            }
            out.push_str(&format!("<li>{}</li>", inline(text)));
            continue;
        }
        close_to(&mut out, &mut depth, 0);
        if let Some(t) = line.strip_prefix("## ") {
            out.push_str(&format!("<h2>{}</h2>", inline(t)));
        } else if let Some(t) = line.strip_prefix("# ") {
            out.push_str(&format!("<h1>{}</h1>", inline(t)));
        } else if !line.trim().is_empty() {
            out.push_str(&format!("<p>{}</p>", inline(line)));
        }
    }
    close_to(&mut out, &mut depth, 0);
    out
}

/// `GET /security`: the live report as a page (no script).
pub async fn page(
    AxState(st): AxState<State>,
    crate::audit::Source(origin): crate::audit::Source,
) -> ApiResult<Response> {
    let report = crate::throttle::AddressAction::Report;
    crate::throttle::admit_address(&st, report, &origin.source).await?;
    let r = report::build(&st, None).await?;
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Security report · BetterVideo</title>\
         <link rel=\"icon\" href=\"/assets/icon.svg\" type=\"image/svg+xml\">\
         <link rel=\"stylesheet\" href=\"/assets/app.css\"></head>\
         <body><main id=\"main\" class=\"report\">{}\
         <p class=\"muted\">Machine-readable: <a href=\"/v1/security-report\">/v1/security-report</a>; \
         <a href=\"/.well-known/security.txt\">security.txt</a>.</p></main></body></html>",
        html(&report::markdown(&r))
    );
    let mut resp = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(resp)
}

/// `GET /.well-known/security.txt` (RFC 9116): 404 `not_configured` until
/// `serve.security_contact` is set (a security.txt without a real contact
/// would be worse than none).
pub async fn security_txt(AxState(st): AxState<State>) -> ApiResult<Response> {
    if st.cfg.security_contact.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_configured",
            "this instance has no security contact configured (serve.security_contact)",
        ));
    }
    // Expires must be less than a year ahead; the file is generated, so it never goes stale.
    let expires = crate::time::rfc3339_ms(bv_catalog::now_ms() + 180 * 24 * 3600 * 1000);
    let u = &st.public_url;
    let body = format!(
        "Contact: {}\nExpires: {expires}\nPolicy: {u}/security\nCanonical: {u}/.well-known/security.txt\nPreferred-Languages: en\n",
        st.cfg.security_contact
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn report_markdown_becomes_escaped_html() {
        let h = super::html("# T\n\n## A <b>\n- one `x<y`\n  - two\n- three\ntext");
        assert_eq!(
            h,
            "<h1>T</h1><h2>A &lt;b&gt;</h2><ul><li>one <code>x&lt;y</code></li><ul><li>two</li></ul><li>three</li></ul><p>text</p>"
        );
    }
}
