//! The key store: wrapped keys and object records, apart from the blobs.
//!
//! Today a directory of small JSON files written atomically (temporary file,
//! fsync, rename, fsync of the directory); the catalog will take this role
//! when it exists. Deleting an object record is the crypto-shred: the only
//! copy of the object's wrapped data key goes with it.

use std::io::Write;
use std::path::{Path, PathBuf};

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
}

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

/// The file-based key store.
#[derive(Debug, Clone)]
pub struct FileKeyStore {
    dir: PathBuf,
}

/// Writes `bytes` to `path` atomically and durably (mode 0600).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().expect("key store paths have a parent");
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("x"),
        std::process::id()
    ));
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Writes `path` only if it does not exist yet (first writer wins), durably.
fn create_new(dir: &Path, path: &Path, bytes: &[u8]) -> Result<bool> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("x");
    let tmp = dir.join(format!(".{name}.new-{}", std::process::id()));
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    // hard_link fails if the target exists: an atomic create-if-absent.
    let created = match std::fs::hard_link(&tmp, path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(e.into()),
    };
    std::fs::remove_file(&tmp)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(created)
}

/// Every key version record (`v<N>.json`) in `dir`, oldest first.
fn key_versions(dir: &Path) -> Result<Vec<TenantKeyRecord>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    for e in entries {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "json") {
            out.extend(read_json::<TenantKeyRecord>(&p)?);
        }
    }
    out.sort_by_key(|r| r.version);
    Ok(out)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            VaultError::Key(format!("corrupt key store record {}: {e}", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl FileKeyStore {
    /// A store rooted at `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn tenant_dir(&self, t: &TenantId) -> PathBuf {
        self.dir.join("tenants").join(t.to_string())
    }

    fn object_path(&self, o: &ObjectId) -> PathBuf {
        self.dir.join("objects").join(format!("{o}.json"))
    }

    /// All versions of a tenant's key, oldest first.
    pub fn tenant_keys(&self, t: &TenantId) -> Result<Vec<TenantKeyRecord>> {
        key_versions(&self.tenant_dir(t))
    }

    /// Stores a tenant key version; `create_only` refuses to replace one (first writer wins).
    pub fn put_tenant_key(
        &self,
        t: &TenantId,
        r: &TenantKeyRecord,
        create_only: bool,
    ) -> Result<bool> {
        let path = self.tenant_dir(t).join(format!("v{}.json", r.version));
        let bytes = serde_json::to_vec_pretty(r).expect("serialisable");
        if create_only {
            return create_new(&self.tenant_dir(t), &path, &bytes);
        }
        write_atomic(&path, &bytes)?;
        Ok(true)
    }

    /// Removes a tenant key version.
    pub fn delete_tenant_key(&self, t: &TenantId, version: u32) -> Result<()> {
        match std::fs::remove_file(self.tenant_dir(t).join(format!("v{version}.json"))) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    fn service_dir(&self, purpose: &str) -> PathBuf {
        self.dir.join("service").join(purpose)
    }

    /// All versions of a service key (`purpose`: e.g. `links`), oldest first.
    /// Service keys are the service's own secrets (link signing, queue MACs),
    /// wrapped by the root key like tenant keys and stored the same way.
    pub fn service_keys(&self, purpose: &str) -> Result<Vec<TenantKeyRecord>> {
        key_versions(&self.service_dir(purpose))
    }

    /// Stores a service key version; `create_only` refuses to replace one.
    pub fn put_service_key(
        &self,
        purpose: &str,
        r: &TenantKeyRecord,
        create_only: bool,
    ) -> Result<bool> {
        let dir = self.service_dir(purpose);
        let path = dir.join(format!("v{}.json", r.version));
        let bytes = serde_json::to_vec_pretty(r).expect("serialisable");
        if create_only {
            return create_new(&dir, &path, &bytes);
        }
        write_atomic(&path, &bytes)?;
        Ok(true)
    }

    /// Removes a service key version.
    pub fn delete_service_key(&self, purpose: &str, version: u32) -> Result<()> {
        match std::fs::remove_file(self.service_dir(purpose).join(format!("v{version}.json"))) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Every service key purpose with keys.
    pub fn service_purposes(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.join("service")) {
            for e in entries {
                out.extend(e?.file_name().to_str().map(str::to_string));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Every tenant with keys.
    pub fn tenants(&self) -> Result<Vec<TenantId>> {
        let dir = self.dir.join("tenants");
        let mut out = Vec::new();
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries {
                if let Some(t) = e?.file_name().to_str().and_then(|n| n.parse().ok()) {
                    out.push(t);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// An object's record.
    pub fn object(&self, o: &ObjectId) -> Result<Option<ObjectRecord>> {
        read_json(&self.object_path(o))
    }

    /// Creates or replaces an object's record.
    pub fn put_object(&self, o: &ObjectId, r: &ObjectRecord) -> Result<()> {
        write_atomic(
            &self.object_path(o),
            &serde_json::to_vec_pretty(r).expect("serialisable"),
        )?;
        Ok(())
    }

    /// Deletes an object's record (the crypto-shred), durably.
    pub fn delete_object(&self, o: &ObjectId) -> Result<()> {
        let p = self.object_path(o);
        match std::fs::remove_file(&p) {
            Ok(()) => {
                std::fs::File::open(p.parent().expect("has parent"))?.sync_all()?;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every object id with a record.
    pub fn objects(&self) -> Result<Vec<ObjectId>> {
        let mut out = Vec::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.join("objects")) {
            for e in entries {
                let name = e?.file_name();
                if let Some(id) = name
                    .to_str()
                    .and_then(|n| n.strip_suffix(".json"))
                    .and_then(|n| n.parse().ok())
                {
                    out.push(id);
                }
            }
        }
        out.sort();
        Ok(out)
    }
}
