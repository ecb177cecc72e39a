//! BetterVideo's vault: sealed objects in a blob store.
//!
//! Objects are sealed with the format of `bv-crypto` as they stream in and
//! opened as they stream out; nothing here can write plaintext to the store.
//! Blobs live in a local directory or any S3-compatible service (through the
//! `object_store` crate) under random 128-bit ids, so paths reveal no tenant,
//! name or time. Keys live apart from blobs in a key store (the catalog, or
//! a directory of files): each object's
//! data key wrapped by its tenant's key, each tenant key wrapped by a root
//! key (in memory from a file or the environment, or inside a PKCS#11
//! token: [`root`]). Deleting an object destroys its wrapped key first (crypto-shredding);
//! rotating root or tenant keys re-wraps keys and never touches a blob.

pub mod blobs;
pub mod config;
pub mod custody;
pub mod erasure;
pub mod error;
pub mod fields;
pub mod filestore;
pub mod ids;
pub mod keyring;
pub mod keystore;
pub mod root;
pub mod vault;

pub use config::VaultConfig;
pub use custody::CustomerKey;
pub use erasure::TenantErasure;
pub use error::VaultError;
pub use filestore::FileKeyStore;
pub use ids::{ObjectId, TenantId};
pub use keyring::KeyRing;
pub use keystore::KeyStore;
pub use vault::{ObjectInfo, SweepReport, Vault};
