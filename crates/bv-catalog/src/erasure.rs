//! Erasing a tenant's rows, and exporting what a tenant may take with it.
//!
//! Erasure removes every row that belongs to the tenant, children first, in
//! one transaction, and says how many went from each table. The audit log
//! keeps its entries about the tenant (it has no foreign key by design: the
//! record outlives what it records, and removing entries would break its
//! chain); they hold ids and actions, never content.

use std::collections::BTreeMap;

use sqlx::Row;

use crate::db::Catalog;
use crate::error::Result;

/// Each table's rows of one tenant, children before parents, as
/// (table, statement deleting them; `$1` is the tenant id).
const TABLES: &[(&str, &str)] = &[
    (
        "video_pieces",
        "DELETE FROM video_pieces WHERE video_id IN (SELECT id FROM videos WHERE tenant_id = $1)",
    ),
    ("uploads", "DELETE FROM uploads WHERE tenant_id = $1"),
    (
        "job_segments",
        "DELETE FROM job_segments WHERE tenant_id = $1",
    ),
    (
        "access_grants",
        "DELETE FROM access_grants WHERE tenant_id = $1",
    ),
    (
        "webhook_deliveries",
        "DELETE FROM webhook_deliveries WHERE tenant_id = $1",
    ),
    ("webhooks", "DELETE FROM webhooks WHERE tenant_id = $1"),
    ("sessions", "DELETE FROM sessions WHERE tenant_id = $1"),
    ("api_keys", "DELETE FROM api_keys WHERE tenant_id = $1"),
    (
        "credit_entries",
        "DELETE FROM credit_entries WHERE tenant_id = $1",
    ),
    ("jobs", "DELETE FROM jobs WHERE tenant_id = $1"),
    ("videos", "DELETE FROM videos WHERE tenant_id = $1"),
    (
        "setup_links",
        "DELETE FROM setup_links WHERE tenant_id = $1",
    ),
    ("principals", "DELETE FROM principals WHERE tenant_id = $1"),
    ("tenants", "DELETE FROM tenants WHERE id = $1"),
];

/// The tables erasure empties of a tenant's rows (for tests and reports).
pub fn tenant_tables() -> impl Iterator<Item = &'static str> {
    TABLES.iter().map(|(t, _)| *t)
}

impl Catalog {
    /// Locks a tenant out before its erasure: its API keys and sessions go,
    /// so no new request of it is accepted; returns how many.
    pub async fn lock_out_tenant(&self, tenant_id: &str) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let mut n = 0;
        for sql in [
            "DELETE FROM sessions WHERE tenant_id = $1",
            "DELETE FROM api_keys WHERE tenant_id = $1",
        ] {
            n += sqlx::query(sql)
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Asks every queued or running job of the tenant to stop (its worker
    /// sees it at the next heartbeat); returns how many.
    pub async fn stop_tenant_jobs(&self, tenant_id: &str) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE jobs SET cancel_requested = 1 WHERE tenant_id = $1 AND state IN ('queued', 'running')",
        )
        .bind(tenant_id)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Removes every row of the tenant (one transaction); rows removed per table.
    pub async fn erase_tenant_rows(&self, tenant_id: &str) -> Result<BTreeMap<String, u64>> {
        let mut tx = self.write_tx().await?;
        let mut counts = BTreeMap::new();
        for (table, sql) in TABLES {
            let n = sqlx::query(sqlx::AssertSqlSafe(*sql))
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            counts.insert((*table).to_string(), n);
        }
        sqlx::query("DELETE FROM rate_buckets WHERE bucket = $1")
            .bind(format!("tenant:{tenant_id}"))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(counts)
    }

    /// How many rows of the tenant each table still holds.
    pub async fn tenant_row_counts(&self, tenant_id: &str) -> Result<BTreeMap<String, i64>> {
        let mut counts = BTreeMap::new();
        for (table, sql) in TABLES {
            let count = sql.replacen("DELETE FROM", "SELECT COUNT(*) FROM", 1);
            let n: i64 = sqlx::query(sqlx::AssertSqlSafe(count))
                .bind(tenant_id)
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?;
            counts.insert((*table).to_string(), n);
        }
        Ok(counts)
    }
}
