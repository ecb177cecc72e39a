//! A vault on a fresh data directory, over the local backend or a real
//! S3-protocol server (`s3s-fs`, which checks SigV4 signatures) started on
//! 127.0.0.1 with random credentials.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use bv_testkit::S3Server;
use bv_vault::{FileKeyStore, ObjectId, Vault, VaultConfig};

/// Which blob backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Local directory.
    Local,
    /// s3s-fs on loopback.
    S3,
}

/// A vault under test, with access to its raw storage.
pub struct TestVault {
    pub vault: Vault,
    pub cfg: VaultConfig,
    pub data: tempfile::TempDir,
    pub backend: Backend,
    pub s3: Option<S3Server>,
}

pub const BUCKET: &str = "bv-test";

impl TestVault {
    pub fn new(backend: Backend) -> Self {
        let data = tempfile::tempdir().unwrap();
        let mut cfg = VaultConfig {
            part_size_mib: 5,
            ..VaultConfig::default()
        };
        let s3 = (backend == Backend::S3).then(|| S3Server::start(&data.path().join("s3"), BUCKET));
        if let Some(s) = &s3 {
            cfg.backend = "s3".into();
            cfg.s3_bucket = BUCKET.into();
            cfg.s3_endpoint = s.endpoint.clone();
            cfg.s3_access_key_id = s.key.clone();
            cfg.s3_secret_access_key = s.secret.clone();
            cfg.s3_allow_http = true;
        }
        let (vault, _) = Vault::open(&cfg, data.path(), files(&cfg, &data)).unwrap();
        Self {
            vault,
            cfg,
            data,
            backend,
            s3,
        }
    }

    /// Re-opens the vault (after rotating keys or editing records from outside).
    pub fn reopen(&mut self) {
        self.vault = Vault::open(&self.cfg, self.data.path(), files(&self.cfg, &self.data))
            .unwrap()
            .0;
    }

    /// The file holding an object's sealed bytes.
    pub fn blob_file(&self, o: &ObjectId) -> PathBuf {
        let hex = o.to_string();
        let rel = format!("o/{}/{hex}", &hex[..2]);
        match &self.s3 {
            None => self.data.path().join("blobs").join(rel),
            Some(s) => s.dir.join(BUCKET).join(rel),
        }
    }

    /// The key store directory.
    pub fn keys_dir(&self) -> PathBuf {
        self.data.path().join("keys")
    }
}

/// The vault's own file key store in the data directory.
fn files(cfg: &VaultConfig, data: &tempfile::TempDir) -> Arc<FileKeyStore> {
    Arc::new(FileKeyStore::for_config(cfg, data.path()))
}

/// Deterministic test bytes.
pub fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
