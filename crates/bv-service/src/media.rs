//! Video bytes: streamed into sealed vault pieces on the way in (uploads,
//! and a job's output as it leaves the sandbox), crypto-shredded on delete.
//!
//! Only bytes move here; nothing is parsed as media.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bv_catalog::{Catalog, Piece};
use bv_vault::{ObjectId, TenantId, Vault, VaultError};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use crate::error::{ServiceError, ServiceResult};

/// Parses a catalog id as a vault id (both are 32 hex digits).
pub fn tenant_id(s: &str) -> ServiceResult<TenantId> {
    s.parse().map_err(ServiceError::internal)
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
) -> ServiceResult<Option<(String, u64)>> {
    if max == 0 || body.error.is_some() {
        return Ok(None);
    }
    let mut first = vec![0u8; (64 * 1024u64).min(max) as usize];
    // Tolerant turns the stream's own failures into an end; what is left is ours.
    let n = body
        .read(&mut first)
        .await
        .map_err(|e| ServiceError::Vault(VaultError::Io(e)))?;
    if n == 0 {
        return Ok(None);
    }
    let src = (&first[..n]).chain((&mut *body).take(max - n as u64));
    let info = vault.put_piece(tenant, src, ck).await?;
    Ok(Some((info.object, info.plain_len)))
}

/// Shreds a piece that was sealed but could not be recorded.
pub async fn drop_piece(vault: &Vault, tenant: &TenantId, object: &str) {
    if let Ok(o) = object.parse::<ObjectId>() {
        let _ = vault.delete(tenant, &o).await;
    }
}

/// Crypto-shreds a video: invisible first (links die), then every piece's
/// key and blob, then the rows.
pub async fn shred_video(
    catalog: &Catalog,
    vault: &Vault,
    tenant: &str,
    video: &str,
) -> ServiceResult<()> {
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
) -> ServiceResult<()> {
    let t = tenant_id(tenant)?;
    for p in pieces {
        let o: ObjectId = p.object_id.parse().map_err(ServiceError::internal)?;
        match vault.delete(&t, &o).await {
            Ok(()) | Err(VaultError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    catalog.purge_video(tenant, video).await?;
    scrub(catalog).await;
    Ok(())
}

/// Leaves no copy of a just-deleted wrapped key in the catalog's files
/// (SQLite: its write-ahead log emptied into the zeroed database file;
/// `bv_catalog::Catalog::scrub`). A scrub that could not finish is logged:
/// the next one finishes it.
pub async fn scrub(catalog: &Catalog) {
    match catalog.scrub().await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            "the catalog's write-ahead log is still in use; deleted keys leave it at the next scrub"
        ),
        Err(e) => tracing::warn!(error = %e, "could not scrub the catalog after a shred"),
    }
}
