//! The credit ledger: grants, reservations, captures, releases, refunds.
//!
//! Entries are only inserted, never changed; the balance is derived from
//! them. Credits never expire: there is no expiry anywhere. A reservation is
//! inserted only if the derived balance covers it, in one statement (and on
//! PostgreSQL under a per-tenant advisory lock), so concurrent jobs can never
//! overdraw a balance. A unique index allows one reserve, one capture and one
//! release per job: settlement is exactly-once even when a worker retries.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::db::{Catalog, now_ms};
use crate::error::{CatalogError, Result};

/// One ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreditEntry {
    /// Entry id.
    pub id: String,
    /// `grant`, `reserve`, `capture`, `release` or `refund`.
    pub kind: String,
    /// Credits (always positive; the kind says which way).
    pub amount: i64,
    /// The job it settles, if any.
    pub job_id: Option<String>,
    /// Why.
    pub note: String,
    /// When, ms.
    pub created_ms: i64,
}

/// A tenant's credits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Balance {
    /// Spendable now.
    pub available: i64,
    /// Held by jobs that have not settled.
    pub reserved: i64,
}

fn entry(r: &AnyRow) -> Result<CreditEntry> {
    Ok(CreditEntry {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        amount: r.try_get("amount")?,
        job_id: r.try_get("job_id")?,
        note: r.try_get("note")?,
        created_ms: r.try_get("created_ms")?,
    })
}

/// Settled credits of tenant `$1` (grants and refunds less captures).
pub(crate) const SETTLED: &str =
    "(SELECT CAST(COALESCE(SUM(CASE WHEN kind IN ('grant', 'refund') THEN amount
        WHEN kind = 'capture' THEN -amount ELSE 0 END), 0) AS BIGINT)
     FROM credit_entries WHERE tenant_id = $1)";
/// Credits of tenant `$1` held by reservations not yet captured or released.
pub(crate) const OPEN_RESERVED: &str = "(SELECT CAST(COALESCE(SUM(r.amount), 0) AS BIGINT)
     FROM credit_entries r WHERE r.tenant_id = $1 AND r.kind = 'reserve'
       AND NOT EXISTS (SELECT 1 FROM credit_entries c
                       WHERE c.job_id = r.job_id AND c.kind IN ('capture', 'release')))";

impl Catalog {
    /// Adds credits to a tenant.
    pub async fn grant_credits(
        &self,
        tenant_id: &str,
        amount: i64,
        note: &str,
    ) -> Result<CreditEntry> {
        if amount <= 0 {
            return Err(CatalogError::Invalid("a grant must be positive".into()));
        }
        if note.len() > 500 || note.chars().any(char::is_control) {
            return Err(CatalogError::Invalid(
                "note: at most 500 characters, no control characters".into(),
            ));
        }
        self.tenant(tenant_id).await?;
        let e = CreditEntry {
            id: crate::new_id()?,
            kind: "grant".into(),
            amount,
            job_id: None,
            note: note.into(),
            created_ms: now_ms(),
        };
        sqlx::query(
            "INSERT INTO credit_entries (id, tenant_id, kind, amount, job_id, note, created_ms)
             VALUES ($1, $2, 'grant', $3, NULL, $4, $5)",
        )
        .bind(&e.id)
        .bind(tenant_id)
        .bind(amount)
        .bind(&e.note)
        .bind(e.created_ms)
        .execute(&self.pool)
        .await?;
        Ok(e)
    }

    /// The tenant's balance.
    pub async fn credit_balance(&self, tenant_id: &str) -> Result<Balance> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SETTLED} AS settled, {OPEN_RESERVED} AS reserved"
        )))
        .bind(tenant_id)
        .fetch_one(&self.pool)
        .await?;
        let (settled, reserved): (i64, i64) = (r.try_get("settled")?, r.try_get("reserved")?);
        Ok(Balance {
            available: settled - reserved,
            reserved,
        })
    }

    /// The tenant's ledger, newest first, `limit` entries before the cursor
    /// `(created_ms, id)` of the last one seen.
    pub async fn credit_history(
        &self,
        tenant_id: &str,
        limit: i64,
        before: Option<(i64, &str)>,
    ) -> Result<Vec<CreditEntry>> {
        let (ms, id) = before.unwrap_or((i64::MAX, ""));
        sqlx::query(
            "SELECT id, kind, amount, job_id, note, created_ms FROM credit_entries
             WHERE tenant_id = $1 AND (created_ms < $2 OR (created_ms = $2 AND id > $3))
             ORDER BY created_ms DESC, id LIMIT $4",
        )
        .bind(tenant_id)
        .bind(ms)
        .bind(id)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(entry)
        .collect()
    }
}
