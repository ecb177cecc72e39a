//! The key store: wrapped keys and object records, apart from the blobs.
//!
//! [`KeyStore`] is what the key ring needs from wherever the records live:
//! the catalog (SQLite or PostgreSQL, shared by every server and worker of a
//! cluster; `bv-catalog` implements it) or a directory of files
//! ([`crate::filestore::FileKeyStore`], for the vault on its own). Deleting an
//! object record is the crypto-shred: the only copy of the object's wrapped
//! data key goes with it.

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::error::{Result, VaultError};
use crate::ids::{ObjectId, TenantId};

/// One version of a tenant key, wrapped by a root key version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TenantKeyRecord {
    /// Tenant key version.
    pub version: u32,
    /// Root key version that wraps it.
    pub root_version: u32,
    /// Wrapped key, hex.
    pub wrapped: String,
}

/// Whether an object's blob is complete.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ObjectState {
    /// Being written; invisible. `upload` is the multipart upload id, when the backend has one.
    Pending {
        /// Multipart upload id (S3), for the sweep to abort.
        upload: Option<String>,
    },
    /// Complete and visible.
    Committed {
        /// Plaintext length.
        plain_len: u64,
        /// Stored (sealed) length.
        sealed_len: u64,
    },
}

/// Everything the vault knows about one object.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObjectRecord {
    /// Object id.
    pub object: String,
    /// Owning tenant.
    pub tenant: String,
    /// Data-key version (bound into the sealed format).
    pub dek_version: u32,
    /// Tenant key version wrapping the data key.
    pub tenant_key_version: u32,
    /// Wrapped data key, hex.
    pub wrapped_dek: String,
    /// Seconds since the Unix epoch when the put began.
    pub created: u64,
    /// Pending or committed.
    #[serde(flatten)]
    pub state: ObjectState,
    /// For a tenant that holds its own key: the customer's share of the data key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<crate::custody::CustomerShare>,
    /// What the object is for, when its maker said ([`PIECE`]: a piece of a
    /// video, which the catalog must refer to). Objects without one (made
    /// by `bv vault put`, a tenant's field key, or before this was recorded)
    /// are never taken for orphans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
}

/// [`ObjectRecord::purpose`] of a video's piece.
pub const PIECE: &str = "piece";

/// Hex encoding for wrapped keys in records.
pub fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Hex decoding for wrapped keys in records.
pub fn from_hex(s: &str) -> Result<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return Err(VaultError::Key("malformed hex in key store".into()));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&s[i..i + 2], 16)
                .map_err(|_| VaultError::Key("malformed hex in key store".into()))
        })
        .collect()
}

/// Where wrapped keys and object records live. Every method is one durable
/// step on its own: a record written has been committed when the future ends.
pub trait KeyStore: Send + Sync + std::fmt::Debug {
    /// All versions of a tenant's key, oldest first.
    fn tenant_keys<'a>(&'a self, t: &'a TenantId) -> BoxFuture<'a, Result<Vec<TenantKeyRecord>>>;
    /// Stores a tenant key version; `create_only` refuses to replace one
    /// (first writer wins) and returns whether this call created it.
    fn put_tenant_key<'a>(
        &'a self,
        t: &'a TenantId,
        r: &'a TenantKeyRecord,
        create_only: bool,
    ) -> BoxFuture<'a, Result<bool>>;
    /// Removes a tenant key version.
    fn delete_tenant_key<'a>(&'a self, t: &'a TenantId, version: u32) -> BoxFuture<'a, Result<()>>;
    /// Every tenant with keys.
    fn tenants(&self) -> BoxFuture<'_, Result<Vec<TenantId>>>;
    /// All versions of a service key (`purpose`: e.g. `links`), oldest first.
    /// Service keys are the service's own secrets (link signing, queue MACs),
    /// wrapped by the root key like tenant keys and stored the same way.
    fn service_keys<'a>(&'a self, purpose: &'a str) -> BoxFuture<'a, Result<Vec<TenantKeyRecord>>>;
    /// Stores a service key version; `create_only` as for tenant keys.
    fn put_service_key<'a>(
        &'a self,
        purpose: &'a str,
        r: &'a TenantKeyRecord,
        create_only: bool,
    ) -> BoxFuture<'a, Result<bool>>;
    /// Removes a service key version.
    fn delete_service_key<'a>(
        &'a self,
        purpose: &'a str,
        version: u32,
    ) -> BoxFuture<'a, Result<()>>;
    /// Every service key purpose with keys.
    fn service_purposes(&self) -> BoxFuture<'_, Result<Vec<String>>>;
    /// An object's record.
    fn object<'a>(&'a self, o: &'a ObjectId) -> BoxFuture<'a, Result<Option<ObjectRecord>>>;
    /// Creates or replaces an object's record.
    fn put_object<'a>(&'a self, o: &'a ObjectId, r: &'a ObjectRecord) -> BoxFuture<'a, Result<()>>;
    /// Creates an object's record unless one exists (first writer wins);
    /// whether this call created it.
    fn put_object_new<'a>(
        &'a self,
        o: &'a ObjectId,
        r: &'a ObjectRecord,
    ) -> BoxFuture<'a, Result<bool>>;
    /// Deletes an object's record (the crypto-shred), durably.
    fn delete_object<'a>(&'a self, o: &'a ObjectId) -> BoxFuture<'a, Result<()>>;
    /// Every object id with a record.
    fn objects(&self) -> BoxFuture<'_, Result<Vec<ObjectId>>>;
    /// Every object record of tenant `t`.
    fn tenant_objects<'a>(&'a self, t: &'a TenantId) -> BoxFuture<'a, Result<Vec<ObjectRecord>>>;
}
