//! Rate and concurrency limits: the service's defaults (`[serve.limits]`)
//! with a tenant's own overrides laid over them (`bv admin limits`). The
//! API enforces them on every request; the admin commands show them.

use bv_catalog::{Rate, TenantLimitOverrides};
use serde::{Deserialize, Serialize};

/// Rate and concurrency limits that keep one noisy tenant or client from
/// starving the others. Every count lives in the catalog, so several servers
/// sharing it share the limits. 0 turns a limit off.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Requests per minute for each API key (and each signed-in person).
    pub key_requests_per_minute: u32,
    /// Requests per minute for a whole tenant, all its keys together.
    pub tenant_requests_per_minute: u32,
    /// How many seconds' worth of a rate may be spent at once after a quiet
    /// spell (the burst).
    pub burst_seconds: u32,
    /// Unfinished uploads a tenant may have at once.
    pub concurrent_uploads: u32,
    /// Jobs a tenant may have queued or running at once (probes aside).
    pub active_jobs: u32,
    /// Sign-in attempts per minute from one client address (failed sign-ins
    /// are limited on their own by `login_max_failures`).
    pub login_per_minute_per_address: u32,
    /// Download links minted per minute from one client address.
    pub links_per_minute_per_address: u32,
    /// Requests for the public security report (JSON, Markdown or the
    /// `/security` page) per minute from one client address: it is
    /// unauthenticated and reads the catalog.
    pub report_per_minute_per_address: u32,
    /// Signed-link downloads per minute from one client address (a link
    /// needs no key, so nothing else limits it).
    pub downloads_per_minute_per_address: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            key_requests_per_minute: 1200,
            tenant_requests_per_minute: 6000,
            burst_seconds: 10,
            concurrent_uploads: 50,
            active_jobs: 500,
            login_per_minute_per_address: 30,
            links_per_minute_per_address: 300,
            report_per_minute_per_address: 60,
            downloads_per_minute_per_address: 600,
        }
    }
}

/// The limits that apply to one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effective {
    /// Per API key or person.
    pub key: Rate,
    /// For the whole tenant.
    pub tenant: Rate,
    /// Unfinished uploads at once (0: unlimited).
    pub concurrent_uploads: i64,
    /// Jobs queued or running at once (0: unlimited).
    pub active_jobs: i64,
}

/// A limit from the tenant's override or the service's default.
fn pick(over: Option<i64>, default: u32) -> u32 {
    over.map_or(default, |v| u32::try_from(v).unwrap_or(u32::MAX))
}

/// The service's limits with the tenant's own laid over them.
pub fn effective(cfg: &LimitsConfig, o: &TenantLimitOverrides) -> Effective {
    let rate = |per_minute| Rate::with_burst_seconds(per_minute, cfg.burst_seconds);
    Effective {
        key: rate(pick(o.key_requests_per_minute, cfg.key_requests_per_minute)),
        tenant: rate(pick(
            o.tenant_requests_per_minute,
            cfg.tenant_requests_per_minute,
        )),
        concurrent_uploads: i64::from(pick(o.concurrent_uploads, cfg.concurrent_uploads)),
        active_jobs: i64::from(pick(o.active_jobs, cfg.active_jobs)),
    }
}

/// `Some(limit)` for a concurrency limit that is on.
pub fn on(limit: i64) -> Option<i64> {
    (limit > 0).then_some(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_win_and_zero_means_unlimited() {
        let cfg = LimitsConfig::default();
        let none = effective(&cfg, &TenantLimitOverrides::default());
        assert_eq!(none.key.per_minute, cfg.key_requests_per_minute);
        assert_eq!(none.active_jobs, i64::from(cfg.active_jobs));
        let o = TenantLimitOverrides {
            key_requests_per_minute: Some(6),
            concurrent_uploads: Some(0),
            ..Default::default()
        };
        let e = effective(&cfg, &o);
        assert_eq!(e.key, Rate::with_burst_seconds(6, cfg.burst_seconds));
        assert_eq!(on(e.concurrent_uploads), None);
        assert_eq!(e.tenant.per_minute, cfg.tenant_requests_per_minute);
    }
}
