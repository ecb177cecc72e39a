//! Video bytes at the HTTP edge: a response body that streams a video's
//! pieces out of the vault (whole or by range), verified as they go. How
//! bytes are sealed in and shredded is the domain's (`bv_service::media`).

use axum::body::Body;
use bv_catalog::Piece;
use bv_vault::{ObjectId, TenantId, Vault};
use tokio::io::AsyncWriteExt;

pub use bv_service::media::{Tolerant, drop_piece, seal_piece, shred_video, tenant_id};

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
