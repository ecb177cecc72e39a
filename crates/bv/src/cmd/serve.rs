//! `bv serve`: the HTTPS service with the embedded defaults (SQLite catalog
//! and local vault in the data directory) or whatever the configuration says.

use std::sync::Arc;

use anyhow::Context;
use bv_catalog::{Catalog, Scope, TenantLimits};

use crate::cmd::vault::{open_vault, runtime};
use crate::config::Config;

/// `bv serve` flags.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// HTTPS address, e.g. 127.0.0.1:8443 or 0.0.0.0:443 (default: serve.listen).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<String>,
    /// Plain-HTTP address that only redirects to HTTPS (default: serve.redirect_listen).
    #[arg(long, value_name = "ADDR:PORT")]
    redirect: Option<String>,
}

/// Opens the configured catalog.
pub async fn open_catalog(cfg: &Config) -> anyhow::Result<Catalog> {
    let url = cfg.catalog_url();
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    Catalog::open(&url, cfg.catalog.max_connections)
        .await
        .map_err(|e| anyhow::anyhow!(e))
        .context("opening the catalog")
}

/// Limits for new tenants, from the configuration.
pub fn default_limits(cfg: &Config) -> TenantLimits {
    TenantLimits {
        max_upload_bytes: cfg.serve.default_max_upload_mib << 20,
        quota_bytes: cfg.serve.default_quota_mib << 20,
    }
}

/// Structured JSON logs on stderr.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        .with_current_span(false)
        .try_init();
}

/// The record `make test` leaves when the whole suite passed (the security
/// report quotes it).
pub const SUITE_RECORD: &str = "security-tests.json";

/// What the security report and `/readyz` need to know about this host;
/// starts the checks of what jobs need (models, the sandbox self-test,
/// FFmpeg) in the background: they open or close `gate`, the report says
/// "not run yet" until the self-test is done, and the first result comes
/// back on the channel (to be printed under the banner).
fn host_facts(
    cfg: &Config,
    gate: Arc<bv_worker::Gate>,
) -> (
    bv_api::report::HostFacts,
    std::sync::mpsc::Receiver<Vec<bv_api::ready::Check>>,
) {
    let v = &cfg.vault;
    let storage = if v.backend == "s3" {
        let at = if v.s3_endpoint.is_empty() {
            "AWS"
        } else {
            v.s3_endpoint.as_str()
        };
        format!("S3-compatible object store ({at}, bucket {})", v.s3_bucket)
    } else {
        "a local directory on this host".to_string()
    };
    let root_key = if v.root_key_provider == "pkcs11" {
        format!(
            "inside a PKCS#11 token ({:?}): created there sensitive and non-extractable, it never \
             enters the service's memory; keys are wrapped and unwrapped by the token",
            v.pkcs11_token
        )
    } else if v.root_key.is_some() {
        "given to the process from the environment (a secret manager), never written to disk"
            .to_string()
    } else {
        "a file readable only by the service (mode 0600), outside the database".to_string()
    };
    let slot = Arc::new(std::sync::RwLock::new(None));
    let processing = bv_api::ready::Processing {
        workers: cfg.worker.in_process,
        checks: Arc::default(),
    };
    let (s, p) = (Arc::clone(&slot), Arc::clone(&processing.checks));
    let (first, first_rx) = std::sync::mpsc::sync_channel(1);
    let repeat = cfg.worker.in_process > 0;
    crate::checks::watch_processing(cfg.clone(), gate, repeat, move |checks, selftest| {
        if selftest.ok {
            tracing::info!(checks = selftest.checks.len(), "sandbox self-test passed");
        } else {
            tracing::warn!(checks = ?selftest.checks, error = ?selftest.error, "sandbox self-test FAILED");
        }
        if let (Ok(v), Ok(mut g)) = (serde_json::to_value(selftest), s.write()) {
            *g = Some(v);
        }
        if let Ok(mut g) = p.write() {
            *g = Some(checks.to_vec());
        }
        // Only the first result is awaited; later ones find the channel full.
        let _ = first.try_send(checks.to_vec());
    });
    let facts = bv_api::report::HostFacts {
        storage,
        root_key,
        sandbox_limits: serde_json::to_value(&cfg.sandbox.limits).unwrap_or_default(),
        self_test: slot,
        suite_record: Some(cfg.data_dir.join(SUITE_RECORD)),
        sbom: Some(cfg.data_dir.join("sbom/bv.cdx.json")),
        processing,
    };
    (facts, first_rx)
}

/// The start-up banner's last lines: whether this server can run jobs, and
/// if not, each failing check with its fix (stdout, where the URL and key
/// were printed, so whoever ran `make run` sees it).
fn banner_checks(checks: &[bv_api::ready::Check], workers: usize) {
    use std::io::Write;
    let failing: Vec<_> = checks.iter().filter(|c| !c.passed()).collect();
    let mut out = std::io::stdout().lock();
    if workers == 0 {
        let _ = writeln!(
            out,
            "Jobs run on `bv worker` hosts (worker.in_process = 0); `bv doctor` checks a host"
        );
    } else if failing.is_empty() {
        let names: Vec<_> = checks.iter().map(|c| c.name.as_str()).collect();
        let _ = writeln!(
            out,
            "Ready to run jobs ({} checked: `bv doctor` for details)",
            names.join(", ")
        );
    } else {
        let _ = writeln!(
            out,
            "NOT READY TO RUN JOBS: uploads are kept, but no job runs until this is fixed:"
        );
        for c in failing {
            let _ = writeln!(out, "  {}", c.line());
        }
    }
    let _ = out.flush();
}

/// Runs the service until the process is stopped.
pub fn run(cfg: &Config, a: Args) -> anyhow::Result<()> {
    let mut scfg = cfg.serve.clone();
    if let Some(l) = a.listen {
        scfg.listen = l;
    }
    if let Some(r) = a.redirect {
        scfg.redirect_listen = r;
    }
    init_logs();
    if cfg.serve.webhook_allow_private {
        tracing::warn!(
            "serve.webhook_allow_private is on: webhooks may reach this host and its network \
             (development only; turn it off in production)"
        );
    }
    runtime()?.block_on(async move {
        let catalog = open_catalog(cfg).await?;
        let vault = Arc::new(open_vault(cfg, &catalog).await?);
        let first_key = bootstrap(&catalog, cfg).await?;
        let bootstrapped = first_key.is_some();
        record_start(&catalog, &vault, cfg).await;
        // A catalog an older version wrote may hold file names and webhook
        // URLs in plain text: seal them before serving.
        bv_service::fields::backfill(&catalog, &vault).await?;
        // Jobs run beside the API in this process (worker.in_process of them).
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let settings = Arc::new(crate::config::worker_settings(cfg)?);
        let gate = Arc::new(bv_worker::Gate::unchecked());
        for i in 0..cfg.worker.in_process {
            let w = bv_worker::Worker::new(
                Arc::clone(&settings),
                catalog.clone(),
                Arc::clone(&vault),
                format!("serve-{}-{i}", bv_crypto::secret::random_hex(6)?),
            )
            .with_gate(Arc::clone(&gate));
            let stop = Arc::clone(&stop);
            tokio::spawn(async move { w.run(stop).await });
        }
        let (facts, first_checks) = host_facts(cfg, gate);
        let running = bv_api::start(
            scfg,
            catalog.clone(),
            Arc::clone(&vault),
            cfg.domain(),
            &cfg.data_dir,
            offers(),
            facts,
        )
        .await?;
        // The sweeper, audit checkpoints and webhook delivery, once serving.
        let schedule = bv_service::background::Schedule {
            retention: cfg.retention.clone(),
            audit_checkpoint_seconds: cfg.serve.audit_checkpoint_seconds,
            webhooks: true,
            webhook_allow_private: cfg.serve.webhook_allow_private,
        };
        bv_service::background::spawn(
            catalog.clone(),
            Arc::clone(&vault),
            schedule,
            Arc::clone(&stop),
        );
        // These lines are the interface of `make run` and of the tests: keep
        // their shape. Written with `say!`: a closed stdout must never stop
        // the server (println! would panic).
        macro_rules! say {
            ($($t:tt)*) => {{
                use std::io::Write;
                let _ = writeln!(std::io::stdout(), $($t)*);
            }};
        }
        say!("BetterVideo is running at {}", running.url);
        if let Some(c) = &running.dev_cert {
            say!(
                "Development CA (trust it in clients; the certificate it issues lasts 30 days and is renewed while serving): {}",
                c.display()
            );
            if running.dev_cert_new {
                say!(
                    "  it replaces the earlier self-signed development certificate: trust it instead (e.g. `bv login … --ca {}`)",
                    c.display()
                );
            }
        }
        if let Some(r) = running.redirect_addr {
            say!("Plain HTTP on {r} redirects to HTTPS");
        }
        if let Some(k) = first_key {
            say!(
                "First API key, tenant \"default\", every scope (shown once, save it now): {k}"
            );
            say!(
                "  e.g.: curl --cacert {} -H 'Authorization: Bearer {k}' {}/v1/me",
                running
                    .dev_cert
                    .as_deref()
                    .map_or_else(|| "<ca>".into(), |p| p.display().to_string()),
                running.url
            );
        }
        // Only the start that made the catalog offers the link (every later
        // start, and every replica, would otherwise print a fresh one into
        // the logs); `bv admin user setup-link` makes another.
        if bootstrapped {
            let link = setup_link(&catalog, &vault, &running.url).await?;
            if let Some(link) = link {
                say!("First administrator: set a password in the browser (once, within 15 minutes): {link}");
            }
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let workers = cfg.worker.in_process;
        std::thread::spawn(move || {
            if let Ok(checks) = first_checks.recv() {
                banner_checks(&checks, workers);
            }
        });
        tracing::info!(url = %running.url, addr = %running.addr, "serving");
        tokio::select! {
            () = running.wait() => {}
            () = shutdown_signal() => {
                tracing::info!("SIGTERM or SIGINT: stopping");
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                // The entries since the last checkpoint are vouched for (and
                // anchored outside the catalog) before the process ends, so
                // none of them can be cut off unnoticed; within a deadline,
                // for a stop must not hang on a catalog that is gone.
                let last = bv_service::audit::checkpoint(&catalog, &vault);
                match tokio::time::timeout(std::time::Duration::from_secs(10), last).await {
                    Ok(Ok(seq)) => tracing::info!(?seq, "audit log checkpoint signed at shutdown"),
                    Ok(Err(e)) => tracing::error!(error = %e, "audit checkpoint at shutdown failed"),
                    Err(_) => tracing::error!("audit checkpoint at shutdown timed out after 10 s"),
                }
            }
        }
        Ok(())
    })
}

/// Resolves on SIGTERM or SIGINT (what `docker stop`, Kubernetes and Ctrl-C send).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // No handlers: the default action (the process ends) stays.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// While nobody can sign in to the web app, a one-time link (15 minutes)
/// that lets the first administrator of tenant `default` set a password in
/// the browser; it ends any earlier link. The token is in the URL's
/// fragment, which browsers never send to a server, so it reaches no
/// access log. `None` once a user exists or without a `default` tenant.
pub async fn setup_link(
    catalog: &Catalog,
    vault: &bv_vault::Vault,
    url: &str,
) -> anyhow::Result<Option<String>> {
    if catalog.has_users().await? {
        return Ok(None);
    }
    let tenants = catalog.tenants().await?;
    let Some(t) = tenants.iter().find(|t| t.name == "default") else {
        return Ok(None);
    };
    let token = catalog.create_setup_link(&t.id, 15 * 60 * 1000).await?;
    let event = bv_service::audit::Event {
        tenant: Some(t.id.as_str()),
        actor: "system",
        action: "setup_link.create",
        target: "setup-link",
        outcome: "ok",
    };
    let detail = serde_json::json!({ "expires_in_seconds": 900 });
    bv_service::audit::record(catalog, vault, &Default::default(), event, detail).await;
    Ok(Some(format!("{url}/#/setup/{token}")))
}

/// On an empty catalog: a `default` tenant, an `admin` service account and
/// a key with every scope, returned to be printed once.
async fn bootstrap(c: &Catalog, cfg: &Config) -> anyhow::Result<Option<String>> {
    if !c.tenants().await?.is_empty() {
        return Ok(None);
    }
    // Several servers may start on one empty catalog: the first one bootstraps.
    let t = match c.create_tenant("default", default_limits(cfg)).await {
        Ok(t) => t,
        Err(bv_catalog::CatalogError::Exists(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let p = c.create_service_account(&t.id, "admin").await?;
    let (_, token) = c
        .create_api_key(&t.id, &p.id, "first-admin-key", &Scope::ALL, None)
        .await?;
    Ok(Some(token))
}

/// Records the start in the audit log, and a `config.change` when the
/// effective configuration (secrets redacted) differs from the last start's.
async fn record_start(catalog: &bv_catalog::Catalog, vault: &bv_vault::Vault, cfg: &Config) {
    let text = cfg.redacted_toml().unwrap_or_default();
    let fp = bv_crypto::secret::token_hash(text.as_bytes());
    let before = catalog
        .latest_audit("service.start")
        .await
        .ok()
        .flatten()
        .and_then(|e| serde_json::from_str::<serde_json::Value>(&e.detail).ok())
        .and_then(|d| d["config"].as_str().map(str::to_string));
    let event = |action| bv_service::audit::Event {
        tenant: None,
        actor: "system",
        action,
        target: "service",
        outcome: "ok",
    };
    let origin = Default::default();
    if let Some(b) = before.filter(|b| *b != fp) {
        let detail = serde_json::json!({ "from": b, "to": fp });
        bv_service::audit::record(catalog, vault, &origin, event("config.change"), detail).await;
    }
    let detail = serde_json::json!({ "config": fp, "version": env!("CARGO_PKG_VERSION") });
    bv_service::audit::record(catalog, vault, &origin, event("service.start"), detail).await;
}

/// The presets and models of the engine's pinned manifest, as the API offers them.
fn offers() -> bv_service::offers::Offers {
    use bv_service::offers::{ModelOffer, Offers, PresetOffer};
    let m = bv_engine::model::Manifest::builtin();
    Offers {
        presets: m
            .presets
            .into_iter()
            .map(|p| PresetOffer {
                name: p.name,
                title: p.title,
                note: p.note,
                model: p.model,
                scale: p.scale,
                codec: p.codec,
                crf: p.crf,
            })
            .collect(),
        models: m
            .models
            .into_iter()
            .map(|m| ModelOffer {
                scales: m.variants.iter().map(|v| v.scale).collect(),
                name: m.name,
                title: m.title,
                note: m.note,
            })
            .collect(),
    }
}
