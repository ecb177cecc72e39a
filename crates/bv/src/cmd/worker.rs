//! `bv worker`: runs jobs from the shared queue (scale-out: as many of these,
//! on as many machines, as the catalog and the store can feed).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use bv_api::ready::Check;

use crate::checks;
use crate::cmd::serve::{init_logs, open_catalog};
use crate::cmd::vault::{open_vault, runtime};
use crate::config::Config;
use bv_worker::{Gate, Worker};

/// `bv worker` flags.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Jobs run at once by this process.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Stop when no job is ready (instead of waiting for more); prints one JSON
    /// line per attempt (`segment` names a segment of a job run in segments).
    #[arg(long)]
    once: bool,
    /// With --once: stop after this many attempts (each worker).
    #[arg(long, requires = "once", value_name = "N")]
    max_jobs: Option<usize>,
}

/// Runs the command.
pub fn run(cfg: &Config, a: Args) -> anyhow::Result<()> {
    init_logs();
    runtime()?.block_on(async move {
        let catalog = open_catalog(cfg).await?;
        let vault = Arc::new(open_vault(cfg, &catalog).await?);
        let host = bv_crypto::secret::random_hex(6)?;
        let settings = Arc::new(crate::config::worker_settings(cfg)?);
        let gate = Arc::new(Gate::unchecked());
        let workers: Vec<Worker> = (0..a.concurrency.max(1))
            .map(|i| {
                Worker::new(
                    Arc::clone(&settings),
                    catalog.clone(),
                    Arc::clone(&vault),
                    format!("worker-{host}-{i}"),
                )
                .with_gate(Arc::clone(&gate))
            })
            .collect();
        let max_jobs = a.max_jobs.unwrap_or(usize::MAX);
        if a.once {
            // One pass: what jobs need is checked once, before any lease.
            let c = cfg.clone();
            let (checks, _) = tokio::task::spawn_blocking(move || checks::processing(&c)).await?;
            let failing: Vec<_> = checks
                .iter()
                .filter(|c| !c.passed())
                .map(Check::line)
                .collect();
            if !failing.is_empty() {
                return Err(not_ready(&failing).into());
            }
            let mut tasks = Vec::new();
            for w in workers {
                tasks.push(tokio::spawn(async move {
                    let mut out = Vec::new();
                    while out.len() < max_jobs
                        && let Some(a) = w.run_once().await?
                    {
                        let mut line =
                            serde_json::json!({"job": a.job, "ended": format!("{:?}", a.ended)});
                        if let Some(i) = a.segment {
                            line["segment"] = i.into();
                        }
                        out.push(line);
                    }
                    anyhow::Ok(out)
                }));
            }
            for t in tasks {
                for line in t.await?? {
                    println!("{line}");
                }
            }
            return Ok(());
        }
        // Each failing check is logged when it starts failing, not every 30 s.
        let said = std::sync::Mutex::new(Vec::<String>::new());
        checks::watch_processing(cfg.clone(), gate, true, move |checks, _| {
            let failing: Vec<String> = checks
                .iter()
                .filter(|c| !c.passed())
                .map(Check::line)
                .collect();
            let Ok(mut said) = said.lock() else { return };
            for line in failing.iter().filter(|l| !said.contains(l)) {
                tracing::error!(check = %line, "cannot run jobs");
            }
            *said = failing;
        });
        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, Arc::clone(&stop))?;
        }
        let tasks: Vec<_> = workers
            .into_iter()
            .map(|w| {
                let stop = Arc::clone(&stop);
                tokio::spawn(async move { w.run(stop).await })
            })
            .collect();
        tracing::info!(workers = tasks.len(), "worker running");
        for t in tasks {
            t.await?;
        }
        Ok(())
    })
}

/// The error of a host that cannot run jobs: each failing check with its fix.
pub fn not_ready(failing: &[String]) -> crate::exit::JobFailed {
    crate::exit::JobFailed {
        code: bv_job::codes::PROCESSING_UNAVAILABLE.into(),
        message: format!("this host cannot run jobs: {}", failing.join("; ")),
    }
}
