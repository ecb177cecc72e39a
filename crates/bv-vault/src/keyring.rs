//! The key hierarchy: root keys → tenant keys → per-object data keys.
//!
//! Root keys come from a key file (mode 0600) or from configuration (an
//! environment variable), both in `LocalRootKeys`' text form, or live in a
//! PKCS#11 token ([`crate::root`]). Tenant keys are created on first use
//! and stored wrapped by the current root version; data keys are stored
//! wrapped by the current tenant version. Rotation adds a version, re-wraps
//! everything beneath it, and retires the versions nothing references. Blobs
//! are never touched.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bv_crypto::SecretKey;
use bv_crypto::keys::LocalRootKeys;

pub use crate::root::RootSource;
use crate::root::{Pkcs11Root, Root};

use crate::config::VaultConfig;
use crate::error::{Result, VaultError};
use crate::filestore::write_atomic;
use crate::ids::{ObjectId, TenantId};
use crate::keystore::{KeyStore, ObjectRecord, TenantKeyRecord, from_hex, to_hex};

/// How long unwrapped service keys are reused before the store is read
/// again. A version another process added is picked up at once when a
/// verification names it; signing may use the previous version for this
/// long after a rotation elsewhere, which rotation tolerates by design (the
/// previous version stays valid).
const SERVICE_CACHE: Duration = Duration::from_secs(2);

/// Unwrapped versions of one service key, and when they were read.
type CachedService = (Instant, Arc<Vec<(u32, SecretKey)>>);

fn key_err(e: impl std::fmt::Display) -> VaultError {
    VaultError::Key(e.to_string())
}

/// The `root_version` of a tenant key wrapped by the tenant's own
/// key-encryption key in a PKCS#11 token rather than by a root version.
pub const TENANT_KEK: u32 = 0;

fn tenant_ctx(t: &TenantId, v: u32, root: u32) -> Vec<u8> {
    format!("bettervideo tenant key|{t}|v{v}|root v{root}").into_bytes()
}

fn dek_ctx(t: &TenantId, o: &ObjectId, dv: u32, tv: u32) -> Vec<u8> {
    format!("bettervideo data key|{t}|{o}|v{dv}|tenant key v{tv}").into_bytes()
}

fn service_ctx(purpose: &str, v: u32, root: u32) -> Vec<u8> {
    format!("bettervideo service key|{purpose}|v{v}|root v{root}").into_bytes()
}

/// What `keys status` shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyStatus {
    /// Where the root keys live: `file`, `env` or `pkcs11`.
    pub root_provider: String,
    /// Root key versions available, and the current one.
    pub root_versions: Vec<u32>,
    /// Current root version.
    pub root_current: u32,
    /// Per tenant: key versions and the objects they protect.
    pub tenants: Vec<TenantStatus>,
}

/// One tenant in [`KeyStatus`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct TenantStatus {
    /// Tenant id.
    pub tenant: String,
    /// (tenant key version, root version wrapping it).
    pub versions: Vec<(u32, u32)>,
    /// Objects whose data keys this tenant's keys wrap.
    pub objects: usize,
}

/// The key hierarchy over a key store.
pub struct KeyRing {
    root: RwLock<Root>,
    store: Arc<dyn KeyStore>,
    services: Mutex<HashMap<String, CachedService>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyRing({:?})", self.root.read().expect("not poisoned"))
    }
}

/// Reads a root key file, refusing one that others can read.
fn read_root_file(path: &Path) -> Result<LocalRootKeys> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(VaultError::Key(format!(
            "root key file {} is readable by group or others (mode {:o}); chmod 600 it",
            path.display(),
            meta.permissions().mode() & 0o777
        )));
    }
    LocalRootKeys::parse(&std::fs::read_to_string(path)?).map_err(key_err)
}

impl KeyRing {
    /// Opens the hierarchy. Returns a notice to print loudly when a root key was generated.
    /// `store` holds the wrapped keys and object records.
    pub fn open(
        cfg: &VaultConfig,
        data_dir: &Path,
        store: Arc<dyn KeyStore>,
    ) -> Result<(Self, Option<String>)> {
        match cfg.root_key_provider.as_str() {
            "file" | "env" => {}
            "pkcs11" => {
                let (root, notice) = Pkcs11Root::open(cfg)?;
                return Ok((Self::with_root(Root::Pkcs11(root), store), notice));
            }
            other => {
                return Err(VaultError::Config(format!(
                    "vault.root_key_provider {other:?} is not one of: file, env, pkcs11"
                )));
            }
        }
        if let Some(text) = cfg.root_key.as_deref().filter(|t| !t.trim().is_empty()) {
            let root = LocalRootKeys::parse(text).map_err(key_err)?;
            return Ok((Self::new(root, RootSource::Config, store), None));
        }
        let path = cfg
            .root_key_file
            .clone()
            .unwrap_or_else(|| data_dir.join("root.key"));
        let mut notice = None;
        let root = if path.exists() {
            read_root_file(&path)?
        } else if cfg.generate_root_key {
            let root = LocalRootKeys::generate().map_err(key_err)?;
            write_atomic(&path, root.to_text().as_bytes())?;
            notice = Some(format!(
                "*** A NEW ROOT KEY WAS GENERATED at {} (development mode). Every stored object depends on it: \
                 back it up somewhere safe, or use a key file / BV_VAULT_ROOT_KEY / a KMS in production. ***",
                path.display()
            ));
            root
        } else {
            return Err(VaultError::Key(format!(
                "no root key: {} does not exist, BV_VAULT_ROOT_KEY is unset and vault.generate_root_key is false",
                path.display()
            )));
        };
        Ok((Self::new(root, RootSource::File(path), store), notice))
    }

    /// A key ring over explicit parts (tests, embedding).
    pub fn new(root: LocalRootKeys, source: RootSource, store: Arc<dyn KeyStore>) -> Self {
        Self::with_root(Root::Local { keys: root, source }, store)
    }

    /// A key ring over any root-key provider.
    pub fn with_root(root: Root, store: Arc<dyn KeyStore>) -> Self {
        Self {
            root: RwLock::new(root),
            store,
            services: Mutex::new(HashMap::new()),
        }
    }

    /// The root-key provider in effect: `file`, `env` or `pkcs11`.
    pub fn root_provider(&self) -> &'static str {
        self.root.read().expect("not poisoned").provider()
    }

    /// The key store.
    pub fn store(&self) -> &dyn KeyStore {
        &*self.store
    }

    fn unwrap_tenant(&self, t: &TenantId, r: &TenantKeyRecord) -> Result<SecretKey> {
        let root = self.root.read().expect("not poisoned");
        let ctx = tenant_ctx(t, r.version, r.root_version);
        if r.root_version == TENANT_KEK {
            return match &*root {
                Root::Pkcs11(p) => {
                    p.unwrap_for_tenant(&t.to_string(), &from_hex(&r.wrapped)?, &ctx)
                }
                Root::Local { .. } => Err(VaultError::Key(format!(
                    "tenant {t}'s keys are wrapped by its key in a PKCS#11 token: \
                     vault.root_key_provider must be pkcs11"
                ))),
            };
        }
        root.unwrap(r.root_version, &from_hex(&r.wrapped)?, &ctx)
    }

    fn wrap_tenant(&self, t: &TenantId, version: u32, key: &SecretKey) -> Result<TenantKeyRecord> {
        let root = self.root.read().expect("not poisoned");
        // In a token, each tenant's keys are wrapped by a key of its own
        // there, which its erasure destroys (root versions are shared).
        let (rv, wrapped) = match &*root {
            Root::Pkcs11(p) => (
                TENANT_KEK,
                p.wrap_for_tenant(&t.to_string(), key, &tenant_ctx(t, version, TENANT_KEK))?,
            ),
            Root::Local { .. } => {
                let rv = root.current_version();
                (rv, root.wrap(rv, key, &tenant_ctx(t, version, rv))?)
            }
        };
        Ok(TenantKeyRecord {
            version,
            root_version: rv,
            wrapped: to_hex(&wrapped),
        })
    }

    /// Destroys what tenant `t`'s keys are wrapped by, where it can be
    /// destroyed on its own: its key-encryption key in a PKCS#11 token.
    /// Returns whether there was one. With file or environment root keys
    /// the tenant's keys are wrapped by a root version shared by every
    /// tenant; retiring it (`bv keys rotate --root`) is what makes old
    /// copies of them useless.
    pub fn destroy_tenant_kek(&self, t: &TenantId) -> Result<bool> {
        match &*self.root.read().expect("not poisoned") {
            Root::Pkcs11(p) => Ok(p.destroy_tenant(&t.to_string())? > 0),
            Root::Local { .. } => Ok(false),
        }
    }

    /// The PKCS#11 token's label, when the root keys are in one.
    pub fn token(&self) -> Option<String> {
        match &*self.root.read().expect("not poisoned") {
            Root::Pkcs11(p) => Some(p.token().to_string()),
            Root::Local { .. } => None,
        }
    }

    /// The tenant's current key (created on first use).
    pub async fn tenant_key_current(&self, t: &TenantId) -> Result<(u32, SecretKey)> {
        loop {
            if let Some(r) = self.store.tenant_keys(t).await?.pop() {
                return Ok((r.version, self.unwrap_tenant(t, &r)?));
            }
            let rec = self.wrap_tenant(t, 1, &SecretKey::generate().map_err(key_err)?)?;
            // Another process may create it at the same moment: first writer wins, all re-read.
            self.store.put_tenant_key(t, &rec, true).await?;
        }
    }

    async fn tenant_key(&self, t: &TenantId, version: u32) -> Result<SecretKey> {
        let rec = self
            .store
            .tenant_keys(t)
            .await?
            .into_iter()
            .find(|r| r.version == version)
            .ok_or_else(|| VaultError::Key(format!("tenant key version {version} is gone")))?;
        self.unwrap_tenant(t, &rec)
    }

    /// A fresh data key for a new object, and the record fields that store it wrapped.
    pub async fn new_object_key(
        &self,
        t: &TenantId,
        o: &ObjectId,
    ) -> Result<(SecretKey, u32, String)> {
        let (tv, tk) = self.tenant_key_current(t).await?;
        let dek = SecretKey::generate().map_err(key_err)?;
        let wrapped = tk.wrap(&dek, &dek_ctx(t, o, 1, tv)).map_err(key_err)?;
        Ok((dek, tv, to_hex(&wrapped)))
    }

    /// The data key of an object record.
    pub async fn object_key(&self, r: &ObjectRecord) -> Result<SecretKey> {
        let (t, o) = (r.tenant.parse::<TenantId>()?, r.object.parse::<ObjectId>()?);
        let tk = self.tenant_key(&t, r.tenant_key_version).await?;
        tk.unwrap(
            &from_hex(&r.wrapped_dek)?,
            &dek_ctx(&t, &o, r.dek_version, r.tenant_key_version),
        )
        .map_err(key_err)
    }

    async fn tenant_objects(&self, t: &TenantId) -> Result<Vec<(ObjectId, ObjectRecord)>> {
        self.store
            .tenant_objects(t)
            .await?
            .into_iter()
            .map(|r| Ok((r.object.parse()?, r)))
            .collect()
    }

    /// Adds a tenant key version, re-wraps every data key of the tenant under
    /// it, and retires the old versions. Returns (new version, data keys re-wrapped).
    pub async fn rotate_tenant(&self, t: &TenantId) -> Result<(u32, usize)> {
        let old = self.store.tenant_keys(t).await?;
        let v = old.last().map_or(1, |r| r.version + 1);
        let key = SecretKey::generate().map_err(key_err)?;
        let rec = self.wrap_tenant(t, v, &key)?;
        if !self.store.put_tenant_key(t, &rec, true).await? {
            return Err(VaultError::Key(format!(
                "tenant key version {v} appeared concurrently; retry"
            )));
        }
        let mut n = 0;
        for (o, mut r) in self.tenant_objects(t).await? {
            if r.tenant_key_version == v {
                continue;
            }
            let dek = self.object_key(&r).await?;
            r.wrapped_dek = to_hex(
                &key.wrap(&dek, &dek_ctx(t, &o, r.dek_version, v))
                    .map_err(key_err)?,
            );
            r.tenant_key_version = v;
            self.store.put_object(&o, &r).await?;
            n += 1;
        }
        // Retire versions nothing references any more (re-read: objects may have been added meanwhile).
        let used: Vec<u32> = self
            .tenant_objects(t)
            .await?
            .iter()
            .map(|(_, r)| r.tenant_key_version)
            .collect();
        for r in old {
            if !used.contains(&r.version) {
                self.store.delete_tenant_key(t, r.version).await?;
            }
        }
        self.rekey_tenant_kek(t).await?;
        Ok((v, n))
    }

    /// With root keys in a PKCS#11 token: gives tenant `t` a new
    /// key-encryption key there, re-wraps its key versions under it and
    /// destroys the old one, so any copy of those versions made before (a
    /// deleted video's keys in PostgreSQL's dead rows, its WAL, a backup)
    /// opens nothing. Returns the versions re-wrapped (0 without a token).
    pub async fn rekey_tenant_kek(&self, t: &TenantId) -> Result<usize> {
        let ts = t.to_string();
        let old = match &*self.root.read().expect("not poisoned") {
            Root::Pkcs11(p) => p.new_tenant_generation(&ts)?,
            Root::Local { .. } => return Ok(0),
        };
        let mut n = 0;
        for r in self.store.tenant_keys(t).await? {
            if r.root_version != TENANT_KEK {
                continue;
            }
            // Unwrapped by whichever generation wrapped it, wrapped by the newest.
            let key = self.unwrap_tenant(t, &r)?;
            let rec = self.wrap_tenant(t, r.version, &key)?;
            self.store.put_tenant_key(t, &rec, false).await?;
            n += 1;
        }
        if let Root::Pkcs11(p) = &*self.root.read().expect("not poisoned") {
            p.destroy_objects(&old)?;
        }
        Ok(n)
    }

    fn unwrap_service(&self, purpose: &str, r: &TenantKeyRecord) -> Result<SecretKey> {
        let root = self.root.read().expect("not poisoned");
        root.unwrap(
            r.root_version,
            &from_hex(&r.wrapped)?,
            &service_ctx(purpose, r.version, r.root_version),
        )
    }

    fn wrap_service(
        &self,
        purpose: &str,
        version: u32,
        key: &SecretKey,
    ) -> Result<TenantKeyRecord> {
        let root = self.root.read().expect("not poisoned");
        let rv = root.current_version();
        let wrapped = root.wrap(rv, key, &service_ctx(purpose, version, rv))?;
        Ok(TenantKeyRecord {
            version,
            root_version: rv,
            wrapped: to_hex(&wrapped),
        })
    }

    /// Every live version of the service key `purpose` (e.g. `links`),
    /// oldest first; the last is current. Version 1 is made on first use.
    /// Read through a short cache (see `SERVICE_CACHE`).
    pub async fn service_keys(&self, purpose: &str) -> Result<Arc<Vec<(u32, SecretKey)>>> {
        let cached = {
            let services = self.services.lock().expect("not poisoned");
            services
                .get(purpose)
                .filter(|(at, _)| at.elapsed() < SERVICE_CACHE)
                .map(|(_, keys)| keys.clone())
        };
        if let Some(keys) = cached {
            return Ok(keys);
        }
        self.load_service_keys(purpose).await
    }

    /// Version `version` of the service key `purpose`, reading the store
    /// again when the cache does not have it (another process may have just
    /// added it). `None` when no such version exists.
    pub async fn service_key(&self, purpose: &str, version: u32) -> Result<Option<SecretKey>> {
        let find = |keys: &[(u32, SecretKey)]| {
            keys.iter()
                .find(|(v, _)| *v == version)
                .map(|(_, k)| k.clone())
        };
        if let Some(k) = find(&self.service_keys(purpose).await?) {
            return Ok(Some(k));
        }
        Ok(find(&self.load_service_keys(purpose).await?))
    }

    async fn load_service_keys(&self, purpose: &str) -> Result<Arc<Vec<(u32, SecretKey)>>> {
        loop {
            let recs = self.store.service_keys(purpose).await?;
            if !recs.is_empty() {
                let keys = Arc::new(
                    recs.iter()
                        .map(|r| Ok((r.version, self.unwrap_service(purpose, r)?)))
                        .collect::<Result<Vec<_>>>()?,
                );
                self.services
                    .lock()
                    .expect("not poisoned")
                    .insert(purpose.to_string(), (Instant::now(), keys.clone()));
                return Ok(keys);
            }
            let rec = self.wrap_service(purpose, 1, &SecretKey::generate().map_err(key_err)?)?;
            self.store.put_service_key(purpose, &rec, true).await?;
        }
    }

    fn forget_service_keys(&self) {
        self.services.lock().expect("not poisoned").clear();
    }

    /// Adds a version of the service key `purpose` and retires all but the
    /// newest `keep` versions (so what the previous key signed stays valid
    /// until the next rotation). Returns the new version.
    pub async fn rotate_service_key(&self, purpose: &str, keep: usize) -> Result<u32> {
        self.forget_service_keys();
        let old = self.store.service_keys(purpose).await?;
        let v = old.last().map_or(1, |r| r.version + 1);
        let rec = self.wrap_service(purpose, v, &SecretKey::generate().map_err(key_err)?)?;
        if !self.store.put_service_key(purpose, &rec, true).await? {
            return Err(VaultError::Key(format!(
                "{purpose} key version {v} appeared concurrently; retry"
            )));
        }
        let live = old.len() + 1;
        for r in old.iter().take(live.saturating_sub(keep.max(1))) {
            self.store.delete_service_key(purpose, r.version).await?;
        }
        self.forget_service_keys();
        Ok(v)
    }

    /// Adds a root key version, re-wraps every tenant key under it, and
    /// retires the old root versions. Returns (new version, tenant keys re-wrapped).
    pub async fn rotate_root(&self) -> Result<(u32, usize)> {
        let v = self.root.write().expect("not poisoned").rotate()?;
        let mut n = 0;
        for t in self.store.tenants().await? {
            for r in self.store.tenant_keys(&t).await? {
                // Keys under a tenant's own key-encryption key owe nothing to the root.
                if r.root_version == v || r.root_version == TENANT_KEK {
                    continue;
                }
                let key = self.unwrap_tenant(&t, &r)?;
                let rec = self.wrap_tenant(&t, r.version, &key)?;
                self.store.put_tenant_key(&t, &rec, false).await?;
                n += 1;
            }
        }
        // In a token, each tenant's own key is renewed too: after a root
        // rotation no copy made before it opens anything, in either mode.
        for t in self.store.tenants().await? {
            n += self.rekey_tenant_kek(&t).await?;
        }
        for purpose in self.store.service_purposes().await? {
            for r in self.store.service_keys(&purpose).await? {
                if r.root_version == v {
                    continue;
                }
                let key = self.unwrap_service(&purpose, &r)?;
                let rec = self.wrap_service(&purpose, r.version, &key)?;
                self.store.put_service_key(&purpose, &rec, false).await?;
                n += 1;
            }
        }
        let mut used = Vec::new();
        for t in self.store.tenants().await? {
            used.extend(
                self.store
                    .tenant_keys(&t)
                    .await?
                    .iter()
                    .map(|r| r.root_version),
            );
        }
        for purpose in self.store.service_purposes().await? {
            used.extend(
                self.store
                    .service_keys(&purpose)
                    .await?
                    .iter()
                    .map(|r| r.root_version),
            );
        }
        self.forget_service_keys();
        self.root
            .write()
            .expect("not poisoned")
            .retire_except(&used)?;
        Ok((v, n))
    }

    /// Versions and counts, for `bv keys status`.
    pub async fn status(&self) -> Result<KeyStatus> {
        let mut tenants = Vec::new();
        for t in self.store.tenants().await? {
            let versions = self
                .store
                .tenant_keys(&t)
                .await?
                .iter()
                .map(|r| (r.version, r.root_version))
                .collect();
            tenants.push(TenantStatus {
                tenant: t.to_string(),
                versions,
                objects: self.store.tenant_objects(&t).await?.len(),
            });
        }
        let root = self.root.read().expect("not poisoned");
        Ok(KeyStatus {
            root_provider: root.provider().into(),
            root_versions: root.versions(),
            root_current: root.current_version(),
            tenants,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> Arc<dyn KeyStore> {
        Arc::new(crate::FileKeyStore::new(dir.join("keys")))
    }

    #[tokio::test]
    async fn root_key_sources() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        // Development mode: generated once, with a notice, mode 0600; reused afterwards.
        let cfg = VaultConfig::default();
        let (_, notice) = KeyRing::open(&cfg, d.path(), files(d.path())).unwrap();
        assert!(notice.unwrap().contains("NEW ROOT KEY"));
        let path = d.path().join("root.key");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(
            KeyRing::open(&cfg, d.path(), files(d.path()))
                .unwrap()
                .1
                .is_none()
        );
        // A key file others can read is refused.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            matches!(KeyRing::open(&cfg, d.path(), files(d.path())), Err(VaultError::Key(m)) if m.contains("chmod 600"))
        );
        // Without a file and without generation: a clear error.
        let empty = tempfile::tempdir().unwrap();
        let strict = VaultConfig {
            generate_root_key: false,
            ..VaultConfig::default()
        };
        assert!(
            matches!(KeyRing::open(&strict, empty.path(), files(empty.path())), Err(VaultError::Key(m)) if m.contains("no root key"))
        );
        // From configuration (the environment): used as given, not rotatable in place.
        let text = format!("v3:{}", "ab".repeat(32));
        let env = VaultConfig {
            root_key: Some(text),
            generate_root_key: false,
            ..VaultConfig::default()
        };
        let (ring, _) = KeyRing::open(&env, empty.path(), files(empty.path())).unwrap();
        assert_eq!(ring.status().await.unwrap().root_current, 3);
        let t = TenantId::random().unwrap();
        assert_eq!(ring.tenant_key_current(&t).await.unwrap().0, 1);
        assert!(ring.rotate_root().await.is_err());
        assert!(
            !empty.path().join("root.key").exists(),
            "nothing written to disk"
        );
    }

    #[tokio::test]
    async fn service_keys_rotate_keep_the_previous_and_survive_root_rotation() {
        let d = tempfile::tempdir().unwrap();
        let (ring, _) = KeyRing::open(&VaultConfig::default(), d.path(), files(d.path())).unwrap();
        let v1 = ring.service_keys("links").await.unwrap();
        assert_eq!(v1.len(), 1);
        assert_eq!(v1[0].0, 1);
        assert_eq!(
            ring.service_keys("links").await.unwrap()[0].1.expose(),
            v1[0].1.expose(),
            "stable"
        );
        assert_ne!(
            ring.service_keys("queue").await.unwrap()[0].1.expose(),
            v1[0].1.expose(),
            "per purpose"
        );
        assert_eq!(ring.rotate_service_key("links", 2).await.unwrap(), 2);
        let after = ring.service_keys("links").await.unwrap();
        assert_eq!(after.iter().map(|k| k.0).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(after[0].1.expose(), v1[0].1.expose());
        assert_eq!(ring.rotate_service_key("links", 2).await.unwrap(), 3);
        let after = ring.service_keys("links").await.unwrap();
        assert_eq!(
            after.iter().map(|k| k.0).collect::<Vec<_>>(),
            vec![2, 3],
            "v1 retired"
        );
        // Root rotation re-wraps service keys; the old root version can then go.
        let (rv, _) = ring.rotate_root().await.unwrap();
        let again = ring.service_keys("links").await.unwrap();
        assert_eq!(again[1].1.expose(), after[1].1.expose());
        assert_eq!(ring.status().await.unwrap().root_versions, vec![rv]);
        let reopened = KeyRing::open(&VaultConfig::default(), d.path(), files(d.path()))
            .unwrap()
            .0;
        assert_eq!(
            reopened.service_keys("links").await.unwrap()[1].1.expose(),
            after[1].1.expose()
        );
    }
}
