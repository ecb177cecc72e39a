//! API keys: shown once, stored as a hash, scoped, expiring, revocable.
//!
//! A key reads `bv_<16 hex: key id>_<64 hex: secret>`. The prefix lets secret
//! scanners spot a leaked key; the id finds the row without a scan; only the
//! SHA-256 of the whole key is stored, and it is compared in constant time.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::db::{Catalog, now_ms};
use crate::error::{CatalogError, Result};

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Scope {
    /// List, describe, download videos and mint links.
    #[cfg_attr(feature = "openapi", schema(rename = "videos:read"))]
    #[serde(rename = "videos:read")]
    VideosRead,
    /// Upload and delete videos.
    #[cfg_attr(feature = "openapi", schema(rename = "videos:write"))]
    #[serde(rename = "videos:write")]
    VideosWrite,
    /// Submit and cancel jobs.
    #[cfg_attr(feature = "openapi", schema(rename = "jobs:write"))]
    #[serde(rename = "jobs:write")]
    JobsWrite,
    /// Manage the tenant's API keys.
    #[cfg_attr(feature = "openapi", schema(rename = "admin"))]
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 4] = [
        Scope::VideosRead,
        Scope::VideosWrite,
        Scope::JobsWrite,
        Scope::Admin,
    ];

    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VideosRead => "videos:read",
            Self::VideosWrite => "videos:write",
            Self::JobsWrite => "jobs:write",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = CatalogError;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                CatalogError::Invalid(format!(
                    "unknown scope {s:?} (known: videos:read, videos:write, jobs:write, admin)"
                ))
            })
    }
}

/// Parses `videos:read,videos:write` (commas or spaces).
pub fn parse_scopes(s: &str) -> Result<Vec<Scope>> {
    let mut v = s
        .split([',', ' '])
        .filter(|x| !x.is_empty())
        .map(Scope::from_str)
        .collect::<Result<Vec<_>>>()?;
    v.sort();
    v.dedup();
    if v.is_empty() {
        return Err(CatalogError::Invalid(
            "a key needs at least one scope".into(),
        ));
    }
    Ok(v)
}

fn scopes_text(s: &[Scope]) -> String {
    s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(" ")
}

/// A key as listed (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    /// Public key id (the part after `bv_`).
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// The principal it acts as.
    pub principal_id: String,
    /// Human label.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// Creation time, ms.
    pub created_ms: i64,
    /// Expiry, ms (none: never).
    pub expires_ms: Option<i64>,
    /// Last successful use, ms (to the minute).
    pub last_used_ms: Option<i64>,
    /// Revocation time, ms.
    pub revoked_ms: Option<i64>,
}

/// Who a valid key speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAuth {
    /// Key id.
    pub key_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Principal.
    pub principal_id: String,
    /// Scopes.
    pub scopes: Vec<Scope>,
    /// Whether this use moved the key's last-used time (its first use, or
    /// the first after a minute without): when a use is worth an audit entry.
    pub recorded_use: bool,
}

/// The prefix every key starts with.
pub const KEY_PREFIX: &str = "bv_";

fn key(r: &AnyRow) -> Result<ApiKey> {
    let scopes: String = r.try_get("scopes")?;
    Ok(ApiKey {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        principal_id: r.try_get("principal_id")?,
        name: r.try_get("name")?,
        scopes: parse_scopes(&scopes)?,
        created_ms: r.try_get("created_ms")?,
        expires_ms: r.try_get("expires_ms")?,
        last_used_ms: r.try_get("last_used_ms")?,
        revoked_ms: r.try_get("revoked_ms")?,
    })
}

/// Splits `bv_<id>_<secret>` into its id, refusing anything else.
fn key_id(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hex = |s: &str, n| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(id, 16) && hex(secret, 64)).then_some(id)
}

const KEY_COLS: &str =
    "id, tenant_id, principal_id, name, scopes, created_ms, expires_ms, last_used_ms, revoked_ms";

/// `last_used_ms` is refreshed at most this often, so reads stay reads.
const LAST_USED_GRANULARITY_MS: i64 = 60_000;

impl Catalog {
    /// Creates a key for `principal_id` of `tenant_id`; returns it with its
    /// secret, which is never shown again.
    pub async fn create_api_key(
        &self,
        tenant_id: &str,
        principal_id: &str,
        name: &str,
        scopes: &[Scope],
        expires_ms: Option<i64>,
    ) -> Result<(ApiKey, String)> {
        crate::accounts::check_name("key name", name)?;
        if scopes.is_empty() {
            return Err(CatalogError::Invalid(
                "a key needs at least one scope".into(),
            ));
        }
        let now = now_ms();
        if expires_ms.is_some_and(|e| e <= now) {
            return Err(CatalogError::Invalid("expiry must be in the future".into()));
        }
        let p = self.find_principal(tenant_id, principal_id).await?;
        let rnd =
            |n| bv_crypto::secret::random_hex(n).map_err(|e| CatalogError::Internal(e.to_string()));
        let id = rnd(8)?;
        let token = format!("{KEY_PREFIX}{id}_{}", rnd(32)?);
        let mut scopes = scopes.to_vec();
        scopes.sort();
        scopes.dedup();
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, principal_id, name, secret_hash, scopes, created_ms, expires_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(tenant_id)
        .bind(&p.id)
        .bind(name)
        .bind(bv_crypto::secret::token_hash(token.as_bytes()))
        .bind(scopes_text(&scopes))
        .bind(now)
        .bind(expires_ms)
        .execute(&self.pool)
        .await?;
        let k = ApiKey {
            id,
            tenant_id: tenant_id.into(),
            principal_id: p.id,
            name: name.into(),
            scopes,
            created_ms: now,
            expires_ms,
            last_used_ms: None,
            revoked_ms: None,
        };
        Ok((k, token))
    }

    /// The key `token` if it is valid now: known, matching, not revoked, not
    /// expired, its principal enabled. Anything else is `None`, all alike.
    pub async fn authenticate_key(&self, token: &str) -> Result<Option<KeyAuth>> {
        let Some(id) = key_id(token) else {
            return Ok(None);
        };
        let now = now_ms();
        let row = sqlx::query(
            "SELECT k.id, k.tenant_id, k.principal_id, k.secret_hash, k.scopes, k.expires_ms,
                    k.revoked_ms, k.last_used_ms
             FROM api_keys k JOIN principals p ON p.id = k.principal_id
             WHERE k.id = $1 AND p.disabled_ms IS NULL",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let hash: String = r.try_get("secret_hash")?;
        let given = bv_crypto::secret::token_hash(token.as_bytes());
        if !bv_crypto::secret::ct_eq(hash.as_bytes(), given.as_bytes()) {
            return Ok(None);
        }
        let revoked: Option<i64> = r.try_get("revoked_ms")?;
        let expires: Option<i64> = r.try_get("expires_ms")?;
        if revoked.is_some() || expires.is_some_and(|e| e <= now) {
            return Ok(None);
        }
        let last: Option<i64> = r.try_get("last_used_ms")?;
        let recorded_use = last.is_none_or(|l| now - l >= LAST_USED_GRANULARITY_MS);
        if recorded_use {
            sqlx::query("UPDATE api_keys SET last_used_ms = $1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await?;
        }
        let scopes: String = r.try_get("scopes")?;
        Ok(Some(KeyAuth {
            key_id: r.try_get("id")?,
            tenant_id: r.try_get("tenant_id")?,
            principal_id: r.try_get("principal_id")?,
            scopes: parse_scopes(&scopes)?,
            recorded_use,
        }))
    }

    /// The tenant's keys, newest first.
    pub async fn api_keys(&self, tenant_id: &str) -> Result<Vec<ApiKey>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLS} FROM api_keys WHERE tenant_id = $1 ORDER BY created_ms DESC, id"
        )))
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(key)
        .collect()
    }

    /// One key of the tenant.
    pub async fn api_key(&self, tenant_id: &str, id: &str) -> Result<ApiKey> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLS} FROM api_keys WHERE tenant_id = $1 AND id = $2"
        )))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(CatalogError::NotFound)?;
        key(&r)
    }

    /// Revokes a key of the tenant; it stops working at once. Revoking twice is fine.
    pub async fn revoke_api_key(&self, tenant_id: &str, id: &str) -> Result<ApiKey> {
        sqlx::query(
            "UPDATE api_keys SET revoked_ms = $1
             WHERE tenant_id = $2 AND id = $3 AND revoked_ms IS NULL",
        )
        .bind(now_ms())
        .bind(tenant_id)
        .bind(id)
        .execute(&self.pool)
        .await?;
        self.api_key(tenant_id, id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_shapes() {
        let good = format!("bv_{}_{}", "a".repeat(16), "0".repeat(64));
        assert_eq!(key_id(&good), Some("aaaaaaaaaaaaaaaa"));
        for bad in [
            "".to_string(),
            "bv_".into(),
            format!("bx_{}_{}", "a".repeat(16), "0".repeat(64)),
            format!("bv_{}_{}", "a".repeat(15), "0".repeat(64)),
            format!("bv_{}_{}", "a".repeat(16), "0".repeat(63)),
            format!("bv_{}_{}", "g".repeat(16), "0".repeat(64)),
        ] {
            assert_eq!(key_id(&bad), None, "{bad}");
        }
        assert_eq!(
            parse_scopes("admin, videos:read videos:read").unwrap(),
            vec![Scope::VideosRead, Scope::Admin]
        );
        assert!(parse_scopes("videos:all").is_err());
        assert!(parse_scopes(" ").is_err());
    }
}
