//! A real `bv serve` in a scratch data directory, on SQLite or PostgreSQL,
//! and an HTTPS client (rustls) that trusts its development certificate.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bv_catalog::Backend;
use bv_testkit::TestDb;

/// A running server and what a test needs to talk to it.
pub struct Server {
    child: Option<Child>,
    /// Base URL (`https://localhost:PORT`).
    pub url: String,
    /// The first admin key (every scope, tenant `default`).
    pub key: String,
    /// The first administrator's one-time sign-in link, as the first start printed it.
    pub setup_link: Option<String>,
    /// The data directory.
    pub dir: tempfile::TempDir,
    /// Catalog URL.
    pub catalog_url: String,
    /// Client trusting the development certificate.
    pub http: reqwest::Client,
    port: u16,
    env: Vec<(String, String)>,
    /// Passwords the test handed to this server (for the log hygiene check).
    passwords: std::sync::Mutex<Vec<String>>,
    _db: Option<TestDb>,
}

/// The data directory `make setup` filled (models, samples, node packages).
pub use bv_testkit::data_dir as shared_data;

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `bv` as a client on another machine would run it: its own data directory,
/// nothing else from the `BV_*` environment.
pub fn client(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bv"));
    for (k, _) in std::env::vars() {
        if k.starts_with("BV_") {
            c.env_remove(k);
        }
    }
    c.env("BV_DATA_DIR", dir);
    c
}

/// A `bv` command with a clean `BV_*` environment.
pub fn bv_cmd(dir: &Path, catalog_url: &str, env: &[(String, String)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bv"));
    for (k, _) in std::env::vars() {
        if k.starts_with("BV_") {
            c.env_remove(k);
        }
    }
    c.env("BV_DATA_DIR", dir).env("BV_CATALOG_URL", catalog_url);
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

impl Server {
    /// Starts a server with extra `BV_*` settings.
    pub async fn start_with(backend: Backend, env: &[(&str, &str)]) -> Self {
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        // Jobs run only where a test starts a worker (uploads of random bytes
        // would otherwise be probed, rejected and shredded under the test's feet).
        if !env.iter().any(|(k, _)| k == "BV_WORKER_IN_PROCESS") {
            env.push(("BV_WORKER_IN_PROCESS".into(), "0".into()));
        }
        // Tests run several jobs on one video and read originals back after
        // their jobs: the retention tests turn the default (delete) back on.
        if !env.iter().any(|(k, _)| k == "BV_RETENTION_KEEP_ORIGINALS") {
            env.push(("BV_RETENTION_KEEP_ORIGINALS".into(), "true".into()));
        }
        // Small pieces, so every test crosses piece boundaries.
        if !env.iter().any(|(k, _)| k == "BV_JOBS_PIECE_MIB") {
            env.push(("BV_JOBS_PIECE_MIB".into(), "1".into()));
        }
        // free_port() cannot reserve the port: another process (another test's
        // server, a sandbox self-test's probe listener) may take it before this
        // server binds it. Then start over with a fresh catalog and directory
        // (the first start is what prints the first key).
        for _ in 0..5 {
            let db = TestDb::new(backend).await;
            let mut s = Self {
                child: None,
                url: String::new(),
                key: String::new(),
                setup_link: None,
                catalog_url: db.url.clone(),
                dir: tempfile::tempdir().unwrap(),
                http: reqwest::Client::new(),
                port: free_port(),
                env: env.clone(),
                passwords: Default::default(),
                _db: Some(db),
            };
            match s.launch(true) {
                Ok(()) => return s,
                Err(log) if log.contains("Address already in use") => {
                    // The failed start's error line is not a log line of a running server.
                    let _ = std::fs::remove_file(s.log_path());
                }
                Err(log) => panic!("bv serve did not start: {log}"),
            }
        }
        panic!("bv serve found no free port in 5 tries");
    }

    /// Starts a server with the defaults.
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, &[]).await
    }

    /// A plain connection to the catalog, for tests that attack it directly.
    pub async fn raw_db(&self) -> sqlx::AnyConnection {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let url = if self.catalog_url.starts_with("sqlite") {
            format!("{}?mode=rw", self.catalog_url)
        } else {
            self.catalog_url.clone()
        };
        sqlx::AnyConnection::connect(&url).await.unwrap()
    }

    /// The server's log (JSON lines).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("serve.log")
    }

    /// The JSON answer to a request with `key` as bearer (whatever its status).
    pub async fn json(&self, method: reqwest::Method, path: &str, key: &str) -> serde_json::Value {
        self.req(method, path, key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A `bv` command against this server's data directory and catalog.
    pub fn bv(&self) -> Command {
        bv_cmd(self.dir.path(), &self.catalog_url, &self.env)
    }

    fn launch(&mut self, first: bool) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut child = self
            .bv()
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Read to the end even after the test stops listening: a server
            // whose stdout is closed fails its later writes.
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut url = None;
        let mut key = None;
        let mut setup = None;
        // A first start also prints the first administrator's link (no user yet).
        while url.is_none() || (first && (key.is_none() || setup.is_none())) {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                let _ = child.wait();
                return Err(std::fs::read_to_string(self.log_path()).unwrap_or_default());
            };
            if let Some(u) = line.strip_prefix("BetterVideo is running at ") {
                url = Some(u.trim().to_string());
            }
            // The key's line comes first; the curl example after it quotes it.
            if let Some(i) = line.find("bv_").filter(|_| key.is_none()) {
                key = Some(line[i..].trim().to_string());
            }
            if line.starts_with("First administrator:")
                && let Some(i) = line.find("https://")
            {
                setup = Some(line[i..].trim().to_string());
            }
        }
        if setup.is_some() {
            self.setup_link = setup;
        }
        self.url = url.unwrap();
        if let Some(k) = key {
            self.key = k;
        }
        let cert = self
            .env
            .iter()
            .find(|(k, _)| k == "BV_SERVE_TLS_CERT")
            .map_or_else(
                || self.dir.path().join("tls/ca.pem"),
                |(_, v)| PathBuf::from(v),
            );
        let pem = std::fs::read(cert).unwrap();
        self.http = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
            .build()
            .unwrap();
        self.child = Some(child);
        Ok(())
    }

    /// `kill -9` the server (nothing gets to clean up).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the server as an orchestrator does (SIGTERM) and waits for it
    /// to exit (10 s at most); its exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let st = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s;
            }
            if std::time::Instant::now() > deadline {
                let _ = c.kill();
                panic!("bv serve did not stop within 10 s of SIGTERM");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// `kill -9`, then start again on the same port, data and catalog.
    pub fn restart(&mut self) {
        self.kill9();
        if let Err(log) = self.launch(false) {
            panic!("bv serve did not restart: {log}");
        }
    }

    /// A request with `key` as bearer.
    pub fn req(&self, method: reqwest::Method, path: &str, key: &str) -> reqwest::RequestBuilder {
        let url = if path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.url)
        };
        self.http.request(method, url).bearer_auth(key)
    }

    /// `bv admin …` for this server; returns stdout (panics on failure).
    pub fn admin(&self, args: &[&str], stdin: Option<&str>) -> String {
        use std::io::Write;
        let mut c = self.bv();
        c.arg("admin")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = c.spawn().unwrap();
        if let Some(s) = stdin {
            if args.first() == Some(&"user") {
                self.passwords
                    .lock()
                    .unwrap()
                    .push(s.trim_end().to_string());
            }
            child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "bv admin {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Another `bv serve` on this server's data directory, catalog and
    /// settings, on a port of its own: a second server of a cluster.
    pub fn sibling(&self) -> Sibling {
        for _ in 0..5 {
            let port = free_port();
            let log_path = self.dir.path().join(format!("serve-{port}.log"));
            let log = std::fs::File::create(&log_path).unwrap();
            let mut child = self
                .bv()
                .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::from(log))
                .spawn()
                .unwrap();
            // Read its output to the end, so a late line never meets a closed pipe.
            let out = BufReader::new(child.stdout.take().unwrap());
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for l in out.lines().map_while(Result::ok) {
                    if let Some(u) = l.strip_prefix("BetterVideo is running at ") {
                        let _ = tx.send(u.trim().to_string());
                    }
                }
            });
            let url = rx.recv_timeout(Duration::from_secs(30)).ok();
            match url {
                Some(url) => return Sibling { child, url },
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    assert!(
                        log.contains("Address already in use"),
                        "the second bv serve did not start: {log}"
                    );
                }
            }
        }
        panic!("the second bv serve found no free port in 5 tries");
    }

    /// A second tenant with a key holding every scope: (tenant id, key).
    pub fn second_tenant(&self, name: &str) -> (String, String) {
        let t: serde_json::Value =
            serde_json::from_str(&self.admin(&["tenant", "create", name], None)).unwrap();
        let key = self
            .admin(
                &[
                    "key",
                    "create",
                    "--tenant",
                    name,
                    "--scopes",
                    "videos:read,videos:write,jobs:write,admin",
                ],
                None,
            )
            .trim()
            .to_string();
        (t["id"].as_str().unwrap().to_string(), key)
    }
}

/// A second server (see [`Server::sibling`]), killed when dropped.
pub struct Sibling {
    child: Child,
    /// Its base URL.
    pub url: String,
}

impl Drop for Sibling {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        if !std::thread::panicking() {
            self.check_log_hygiene();
        }
    }
}

/// Whether `hay` holds `prefix` followed by at least `n` lower-case hex digits.
fn has_hex_after(hay: &[u8], prefix: &[u8], n: usize) -> bool {
    hay.windows(prefix.len()).enumerate().any(|(i, w)| {
        w == prefix
            && hay[i + prefix.len()..]
                .iter()
                .take(n)
                .filter(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(*b))
                .count()
                == n
    })
}

impl Server {
    /// Log hygiene, checked on every server's log when its test ends (so the
    /// whole suite's logs are covered): every line is one JSON object (no
    /// client text started a line), no raw control bytes, no API key, session
    /// token or link signature of any shape, no root key material and no
    /// password the test gave the server.
    fn check_log_hygiene(&self) {
        let Ok(log) = std::fs::read(self.log_path()) else {
            return;
        };
        let text = String::from_utf8_lossy(&log);
        for (i, line) in text.lines().enumerate() {
            assert!(
                serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| v.is_object()),
                "serve.log line {} is not one JSON object: {line:?}",
                i + 1
            );
        }
        assert!(
            !text
                .chars()
                .any(|c| (c.is_control() && c != '\n') || c == '\u{2028}'),
            "raw control characters in serve.log"
        );
        // API keys: bv_<16 hex id>_<64 hex secret>; sessions: the cookie; links: s=<64 hex>.
        assert!(
            !has_hex_after(&log, b"__Host-bv_session=", 16),
            "a session token in serve.log"
        );
        assert!(
            !has_hex_after(&log, b"s=", 64),
            "a link signature in serve.log"
        );
        let mut i = 0;
        while let Some(at) = text[i..].find("bv_") {
            let rest = &text.as_bytes()[i + at + 3..];
            let id = rest.iter().take_while(|b| b.is_ascii_hexdigit()).count();
            assert!(
                !(id == 16 && rest.get(16) == Some(&b'_') && has_hex_after(&rest[16..], b"_", 32)),
                "an API key in serve.log"
            );
            i += at + 3;
        }
        let root = std::fs::read_to_string(self.dir.path().join("root.key")).unwrap_or_default();
        for material in root.lines().filter_map(|l| l.split(':').nth(1)) {
            assert!(
                !text.contains(material.trim()),
                "root key material in serve.log"
            );
        }
        for pw in self.passwords.lock().unwrap().iter() {
            assert!(!text.contains(pw.as_str()), "a password in serve.log");
        }
        assert!(
            !text.contains(&self.key) || self.key.is_empty(),
            "the first key in serve.log"
        );
        if let Some(token) = self
            .setup_link
            .as_deref()
            .and_then(|l| l.split("#/setup/").nth(1))
        {
            assert!(!text.contains(token), "the setup link's token in serve.log");
        }
    }

    /// A TLS connection to the server offering `alpn` (the handshake done,
    /// nothing sent).
    pub async fn tls_connect(
        &self,
        alpn: &[&[u8]],
    ) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        use rustls::pki_types::pem::PemObject;
        let pem = std::fs::read(self.dir.path().join("tls/ca.pem")).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
            .connect("localhost".try_into().unwrap(), tcp)
            .await
    }

    /// Sends `request` (raw bytes: a hostile client) over TLS; returns the raw response.
    pub async fn raw_https(&self, request: &[u8]) -> Vec<u8> {
        use rustls::pki_types::pem::PemObject;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let pem = std::fs::read(self.dir.path().join("tls/ca.pem")).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
            .connect("localhost".try_into().unwrap(), tcp)
            .await
            .unwrap();
        // A server may refuse (and close) before it has read everything: what
        // it answered, if anything, is still there to read.
        let _ = tls.write_all(request).await;
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out).await;
        out
    }
}

/// Every file under `dir` that contains `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    files_containing_since(dir, needle, std::time::UNIX_EPOCH)
}

/// Every file under `dir` changed since `since` that contains `needle`.
pub fn files_containing_since(
    dir: &Path,
    needle: &[u8],
    since: std::time::SystemTime,
) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file()
                && meta.modified().is_ok_and(|m| m >= since)
                && let Ok(b) = std::fs::read(&p)
                && b.windows(needle.len()).any(|w| w == needle)
            {
                hits.push(p);
            }
        }
    }
    hits
}

/// Deterministic bytes that contain `marker` every 4 KiB.
pub fn payload(len: usize, marker: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while v.len() < len {
        if v.len() % 4096 == 0 {
            v.extend_from_slice(marker);
        } else {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.push(x as u8);
        }
    }
    v.truncate(len);
    v
}
