//! Rate limits every server shares, and each tenant's own limits.
//!
//! A request rate is a generic cell rate algorithm (GCRA) bucket: one row
//! holding the bucket's theoretical arrival time (TAT). A request at `now`
//! is allowed when `TAT - now` does not exceed the burst tolerance, and then
//! moves TAT one emission interval on. The test and the move are one
//! `INSERT … ON CONFLICT DO UPDATE … WHERE` statement, atomic on SQLite and
//! PostgreSQL alike, so several servers sharing the catalog share the limit
//! exactly — no process keeps a count of its own. A row whose TAT has passed
//! means the same as no row; [`Catalog::purge_rate_buckets`] drops those.

use serde::Serialize;
use sqlx::Row;

use crate::db::Catalog;
use crate::error::{CatalogError, Result};

/// A request rate: `per_minute` on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per minute on average (0: unlimited).
    pub per_minute: u32,
    /// Requests allowed back to back after a quiet spell (at least 1).
    pub burst: u32,
}

impl Rate {
    /// `per_minute` with a burst of `burst_seconds` worth of it (at least 1).
    pub fn with_burst_seconds(per_minute: u32, burst_seconds: u32) -> Self {
        let burst = (u64::from(per_minute) * u64::from(burst_seconds) / 60).max(1);
        Self {
            per_minute,
            burst: u32::try_from(burst).unwrap_or(u32::MAX),
        }
    }
}

/// A tenant's own limits (none: the service's default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TenantLimitOverrides {
    /// Requests per minute for each of the tenant's API keys and people.
    pub key_requests_per_minute: Option<i64>,
    /// Requests per minute for the whole tenant.
    pub tenant_requests_per_minute: Option<i64>,
    /// Unfinished uploads at once.
    pub concurrent_uploads: Option<i64>,
    /// Jobs queued or running at once.
    pub active_jobs: Option<i64>,
}

/// Microseconds since the Unix epoch.
fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// `NotFound` unless an update touched a row (the tenant exists).
fn found(rows: u64) -> Result<()> {
    if rows == 0 {
        return Err(CatalogError::NotFound);
    }
    Ok(())
}

impl Catalog {
    /// Takes one request from `bucket` at `rate`: `None` when allowed, else
    /// how long until the next request would be, ms (at least 1).
    pub async fn take_rate(&self, bucket: &str, rate: Rate) -> Result<Option<u64>> {
        if rate.per_minute == 0 {
            return Ok(None);
        }
        let _queued = match self.backend() {
            crate::Backend::Sqlite => Some(self.rate_writer.lock().await),
            crate::Backend::Postgres => None,
        };
        let now = now_us();
        let interval = 60_000_000 / i64::from(rate.per_minute);
        let tolerance = interval * (i64::from(rate.burst.max(1)) - 1);
        let allowed = sqlx::query(
            "INSERT INTO rate_buckets (bucket, tat_us) VALUES ($1, $2)
             ON CONFLICT (bucket) DO UPDATE
               SET tat_us = (CASE WHEN rate_buckets.tat_us > $3 THEN rate_buckets.tat_us ELSE $3 END) + $4
               WHERE rate_buckets.tat_us <= $5
             RETURNING tat_us",
        )
        .bind(bucket)
        .bind(now + interval)
        .bind(now)
        .bind(interval)
        .bind(now + tolerance)
        .fetch_optional(&self.pool)
        .await?;
        if allowed.is_some() {
            return Ok(None);
        }
        let tat: i64 = sqlx::query("SELECT tat_us FROM rate_buckets WHERE bucket = $1")
            .bind(bucket)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?
            .unwrap_or(now);
        let wait_us = (tat - tolerance - now).max(1000);
        Ok(Some(u64::try_from(wait_us).unwrap_or(1000).div_ceil(1000)))
    }

    /// Drops buckets whose time has passed (they allow what no row allows).
    pub async fn purge_rate_buckets(&self) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM rate_buckets WHERE tat_us < $1")
            .bind(now_us())
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// A tenant's own limits.
    pub async fn tenant_limit_overrides(&self, tenant_id: &str) -> Result<TenantLimitOverrides> {
        let r = sqlx::query(
            "SELECT key_requests_per_minute, tenant_requests_per_minute, concurrent_uploads, active_jobs
             FROM tenants WHERE id = $1",
        )
        .bind(tenant_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(CatalogError::NotFound)?;
        Ok(TenantLimitOverrides {
            key_requests_per_minute: r.try_get(0)?,
            tenant_requests_per_minute: r.try_get(1)?,
            concurrent_uploads: r.try_get(2)?,
            active_jobs: r.try_get(3)?,
        })
    }

    /// Sets a tenant's storage quota and per-upload limit, bytes (none:
    /// unchanged). Lowering the quota below what is stored deletes nothing;
    /// it refuses new uploads until usage falls under it.
    pub async fn set_tenant_storage(
        &self,
        tenant_id: &str,
        quota_bytes: Option<i64>,
        max_upload_bytes: Option<i64>,
    ) -> Result<()> {
        if quota_bytes.is_some_and(|q| q <= 0) || max_upload_bytes.is_some_and(|m| m <= 0) {
            return Err(CatalogError::Invalid(
                "storage limits must be positive".into(),
            ));
        }
        let n = sqlx::query(
            "UPDATE tenants SET quota_bytes = COALESCE($1, quota_bytes),
                max_upload_bytes = COALESCE($2, max_upload_bytes)
             WHERE id = $3",
        )
        .bind(quota_bytes)
        .bind(max_upload_bytes)
        .bind(tenant_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        found(n)
    }

    /// Sets a tenant's own limits (none: back to the default; 0: unlimited).
    pub async fn set_tenant_limit_overrides(
        &self,
        tenant_id: &str,
        l: TenantLimitOverrides,
    ) -> Result<()> {
        let all = [
            l.key_requests_per_minute,
            l.tenant_requests_per_minute,
            l.concurrent_uploads,
            l.active_jobs,
        ];
        if all
            .iter()
            .flatten()
            .any(|v| *v < 0 || *v > i64::from(u32::MAX))
        {
            return Err(CatalogError::Invalid(
                "limits are whole numbers from 0 (unlimited) to 4294967295".into(),
            ));
        }
        let n = sqlx::query(
            "UPDATE tenants SET key_requests_per_minute = $1, tenant_requests_per_minute = $2,
                concurrent_uploads = $3, active_jobs = $4
             WHERE id = $5",
        )
        .bind(l.key_requests_per_minute)
        .bind(l.tenant_requests_per_minute)
        .bind(l.concurrent_uploads)
        .bind(l.active_jobs)
        .bind(tenant_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        found(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_is_seconds_of_rate_and_never_zero() {
        assert_eq!(Rate::with_burst_seconds(600, 10).burst, 100);
        assert_eq!(Rate::with_burst_seconds(1, 10).burst, 1);
        assert_eq!(Rate::with_burst_seconds(60, 0).burst, 1);
    }
}
