//! Signed download links (invariant 5).
//!
//! `GET /v1/dl/{video}?e=<expiry, Unix seconds>&v=<key version>&s=<signature>`
//! (the token format is `bv_crypto::links`), signed with the vault's `links`
//! service key.
//! The link names no tenant: the server finds it from the video, so a link
//! for a deleted video can no longer be checked and is refused. Signing keys
//! live in the vault's key store (the catalog) wrapped by the root key, which
//! the database never holds; rotation keeps the previous version, so links minted just
//! before a rotation keep working until the next one.

use std::sync::Arc;

use bv_crypto::links;
use bv_vault::Vault;

/// The service-key purpose of link signing keys.
pub const PURPOSE: &str = "links";

/// A link's query parameters, as received.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct LinkParams {
    /// Expiry, Unix seconds.
    #[serde(default)]
    pub e: String,
    /// Signing key version.
    #[serde(default)]
    pub v: String,
    /// Signature, hex.
    #[serde(default)]
    pub s: String,
}

/// Why a link was refused.
pub use bv_crypto::links::Refusal as LinkRefusal;

/// Mints and checks links with the vault's `links` keys (the token format is
/// `bv_crypto::links`). The key ring keeps the keys for a moment and reads
/// the store again for a version it has not seen, so a rotation made by
/// another process is honoured at once when checking and within seconds
/// when signing.
#[derive(Debug)]
pub struct Links {
    vault: Arc<Vault>,
}

impl Links {
    /// Links signed with the vault's `links` keys.
    pub fn new(vault: Arc<Vault>) -> Self {
        Self { vault }
    }

    /// The query string (`e=…&v=…&s=…`) of a link for `method` on `video` of `tenant`.
    pub async fn sign(
        &self,
        method: &str,
        tenant: &str,
        video: &str,
        expires: u64,
    ) -> Result<String, bv_vault::VaultError> {
        let keys = self.vault.keys().service_keys(PURPOSE).await?;
        let (v, k) = keys
            .last()
            .expect("service_keys never returns an empty list");
        Ok(links::sign(k, *v, method, tenant, video, expires))
    }

    /// Checks a link's parameters at time `now` (Unix seconds).
    pub async fn verify(
        &self,
        method: &str,
        tenant: &str,
        video: &str,
        p: &LinkParams,
        now: u64,
    ) -> Result<(), LinkRefusal> {
        let t = links::parse(&p.e, &p.v, &p.s).ok_or(LinkRefusal::Invalid)?;
        let key = self
            .vault
            .keys()
            .service_key(PURPOSE, t.version)
            .await
            .map_err(|_| LinkRefusal::Invalid)?;
        links::check(key.as_ref(), method, tenant, video, &t, now)
    }
}

/// The signature part of a query string replaced, for anything that logs URLs.
pub fn redact_query(q: &str) -> String {
    q.split('&')
        .map(|kv| match kv.split_once('=') {
            Some(("s", _)) => "s=<redacted>".to_string(),
            _ => kv.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}
