//! The worker: lease a job → verify its MAC → stream the decrypted input
//! into a fresh sandbox → seal the result as it streams back → settle.
//!
//! Plaintext exists only in this process's memory (pipes and buffers) and
//! in the jail's private scratch. Every effect is conditional on still
//! holding the job's lease, and the output becomes visible in the same
//! transaction that captures the charge, so a retried job never yields two
//! outputs or two charges. A row whose payload does not match its MAC (the
//! key is the vault's, never the database's) is refused and nothing runs.
//!
//! This crate links neither the engine nor the API: the engine is reached
//! only through the jailed runner ([`runner`], the `bv job-run` command),
//! spoken to in the job contract (`bv_job`); the rules it applies (sealing,
//! MACs, retention, webhooks) are the domain's (`bv_service`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bv_catalog::{Catalog, Job, Piece, VideoState};
use bv_job::codes::{self, permanent};
use bv_job::{Codec, Done, Enhance, JobKind, JobSpec};
use bv_service::media::{Tolerant, drop_piece, seal_piece};
use bv_vault::{ObjectId, TenantId, Vault};
use serde::{Deserialize, Serialize};

pub mod error;
mod heartbeat;
pub mod runner;
mod segments;

pub use error::{WorkerError, WorkerResult};
pub use runner::{EngineSettings, Runner};

use heartbeat::{Beat, Heartbeat, Progress};

/// How a worker takes jobs (`[worker]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Jobs `bv serve` runs at once in its own process (0: none, for a
    /// cluster whose jobs run on `bv worker` machines).
    pub in_process: usize,
    /// A job's lease: if its worker stops renewing it for this long, another
    /// worker takes the job over.
    pub lease_seconds: u64,
    /// How often an idle worker looks for work, milliseconds (on PostgreSQL a
    /// queued job also wakes it at once).
    pub poll_ms: u64,
    /// A video at least 1.5 times this long (seconds) is cut at keyframes
    /// into segments of about this length, which every idle worker helps
    /// with and a crashed job resumes from; the results are joined by stream
    /// copy. 0 runs every job whole.
    pub segment_seconds: u64,
    /// The most segments one job is cut into.
    pub max_segments: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            in_process: 1,
            lease_seconds: 30,
            poll_ms: 500,
            segment_seconds: 120,
            max_segments: 64,
        }
    }
}

impl WorkerConfig {
    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), String> {
        if self.lease_seconds < 2 || self.poll_ms == 0 {
            return Err("worker.lease_seconds must be >= 2 and worker.poll_ms > 0".into());
        }
        Ok(())
    }
}

/// Everything a worker reads: its own section, how jobs are run, and the
/// domain's settings (piece size, retention) — not the HTTPS server's.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// `[worker]`.
    pub worker: WorkerConfig,
    /// How jails are built and what the runner is told.
    pub runner: Runner,
    /// `[jobs]`, `[retention]`, `[billing]`.
    pub domain: bv_service::Settings,
}

/// What an output holds, from its input's probe and the finished job: the
/// engine keeps every frame, timestamp and other stream, so only the video's
/// size, codec and pixel format change (no second probe needed).
fn output_media(input: Option<&str>, codec: Codec, done: &Done) -> serde_json::Value {
    let mut m: serde_json::Value = input
        .and_then(|s| serde_json::from_str(s).ok())
        .filter(serde_json::Value::is_object)
        .unwrap_or_else(|| serde_json::json!({}));
    m["width"] = done.output_size.0.into();
    m["height"] = done.output_size.1.into();
    m["frames"] = done.frames.into();
    m["codec"] = codec.as_str().into();
    if let Some(o) = m.as_object_mut() {
        o.remove("pix_fmt");
        // The input's cut points; the output has keyframes of its own.
        o.remove("segmenting");
    }
    if let Some(streams) = m["streams"].as_array_mut() {
        for st in streams.iter_mut().filter(|st| st["kind"] == "video") {
            st["codec"] = codec.as_str().into();
        }
    }
    m
}

/// How one leased job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Output recorded and charged.
    Succeeded,
    /// Queued again after a retryable failure.
    Retrying(String),
    /// Failed for good (bad input, out of attempts).
    Failed(String),
    /// Refused: the row did not match its MAC.
    Refused,
    /// Cancelled by its owner.
    Cancelled,
    /// Another worker holds it now (this one lost the lease).
    LostLease,
}

/// One attempt at a job or at a segment of one.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The job's id (for a segment, the job it belongs to).
    pub job: String,
    /// The segment run, when it was one.
    pub segment: Option<i64>,
    /// How it ended.
    pub ended: Ended,
}

/// Whether this process can run jobs at all. Whoever can check (the binary:
/// models, the sandbox self-test, FFmpeg) opens it, or closes it with the
/// reason and the fix; a worker leases nothing until the first check has
/// passed, so a job is never taken by a worker that could only fail it.
#[derive(Debug)]
pub struct Gate {
    state: std::sync::RwLock<GateState>,
}

/// Where a [`Gate`] stands.
#[derive(Debug, Clone)]
enum GateState {
    /// No check has run yet: shut, with nothing to say.
    Unchecked,
    /// The checks passed: workers lease.
    Open,
    /// A check failed: why, and what fixes it.
    Closed(String),
}

impl Default for Gate {
    /// Open: for workers whose host is checked elsewhere (tests, embedders).
    fn default() -> Self {
        Self {
            state: std::sync::RwLock::new(GateState::Open),
        }
    }
}

impl Gate {
    /// A gate that stays shut until the first check has run.
    pub fn unchecked() -> Self {
        Self {
            state: std::sync::RwLock::new(GateState::Unchecked),
        }
    }

    fn set(&self, to: GateState) {
        if let Ok(mut g) = self.state.write() {
            *g = to;
        }
    }

    /// Lets workers lease jobs.
    pub fn open(&self) {
        self.set(GateState::Open);
    }

    /// Stops workers from leasing, saying why (and what fixes it).
    pub fn close(&self, why: String) {
        self.set(GateState::Closed(why));
    }

    /// Whether workers may lease now.
    pub fn is_open(&self) -> bool {
        self.state
            .read()
            .is_ok_and(|g| matches!(*g, GateState::Open))
    }

    /// Why workers may not lease, once a check has said so.
    pub fn failing(&self) -> Option<String> {
        match &*self.state.read().ok()? {
            GateState::Closed(why) => Some(why.clone()),
            _ => None,
        }
    }
}

/// One worker (several may run in one process, each with its own owner id).
#[derive(Clone)]
pub struct Worker {
    cfg: Arc<WorkerSettings>,
    catalog: Catalog,
    vault: Arc<Vault>,
    owner: String,
    gate: Arc<Gate>,
}

impl Worker {
    /// A worker named `owner` (unique per worker: lease holder).
    pub fn new(
        cfg: Arc<WorkerSettings>,
        catalog: Catalog,
        vault: Arc<Vault>,
        owner: String,
    ) -> Self {
        Self {
            cfg,
            catalog,
            vault,
            owner,
            gate: Arc::default(),
        }
    }

    /// Leases only while `gate` is open.
    #[must_use]
    pub fn with_gate(mut self, gate: Arc<Gate>) -> Self {
        self.gate = gate;
        self
    }

    fn lease_ms(&self) -> i64 {
        (self.cfg.worker.lease_seconds * 1000) as i64
    }

    /// Works until `stop` is set; never returns an error (a failing catalog is
    /// retried after a pause).
    pub async fn run(&self, stop: Arc<AtomicBool>) {
        // On PostgreSQL a queued job wakes this worker at once; polling stays as the fallback.
        let mut waker = match self.catalog.job_waker().await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "no job notifications; polling only");
                None
            }
        };
        let poll = Duration::from_millis(self.cfg.worker.poll_ms);
        let mut said: Option<String> = None;
        let mut taking = false;
        while !stop.load(Ordering::Relaxed) {
            if !self.gate.is_open() {
                taking = false;
                // Said once per reason, loudly: the log of a server that
                // cannot run jobs must not read like one that is idle.
                if let Some(why) = self.gate.failing().filter(|w| said.as_ref() != Some(w)) {
                    tracing::error!(worker = %self.owner, why = %why, "this worker takes no jobs until this is fixed");
                    said = Some(why);
                }
                tokio::time::sleep(poll).await;
                continue;
            }
            if !taking {
                // Once per opening: the first, and after every closing.
                tracing::info!(worker = %self.owner, "this worker takes jobs");
                taking = true;
                said = None;
            }
            match self.run_once().await {
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, code = e.code(), "worker: will retry"),
            }
            match &mut waker {
                Some(w) => {
                    w.wait(poll).await;
                }
                None => tokio::time::sleep(poll).await,
            }
        }
    }

    /// Runs one segment of a job that runs in segments, or else leases and
    /// runs one job, if one is ready. Segments go first: they belong to jobs
    /// already under way.
    pub async fn run_once(&self) -> WorkerResult<Option<Attempt>> {
        if let Some(seg) = self
            .catalog
            .lease_segment(&self.owner, self.lease_ms(), None)
            .await?
        {
            let index = seg.index;
            let (job, ended) = self.run_segment(seg).await?;
            return Ok(Some(Attempt {
                job,
                segment: Some(index),
                ended,
            }));
        }
        let Some(job) = self.catalog.lease_job(&self.owner, self.lease_ms()).await? else {
            return Ok(None);
        };
        let ended = self.process(&job).await?;
        if let Ok(now) = self.catalog.job(&job.tenant_id, &job.id).await {
            bv_service::webhooks::job_ended(&self.catalog, &now).await;
        }
        let (outcome, detail) = match &ended {
            Ended::Succeeded => ("succeeded", serde_json::json!({})),
            Ended::Retrying(e) => ("retrying", serde_json::json!({ "error": e })),
            Ended::Failed(e) => ("failed", serde_json::json!({ "error": e })),
            Ended::Refused => (
                "refused",
                serde_json::json!({ "why": "payload MAC mismatch" }),
            ),
            Ended::Cancelled => ("cancelled", serde_json::json!({})),
            Ended::LostLease => ("lease_lost", serde_json::json!({})),
        };
        // A refused row may name any tenant: keep it out of that tenant's log.
        let tenant = (!matches!(ended, Ended::Refused)).then_some(job.tenant_id.as_str());
        self.audit(
            tenant,
            "job.finish",
            &format!("job:{}", job.id),
            outcome,
            detail,
        )
        .await;
        Ok(Some(Attempt {
            job: job.id,
            segment: None,
            ended,
        }))
    }

    async fn process(&self, job: &Job) -> WorkerResult<Ended> {
        if !bv_service::jobs::authentic(&self.vault, job).await {
            tracing::warn!(action = "job.refused", tenant = %job.tenant_id, job = %job.id,
                "job row does not match its MAC: refused, nothing ran");
            self.catalog
                .fail_job(
                    &job.id,
                    &self.owner,
                    "refused: the job row does not match its MAC (altered)",
                    false,
                    0,
                )
                .await?;
            return Ok(Ended::Refused);
        }
        let preset = match JobKind::from_stored(&job.preset) {
            Ok(JobKind::Probe) => return self.probe(job).await,
            Ok(JobKind::Enhance(e)) => {
                tracing::info!(job = %job.id, preset = e.preset_name.as_deref().unwrap_or("custom"),
                    model = %e.model, scale = e.scale, "job settings");
                e
            }
            Ok(other) => {
                let m = format!("a {} is not a job", other.name());
                return self.fail(job, codes::INVALID_OPTION, &m).await;
            }
            Err(e) => {
                return self.fail(job, codes::INVALID_OPTION, &e.to_string()).await;
            }
        };
        // What a dead attempt left behind goes first.
        if let Some(old) = &job.output_video_id {
            match bv_service::media::shred_video(&self.catalog, &self.vault, &job.tenant_id, old)
                .await
            {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        let input = match self
            .catalog
            .video(&job.tenant_id, &job.input_video_id)
            .await
        {
            Ok(v) => v,
            Err(bv_catalog::CatalogError::NotFound) => {
                return self
                    .fail(job, codes::INPUT_GONE, "the input video was deleted")
                    .await;
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(cut) = self.segment_plan(job, &input).await? {
            return self.segmented(job, &preset, &input, cut).await;
        }
        let Some((out, ext)) = self.new_output(job, &preset, &input).await? else {
            return Ok(Ended::LostLease);
        };
        let result = self.enhance(job, &preset, &input, &out.id, ext).await;
        match result {
            Ok((done, size)) => {
                // Charged for the frames it did, at most what was reserved.
                let cost = bv_service::jobs::settle(job.price, input.frames, done.frames);
                match self
                    .catalog
                    .complete_job(
                        &job.id,
                        &self.owner,
                        Some((&out.id, size as i64)),
                        cost,
                        Some(done.frames as i64),
                        self.retain(&job.tenant_id).await?,
                    )
                    .await
                {
                    Ok(()) => {
                        let media = output_media(input.media.as_deref(), preset.codec, &done);
                        let (w, h) = done.output_size;
                        if let Err(e) = self
                            .catalog
                            .set_video_media(
                                &job.tenant_id,
                                &out.id,
                                &media.to_string(),
                                done.frames as i64,
                                w as i64,
                                h as i64,
                            )
                            .await
                        {
                            tracing::warn!(job = %job.id, error = %e, "could not record the output's media facts");
                        }
                        tracing::info!(job = %job.id, frames = done.frames, seconds = done.seconds, "job succeeded");
                        Ok(Ended::Succeeded)
                    }
                    Err(bv_catalog::CatalogError::Conflict(_)) => {
                        self.shred(job, &out.id).await;
                        Ok(Ended::LostLease)
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => {
                self.shred(job, &out.id).await;
                if matches!(e, WorkerError::LeaseLost) {
                    return Ok(Ended::LostLease);
                }
                if e.code() == codes::CANCELLED {
                    self.catalog
                        .finish_cancelled_job(&job.id, &self.owner)
                        .await?;
                    return Ok(Ended::Cancelled);
                }
                self.fail(job, e.code(), &e.to_string()).await
            }
        }
    }

    /// Creates the (still invisible) video a job's result goes into and
    /// records it on the job, so a later attempt can shred what a dead one
    /// left; `None` when the lease was lost. Also the container's extension.
    async fn new_output(
        &self,
        job: &Job,
        preset: &Enhance,
        input: &bv_catalog::Video,
    ) -> WorkerResult<Option<(bv_catalog::Video, &'static str)>> {
        let (ext, ctype) = (preset.codec.container(), preset.codec.content_type());
        // File names are sealed in the catalog: open the input's, seal the output's.
        use bv_service::fields::{VIDEO_NAME, open, seal};
        let (vault, tenant) = (&self.vault, &job.tenant_id);
        let name = open(vault, tenant, VIDEO_NAME, &input.name).await?;
        let stem = name.rsplit_once('.').map_or(name.as_str(), |(s, _)| s);
        let out_name = format!("{stem}-x{}.{ext}", preset.scale);
        let out_name = seal(vault, tenant, VIDEO_NAME, &out_name).await?;
        let out = self
            .catalog
            .create_video(&job.tenant_id, &out_name, ctype, 0, VideoState::Uploading)
            .await?;
        if self
            .catalog
            .set_job_output(&job.id, &self.owner, &out.id)
            .await
            .is_err()
        {
            self.shred(job, &out.id).await;
            return Ok(None);
        }
        Ok(Some((out, ext)))
    }

    /// A probe job: records what the input holds, or rejects it (its bytes
    /// are shredded, the reason stays on the video).
    async fn probe(&self, job: &Job) -> WorkerResult<Ended> {
        let spec = self.cfg.runner.piped_spec(JobKind::Probe, "mp4");
        let inputs = [job.input_video_id.clone()];
        match self
            .stream(job, spec, &inputs, None, Beat::Job, (0, None))
            .await
        {
            Ok((done, _)) => {
                let media = done.media.unwrap_or_default();
                self.catalog
                    .set_video_media(
                        &job.tenant_id,
                        &job.input_video_id,
                        &media.to_string(),
                        done.frames as i64,
                        done.input_size.0 as i64,
                        done.input_size.1 as i64,
                    )
                    .await?;
                match self
                    .catalog
                    .complete_job(&job.id, &self.owner, None, 0, None, Default::default())
                    .await
                {
                    Ok(()) => Ok(Ended::Succeeded),
                    Err(bv_catalog::CatalogError::Conflict(_)) => Ok(Ended::LostLease),
                    Err(e) => Err(e.into()),
                }
            }
            Err(WorkerError::LeaseLost) => Ok(Ended::LostLease),
            Err(e) => {
                let code = e.code().to_string();
                // Retryable failures are retried; once none is left the
                // video is rejected like a bad input, with the last code,
                // so nobody waits for a probe that will never come.
                let ended = self.fail(job, &code, &e.to_string()).await?;
                let for_good = permanent(&code) || matches!(ended, Ended::Failed(_));
                if for_good {
                    let shown = bv_job::codes::shown(&e.to_string());
                    let reason = if permanent(&code) {
                        format!("{code}: {shown}")
                    } else {
                        format!(
                            "{code}: {shown} (the probe failed {} time(s); upload the video again once the service is fixed)",
                            job.attempts.max(1)
                        )
                    };
                    let pieces = self
                        .catalog
                        .reject_video(&job.tenant_id, &job.input_video_id, &reason)
                        .await?;
                    let t: TenantId = bv_service::media::tenant_id(&job.tenant_id)?;
                    for piece in pieces {
                        drop_piece(&self.vault, &t, &piece.object_id).await;
                    }
                    let target = format!("video:{}", job.input_video_id);
                    let detail = serde_json::json!({ "code": code, "shredded": true });
                    self.audit(
                        Some(&job.tenant_id),
                        "video.rejected",
                        &target,
                        "ok",
                        detail,
                    )
                    .await;
                }
                Ok(ended)
            }
        }
    }

    async fn shred(&self, job: &Job, video: &str) {
        if let Err(e) =
            bv_service::media::shred_video(&self.catalog, &self.vault, &job.tenant_id, video).await
            && !e.is_not_found()
        {
            tracing::warn!(
                error = %e,
                "could not remove a failed attempt's output; the sweeper will"
            );
        }
    }

    /// Records an event of this worker's in the audit chain.
    async fn audit(
        &self,
        tenant: Option<&str>,
        action: &str,
        target: &str,
        outcome: &str,
        detail: serde_json::Value,
    ) {
        let actor = format!("worker:{}", self.owner);
        let e = bv_service::audit::Event {
            tenant,
            actor: &actor,
            action,
            target,
            outcome,
        };
        bv_service::audit::record(&self.catalog, &self.vault, &Default::default(), e, detail).await;
    }

    /// What a job that succeeds now schedules for deletion, under its
    /// tenant's retention policy (the service's defaults where it has none).
    async fn retain(&self, tenant: &str) -> WorkerResult<bv_catalog::Retain> {
        let own = self.catalog.tenant_retention(tenant).await?;
        let now = bv_catalog::now_ms();
        let policy = &self.cfg.domain.retention;
        let keep_s = own
            .output_retention_s
            .unwrap_or(policy.output_seconds as i64);
        let keep_originals = own.keep_originals.unwrap_or(policy.keep_originals);
        Ok(bv_catalog::Retain {
            output_until_ms: (keep_s > 0).then_some(now + keep_s * 1000),
            input_until_ms: (!keep_originals).then_some(now),
        })
    }

    /// A job failed for good: its input is kept for a retry, then deleted
    /// (unless the tenant keeps originals).
    async fn retire_input(&self, job: &Job) {
        let keep = match self.catalog.tenant_retention(&job.tenant_id).await {
            Ok(own) => own
                .keep_originals
                .unwrap_or(self.cfg.domain.retention.keep_originals),
            Err(_) => true,
        };
        if keep {
            return;
        }
        let at =
            bv_catalog::now_ms() + (self.cfg.domain.retention.failed_input_seconds * 1000) as i64;
        match self
            .catalog
            .schedule_deletion(
                &job.tenant_id,
                &job.input_video_id,
                at,
                bv_catalog::Rule::FailedInput,
            )
            .await
        {
            Ok(()) | Err(bv_catalog::CatalogError::NotFound) => {}
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "could not schedule the failed job's input for deletion")
            }
        }
    }

    async fn fail(&self, job: &Job, code: &str, message: &str) -> WorkerResult<Ended> {
        let retry = !permanent(code);
        let backoff = 5_000 * job.attempts.max(1);
        // The tenant sees this; the full text is in the worker's log.
        tracing::info!(job = %job.id, code, message, "job attempt failed");
        let text = format!("{code}: {}", bv_job::codes::shown(message));
        match self
            .catalog
            .fail_job(&job.id, &self.owner, &text, retry, backoff)
            .await
        {
            Ok(bv_catalog::JobState::Queued) => Ok(Ended::Retrying(text)),
            Ok(_) => {
                self.retire_input(job).await;
                Ok(Ended::Failed(text))
            }
            Err(bv_catalog::CatalogError::Conflict(_)) => Ok(Ended::LostLease),
            Err(e) => Err(e.into()),
        }
    }

    /// Streams the input's pieces into a jail and the result into new pieces
    /// of `output`; returns the job's summary and the output's size.
    async fn enhance(
        &self,
        job: &Job,
        p: &Enhance,
        input: &bv_catalog::Video,
        output: &str,
        ext: &str,
    ) -> WorkerResult<(Done, u64)> {
        let mut spec = self.cfg.runner.piped_spec(JobKind::Enhance(p.clone()), ext);
        // No more frames than the job was priced for (the probe's count).
        spec.max_frames = input.frames.filter(|f| *f > 0).map(|f| f as u64);
        let inputs = [input.id.clone()];
        self.stream(job, spec, &inputs, Some(output), Beat::Job, (0, None))
            .await
    }

    /// Runs `spec` on the pieces of videos `inputs`, back to back, sealing
    /// what it returns into new pieces of `output` (or discarding it, for
    /// probes), renewing `beat`'s lease with the progress (from `start`).
    async fn stream(
        &self,
        job: &Job,
        spec: JobSpec,
        inputs: &[String],
        output: Option<&str>,
        beat: Beat,
        start: (i64, Option<i64>),
    ) -> WorkerResult<(Done, u64)> {
        let tenant: TenantId = bv_service::media::tenant_id(&job.tenant_id)?;
        let mut pieces = Vec::new();
        for input in inputs {
            pieces.extend(self.catalog.pieces(input).await?);
        }
        // A tenant that holds its own key sent it with the job; it lives here
        // (memory only) until the job ends, and the row's copy is cleared then.
        let ck = match self.catalog.job_custody(&job.id).await? {
            Some(sealed) => Some(Arc::new(self.vault.open_custody(&job.id, &sealed).await?)),
            None => None,
        };
        let ck_out = ck.clone();
        // Input: every piece opened (and verified) in order into a pipe.
        let (mut in_w, in_r) = tokio::io::duplex(1 << 20);
        let vault = Arc::clone(&self.vault);
        let t = tenant;
        let feeder = tokio::spawn(async move {
            for piece in pieces {
                let o: ObjectId = piece.object_id.parse().map_err(WorkerError::internal)?;
                vault.get_for(&t, &o, &mut in_w, ck.as_deref()).await?;
            }
            WorkerResult::Ok(())
        });
        // Output: sealed into pieces as it arrives.
        let (out_w, out_r) = tokio::io::duplex(1 << 20);
        let (vault, catalog, out_id) = (
            Arc::clone(&self.vault),
            self.catalog.clone(),
            output.map(str::to_string),
        );
        let piece_size = self.cfg.domain.jobs.piece_bytes();
        let sealer = tokio::spawn(async move {
            let Some(out_id) = out_id else {
                // A probe returns nothing worth keeping.
                let mut out_r = out_r;
                tokio::io::copy(&mut out_r, &mut tokio::io::sink()).await?;
                return WorkerResult::Ok(0);
            };
            let mut body = Tolerant::new(out_r);
            let (mut seq, mut at) = (0i64, 0u64);
            while let Some((o, n)) =
                seal_piece(&vault, &t, &mut body, piece_size, ck_out.as_deref()).await?
            {
                let p = Piece {
                    seq,
                    object_id: o.clone(),
                    plain_offset: at as i64,
                    plain_len: n as i64,
                };
                if let Err(e) = catalog.add_piece(&out_id, &p).await {
                    drop_piece(&vault, &t, &o).await;
                    return Err(e.into());
                }
                seq += 1;
                at += n;
            }
            if let Some(e) = body.error {
                return Err(WorkerError::Output(Box::new(e.into())));
            }
            WorkerResult::Ok(at)
        });
        // Progress and cancellation ride on the lease's heartbeat.
        let progress: Progress = Arc::new(std::sync::Mutex::new(start));
        let hb = Heartbeat::start(self, &job.id, beat, Arc::clone(&progress));
        let cancel = Arc::clone(&hb.cancel);
        let cfg = Arc::clone(&self.cfg);
        let rd = tokio_util::io::SyncIoBridge::new(in_r);
        let wr = tokio_util::io::SyncIoBridge::new(out_w);
        let (c2, p2) = (Arc::clone(&cancel), Arc::clone(&progress));
        let ran = tokio::task::spawn_blocking(move || {
            cfg.runner.run_piped(&spec, rd, wr, &c2, &mut |p| {
                let mut at = p2.lock().expect("not poisoned");
                *at = (
                    start.0 + p.frames as i64,
                    p.total.map(|t| t as i64).or(at.1),
                );
            })
        })
        .await
        .map_err(|e| WorkerError::Internal(format!("the job thread: {e}")))?;
        hb.stop();
        let fed = feeder
            .await
            .map_err(|e| WorkerError::Internal(format!("the input task: {e}")))?;
        let sealed = sealer
            .await
            .map_err(|e| WorkerError::Internal(format!("the output task: {e}")))?;
        if hb.lost.load(Ordering::Relaxed) {
            return Err(WorkerError::LeaseLost);
        }
        if let Err(e) = fed {
            // The input could not be read (storage gone for a while, a piece
            // failing verification): what the job then did — fail on an empty
            // or cut input, or even finish — is a consequence, never its
            // result. The reading error decides (a storage outage is retried;
            // the cluster test once saw it reported as a permanent input_empty).
            return Err(WorkerError::Input(Box::new(e)));
        }
        let done = ran?;
        Ok((done, sealed?))
    }
}
