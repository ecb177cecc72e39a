//! A tenant's export: everything the catalog holds about it, as one JSON
//! document it can take elsewhere (its videos' bytes it downloads itself).

use bv_catalog::Catalog;
use serde_json::{Value, json};

use crate::error::ServiceResult;
use bv_vault::Vault;

/// The export's format name.
pub const EXPORT_FORMAT: &str = "bettervideo-tenant-export/1";

/// The tenant's metadata and ledger.
pub async fn export(catalog: &Catalog, vault: &Vault, tenant_id: &str) -> ServiceResult<Value> {
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
        ledger.extend(page.into_iter().map(|e| {
            json!({
                "id": e.id, "kind": e.kind, "amount": e.amount, "job_id": e.job_id,
                "note": e.note, "created_at": crate::time::rfc3339_ms(e.created_ms),
            })
        }));
    }
    let jobs: Vec<Value> = catalog
        .all_jobs(tenant_id)
        .await?
        .into_iter()
        .map(|j| serde_json::to_value(j).unwrap_or(Value::Null))
        .collect();
    let keys = catalog.api_keys(tenant_id).await?;
    let webhook = match catalog.webhook(tenant_id).await? {
        Some(w) => {
            let url =
                crate::fields::open(vault, tenant_id, crate::fields::WEBHOOK_URL, &w.url).await?;
            Some(json!({ "url": url }))
        }
        None => None,
    };
    Ok(json!({
        "format": EXPORT_FORMAT,
        "exported_at": crate::time::rfc3339_ms(bv_catalog::now_ms()),
        "tenant": {
            "id": t.id, "name": t.name, "quota_bytes": t.quota_bytes,
            "max_upload_bytes": t.max_upload_bytes,
            "created_at": crate::time::rfc3339_ms(t.created_ms),
        },
        "retention": catalog.tenant_retention(tenant_id).await?,
        "limits": catalog.tenant_limit_overrides(tenant_id).await?,
        "credits": {"balance": catalog.credit_balance(tenant_id).await?, "ledger": ledger},
        "videos": videos,
        "jobs": jobs,
        "api_keys": keys,
        "webhook": webhook,
    }))
}
