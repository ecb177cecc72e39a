//! Erasing a tenant from the vault, and the key that signs what was erased.
//!
//! The tenant's keys go first: every data key of the tenant is wrapped by
//! one of them, so once they are gone no object of the tenant opens again,
//! wherever a copy of its ciphertext or its wrapped data key survives
//! (backups, replicas, a blob a failed delete left behind). The object
//! records and blobs are removed after that, as tidying.

use bv_crypto::sign::Signer;
use serde::Serialize;

use crate::error::{Result, VaultError};
use crate::ids::{ObjectId, TenantId};
use crate::keystore::ObjectState;
use crate::vault::Vault;

/// The service-key purpose whose keys seed the erasure-receipt signatures.
pub const ERASURE_PURPOSE: &str = "erasure";

/// What erasing a tenant removed from the vault.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TenantErasure {
    /// Tenant key versions destroyed (the crypto-shred).
    pub key_versions: Vec<u32>,
    /// Object records removed.
    pub objects: usize,
    /// Plaintext bytes those objects held.
    pub bytes: u64,
    /// Blobs whose removal failed (unreadable all the same; the orphan sweep retries).
    pub blobs_left: usize,
    /// The root versions that wrapped the destroyed keys (file or
    /// environment root keys): copies of those keys surviving elsewhere
    /// open nothing once these versions are retired.
    pub root_versions: Vec<u32>,
    /// The tenant's own key-encryption key was destroyed inside the HSM.
    pub kek_destroyed: bool,
}

impl Vault {
    /// Destroys the tenant's keys, then its object records and blobs.
    pub async fn erase_tenant(&self, t: &TenantId) -> Result<TenantErasure> {
        let store = self.keys().store();
        let mut e = TenantErasure::default();
        for r in store.tenant_keys(t).await? {
            store.delete_tenant_key(t, r.version).await?;
            e.key_versions.push(r.version);
            if r.root_version != crate::keyring::TENANT_KEK
                && !e.root_versions.contains(&r.root_version)
            {
                e.root_versions.push(r.root_version);
            }
        }
        // In an HSM, what wraps them dies too: no copy of those keys (a
        // database's dead rows, its log, a backup) opens anything again.
        e.kek_destroyed = self.keys().destroy_tenant_kek(t)?;
        self.field_keys().forget(t);
        let field_key = crate::fields::field_key_object(t);
        for r in store.tenant_objects(t).await? {
            let o: ObjectId = r.object.parse()?;
            if o == field_key {
                // The sealed fields' key has no blob.
                store.delete_object(&o).await?;
                continue;
            }
            let removed = match &r.state {
                ObjectState::Pending { upload } => self
                    .blobs()
                    .reclaim(&o, upload.as_deref())
                    .await
                    .map(|_| ()),
                ObjectState::Committed { plain_len, .. } => {
                    e.bytes += plain_len;
                    self.blobs().delete(&o).await
                }
            };
            if removed.is_err() {
                e.blobs_left += 1;
            }
            store.delete_object(&o).await?;
            e.objects += 1;
        }
        Ok(e)
    }

    /// The current erasure signing key and its version.
    pub async fn erasure_signer(&self) -> Result<(u32, Signer)> {
        let keys = self.keys().service_keys(ERASURE_PURPOSE).await?;
        let (v, k) = keys
            .last()
            .expect("service_keys never returns an empty list");
        Ok((
            *v,
            Signer::from_seed(k).map_err(|e| VaultError::Key(e.to_string()))?,
        ))
    }

    /// The public key of erasure signing key `version`, if it exists.
    pub async fn erasure_public_key(&self, version: u32) -> Result<Option<Vec<u8>>> {
        let Some(k) = self.keys().service_key(ERASURE_PURPOSE, version).await? else {
            return Ok(None);
        };
        let s = Signer::from_seed(&k).map_err(|e| VaultError::Key(e.to_string()))?;
        Ok(Some(s.public_key()))
    }
}
