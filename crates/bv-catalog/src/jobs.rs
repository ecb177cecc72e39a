//! The job queue: submit (with a credit reservation), lease with heartbeats
//! and a visibility timeout, bounded retries with backoff, cancellation, and
//! exactly-once settlement.
//!
//! The catalog stores each job's payload MAC but cannot make or check one:
//! the key is the vault's (see `bv-api`'s job code). A lease is the row's
//! `lease_owner` and `lease_until_ms`; a worker that stops heartbeating loses
//! its job to the next `lease_job` once the lease expires, and every state
//! change a worker makes is conditional on still holding the lease, so a
//! worker that comes back from the dead cannot settle a job twice.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::credits::{OPEN_RESERVED, SETTLED};
use crate::db::{Backend, Catalog, now_ms};
use crate::error::{CatalogError, Result};
use crate::retention::{Retain, Rule, schedule_in};

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// A worker holds its lease.
    Running,
    /// Done; the output exists and the cost is captured.
    Succeeded,
    /// Gave up (error, refused, or out of attempts); the reservation is released.
    Failed,
    /// Cancelled; the reservation is released.
    Cancelled,
}

impl JobState {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = CatalogError;
    fn from_str(s: &str) -> Result<Self> {
        [
            Self::Queued,
            Self::Running,
            Self::Succeeded,
            Self::Failed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
        .ok_or_else(|| CatalogError::Invalid(format!("unknown job state {s:?}")))
    }
}

/// A job row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Job {
    /// Id.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Who submitted it.
    pub principal_id: String,
    /// The video to enhance.
    pub input_video_id: String,
    /// What to do (JSON, opaque here).
    pub preset: String,
    /// Credits reserved.
    pub price: i64,
    /// MAC over the payload, hex.
    pub payload_mac: String,
    /// Version of the MAC key.
    pub mac_key_version: i64,
    /// State.
    pub state: JobState,
    /// Higher runs first.
    pub priority: i64,
    /// Leases taken so far.
    pub attempts: i64,
    /// Most leases allowed.
    pub max_attempts: i64,
    /// Holder of the lease.
    pub lease_owner: Option<String>,
    /// Whether cancellation was asked for.
    pub cancel_requested: bool,
    /// The last error, for failed and retried jobs.
    pub last_error: Option<String>,
    /// The result, once succeeded.
    pub output_video_id: Option<String>,
    /// Frames done (progress).
    pub frames_done: i64,
    /// Frames in all, when known.
    pub frames_total: Option<i64>,
    /// Created, ms.
    pub created_ms: i64,
    /// First leased, ms.
    pub started_ms: Option<i64>,
    /// Finished, ms.
    pub finished_ms: Option<i64>,
}

const JOB_COLS: &str = "id, tenant_id, principal_id, input_video_id, preset, price, payload_mac, mac_key_version, state, priority, attempts, max_attempts, lease_owner, cancel_requested, last_error, output_video_id, frames_done, frames_total, created_ms, started_ms, finished_ms";

fn job(r: &AnyRow) -> Result<Job> {
    let state: String = r.try_get("state")?;
    let cancel: i64 = r.try_get("cancel_requested")?;
    Ok(Job {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        principal_id: r.try_get("principal_id")?,
        input_video_id: r.try_get("input_video_id")?,
        preset: r.try_get("preset")?,
        price: r.try_get("price")?,
        payload_mac: r.try_get("payload_mac")?,
        mac_key_version: r.try_get("mac_key_version")?,
        state: state.parse()?,
        priority: r.try_get("priority")?,
        attempts: r.try_get("attempts")?,
        max_attempts: r.try_get("max_attempts")?,
        lease_owner: r.try_get("lease_owner")?,
        cancel_requested: cancel != 0,
        last_error: r.try_get("last_error")?,
        output_video_id: r.try_get("output_video_id")?,
        frames_done: r.try_get("frames_done")?,
        frames_total: r.try_get("frames_total")?,
        created_ms: r.try_get("created_ms")?,
        started_ms: r.try_get("started_ms")?,
        finished_ms: r.try_get("finished_ms")?,
    })
}

/// The bytes a job's payload MAC covers: everything that decides what runs,
/// for whom, on what and at what price. Any change to these in the row makes
/// the MAC fail.
pub fn payload_bytes(
    id: &str,
    tenant_id: &str,
    input_video_id: &str,
    preset: &str,
    price: i64,
) -> Vec<u8> {
    format!("bettervideo job v1\n{id}\n{tenant_id}\n{input_video_id}\n{price}\n{preset}")
        .into_bytes()
}

impl Job {
    /// [`payload_bytes`] of this row as it is now.
    pub fn payload(&self) -> Vec<u8> {
        payload_bytes(
            &self.id,
            &self.tenant_id,
            &self.input_video_id,
            &self.preset,
            self.price,
        )
    }
}

/// A job to submit. The caller makes the id first, because the MAC covers it.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    /// Id (from [`crate::new_id`]).
    pub id: &'a str,
    /// Tenant.
    pub tenant_id: &'a str,
    /// Submitter.
    pub principal_id: &'a str,
    /// Input video (must be the tenant's, uploaded).
    pub input_video_id: &'a str,
    /// Preset JSON.
    pub preset: &'a str,
    /// Credits to reserve.
    pub price: i64,
    /// Payload MAC, hex.
    pub payload_mac: &'a str,
    /// MAC key version.
    pub mac_key_version: i64,
    /// Priority (higher first).
    pub priority: i64,
    /// Most leases.
    pub max_attempts: i64,
    /// Client's idempotency key: a second submit with it returns the first job.
    pub idempotency_key: Option<&'a str>,
    /// The tenant's own key, sealed for this job's life (cleared when it ends).
    pub custody: Option<&'a str>,
    /// Refuse the job (`TooManyJobs`) when the tenant already has this many
    /// queued or running, probes aside (none or 0: no limit; a probe is
    /// never refused).
    pub max_active: Option<i64>,
}

/// The preset of a video's probe (queued by the service after each upload,
/// free, and not counted against a tenant's active jobs).
pub const PROBE_PRESET: &str = r#"{"kind":"probe"}"#;

/// The reservation a job holds, from the ledger (not from the job row, which
/// a tamperer could have changed).
async fn reserved_for(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    job_id: &str,
) -> Result<Option<(String, i64)>> {
    let r = sqlx::query(
        "SELECT tenant_id, amount FROM credit_entries WHERE job_id = $1 AND kind = 'reserve'",
    )
    .bind(job_id)
    .fetch_optional(&mut **tx)
    .await?;
    r.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
}

/// Releases a job's reservation (once; a second release is a no-op).
async fn release(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    job_id: &str,
    note: &str,
) -> Result<()> {
    if let Some((tenant, amount)) = reserved_for(tx, job_id).await? {
        sqlx::query(
            "INSERT INTO credit_entries (id, tenant_id, kind, amount, job_id, note, created_ms)
             SELECT $1, $2, 'release', $3, $4, $5, $6
             WHERE NOT EXISTS (SELECT 1 FROM credit_entries
                               WHERE job_id = $4 AND kind IN ('capture', 'release'))",
        )
        .bind(crate::new_id()?)
        .bind(tenant)
        .bind(amount)
        .bind(job_id)
        .bind(note)
        .bind(now_ms())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Ends a running job `owner` still leases in `state` (failed or cancelled),
/// keeping `error` when given, and releases its reservation; commits `tx`.
async fn end_leased(
    mut tx: sqlx::Transaction<'static, sqlx::Any>,
    id: &str,
    owner: &str,
    state: JobState,
    error: Option<&str>,
) -> Result<()> {
    let n = sqlx::query(
        "UPDATE jobs SET state = $1, lease_owner = NULL, finished_ms = $2, last_error = COALESCE($3, last_error),
         custody = NULL WHERE id = $4 AND lease_owner = $5 AND state = 'running'",
    )
    .bind(state.as_str())
    .bind(now_ms())
    .bind(error)
    .bind(id)
    .bind(owner)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(CatalogError::Conflict("the job's lease was lost"));
    }
    release(&mut tx, id, &format!("job {state}")).await?;
    tx.commit().await?;
    Ok(())
}

impl Catalog {
    async fn tenant_lock(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        tenant_id: &str,
    ) -> Result<()> {
        if self.backend() == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))::TEXT")
                .bind(tenant_id)
                .fetch_one(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Submits a job: reserves its price (refused with `InsufficientCredits`
    /// when the balance is short) and queues it, in one transaction. With an
    /// idempotency key already used by the tenant, returns that job instead.
    pub async fn submit_job(&self, n: &NewJob<'_>) -> Result<Job> {
        if n.price < 0 || n.max_attempts < 1 {
            return Err(CatalogError::Invalid(
                "price must be >= 0 and max_attempts >= 1".into(),
            ));
        }
        if let Some(k) = n.idempotency_key
            && (k.is_empty() || k.len() > 255 || k.chars().any(char::is_control))
        {
            return Err(CatalogError::Invalid(
                "idempotency key: 1-255 characters".into(),
            ));
        }
        let mut tx = self.write_tx().await?;
        self.tenant_lock(&mut tx, n.tenant_id).await?;
        if let Some(k) = n.idempotency_key {
            let prior = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {JOB_COLS} FROM jobs WHERE tenant_id = $1 AND idempotency_key = $2"
            )))
            .bind(n.tenant_id)
            .bind(k)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(r) = prior {
                return job(&r);
            }
        }
        if let Some(limit) = n.max_active.filter(|l| *l > 0 && n.preset != PROBE_PRESET) {
            let active: i64 = sqlx::query(
                "SELECT COUNT(*) FROM jobs
                 WHERE tenant_id = $1 AND state IN ('queued', 'running') AND preset <> $2",
            )
            .bind(n.tenant_id)
            .bind(PROBE_PRESET)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
            if active >= limit {
                return Err(CatalogError::TooManyJobs { limit });
            }
        }
        let input = sqlx::query(
            "SELECT 1 FROM videos WHERE tenant_id = $1 AND id = $2 AND state = 'uploaded'",
        )
        .bind(n.tenant_id)
        .bind(n.input_video_id)
        .fetch_optional(&mut *tx)
        .await?;
        if input.is_none() {
            return Err(CatalogError::NotFound);
        }
        let now = now_ms();
        // Free jobs (probes) leave no trace in the ledger.
        let reserved = if n.price == 0 {
            1
        } else {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO credit_entries (id, tenant_id, kind, amount, job_id, note, created_ms)
             SELECT $2, $1, 'reserve', $3, $4, 'job submitted', $5
             WHERE {SETTLED} - {OPEN_RESERVED} >= $3"
            )))
            .bind(n.tenant_id)
            .bind(crate::new_id()?)
            .bind(n.price)
            .bind(n.id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
        };
        if reserved == 0 {
            drop(tx);
            let b = self.credit_balance(n.tenant_id).await?;
            return Err(CatalogError::InsufficientCredits {
                available: b.available,
                needed: n.price,
            });
        }
        sqlx::query(
            "INSERT INTO jobs (id, tenant_id, principal_id, input_video_id, preset, price, payload_mac,
                mac_key_version, state, priority, attempts, max_attempts, not_before_ms,
                cancel_requested, idempotency_key, frames_done, created_ms, custody)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', $9, 0, $10, $11, 0, $12, 0, $11, $13)",
        )
        .bind(n.id)
        .bind(n.tenant_id)
        .bind(n.principal_id)
        .bind(n.input_video_id)
        .bind(n.preset)
        .bind(n.price)
        .bind(n.payload_mac)
        .bind(n.mac_key_version)
        .bind(n.priority)
        .bind(n.max_attempts)
        .bind(now)
        .bind(n.idempotency_key)
        .bind(n.custody)
        .execute(&mut *tx)
        .await
        .map_err(|e| CatalogError::unique(e, "job"))?;
        if self.backend() == Backend::Postgres {
            // Delivered at commit: idle workers wake up at once instead of at their next poll.
            sqlx::query("SELECT pg_notify('bv_jobs', '')::TEXT")
                .fetch_one(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.job(n.tenant_id, n.id).await
    }

    /// The sealed customer key a running or queued job holds, if any (workers
    /// only; never part of [`Job`], which the API shows).
    pub async fn job_custody(&self, id: &str) -> Result<Option<String>> {
        let r = sqlx::query("SELECT custody FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(CatalogError::NotFound)?;
        Ok(r.try_get(0)?)
    }

    /// A job of the tenant.
    pub async fn job(&self, tenant_id: &str, id: &str) -> Result<Job> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLS} FROM jobs WHERE tenant_id = $1 AND id = $2"
        )))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(CatalogError::NotFound)?;
        job(&r)
    }

    /// The tenant's jobs, newest first, optionally in one state.
    pub async fn jobs(
        &self,
        tenant_id: &str,
        state: Option<JobState>,
        limit: i64,
    ) -> Result<Vec<Job>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLS} FROM jobs WHERE tenant_id = $1 AND ($2 = '' OR state = $2)
             ORDER BY created_ms DESC, id LIMIT $3"
        )))
        .bind(tenant_id)
        .bind(state.map_or("", JobState::as_str))
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(job)
        .collect()
    }

    /// Every job of the tenant, oldest first (for its export).
    pub async fn all_jobs(&self, tenant_id: &str) -> Result<Vec<Job>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLS} FROM jobs WHERE tenant_id = $1 ORDER BY created_ms, id"
        )))
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(job)
        .collect()
    }

    /// Gives the next ready job to `owner` for `lease_ms`: a queued job whose
    /// backoff has passed, or a running one whose lease expired (its worker
    /// died). Jobs that used up their attempts are failed (and released) first.
    /// Fairly across tenants: after priority (an upload's probe first), the
    /// job of the tenant with the fewest jobs running now goes first, then
    /// the oldest — one tenant's long queue cannot hold every worker while
    /// another tenant waits.
    pub async fn lease_job(&self, owner: &str, lease_ms: i64) -> Result<Option<Job>> {
        let now = now_ms();
        let dead = sqlx::query(
            "SELECT id FROM jobs WHERE state = 'running' AND lease_until_ms < $1 AND attempts >= max_attempts",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        for r in dead {
            let id: String = r.try_get(0)?;
            let mut tx = self.write_tx().await?;
            let n = sqlx::query(
                "UPDATE jobs SET state = 'failed', lease_owner = NULL, finished_ms = $1, custody = NULL,
                    last_error = COALESCE(last_error, 'its worker stopped and no attempts are left')
                 WHERE id = $2 AND state = 'running' AND lease_until_ms < $1",
            )
            .bind(now)
            .bind(&id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 1 {
                release(&mut tx, &id, "job failed: out of attempts").await?;
            }
            tx.commit().await?;
        }
        let skip_locked = if self.backend() == Backend::Postgres {
            "FOR UPDATE OF j SKIP LOCKED"
        } else {
            ""
        };
        // Each tenant's running jobs are counted once (not once per queued row).
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "WITH busy AS (SELECT tenant_id, COUNT(*) AS n FROM jobs
                           WHERE state = 'running' AND lease_until_ms >= $3 GROUP BY tenant_id)
             UPDATE jobs SET state = 'running', lease_owner = $1, lease_until_ms = $2,
                attempts = attempts + 1, started_ms = COALESCE(started_ms, $3)
             WHERE id = (SELECT j.id FROM jobs j LEFT JOIN busy b ON b.tenant_id = j.tenant_id
                         WHERE ((j.state = 'queued' AND j.not_before_ms <= $3)
                                OR (j.state = 'running' AND j.lease_until_ms < $3))
                           AND j.attempts < j.max_attempts AND j.cancel_requested = 0
                         ORDER BY j.priority DESC, COALESCE(b.n, 0), j.created_ms, j.id
                         LIMIT 1 {skip_locked})
             RETURNING {JOB_COLS}"
        )))
        .bind(owner)
        .bind(now + lease_ms)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        r.as_ref().map(job).transpose()
    }

    /// Renews the lease and records progress; returns whether cancellation
    /// was asked for. `Conflict` when the lease is no longer `owner`'s.
    pub async fn heartbeat_job(
        &self,
        id: &str,
        owner: &str,
        lease_ms: i64,
        frames_done: i64,
        frames_total: Option<i64>,
    ) -> Result<bool> {
        let now = now_ms();
        let r = sqlx::query(
            "UPDATE jobs SET lease_until_ms = $1, frames_done = $2, frames_total = COALESCE($3, frames_total)
             WHERE id = $4 AND lease_owner = $5 AND state = 'running'
             RETURNING cancel_requested",
        )
        .bind(now + lease_ms)
        .bind(frames_done)
        .bind(frames_total)
        .bind(id)
        .bind(owner)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(CatalogError::Conflict("the job's lease was lost"))?;
        let c: i64 = r.try_get(0)?;
        Ok(c != 0)
    }

    /// Marks a job succeeded with its output and captures `cost` (at most
    /// what was reserved), once; an output video still `uploading` becomes
    /// `uploaded` with `output_size` bytes in the same transaction, so a job
    /// never has a visible output without its charge or the other way round.
    /// `frames`, when known, becomes the final progress (a job that ends
    /// between two heartbeats still says how many frames it made). `retain`
    /// schedules the output's and the original's deletion in the same
    /// transaction, so no output outlives its retention by a crash.
    /// `Conflict` when `owner` lost the lease.
    pub async fn complete_job(
        &self,
        id: &str,
        owner: &str,
        output: Option<(&str, i64)>,
        cost: i64,
        frames: Option<i64>,
        retain: Retain,
    ) -> Result<()> {
        let (output_video_id, output_size) = output.unwrap_or(("", 0));
        let mut tx = self.write_tx().await?;
        let now = now_ms();
        let n = sqlx::query(
            "UPDATE jobs SET state = 'succeeded', output_video_id = $1, finished_ms = $2, lease_owner = NULL,
             custody = NULL, frames_done = COALESCE($5, frames_done), frames_total = COALESCE($5, frames_total)
             WHERE id = $3 AND lease_owner = $4 AND state = 'running'",
        )
        .bind(output.map(|o| o.0))
        .bind(now)
        .bind(id)
        .bind(owner)
        .bind(frames)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(CatalogError::Conflict("the job's lease was lost"));
        }
        sqlx::query(
            "UPDATE videos SET state = 'uploaded', size_bytes = $1
             WHERE id = $2 AND state = 'uploading' AND tenant_id = (SELECT tenant_id FROM jobs WHERE id = $3)",
        )
        .bind(output_size)
        .bind(output_video_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if let (Some(at), Some(_)) = (retain.output_until_ms, output) {
            schedule_in(&mut tx, output_video_id, at, Rule::Output).await?;
        }
        if let Some(at) = retain.input_until_ms {
            let input: String = sqlx::query("SELECT input_video_id FROM jobs WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            schedule_in(&mut tx, &input, at, Rule::Original).await?;
        }
        let Some((tenant, reserved)) = reserved_for(&mut tx, id).await? else {
            // A free job reserved nothing and is charged nothing.
            if cost > 0 {
                return Err(CatalogError::Internal(format!(
                    "job {id} has no reservation"
                )));
            }
            tx.commit().await?;
            return Ok(());
        };
        sqlx::query(
            "INSERT INTO credit_entries (id, tenant_id, kind, amount, job_id, note, created_ms)
             VALUES ($1, $2, 'capture', $3, $4, 'job succeeded', $5)",
        )
        .bind(crate::new_id()?)
        .bind(tenant)
        .bind(cost.clamp(0, reserved))
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| CatalogError::unique(e, "capture"))?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a failed attempt. With `retry` and attempts left, the job is
    /// queued again after `backoff_ms`; otherwise it fails for good and its
    /// reservation is released. Returns the state it is left in.
    pub async fn fail_job(
        &self,
        id: &str,
        owner: &str,
        error: &str,
        retry: bool,
        backoff_ms: i64,
    ) -> Result<JobState> {
        let mut tx = self.write_tx().await?;
        let now = now_ms();
        let error: String = error.chars().take(1000).collect();
        let requeued = retry
            && sqlx::query(
                "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_until_ms = NULL,
                    not_before_ms = $1, last_error = $2
                 WHERE id = $3 AND lease_owner = $4 AND state = 'running' AND attempts < max_attempts
                   AND cancel_requested = 0",
            )
            .bind(now + backoff_ms)
            .bind(&error)
            .bind(id)
            .bind(owner)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
        if requeued {
            tx.commit().await?;
            return Ok(JobState::Queued);
        }
        end_leased(tx, id, owner, JobState::Failed, Some(&error)).await?;
        Ok(JobState::Failed)
    }

    /// Cancels a job of the tenant: a queued one at once (reservation
    /// released); a running one is flagged, its worker sees it on the next
    /// heartbeat and calls [`Catalog::finish_cancelled_job`]. Finished jobs are left as they are.
    pub async fn cancel_job(&self, tenant_id: &str, id: &str) -> Result<Job> {
        let mut tx = self.write_tx().await?;
        let now = now_ms();
        let n = sqlx::query(
            "UPDATE jobs SET state = 'cancelled', cancel_requested = 1, finished_ms = $1, custody = NULL
             WHERE tenant_id = $2 AND id = $3 AND state = 'queued'",
        )
        .bind(now)
        .bind(tenant_id)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 1 {
            release(&mut tx, id, "job cancelled").await?;
        } else {
            sqlx::query("UPDATE jobs SET cancel_requested = 1 WHERE tenant_id = $1 AND id = $2 AND state = 'running'")
                .bind(tenant_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.job(tenant_id, id).await
    }

    /// Records the (still invisible) output video a running attempt writes,
    /// so a later attempt can shred what a dead one left.
    pub async fn set_job_output(&self, id: &str, owner: &str, output_video_id: &str) -> Result<()> {
        let n = sqlx::query(
            "UPDATE jobs SET output_video_id = $1 WHERE id = $2 AND lease_owner = $3 AND state = 'running'",
        )
        .bind(output_video_id)
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(CatalogError::Conflict("the job's lease was lost"));
        }
        Ok(())
    }

    /// The worker's side of cancelling a running job.
    pub async fn finish_cancelled_job(&self, id: &str, owner: &str) -> Result<()> {
        let tx = self.write_tx().await?;
        end_leased(tx, id, owner, JobState::Cancelled, None).await
    }
}

/// Wakes an idle worker when a job is queued: PostgreSQL `LISTEN bv_jobs`
/// (SQLite has no notifications; there workers poll).
pub struct JobWaker {
    listener: sqlx::postgres::PgListener,
}

impl std::fmt::Debug for JobWaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JobWaker")
    }
}

impl JobWaker {
    /// Waits until a job is queued or `max` passes; returns whether it was woken.
    pub async fn wait(&mut self, max: std::time::Duration) -> bool {
        matches!(
            tokio::time::timeout(max, self.listener.recv()).await,
            Ok(Ok(_))
        )
    }
}

impl Catalog {
    /// A waker for idle workers (PostgreSQL only; `None` on SQLite).
    pub async fn job_waker(&self) -> Result<Option<JobWaker>> {
        if self.backend() != Backend::Postgres {
            return Ok(None);
        }
        let mut listener = sqlx::postgres::PgListener::connect(self.url()).await?;
        listener.listen("bv_jobs").await?;
        Ok(Some(JobWaker { listener }))
    }
}
