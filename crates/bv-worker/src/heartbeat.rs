//! Lease renewal while a worker works: a task that renews a job's or a
//! segment's lease with the progress so far, at least once a second (so a
//! cancel stops the sandbox within about a second), and raises `cancel` when
//! the owner asked for it and `lost` (with `cancel`) when another worker
//! holds the lease now.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Worker;

/// Whose lease is renewed, and where its progress comes from.
#[derive(Debug, Clone, Copy)]
pub(super) enum Beat {
    /// The job's own, with the progress its sandbox reports.
    Job,
    /// One segment's, with the progress its sandbox reports.
    Segment(i64),
    /// A job run in segments (its coordinator's): progress is the sum over
    /// its segments, whichever worker runs them.
    Segments,
}

/// Frames done and, when known, frames in all.
pub(super) type Progress = Arc<Mutex<(i64, Option<i64>)>>;

/// A running lease renewal; stopped by [`Heartbeat::stop`].
pub(super) struct Heartbeat {
    /// The owner cancelled, or the lease is lost.
    pub cancel: Arc<AtomicBool>,
    /// Another worker holds the lease now.
    pub lost: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Heartbeat {
    /// Starts renewing `beat`'s lease of job `job_id` for worker `w`.
    pub(super) fn start(w: &Worker, job_id: &str, beat: Beat, progress: Progress) -> Self {
        let cancel = Arc::new(AtomicBool::new(false));
        let lost = Arc::new(AtomicBool::new(false));
        let (catalog, id, owner, lease) = (
            w.catalog.clone(),
            job_id.to_string(),
            w.owner.clone(),
            w.lease_ms(),
        );
        let (c, l) = (Arc::clone(&cancel), Arc::clone(&lost));
        let every = Duration::from_millis((lease as u64 / 3).clamp(200, 1_000));
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Beat::Segments = beat
                    && let Ok(s) = catalog.segments(&id).await
                {
                    progress.lock().expect("not poisoned").0 =
                        s.iter().map(|s| s.frames_done).sum();
                }
                let (done, total) = *progress.lock().expect("not poisoned");
                let renewed = match beat {
                    Beat::Job | Beat::Segments => {
                        catalog.heartbeat_job(&id, &owner, lease, done, total).await
                    }
                    Beat::Segment(i) => {
                        catalog.heartbeat_segment(&id, i, &owner, lease, done).await
                    }
                };
                match renewed {
                    Ok(true) => c.store(true, Ordering::Relaxed),
                    Ok(false) => {}
                    Err(bv_catalog::CatalogError::Conflict(_)) => {
                        l.store(true, Ordering::Relaxed);
                        c.store(true, Ordering::Relaxed);
                    }
                    Err(e) => tracing::warn!(error = %e, "heartbeat failed; retrying"),
                }
            }
        });
        Self { cancel, lost, task }
    }

    /// Stops renewing.
    pub(super) fn stop(&self) {
        self.task.abort();
    }
}
