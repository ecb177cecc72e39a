//! Segments of a long job: cut at keyframes, leased and run by any worker
//! while the job runs, each with its own lease, attempts and (hidden)
//! output, so several workers share one video and a crash costs only the
//! unfinished segments.
//!
//! The job itself stays leased by one worker (its coordinator), which cuts
//! it, runs segments too, and joins the results. A segment is leasable only
//! while its job is running and not cancelled, so ending the job stops its
//! segments: their heartbeats say so and their results are refused. Like a
//! job row, a segment row carries a MAC the catalog can store but neither
//! make nor check.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::db::{Backend, Catalog, now_ms};
use crate::error::{CatalogError, Result};

/// Where a segment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentState {
    /// Waiting for a worker.
    Queued,
    /// A worker holds its lease.
    Running,
    /// Its output is stored.
    Done,
    /// Failed for good (the job fails with it).
    Failed,
}

impl SegmentState {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
}

impl fmt::Display for SegmentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SegmentState {
    type Err = CatalogError;
    fn from_str(s: &str) -> Result<Self> {
        [Self::Queued, Self::Running, Self::Done, Self::Failed]
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| CatalogError::Invalid(format!("unknown segment state {s:?}")))
    }
}

/// A segment row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobSegment {
    /// The job it belongs to.
    pub job_id: String,
    /// Position in the video, from 0.
    pub index: i64,
    /// The job's tenant.
    pub tenant_id: String,
    /// First keyframe's time, microseconds (none: from the start).
    pub start_us: Option<i64>,
    /// The next segment's first keyframe (none: to the end).
    pub end_us: Option<i64>,
    /// MAC over [`JobSegment::payload`], hex.
    pub payload_mac: String,
    /// Version of the MAC key.
    pub mac_key_version: i64,
    /// State.
    pub state: SegmentState,
    /// Leases taken so far.
    pub attempts: i64,
    /// Who holds (or, once done, last held) its lease.
    pub lease_owner: Option<String>,
    /// When the lease runs out, ms.
    pub lease_until_ms: Option<i64>,
    /// The hidden video its output is sealed into.
    pub output_video_id: Option<String>,
    /// Frames made (progress; the final count once done).
    pub frames_done: i64,
    /// The last error.
    pub last_error: Option<String>,
}

const SEG_COLS: &str = "job_id, idx, tenant_id, start_us, end_us, payload_mac, mac_key_version, state, attempts, lease_owner, lease_until_ms, output_video_id, frames_done, last_error";

fn segment(r: &AnyRow) -> Result<JobSegment> {
    let state: String = r.try_get("state")?;
    Ok(JobSegment {
        job_id: r.try_get("job_id")?,
        index: r.try_get("idx")?,
        tenant_id: r.try_get("tenant_id")?,
        start_us: r.try_get("start_us")?,
        end_us: r.try_get("end_us")?,
        payload_mac: r.try_get("payload_mac")?,
        mac_key_version: r.try_get("mac_key_version")?,
        state: state.parse()?,
        attempts: r.try_get("attempts")?,
        lease_owner: r.try_get("lease_owner")?,
        lease_until_ms: r.try_get("lease_until_ms")?,
        output_video_id: r.try_get("output_video_id")?,
        frames_done: r.try_get("frames_done")?,
        last_error: r.try_get("last_error")?,
    })
}

/// The bytes a segment's MAC covers: which job, whose, which part of the
/// video. A row moved to another job or tenant, or cut elsewhere, fails.
pub fn segment_payload_bytes(
    job_id: &str,
    tenant_id: &str,
    index: i64,
    start_us: Option<i64>,
    end_us: Option<i64>,
) -> Vec<u8> {
    let t = |v: Option<i64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    format!(
        "bettervideo segment v1\n{job_id}\n{tenant_id}\n{index}\n{}\n{}",
        t(start_us),
        t(end_us)
    )
    .into_bytes()
}

impl JobSegment {
    /// [`segment_payload_bytes`] of this row as it is now.
    pub fn payload(&self) -> Vec<u8> {
        segment_payload_bytes(
            &self.job_id,
            &self.tenant_id,
            self.index,
            self.start_us,
            self.end_us,
        )
    }

    /// Whether it can no longer finish: failed, or out of the
    /// `max_attempts` its job allows (queued again, or its worker died).
    pub fn is_lost(&self, max_attempts: i64, now_ms: i64) -> bool {
        match self.state {
            SegmentState::Failed => true,
            SegmentState::Done => false,
            SegmentState::Queued => self.attempts >= max_attempts,
            SegmentState::Running => {
                self.lease_until_ms.is_some_and(|t| t < now_ms) && self.attempts >= max_attempts
            }
        }
    }
}

/// A segment to record (its MAC made by the caller).
#[derive(Debug, Clone)]
pub struct NewSegment {
    /// Position, from 0.
    pub index: i64,
    /// Start, microseconds.
    pub start_us: Option<i64>,
    /// End, microseconds.
    pub end_us: Option<i64>,
    /// MAC, hex.
    pub payload_mac: String,
    /// MAC key version.
    pub mac_key_version: i64,
}

/// Whether `owner` leases running job `job_id` (inside `tx`).
async fn holds_job(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    job_id: &str,
    owner: &str,
) -> Result<Option<String>> {
    let r = sqlx::query(
        "SELECT tenant_id FROM jobs WHERE id = $1 AND lease_owner = $2 AND state = 'running'",
    )
    .bind(job_id)
    .bind(owner)
    .fetch_optional(&mut **tx)
    .await?;
    r.map(|r| Ok(r.try_get(0)?)).transpose()
}

impl Catalog {
    /// Records the segments of job `job_id`, which `owner` must lease, once:
    /// a job already cut keeps its segments (a resumed job continues where
    /// the dead attempt stopped) and those are returned instead.
    pub async fn plan_segments(
        &self,
        job_id: &str,
        owner: &str,
        segs: &[NewSegment],
    ) -> Result<Vec<JobSegment>> {
        let mut tx = self.write_tx().await?;
        let tenant = holds_job(&mut tx, job_id, owner)
            .await?
            .ok_or(CatalogError::Conflict("the job's lease was lost"))?;
        let known: i64 = sqlx::query("SELECT COUNT(*) FROM job_segments WHERE job_id = $1")
            .bind(job_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if known == 0 {
            for s in segs {
                sqlx::query(
                    "INSERT INTO job_segments (job_id, idx, tenant_id, start_us, end_us, payload_mac,
                        mac_key_version, state, attempts, not_before_ms, frames_done)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', 0, 0, 0)",
                )
                .bind(job_id)
                .bind(s.index)
                .bind(&tenant)
                .bind(s.start_us)
                .bind(s.end_us)
                .bind(&s.payload_mac)
                .bind(s.mac_key_version)
                .execute(&mut *tx)
                .await?;
            }
            if self.backend() == Backend::Postgres {
                // Idle workers wake at once to take a share.
                sqlx::query("SELECT pg_notify('bv_jobs', '')::TEXT")
                    .fetch_one(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        self.segments(job_id).await
    }

    /// A job's segments, in order (none for a job run whole).
    pub async fn segments(&self, job_id: &str) -> Result<Vec<JobSegment>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SEG_COLS} FROM job_segments WHERE job_id = $1 ORDER BY idx"
        )))
        .bind(job_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(segment)
        .collect()
    }

    /// How many of a job's segments there are and how many are done.
    pub async fn segment_counts(&self, job_id: &str) -> Result<(i64, i64)> {
        let r = sqlx::query(
            "SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN state = 'done' THEN 1 ELSE 0 END), 0) AS BIGINT)
             FROM job_segments WHERE job_id = $1",
        )
        .bind(job_id)
        .fetch_one(&self.pool)
        .await?;
        Ok((r.try_get(0)?, r.try_get(1)?))
    }

    /// Gives `owner` the next segment to run for `lease_ms`: a queued one
    /// past its backoff, or a running one whose worker stopped renewing it,
    /// of a job that is running and not cancelled, with attempts left (the
    /// job's own limit). `only_job` keeps to one job (its coordinator's).
    pub async fn lease_segment(
        &self,
        owner: &str,
        lease_ms: i64,
        only_job: Option<&str>,
    ) -> Result<Option<JobSegment>> {
        let now = now_ms();
        let skip_locked = if self.backend() == Backend::Postgres {
            "FOR UPDATE OF s SKIP LOCKED"
        } else {
            ""
        };
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE job_segments SET state = 'running', lease_owner = $1, lease_until_ms = $2,
                attempts = attempts + 1
             WHERE (job_id, idx) = (
                SELECT s.job_id, s.idx FROM job_segments s JOIN jobs j ON j.id = s.job_id
                 WHERE j.state = 'running' AND j.cancel_requested = 0
                   AND ((s.state = 'queued' AND s.not_before_ms <= $3)
                        OR (s.state = 'running' AND s.lease_until_ms < $3))
                   AND s.attempts < j.max_attempts
                   AND ($4 = '' OR s.job_id = $4)
                 ORDER BY j.priority DESC, j.created_ms, s.job_id, s.idx LIMIT 1 {skip_locked})
             RETURNING {SEG_COLS}"
        )))
        .bind(owner)
        .bind(now + lease_ms)
        .bind(now)
        .bind(only_job.unwrap_or(""))
        .fetch_optional(&self.pool)
        .await?;
        r.as_ref().map(segment).transpose()
    }

    /// Renews a segment's lease and records its progress; returns whether
    /// it should stop (its job was cancelled or is no longer running).
    /// `Conflict` when the lease is no longer `owner`'s.
    pub async fn heartbeat_segment(
        &self,
        job_id: &str,
        index: i64,
        owner: &str,
        lease_ms: i64,
        frames_done: i64,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE job_segments SET lease_until_ms = $1, frames_done = $2
             WHERE job_id = $3 AND idx = $4 AND lease_owner = $5 AND state = 'running'",
        )
        .bind(now_ms() + lease_ms)
        .bind(frames_done)
        .bind(job_id)
        .bind(index)
        .bind(owner)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(CatalogError::Conflict("the segment's lease was lost"));
        }
        let r = sqlx::query("SELECT state, cancel_requested FROM jobs WHERE id = $1")
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match r {
            Some(r) => r.try_get::<String, _>(0)? != "running" || r.try_get::<i64, _>(1)? != 0,
            None => true,
        })
    }

    /// Records the (hidden) video a running segment writes into, so a later
    /// attempt can shred what a dead one left.
    pub async fn set_segment_output(
        &self,
        job_id: &str,
        index: i64,
        owner: &str,
        video: &str,
    ) -> Result<()> {
        let n = sqlx::query(
            "UPDATE job_segments SET output_video_id = $1
             WHERE job_id = $2 AND idx = $3 AND lease_owner = $4 AND state = 'running'",
        )
        .bind(video)
        .bind(job_id)
        .bind(index)
        .bind(owner)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(CatalogError::Conflict("the segment's lease was lost"));
        }
        Ok(())
    }

    /// Marks a segment done with `frames` made, while `owner` still leases
    /// it and its job still runs (a result for a job that ended is refused
    /// with `Conflict`, and its caller shreds it). Its output video's size
    /// is recorded; the video stays hidden (never listed, never served).
    pub async fn complete_segment(
        &self,
        job_id: &str,
        index: i64,
        owner: &str,
        size: i64,
        frames: i64,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let n = sqlx::query(
            "UPDATE job_segments SET state = 'done', frames_done = $1, finished_ms = $2
             WHERE job_id = $3 AND idx = $4 AND lease_owner = $5 AND state = 'running'
               AND EXISTS (SELECT 1 FROM jobs WHERE id = $3 AND state = 'running' AND cancel_requested = 0)",
        )
        .bind(frames)
        .bind(now_ms())
        .bind(job_id)
        .bind(index)
        .bind(owner)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(CatalogError::Conflict(
                "the segment's lease was lost or its job ended",
            ));
        }
        sqlx::query(
            "UPDATE videos SET size_bytes = $1 WHERE state = 'uploading'
               AND id = (SELECT output_video_id FROM job_segments WHERE job_id = $2 AND idx = $3)",
        )
        .bind(size)
        .bind(job_id)
        .bind(index)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a failed attempt of a segment: with `retry` it is queued again
    /// after `backoff_ms` (the lease query stops it once the job's attempts
    /// are used up), otherwise it fails for good. Returns its state.
    pub async fn fail_segment(
        &self,
        job_id: &str,
        index: i64,
        owner: &str,
        error: &str,
        retry: bool,
        backoff_ms: i64,
    ) -> Result<SegmentState> {
        let error: String = error.chars().take(1000).collect();
        let now = now_ms();
        let to = if retry {
            SegmentState::Queued
        } else {
            SegmentState::Failed
        };
        let n = sqlx::query(
            "UPDATE job_segments SET state = $1, lease_owner = NULL, lease_until_ms = NULL,
                not_before_ms = $2, last_error = $3, finished_ms = CASE WHEN $1 = 'failed' THEN $2 END
             WHERE job_id = $4 AND idx = $5 AND lease_owner = $6 AND state = 'running'",
        )
        .bind(to.as_str())
        .bind(now + if retry { backoff_ms } else { 0 })
        .bind(&error)
        .bind(job_id)
        .bind(index)
        .bind(owner)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(CatalogError::Conflict("the segment's lease was lost"));
        }
        Ok(to)
    }
}
