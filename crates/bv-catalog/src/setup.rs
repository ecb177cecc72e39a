//! One-time links that let the first administrator of a fresh service set
//! a password in the browser, so no password is ever printed or typed on
//! the server. Only a token's SHA-256 is stored; a link works once and
//! within its lifetime, and a new link for a tenant ends the earlier ones.

use sqlx::Row;

use crate::accounts::check_name;
use crate::error::{CatalogError, Result};
use crate::{Catalog, Principal, now_ms};

impl Catalog {
    /// Whether any person can sign in (a user, in any tenant).
    pub async fn has_users(&self) -> Result<bool> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM principals WHERE kind = 'user'")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        Ok(n > 0)
    }

    /// A new setup link for `tenant_id`, valid for `ttl_ms`; earlier links of
    /// the tenant stop working. Returns the token, to be shown once.
    pub async fn create_setup_link(&self, tenant_id: &str, ttl_ms: i64) -> Result<String> {
        let token =
            bv_crypto::secret::random_hex(32).map_err(|e| CatalogError::Internal(e.to_string()))?;
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM setup_links WHERE tenant_id = $1")
            .bind(tenant_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO setup_links (token_hash, tenant_id, created_ms, expires_ms)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(bv_crypto::secret::token_hash(token.as_bytes()))
        .bind(tenant_id)
        .bind(now)
        .bind(now + ttl_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(token)
    }

    /// Redeems a setup link: creates the user `login` with `password` in the
    /// link's tenant and uses the link up. `None` when the link is unknown,
    /// used or expired, or its tenant has a user already (the link is for
    /// the first administrator only). A login or password that cannot be accepted is
    /// refused before the link is touched, and a login taken since leaves
    /// the link usable, so a typo does not cost the link.
    pub async fn redeem_setup_link(
        &self,
        token: &str,
        login: &str,
        password: &str,
    ) -> Result<Option<Principal>> {
        check_name("login", login)?;
        crate::accounts::check_password_rules(password)?;
        let hash = bv_crypto::secret::token_hash(token.as_bytes());
        let claimed = sqlx::query(
            "UPDATE setup_links SET used_ms = $1
             WHERE token_hash = $2 AND used_ms IS NULL AND expires_ms > $1
               AND NOT EXISTS (SELECT 1 FROM principals p
                               WHERE p.tenant_id = setup_links.tenant_id AND p.kind = 'user')
             RETURNING tenant_id",
        )
        .bind(now_ms())
        .bind(&hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = claimed else {
            return Ok(None);
        };
        let tenant: String = row.try_get(0)?;
        match self.create_user(&tenant, login, password).await {
            Ok(p) => Ok(Some(p)),
            Err(e) => {
                sqlx::query("UPDATE setup_links SET used_ms = NULL WHERE token_hash = $1")
                    .bind(&hash)
                    .execute(&self.pool)
                    .await?;
                Err(e)
            }
        }
    }
}
