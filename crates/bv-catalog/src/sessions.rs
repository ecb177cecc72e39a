//! Web sessions and sign-in throttling.
//!
//! A session is a random token in a cookie; the catalog keeps its SHA-256, a
//! CSRF token's SHA-256, the last time it was seen (idle timeout) and a hard
//! end (absolute timeout). Failed sign-ins are counted per subject (login
//! name, client address) over a sliding window.

use sqlx::Row;

use crate::db::{Catalog, now_ms};
use crate::error::{CatalogError, Result};

/// Who a valid session speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionAuth {
    /// Stored hash of the session token (its handle for sign-out).
    pub token_hash: String,
    /// Tenant.
    pub tenant_id: String,
    /// The signed-in user.
    pub principal_id: String,
    /// Stored hash of the CSRF token that unsafe requests must echo.
    pub csrf_hash: String,
}

/// A new session's secrets, handed to the browser once.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The cookie value.
    pub token: String,
    /// The CSRF token (sent back in a header on unsafe requests).
    pub csrf: String,
    /// Absolute end, ms.
    pub expires_ms: i64,
}

fn rnd() -> Result<String> {
    bv_crypto::secret::random_hex(32).map_err(|e| CatalogError::Internal(e.to_string()))
}

impl Catalog {
    /// Starts a session for `principal_id` lasting at most `absolute_ms`.
    pub async fn create_session(
        &self,
        tenant_id: &str,
        principal_id: &str,
        absolute_ms: i64,
    ) -> Result<NewSession> {
        let (token, csrf, now) = (rnd()?, rnd()?, now_ms());
        let expires_ms = now + absolute_ms;
        sqlx::query(
            "INSERT INTO sessions (token_hash, tenant_id, principal_id, csrf_hash, created_ms, last_seen_ms, expires_ms)
             VALUES ($1, $2, $3, $4, $5, $5, $6)",
        )
        .bind(bv_crypto::secret::token_hash(token.as_bytes()))
        .bind(tenant_id)
        .bind(principal_id)
        .bind(bv_crypto::secret::token_hash(csrf.as_bytes()))
        .bind(now)
        .bind(expires_ms)
        .execute(&self.pool)
        .await?;
        Ok(NewSession {
            token,
            csrf,
            expires_ms,
        })
    }

    /// The session `token` if it is alive (not past its absolute end, seen
    /// within `idle_ms`); marks it seen. A dead session is removed.
    pub async fn authenticate_session(
        &self,
        token: &str,
        idle_ms: i64,
    ) -> Result<Option<SessionAuth>> {
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let hash = bv_crypto::secret::token_hash(token.as_bytes());
        let now = now_ms();
        let Some(r) = sqlx::query(
            "SELECT s.tenant_id, s.principal_id, s.csrf_hash, s.last_seen_ms, s.expires_ms
             FROM sessions s JOIN principals p ON p.id = s.principal_id
             WHERE s.token_hash = $1 AND p.disabled_ms IS NULL",
        )
        .bind(&hash)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let last: i64 = r.try_get("last_seen_ms")?;
        let end: i64 = r.try_get("expires_ms")?;
        if now >= end || now - last >= idle_ms {
            self.end_session(&hash).await?;
            return Ok(None);
        }
        sqlx::query("UPDATE sessions SET last_seen_ms = $1 WHERE token_hash = $2")
            .bind(now)
            .bind(&hash)
            .execute(&self.pool)
            .await?;
        Ok(Some(SessionAuth {
            token_hash: hash,
            tenant_id: r.try_get("tenant_id")?,
            principal_id: r.try_get("principal_id")?,
            csrf_hash: r.try_get("csrf_hash")?,
        }))
    }

    /// Ends a session (sign-out) by its stored hash.
    pub async fn end_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a failed sign-in for each subject (e.g. `login:alice`, `ip:10.0.0.1`).
    pub async fn record_login_failure(&self, subjects: &[String]) -> Result<()> {
        let now = now_ms();
        for s in subjects {
            sqlx::query("INSERT INTO login_failures (subject, at_ms) VALUES ($1, $2)")
                .bind(s)
                .bind(now)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// The most failures any of `subjects` had within the last `window_ms`.
    /// Older entries are pruned on the way.
    pub async fn login_failures(&self, subjects: &[String], window_ms: i64) -> Result<i64> {
        let since = now_ms() - window_ms;
        sqlx::query("DELETE FROM login_failures WHERE at_ms < $1")
            .bind(since)
            .execute(&self.pool)
            .await?;
        let mut worst = 0;
        for s in subjects {
            let n: i64 = sqlx::query(
                "SELECT COUNT(*) FROM login_failures WHERE subject = $1 AND at_ms >= $2",
            )
            .bind(s)
            .bind(since)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
            worst = worst.max(n);
        }
        Ok(worst)
    }
}
