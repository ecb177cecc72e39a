//! Putting jobs on the queue: the payload MAC and the price.
//!
//! The MAC is made here, with the vault's `queue` service key, over
//! everything that decides what runs (see `bv_catalog::jobs::payload_bytes`);
//! workers refuse any row that does not match it. Prices are in credits per
//! output megapixel-frame (`serve.price_per_megapixel_frame`).

use bv_catalog::{Job, NewJob, Video};

use crate::error::{ApiError, ApiResult};
use crate::state::State;

/// The service-key purpose of job payload MACs.
pub const QUEUE_PURPOSE: &str = "queue";

/// The output codecs a job may ask for, in the order clients should offer them.
pub const CODECS: &[&str] = &["h264", "hevc", "av1", "ffv1"];

/// Queues a job with its MAC.
#[allow(clippy::too_many_arguments)]
pub async fn enqueue(
    st: &State,
    tenant: &str,
    principal: &str,
    video: &str,
    preset: &str,
    price: i64,
    priority: i64,
    idempotency_key: Option<&str>,
    ck: Option<&bv_vault::CustomerKey>,
    max_active: Option<i64>,
) -> ApiResult<Job> {
    let id = bv_catalog::new_id()?;
    // A tenant's own key travels with its job, sealed, and is cleared when the job ends.
    let custody = match ck {
        Some(k) => Some(st.vault.seal_custody(&id, k).await?),
        None => None,
    };
    let payload = bv_catalog::jobs::payload_bytes(&id, tenant, video, preset, price);
    let (v, tag) = st.vault.mac(QUEUE_PURPOSE, &payload).await?;
    Ok(st
        .catalog
        .submit_job(&NewJob {
            id: &id,
            tenant_id: tenant,
            principal_id: principal,
            input_video_id: video,
            preset,
            price,
            payload_mac: &bv_crypto::secret::hex(&tag),
            mac_key_version: i64::from(v),
            priority,
            max_attempts: st.cfg.job_max_attempts,
            idempotency_key,
            custody: custody.as_deref(),
            max_active,
        })
        .await?)
}

/// Queues the probe of a freshly uploaded video (free, ahead of other work).
pub async fn enqueue_probe(
    st: &State,
    tenant: &str,
    principal: &str,
    video: &str,
    ck: Option<&bv_vault::CustomerKey>,
) {
    if let Err(e) = enqueue(
        st,
        tenant,
        principal,
        video,
        bv_catalog::jobs::PROBE_PRESET,
        0,
        100,
        None,
        ck,
        None,
    )
    .await
    {
        tracing::error!(
            error = e.message,
            code = e.code,
            "could not queue the probe of an upload"
        );
    }
}

/// Credits for enhancing `v` by `scale`: output megapixels × frames × price, rounded up.
pub fn price(st: &State, v: &Video, scale: u32) -> ApiResult<i64> {
    let (Some(w), Some(h), Some(f)) = (v.width, v.height, v.frames) else {
        return Err(ApiError::new(
            http::StatusCode::CONFLICT,
            "video_not_ready",
            "the video is still being examined; try again in a moment",
        ));
    };
    let mp = (w * i64::from(scale)) as f64 * (h * i64::from(scale)) as f64 / 1e6;
    Ok((mp * f.max(1) as f64 * st.cfg.price_per_megapixel_frame).ceil() as i64)
}
