//! Root-key providers: where the keys at the top of the hierarchy live.
//!
//! - `file` / `env`: [`LocalRootKeys`] in this process's memory, read from a
//!   key file (mode 0600) or from `BV_VAULT_ROOT_KEY`.
//! - `pkcs11`: AES-256 keys inside a PKCS#11 token (an HSM; SoftHSM2 in the
//!   tests), one token object per version, labelled `<pkcs11_key_label>-v<N>`,
//!   created sensitive and non-extractable. Wrapping and unwrapping happen in
//!   the token (AES-GCM, the context as additional data): the root key never
//!   enters this process. Rotation creates a new version in the token;
//!   retiring a version destroys its object there.
//!
//! Each provider wraps with its own format; a wrapped key names the root
//! version it needs, and only the provider that holds it can open it.

use std::path::PathBuf;
use std::sync::Mutex;

use bv_crypto::SecretKey;
use bv_crypto::keys::{LocalRootKeys, RootKeys};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

use crate::config::VaultConfig;
use crate::error::{Result, VaultError};

/// Length of the random nonce before a token-wrapped key.
const IV_LEN: usize = 12;

fn key_err(e: impl std::fmt::Display) -> VaultError {
    VaultError::Key(e.to_string())
}

/// Where local root keys came from (decides whether rotation can persist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootSource {
    /// A key file we may rewrite.
    File(PathBuf),
    /// Configuration / environment: read-only.
    Config,
}

/// The root keys in effect.
pub enum Root {
    /// In memory, from a file or the environment.
    Local {
        /// The versions.
        keys: LocalRootKeys,
        /// Where they came from.
        source: RootSource,
    },
    /// In a PKCS#11 token.
    Pkcs11(Pkcs11Root),
}

impl std::fmt::Debug for Root {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local { source, .. } => write!(f, "Root::Local({source:?})"),
            Self::Pkcs11(p) => write!(f, "Root::Pkcs11({}, {})", p.token, p.label),
        }
    }
}

impl Root {
    /// The provider's name: `file`, `env` or `pkcs11`.
    pub fn provider(&self) -> &'static str {
        match self {
            Self::Local {
                source: RootSource::File(_),
                ..
            } => "file",
            Self::Local { .. } => "env",
            Self::Pkcs11(_) => "pkcs11",
        }
    }

    /// The version new wraps use.
    pub fn current_version(&self) -> u32 {
        match self {
            Self::Local { keys, .. } => keys.current_version(),
            Self::Pkcs11(p) => p.current_version(),
        }
    }

    /// Every version that can still unwrap.
    pub fn versions(&self) -> Vec<u32> {
        match self {
            Self::Local { keys, .. } => keys.versions(),
            Self::Pkcs11(p) => {
                let _ = p.refresh();
                p.list().iter().map(|(v, _)| *v).collect()
            }
        }
    }

    /// Wraps `key` under root version `version`, bound to `context`.
    pub fn wrap(&self, version: u32, key: &SecretKey, context: &[u8]) -> Result<Vec<u8>> {
        match self {
            Self::Local { keys, .. } => keys.wrap(version, key, context).map_err(key_err),
            Self::Pkcs11(p) => p.wrap(version, key, context),
        }
    }

    /// Unwraps a key wrapped under root version `version`.
    pub fn unwrap(&self, version: u32, wrapped: &[u8], context: &[u8]) -> Result<SecretKey> {
        match self {
            Self::Local { keys, .. } => keys.unwrap(version, wrapped, context).map_err(key_err),
            Self::Pkcs11(p) => p.unwrap(version, wrapped, context),
        }
    }

    /// Adds a new current version (persisted where the provider keeps
    /// them) and returns its number.
    pub fn rotate(&mut self) -> Result<u32> {
        match self {
            Self::Local {
                keys,
                source: RootSource::File(path),
            } => {
                let v = keys.rotate().map_err(key_err)?;
                crate::filestore::write_atomic(path, keys.to_text().as_bytes())?;
                Ok(v)
            }
            Self::Local { .. } => Err(VaultError::Key(
                "root keys come from configuration; rotate them there (add a v<N+1> entry) and restart"
                    .into(),
            )),
            Self::Pkcs11(p) => p.rotate(),
        }
    }

    /// Retires every version but the current one and those in `keep`: gone
    /// from the key file, or destroyed in the token. Returns the versions
    /// retired.
    pub fn retire_except(&mut self, keep: &[u32]) -> Result<Vec<u32>> {
        let cur = self.current_version();
        let gone: Vec<u32> = self
            .versions()
            .into_iter()
            .filter(|v| *v != cur && !keep.contains(v))
            .collect();
        match self {
            Self::Local {
                keys,
                source: RootSource::File(path),
            } => {
                keys.retire_except(keep);
                crate::filestore::write_atomic(path, keys.to_text().as_bytes())?;
            }
            Self::Local { .. } => {}
            Self::Pkcs11(p) => {
                for v in &gone {
                    p.destroy(*v)?;
                }
            }
        }
        Ok(gone)
    }
}

/// The module's one context in this process. PKCS#11 allows one
/// `C_Initialize` per process and a module sees the tokens it found then;
/// every vault of the process shares the context, which lives as long as
/// the process (finalising it under another vault's sessions would end them).
fn context(module: &std::path::Path) -> Result<Pkcs11> {
    static CONTEXTS: std::sync::OnceLock<Mutex<std::collections::HashMap<PathBuf, Pkcs11>>> =
        std::sync::OnceLock::new();
    let mut all = CONTEXTS
        .get_or_init(Default::default)
        .lock()
        .expect("not poisoned");
    if let Some(c) = all.get(module) {
        return Ok(c.clone());
    }
    let ctx = Pkcs11::new(module).map_err(|e| {
        VaultError::Config(format!(
            "loading the PKCS#11 module {}: {e}",
            module.display()
        ))
    })?;
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .map_err(|e| VaultError::Key(format!("PKCS#11 initialize: {e}")))?;
    all.insert(module.to_path_buf(), ctx.clone());
    Ok(ctx)
}

/// Root keys in a PKCS#11 token.
pub struct Pkcs11Root {
    /// Kept so the library stays loaded and initialised while sessions live.
    _ctx: Pkcs11,
    /// One logged-in session; PKCS#11 sessions may not be used from two
    /// threads at once.
    session: Mutex<Session>,
    /// The token's label.
    token: String,
    /// The label prefix of the root key objects.
    label: String,
    /// (version, object), oldest first, as last read from the token (a
    /// version another process added is found when first needed).
    versions: Mutex<Vec<(u32, ObjectHandle)>>,
}

impl Pkcs11Root {
    /// Opens the token `cfg.pkcs11_token` through `cfg.pkcs11_module`, logs in
    /// with the PIN, and finds the root key versions; when there are none,
    /// creates version 1 in the token (the returned notice says so).
    pub fn open(cfg: &VaultConfig) -> Result<(Self, Option<String>)> {
        let module = &cfg.pkcs11_module;
        if module.as_os_str().is_empty() {
            return Err(VaultError::Config(
                "vault.root_key_provider = \"pkcs11\" needs vault.pkcs11_module (the token's \
                 PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so)"
                    .into(),
            ));
        }
        let pin = pin(cfg)?;
        let hsm = |what: &'static str| {
            move |e: cryptoki::error::Error| VaultError::Key(format!("PKCS#11 {what}: {e}"))
        };
        let ctx = context(module)?;
        let mut labels = Vec::new();
        let mut slot = None;
        for s in ctx.get_slots_with_token().map_err(hsm("slots"))? {
            let label = ctx
                .get_token_info(s)
                .map_err(hsm("token info"))?
                .label()
                .to_string();
            if label == cfg.pkcs11_token {
                slot = Some(s);
                break;
            }
            // An uninitialised slot has no label: not a token to name.
            if !label.is_empty() {
                labels.push(label);
            }
        }
        let slot = slot.ok_or_else(|| {
            VaultError::Config(format!(
                "no PKCS#11 token labelled {:?} in {} (tokens: {})",
                cfg.pkcs11_token,
                module.display(),
                if labels.is_empty() {
                    "none".to_string()
                } else {
                    labels.join(", ")
                }
            ))
        })?;
        let session = ctx.open_rw_session(slot).map_err(hsm("session"))?;
        // A login holds for every session of the process: a second vault
        // (a command's, beside the server's) finds it done.
        match session.login(UserType::User, Some(&pin)) {
            Ok(())
            | Err(cryptoki::error::Error::Pkcs11(
                cryptoki::error::RvError::UserAlreadyLoggedIn,
                _,
            )) => {}
            Err(e) => {
                return Err(VaultError::Key(format!(
                    "PKCS#11 login to token {:?} (check BV_VAULT_PKCS11_PIN): {e}",
                    cfg.pkcs11_token
                )));
            }
        }
        let mut root = Self {
            _ctx: ctx,
            session: Mutex::new(session),
            token: cfg.pkcs11_token.clone(),
            label: cfg.pkcs11_key_label.clone(),
            versions: Mutex::new(Vec::new()),
        };
        root.refresh()?;
        let mut notice = None;
        if root.list().is_empty() {
            root.rotate()?;
            notice = Some(format!(
                "created root key version 1 in PKCS#11 token {:?} as {}-v1 (sensitive, non-extractable)",
                root.token, root.label
            ));
        }
        Ok((root, notice))
    }

    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        self.session.lock().expect("not poisoned")
    }

    /// The root key objects in the token, by the version in their label.
    fn find_versions(&self) -> Result<Vec<(u32, ObjectHandle)>> {
        let s = self.session();
        let prefix = format!("{}-v", self.label);
        let mut out = Vec::new();
        let handles = s
            .find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY)])
            .map_err(key_err)?;
        for h in handles {
            let attrs = s
                .get_attributes(h, &[AttributeType::Label])
                .map_err(key_err)?;
            let Some(Attribute::Label(l)) = attrs.first() else {
                continue;
            };
            let Some(v) = std::str::from_utf8(l)
                .ok()
                .and_then(|l| l.strip_prefix(&prefix))
                .and_then(|v| v.parse::<u32>().ok())
            else {
                continue;
            };
            out.push((v, h));
        }
        out.sort_by_key(|(v, _)| *v);
        Ok(out)
    }

    /// Reads the versions in the token again.
    fn refresh(&self) -> Result<()> {
        let found = self.find_versions()?;
        *self.versions.lock().expect("not poisoned") = found;
        Ok(())
    }

    fn list(&self) -> Vec<(u32, ObjectHandle)> {
        self.versions.lock().expect("not poisoned").clone()
    }

    /// The newest version in the token (read again: another process, `bv
    /// keys rotate --root`, may have added one, and wrapping under an older
    /// one that it is about to retire would lose the key).
    fn current_version(&self) -> u32 {
        let _ = self.refresh();
        self.list().last().map_or(0, |(v, _)| *v)
    }

    /// The objects of root version `version`: normally one, two when two
    /// processes made the first version of an empty token at once.
    fn handles(&self, version: u32) -> Result<Vec<ObjectHandle>> {
        let find = |l: Vec<(u32, ObjectHandle)>| {
            l.iter()
                .filter(|(v, _)| *v == version)
                .map(|(_, h)| *h)
                .collect::<Vec<_>>()
        };
        let found = find(self.list());
        if !found.is_empty() {
            return Ok(found);
        }
        self.refresh()?;
        let found = find(self.list());
        if found.is_empty() {
            return Err(VaultError::Key(format!(
                "root key version {version} is not in PKCS#11 token {:?}: retired, or the key \
                 was wrapped by another root-key provider (changing provider in place is not \
                 supported)",
                self.token
            )));
        }
        Ok(found)
    }

    /// The label of version `v`'s object.
    pub fn object_label(&self, v: u32) -> String {
        format!("{}-v{v}", self.label)
    }

    /// The label prefix of tenant `t`'s key-encryption keys (`…-g<N>`).
    fn tenant_prefix(&self, t: &str) -> String {
        format!("{}-tenant-{t}-g", self.label)
    }

    /// Tenant `t`'s key-encryption keys in the token, (generation, object),
    /// oldest first. Found by their `CKA_ID` (the tenant id) in one search.
    fn tenant_keys(&self, t: &str) -> Result<Vec<(u32, ObjectHandle)>> {
        let s = self.session();
        let handles = s
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Id(t.as_bytes().to_vec()),
            ])
            .map_err(|e| VaultError::Key(format!("PKCS#11 find tenant {t}'s keys: {e}")))?;
        let prefix = self.tenant_prefix(t);
        let mut out = Vec::new();
        for h in handles {
            let attrs = s
                .get_attributes(h, &[AttributeType::Label])
                .map_err(key_err)?;
            if let Some(Attribute::Label(l)) = attrs.first()
                && let Some(g) = std::str::from_utf8(l)
                    .ok()
                    .and_then(|l| l.strip_prefix(&prefix))
                    .and_then(|g| g.parse::<u32>().ok())
            {
                out.push((g, h));
            }
        }
        out.sort_by_key(|(g, _)| *g);
        Ok(out)
    }

    /// Makes tenant `t`'s next key-encryption key; returns the objects of
    /// the older generations (to destroy once nothing needs them).
    pub fn new_tenant_generation(&self, t: &str) -> Result<Vec<ObjectHandle>> {
        let old = self.tenant_keys(t)?;
        let g = old.last().map_or(1, |(g, _)| g + 1);
        self.generate(&format!("{}{g}", self.tenant_prefix(t)), Some(t))?;
        Ok(old.into_iter().map(|(_, h)| h).collect())
    }

    /// Destroys the given objects in the token.
    pub fn destroy_objects(&self, handles: &[ObjectHandle]) -> Result<()> {
        for h in handles {
            self.session()
                .destroy_object(*h)
                .map_err(|e| VaultError::Key(format!("PKCS#11 destroying a key: {e}")))?;
        }
        Ok(())
    }

    /// Generates an AES-256 key in the token labelled `label` (with
    /// `CKA_ID` `id`, for a tenant's): sensitive, never extractable, for
    /// encryption only.
    fn generate(&self, label: &str, id: Option<&str>) -> Result<ObjectHandle> {
        let mut template = Vec::new();
        if let Some(id) = id {
            template.push(Attribute::Id(id.as_bytes().to_vec()));
        }
        template.extend([
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(32.into()),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Modifiable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            // Wrapping keys in the token's own sense would let it
            // export other token keys under this one: not needed.
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
            Attribute::Sign(false),
            Attribute::Verify(false),
            Attribute::Derive(false),
            Attribute::Label(label.as_bytes().to_vec()),
        ]);
        self.session()
            .generate_key(&Mechanism::AesKeyGen, &template)
            .map_err(|e| VaultError::Key(format!("PKCS#11 key generation ({label}): {e}")))
    }

    /// AES-GCM in the token under `h`: a fresh nonce, then the ciphertext and tag.
    fn seal(&self, h: ObjectHandle, key: &SecretKey, context: &[u8]) -> Result<Vec<u8>> {
        let mut iv = [0u8; IV_LEN];
        bv_crypto::keys::random_bytes(&mut iv).map_err(key_err)?;
        let mut iv_used = iv;
        let params = GcmParams::new(&mut iv_used, context, 128.into()).map_err(key_err)?;
        let ct = self
            .session()
            .encrypt(&Mechanism::AesGcm(params), h, key.expose())
            .map_err(|e| VaultError::Key(format!("PKCS#11 wrap: {e}")))?;
        let mut out = iv.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens what [`Self::seal`] made under `h`.
    fn unseal(&self, h: ObjectHandle, wrapped: &[u8], context: &[u8]) -> Result<SecretKey> {
        if wrapped.len() <= IV_LEN {
            return Err(VaultError::Key("wrapped key too short".into()));
        }
        let mut iv = [0u8; IV_LEN];
        iv.copy_from_slice(&wrapped[..IV_LEN]);
        let params = GcmParams::new(&mut iv, context, 128.into()).map_err(key_err)?;
        let plain = zeroize::Zeroizing::new(
            self.session()
                .decrypt(&Mechanism::AesGcm(params), h, &wrapped[IV_LEN..])
                .map_err(|e| VaultError::Key(format!("PKCS#11 unwrap: {e}")))?,
        );
        SecretKey::from_slice(&plain).map_err(key_err)
    }

    /// Wraps one of tenant `t`'s keys under the tenant's newest
    /// key-encryption key in the token (made on first use).
    pub fn wrap_for_tenant(&self, t: &str, key: &SecretKey, context: &[u8]) -> Result<Vec<u8>> {
        let h = match self.tenant_keys(t)?.last() {
            Some((_, h)) => *h,
            None => self.generate(&format!("{}1", self.tenant_prefix(t)), Some(t))?,
        };
        self.seal(h, key, context)
    }

    /// Unwraps one of tenant `t`'s keys: each of its key-encryption keys is
    /// tried, newest first (the tag tells which one wrapped it; there are
    /// two during a rotation, or when two processes made the first at once).
    pub fn unwrap_for_tenant(&self, t: &str, wrapped: &[u8], context: &[u8]) -> Result<SecretKey> {
        let found = self.tenant_keys(t)?;
        if found.is_empty() {
            return Err(VaultError::Key(format!(
                "tenant {t}'s key-encryption key is not in PKCS#11 token {:?} (destroyed by its erasure?)",
                self.token
            )));
        }
        let mut last = None;
        for (_, h) in found.into_iter().rev() {
            match self.unseal(h, wrapped, context) {
                Ok(k) => return Ok(k),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one was tried"))
    }

    /// Destroys every key-encryption key of tenant `t` in the token; returns
    /// how many there were.
    pub fn destroy_tenant(&self, t: &str) -> Result<usize> {
        let found: Vec<ObjectHandle> = self.tenant_keys(t)?.into_iter().map(|(_, h)| h).collect();
        self.destroy_objects(&found)?;
        Ok(found.len())
    }

    /// The token's label.
    pub fn token(&self) -> &str {
        &self.token
    }

    fn wrap(&self, version: u32, key: &SecretKey, context: &[u8]) -> Result<Vec<u8>> {
        self.seal(self.handles(version)?[0], key, context)
    }

    /// Each object of `version` is tried; when none opens it, the token is
    /// read again once (another process may have made the one that did).
    fn unwrap(&self, version: u32, wrapped: &[u8], context: &[u8]) -> Result<SecretKey> {
        let mut tried = Vec::new();
        let mut last = None;
        for pass in 0..2 {
            if pass == 1 {
                self.refresh()?;
            }
            for h in self.handles(version)? {
                if tried.contains(&h) {
                    continue;
                }
                tried.push(h);
                match self.unseal(h, wrapped, context) {
                    Ok(k) => return Ok(k),
                    Err(e) => last = Some(e),
                }
            }
        }
        Err(last.expect("handles() is never empty"))
    }

    /// Creates the next version in the token.
    fn rotate(&mut self) -> Result<u32> {
        let v = self.current_version() + 1;
        let h = self.generate(&self.object_label(v), None)?;
        self.versions.lock().expect("not poisoned").push((v, h));
        Ok(v)
    }

    /// Destroys version `v` in the token (every object of it).
    fn destroy(&mut self, v: u32) -> Result<()> {
        let found = self.handles(v)?;
        self.destroy_objects(&found)
            .map_err(|e| VaultError::Key(format!("root key v{v}: {e}")))?;
        self.versions
            .lock()
            .expect("not poisoned")
            .retain(|(x, _)| *x != v);
        Ok(())
    }
}

/// The token PIN: `vault.pkcs11_pin` (`BV_VAULT_PKCS11_PIN`), else the first
/// line of `vault.pkcs11_pin_file`.
fn pin(cfg: &VaultConfig) -> Result<AuthPin> {
    if let Some(p) = cfg.pkcs11_pin.as_deref().filter(|p| !p.is_empty()) {
        return Ok(AuthPin::new(p.into()));
    }
    if let Some(path) = &cfg.pkcs11_pin_file {
        use std::os::unix::fs::PermissionsExt;
        // The same rule as the root key file's: a secret others can read is refused.
        if let Ok(m) = std::fs::metadata(path)
            && m.permissions().mode() & 0o077 != 0
        {
            return Err(VaultError::Config(format!(
                "vault.pkcs11_pin_file {} is readable by group or others (mode {:o}); chmod 600 it",
                path.display(),
                m.permissions().mode() & 0o777
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| {
            VaultError::Config(format!(
                "reading vault.pkcs11_pin_file {}: {e}",
                path.display()
            ))
        })?;
        let line = text.lines().next().unwrap_or("").trim();
        if !line.is_empty() {
            return Ok(AuthPin::new(line.into()));
        }
    }
    Err(VaultError::Config(
        "the PKCS#11 token needs a PIN: set BV_VAULT_PKCS11_PIN or vault.pkcs11_pin_file".into(),
    ))
}
