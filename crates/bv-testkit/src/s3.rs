//! A real S3-protocol server (`s3s-fs`, which checks SigV4 signatures) on
//! 127.0.0.1 with random credentials.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bv_vault::VaultConfig;

/// A running S3-protocol server; killed on drop.
pub struct S3Server {
    child: Child,
    /// Directory holding the buckets.
    pub dir: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// Access key id.
    pub key: String,
    /// Secret access key.
    pub secret: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The s3s-fs binary: `$S3S_FS`, `<data dir>/tools/bin/s3s-fs`, or on PATH.
pub fn s3s_fs() -> PathBuf {
    if let Some(p) = std::env::var_os("S3S_FS") {
        return p.into();
    }
    let p = crate::data_dir().join("tools/bin/s3s-fs");
    assert!(
        p.exists(),
        "s3s-fs not found at {}: run `make setup`",
        p.display()
    );
    p
}

/// `n` random bytes as hex.
pub fn random_hex(n: usize) -> String {
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

impl S3Server {
    /// The server's process id (to freeze it with SIGSTOP, say).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A vault configuration pointing at this server's `bucket`.
    pub fn vault_config(&self, bucket: &str) -> VaultConfig {
        VaultConfig {
            backend: "s3".into(),
            s3_bucket: bucket.into(),
            s3_endpoint: self.endpoint.clone(),
            s3_access_key_id: self.key.clone(),
            s3_secret_access_key: self.secret.clone(),
            s3_allow_http: true,
            part_size_mib: 5,
            ..VaultConfig::default()
        }
    }
}
