//! Customer-held keys (like S3's SSE-C): a tenant can keep a 256-bit key of
//! its own that the service never stores. An object sealed for such a tenant
//! has a data key made of two random shares, XORed: one wrapped by the tenant
//! key (as every object's is, so root and tenant key rotation and
//! crypto-shredding work unchanged), the other wrapped by a key derived from
//! the customer's key. Opening it needs both, so without the customer's key
//! nobody at the service — operators included — can open it. Only a keyed
//! fingerprint of the customer's key is kept, to tell a wrong key from a
//! damaged object.

use bv_crypto::keys::{KEY_LEN, SecretKey};
use serde::{Deserialize, Serialize};

use crate::error::{Result, VaultError};
use crate::ids::{ObjectId, TenantId};

/// The vault service-key purpose that keys customer-key fingerprints.
pub const FINGERPRINT_PURPOSE: &str = "customer-keys";

/// A key supplied by the customer for one request (or one job's life).
pub struct CustomerKey(SecretKey);

impl std::fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CustomerKey(…)")
    }
}

impl CustomerKey {
    /// From exactly 32 bytes.
    pub fn from_slice(b: &[u8]) -> Result<Self> {
        if b.len() != KEY_LEN {
            return Err(VaultError::Invalid(format!(
                "a customer key is {KEY_LEN} bytes, not {}",
                b.len()
            )));
        }
        Ok(Self(SecretKey::from_slice(b)?))
    }

    /// The raw key (to hand to a job's custody, never to a log).
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        self.0.expose()
    }

    /// The key that wraps this customer's shares for tenant `t` (never stored).
    fn kek(&self, t: &TenantId) -> SecretKey {
        let msg = format!("bettervideo customer kek v1|{t}");
        SecretKey::from_bytes(bv_crypto::secret::mac(&self.0, msg.as_bytes()))
    }
}

/// The customer's share of an object's data key, as the key store keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CustomerShare {
    /// Keyed fingerprint of the customer key (see [`crate::Vault::customer_fingerprint`]).
    pub fingerprint: String,
    /// The share, wrapped by the key derived from the customer key, hex.
    pub wrapped: String,
}

fn share_ctx(t: &TenantId, o: &ObjectId, dv: u32) -> Vec<u8> {
    format!("bettervideo customer share|{t}|{o}|v{dv}").into_bytes()
}

fn xor(a: &SecretKey, b: &SecretKey) -> SecretKey {
    let mut out = [0u8; KEY_LEN];
    for (i, o) in out.iter_mut().enumerate() {
        *o = a.expose()[i] ^ b.expose()[i];
    }
    SecretKey::from_bytes(out)
}

/// Splits off a customer share: returns the object's data key and the share
/// to store, given the tenant-wrapped share.
pub(crate) fn split(
    tenant_share: &SecretKey,
    ck: &CustomerKey,
    fingerprint: String,
    t: &TenantId,
    o: &ObjectId,
    dek_version: u32,
) -> Result<(SecretKey, CustomerShare)> {
    let mine = SecretKey::generate()?;
    let wrapped = ck.kek(t).wrap(&mine, &share_ctx(t, o, dek_version))?;
    Ok((
        xor(tenant_share, &mine),
        CustomerShare {
            fingerprint,
            wrapped: crate::keystore::to_hex(&wrapped),
        },
    ))
}

/// Joins the shares back into the data key; `fingerprint` is that of `ck`.
pub(crate) fn join(
    tenant_share: &SecretKey,
    share: &CustomerShare,
    ck: Option<(&CustomerKey, String)>,
    t: &TenantId,
    o: &ObjectId,
    dek_version: u32,
) -> Result<SecretKey> {
    let Some((ck, fp)) = ck else {
        return Err(VaultError::CustomerKey(
            "customer_key_required",
            "this object is sealed under the tenant's own key, which the request did not carry"
                .into(),
        ));
    };
    if !bv_crypto::secret::ct_eq(fp.as_bytes(), share.fingerprint.as_bytes()) {
        return Err(VaultError::CustomerKey(
            "customer_key_mismatch",
            "the customer key given is not the one this object was sealed under".into(),
        ));
    }
    let mine = ck.kek(t).unwrap(
        &crate::keystore::from_hex(&share.wrapped)?,
        &share_ctx(t, o, dek_version),
    )?;
    Ok(xor(tenant_share, &mine))
}
