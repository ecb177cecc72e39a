//! Tenants and the principals (users and service accounts) inside them.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::db::{Catalog, now_ms};
use crate::error::{CatalogError, Result};
use crate::new_id;

/// A customer: everything it owns is scoped by its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    /// 128-bit random id.
    pub id: String,
    /// Unique human name.
    pub name: String,
    /// Largest single upload, bytes.
    pub max_upload_bytes: i64,
    /// Total bytes of videos the tenant may keep.
    pub quota_bytes: i64,
    /// Creation time, ms since the epoch.
    pub created_ms: i64,
}

/// Limits a new tenant gets.
#[derive(Debug, Clone, Copy)]
pub struct TenantLimits {
    /// Largest single upload, bytes.
    pub max_upload_bytes: i64,
    /// Total bytes of videos the tenant may keep.
    pub quota_bytes: i64,
}

/// Who acts: a user (signs in with a password) or a service account (API keys only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// 128-bit random id.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// `user` or `service`.
    pub kind: String,
    /// Name, unique in the tenant.
    pub name: String,
    /// Sign-in name (users only), unique across the service.
    pub login: Option<String>,
}

fn tenant(r: &AnyRow) -> Result<Tenant> {
    Ok(Tenant {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        max_upload_bytes: r.try_get("max_upload_bytes")?,
        quota_bytes: r.try_get("quota_bytes")?,
        created_ms: r.try_get("created_ms")?,
    })
}

fn principal(r: &AnyRow) -> Result<Principal> {
    Ok(Principal {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        kind: r.try_get("kind")?,
        name: r.try_get("name")?,
        login: r.try_get("login")?,
    })
}

/// What a new password must be: at least 12 characters.
pub fn check_password_rules(password: &str) -> Result<()> {
    if password.chars().count() < 12 {
        return Err(CatalogError::Invalid(
            "password must have at least 12 characters".into(),
        ));
    }
    Ok(())
}

/// Names people type: 1–64 characters of letters, digits, `.`, `_`, `-`, `@`.
pub fn check_name(what: &str, s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(CatalogError::Invalid(format!(
            "{what} must be 1-64 characters of letters, digits, '.', '_', '-', '@'"
        )))
    }
}

const TENANT_COLS: &str = "id, name, max_upload_bytes, quota_bytes, created_ms";
const PRINCIPAL_COLS: &str = "id, tenant_id, kind, name, login";

impl Catalog {
    /// Creates a tenant.
    pub async fn create_tenant(&self, name: &str, limits: TenantLimits) -> Result<Tenant> {
        check_name("tenant name", name)?;
        if limits.max_upload_bytes <= 0 || limits.quota_bytes <= 0 {
            return Err(CatalogError::Invalid("limits must be positive".into()));
        }
        let t = Tenant {
            id: new_id()?,
            name: name.to_string(),
            max_upload_bytes: limits.max_upload_bytes,
            quota_bytes: limits.quota_bytes,
            created_ms: now_ms(),
        };
        sqlx::query(
            "INSERT INTO tenants (id, name, max_upload_bytes, quota_bytes, created_ms)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(t.max_upload_bytes)
        .bind(t.quota_bytes)
        .bind(t.created_ms)
        .execute(&self.pool)
        .await
        .map_err(|e| CatalogError::unique(e, "tenant"))?;
        Ok(t)
    }

    /// A tenant by id.
    pub async fn tenant(&self, id: &str) -> Result<Tenant> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TENANT_COLS} FROM tenants WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(CatalogError::NotFound)?;
        tenant(&r)
    }

    /// A tenant by name or id.
    pub async fn find_tenant(&self, name_or_id: &str) -> Result<Tenant> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TENANT_COLS} FROM tenants WHERE name = $1 OR id = $1"
        )))
        .bind(name_or_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(CatalogError::NotFound)?;
        tenant(&r)
    }

    /// Every tenant, oldest first.
    pub async fn tenants(&self) -> Result<Vec<Tenant>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TENANT_COLS} FROM tenants ORDER BY created_ms, id"
        )))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(tenant)
        .collect()
    }

    /// Creates a user who signs in with `login` and `password` (argon2id).
    pub async fn create_user(
        &self,
        tenant_id: &str,
        login: &str,
        password: &str,
    ) -> Result<Principal> {
        check_name("login", login)?;
        check_password_rules(password)?;
        let hash = bv_crypto::secret::hash_password(password)
            .map_err(|e| CatalogError::Internal(e.to_string()))?;
        self.insert_principal(tenant_id, "user", login, Some(login), Some(&hash))
            .await
    }

    /// Creates a service account (it authenticates with API keys only).
    pub async fn create_service_account(&self, tenant_id: &str, name: &str) -> Result<Principal> {
        check_name("service account name", name)?;
        self.insert_principal(tenant_id, "service", name, None, None)
            .await
    }

    async fn insert_principal(
        &self,
        tenant_id: &str,
        kind: &str,
        name: &str,
        login: Option<&str>,
        hash: Option<&str>,
    ) -> Result<Principal> {
        self.tenant(tenant_id).await?;
        let p = Principal {
            id: new_id()?,
            tenant_id: tenant_id.to_string(),
            kind: kind.into(),
            name: name.into(),
            login: login.map(str::to_string),
        };
        sqlx::query(
            "INSERT INTO principals (id, tenant_id, kind, name, login, password_hash, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&p.id)
        .bind(&p.tenant_id)
        .bind(&p.kind)
        .bind(&p.name)
        .bind(login)
        .bind(hash)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(|e| CatalogError::unique(e, "principal"))?;
        Ok(p)
    }

    /// A principal of `tenant_id` by name or id.
    pub async fn find_principal(&self, tenant_id: &str, name_or_id: &str) -> Result<Principal> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PRINCIPAL_COLS} FROM principals
             WHERE tenant_id = $1 AND (name = $2 OR id = $2) AND disabled_ms IS NULL"
        )))
        .bind(tenant_id)
        .bind(name_or_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(CatalogError::NotFound)?;
        principal(&r)
    }

    /// Checks a sign-in. Unknown login and wrong password look the same, and
    /// take the same time (a dummy hash is verified for unknown logins).
    pub async fn check_password(&self, login: &str, password: &str) -> Result<Option<Principal>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PRINCIPAL_COLS}, password_hash FROM principals
             WHERE login = $1 AND kind = 'user' AND disabled_ms IS NULL"
        )))
        .bind(login)
        .fetch_optional(&self.pool)
        .await?;
        let phc: Option<String> = match &row {
            Some(r) => r.try_get("password_hash")?,
            None => None,
        };
        let phc = phc.unwrap_or_else(|| DUMMY_HASH.to_string());
        let password = password.to_string();
        let ok = tokio::task::spawn_blocking(move || {
            bv_crypto::secret::verify_password(&password, &phc)
        })
        .await
        .map_err(|e| CatalogError::Internal(e.to_string()))?;
        match (ok, row) {
            (true, Some(r)) => Ok(Some(principal(&r)?)),
            _ => Ok(None),
        }
    }
}

/// argon2id hash of a random string nobody knows, so an unknown login costs
/// as much as a known one.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$SkV0nJ6JmvCVb1bGbYQw3m3SBpDQT3Gkq6Qq1Yf0q4Q";

#[cfg(test)]
mod tests {
    #[test]
    fn the_dummy_hash_is_a_real_argon2id_hash() {
        // Otherwise unknown logins would answer faster than known ones.
        assert!(bv_crypto::secret::is_password_hash(super::DUMMY_HASH));
        assert!(super::DUMMY_HASH.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    }
}
