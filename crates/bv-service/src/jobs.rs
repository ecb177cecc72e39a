//! Jobs on the queue: the settings a row carries ([`bv_job::JobKind`]),
//! its price, and the payload MAC that workers check.
//!
//! The MAC is made here, with the vault's `queue` service key, over
//! everything that decides what runs (see `bv_catalog::jobs::payload_bytes`);
//! workers refuse any row that does not match it ([`authentic`]). Prices are
//! in credits per output megapixel-frame (`billing.price_per_megapixel_frame`).

use bv_catalog::{Catalog, Job, JobSegment, NewJob, Video};
use bv_job::JobKind;
use bv_vault::{CustomerKey, Vault};

use crate::config::{BillingConfig, JobsConfig};
use crate::error::{ServiceError, ServiceResult};

/// The service-key purpose of job payload MACs.
pub const QUEUE_PURPOSE: &str = "queue";

/// A job to put on the queue.
#[derive(Debug, Clone, Copy)]
pub struct Submission<'a> {
    /// Its tenant.
    pub tenant: &'a str,
    /// Who asked.
    pub principal: &'a str,
    /// The input video.
    pub video: &'a str,
    /// What it does.
    pub kind: &'a JobKind,
    /// Credits reserved now, captured on success.
    pub price: i64,
    /// Higher runs first.
    pub priority: i64,
    /// A client's key that makes a retried submission return the same job.
    pub idempotency_key: Option<&'a str>,
    /// The tenant's own key, when it holds one: sealed into the job for its life.
    pub customer_key: Option<&'a CustomerKey>,
    /// The tenant's limit on jobs queued or running at once, if any.
    pub max_active: Option<i64>,
}

/// Queues a job with its MAC. Returns the job and whether it is new: a
/// repeated idempotency key answers the job it made before.
pub async fn enqueue(
    catalog: &Catalog,
    vault: &Vault,
    cfg: &JobsConfig,
    s: Submission<'_>,
) -> ServiceResult<(Job, bool)> {
    let id = bv_catalog::new_id()?;
    // A tenant's own key travels with its job, sealed, and is cleared when the job ends.
    let custody = match s.customer_key {
        Some(k) => Some(vault.seal_custody(&id, k).await?),
        None => None,
    };
    let settings = s.kind.to_stored().map_err(ServiceError::internal)?;
    let payload = bv_catalog::jobs::payload_bytes(&id, s.tenant, s.video, &settings, s.price);
    let (v, tag) = vault.mac(QUEUE_PURPOSE, &payload).await?;
    let job = catalog
        .submit_job(&NewJob {
            id: &id,
            tenant_id: s.tenant,
            principal_id: s.principal,
            input_video_id: s.video,
            preset: &settings,
            price: s.price,
            payload_mac: &bv_crypto::secret::hex(&tag),
            mac_key_version: i64::from(v),
            priority: s.priority,
            max_attempts: cfg.max_attempts,
            idempotency_key: s.idempotency_key,
            custody: custody.as_deref(),
            max_active: s.max_active,
        })
        .await?;
    let made = job.id == id;
    Ok((job, made))
}

/// Queues the probe of a freshly uploaded video (free, ahead of other work).
/// A failure is logged: the upload itself has succeeded.
pub async fn enqueue_probe(
    catalog: &Catalog,
    vault: &Vault,
    cfg: &JobsConfig,
    tenant: &str,
    principal: &str,
    video: &str,
    customer_key: Option<&CustomerKey>,
) {
    let s = Submission {
        tenant,
        principal,
        video,
        kind: &JobKind::Probe,
        price: 0,
        priority: 100,
        idempotency_key: None,
        customer_key,
        max_active: None,
    };
    if let Err(e) = enqueue(catalog, vault, cfg, s).await {
        tracing::error!(error = %e, code = e.code(), "could not queue the probe of an upload");
    }
}

/// Credits for enhancing `v` by `scale`: output megapixels × frames × price, rounded up.
/// A video without a frame count (probed by a version that recorded 0 where
/// the container stated none) has no price until it is examined again: see
/// [`reprobe_if_uncounted`].
pub fn price(billing: &BillingConfig, v: &Video, scale: u32) -> ServiceResult<i64> {
    let (Some(w), Some(h), Some(f)) = (v.width, v.height, v.frames) else {
        return Err(ServiceError::VideoNotReady);
    };
    if f <= 0 {
        return Err(ServiceError::VideoNotReady);
    }
    let mp = (w * i64::from(scale)) as f64 * (h * i64::from(scale)) as f64 / 1e6;
    Ok((mp * f as f64 * billing.price_per_megapixel_frame).ceil() as i64)
}

/// Queues a new probe of `v` when an earlier version recorded no frame
/// count for it (it was priced as one frame: the outside review's finding
/// 3, left for videos uploaded before the fix). The probe counts what
/// plays; until it has, [`price`] refuses with `video_not_ready`. One probe
/// per video, however often this is asked (an idempotency key).
pub async fn reprobe_if_uncounted(
    catalog: &Catalog,
    vault: &Vault,
    cfg: &JobsConfig,
    v: &Video,
    principal: &str,
    customer_key: Option<&CustomerKey>,
) -> ServiceResult<()> {
    if v.frames != Some(0) || v.rejected.is_some() {
        return Ok(());
    }
    let key = format!("recount-{}", v.id);
    let s = Submission {
        tenant: &v.tenant_id,
        principal,
        video: &v.id,
        kind: &JobKind::Probe,
        price: 0,
        priority: 100,
        idempotency_key: Some(&key),
        customer_key,
        max_active: None,
    };
    enqueue(catalog, vault, cfg, s).await.map(drop)
}

/// What a job that reserved `price` for `priced_frames` frames is charged
/// when it processed `frames_done`: the share it did, rounded up, never more
/// than the price (the runner is told to stop at the priced count).
pub fn settle(price: i64, priced_frames: Option<i64>, frames_done: u64) -> i64 {
    let priced = priced_frames.unwrap_or(0).max(1) as u128;
    let done = (frames_done as u128).min(priced);
    let price = price.max(0) as u128;
    (price * done).div_ceil(priced) as i64
}

/// A video a job may run on: not refused by its probe.
pub fn check_input(v: &Video) -> ServiceResult<()> {
    match &v.rejected {
        Some(r) => Err(ServiceError::VideoRejected(r.clone())),
        None => Ok(()),
    }
}

/// Whether a job row matches its MAC (made when it was submitted).
pub async fn authentic(vault: &Vault, job: &Job) -> bool {
    verify(vault, job.mac_key_version, &job.payload_mac, &job.payload()).await
}

/// Whether a segment row matches its MAC (made when its job was cut).
pub async fn segment_authentic(vault: &Vault, s: &JobSegment) -> bool {
    verify(vault, s.mac_key_version, &s.payload_mac, &s.payload()).await
}

/// The MAC of a segment row: its hex tag and the key version.
pub async fn segment_mac(
    vault: &Vault,
    job: &Job,
    index: i64,
    start_us: Option<i64>,
    end_us: Option<i64>,
) -> ServiceResult<(String, i64)> {
    let payload = bv_catalog::segments::segment_payload_bytes(
        &job.id,
        &job.tenant_id,
        index,
        start_us,
        end_us,
    );
    let (v, tag) = vault.mac(QUEUE_PURPOSE, &payload).await?;
    Ok((bv_crypto::secret::hex(&tag), v.into()))
}

async fn verify(vault: &Vault, version: i64, mac_hex: &str, payload: &[u8]) -> bool {
    let tag = bv_crypto::secret::from_hex(mac_hex).unwrap_or_default();
    match u32::try_from(version) {
        Ok(v) => vault
            .mac_verify(QUEUE_PURPOSE, v, payload, &tag)
            .await
            .unwrap_or(false),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::settle;

    #[test]
    fn a_job_pays_for_the_frames_it_did_never_more_than_reserved() {
        assert_eq!(settle(300, Some(30), 30), 300);
        assert_eq!(settle(300, Some(30), 15), 150);
        // Rounded up: one frame of three of a 100-credit job is 34.
        assert_eq!(settle(100, Some(3), 1), 34);
        // More frames than priced (a container that understated its length)
        // costs no more than the reservation.
        assert_eq!(settle(300, Some(30), 500), 300);
        // Videos probed before counts were exact recorded 0 frames (they
        // are examined again before any price now; a job priced so settles
        // at most its reservation).
        assert_eq!(settle(7, Some(0), 500), 7);
        assert_eq!(settle(7, None, 0), 0);
    }
}
