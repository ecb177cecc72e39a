//! The loops a server runs beside its requests: the retention sweeper,
//! audit-log checkpoints and webhook delivery, started together by [`spawn`]
//! and stopped together by its flag.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bv_catalog::Catalog;
use bv_vault::Vault;

use crate::config::RetentionConfig;

/// How often each loop runs.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The retention settings (the sweeper runs every `sweep_seconds`).
    pub retention: RetentionConfig,
    /// Seconds between audit-log checkpoints.
    pub audit_checkpoint_seconds: u64,
    /// Deliver webhooks from this process.
    pub webhooks: bool,
    /// Let webhooks reach private addresses (development only).
    pub webhook_allow_private: bool,
}

/// Starts the loops; they end when `stop` is set (within one period).
pub fn spawn(catalog: Catalog, vault: Arc<Vault>, s: Schedule, stop: Arc<AtomicBool>) {
    tokio::spawn(sweeper(
        catalog.clone(),
        Arc::clone(&vault),
        s.retention.sweep_seconds,
        Arc::clone(&stop),
    ));
    tokio::spawn(checkpoints(
        catalog.clone(),
        Arc::clone(&vault),
        s.audit_checkpoint_seconds,
        Arc::clone(&stop),
    ));
    if s.webhooks {
        tokio::spawn(crate::webhooks::deliver(
            catalog,
            vault,
            s.webhook_allow_private,
            stop,
        ));
    }
}

/// How often the vault is reconciled with the catalog: it reads every
/// object's key record, so hourly, not at every sweep.
const RECONCILE_EVERY: Duration = Duration::from_secs(3600);

/// The retention sweeper ([`crate::retention::sweep`]), at start and then
/// every `every_s`; the vault's reconciliation
/// ([`crate::retention::reconcile`]) at start and then hourly.
async fn sweeper(catalog: Catalog, vault: Arc<Vault>, every_s: u64, stop: Arc<AtomicBool>) {
    let every = Duration::from_secs(every_s.max(1));
    let mut reconciled: Option<std::time::Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        if let Err(e) = crate::retention::sweep(&catalog, &vault, bv_catalog::now_ms()).await {
            tracing::warn!(error = %e, code = e.code(), "sweep failed; will retry");
        }
        if reconciled.is_none_or(|at| at.elapsed() >= RECONCILE_EVERY) {
            match crate::retention::reconcile(&catalog, &vault, bv_catalog::now_ms()).await {
                Ok(_) => reconciled = Some(std::time::Instant::now()),
                Err(e) => {
                    tracing::warn!(error = %e, code = e.code(), "reconcile failed; will retry")
                }
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// Signs a checkpoint at the end of the audit log every `every_s` (a no-op
/// when nothing was added).
async fn checkpoints(catalog: Catalog, vault: Arc<Vault>, every_s: u64, stop: Arc<AtomicBool>) {
    let every = Duration::from_secs(every_s.max(1));
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(every).await;
        match crate::audit::checkpoint(&catalog, &vault).await {
            Ok(Some(seq)) => tracing::info!(seq, "audit log checkpoint signed"),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "audit checkpoint failed; will retry"),
        }
    }
}
