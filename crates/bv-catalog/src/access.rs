//! Operator access to tenant content (after Google's Access Approval).
//!
//! Operators (staff) have no access to any tenant's videos by default. An
//! operator asks for a grant covering one video, with a reason code, a
//! free-text reason, a ticket and a lifetime; it takes effect at once, or —
//! when the tenant requires approval — only when the tenant approves it, and
//! it ends on its own when its lifetime is over. A pending request nobody
//! answers lapses after [`PENDING_LAPSE_MS`]. What an operator actually did
//! with a grant is written to the audit log, which the tenant reads as its
//! access-transparency log.

use sqlx::Row;

use crate::db::{Catalog, now_ms};
use crate::error::{CatalogError, Result};

/// The longest a grant may last once in effect.
pub const MAX_GRANT_TTL_MS: i64 = 24 * 3600 * 1000;

/// How long a request waits for the tenant's answer before it lapses.
pub const PENDING_LAPSE_MS: i64 = 24 * 3600 * 1000;

/// Why an operator needs access (shown to the tenant with the free-text reason).
pub const REASON_CODES: &[(&str, &str)] = &[
    (
        "customer_request",
        "the tenant asked for help (a support ticket names the video)",
    ),
    (
        "service_incident",
        "investigating a failure of the service that involves this video",
    ),
    (
        "security_investigation",
        "investigating abuse or a security event",
    ),
    (
        "legal_obligation",
        "a legal request the service must answer",
    ),
];

/// A member of staff who may ask for access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// The operator's account name (as the host knows it).
    pub name: String,
    /// Who employs them (shown to tenants).
    pub employer: String,
    /// Where they work from (shown to tenants).
    pub location: String,
    /// Added, ms.
    pub created_ms: i64,
    /// Disabled, ms (a disabled operator's grants stop working).
    pub disabled_ms: Option<i64>,
}

/// Where a grant stands at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantStatus {
    /// Waiting for the tenant's approval.
    Pending,
    /// In effect.
    Active,
    /// Its lifetime is over.
    Expired,
    /// Nobody answered in time.
    Lapsed,
    /// The tenant said no.
    Denied,
    /// Ended early (by the tenant or an operator).
    Revoked,
}

impl GrantStatus {
    /// Stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Lapsed => "lapsed",
            Self::Denied => "denied",
            Self::Revoked => "revoked",
        }
    }
}

/// An access grant (or request, while pending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// 32 hex digits.
    pub id: String,
    /// The tenant whose video it covers.
    pub tenant_id: String,
    /// The one video it covers.
    pub video_id: String,
    /// Who may use it.
    pub operator: String,
    /// One of [`REASON_CODES`].
    pub reason_code: String,
    /// Free text from the operator.
    pub reason: String,
    /// Support or incident ticket.
    pub ticket: String,
    /// Lifetime once in effect, ms.
    pub ttl_ms: i64,
    /// Asked for, ms.
    pub requested_ms: i64,
    /// `pending`, `approved`, `denied` or `revoked` as stored.
    pub state: String,
    /// Who decided (`policy` when no approval was required).
    pub decided_by: Option<String>,
    /// When, ms.
    pub decided_ms: Option<i64>,
    /// End of the grant's life, ms (set once in effect).
    pub expires_ms: Option<i64>,
}

impl Grant {
    /// Its status at `now` (grants expire and requests lapse on their own).
    pub fn status(&self, now: i64) -> GrantStatus {
        match self.state.as_str() {
            "pending" if now - self.requested_ms >= PENDING_LAPSE_MS => GrantStatus::Lapsed,
            "pending" => GrantStatus::Pending,
            "approved" if self.expires_ms.is_some_and(|e| now < e) => GrantStatus::Active,
            "approved" => GrantStatus::Expired,
            "denied" => GrantStatus::Denied,
            _ => GrantStatus::Revoked,
        }
    }
}

/// What an operator asks for.
#[derive(Debug, Clone)]
pub struct NewGrant<'a> {
    /// Tenant id.
    pub tenant_id: &'a str,
    /// Video id.
    pub video_id: &'a str,
    /// The operator's name (must be registered and enabled).
    pub operator: &'a str,
    /// One of [`REASON_CODES`].
    pub reason_code: &'a str,
    /// Free text (required).
    pub reason: &'a str,
    /// Ticket (required).
    pub ticket: &'a str,
    /// Lifetime once in effect, ms (at most [`MAX_GRANT_TTL_MS`]).
    pub ttl_ms: i64,
}

macro_rules! grant_columns {
    () => {
        "id, tenant_id, video_id, operator, reason_code, reason, ticket, ttl_ms, requested_ms, state, decided_by, decided_ms, expires_ms"
    };
}

fn grant(r: &sqlx::any::AnyRow) -> Result<Grant> {
    Ok(Grant {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        video_id: r.try_get("video_id")?,
        operator: r.try_get("operator")?,
        reason_code: r.try_get("reason_code")?,
        reason: r.try_get("reason")?,
        ticket: r.try_get("ticket")?,
        ttl_ms: r.try_get("ttl_ms")?,
        requested_ms: r.try_get("requested_ms")?,
        state: r.try_get("state")?,
        decided_by: r.try_get("decided_by")?,
        decided_ms: r.try_get("decided_ms")?,
        expires_ms: r.try_get("expires_ms")?,
    })
}

fn operator(r: &sqlx::any::AnyRow) -> Result<Operator> {
    Ok(Operator {
        name: r.try_get("name")?,
        employer: r.try_get("employer")?,
        location: r.try_get("location")?,
        created_ms: r.try_get("created_ms")?,
        disabled_ms: r.try_get("disabled_ms")?,
    })
}

/// Free text an operator supplies: required, one line, bounded.
fn check_text(what: &str, s: &str, max: usize) -> Result<()> {
    if s.trim().is_empty() || s.len() > max || s.chars().any(char::is_control) {
        return Err(CatalogError::Invalid(format!(
            "{what} must be 1 to {max} bytes of text on one line"
        )));
    }
    Ok(())
}

impl Catalog {
    /// Registers an operator.
    pub async fn add_operator(&self, name: &str, employer: &str, location: &str) -> Result<()> {
        crate::accounts::check_name("operator name", name)?;
        check_text("employer", employer, 200)?;
        check_text("location", location, 200)?;
        let r = sqlx::query(
            "INSERT INTO operators (name, employer, location, created_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(name)
        .bind(employer)
        .bind(location)
        .bind(now_ms())
        .execute(&self.pool)
        .await;
        match r {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(CatalogError::Exists("operator"))
            }
            r => r.map(|_| ()).map_err(Into::into),
        }
    }

    /// An operator by name (disabled ones too).
    pub async fn operator(&self, name: &str) -> Result<Operator> {
        sqlx::query("SELECT * FROM operators WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(operator)
            .transpose()?
            .ok_or(CatalogError::NotFound)
    }

    /// Every operator, by name.
    pub async fn operators(&self) -> Result<Vec<Operator>> {
        sqlx::query("SELECT * FROM operators ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(operator)
            .collect()
    }

    /// Disables an operator: no new grants, and existing ones stop working.
    pub async fn disable_operator(&self, name: &str) -> Result<()> {
        let n = sqlx::query(
            "UPDATE operators SET disabled_ms = $1 WHERE name = $2 AND disabled_ms IS NULL",
        )
        .bind(now_ms())
        .bind(name)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(CatalogError::NotFound);
        }
        Ok(())
    }

    /// Whether the tenant approves every grant before it takes effect.
    pub async fn access_approval(&self, tenant_id: &str) -> Result<bool> {
        let r = sqlx::query("SELECT access_approval FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(CatalogError::NotFound)?;
        Ok(r.try_get::<i64, _>(0)? != 0)
    }

    /// Sets whether the tenant approves every grant first (applies to
    /// requests made from now on; grants already in effect keep running).
    pub async fn set_access_approval(&self, tenant_id: &str, required: bool) -> Result<()> {
        sqlx::query("UPDATE tenants SET access_approval = $1 WHERE id = $2")
            .bind(i64::from(required))
            .bind(tenant_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records an operator's request. It is in effect at once unless the
    /// tenant requires approval, in which case it waits (pending).
    pub async fn request_access(&self, g: &NewGrant<'_>) -> Result<Grant> {
        if !REASON_CODES.iter().any(|(c, _)| *c == g.reason_code) {
            let codes: Vec<&str> = REASON_CODES.iter().map(|(c, _)| *c).collect();
            return Err(CatalogError::Invalid(format!(
                "reason code must be one of {}",
                codes.join(", ")
            )));
        }
        check_text("reason", g.reason, 1000)?;
        check_text("ticket", g.ticket, 200)?;
        if !(1000..=MAX_GRANT_TTL_MS).contains(&g.ttl_ms) {
            return Err(CatalogError::Invalid(format!(
                "a grant lasts from 1 second to {} hours",
                MAX_GRANT_TTL_MS / 3_600_000
            )));
        }
        let op = self.operator(g.operator).await?;
        if op.disabled_ms.is_some() {
            return Err(CatalogError::Invalid(format!(
                "operator {} is disabled",
                g.operator
            )));
        }
        // Only a video the tenant really has (another tenant's looks missing).
        self.video(g.tenant_id, g.video_id).await?;
        let approval = self.access_approval(g.tenant_id).await?;
        let now = now_ms();
        let (state, decided_by, decided_ms, expires_ms) = if approval {
            ("pending", None, None, None)
        } else {
            ("approved", Some("policy"), Some(now), Some(now + g.ttl_ms))
        };
        let id = crate::new_id()?;
        sqlx::query(concat!(
            "INSERT INTO access_grants (",
            grant_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
        .bind(&id)
        .bind(g.tenant_id)
        .bind(g.video_id)
        .bind(g.operator)
        .bind(g.reason_code)
        .bind(g.reason)
        .bind(g.ticket)
        .bind(g.ttl_ms)
        .bind(now)
        .bind(state)
        .bind(decided_by)
        .bind(decided_ms)
        .bind(expires_ms)
        .execute(&self.pool)
        .await?;
        self.grant(&id).await
    }

    /// A grant by id (operators' side: any tenant).
    pub async fn grant(&self, id: &str) -> Result<Grant> {
        sqlx::query(concat!(
            "SELECT ",
            grant_columns!(),
            " FROM access_grants WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(grant)
        .transpose()?
        .ok_or(CatalogError::NotFound)
    }

    /// A tenant's grants and requests, newest first.
    pub async fn tenant_grants(&self, tenant_id: &str, limit: i64) -> Result<Vec<Grant>> {
        sqlx::query(concat!(
            "SELECT ",
            grant_columns!(),
            " FROM access_grants WHERE tenant_id = $1 ORDER BY requested_ms DESC, id LIMIT $2"
        ))
        .bind(tenant_id)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(grant)
        .collect()
    }

    /// Every grant, newest first (operators' view).
    pub async fn all_grants(&self, limit: i64) -> Result<Vec<Grant>> {
        sqlx::query(concat!(
            "SELECT ",
            grant_columns!(),
            " FROM access_grants ORDER BY requested_ms DESC, id LIMIT $1"
        ))
        .bind(limit.clamp(1, 10_000))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(grant)
        .collect()
    }

    /// The tenant's answer to a pending request: approved grants take effect
    /// now for their lifetime. Denying a grant already in effect revokes it.
    /// Another tenant's grant is not found.
    pub async fn decide_access(
        &self,
        tenant_id: &str,
        id: &str,
        approve: bool,
        by: &str,
    ) -> Result<Grant> {
        let g = self.grant(id).await?;
        if g.tenant_id != tenant_id {
            return Err(CatalogError::NotFound);
        }
        let now = now_ms();
        let n = match (g.status(now), approve) {
            (GrantStatus::Pending, true) => sqlx::query(
                "UPDATE access_grants SET state = 'approved', decided_by = $1, decided_ms = $2,
                 expires_ms = $2 + ttl_ms WHERE id = $3 AND state = 'pending'",
            ),
            (GrantStatus::Pending, false) => sqlx::query(
                "UPDATE access_grants SET state = 'denied', decided_by = $1, decided_ms = $2
                 WHERE id = $3 AND state = 'pending'",
            ),
            (GrantStatus::Active, false) => sqlx::query(
                "UPDATE access_grants SET state = 'revoked', decided_by = $1, decided_ms = $2
                 WHERE id = $3 AND state = 'approved'",
            ),
            (s, _) => {
                return Err(CatalogError::Invalid(format!(
                    "the request is {}; nothing to decide",
                    s.as_str()
                )));
            }
        }
        .bind(by)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(CatalogError::Conflict("the request changed meanwhile"));
        }
        self.grant(id).await
    }

    /// Ends a grant early (operators' side), whatever its state.
    pub async fn revoke_grant(&self, id: &str, by: &str) -> Result<Grant> {
        let n = sqlx::query(
            "UPDATE access_grants SET state = 'revoked', decided_by = $1, decided_ms = $2
             WHERE id = $3 AND state IN ('pending', 'approved')",
        )
        .bind(by)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(CatalogError::NotFound);
        }
        self.grant(id).await
    }

    /// The grant that lets `operator` open `video_id` of `tenant_id` now, if
    /// any: in effect, not expired, and held by an enabled operator.
    pub async fn usable_grant(
        &self,
        tenant_id: &str,
        video_id: &str,
        operator: &str,
    ) -> Result<Option<Grant>> {
        let now = now_ms();
        let r = sqlx::query(concat!(
            "SELECT ",
            grant_columns!(),
            " FROM access_grants g WHERE tenant_id = $1 AND video_id = $2 AND operator = $3
              AND state = 'approved' AND expires_ms > $4
              AND EXISTS (SELECT 1 FROM operators o WHERE o.name = g.operator AND o.disabled_ms IS NULL)
              ORDER BY expires_ms DESC LIMIT 1"
        ))
        .bind(tenant_id)
        .bind(video_id)
        .bind(operator)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        r.as_ref().map(grant).transpose()
    }

    /// The keyed fingerprint of the key the tenant holds itself, if it does.
    pub async fn customer_key_fp(&self, tenant_id: &str) -> Result<Option<String>> {
        let r = sqlx::query("SELECT customer_key_fp FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(CatalogError::NotFound)?;
        Ok(r.try_get(0)?)
    }

    /// Switches who holds the tenant's keys (`Some(fingerprint)`: the tenant).
    /// Only while the tenant stores nothing: objects keep the custody they
    /// were sealed under, and a mix would make the promise untrue.
    pub async fn set_customer_key_fp(&self, tenant_id: &str, fp: Option<&str>) -> Result<()> {
        let n = sqlx::query(
            "UPDATE tenants SET customer_key_fp = $1 WHERE id = $2
             AND NOT EXISTS (SELECT 1 FROM videos WHERE tenant_id = $2)",
        )
        .bind(fp)
        .bind(tenant_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            self.tenant(tenant_id).await?;
            return Err(CatalogError::Conflict(
                "key custody can only change while the tenant stores no videos",
            ));
        }
        Ok(())
    }

    /// Tenants in all, those requiring approval of operator access, and
    /// those holding their own key: one query, whatever the number of tenants
    /// (the public security report reads it).
    pub async fn tenant_counts(&self) -> Result<(i64, i64, i64)> {
        let r = sqlx::query(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE access_approval <> 0),
                    COUNT(*) FILTER (WHERE customer_key_fp IS NOT NULL) FROM tenants",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))
    }

    /// Which tenant's video holds vault object `object_id`, if any.
    pub async fn object_owner(&self, object_id: &str) -> Result<Option<(String, String)>> {
        let r = sqlx::query(
            "SELECT v.tenant_id, v.id FROM video_pieces p JOIN videos v ON v.id = p.video_id
             WHERE p.object_id = $1",
        )
        .bind(object_id)
        .fetch_optional(&self.pool)
        .await?;
        r.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(state: &str, requested: i64, expires: Option<i64>) -> Grant {
        Grant {
            id: String::new(),
            tenant_id: String::new(),
            video_id: String::new(),
            operator: String::new(),
            reason_code: String::new(),
            reason: String::new(),
            ticket: String::new(),
            ttl_ms: 1000,
            requested_ms: requested,
            state: state.into(),
            decided_by: None,
            decided_ms: None,
            expires_ms: expires,
        }
    }

    #[test]
    fn grants_expire_and_requests_lapse_on_their_own() {
        assert_eq!(g("approved", 0, Some(10)).status(9), GrantStatus::Active);
        assert_eq!(g("approved", 0, Some(10)).status(10), GrantStatus::Expired);
        assert_eq!(g("approved", 0, None).status(0), GrantStatus::Expired);
        assert_eq!(g("pending", 0, None).status(1), GrantStatus::Pending);
        assert_eq!(
            g("pending", 0, None).status(PENDING_LAPSE_MS),
            GrantStatus::Lapsed
        );
        assert_eq!(g("denied", 0, None).status(0), GrantStatus::Denied);
        assert_eq!(g("revoked", 0, Some(99)).status(0), GrantStatus::Revoked);
    }
}
