//! A key store in a directory of small JSON files, each written atomically
//! (temporary file, fsync, rename, fsync of the directory). The vault on its
//! own uses it; `bv` keeps keys in the catalog and reads such a directory
//! only to import it (decision 0021).

use std::io::Write;
use std::path::{Path, PathBuf};

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;

use crate::error::{Result, VaultError};
use crate::ids::{ObjectId, TenantId};
use crate::keystore::{KeyStore, ObjectRecord, TenantKeyRecord};

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

    /// The store `cfg` names: `vault.keystore_dir`, else `<data_dir>/keys`.
    pub fn for_config(cfg: &crate::VaultConfig, data_dir: &Path) -> Self {
        Self::new(
            cfg.keystore_dir
                .clone()
                .unwrap_or_else(|| data_dir.join("keys")),
        )
    }

    /// Whether the directory holds any record at all.
    pub fn is_empty(&self) -> bool {
        ["tenants", "service", "objects"]
            .iter()
            .all(|d| std::fs::read_dir(self.dir.join(d)).map_or(true, |mut e| e.next().is_none()))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn tenant_dir(&self, t: &TenantId) -> PathBuf {
        self.dir.join("tenants").join(t.to_string())
    }

    fn object_path(&self, o: &ObjectId) -> PathBuf {
        self.dir.join("objects").join(format!("{o}.json"))
    }

    /// All versions of a tenant's key, oldest first.
    fn tenant_keys_now(&self, t: &TenantId) -> Result<Vec<TenantKeyRecord>> {
        key_versions(&self.tenant_dir(t))
    }

    /// Stores a tenant key version; `create_only` refuses to replace one (first writer wins).
    fn put_tenant_key_now(
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
    fn delete_tenant_key_now(&self, t: &TenantId, version: u32) -> Result<()> {
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
    fn service_keys_now(&self, purpose: &str) -> Result<Vec<TenantKeyRecord>> {
        key_versions(&self.service_dir(purpose))
    }

    /// Stores a service key version; `create_only` refuses to replace one.
    fn put_service_key_now(
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
    fn delete_service_key_now(&self, purpose: &str, version: u32) -> Result<()> {
        match std::fs::remove_file(self.service_dir(purpose).join(format!("v{version}.json"))) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Every service key purpose with keys.
    fn service_purposes_now(&self) -> Result<Vec<String>> {
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
    fn tenants_now(&self) -> Result<Vec<TenantId>> {
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
    fn object_now(&self, o: &ObjectId) -> Result<Option<ObjectRecord>> {
        read_json(&self.object_path(o))
    }

    /// Creates or replaces an object's record.
    fn put_object_now(&self, o: &ObjectId, r: &ObjectRecord) -> Result<()> {
        write_atomic(
            &self.object_path(o),
            &serde_json::to_vec_pretty(r).expect("serialisable"),
        )?;
        Ok(())
    }

    /// Deletes an object's record (the crypto-shred), durably.
    fn delete_object_now(&self, o: &ObjectId) -> Result<()> {
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
    fn objects_now(&self) -> Result<Vec<ObjectId>> {
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

// The file operations are short and synchronous (as they always were); each
// future is ready when returned.
impl KeyStore for FileKeyStore {
    fn tenant_keys<'a>(&'a self, t: &'a TenantId) -> BoxFuture<'a, Result<Vec<TenantKeyRecord>>> {
        futures::future::ready(self.tenant_keys_now(t)).boxed()
    }
    fn put_tenant_key<'a>(
        &'a self,
        t: &'a TenantId,
        r: &'a TenantKeyRecord,
        create_only: bool,
    ) -> BoxFuture<'a, Result<bool>> {
        futures::future::ready(self.put_tenant_key_now(t, r, create_only)).boxed()
    }
    fn delete_tenant_key<'a>(&'a self, t: &'a TenantId, version: u32) -> BoxFuture<'a, Result<()>> {
        futures::future::ready(self.delete_tenant_key_now(t, version)).boxed()
    }
    fn tenants(&self) -> BoxFuture<'_, Result<Vec<TenantId>>> {
        futures::future::ready(self.tenants_now()).boxed()
    }
    fn service_keys<'a>(&'a self, purpose: &'a str) -> BoxFuture<'a, Result<Vec<TenantKeyRecord>>> {
        futures::future::ready(self.service_keys_now(purpose)).boxed()
    }
    fn put_service_key<'a>(
        &'a self,
        purpose: &'a str,
        r: &'a TenantKeyRecord,
        create_only: bool,
    ) -> BoxFuture<'a, Result<bool>> {
        futures::future::ready(self.put_service_key_now(purpose, r, create_only)).boxed()
    }
    fn delete_service_key<'a>(
        &'a self,
        purpose: &'a str,
        version: u32,
    ) -> BoxFuture<'a, Result<()>> {
        futures::future::ready(self.delete_service_key_now(purpose, version)).boxed()
    }
    fn service_purposes(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        futures::future::ready(self.service_purposes_now()).boxed()
    }
    fn object<'a>(&'a self, o: &'a ObjectId) -> BoxFuture<'a, Result<Option<ObjectRecord>>> {
        futures::future::ready(self.object_now(o)).boxed()
    }
    fn put_object<'a>(&'a self, o: &'a ObjectId, r: &'a ObjectRecord) -> BoxFuture<'a, Result<()>> {
        futures::future::ready(self.put_object_now(o, r)).boxed()
    }
    fn put_object_new<'a>(
        &'a self,
        o: &'a ObjectId,
        r: &'a ObjectRecord,
    ) -> BoxFuture<'a, Result<bool>> {
        let path = self.object_path(o);
        let dir = path
            .parent()
            .expect("object paths have a parent")
            .to_path_buf();
        let bytes = serde_json::to_vec_pretty(r).expect("serialisable");
        futures::future::ready(create_new(&dir, &path, &bytes)).boxed()
    }
    fn delete_object<'a>(&'a self, o: &'a ObjectId) -> BoxFuture<'a, Result<()>> {
        futures::future::ready(self.delete_object_now(o)).boxed()
    }
    fn objects(&self) -> BoxFuture<'_, Result<Vec<ObjectId>>> {
        futures::future::ready(self.objects_now()).boxed()
    }
    fn tenant_objects<'a>(&'a self, t: &'a TenantId) -> BoxFuture<'a, Result<Vec<ObjectRecord>>> {
        let all = || -> Result<Vec<ObjectRecord>> {
            let mut out = Vec::new();
            for o in self.objects_now()? {
                if let Some(r) = self.object_now(&o)?
                    && r.tenant == t.to_string()
                {
                    out.push(r);
                }
            }
            Ok(out)
        };
        futures::future::ready(all()).boxed()
    }
}
