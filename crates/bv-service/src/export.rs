//! A tenant's export: everything the catalog holds about it, as one JSON
//! document it can take elsewhere (its videos' bytes it downloads itself).

use bv_catalog::Catalog;
use serde::Serialize;

use crate::error::ServiceResult;
use bv_vault::Vault;

/// The export's format name.
pub const EXPORT_FORMAT: &str = "bettervideo-tenant-export/1";

/// A tenant's export document.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = TenantExport))]
pub struct Export {
    /// [`EXPORT_FORMAT`].
    pub format: &'static str,
    /// When it was made, RFC 3339.
    pub exported_at: String,
    /// The tenant.
    pub tenant: ExportTenant,
    /// Its retention rules.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub retention: bv_catalog::TenantRetention,
    /// Its own limits (null: the service's).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub limits: bv_catalog::TenantLimitOverrides,
    /// Balance and every movement.
    pub credits: ExportCredits,
    /// Its videos.
    pub videos: Vec<crate::views::VideoView>,
    /// Every job.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub jobs: Vec<bv_catalog::Job>,
    /// Its API keys (never their secrets).
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub api_keys: Vec<bv_catalog::ApiKey>,
    /// Its webhook, if it has one.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub webhook: Option<ExportWebhook>,
}

/// The tenant, in its export.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExportTenant {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Storage quota, bytes.
    pub quota_bytes: i64,
    /// Largest upload, bytes.
    pub max_upload_bytes: i64,
    /// Creation time, RFC 3339.
    pub created_at: String,
}

/// Credits, in an export.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExportCredits {
    /// Available and reserved.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub balance: bv_catalog::Balance,
    /// Every movement, newest first.
    pub ledger: Vec<ExportLedgerEntry>,
}

/// One movement of credits, in an export.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExportLedgerEntry {
    /// Entry id.
    pub id: String,
    /// `grant`, `reserve`, `capture`, `release` or `refund`.
    pub kind: String,
    /// Credits (always positive; the kind says which way).
    pub amount: i64,
    /// The job it settles, if any.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub job_id: Option<String>,
    /// Why.
    pub note: String,
    /// When, RFC 3339.
    pub created_at: String,
}

/// The webhook, in an export.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExportWebhook {
    /// Where events are POSTed.
    pub url: String,
}

/// The tenant's metadata and ledger.
pub async fn export(catalog: &Catalog, vault: &Vault, tenant_id: &str) -> ServiceResult<Export> {
    let t = catalog.tenant(tenant_id).await?;
    let mut videos = Vec::new();
    let mut after: Option<(i64, String)> = None;
    loop {
        let page = catalog
            .videos(
                tenant_id,
                1000,
                after.as_ref().map(|(ms, id)| (*ms, id.as_str())),
            )
            .await?;
        let Some(last) = page.last() else { break };
        after = Some((last.created_ms, last.id.clone()));
        videos.extend(crate::fields::video_views(vault, page).await?);
    }
    let mut ledger = Vec::new();
    let mut before: Option<(i64, String)> = None;
    loop {
        let page = catalog
            .credit_history(
                tenant_id,
                1000,
                before.as_ref().map(|(ms, id)| (*ms, id.as_str())),
            )
            .await?;
        let Some(last) = page.last() else { break };
        before = Some((last.created_ms, last.id.clone()));
        ledger.extend(page.into_iter().map(|e| ExportLedgerEntry {
            id: e.id,
            kind: e.kind,
            amount: e.amount,
            job_id: e.job_id,
            note: e.note,
            created_at: crate::time::rfc3339_ms(e.created_ms),
        }));
    }
    let webhook = match catalog.webhook(tenant_id).await? {
        Some(w) => Some(ExportWebhook {
            url: crate::fields::open(vault, tenant_id, crate::fields::WEBHOOK_URL, &w.url).await?,
        }),
        None => None,
    };
    Ok(Export {
        format: EXPORT_FORMAT,
        exported_at: crate::time::rfc3339_ms(bv_catalog::now_ms()),
        tenant: ExportTenant {
            id: t.id,
            name: t.name,
            quota_bytes: t.quota_bytes,
            max_upload_bytes: t.max_upload_bytes,
            created_at: crate::time::rfc3339_ms(t.created_ms),
        },
        retention: catalog.tenant_retention(tenant_id).await?,
        limits: catalog.tenant_limit_overrides(tenant_id).await?,
        credits: ExportCredits {
            balance: catalog.credit_balance(tenant_id).await?,
            ledger,
        },
        videos,
        jobs: catalog.all_jobs(tenant_id).await?,
        api_keys: catalog.api_keys(tenant_id).await?,
        webhook,
    })
}
