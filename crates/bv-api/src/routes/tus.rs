//! `/v1/uploads`: the tus 1.0.0 resumable upload protocol (core, creation,
//! creation-with-upload, termination, expiration).
//!
//! Bytes are sealed into vault pieces as they arrive; the offset advances
//! only when a piece is durable, so after a dropped connection or a server
//! restart `HEAD` reports exactly what is safely stored and the client
//! resumes there. A lease in the catalog keeps two requests (or two servers)
//! from appending to one upload at once.

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::{Path, State as AxState};
use axum::response::{IntoResponse, Response};
use bv_catalog::uploads::NewUpload;
use futures::TryStreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Scoped, scope};
use crate::media::{self, Tolerant};
use crate::state::State;

const VERSION: &str = "1.0.0";
const EXTENSIONS: &str = "creation,creation-with-upload,termination,expiration";
const OFFSET_TYPE: &str = "application/offset+octet-stream";
/// The header that tells a client which video its upload became.
pub const VIDEO_ID: &str = "bv-video-id";

fn h(name: &'static str, v: impl ToString) -> (HeaderName, HeaderValue) {
    (
        HeaderName::from_static(name),
        HeaderValue::from_str(&v.to_string()).unwrap_or(HeaderValue::from_static("")),
    )
}

fn reply(status: StatusCode, headers: Vec<(HeaderName, HeaderValue)>) -> Response {
    let mut r = status.into_response();
    r.headers_mut()
        .insert("tus-resumable", HeaderValue::from_static(VERSION));
    for (k, v) in headers {
        r.headers_mut().insert(k, v);
    }
    r
}

fn tus_error(status: StatusCode, code: &'static str, msg: impl Into<String>) -> ApiError {
    ApiError::new(status, code, msg)
}

fn check_version(headers: &HeaderMap) -> ApiResult<()> {
    match headers.get("tus-resumable").and_then(|v| v.to_str().ok()) {
        Some(VERSION) => Ok(()),
        _ => Err(tus_error(
            StatusCode::PRECONDITION_FAILED,
            "tus_version_unsupported",
            "Tus-Resumable: 1.0.0 is required",
        )),
    }
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<Result<u64, ()>> {
    headers.get(name).map(|v| {
        v.to_str()
            .ok()
            .and_then(crate::tus_wire::byte_count)
            .ok_or(())
    })
}

/// `Upload-Metadata` → (file name, content type).
fn metadata(raw: &str) -> ApiResult<(String, String)> {
    crate::tus_wire::metadata(raw).map_err(ApiError::bad_request)
}

/// The tus protocol version every tus request but OPTIONS carries.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) enum TusVersion {
    /// tus 1.0.0.
    #[schema(rename = "1.0.0")]
    V1,
}

/// `OPTIONS /v1/uploads`: what this server supports.
#[utoipa::path(options, path = "/v1/uploads", responses((status = 204, description = "Success, no body")))]
pub async fn options(AxState(st): AxState<State>) -> Response {
    reply(
        StatusCode::NO_CONTENT,
        vec![
            h("tus-version", VERSION),
            h("tus-extension", EXTENSIONS),
            h("tus-max-size", (st.cfg.default_max_upload_mib as u64) << 20),
        ],
    )
}

/// `POST /v1/uploads`: creates an upload (and takes a first chunk if sent).
#[utoipa::path(post, path = "/v1/uploads",
    params(
        ("Tus-Resumable" = inline(TusVersion), Header),
        ("Upload-Length" = u64, Header),
        // tus: comma-separated `key base64(value)` pairs; the decoded file
        // name is checked afterwards (1-255 characters, no control characters).
        ("Upload-Metadata" = Option<String>, Header,
            pattern = "^([^ ,]+( [A-Za-z0-9+/]*={0,2})?(,[^ ,]+( [A-Za-z0-9+/]*={0,2})?)*)?$")),
    responses((status = 201, description = "Success, no body")))]
pub async fn create(
    AxState(st): AxState<State>,
    auth: Scoped<scope::VideosWrite>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    check_version(&headers)?;
    if headers.contains_key("upload-defer-length") {
        return Err(ApiError::bad_request(
            "Upload-Defer-Length is not supported; send Upload-Length",
        ));
    }
    let length = match header_u64(&headers, "upload-length") {
        Some(Ok(n)) => n,
        _ => {
            return Err(ApiError::bad_request(
                "Upload-Length (a byte count) is required",
            ));
        }
    };
    // A header that is there but not visible ASCII is an error, not absent.
    let raw_meta = match headers.get("upload-metadata").map(|v| v.to_str()) {
        None => "",
        Some(Ok(v)) => v,
        Some(Err(_)) => {
            return Err(ApiError::bad_request(
                "Upload-Metadata must be visible ASCII (values are base64)",
            ));
        }
    };
    let (name, ctype) = metadata(raw_meta)?;
    if raw_meta.len() > 4096 {
        return Err(ApiError::bad_request(
            "Upload-Metadata is longer than 4096 bytes",
        ));
    }
    bv_catalog::videos::check_file_name(&name)?;
    let ck = crate::custody::for_tenant(&st, &auth.tenant_id, &headers).await?;
    // The file name (also inside the raw header) goes into the catalog sealed.
    let tenant = &auth.tenant_id;
    let sealed_name =
        crate::sealed::seal(&st.vault, tenant, crate::sealed::VIDEO_NAME, &name).await?;
    let sealed_meta = if raw_meta.is_empty() {
        String::new()
    } else {
        crate::sealed::seal(&st.vault, tenant, crate::sealed::UPLOAD_METADATA, raw_meta).await?
    };
    let lim = crate::throttle::for_tenant(&st, &auth.tenant_id).await?;
    let (u, _) = st
        .catalog
        .create_upload(&NewUpload {
            tenant_id: &auth.tenant_id,
            principal_id: &auth.principal_id,
            name: &sealed_name,
            content_type: &ctype,
            length: length as i64,
            metadata: &sealed_meta,
            ttl_ms: (st.domain.retention.upload_ttl_seconds * 1000) as i64,
            max_uploading: crate::throttle::on(lim.concurrent_uploads),
        })
        .await?;
    let location = format!("{}/v1/uploads/{}", st.public_url, u.id);
    let mut hs = vec![
        (
            header::LOCATION,
            HeaderValue::from_str(&location).map_err(ApiError::internal)?,
        ),
        h("upload-expires", crate::time::http_date(u.expires_ms)),
        h(VIDEO_ID, &u.video_id),
    ];
    let with_data = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == OFFSET_TYPE.as_bytes());
    if with_data {
        let offset = append(&st, &auth, &u.id, 0, body, ck.as_deref()).await?;
        hs.push(h("upload-offset", offset));
    } else if length == 0 {
        finish_if_complete(&st, &auth, &u.id, ck.as_deref()).await?;
    }
    Ok(reply(StatusCode::CREATED, hs))
}

/// `HEAD /v1/uploads/{id}`: how much is stored.
#[utoipa::path(head, path = "/v1/uploads/{id}",
    params(("Tus-Resumable" = inline(TusVersion), Header)),
    responses((status = 200, description = "Success, no body")))]
pub async fn head(
    AxState(st): AxState<State>,
    auth: Scoped<scope::VideosWrite>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    check_version(&headers)?;
    let u = live_upload(&st, &auth, &id).await?;
    let mut hs = vec![
        h("upload-offset", u.received),
        h("upload-length", u.length),
        h("upload-expires", crate::time::http_date(u.expires_ms)),
        h(VIDEO_ID, &u.video_id),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ];
    let meta = if u.metadata.is_empty() {
        String::new()
    } else {
        crate::sealed::open(
            &st.vault,
            &auth.tenant_id,
            crate::sealed::UPLOAD_METADATA,
            &u.metadata,
        )
        .await?
    };
    if !meta.is_empty()
        && let Ok(v) = HeaderValue::from_str(&meta)
    {
        hs.push((HeaderName::from_static("upload-metadata"), v));
    }
    Ok(reply(StatusCode::OK, hs))
}

/// `PATCH /v1/uploads/{id}`: appends bytes at `Upload-Offset`.
#[utoipa::path(patch, path = "/v1/uploads/{id}",
    params(("Tus-Resumable" = inline(TusVersion), Header), ("Upload-Offset" = u64, Header)),
    request_body(content = super::openapi::Binary, content_type = "application/offset+octet-stream"),
    responses((status = 204, description = "Success, no body")))]
pub async fn patch(
    AxState(st): AxState<State>,
    auth: Scoped<scope::VideosWrite>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    check_version(&headers)?;
    if headers
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes() != OFFSET_TYPE.as_bytes())
    {
        return Err(tus_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "tus_content_type",
            "PATCH needs Content-Type: application/offset+octet-stream",
        ));
    }
    let offset = match header_u64(&headers, "upload-offset") {
        Some(Ok(n)) => n,
        _ => {
            return Err(ApiError::bad_request(
                "Upload-Offset (a byte count) is required",
            ));
        }
    };
    let u = live_upload(&st, &auth, &id).await?;
    let ck = crate::custody::for_tenant(&st, &auth.tenant_id, &headers).await?;
    // The body is taken in a task of its own: when the client goes away
    // mid-body the server drops this handler, and with it `gone`, which ends
    // the body there; the task still seals and records what arrived of the
    // current piece, then releases the lease. So the upload resumes at the
    // byte the server holds, whatever the piece size, not at the last piece
    // boundary, and a client that vanishes without closing its stream does
    // not keep the upload locked.
    let (gone, dropped) = tokio::sync::oneshot::channel::<()>();
    let body = Body::from_stream(futures::StreamExt::take_until(
        body.into_data_stream(),
        dropped,
    ));
    let (st2, auth2, upload) = (State::clone(&st), auth.0.clone(), u.id.clone());
    let writing =
        tokio::spawn(
            async move { append(&st2, &auth2, &upload, offset, body, ck.as_deref()).await },
        );
    let new = writing.await.map_err(ApiError::internal)??;
    drop(gone);
    Ok(reply(
        StatusCode::NO_CONTENT,
        vec![
            h("upload-offset", new),
            h("upload-expires", crate::time::http_date(u.expires_ms)),
            h(VIDEO_ID, &u.video_id),
        ],
    ))
}

/// `DELETE /v1/uploads/{id}`: abandons an upload; what it stored is shredded.
#[utoipa::path(delete, path = "/v1/uploads/{id}",
    params(("Tus-Resumable" = inline(TusVersion), Header)),
    responses((status = 204, description = "Success, no body")))]
pub async fn terminate(
    AxState(st): AxState<State>,
    auth: Scoped<scope::VideosWrite>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    check_version(&headers)?;
    let u = st.catalog.upload(&auth.tenant_id, &id).await?;
    media::shred_video(&st.catalog, &st.vault, &auth.tenant_id, &u.video_id).await?;
    Ok(reply(StatusCode::NO_CONTENT, vec![]))
}

/// The upload, unless it expired (then it is shredded and gone: 404 like any unknown id... but
/// tus asks for 410 Gone, which we answer only to its owner).
async fn live_upload(st: &State, auth: &Auth, id: &str) -> ApiResult<bv_catalog::Upload> {
    let u = st.catalog.upload(&auth.tenant_id, id).await?;
    if u.expires_ms <= bv_catalog::now_ms() {
        media::shred_video(&st.catalog, &st.vault, &auth.tenant_id, &u.video_id).await?;
        return Err(tus_error(
            StatusCode::GONE,
            "upload_expired",
            "this upload expired and was removed",
        ));
    }
    Ok(u)
}

/// How long an upload's lease lasts without renewal: after a crash, another
/// server may take the upload over this long after the last renewal (the
/// same server, restarted, takes it over at once: its instance id persists).
const LEASE_MS: i64 = 30_000;

/// This process's hold on an upload while a request writes to it: its place
/// in the active set and, once taken, the catalog lease with the task that
/// renews it. Dropping it — the request ended, or its future was dropped
/// because an HTTP/2 client vanished mid-body — leaves the set, stops the
/// renewals and releases the lease, so another server can take the upload
/// over at once instead of seeing it locked for as long as this one runs.
struct Writer {
    st: State,
    id: String,
    /// The lease owner and its renewal task, once the lease is held.
    lease: Option<(String, tokio::task::AbortHandle)>,
}

impl Writer {
    /// Renews the lease every third of its length until the upload is gone
    /// or another owner holds it (then there is nothing left to renew).
    fn hold(&mut self, tenant: &str, owner: &str) {
        let (cat, t, i, o) = (
            self.st.catalog.clone(),
            tenant.to_string(),
            self.id.clone(),
            owner.to_string(),
        );
        let renew = tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(LEASE_MS as u64 / 3)).await;
                match cat.lock_upload(&t, &i, &o, LEASE_MS).await {
                    Ok(_) => {}
                    Err(
                        bv_catalog::CatalogError::NotFound | bv_catalog::CatalogError::Conflict(_),
                    ) => {
                        break;
                    }
                    Err(e) => tracing::warn!(error = %e, "renewing an upload lease"),
                }
            }
        });
        self.lease = Some((owner.to_string(), renew.abort_handle()));
    }

    /// Releases the lease now (the request's normal end). The lease is
    /// forgotten only once unlocked: dropped half-way, `Drop` unlocks it.
    async fn release(mut self) {
        if let Some((owner, renew)) = &self.lease {
            renew.abort();
            let _ = self.st.catalog.unlock_upload(&self.id, owner).await;
        }
        self.lease = None;
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let leave = |st: &State, id: &str| {
            st.active_uploads.lock().expect("not poisoned").remove(id);
        };
        let Some((owner, renew)) = self.lease.take() else {
            leave(&self.st, &self.id);
            return;
        };
        renew.abort();
        // Dropped without `release`: unlock from a task of its own (a
        // destructor cannot wait), and only then leave the active set, so a
        // retry reaching this server cannot take the lease just before the
        // late unlock clears it. No runtime means the process is ending; the
        // lease then lapses by itself.
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let (st, id) = (State::clone(&self.st), self.id.clone());
                rt.spawn(async move {
                    let _ = st.catalog.unlock_upload(&id, &owner).await;
                    leave(&st, &id);
                });
            }
            Err(_) => leave(&self.st, &self.id),
        }
    }
}

/// Streams `body` into the upload at `offset` under its lease; returns the new offset.
async fn append(
    st: &State,
    auth: &Auth,
    id: &str,
    offset: u64,
    body: Body,
    ck: Option<&bv_vault::CustomerKey>,
) -> ApiResult<u64> {
    let locked = || {
        tus_error(
            StatusCode::LOCKED,
            "upload_locked",
            "another request is writing to this upload; retry when it ends",
        )
    };
    // One writer per upload in this process, and one process per upload (the lease).
    if !st
        .active_uploads
        .lock()
        .expect("not poisoned")
        .insert(id.to_string())
    {
        return Err(locked());
    }
    let mut writer = Writer {
        st: State::clone(st),
        id: id.to_string(),
        lease: None,
    };
    let owner = st.instance.clone();
    let u = st
        .catalog
        .lock_upload(&auth.tenant_id, id, &owner, LEASE_MS)
        .await
        .map_err(|e| match e {
            bv_catalog::CatalogError::Conflict(_) => locked(),
            e => e.into(),
        })?;
    writer.hold(&auth.tenant_id, &owner);
    let result = async {
        if offset != u.received as u64 {
            return Err(tus_error(
                StatusCode::CONFLICT,
                "upload_offset_mismatch",
                format!(
                    "Upload-Offset {offset} does not match the stored offset {}",
                    u.received
                ),
            ));
        }
        let t = media::tenant_id(&auth.tenant_id)?;
        let reader = tokio_util::io::StreamReader::new(
            body.into_data_stream().map_err(std::io::Error::other),
        );
        let mut body = Tolerant::new(reader);
        let mut at = u.received;
        let piece = st.domain.jobs.piece_bytes();
        let end = u.length as u64;
        while let Some((o, n)) =
            media::seal_piece(&st.vault, &t, &mut body, piece.min(end - at as u64), ck).await?
        {
            match st
                .catalog
                .append_upload_piece(&u, &owner, at, &o, n as i64)
                .await
            {
                Ok(new) => at = new,
                Err(e) => {
                    media::drop_piece(&st.vault, &t, &o).await;
                    return Err(e.into());
                }
            }
        }
        let stored = at as u64 - u.received as u64;
        st.metrics.upload_bytes.fetch_add(stored, Ordering::Relaxed);
        let new = u.received as u64 + stored;
        if new == u.length as u64 {
            finish_if_complete(st, auth, &u.id, ck).await?;
            // Anything beyond the announced length is a client error, but what fit is kept.
            let mut extra = [0u8; 1];
            if body.error.is_none()
                && tokio::io::AsyncReadExt::read(&mut body, &mut extra)
                    .await
                    .unwrap_or(0)
                    > 0
            {
                return Err(ApiError::bad_request(
                    "the body is longer than Upload-Length",
                ));
            }
        }
        if let Some(e) = body.error {
            tracing::info!(error = %e, stored, "upload request ended early; the client can resume");
        }
        Ok(new)
    }
    .await;
    writer.release().await;
    result
}

async fn finish_if_complete(
    st: &State,
    auth: &Auth,
    id: &str,
    ck: Option<&bv_vault::CustomerKey>,
) -> ApiResult<()> {
    let u = st.catalog.upload(&auth.tenant_id, id).await?;
    if u.received == u.length {
        st.catalog.finish_upload(&u).await?;
        bv_service::jobs::enqueue_probe(
            &st.catalog,
            &st.vault,
            &st.domain.jobs,
            &u.tenant_id,
            &u.principal_id,
            &u.video_id,
            ck,
        )
        .await;
        st.metrics.uploads_completed.fetch_add(1, Ordering::Relaxed);
        let detail = serde_json::json!({"bytes": u.length, "via": "tus"});
        auth.audit(
            st,
            "video.upload",
            &format!("video:{}", u.video_id),
            "ok",
            detail,
        )
        .await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn metadata_parsing() {
        assert_eq!(
            super::metadata("filename Y2xpcC5tcDQ=,filetype dmlkZW8vbXA0,is_confidential").unwrap(),
            ("clip.mp4".to_string(), "video/mp4".to_string())
        );
        assert_eq!(super::metadata("").unwrap().0, "upload");
        assert!(super::metadata("filename %%%").is_err());
    }
}
