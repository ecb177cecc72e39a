//! The catalog's sealed fields: values that could identify content or people
//! go into the catalog sealed under their tenant's field key
//! (`bv_vault::fields`) and come out opened, here.

use bv_catalog::Video;
use bv_vault::Vault;

use crate::error::ServiceResult;
use crate::media::tenant_id;

/// A video's file name.
pub const VIDEO_NAME: &str = "video.name";
/// A tus upload's `Upload-Metadata` header (file name and type, base64).
pub const UPLOAD_METADATA: &str = "upload.metadata";
/// A tenant's webhook URL.
pub const WEBHOOK_URL: &str = "webhook.url";

/// `value` sealed as the tenant's `field`.
pub async fn seal(vault: &Vault, tenant: &str, field: &str, value: &str) -> ServiceResult<String> {
    Ok(vault.seal_field(&tenant_id(tenant)?, field, value).await?)
}

/// The tenant's `field` opened.
pub async fn open(vault: &Vault, tenant: &str, field: &str, stored: &str) -> ServiceResult<String> {
    Ok(vault.open_field(&tenant_id(tenant)?, field, stored).await?)
}

/// A video with its name opened.
pub async fn opened(vault: &Vault, mut v: Video) -> ServiceResult<Video> {
    v.name = open(vault, &v.tenant_id, VIDEO_NAME, &v.name).await?;
    Ok(v)
}

/// Videos as clients see them (names opened).
pub async fn video_views(
    vault: &Vault,
    vs: Vec<Video>,
) -> ServiceResult<Vec<crate::views::VideoView>> {
    let mut out = Vec::with_capacity(vs.len());
    for v in vs {
        out.push(crate::views::VideoView::from(opened(vault, v).await?));
    }
    Ok(out)
}

/// Seals every value written before these fields were sealed (an upgrade
/// from an older version); returns how many. `bv serve` runs it at start.
pub async fn backfill(catalog: &bv_catalog::Catalog, vault: &Vault) -> ServiceResult<usize> {
    use bv_catalog::sealing::SealedColumn;
    let mut n = 0;
    for col in SealedColumn::ALL {
        let field = match col {
            SealedColumn::VideoName => VIDEO_NAME,
            SealedColumn::UploadMetadata => UPLOAD_METADATA,
            SealedColumn::WebhookUrl => WEBHOOK_URL,
        };
        loop {
            let rows = catalog.unsealed(col).await?;
            if rows.is_empty() {
                break;
            }
            for (key, tenant, plain) in rows {
                let sealed = seal(vault, &tenant, field, &plain).await?;
                if catalog.replace_unsealed(col, &key, &plain, &sealed).await? {
                    n += 1;
                }
            }
        }
    }
    if n > 0 {
        tracing::info!(
            values = n,
            "sealed catalog fields written by an older version"
        );
    }
    Ok(n)
}
