//! Webhook secrets and signatures (Stripe's scheme).
//!
//! `BV-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`,
//! with a second `v1` made with the previous secret while a rotation
//! overlaps. Receivers should refuse a `t` more than 5 minutes away. Secrets
//! are not stored anywhere: each is derived from the vault's `webhooks`
//! service key, the tenant and the secret's version, and shown when made.

use bv_catalog::webhooks::Webhook;
use bv_vault::{Vault, VaultError};

/// The service-key purpose secrets are derived from (never rotated: that would change every secret).
pub const PURPOSE: &str = "webhooks";

/// The signing secret of version `version` of the tenant's webhook.
pub async fn secret(vault: &Vault, tenant: &str, version: i64) -> Result<String, VaultError> {
    let (_, tag) = vault
        .mac(
            PURPOSE,
            format!("bettervideo webhook secret\n{tenant}\n{version}").as_bytes(),
        )
        .await?;
    Ok(format!("whsec_{}", bv_crypto::secret::hex(&tag)))
}

/// The `BV-Signature` header for `body` sent at `t` (Unix seconds, now in ms for the overlap).
pub async fn signature(
    vault: &Vault,
    tenant: &str,
    hook: &Webhook,
    t: u64,
    now_ms: i64,
    body: &str,
) -> Result<String, VaultError> {
    let mut versions = vec![hook.secret_version];
    if hook.previous_until_ms.is_some_and(|u| u > now_ms) && hook.secret_version > 1 {
        versions.push(hook.secret_version - 1);
    }
    let mut header = format!("t={t}");
    for v in versions {
        let s = secret(vault, tenant, v).await?;
        let sig = bv_crypto::secret::mac_bytes(s.as_bytes(), format!("{t}.{body}").as_bytes());
        header.push_str(&format!(",v1={}", bv_crypto::secret::hex(&sig)));
    }
    Ok(header)
}
