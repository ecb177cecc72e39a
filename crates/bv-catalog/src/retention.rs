//! Retention: when videos are deleted and why, each tenant's policy, and
//! what the sweeper finds due.
//!
//! A video's `delete_after_ms` is set by the rule that applies to it — a
//! job's output when the job succeeds, an original when its job succeeds,
//! a failed job's input after a grace period — and only ever brought
//! forward, never postponed, by a later rule. The sweeper deletes what is
//! due unless a job still needs it (queued or running on it).

use serde::Serialize;
use sqlx::Row;

use crate::db::Catalog;
use crate::error::{CatalogError, Result};

/// Why a video will be deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// A job's output, after the tenant's output retention.
    Output,
    /// An uploaded original, once a job on it succeeded.
    Original,
    /// The input of a job that failed, after a grace period for a retry.
    FailedInput,
}

impl Rule {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Output => "output",
            Self::Original => "original",
            Self::FailedInput => "failed_input",
        }
    }
}

/// What a job's success schedules (in the transaction that records it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retain {
    /// When the output is deleted, ms (none: kept).
    pub output_until_ms: Option<i64>,
    /// When the original is deleted, ms (none: kept).
    pub input_until_ms: Option<i64>,
}

/// A tenant's own retention settings (none: the service's default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TenantRetention {
    /// Keep uploaded originals after their job succeeds.
    pub keep_originals: Option<bool>,
    /// Seconds a job's output is kept.
    pub output_retention_s: Option<i64>,
}

/// A video the sweeper found due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueVideo {
    /// Tenant.
    pub tenant_id: String,
    /// Video.
    pub video_id: String,
    /// The rule that made it due.
    pub retention: String,
    /// When it was due, ms.
    pub due_ms: i64,
}

/// Brings a video's deletion forward to `at` under `rule` (inside `tx`):
/// an earlier time already set stays.
pub(crate) async fn schedule_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    video_id: &str,
    at: i64,
    rule: Rule,
) -> Result<()> {
    sqlx::query(
        "UPDATE videos SET delete_after_ms = $1, retention = $2
         WHERE id = $3 AND state = 'uploaded' AND (delete_after_ms IS NULL OR delete_after_ms > $1)",
    )
    .bind(at)
    .bind(rule.as_str())
    .bind(video_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Catalog {
    /// Schedules the deletion of a tenant's video at `at` under `rule`, unless
    /// it is already due earlier.
    pub async fn schedule_deletion(
        &self,
        tenant_id: &str,
        video_id: &str,
        at: i64,
        rule: Rule,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let mine = sqlx::query("SELECT 1 FROM videos WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(video_id)
            .fetch_optional(&mut *tx)
            .await?;
        if mine.is_none() {
            return Err(CatalogError::NotFound);
        }
        schedule_in(&mut tx, video_id, at, rule).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Videos due for deletion at `now` that no queued or running job needs.
    pub async fn due_videos(&self, now: i64, limit: i64) -> Result<Vec<DueVideo>> {
        sqlx::query(
            "SELECT tenant_id, id, retention, delete_after_ms FROM videos v
             WHERE state = 'uploaded' AND delete_after_ms <= $1
               AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.input_video_id = v.id
                               AND j.state IN ('queued', 'running'))
             ORDER BY delete_after_ms LIMIT $2",
        )
        .bind(now)
        .bind(limit.clamp(1, 10_000))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(DueVideo {
                tenant_id: r.try_get(0)?,
                video_id: r.try_get(1)?,
                retention: r.try_get::<Option<String>, _>(2)?.unwrap_or_default(),
                due_ms: r.try_get(3)?,
            })
        })
        .collect()
    }

    /// A tenant's own retention settings.
    pub async fn tenant_retention(&self, tenant_id: &str) -> Result<TenantRetention> {
        let r = sqlx::query("SELECT keep_originals, output_retention_s FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(CatalogError::NotFound)?;
        Ok(TenantRetention {
            keep_originals: r.try_get::<Option<i64>, _>(0)?.map(|k| k != 0),
            output_retention_s: r.try_get(1)?,
        })
    }

    /// Sets a tenant's own retention settings (none: back to the default).
    /// Videos already scheduled keep their time.
    pub async fn set_tenant_retention(&self, tenant_id: &str, p: TenantRetention) -> Result<()> {
        if p.output_retention_s.is_some_and(|s| s < 0) {
            return Err(CatalogError::Invalid(
                "output retention must not be negative".into(),
            ));
        }
        let n = sqlx::query(
            "UPDATE tenants SET keep_originals = $1, output_retention_s = $2 WHERE id = $3",
        )
        .bind(p.keep_originals.map(i64::from))
        .bind(p.output_retention_s)
        .bind(tenant_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(CatalogError::NotFound);
        }
        Ok(())
    }
}
