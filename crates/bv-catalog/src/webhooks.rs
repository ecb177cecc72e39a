//! Webhooks: one endpoint per tenant, and a delivery queue retried with backoff.

use serde::Serialize;
use sqlx::Row;

use crate::db::{Catalog, now_ms};
use crate::error::{CatalogError, Result};

/// A tenant's webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Webhook {
    /// Where events are POSTed.
    pub url: String,
    /// Version of the current signing secret.
    pub secret_version: i64,
    /// Until when the previous secret version also signs (during a rotation), ms.
    pub previous_until_ms: Option<i64>,
}

/// A delivery due now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Id.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Event type.
    pub event: String,
    /// JSON body, exactly as signed and sent.
    pub body: String,
    /// Attempts so far.
    pub attempts: i64,
    /// When it came due (the value a claim must still find).
    pub next_ms: i64,
}

/// One delivery as its tenant sees it: what happened, and what happens next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryStatus {
    /// Its id (the event's `id`).
    pub id: String,
    /// `job.succeeded`, …
    pub event: String,
    /// Attempts so far.
    pub attempts: i64,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// When it was delivered (ms), if it was.
    pub delivered_ms: Option<i64>,
    /// When the next attempt is due (ms), while one is left.
    pub next_ms: Option<i64>,
    /// When it was queued (ms).
    pub created_ms: i64,
}

/// Deliveries give up after this many attempts.
pub const MAX_ATTEMPTS: i64 = 10;

impl Catalog {
    /// Sets (or replaces) the tenant's webhook URL. A new webhook gets the
    /// next secret version the tenant never had (versions never repeat, so a
    /// deleted webhook's leaked secret never signs again).
    pub async fn set_webhook(&self, tenant_id: &str, url: &str) -> Result<Webhook> {
        let mut tx = self.write_tx().await?;
        let n = sqlx::query("UPDATE webhooks SET url = $1 WHERE tenant_id = $2")
            .bind(url)
            .bind(tenant_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            let version = next_secret_version(&mut tx, tenant_id).await?;
            sqlx::query(
                "INSERT INTO webhooks (tenant_id, url, secret_version, created_ms) VALUES ($1, $2, $3, $4)",
            )
            .bind(tenant_id)
            .bind(url)
            .bind(version)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.webhook(tenant_id).await?.ok_or(CatalogError::NotFound)
    }

    /// The tenant's webhook, if any.
    pub async fn webhook(&self, tenant_id: &str) -> Result<Option<Webhook>> {
        let r = sqlx::query(
            "SELECT url, secret_version, previous_until_ms FROM webhooks WHERE tenant_id = $1",
        )
        .bind(tenant_id)
        .fetch_optional(&self.pool)
        .await?;
        r.map(|r| {
            Ok(Webhook {
                url: r.try_get(0)?,
                secret_version: r.try_get(1)?,
                previous_until_ms: r.try_get(2)?,
            })
        })
        .transpose()
    }

    /// A new secret version; the previous one keeps signing for `overlap_ms`.
    pub async fn rotate_webhook(&self, tenant_id: &str, overlap_ms: i64) -> Result<Webhook> {
        let mut tx = self.write_tx().await?;
        let exists = sqlx::query("SELECT 1 FROM webhooks WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !exists {
            return Err(CatalogError::NotFound);
        }
        let version = next_secret_version(&mut tx, tenant_id).await?;
        sqlx::query(
            "UPDATE webhooks SET secret_version = $1, previous_until_ms = $2 WHERE tenant_id = $3",
        )
        .bind(version)
        .bind(now_ms() + overlap_ms)
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.webhook(tenant_id).await?.ok_or(CatalogError::NotFound)
    }

    /// Removes the tenant's webhook (pending deliveries are dropped).
    pub async fn delete_webhook(&self, tenant_id: &str) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM webhook_deliveries WHERE tenant_id = $1 AND delivered_ms IS NULL")
            .bind(tenant_id)
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query("DELETE FROM webhooks WHERE tenant_id = $1")
            .bind(tenant_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        if n == 0 {
            return Err(CatalogError::NotFound);
        }
        Ok(())
    }

    /// Queues an event for the tenant's webhook (nothing when it has none).
    pub async fn enqueue_webhook(
        &self,
        tenant_id: &str,
        id: &str,
        event: &str,
        body: &str,
    ) -> Result<bool> {
        let now = now_ms();
        let n = sqlx::query(
            "INSERT INTO webhook_deliveries (id, tenant_id, event, body, attempts, next_ms, created_ms)
             SELECT $1, $2, $3, $4, 0, $5, $5 WHERE EXISTS (SELECT 1 FROM webhooks WHERE tenant_id = $2)",
        )
        .bind(id)
        .bind(tenant_id)
        .bind(event)
        .bind(body)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// The tenant's latest deliveries, newest first.
    pub async fn webhook_deliveries(
        &self,
        tenant_id: &str,
        limit: i64,
    ) -> Result<Vec<DeliveryStatus>> {
        sqlx::query(
            "SELECT id, event, attempts, last_error, delivered_ms, next_ms, created_ms
             FROM webhook_deliveries WHERE tenant_id = $1 ORDER BY created_ms DESC, id LIMIT $2",
        )
        .bind(tenant_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            let attempts: i64 = r.try_get(2)?;
            let delivered_ms: Option<i64> = r.try_get(4)?;
            let next_ms: i64 = r.try_get(5)?;
            Ok(DeliveryStatus {
                id: r.try_get(0)?,
                event: r.try_get(1)?,
                attempts,
                last_error: r.try_get(3)?,
                delivered_ms,
                next_ms: (delivered_ms.is_none() && attempts < MAX_ATTEMPTS).then_some(next_ms),
                created_ms: r.try_get(6)?,
            })
        })
        .collect()
    }

    /// Deliveries due now, oldest first, at most `per_tenant` of each tenant
    /// (so one tenant's backlog cannot fill the list and hide the others').
    pub async fn due_webhooks(&self, limit: i64, per_tenant: i64) -> Result<Vec<Delivery>> {
        sqlx::query(
            "SELECT id, tenant_id, event, body, attempts, next_ms FROM (
                SELECT id, tenant_id, event, body, attempts, next_ms,
                       ROW_NUMBER() OVER (PARTITION BY tenant_id ORDER BY next_ms, id) AS nth
                FROM webhook_deliveries
                WHERE delivered_ms IS NULL AND next_ms <= $1 AND attempts < $2) due
             WHERE nth <= $3 ORDER BY next_ms, id LIMIT $4",
        )
        .bind(now_ms())
        .bind(MAX_ATTEMPTS)
        .bind(per_tenant)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(Delivery {
                id: r.try_get(0)?,
                tenant_id: r.try_get(1)?,
                event: r.try_get(2)?,
                body: r.try_get(3)?,
                attempts: r.try_get(4)?,
                next_ms: r.try_get(5)?,
            })
        })
        .collect()
    }

    /// Claims a due delivery for one attempt of at most `hold_ms`: only if
    /// nobody (no other task, no other server) claimed or finished it since it
    /// was read as due. A claim not settled in time comes due again.
    pub async fn claim_webhook(&self, d: &Delivery, hold_ms: i64) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE webhook_deliveries SET next_ms = $1
             WHERE id = $2 AND next_ms = $3 AND delivered_ms IS NULL",
        )
        .bind(now_ms() + hold_ms)
        .bind(&d.id)
        .bind(d.next_ms)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Records the outcome of one attempt: delivered, or retried after `retry_ms`.
    pub async fn webhook_attempted(
        &self,
        id: &str,
        error: Option<&str>,
        retry_ms: i64,
    ) -> Result<()> {
        let now = now_ms();
        sqlx::query(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, last_error = $1,
                delivered_ms = CASE WHEN $1 IS NULL THEN $2 ELSE NULL END, next_ms = $3
             WHERE id = $4",
        )
        .bind(error)
        .bind(now)
        .bind(now + retry_ms)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// The tenant's next webhook secret version (one past the highest it ever had).
async fn next_secret_version(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    tenant_id: &str,
) -> Result<i64> {
    sqlx::query(
        "UPDATE tenants SET webhook_secret_version = webhook_secret_version + 1 WHERE id = $1
         RETURNING webhook_secret_version",
    )
    .bind(tenant_id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(CatalogError::NotFound)?
    .try_get(0)
    .map_err(Into::into)
}
