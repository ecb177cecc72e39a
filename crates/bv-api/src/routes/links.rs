//! `GET|HEAD /v1/dl/{id}?e=&v=&s=`: a download through a signed link.

use std::sync::atomic::Ordering;

use axum::extract::{Path, State as AxState};
use axum::response::Response;
use http::{HeaderMap, Method, StatusCode};

use crate::error::{ApiError, ApiResult};
use crate::links::{LinkParams, LinkRefusal};
use crate::state::State;

fn refused(st: &State, why: LinkRefusal) -> ApiError {
    st.metrics.links_refused.fetch_add(1, Ordering::Relaxed);
    match why {
        LinkRefusal::Invalid => ApiError::new(
            StatusCode::FORBIDDEN,
            "link_invalid",
            "this link is not valid (altered, for another method or object, or its object is gone)",
        ),
        LinkRefusal::Expired => ApiError::new(
            StatusCode::FORBIDDEN,
            "link_expired",
            "this link has expired",
        ),
    }
}

/// Serves the object a valid link names.
#[utoipa::path(get, path = "/v1/dl/{id}",
    params(("Range" = Option<String>, Header)),
    // Served with the type it was uploaded with.
    responses(
        (status = 200, description = "Success", body = String, content_type = "*/*"),
        (status = 206, description = "Success", body = String, content_type = "*/*")))]
pub async fn download(
    AxState(st): AxState<State>,
    method: Method,
    Path(id): Path<String>,
    crate::error::Q(p): crate::error::Q<LinkParams>,
    headers: HeaderMap,
    crate::audit::Source(origin): crate::audit::Source,
) -> ApiResult<Response> {
    let dl = crate::throttle::AddressAction::Download;
    crate::throttle::admit_address(&st, dl, &origin.source).await?;
    // A missing (or deleted) video answers exactly like a bad signature.
    let v = match st.catalog.video_for_link(&id).await {
        Ok(v) => v,
        Err(bv_catalog::CatalogError::NotFound) => return Err(refused(&st, LinkRefusal::Invalid)),
        Err(e) => return Err(e.into()),
    };
    st.links
        .verify(
            method.as_str(),
            &v.tenant_id,
            &v.id,
            &p,
            crate::time::unix_now(),
        )
        .await
        .map_err(|w| refused(&st, w))?;
    if super::download::starts_a_download(&method, &headers) {
        let e = crate::audit::Event {
            tenant: Some(&v.tenant_id),
            actor: "link",
            action: "video.download",
            target: &format!("video:{}", v.id),
            outcome: "ok",
        };
        crate::audit::record(&st, &origin, e, serde_json::json!({"via": "signed_link"})).await;
    }
    super::download::send(&st, &v, &headers, method == Method::HEAD, &[]).await
}

/// `HEAD /v1/dl/{id}` (answered by [`download`], for a link minted for HEAD).
#[utoipa::path(head, path = "/v1/dl/{id}", responses((status = 200, description = "Success, no body")))]
#[allow(dead_code)]
pub(crate) fn head() {}
