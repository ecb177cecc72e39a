//! `/v1/videos`: list, describe, simple upload, direct download, delete,
//! and minting signed links.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State as AxState};
use axum::response::{IntoResponse, Response};
use bv_catalog::{Piece, VideoState};
use futures::TryStreamExt;
use http::{HeaderMap, Method, StatusCode, header};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult};
use crate::extract::{Scoped, scope};
use crate::media::{self, Tolerant};
use crate::state::State;

/// A video as the API shows it (the domain's view of one).
pub use bv_service::views::VideoView as VideoOut;

/// `?limit=&cursor=`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    limit: Option<i64>,
    /// The `next_cursor` of the page before.
    #[param(pattern = "^[0-9]{1,18}\\.[0-9a-f]{32}$")]
    cursor: Option<String>,
}

/// A page of videos.
#[derive(Debug, Serialize, ToSchema)]
pub struct VideoList {
    videos: Vec<VideoOut>,
    /// Where the next page starts (null: this is the last).
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// `GET /v1/videos`
#[utoipa::path(get, path = "/v1/videos", params(ListQuery),
    responses((status = 200, description = "Success", body = VideoList)))]
pub async fn list(
    AxState(st): AxState<State>,
    auth: Scoped<scope::VideosRead>,
    crate::error::Q(q): crate::error::Q<ListQuery>,
) -> ApiResult<Response> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let after = match &q.cursor {
        Some(c) => {
            let (ms, id) = c
                .split_once('.')
                .and_then(|(ms, id)| Some((ms.parse::<i64>().ok()?, id)))
                .filter(|(_, id)| bv_catalog::is_id(id))
                .ok_or_else(|| ApiError::bad_request("malformed cursor"))?;
            Some((ms, id.to_string()))
        }
        None => None,
    };
    let vids = st
        .catalog
        .videos(
            &auth.tenant_id,
            limit,
            after.as_ref().map(|(m, i)| (*m, i.as_str())),
        )
        .await?;
    let next = (vids.len() as i64 == limit)
        .then(|| vids.last().map(|v| format!("{}.{}", v.created_ms, v.id)))
        .flatten();
    let out: Vec<VideoOut> = crate::sealed::videos_out(&st.vault, vids).await?;
    Ok(Json(VideoList {
        videos: out,
        next_cursor: next,
    })
    .into_response())
}

/// `GET /v1/videos/{id}`
#[utoipa::path(get, path = "/v1/videos/{id}", responses((status = 200, description = "Success", body = VideoOut)))]
pub async fn get(
    AxState(st): AxState<State>,
    auth: Scoped<scope::VideosRead>,
    Path(id): Path<String>,
) -> ApiResult<Json<VideoOut>> {
    let v = st.catalog.video(&auth.tenant_id, &id).await?;
    Ok(Json(crate::sealed::video_out(&st.vault, v).await?))
}

/// `DELETE /v1/videos/{id}`: crypto-shred; every outstanding link dies.
#[utoipa::path(delete, path = "/v1/videos/{id}", responses((status = 204, description = "Success, no body")))]
pub async fn delete(
    AxState(st): AxState<State>,
    auth: Scoped<scope::VideosWrite>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    // Only visible videos: an upload in progress is ended through its tus URL.
    st.catalog.video(&auth.tenant_id, &id).await?;
    media::shred_video(&st.catalog, &st.vault, &auth.tenant_id, &id).await?;
    auth.audit(
        &st,
        "video.delete",
        &format!("video:{id}"),
        "ok",
        serde_json::json!({"shredded": true}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// `?name=`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The file name (default `upload`).
    #[param(
        min_length = 1,
        max_length = 255,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    name: Option<String>,
}

/// `POST /v1/videos?name=clip.mp4`: the whole file in one request body
/// (`Content-Length` required, up to `serve.simple_upload_max_mib`).
// An empty body makes an empty video (which its probe then rejects).
#[utoipa::path(post, path = "/v1/videos", params(UploadQuery),
    request_body(content = Option<super::openapi::Binary>, content_type = "application/octet-stream"),
    responses((status = 201, description = "Success", body = VideoOut)))]
pub async fn upload(
    AxState(st): AxState<State>,
    auth: Scoped<scope::VideosWrite>,
    crate::error::Q(q): crate::error::Q<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let len: u64 = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::LENGTH_REQUIRED,
                "length_required",
                "Content-Length is required",
            )
        })?;
    let max = (st.cfg.simple_upload_max_mib as u64) << 20;
    if len > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "upload_too_large",
            format!(
                "simple uploads take at most {max} bytes; use the resumable (tus) endpoint /v1/uploads"
            ),
        ));
    }
    let name = q.name.unwrap_or_else(|| "upload".into());
    bv_catalog::videos::check_file_name(&name)?;
    let sealed_name =
        crate::sealed::seal(&st.vault, &auth.tenant_id, crate::sealed::VIDEO_NAME, &name).await?;
    let ck = crate::custody::for_tenant(&st, &auth.tenant_id, &headers).await?;
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream");
    let lim = crate::throttle::for_tenant(&st, &auth.tenant_id).await?;
    let v = st
        .catalog
        .create_upload_video(
            &auth.tenant_id,
            &sealed_name,
            ctype,
            len as i64,
            VideoState::Uploading,
            crate::throttle::on(lim.concurrent_uploads),
        )
        .await?;
    let t = media::tenant_id(&auth.tenant_id)?;
    let reader =
        tokio_util::io::StreamReader::new(body.into_data_stream().map_err(std::io::Error::other));
    let mut body = Tolerant::new(reader);
    let piece = st.domain.jobs.piece_bytes();
    let (mut seq, mut at) = (0i64, 0u64);
    let res: ApiResult<()> = async {
        while let Some((o, n)) =
            media::seal_piece(&st.vault, &t, &mut body, piece.min(len - at), ck.as_deref()).await?
        {
            let p = Piece {
                seq,
                object_id: o.clone(),
                plain_offset: at as i64,
                plain_len: n as i64,
            };
            if let Err(e) = st.catalog.add_piece(&v.id, &p).await {
                media::drop_piece(&st.vault, &t, &o).await;
                return Err(e.into());
            }
            seq += 1;
            at += n;
        }
        Ok(())
    }
    .await;
    if res.is_err() || at != len || body.error.is_some() {
        let _ = media::shred_video(&st.catalog, &st.vault, &auth.tenant_id, &v.id).await;
        res?;
        return Err(ApiError::bad_request(
            "the body ended before Content-Length bytes arrived",
        ));
    }
    st.catalog
        .complete_video(&auth.tenant_id, &v.id, len as i64)
        .await?;
    bv_service::jobs::enqueue_probe(
        &st.catalog,
        &st.vault,
        &st.domain.jobs,
        &auth.tenant_id,
        &auth.principal_id,
        &v.id,
        ck.as_deref(),
    )
    .await;
    st.metrics.upload_bytes.fetch_add(len, Ordering::Relaxed);
    st.metrics.uploads_completed.fetch_add(1, Ordering::Relaxed);
    let detail = serde_json::json!({"bytes": len, "via": "simple"});
    auth.audit(
        &st,
        "video.upload",
        &format!("video:{}", v.id),
        "ok",
        detail,
    )
    .await;
    let v = st.catalog.video(&auth.tenant_id, &v.id).await?;
    let shown = crate::sealed::video_out(&st.vault, v.clone()).await?;
    let mut r = (StatusCode::CREATED, Json(shown)).into_response();
    r.headers_mut().insert(
        header::LOCATION,
        http::HeaderValue::from_str(&format!("{}/v1/videos/{}", st.public_url, v.id))
            .map_err(ApiError::internal)?,
    );
    Ok(r)
}

/// `GET|HEAD /v1/videos/{id}/content`: direct download with an API key.
#[utoipa::path(get, path = "/v1/videos/{id}/content",
    params(("Range" = Option<String>, Header)),
    // Served with the type it was uploaded with.
    responses(
        (status = 200, description = "Success", body = String, content_type = "*/*"),
        (status = 206, description = "Success", body = String, content_type = "*/*")))]
pub async fn content(
    AxState(st): AxState<State>,
    auth: Scoped<scope::VideosRead>,
    method: Method,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let v = st.catalog.video(&auth.tenant_id, &id).await?;
    if super::download::starts_a_download(&method, &headers) {
        auth.audit(
            &st,
            "video.download",
            &format!("video:{}", v.id),
            "ok",
            serde_json::json!({"via": "api"}),
        )
        .await;
    }
    super::download::send(&st, &v, &headers, method == Method::HEAD, &[]).await
}

/// `HEAD /v1/videos/{id}/content` (answered by [`content`]).
#[utoipa::path(head, path = "/v1/videos/{id}/content",
    responses((status = 200, description = "Success, no body")))]
#[allow(dead_code)]
pub(crate) fn head_content() {}

/// `POST /v1/videos/{id}/links` body.
#[derive(Debug, Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// Lifetime in seconds (default `serve.link_ttl_seconds`, at most `serve.link_max_ttl_seconds`).
    #[schema(minimum = 1)]
    ttl_seconds: Option<u64>,
    /// `GET` (default) or `HEAD`.
    #[schema(schema_with = link_method)]
    method: Option<String>,
}

/// `method` of a link: `GET`, `HEAD` or not given.
fn link_method() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some([Some("GET"), Some("HEAD"), None]))
        .build()
}

/// A signed link, as minted.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkOut {
    /// The URL to give away: no key needed until it expires.
    url: String,
    /// The method it opens: `GET` or `HEAD`.
    method: String,
    /// When it stops working, RFC 3339.
    expires_at: String,
}

/// `POST /v1/videos/{id}/links`: a signed URL for the video.
#[utoipa::path(post, path = "/v1/videos/{id}/links",
    request_body = Option<LinkRequest>,
    responses((status = 201, description = "Success", body = LinkOut)))]
pub async fn mint_link(
    AxState(st): AxState<State>,
    auth: Scoped<scope::VideosRead>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let mint = crate::throttle::AddressAction::MintLink;
    crate::throttle::admit_address(&st, mint, &auth.origin.source).await?;
    let req: LinkRequest = if body.is_empty() {
        LinkRequest::default()
    } else {
        crate::error::parse_json(&body)?
    };
    let v = st.catalog.video(&auth.tenant_id, &id).await?;
    let ttl = req.ttl_seconds.unwrap_or(st.cfg.link_ttl_seconds);
    if ttl == 0 || ttl > st.cfg.link_max_ttl_seconds {
        return Err(ApiError::bad_request(format!(
            "ttl_seconds must be 1..={}",
            st.cfg.link_max_ttl_seconds
        )));
    }
    let method = req
        .method
        .unwrap_or_else(|| "GET".into())
        .to_ascii_uppercase();
    if method != "GET" && method != "HEAD" {
        return Err(ApiError::bad_request("method must be GET or HEAD"));
    }
    let expires = crate::time::unix_now() + ttl;
    let q = st.links.sign(&method, &v.tenant_id, &v.id, expires).await?;
    let detail = serde_json::json!({"method": method, "ttl_seconds": ttl});
    auth.audit(&st, "link.mint", &format!("video:{}", v.id), "ok", detail)
        .await;
    let url = format!("{}/v1/dl/{}?{q}", st.public_url, v.id);
    Ok((
        StatusCode::CREATED,
        Json(LinkOut {
            url,
            method,
            expires_at: crate::time::rfc3339_ms(expires as i64 * 1000),
        }),
    )
        .into_response())
}
