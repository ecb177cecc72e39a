//! Webhooks: events for finished jobs, signed (Stripe's scheme), queued in
//! the catalog and delivered with retries.
//!
//! `BV-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`,
//! with a second `v1` made with the previous secret while a rotation
//! overlaps. Receivers should refuse a `t` more than 5 minutes away. Secrets
//! are not stored anywhere: each is derived from the vault's `webhooks`
//! service key, the tenant and the secret's version, and shown when made.
//!
//! Delivery POSTs each due event (5 s, 10 s, 20 s, … up to an hour between
//! tries, ten tries in all) with [`post`], a small HTTP/1.1 client of our
//! own: it resolves the host once and connects to exactly the address it
//! resolved, follows no redirects, and reads nothing but the status line.
//! Bodies describe a job (ids, state, error code); they never carry content
//! or a link.

pub mod guard;
mod post;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bv_catalog::webhooks::{Delivery, Webhook};
use bv_catalog::{Catalog, Job, JobState};
use bv_job::JobKind;
use bv_vault::{Vault, VaultError};

use crate::error::{ServiceError, ServiceResult};

pub use post::{PostError, Poster, Target};

/// The service-key purpose secrets are derived from (never rotated: that would change every secret).
pub const PURPOSE: &str = "webhooks";

/// How long one delivery may take, connection to status line.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The signing secret of version `version` of the tenant's webhook.
pub async fn secret(vault: &Vault, tenant: &str, version: i64) -> Result<String, VaultError> {
    let (_, tag) = vault
        .mac(
            PURPOSE,
            format!("bettervideo webhook secret\n{tenant}\n{version}").as_bytes(),
        )
        .await?;
    Ok(format!("whsec_{}", bv_crypto::secret::hex(&tag)))
}

/// The `BV-Signature` header for `body` sent at `t` (Unix seconds, now in ms for the overlap).
pub async fn signature(
    vault: &Vault,
    tenant: &str,
    hook: &Webhook,
    t: u64,
    now_ms: i64,
    body: &str,
) -> Result<String, VaultError> {
    let mut versions = vec![hook.secret_version];
    if hook.previous_until_ms.is_some_and(|u| u > now_ms) && hook.secret_version > 1 {
        versions.push(hook.secret_version - 1);
    }
    let mut header = format!("t={t}");
    for v in versions {
        let s = secret(vault, tenant, v).await?;
        let sig = bv_crypto::secret::mac_bytes(s.as_bytes(), format!("{t}.{body}").as_bytes());
        header.push_str(&format!(",v1={}", bv_crypto::secret::hex(&sig)));
    }
    Ok(header)
}

/// Queues the event for a job that just ended (when the tenant has a webhook).
pub async fn job_ended(catalog: &Catalog, job: &Job) {
    let kind = match job.state {
        JobState::Succeeded => "job.succeeded",
        JobState::Failed => "job.failed",
        JobState::Cancelled => "job.cancelled",
        _ => return,
    };
    // Probes are the service's own business, not a job the tenant asked for.
    if JobKind::from_stored(&job.preset).is_ok_and(|k| k.is_probe()) {
        return;
    }
    let Ok(id) = bv_catalog::new_id() else { return };
    let body = serde_json::json!({
        "id": id,
        "type": kind,
        "created_at": crate::time::rfc3339_ms(bv_catalog::now_ms()),
        "data": {"job": {
            "id": job.id,
            "state": job.state,
            "video_id": job.input_video_id,
            "output_video_id": job.output_video_id.as_ref().filter(|_| job.state == JobState::Succeeded),
            "error": job.last_error.as_ref().filter(|_| job.state != JobState::Succeeded),
            "price": job.price,
        }},
    })
    .to_string();
    if let Err(e) = catalog
        .enqueue_webhook(&job.tenant_id, &id, kind, &body)
        .await
    {
        tracing::warn!(error = %e, "could not queue a webhook event");
    }
}

/// Checks a webhook URL a tenant wants to set: `https://` (or `http://`
/// when `allow_http`), at most 2048 bytes, no credentials, and — unless
/// `allow_private` — a host that is not a place inside a network, as an
/// address or by its name ([`guard`]). What a name resolves to is checked at
/// every delivery, not here.
pub async fn check_url(url: &str, allow_http: bool, allow_private: bool) -> ServiceResult<()> {
    let bad =
        || ServiceError::Invalid("url must be an https:// URL of at most 2048 characters".into());
    if url.len() > 2048 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let t = match Target::parse(url) {
        Ok(t) => t,
        Err(PostError::Url(m)) if m.contains("credentials") => {
            return Err(ServiceError::WebhookRefused(
                "a webhook URL may not carry credentials".into(),
            ));
        }
        Err(_) => return Err(bad()),
    };
    if !(t.tls || allow_http) {
        return Err(bad());
    }
    if allow_private {
        return Ok(());
    }
    let addrs = match tokio::time::timeout(Duration::from_secs(3), t.resolve()).await {
        Ok(Ok(a)) => a,
        // Not resolvable now: only its name can be judged.
        _ => Vec::new(),
    };
    t.check_public(&addrs)
        .map_err(|e| ServiceError::WebhookRefused(e.to_string()))
}

/// Deliveries one tenant may have under way at once: a tenant whose
/// endpoint is silent holds at most this many of the sender's slots.
pub const PER_TENANT: usize = 2;
/// Deliveries under way at once, all tenants together.
pub const MAX_IN_FLIGHT: usize = 32;

/// Delivers due events until `stop` is set, to public addresses only unless
/// `allow_private`: each delivery runs on its own, so one tenant's slow or
/// silent endpoint delays no other tenant's events.
pub async fn deliver(
    catalog: Catalog,
    vault: Arc<Vault>,
    allow_private: bool,
    stop: Arc<AtomicBool>,
) {
    let poster = match Poster::new(DELIVERY_TIMEOUT, allow_private) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "webhook client could not be built; no webhooks will be sent");
            return;
        }
    };
    let sender = Sender::new(catalog, vault, poster);
    let mut running = tokio::task::JoinSet::new();
    while !stop.load(Ordering::Relaxed) {
        while running.try_join_next().is_some() {}
        if let Err(e) = sender.start_due(&mut running).await {
            tracing::warn!(error = %e, "webhook queue unreadable; retrying");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Starts deliveries, keeping count of those under way.
#[derive(Clone)]
pub struct Sender {
    catalog: Catalog,
    vault: Arc<Vault>,
    poster: Poster,
    /// Delivery id → tenant, for every delivery under way.
    in_flight: Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>,
}

impl Sender {
    /// A sender through `poster`.
    pub fn new(catalog: Catalog, vault: Arc<Vault>, poster: Poster) -> Self {
        Self {
            catalog,
            vault,
            poster,
            in_flight: Default::default(),
        }
    }

    /// Starts every due delivery not already under way, within
    /// [`PER_TENANT`] and [`MAX_IN_FLIGHT`]; how many it started. Each
    /// records its own outcome (delivered, or the error and the next try).
    pub async fn start_due(
        &self,
        tasks: &mut tokio::task::JoinSet<()>,
    ) -> Result<usize, bv_catalog::CatalogError> {
        let due = self
            .catalog
            .due_webhooks(MAX_IN_FLIGHT as i64 * 4, PER_TENANT as i64)
            .await?;
        let mut started = 0;
        for d in due {
            {
                let f = self.in_flight.lock().expect("not poisoned");
                let mine = f.values().filter(|t| **t == d.tenant_id).count();
                if f.contains_key(&d.id) || mine >= PER_TENANT || f.len() >= MAX_IN_FLIGHT {
                    continue;
                }
            }
            // Claimed in the catalog first: another task or another server that
            // read the same row as due cannot send it too.
            let hold = 2 * DELIVERY_TIMEOUT.as_millis() as i64;
            if !self.catalog.claim_webhook(&d, hold).await? {
                continue;
            }
            self.in_flight
                .lock()
                .expect("not poisoned")
                .insert(d.id.clone(), d.tenant_id.clone());
            let me = self.clone();
            tasks.spawn(async move {
                let outcome = send(&me.catalog, &me.vault, &me.poster, &d).await;
                let retry = (5_000i64 << d.attempts.min(10)).min(3_600_000);
                if let Err(e) = me
                    .catalog
                    .webhook_attempted(&d.id, outcome.err().as_deref(), retry)
                    .await
                {
                    tracing::warn!(error = %e, "could not record a webhook attempt");
                }
                me.in_flight.lock().expect("not poisoned").remove(&d.id);
            });
            started += 1;
        }
        Ok(started)
    }
}

/// One round, to its end: every delivery due now is attempted once (within
/// the same limits as [`deliver`]) and its outcome recorded; how many.
pub async fn deliver_due(
    catalog: &Catalog,
    vault: &Arc<Vault>,
    poster: &Poster,
) -> Result<usize, bv_catalog::CatalogError> {
    let sender = Sender::new(catalog.clone(), Arc::clone(vault), poster.clone());
    let mut tasks = tokio::task::JoinSet::new();
    let n = sender.start_due(&mut tasks).await?;
    while tasks.join_next().await.is_some() {}
    Ok(n)
}

/// One attempt at one delivery; the error is what the tenant is shown.
async fn send(
    catalog: &Catalog,
    vault: &Vault,
    poster: &Poster,
    d: &Delivery,
) -> Result<(), String> {
    let hook = catalog
        .webhook(&d.tenant_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the webhook was removed")?;
    let now = bv_catalog::now_ms();
    let sig = signature(
        vault,
        &d.tenant_id,
        &hook,
        (now / 1000) as u64,
        now,
        &d.body,
    )
    .await
    .map_err(|e| e.to_string())?;
    let url = crate::fields::open(vault, &d.tenant_id, crate::fields::WEBHOOK_URL, &hook.url)
        .await
        .map_err(|e| e.to_string())?;
    let headers = [
        ("bv-signature", sig.as_str()),
        ("bv-event", d.event.as_str()),
    ];
    // The error never names the URL: it is sealed in the catalog and must
    // not reappear there in plain text as part of the delivery's error.
    let status = poster
        .post(&url, &headers, d.body.as_bytes())
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("the endpoint answered {status}"))
    }
}
