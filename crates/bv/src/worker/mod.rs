//! The worker: lease a job → verify its MAC → stream the decrypted input
//! into a fresh sandbox → seal the result as it streams back → settle.
//!
//! Plaintext exists only in this process's memory (pipes and buffers) and
//! in the jail's private scratch. Every effect is conditional on still
//! holding the job's lease, and the output becomes visible in the same
//! transaction that captures the charge, so a retried job never yields two
//! outputs or two charges. A row whose payload does not match its MAC (the
//! key is the vault's, never the database's) is refused and nothing runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use bv_catalog::{Catalog, Job, Piece, VideoState};
use bv_vault::{ObjectId, TenantId, Vault};
use serde::Deserialize;

use crate::cmd::job::{Done, JobSpec, MODELS_INSIDE, run_piped};
use crate::config::Config;
use crate::exit::code_of;

use bv_api::jobs::QUEUE_PURPOSE;

mod heartbeat;
mod segments;

use heartbeat::{Beat, Heartbeat, Progress};

/// What an enhancement job asks for (the job's `preset` JSON).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    /// Model name.
    pub model: String,
    /// Scale.
    pub scale: u32,
    /// Output codec (`h264`, `hevc`, `av1`, `ffv1`).
    #[serde(default = "default_codec")]
    pub codec: String,
    /// Constant-rate factor.
    #[serde(default)]
    pub crf: Option<u32>,
    /// The named preset the job was submitted with, if any (a record for
    /// people: the fields above are what runs).
    #[serde(default)]
    pub preset: Option<String>,
}

/// What an output holds, from its input's probe and the finished job: the
/// engine keeps every frame, timestamp and other stream, so only the video's
/// size, codec and pixel format change (no second probe needed).
fn output_media(input: Option<&str>, codec: &str, done: &Done) -> serde_json::Value {
    let mut m: serde_json::Value = input
        .and_then(|s| serde_json::from_str(s).ok())
        .filter(serde_json::Value::is_object)
        .unwrap_or_else(|| serde_json::json!({}));
    m["width"] = done.output_size.0.into();
    m["height"] = done.output_size.1.into();
    m["frames"] = done.frames.into();
    m["codec"] = codec.into();
    if let Some(o) = m.as_object_mut() {
        o.remove("pix_fmt");
        // The input's cut points; the output has keyframes of its own.
        o.remove("segmenting");
    }
    if let Some(streams) = m["streams"].as_array_mut() {
        for st in streams.iter_mut().filter(|st| st["kind"] == "video") {
            st["codec"] = codec.into();
        }
    }
    m
}

fn default_codec() -> String {
    "h264".into()
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

/// Codes a retry cannot fix.
fn permanent(code: &str) -> bool {
    matches!(
        code,
        "input_not_video"
            | "input_empty"
            | "input_truncated"
            | "unsupported_codec"
            | "dimensions_too_large"
            | "invalid_option"
            | "model_not_found"
            | "model_unsupported"
            | "output_container_unsupported"
            | "job_resource_limit"
            | "job_timeout"
            | "cancelled"
    )
}

/// One worker (several may run in one process, each with its own owner id).
#[derive(Clone)]
pub struct Worker {
    cfg: Config,
    catalog: Catalog,
    vault: Arc<Vault>,
    owner: String,
}

impl Worker {
    /// A worker named `owner` (unique per worker: lease holder).
    pub fn new(cfg: Config, catalog: Catalog, vault: Arc<Vault>, owner: String) -> Self {
        Self {
            cfg,
            catalog,
            vault,
            owner,
        }
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
        while !stop.load(Ordering::Relaxed) {
            match self.run_once().await {
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "worker: will retry"),
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
    pub async fn run_once(&self) -> anyhow::Result<Option<Attempt>> {
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
            crate::webhooks::job_ended(&self.catalog, &now).await;
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

    /// Whether the job row matches its MAC (made when it was submitted).
    async fn job_authentic(&self, job: &Job) -> bool {
        let tag = bv_crypto::secret::from_hex(&job.payload_mac).unwrap_or_default();
        match u32::try_from(job.mac_key_version) {
            Ok(v) => self
                .vault
                .mac_verify(QUEUE_PURPOSE, v, &job.payload(), &tag)
                .await
                .unwrap_or(false),
            Err(_) => false,
        }
    }

    async fn process(&self, job: &Job) -> anyhow::Result<Ended> {
        if !self.job_authentic(job).await {
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
        if serde_json::from_str::<serde_json::Value>(&job.preset)
            .is_ok_and(|v| v["kind"] == "probe")
        {
            return self.probe(job).await;
        }
        let preset: Preset = match serde_json::from_str::<Preset>(&job.preset) {
            Ok(p) => {
                tracing::info!(job = %job.id, preset = p.preset.as_deref().unwrap_or("custom"),
                    model = %p.model, scale = p.scale, "job settings");
                p
            }
            Err(e) => {
                return self
                    .fail(job, "invalid_option", &format!("preset: {e}"))
                    .await;
            }
        };
        // What a dead attempt left behind goes first.
        if let Some(old) = &job.output_video_id {
            match bv_api::media::shred_video(&self.catalog, &self.vault, &job.tenant_id, old).await
            {
                Ok(()) => {}
                Err(e) if e.code == "not_found" => {}
                Err(e) => anyhow::bail!("removing an earlier attempt's output: {}", e.message),
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
                    .fail(job, "input_gone", "the input video was deleted")
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
        let result = self.enhance(job, &preset, &input.id, &out.id, ext).await;
        match result {
            Ok((done, size)) => {
                match self
                    .catalog
                    .complete_job(
                        &job.id,
                        &self.owner,
                        Some((&out.id, size as i64)),
                        job.price,
                        Some(done.frames as i64),
                        self.retain(&job.tenant_id).await?,
                    )
                    .await
                {
                    Ok(()) => {
                        let media = output_media(input.media.as_deref(), &preset.codec, &done);
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
                let code = code_of(&e);
                let lost = e.downcast_ref::<LeaseLost>().is_some();
                self.shred(job, &out.id).await;
                if lost {
                    return Ok(Ended::LostLease);
                }
                if code == "cancelled" {
                    self.catalog
                        .finish_cancelled_job(&job.id, &self.owner)
                        .await?;
                    return Ok(Ended::Cancelled);
                }
                self.fail(job, &code, &format!("{e:#}")).await
            }
        }
    }

    /// Creates the (still invisible) video a job's result goes into and
    /// records it on the job, so a later attempt can shred what a dead one
    /// left; `None` when the lease was lost. Also the container's extension.
    async fn new_output(
        &self,
        job: &Job,
        preset: &Preset,
        input: &bv_catalog::Video,
    ) -> anyhow::Result<Option<(bv_catalog::Video, &'static str)>> {
        let ext = if preset.codec == "ffv1" { "mkv" } else { "mp4" };
        let ctype = if ext == "mkv" {
            "video/x-matroska"
        } else {
            "video/mp4"
        };
        // File names are sealed in the catalog: open the input's, seal the output's.
        let (vault, tenant) = (&self.vault, &job.tenant_id);
        let name = bv_api::sealed::open(vault, tenant, bv_api::sealed::VIDEO_NAME, &input.name)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.message))?;
        let stem = name.rsplit_once('.').map_or(name.as_str(), |(s, _)| s);
        let out_name = format!("{stem}-x{}.{ext}", preset.scale);
        let out_name = bv_api::sealed::seal(vault, tenant, bv_api::sealed::VIDEO_NAME, &out_name)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.message))?;
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
    async fn probe(&self, job: &Job) -> anyhow::Result<Ended> {
        let p = Preset {
            model: self.cfg.engine.model.clone(),
            scale: 1,
            codec: default_codec(),
            crf: None,
            preset: None,
        };
        let spec = self.spec(&p, "mp4", true);
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
            Err(e) if e.downcast_ref::<LeaseLost>().is_some() => Ok(Ended::LostLease),
            Err(e) => {
                let code = code_of(&e);
                if permanent(&code) {
                    let reason = format!("{code}: {e:#}");
                    let pieces = self
                        .catalog
                        .reject_video(&job.tenant_id, &job.input_video_id, &reason)
                        .await?;
                    let t: TenantId = job.tenant_id.parse()?;
                    for piece in pieces {
                        bv_api::media::drop_piece(&self.vault, &t, &piece.object_id).await;
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
                self.fail(job, &code, &format!("{e:#}")).await
            }
        }
    }

    async fn shred(&self, job: &Job, video: &str) {
        if let Err(e) =
            bv_api::media::shred_video(&self.catalog, &self.vault, &job.tenant_id, video).await
            && e.code != "not_found"
        {
            tracing::warn!(
                error = e.message,
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
        let e = bv_api::audit::Event {
            tenant,
            actor: &actor,
            action,
            target,
            outcome,
        };
        bv_api::audit::record_with(&self.catalog, &self.vault, &Default::default(), e, detail)
            .await;
    }

    /// What a job that succeeds now schedules for deletion, under its
    /// tenant's retention policy (the service's defaults where it has none).
    async fn retain(&self, tenant: &str) -> anyhow::Result<bv_catalog::Retain> {
        let own = self.catalog.tenant_retention(tenant).await?;
        let now = bv_catalog::now_ms();
        let keep_s = own
            .output_retention_s
            .unwrap_or(self.cfg.serve.output_retention_seconds as i64);
        let keep_originals = own.keep_originals.unwrap_or(self.cfg.serve.keep_originals);
        Ok(bv_catalog::Retain {
            output_until_ms: (keep_s > 0).then_some(now + keep_s * 1000),
            input_until_ms: (!keep_originals).then_some(now),
        })
    }

    /// A job failed for good: its input is kept for a retry, then deleted
    /// (unless the tenant keeps originals).
    async fn retire_input(&self, job: &Job) {
        let keep = match self.catalog.tenant_retention(&job.tenant_id).await {
            Ok(own) => own.keep_originals.unwrap_or(self.cfg.serve.keep_originals),
            Err(_) => true,
        };
        if keep {
            return;
        }
        let at =
            bv_catalog::now_ms() + (self.cfg.serve.failed_input_retention_seconds * 1000) as i64;
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

    async fn fail(&self, job: &Job, code: &str, message: &str) -> anyhow::Result<Ended> {
        let retry = !permanent(code) && code != "input_gone";
        let backoff = 5_000 * job.attempts.max(1);
        let text = format!("{code}: {message}");
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
        p: &Preset,
        input: &str,
        output: &str,
        ext: &str,
    ) -> anyhow::Result<(Done, u64)> {
        let spec = self.spec(p, ext, false);
        let inputs = [input.to_string()];
        self.stream(job, spec, &inputs, Some(output), Beat::Job, (0, None))
            .await
    }

    /// The job-run spec for `p`, streamed through pipes.
    fn spec(&self, p: &Preset, ext: &str, probe_only: bool) -> JobSpec {
        JobSpec {
            input: "/scratch/input.media".into(),
            output: format!("/scratch/output.{ext}").into(),
            ext: ext.into(),
            models: MODELS_INSIDE.into(),
            model: p.model.clone(),
            scale: p.scale,
            codec: p.codec.clone(),
            crf: p.crf,
            preset: None,
            tile: self.cfg.engine.tile,
            threads: self.cfg.engine.threads,
            device: self.cfg.engine.device.clone(),
            max_width: self.cfg.engine.max_output_width,
            max_height: self.cfg.engine.max_output_height,
            piped: true,
            probe_only,
            segment: None,
            join: None,
        }
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
    ) -> anyhow::Result<(Done, u64)> {
        let tenant: TenantId = job.tenant_id.parse()?;
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
                let o: ObjectId = piece.object_id.parse()?;
                vault.get_for(&t, &o, &mut in_w, ck.as_deref()).await?;
            }
            anyhow::Ok(())
        });
        // Output: sealed into pieces as it arrives.
        let (out_w, out_r) = tokio::io::duplex(1 << 20);
        let (vault, catalog, out_id) = (
            Arc::clone(&self.vault),
            self.catalog.clone(),
            output.map(str::to_string),
        );
        let piece_size = (self.cfg.serve.piece_mib as u64) << 20;
        let sealer = tokio::spawn(async move {
            let Some(out_id) = out_id else {
                // A probe returns nothing worth keeping.
                let mut out_r = out_r;
                tokio::io::copy(&mut out_r, &mut tokio::io::sink()).await?;
                return anyhow::Ok(0);
            };
            let mut body = bv_api::media::Tolerant::new(out_r);
            let (mut seq, mut at) = (0i64, 0u64);
            while let Some((o, n)) =
                bv_api::media::seal_piece(&vault, &t, &mut body, piece_size, ck_out.as_deref())
                    .await
                    .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.message))?
            {
                let p = Piece {
                    seq,
                    object_id: o.clone(),
                    plain_offset: at as i64,
                    plain_len: n as i64,
                };
                if let Err(e) = catalog.add_piece(&out_id, &p).await {
                    bv_api::media::drop_piece(&vault, &t, &o).await;
                    return Err(e.into());
                }
                seq += 1;
                at += n;
            }
            if let Some(e) = body.error {
                return Err(anyhow::Error::from(e).context("reading the job's output"));
            }
            anyhow::Ok(at)
        });
        // Progress and cancellation ride on the lease's heartbeat.
        let progress: Progress = Arc::new(std::sync::Mutex::new(start));
        let hb = Heartbeat::start(self, &job.id, beat, Arc::clone(&progress));
        let cancel = Arc::clone(&hb.cancel);
        let cfg = self.cfg.clone();
        let rd = tokio_util::io::SyncIoBridge::new(in_r);
        let wr = tokio_util::io::SyncIoBridge::new(out_w);
        let (c2, p2) = (Arc::clone(&cancel), Arc::clone(&progress));
        let ran = tokio::task::spawn_blocking(move || {
            run_piped(&cfg, &spec, rd, wr, &c2, &mut |p| {
                let mut at = p2.lock().expect("not poisoned");
                *at = (
                    start.0 + p.frames as i64,
                    p.total.map(|t| t as i64).or(at.1),
                );
            })
        })
        .await
        .context("the job thread")?;
        hb.stop();
        let fed = feeder.await.context("the input task")?;
        let sealed = sealer.await.context("the output task")?;
        if hb.lost.load(Ordering::Relaxed) {
            return Err(LeaseLost.into());
        }
        if let Err(e) = fed {
            // The input could not be read (storage gone for a while, a piece
            // failing verification): what the job then did — fail on an empty
            // or cut input, or even finish — is a consequence, never its
            // result. The reading error decides (a storage outage is retried;
            // the cluster test once saw it reported as a permanent input_empty).
            return Err(e.context("reading the job's input"));
        }
        let done = ran?;
        Ok((done, sealed?))
    }
}

/// The worker lost its job's lease (it was too slow to renew, or presumed dead).
#[derive(Debug, thiserror::Error)]
#[error("the job's lease was lost to another worker")]
struct LeaseLost;
