//! Webhook delivery: events queued in the catalog are POSTed, signed, and
//! retried with backoff (5 s, 10 s, 20 s, … up to an hour between tries, ten
//! tries in all). Bodies describe a job (ids, state, error code); they never
//! carry content or a link.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bv_catalog::{Catalog, Job};
use bv_vault::Vault;

/// Queues the event for a job that just ended (when the tenant has a webhook).
pub async fn job_ended(catalog: &Catalog, job: &Job) {
    let kind = match job.state {
        bv_catalog::JobState::Succeeded => "job.succeeded",
        bv_catalog::JobState::Failed => "job.failed",
        bv_catalog::JobState::Cancelled => "job.cancelled",
        _ => return,
    };
    let Ok(id) = bv_catalog::new_id() else { return };
    let preset: serde_json::Value = serde_json::from_str(&job.preset).unwrap_or_default();
    if preset["kind"] == "probe" {
        return;
    }
    let body = serde_json::json!({
        "id": id,
        "type": kind,
        "created_at": bv_api::time::rfc3339_ms(bv_catalog::now_ms()),
        "data": {"job": {
            "id": job.id,
            "state": job.state,
            "video_id": job.input_video_id,
            "output_video_id": job.output_video_id.as_ref().filter(|_| job.state == bv_catalog::JobState::Succeeded),
            "error": job.last_error.as_ref().filter(|_| job.state != bv_catalog::JobState::Succeeded),
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

/// Delivers due events until `stop` is set.
pub async fn deliver(catalog: Catalog, vault: Arc<Vault>, stop: Arc<AtomicBool>) {
    let Ok(http) = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("BetterVideo-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
    else {
        tracing::error!("webhook client could not be built; no webhooks will be sent");
        return;
    };
    while !stop.load(Ordering::Relaxed) {
        match catalog.due_webhooks(20).await {
            Ok(due) => {
                for d in due {
                    let outcome = send(&catalog, &vault, &http, &d).await;
                    let retry = (5_000i64 << d.attempts.min(10)).min(3_600_000);
                    let _ = catalog
                        .webhook_attempted(&d.id, outcome.err().as_deref(), retry)
                        .await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "webhook queue unreadable; retrying"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn send(
    catalog: &Catalog,
    vault: &Vault,
    http: &reqwest::Client,
    d: &bv_catalog::webhooks::Delivery,
) -> Result<(), String> {
    let hook = catalog
        .webhook(&d.tenant_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the webhook was removed")?;
    let now = bv_catalog::now_ms();
    let sig = bv_api::webhooks::signature(
        vault,
        &d.tenant_id,
        &hook,
        (now / 1000) as u64,
        now,
        &d.body,
    )
    .await
    .map_err(|e| e.to_string())?;
    let url = bv_api::sealed::open(vault, &d.tenant_id, bv_api::sealed::WEBHOOK_URL, &hook.url)
        .await
        .map_err(|e| e.message)?;
    let r = http
        .post(&url)
        .header("content-type", "application/json")
        .header("bv-signature", sig)
        .header("bv-event", &d.event)
        .body(d.body.clone())
        .send()
        .await
        // Without the URL: it is sealed in the catalog and must not reappear
        // there in plain text as part of the delivery's error.
        .map_err(|e| format!("request failed: {}", e.without_url()))?;
    if r.status().is_success() {
        Ok(())
    } else {
        Err(format!("the endpoint answered {}", r.status()))
    }
}
