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

/// How old a sealed object no video refers to must be before it is shredded
/// as an orphan. A piece is recorded the moment its put completes, so only
/// a put still running can be unreferenced and legitimate, and no put lasts
/// a day (uploads are cut into pieces and bodies have a minimum rate).
pub const ORPHAN_GRACE_SECONDS: u64 = 24 * 3600;

/// What one reconciliation of the vault against the catalog removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reconciled {
    /// Sealed objects no video refers to, shredded (key, then blob).
    pub orphan_objects: usize,
    /// Puts that never completed: their keys and leftovers removed.
    pub abandoned_puts: usize,
    /// Blobs without any key (unreadable), removed.
    pub keyless_blobs: usize,
}

/// Reconciles the vault with the catalog at time `now` (ms): every sealed
/// object must belong to a video. What a crash between sealing a piece and
/// recording it left, or a delete that raced an upload's last piece (the
/// outside review's finding 12), is shredded once older than
/// [`ORPHAN_GRACE_SECONDS`], and written to its tenant's audit log; then
/// the vault's own sweep removes interrupted puts and keyless blobs.
pub async fn reconcile(catalog: &Catalog, vault: &Vault, now: i64) -> ServiceResult<Reconciled> {
    let mut r = Reconciled::default();
    let cutoff = (now / 1000).max(0) as u64;
    let cutoff = cutoff.saturating_sub(ORPHAN_GRACE_SECONDS);
    let mut after = String::new();
    loop {
        let page = catalog.unreferenced_objects(&after, 500).await?;
        let Some((last, _)) = page.last() else {
            break;
        };
        after = last.clone();
        for (object, tenant) in page {
            let o: bv_vault::ObjectId = object
                .parse()
                .map_err(crate::error::ServiceError::internal)?;
            let Some(rec) = vault.keys().store().object(&o).await? else {
                continue;
            };
            // Only a video's pieces must belong to a video (a tenant's field
            // key, an operator's `bv vault put` never do); pending puts are
            // the vault sweep's (below); young ones may be in flight.
            if rec.purpose.as_deref() != Some(bv_vault::keystore::PIECE)
                || !matches!(rec.state, bv_vault::keystore::ObjectState::Committed { .. })
                || rec.created > cutoff
            {
                continue;
            }
            let t = media::tenant_id(&tenant)?;
            match vault.delete(&t, &o).await {
                Ok(()) | Err(bv_vault::VaultError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
            let detail = serde_json::json!({
                "rule": "orphan_object", "sealed_at": crate::time::rfc3339_ms(rec.created as i64 * 1000),
            });
            audit(
                catalog,
                vault,
                &tenant,
                "object.shredded",
                &format!("object:{object}"),
                detail,
            )
            .await;
            r.orphan_objects += 1;
        }
    }
    let v = vault
        .sweep(std::time::Duration::from_secs(ORPHAN_GRACE_SECONDS))
        .await?;
    r.abandoned_puts = v.abandoned_puts;
    r.keyless_blobs = v.orphan_blobs;
    if r != Reconciled::default() {
        media::scrub(catalog).await;
        tracing::info!(
            orphan_objects = r.orphan_objects,
            abandoned_puts = r.abandoned_puts,
            keyless_blobs = r.keyless_blobs,
            "reconcile: sealed objects no video refers to shredded"
        );
    }
    Ok(r)
}

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
