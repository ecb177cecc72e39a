//! Signed download links (invariant 5).
//!
//! `GET /v1/dl/{video}?e=<expiry, Unix seconds>&v=<key version>&s=<signature>`
//! where the signature is HMAC-SHA256 under the `links` service key version
//! `v` of `bettervideo link v1 \n METHOD \n tenant \n video \n expiry`.
//! The link names no tenant: the server finds it from the video, so a link
//! for a deleted video can no longer be checked and is refused. Signing keys
//! live in the vault's key store (the catalog) wrapped by the root key, which
//! the database never holds; rotation keeps the previous version, so links minted just
//! before a rotation keep working until the next one.

use std::sync::Arc;

use bv_crypto::secret::hex;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRefusal {
    /// Malformed, tampered, wrong object, wrong method, unknown key version.
    Invalid,
    /// Authentic but past its expiry.
    Expired,
}

/// Mints and checks links with the vault's `links` keys. The key ring keeps
/// them for a moment and reads the store again for a version it has not
/// seen, so a rotation made by another process is honoured at once when
/// checking and within seconds when signing.
#[derive(Debug)]
pub struct Links {
    vault: Arc<Vault>,
}

fn message(method: &str, tenant: &str, video: &str, expires: u64) -> Vec<u8> {
    format!("bettervideo link v1\n{method}\n{tenant}\n{video}\n{expires}").into_bytes()
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
        let (v, sig) = self
            .vault
            .mac(PURPOSE, &message(method, tenant, video, expires))
            .await?;
        Ok(format!("e={expires}&v={v}&s={}", hex(&sig)))
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
        let expires: u64 = p.e.parse().map_err(|_| LinkRefusal::Invalid)?;
        let version: u32 = p.v.parse().map_err(|_| LinkRefusal::Invalid)?;
        let sig = from_hex(&p.s).ok_or(LinkRefusal::Invalid)?;
        let ok = self
            .vault
            .mac_verify(
                PURPOSE,
                version,
                &message(method, tenant, video, expires),
                &sig,
            )
            .await
            .map_err(|_| LinkRefusal::Invalid)?;
        if !ok {
            return Err(LinkRefusal::Invalid);
        }
        if now >= expires {
            return Err(LinkRefusal::Expired);
        }
        Ok(())
    }
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
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
