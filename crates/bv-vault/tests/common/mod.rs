//! A vault on a fresh data directory, over the local backend or a real
//! S3-protocol server (`s3s-fs`, which checks SigV4 signatures) started on
//! 127.0.0.1 with random credentials.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bv_vault::{ObjectId, Vault, VaultConfig};

/// Which blob backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Local directory.
    Local,
    /// s3s-fs on loopback.
    S3,
}

/// A running S3-protocol server; killed on drop.
pub struct S3Server {
    child: Child,
    pub dir: PathBuf,
    pub endpoint: String,
    pub key: String,
    pub secret: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The s3s-fs binary: `$S3S_FS`, `$BV_DATA_DIR/tools/bin/s3s-fs`, or on PATH.
pub fn s3s_fs() -> PathBuf {
    if let Some(p) = std::env::var_os("S3S_FS") {
        return p.into();
    }
    let data = std::env::var_os("BV_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".local/share/bettervideo")
        });
    let p = data.join("tools/bin/s3s-fs");
    assert!(
        p.exists(),
        "s3s-fs not found at {}: run `make setup`",
        p.display()
    );
    p
}

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    bv_crypto::keys::random_bytes(&mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl S3Server {
    /// Starts s3s-fs over `dir` with a bucket `bucket`.
    pub fn start(dir: &Path, bucket: &str) -> Self {
        std::fs::create_dir_all(dir.join(bucket)).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (key, secret) = (format!("AK{}", random_hex(8)), random_hex(20));
        let child = Command::new(s3s_fs())
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--access-key",
                &key,
                "--secret-key",
                &secret,
            ])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs starts");
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "s3s-fs did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            dir: dir.to_path_buf(),
            endpoint: format!("http://127.0.0.1:{port}"),
            key,
            secret,
        }
    }
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
        let (vault, _) = Vault::open(&cfg, data.path()).unwrap();
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
        self.vault = Vault::open(&self.cfg, self.data.path()).unwrap().0;
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
