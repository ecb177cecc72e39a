//! Jobs run in segments (decision 0023): the worker that leases a long job
//! becomes its coordinator. It cuts the video at keyframes (from the probe's
//! record, so no media is parsed here), records the segments with their MACs,
//! runs segments itself while idle workers take the others, and, once every
//! segment is done, joins them in a sandbox by stream copy with the
//! original's other streams. Each segment's output is sealed into a hidden
//! video (never listed or served) and shredded when the job ends.
//!
//! A coordinator that dies loses only its lease: the next one finds the
//! segments already recorded and continues with those not yet done.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bv_catalog::{Job, JobSegment, NewSegment, SegmentState, Video, VideoState};
use bv_job::codes::{self, permanent};
use bv_job::{Enhance, JobKind, JoinSpec, Segment, Segmenting};

use super::heartbeat::{Beat, Heartbeat};
use super::{Ended, Worker, output_media};
use crate::error::{WorkerError, WorkerResult};

impl Worker {
    /// How job `job` on `input` is cut: the segments it already has (a
    /// resumed job), or a new cut when the video is long enough for this
    /// worker's `segment_seconds`; `None` runs it whole.
    pub(super) async fn segment_plan(
        &self,
        job: &Job,
        input: &Video,
    ) -> WorkerResult<Option<Vec<Segment>>> {
        let known = self.catalog.segments(&job.id).await?;
        if !known.is_empty() {
            return Ok(Some(known.iter().map(segment_of).collect()));
        }
        let w = &self.cfg.worker;
        Ok(input
            .media
            .as_deref()
            .and_then(Segmenting::from_media)
            .and_then(|s| s.cut(w.segment_seconds, w.max_segments)))
    }

    /// Runs job `job` in the segments `cut` and joins them.
    pub(super) async fn segmented(
        &self,
        job: &Job,
        preset: &Enhance,
        input: &Video,
        cut: Vec<Segment>,
    ) -> WorkerResult<Ended> {
        let mut new = Vec::with_capacity(cut.len());
        for s in &cut {
            let (payload_mac, mac_key_version) = bv_service::jobs::segment_mac(
                &self.vault,
                job,
                s.index as i64,
                s.start_us,
                s.end_us,
            )
            .await?;
            new.push(NewSegment {
                index: s.index as i64,
                start_us: s.start_us,
                end_us: s.end_us,
                payload_mac,
                mac_key_version,
            });
        }
        let segs = match self.catalog.plan_segments(&job.id, &self.owner, &new).await {
            Ok(s) => s,
            Err(bv_catalog::CatalogError::Conflict(_)) => return Ok(Ended::LostLease),
            Err(e) => return Err(e.into()),
        };
        for s in &segs {
            if !bv_service::jobs::segment_authentic(&self.vault, s).await {
                return self.refuse_segments(job, s).await;
            }
        }
        tracing::info!(job = %job.id, segments = segs.len(), "job runs in segments");
        // The job's lease, renewed with its segments' summed progress.
        let progress = Arc::new(std::sync::Mutex::new((0, input.frames)));
        let watch = Heartbeat::start(self, &job.id, Beat::Segments, progress);
        let outcome = self.run_segments(job, &watch).await;
        watch.stop();
        match outcome? {
            Waited::AllDone(segs) => self.join(job, preset, input, &segs).await,
            Waited::Lost => Ok(Ended::LostLease),
            Waited::Cancelled => {
                self.shred_segments(job).await;
                self.catalog
                    .finish_cancelled_job(&job.id, &self.owner)
                    .await?;
                Ok(Ended::Cancelled)
            }
            Waited::Failed(error) => {
                // The segment used up the job's attempts: the job ends with its error.
                let text = format!("segment failed: {error}");
                let ended = match self
                    .catalog
                    .fail_job(&job.id, &self.owner, &text, false, 0)
                    .await
                {
                    Ok(_) => Ended::Failed(text),
                    Err(bv_catalog::CatalogError::Conflict(_)) => return Ok(Ended::LostLease),
                    Err(e) => return Err(e.into()),
                };
                self.retire_input(job).await;
                self.shred_segments(job).await;
                Ok(ended)
            }
        }
    }

    /// Runs this job's segments while any is free, then waits for those
    /// other workers hold.
    async fn run_segments(&self, job: &Job, watch: &Heartbeat) -> WorkerResult<Waited> {
        let poll = Duration::from_millis(self.cfg.worker.poll_ms.clamp(50, 1_000));
        loop {
            if watch.lost.load(Ordering::Relaxed) {
                return Ok(Waited::Lost);
            }
            if watch.cancel.load(Ordering::Relaxed) {
                return Ok(Waited::Cancelled);
            }
            if let Some(seg) = self
                .catalog
                .lease_segment(&self.owner, self.lease_ms(), Some(&job.id))
                .await?
            {
                let (_, ended) = self.run_segment(seg).await?;
                tracing::debug!(job = %job.id, ?ended, "segment attempt ended");
                continue;
            }
            let segs = self.catalog.segments(&job.id).await?;
            if segs.iter().all(|s| s.state == SegmentState::Done) {
                return Ok(Waited::AllDone(segs));
            }
            let now = bv_catalog::now_ms();
            if let Some(s) = segs.iter().find(|s| s.is_lost(job.max_attempts, now)) {
                let why = s
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "its workers stopped and no attempts are left".into());
                return Ok(Waited::Failed(why));
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// Joins the finished segments with the original's other streams into
    /// the job's output, then settles the job as a whole run would.
    async fn join(
        &self,
        job: &Job,
        preset: &Enhance,
        input: &Video,
        segs: &[JobSegment],
    ) -> WorkerResult<Ended> {
        let Some((out, ext)) = self.new_output(job, preset, input).await? else {
            return Ok(Ended::LostLease);
        };
        let mut inputs = vec![input.id.clone()];
        let mut parts = Vec::with_capacity(segs.len());
        for s in segs {
            let video = s.output_video_id.clone().ok_or_else(|| {
                WorkerError::Internal(format!("segment {} is done without an output", s.index))
            })?;
            let len: i64 = self
                .catalog
                .pieces(&video)
                .await?
                .iter()
                .map(|p| p.plain_len)
                .sum();
            parts.push((len as u64, segment_of(s)));
            inputs.push(video);
        }
        let original_len: i64 = self
            .catalog
            .pieces(&input.id)
            .await?
            .iter()
            .map(|p| p.plain_len)
            .sum();
        let join = JoinSpec {
            original_len: original_len as u64,
            parts,
        };
        let spec = self.cfg.runner.piped_spec(JobKind::Join(join), ext);
        let frames: i64 = segs.iter().map(|s| s.frames_done).sum();
        let ran = self
            .stream(
                job,
                spec,
                &inputs,
                Some(&out.id),
                Beat::Job,
                (frames, Some(frames)),
            )
            .await;
        let (mut done, size) = match ran {
            Ok(r) => r,
            Err(e) => {
                self.shred(job, &out.id).await;
                if matches!(e, WorkerError::LeaseLost) {
                    return Ok(Ended::LostLease);
                }
                let code = e.code();
                if code == codes::CANCELLED {
                    self.shred_segments(job).await;
                    self.catalog
                        .finish_cancelled_job(&job.id, &self.owner)
                        .await?;
                    return Ok(Ended::Cancelled);
                }
                // A retry only joins again: the segments stay done.
                let ended = self.fail(job, code, &format!("joining: {e}")).await?;
                if matches!(ended, Ended::Failed(_)) {
                    self.shred_segments(job).await;
                }
                return Ok(ended);
            }
        };
        done.frames = frames as u64;
        // Charged for the frames the segments did, at most what was reserved.
        let cost = bv_service::jobs::settle(job.price, input.frames, done.frames);
        match self
            .catalog
            .complete_job(
                &job.id,
                &self.owner,
                Some((&out.id, size as i64)),
                cost,
                Some(frames),
                self.retain(&job.tenant_id).await?,
            )
            .await
        {
            Ok(()) => {}
            Err(bv_catalog::CatalogError::Conflict(_)) => {
                self.shred(job, &out.id).await;
                return Ok(Ended::LostLease);
            }
            Err(e) => return Err(e.into()),
        }
        let media = output_media(input.media.as_deref(), preset.codec, &done);
        let (w, h) = done.output_size;
        if let Err(e) = self
            .catalog
            .set_video_media(
                &job.tenant_id,
                &out.id,
                &media.to_string(),
                frames,
                w as i64,
                h as i64,
            )
            .await
        {
            tracing::warn!(job = %job.id, error = %e, "could not record the output's media facts");
        }
        self.shred_segments(job).await;
        tracing::info!(job = %job.id, frames, segments = segs.len(), "job succeeded in segments");
        Ok(Ended::Succeeded)
    }

    /// Runs one leased segment: its MAC and its job's checked, the part of
    /// the input enhanced in a sandbox, the result sealed into a hidden video.
    pub(super) async fn run_segment(&self, seg: JobSegment) -> WorkerResult<(String, Ended)> {
        let job = match self.catalog.job(&seg.tenant_id, &seg.job_id).await {
            Ok(j) => j,
            Err(bv_catalog::CatalogError::NotFound) => {
                // A row naming a job of another tenant (or none) was altered.
                return self
                    .refuse_segment_row(seg, None, "no such job for its tenant")
                    .await;
            }
            Err(e) => return Err(e.into()),
        };
        if !bv_service::jobs::segment_authentic(&self.vault, &seg).await
            || !bv_service::jobs::authentic(&self.vault, &job).await
        {
            return self
                .refuse_segment_row(seg, Some(&job.tenant_id), "payload MAC mismatch")
                .await;
        }
        let ended = self.segment_attempt(&job, &seg).await?;
        Ok((job.id, ended))
    }

    async fn segment_attempt(&self, job: &Job, seg: &JobSegment) -> WorkerResult<Ended> {
        let JobKind::Enhance(mut preset) = JobKind::from_stored(&job.preset)? else {
            return Err(WorkerError::Internal(
                "a segment of a job that is no enhancement".into(),
            ));
        };
        if let Some(old) = &seg.output_video_id {
            // What a dead attempt left behind goes first.
            self.shred(job, old).await;
        }
        let out = self
            .catalog
            .create_video(
                &job.tenant_id,
                &format!("segment-{:04}.nut", seg.index),
                "video/x-nut",
                0,
                VideoState::Uploading,
            )
            .await?;
        if self
            .catalog
            .set_segment_output(&job.id, seg.index, &self.owner, &out.id)
            .await
            .is_err()
        {
            self.shred(job, &out.id).await;
            return Ok(Ended::LostLease);
        }
        preset.segment = Some(segment_of(seg));
        let spec = self.cfg.runner.piped_spec(JobKind::Enhance(preset), "nut");
        let inputs = [job.input_video_id.clone()];
        let ran = self
            .stream(
                job,
                spec,
                &inputs,
                Some(&out.id),
                Beat::Segment(seg.index),
                (0, None),
            )
            .await;
        match ran {
            Ok((done, size)) => {
                match self
                    .catalog
                    .complete_segment(
                        &job.id,
                        seg.index,
                        &self.owner,
                        size as i64,
                        done.frames as i64,
                    )
                    .await
                {
                    Ok(()) => {
                        tracing::info!(job = %job.id, segment = seg.index, frames = done.frames,
                            seconds = done.seconds, "segment done");
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
                let code = e.code();
                let text = format!("{code}: {e}");
                let retry = !permanent(code);
                let backoff = 5_000 * seg.attempts.max(1);
                match self
                    .catalog
                    .fail_segment(&job.id, seg.index, &self.owner, &text, retry, backoff)
                    .await
                {
                    Ok(_) if code == codes::CANCELLED => Ok(Ended::Cancelled),
                    Ok(SegmentState::Queued) => Ok(Ended::Retrying(text)),
                    Ok(_) => Ok(Ended::Failed(text)),
                    Err(bv_catalog::CatalogError::Conflict(_)) => Ok(Ended::LostLease),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// The coordinator found an altered segment row: the job is refused
    /// as an altered job row is, and nothing more runs.
    async fn refuse_segments(&self, job: &Job, s: &JobSegment) -> WorkerResult<Ended> {
        tracing::warn!(action = "job.refused", tenant = %job.tenant_id, job = %job.id,
            segment = s.index, "segment row does not match its MAC: refused");
        self.shred_segments(job).await;
        match self
            .catalog
            .fail_job(
                &job.id,
                &self.owner,
                "refused: a segment row does not match its MAC (altered)",
                false,
                0,
            )
            .await
        {
            Ok(_) => Ok(Ended::Refused),
            Err(bv_catalog::CatalogError::Conflict(_)) => Ok(Ended::LostLease),
            Err(e) => Err(e.into()),
        }
    }

    /// A leased segment row that was altered: failed for good, nothing runs,
    /// audited (in its tenant's log only when its job is that tenant's).
    async fn refuse_segment_row(
        &self,
        seg: JobSegment,
        tenant: Option<&str>,
        why: &str,
    ) -> WorkerResult<(String, Ended)> {
        tracing::warn!(action = "job.segment.refused", job = %seg.job_id, segment = seg.index,
            why, "segment row refused");
        let _ = self
            .catalog
            .fail_segment(
                &seg.job_id,
                seg.index,
                &self.owner,
                "refused: altered",
                false,
                0,
            )
            .await;
        self.audit(
            tenant,
            "job.segment.refused",
            &format!("job:{}", seg.job_id),
            "refused",
            serde_json::json!({ "segment": seg.index, "why": why }),
        )
        .await;
        Ok((seg.job_id, Ended::Refused))
    }

    /// Shreds every segment output of a job that ended.
    async fn shred_segments(&self, job: &Job) {
        match self.catalog.segments(&job.id).await {
            Ok(segs) => {
                for v in segs.iter().filter_map(|s| s.output_video_id.as_deref()) {
                    self.shred(job, v).await;
                }
            }
            Err(e) => tracing::warn!(job = %job.id, error = %e,
                "could not list the job's segments to remove their outputs"),
        }
    }
}

/// How waiting for a job's segments ended.
enum Waited {
    /// Every segment is done (in order).
    AllDone(Vec<JobSegment>),
    /// The job's lease went to another worker.
    Lost,
    /// The job's owner cancelled it.
    Cancelled,
    /// A segment failed for good, with this error.
    Failed(String),
}

/// The engine's view of a segment row.
fn segment_of(s: &JobSegment) -> Segment {
    Segment {
        index: s.index as usize,
        start_us: s.start_us,
        end_us: s.end_us,
    }
}
