//! Rate limits on requests and concurrency limits on uploads and jobs.
//!
//! Every authenticated request spends one token from its caller's bucket
//! (the API key, or the signed-in person) and one from its tenant's;
//! sign-ins and link minting spend from their client address's. The buckets
//! live in the catalog (`bv_catalog::limits`), so servers sharing a catalog
//! share them. A refusal is `429` with a `Retry-After` saying when the next
//! request would pass. Limits come from `[serve.limits]`, each overridable
//! per tenant (`bv admin tenant limits`).

use bv_catalog::Rate;
use http::StatusCode;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// `Retry-After` for a refusal by a concurrency limit (when a slot frees is
/// not known: an upload or job ends whenever it ends).
pub const BUSY_RETRY_SECONDS: u64 = 30;

pub use bv_service::limits::{Effective, effective, on};

/// The limits that apply to `tenant` now.
pub async fn for_tenant(st: &AppState, tenant: &str) -> ApiResult<Effective> {
    let o = st.catalog.tenant_limit_overrides(tenant).await?;
    Ok(effective(&st.cfg.limits, &o))
}

/// 429 `rate_limited` for `who`, retrying after `wait_ms`.
fn limited(who: &str, per_minute: u32, wait_ms: u64) -> ApiError {
    let secs = wait_ms.div_ceil(1000).max(1);
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many requests for {who} (at most {per_minute} a minute); retry in {secs} s"),
    )
    .retry_after(secs)
}

/// Spends one request of `caller` (e.g. `key:<id>`) and of `tenant`.
pub async fn admit(st: &AppState, caller: &str, tenant: &str) -> ApiResult<()> {
    let lim = for_tenant(st, tenant).await?;
    if let Some(wait) = st.catalog.take_rate(caller, lim.key).await? {
        st.metrics.rate_limited();
        let who = if caller.starts_with("key:") {
            "this API key"
        } else {
            "this session"
        };
        return Err(limited(who, lim.key.per_minute, wait));
    }
    let bucket = format!("tenant:{tenant}");
    if let Some(wait) = st.catalog.take_rate(&bucket, lim.tenant).await? {
        st.metrics.rate_limited();
        return Err(limited("this tenant", lim.tenant.per_minute, wait));
    }
    Ok(())
}

/// What a client address does that is limited on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressAction {
    /// Signing in.
    Login,
    /// Minting a download link.
    MintLink,
    /// Reading the public security report.
    Report,
    /// Downloading through a signed link.
    Download,
}

impl AddressAction {
    /// The bucket's name, its rate per minute under `limits`, who is
    /// refused (for the message), and whether a whole minute's worth may be
    /// spent at once. Reading the report and downloading through links are
    /// bursty by nature (a page and its Markdown, a client's parallel range
    /// requests), so they get a minute's burst; sign-ins and minting keep the
    /// short burst that slows a guesser.
    fn spec(
        self,
        limits: &bv_service::limits::LimitsConfig,
    ) -> (&'static str, u32, &'static str, bool) {
        match self {
            Self::Login => (
                "login",
                limits.login_per_minute_per_address,
                "sign-ins from this address",
                false,
            ),
            Self::MintLink => (
                "link",
                limits.links_per_minute_per_address,
                "links minted from this address",
                false,
            ),
            Self::Report => (
                "report",
                limits.report_per_minute_per_address,
                "security reports from this address",
                true,
            ),
            Self::Download => (
                "dl",
                limits.downloads_per_minute_per_address,
                "signed-link downloads from this address",
                true,
            ),
        }
    }
}

/// Spends one `action` of the client at `address`.
pub async fn admit_address(st: &AppState, action: AddressAction, address: &str) -> ApiResult<()> {
    let (name, per_minute, who, minute_burst) = action.spec(&st.cfg.limits);
    let rate = if minute_burst {
        Rate {
            per_minute,
            burst: per_minute.max(1),
        }
    } else {
        Rate::with_burst_seconds(per_minute, st.cfg.limits.burst_seconds)
    };
    let bucket = format!("addr-{name}:{address}");
    if let Some(wait) = st.catalog.take_rate(&bucket, rate).await? {
        st.metrics.rate_limited();
        return Err(limited(who, per_minute, wait));
    }
    Ok(())
}
