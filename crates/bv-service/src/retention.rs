//! The retention sweeper: finishes deletes a crash interrupted, shreds
//! abandoned uploads and deletes every video whose retention ran out.
//!
//! Every deletion is a crypto-shred (the video turns invisible first, so its
//! links die, then each piece's wrapped key and blob go) and is written to
//! the tenant's audit log with the rule that caused it. `bv serve` runs it
//! every `retention.sweep_seconds`; `bv admin retention run` runs it on demand.

use bv_catalog::Catalog;
use bv_vault::Vault;
use serde::Serialize;

use crate::error::ServiceResult;
use crate::media;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Swept {
    /// Deletes a crash had interrupted, finished.
    pub finished: usize,
    /// Unfinished uploads past their lifetime, shredded.
    pub abandoned: usize,
    /// Videos whose retention ran out, shredded.
    pub expired: usize,
}

const ACTOR: &str = "system:retention";

async fn audit(
    catalog: &Catalog,
    vault: &Vault,
    tenant: &str,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) {
    let e = crate::audit::Event {
        tenant: Some(tenant),
        actor: ACTOR,
        action,
        target,
        outcome: "ok",
    };
    crate::audit::record(catalog, vault, &Default::default(), e, detail).await;
}

/// One sweep at time `now` (ms).
pub async fn sweep(catalog: &Catalog, vault: &Vault, now: i64) -> ServiceResult<Swept> {
    let mut s = Swept::default();
    for (t, v, pieces) in catalog.videos_being_deleted().await? {
        media::finish_shred(catalog, vault, &t, &v, &pieces).await?;
        s.finished += 1;
    }
    for u in catalog.expired_uploads(now).await? {
        match media::shred_video(catalog, vault, &u.tenant_id, &u.video_id).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        }
        let detail = serde_json::json!({
            "rule": "abandoned_upload", "upload": u.id, "received": u.received, "length": u.length,
        });
        audit(
            catalog,
            vault,
            &u.tenant_id,
            "video.expired",
            &format!("video:{}", u.video_id),
            detail,
        )
        .await;
        s.abandoned += 1;
    }
    loop {
        let due = catalog.due_videos(now, 500).await?;
        if due.is_empty() {
            break;
        }
        for d in &due {
            match media::shred_video(catalog, vault, &d.tenant_id, &d.video_id).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            }
            let detail = serde_json::json!({
                "rule": d.retention, "due_at": crate::time::rfc3339_ms(d.due_ms),
            });
            audit(
                catalog,
                vault,
                &d.tenant_id,
                "video.expired",
                &format!("video:{}", d.video_id),
                detail,
            )
            .await;
            s.expired += 1;
        }
    }
    // Housekeeping that rides along: rate buckets whose time has passed
    // allow what a missing row allows.
    catalog.purge_rate_buckets().await?;
    if s != Swept::default() {
        tracing::info!(
            finished = s.finished,
            abandoned = s.abandoned,
            expired = s.expired,
            "sweep: interrupted deletes finished, abandoned uploads and expired videos shredded"
        );
    }
    Ok(s)
}
