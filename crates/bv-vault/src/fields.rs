//! Sealed fields: short catalog values that could identify content or
//! people (original file names, webhook URLs) stored sealed under a key of
//! their tenant, so a copy of the catalog shows ids, sizes and times but no
//! such value.
//!
//! Each tenant has one field key: the data key of a record in the key store
//! like any object's (no blob), wrapped by the tenant key. A tenant key
//! rotation re-wraps it with the tenant's other data keys, and destroying
//! the tenant's keys (erasure) makes every sealed field of the tenant
//! unreadable at the same moment as its objects. A sealed value is
//! `s1.<hex>`: AES-256-GCM under the field key, with a random nonce, bound
//! to the tenant and to what the field is (`video.name`, `webhook.url`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bv_crypto::keys::SecretKey;

use crate::error::{Result, VaultError};
use crate::ids::{ObjectId, TenantId};
use crate::keystore::{ObjectRecord, ObjectState};
use crate::vault::Vault;

/// How a sealed field starts.
pub const SEALED_PREFIX: &str = "s1.";

/// How long a process keeps a tenant's unwrapped field key (a listing opens
/// many fields; the key never changes, only its wrapping does).
const CACHE: Duration = Duration::from_secs(60);

/// Field keys this process holds, by tenant.
#[derive(Debug, Default)]
pub struct FieldKeys(Mutex<HashMap<TenantId, (Instant, SecretKey)>>);

impl FieldKeys {
    fn get(&self, t: &TenantId) -> Option<SecretKey> {
        let m = self.0.lock().expect("not poisoned");
        m.get(t)
            .filter(|(at, _)| at.elapsed() < CACHE)
            .map(|(_, k)| k.clone())
    }

    fn put(&self, t: &TenantId, k: &SecretKey) {
        let mut m = self.0.lock().expect("not poisoned");
        m.insert(*t, (Instant::now(), k.clone()));
    }

    /// Forgets the tenant's key (after its erasure).
    pub fn forget(&self, t: &TenantId) {
        self.0.lock().expect("not poisoned").remove(t);
    }
}

/// The key-store record id of the tenant's field key.
pub fn field_key_object(t: &TenantId) -> ObjectId {
    let h = bv_crypto::secret::token_hash(format!("bettervideo field key|{t}").as_bytes());
    h[..32].parse().expect("32 hex digits")
}

fn aad(t: &TenantId, field: &str) -> Vec<u8> {
    format!("bettervideo field|{t}|{field}").into_bytes()
}

fn epoch_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Vault {
    /// The tenant's field key, created on first use (first writer wins
    /// across processes).
    async fn field_key(&self, t: &TenantId) -> Result<SecretKey> {
        if let Some(k) = self.field_keys().get(t) {
            return Ok(k);
        }
        let o = field_key_object(t);
        let store = self.keys().store();
        loop {
            if let Some(r) = store.object(&o).await? {
                if r.tenant != t.to_string() {
                    return Err(VaultError::Key("field key record of another tenant".into()));
                }
                let k = self.keys().object_key(&r).await?;
                self.field_keys().put(t, &k);
                return Ok(k);
            }
            let (_, tv, wrapped) = self.keys().new_object_key(t, &o).await?;
            let rec = ObjectRecord {
                object: o.to_string(),
                tenant: t.to_string(),
                dek_version: 1,
                tenant_key_version: tv,
                wrapped_dek: wrapped,
                created: epoch_seconds(),
                state: ObjectState::Committed {
                    plain_len: 0,
                    sealed_len: 0,
                },
                customer: None,
                purpose: None,
            };
            // Whoever wrote first, everyone uses what is stored.
            store.put_object_new(&o, &rec).await?;
        }
    }

    /// Seals `value` as the tenant's `field` (e.g. `video.name`).
    pub async fn seal_field(&self, t: &TenantId, field: &str, value: &str) -> Result<String> {
        let k = self.field_key(t).await?;
        let sealed = k.seal_value(value.as_bytes(), &aad(t, field))?;
        Ok(format!(
            "{SEALED_PREFIX}{}",
            bv_crypto::secret::hex(&sealed)
        ))
    }

    /// Opens the tenant's sealed `field`. A value written before fields
    /// were sealed (no `s1.` prefix) is returned as it is.
    pub async fn open_field(&self, t: &TenantId, field: &str, stored: &str) -> Result<String> {
        // A plain value that merely starts like a sealed one (a file named
        // `s1.mp4`) is not hex: it is returned as it is, like any plain value.
        let Some(hex) = stored
            .strip_prefix(SEALED_PREFIX)
            .filter(|h| h.len() >= 58 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        else {
            return Ok(stored.to_string());
        };
        let bad = || {
            VaultError::Integrity(bv_crypto::CryptoError::Format(
                "a sealed field does not open under its tenant's key",
            ))
        };
        let bytes = bv_crypto::secret::from_hex(hex).ok_or_else(bad)?;
        let k = self.field_key(t).await?;
        let plain = k.open_value(&bytes, &aad(t, field)).map_err(|_| bad())?;
        String::from_utf8(plain).map_err(|_| bad())
    }
}
