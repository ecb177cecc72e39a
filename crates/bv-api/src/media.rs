//! Video bytes: streamed into sealed vault pieces on the way in, opened and
//! streamed out (whole or by range) on the way out, crypto-shredded on delete.
//!
//! The API process only moves bytes here; it never parses media.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use bv_catalog::{Catalog, Piece};
use bv_vault::{ObjectId, TenantId, Vault};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};

use crate::error::{ApiError, ApiResult};

/// Parses a catalog id as a vault id (both are 32 hex digits).
pub fn tenant_id(s: &str) -> ApiResult<TenantId> {
    s.parse().map_err(ApiError::internal)
}

/// A reader that turns a failure of the client's stream into an end of
/// stream, keeping the error: whatever arrived before a dropped connection
/// is still sealed and counted (tus resumes from there).
pub struct Tolerant<R> {
    inner: R,
    /// The error that ended the stream, if any.
    pub error: Option<io::Error>,
}

impl<R> Tolerant<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self { inner, error: None }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Tolerant<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.error.is_some() {
            return Poll::Ready(Ok(()));
        }
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Err(e)) => {
                self.error = Some(e);
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

/// Seals the next at most `max` bytes of `body` into one vault object.
/// Returns `None` when the body has ended (or failed: the failure is left in
/// `body.error`) before any byte; never makes an empty object.
pub async fn seal_piece<R: AsyncRead + Unpin>(
    vault: &Vault,
    tenant: &TenantId,
    body: &mut Tolerant<R>,
    max: u64,
    ck: Option<&bv_vault::CustomerKey>,
) -> ApiResult<Option<(String, u64)>> {
    if max == 0 || body.error.is_some() {
        return Ok(None);
    }
    let mut first = vec![0u8; (64 * 1024u64).min(max) as usize];
    let n = body.read(&mut first).await.map_err(ApiError::internal)?;
    if n == 0 {
        return Ok(None);
    }
    let src = (&first[..n]).chain((&mut *body).take(max - n as u64));
    let info = vault.put_for(tenant, src, ck).await?;
    Ok(Some((info.object, info.plain_len)))
}

/// Shreds a piece that was sealed but could not be recorded.
pub async fn drop_piece(vault: &Vault, tenant: &TenantId, object: &str) {
    if let Ok(o) = object.parse::<ObjectId>() {
        let _ = vault.delete(tenant, &o).await;
    }
}

/// A response body with bytes `start..end` of a video made of `pieces`.
/// Every byte sent has been verified; on a failure the body stops short (the
/// client sees a truncated transfer, never unverified bytes).
pub fn body_for_range(
    vault: std::sync::Arc<Vault>,
    tenant: TenantId,
    pieces: Vec<Piece>,
    start: u64,
    end: u64,
    ck: Option<std::sync::Arc<bv_vault::CustomerKey>>,
    on_sent: impl Fn(u64) + Send + 'static,
) -> Body {
    let (mut tx, rx) = tokio::io::duplex(256 * 1024);
    tokio::spawn(async move {
        for p in pieces {
            let (p_start, p_end) = (p.plain_offset as u64, (p.plain_offset + p.plain_len) as u64);
            if p_end <= start || p_start >= end {
                continue;
            }
            let Ok(o) = p.object_id.parse::<ObjectId>() else {
                tracing::error!("piece with a malformed object id");
                return;
            };
            let (a, b) = (start.max(p_start) - p_start, end.min(p_end) - p_start);
            let res = if a == 0 && b == p.plain_len as u64 {
                vault
                    .get_for(&tenant, &o, &mut tx, ck.as_deref())
                    .await
                    .map(&on_sent)
            } else {
                // Part of a piece: open only the segments it needs, a MiB at a time.
                let mut at = a;
                let mut r = Ok(());
                while at < b {
                    let to = (at + (1 << 20)).min(b);
                    match vault
                        .get_range_for(&tenant, &o, at..to, ck.as_deref())
                        .await
                    {
                        Ok(bytes) => {
                            if tx.write_all(&bytes).await.is_err() {
                                return;
                            }
                            on_sent(bytes.len() as u64);
                        }
                        Err(e) => {
                            r = Err(e);
                            break;
                        }
                    }
                    at = to;
                }
                r
            };
            if let Err(e) = res {
                // A client that went away shows up here as a write error: not worth a warning.
                if !matches!(&e, bv_vault::VaultError::Io(_)) {
                    tracing::error!(error = %e, code = e.code(), "download stopped");
                }
                return;
            }
        }
        let _ = tx.shutdown().await;
    });
    Body::from_stream(tokio_util::io::ReaderStream::with_capacity(rx, 256 * 1024))
}

/// Crypto-shreds a video: invisible first (links die), then every piece's
/// key and blob, then the rows.
pub async fn shred_video(
    catalog: &Catalog,
    vault: &Vault,
    tenant: &str,
    video: &str,
) -> ApiResult<()> {
    let pieces = catalog.begin_delete_video(tenant, video).await?;
    finish_shred(catalog, vault, tenant, video, &pieces).await
}

/// The part of [`shred_video`] after the video became invisible (also run
/// at start-up for deletes a crash interrupted).
pub async fn finish_shred(
    catalog: &Catalog,
    vault: &Vault,
    tenant: &str,
    video: &str,
    pieces: &[Piece],
) -> ApiResult<()> {
    let t = tenant_id(tenant)?;
    for p in pieces {
        let o: ObjectId = p.object_id.parse().map_err(ApiError::internal)?;
        match vault.delete(&t, &o).await {
            Ok(()) | Err(bv_vault::VaultError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    catalog.purge_video(tenant, video).await?;
    Ok(())
}
