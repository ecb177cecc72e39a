//! The cluster under faults (`make test-cluster`; ignored by plain `cargo
//! test`): a private PostgreSQL, `s3s-fs`, two `bv serve` and three `bv
//! worker` processes configured only through `BV_*` settings. Thirty clients
//! upload (a third by tus, their pieces sent alternately to both servers) and
//! submit a job each, while a fault script `kill -9`s workers and a server,
//! freezes the S3 server for 10 s (SIGSTOP) and restarts PostgreSQL. Then:
//! every job succeeded and was settled exactly once, every upload reads back
//! byte for byte through a signed link (minted on one server, fetched from
//! the other), the ledger balances, the audit log verifies, the plaintext
//! marker inside every upload is nowhere on disk, and no sandbox is left.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bv_testkit::s3::{S3Server, random_hex};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::harness::{bv_cmd, files_containing, free_port, shared_data};

const CLIENTS: usize = 30;
const BUCKET: &str = "bv-cluster";
const GRANT: i64 = 1_000_000;
/// How long the clients may take, faults included.
const DEADLINE: Duration = Duration::from_secs(240);

/// A PostgreSQL server of its own (so restarting it disturbs nothing else).
struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    as_postgres: bool,
    _dir: tempfile::TempDir,
}

fn pg_bin() -> PathBuf {
    let mut bins: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries (make setup installs them)")
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    bins.sort();
    bins.pop().expect("an initdb under /usr/lib/postgresql")
}

fn ok(c: &mut Command, what: &str) {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Postgres {
    fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("bv-cluster-pg")
            .tempdir()
            .unwrap();
        // PostgreSQL refuses to run as root: then it runs as `postgres`.
        let as_postgres = nix::unistd::getuid().is_root();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        if as_postgres {
            let u = nix::unistd::User::from_name("postgres")
                .unwrap()
                .expect("a postgres account");
            std::os::unix::fs::chown(&data, Some(u.uid.as_raw()), Some(u.gid.as_raw())).unwrap();
        }
        let pg = Self {
            bin: pg_bin(),
            data,
            port: free_port(),
            as_postgres,
            _dir: dir,
        };
        ok(
            pg.tool("initdb").arg("-D").arg(&pg.data).args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ]),
            "initdb",
        );
        pg.up();
        pg
    }

    fn tool(&self, name: &str) -> Command {
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(name));
            c
        } else {
            Command::new(self.bin.join(name))
        }
    }

    fn up(&self) {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=200",
            self.port,
            self.data.display()
        );
        ok(
            self.tool("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .arg("-l")
                .arg(self.data.join("server.log"))
                .args(["-w", "-o", &opts, "start"]),
            "pg_ctl start",
        );
    }

    /// Stops it the hard way (no checkpoint, like a crash) and starts it again.
    fn restart(&self) {
        self.down();
        self.up();
    }

    fn down(&self) {
        let _ = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.down();
    }
}

/// One `bv` process of the cluster.
struct Proc {
    child: Option<Child>,
    dir: PathBuf,
}

impl Proc {
    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

struct Cluster {
    env: Vec<(String, String)>,
    catalog: String,
    root: tempfile::TempDir,
    servers: Vec<(Proc, u16)>,
    workers: Vec<Proc>,
    urls: Vec<String>,
    key: String,
    http: reqwest::Client,
    s3: S3Server,
    pg: Postgres,
}

impl Cluster {
    fn start() -> Self {
        let pg = Postgres::start();
        let root = tempfile::Builder::new()
            .prefix("bv-cluster")
            .tempdir()
            .unwrap();
        let s3 = S3Server::start(&root.path().join("s3"), BUCKET);
        let env: Vec<(String, String)> = [
            ("BV_VAULT_BACKEND", "s3".to_string()),
            ("BV_VAULT_S3_BUCKET", BUCKET.into()),
            ("BV_VAULT_S3_ENDPOINT", s3.endpoint.clone()),
            ("BV_VAULT_S3_ACCESS_KEY_ID", s3.key.clone()),
            ("BV_VAULT_S3_SECRET_ACCESS_KEY", s3.secret.clone()),
            ("BV_VAULT_S3_ALLOW_HTTP", "true".into()),
            ("BV_VAULT_PART_SIZE_MIB", "5".into()),
            // One root key for every machine, from the environment.
            ("BV_VAULT_ROOT_KEY", format!("v1:{}", random_hex(32))),
            ("BV_VAULT_GENERATE_ROOT_KEY", "false".into()),
            ("BV_WORKER_IN_PROCESS", "0".into()),
            ("BV_WORKER_LEASE_SECONDS", "6".into()),
            ("BV_JOBS_PIECE_MIB", "1".into()),
            // The test reads every upload back after its job succeeded.
            ("BV_RETENTION_KEEP_ORIGINALS", "true".into()),
            (
                "BV_MODEL_DIR",
                shared_data().join("models").display().to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let mut c = Self {
            env,
            catalog: pg.url(),
            servers: Vec::new(),
            workers: Vec::new(),
            urls: Vec::new(),
            key: String::new(),
            http: reqwest::Client::new(),
            root,
            s3,
            pg,
        };
        for i in 0..2 {
            let dir = c.root.path().join(format!("server-{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            c.servers.push((Proc { child: None, dir }, free_port()));
            c.launch_server(i);
        }
        let pem = std::fs::read(c.servers[0].0.dir.join("tls/ca.pem")).unwrap();
        c.http = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        for i in 0..3 {
            let dir = c.root.path().join(format!("worker-{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            c.workers.push(Proc { child: None, dir });
            c.launch_worker(i);
        }
        c
    }

    fn bv(&self, dir: &Path) -> Command {
        bv_cmd(dir, &self.catalog, &self.env)
    }

    /// Starts server `i` (again) on its port; the first start of the first
    /// server prints the first API key. Both present one certificate.
    fn launch_server(&mut self, i: usize) {
        use std::io::BufRead;
        let (proc_, port) = &self.servers[i];
        let mut cmd = self.bv(&proc_.dir);
        if i > 0 {
            let tls = self.servers[0].0.dir.join("tls");
            cmd.env("BV_SERVE_TLS_CERT", tls.join("cert.pem"))
                .env("BV_SERVE_TLS_KEY", tls.join("key.pem"));
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(proc_.dir.join("serve.log"))
            .unwrap();
        let mut child = cmd
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = self.key.is_empty();
        let mut url = None;
        for line in lines.by_ref().map_while(Result::ok) {
            if let Some(u) = line.strip_prefix("BetterVideo is running at ") {
                url = Some(u.trim().to_string());
            }
            if let Some(k) = line
                .strip_prefix("First API key")
                .and_then(|l| l.rsplit_once(": "))
            {
                self.key = k.1.trim().to_string();
            }
            if url.is_some() && !(first && self.key.is_empty()) {
                break;
            }
        }
        // Keep reading what it prints later (a closed pipe would fail its writes).
        std::thread::spawn(move || lines.for_each(drop));
        let url = url.unwrap_or_else(|| {
            panic!(
                "server {i} did not start: {}",
                std::fs::read_to_string(proc_.dir.join("serve.log")).unwrap_or_default()
            )
        });
        if self.urls.len() <= i {
            self.urls.push(url);
        }
        self.servers[i].0.child = Some(child);
    }

    fn launch_worker(&mut self, i: usize) {
        let w = &self.workers[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(w.dir.join("worker.log"))
            .unwrap();
        let child = self
            .bv(&w.dir)
            .args(["worker"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.workers[i].child = Some(child);
    }

    fn admin(&self, args: &[&str]) -> String {
        let out = self
            .bv(&self.servers[0].0.dir)
            .arg("admin")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "bv admin {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// A small H.264 clip, different for each client, with `marker` in its metadata.
fn clip(i: usize, marker: &str) -> Vec<u8> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("cluster-clip-{}-{i}.mp4", std::process::id()));
    let src = format!("testsrc2=s=64x48:r=25:d=0.6,hue=h={}", i * 12);
    ok(
        Command::new("ffmpeg")
            .args(["-v", "error", "-f", "lavfi", "-i", &src])
            .args(["-metadata", &format!("comment={marker}")])
            .args(["-c:v", "libx264", "-y"])
            .arg(&path),
        "ffmpeg",
    );
    let b = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    b
}

/// What one client did.
struct Outcome {
    video: String,
    sha: Vec<u8>,
    job: String,
    price: i64,
}

/// One client: retries whatever a fault breaks, on the other server.
struct Client {
    retries: Arc<AtomicUsize>,
    /// Requests the service asked to wait (429) and that waited.
    throttled: Arc<AtomicUsize>,
    http: reqwest::Client,
    urls: Vec<String>,
    key: String,
    n: usize,
}

impl Client {
    fn url(&mut self, path: &str) -> String {
        self.n += 1;
        format!("{}{path}", self.urls[self.n % self.urls.len()])
    }

    fn req(&mut self, m: Method, path: &str) -> reqwest::RequestBuilder {
        let u = self.url(path);
        self.http.request(m, u).bearer_auth(&self.key)
    }

    /// Waits as a 429's `Retry-After` says.
    async fn wait_as_told(&self, r: &reqwest::Response) {
        let wait = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        self.throttled.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(wait)).await
    }

    /// Sends until a definite answer (not a connection error, 5xx or 408).
    async fn send(
        &mut self,
        build: impl Fn(&mut Self) -> reqwest::RequestBuilder,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let t = Instant::now();
        loop {
            assert!(t.elapsed() < DEADLINE, "no answer for {DEADLINE:?}");
            match build(self).send().await {
                // Thirty clients share one API key: over its rate they are
                // told to wait, and wait as told, as a client should.
                Ok(r) if r.status() == 429 => self.wait_as_told(&r).await,
                Ok(r) if !(r.status().is_server_error() || r.status() == 408) => {
                    let (s, h) = (r.status().as_u16(), r.headers().clone());
                    return (s, h, r.json().await.unwrap_or(Value::Null));
                }
                _ => {
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(300)).await
                }
            }
        }
    }

    async fn upload_simple(&mut self, body: &[u8], i: usize) -> String {
        loop {
            let b = body.to_vec();
            let path = format!("/v1/videos?name=clip-{i}.mp4");
            match self.req(Method::POST, &path).body(b).send().await {
                Ok(r) if r.status() == 201 => {
                    return r.json::<Value>().await.unwrap()["id"]
                        .as_str()
                        .unwrap()
                        .to_string();
                }
                Ok(r) if r.status() == 429 => self.wait_as_told(&r).await,
                Ok(r) if r.status().is_client_error() && r.status() != 408 => {
                    panic!("upload refused: {} {:?}", r.status(), r.text().await)
                }
                // The server died or stalled mid-request: upload again (elsewhere).
                _ => {
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(300)).await
                }
            }
        }
    }

    /// A tus upload whose pieces go to both servers in turn, resuming from
    /// the offset the other server reports after any failure.
    async fn upload_tus(&mut self, body: &[u8]) -> String {
        let len = body.len();
        let (st, h, _) = self
            .send(|c| {
                c.req(Method::POST, "/v1/uploads")
                    .header("tus-resumable", "1.0.0")
                    .header("upload-length", len.to_string())
                    .header("upload-metadata", "filename Y2xpcC5tcDQ=")
            })
            .await;
        assert_eq!(st, 201);
        let loc = h["location"].to_str().unwrap().to_string();
        let video = h["bv-video-id"].to_str().unwrap().to_string();
        let path = loc
            .find("/v1/")
            .map_or(loc.clone(), |at| loc[at..].to_string());
        let chunk = len.div_ceil(4);
        let mut at = 0usize;
        let t = Instant::now();
        while at < len {
            assert!(t.elapsed() < DEADLINE, "tus upload made no progress");
            let end = (at + chunk).min(len);
            let r = self
                .req(Method::PATCH, &path)
                .header("tus-resumable", "1.0.0")
                .header("upload-offset", at.to_string())
                .header("content-type", "application/offset+octet-stream")
                .body(body[at..end].to_vec())
                .send()
                .await;
            match r {
                Ok(r) if r.status() == 204 => {
                    at = r.headers()["upload-offset"]
                        .to_str()
                        .unwrap()
                        .parse()
                        .unwrap();
                }
                Ok(r)
                    if r.status().is_client_error()
                        && ![408, 409, 423, 429].contains(&r.status().as_u16()) =>
                {
                    panic!("PATCH refused: {} {:?}", r.status(), r.text().await)
                }
                _ => {
                    // Ask (another server) where the upload stands, then go on from there.
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let (st, h, _) = self
                        .send(|c| c.req(Method::HEAD, &path).header("tus-resumable", "1.0.0"))
                        .await;
                    assert_eq!(st, 200);
                    at = h["upload-offset"].to_str().unwrap().parse().unwrap();
                }
            }
        }
        video
    }

    async fn wait_for(&mut self, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let t = Instant::now();
        loop {
            assert!(t.elapsed() < DEADLINE, "{what}: not done in {DEADLINE:?}");
            let (st, _, v) = self.send(|c| c.req(Method::GET, path)).await;
            assert_eq!(st, 200, "{what}: {v}");
            if done(&v) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
    }

    async fn run(mut self, i: usize, body: Vec<u8>) -> Outcome {
        let video = if i.is_multiple_of(3) {
            self.upload_tus(&body).await
        } else {
            self.upload_simple(&body, i).await
        };
        let v = self
            .wait_for(&format!("/v1/videos/{video}"), "probe", |v| {
                v["status"] != "probing"
            })
            .await;
        assert_eq!(v["status"], "ready", "{v}");
        let submit =
            json!({"video_id": video, "scale": 2, "idempotency_key": format!("cluster-{i}")});
        let (st, _, job) = self
            .send(|c| c.req(Method::POST, "/v1/jobs").json(&submit))
            .await;
        assert!(st == 201 || st == 200, "{st} {job}");
        let id = job["id"].as_str().unwrap().to_string();
        // Asking again (as a client that lost the answer would) gives the same job.
        let (_, _, again) = self
            .send(|c| c.req(Method::POST, "/v1/jobs").json(&submit))
            .await;
        assert_eq!(again["id"], id.as_str(), "idempotent submit");
        let done = self
            .wait_for(&format!("/v1/jobs/{id}"), "job", |j| {
                !matches!(j["state"].as_str(), Some("queued" | "running"))
            })
            .await;
        assert_eq!(done["state"], "succeeded", "{done}");
        Outcome {
            video,
            sha: Sha256::digest(&body).to_vec(),
            job: id,
            price: done["price"].as_i64().unwrap(),
        }
    }
}

fn kill(pid: u32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap();
}

/// Pids of sandboxes (`bv-jail`) still alive.
fn sandboxes() -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.parse::<u32>().is_err() {
            continue;
        }
        if let Ok(exe) = std::fs::read_link(e.path().join("exe"))
            && exe.file_name().is_some_and(|n| n == "bv-jail")
        {
            out.push(name);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the cluster test: make test-cluster"]
async fn a_cluster_survives_faults_and_loses_nothing() {
    let started = Instant::now();
    let mut cluster = Cluster::start();
    let marker = format!("BVMARK{}", random_hex(12));
    cluster.admin(&[
        "credits",
        "grant",
        "--tenant",
        "default",
        &GRANT.to_string(),
    ]);
    let before_sandboxes = sandboxes();
    let retries = Arc::new(AtomicUsize::new(0));
    let throttled = Arc::new(AtomicUsize::new(0));

    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let c = Client {
                retries: Arc::clone(&retries),
                throttled: Arc::clone(&throttled),
                http: cluster.http.clone(),
                urls: cluster.urls.clone(),
                key: cluster.key.clone(),
                n: i,
            };
            let body = clip(i, &marker);
            // Arrivals spread over the fault script, so every fault meets work in flight.
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(800 * i as u64)).await;
                c.run(i, body).await
            })
        })
        .collect();

    // The fault script, while the clients work.
    let seed = u64::from_str_radix(&random_hex(8), 16).unwrap();
    let mut x = seed | 1;
    let mut pick = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    eprintln!("fault seed {seed:#x}");
    let sleep = |ms| tokio::time::sleep(Duration::from_millis(ms));
    sleep(3000).await;
    let w = pick(3);
    eprintln!("fault: kill -9 worker {w}");
    cluster.workers[w].kill9();
    sleep(1000).await;
    cluster.launch_worker(w);
    sleep(2000).await;
    eprintln!("fault: SIGSTOP s3s-fs for 10 s");
    kill(cluster.s3.pid(), nix::sys::signal::Signal::SIGSTOP);
    sleep(10_000).await;
    kill(cluster.s3.pid(), nix::sys::signal::Signal::SIGCONT);
    let s = pick(2);
    eprintln!("fault: kill -9 server {s}");
    cluster.servers[s].0.kill9();
    sleep(2000).await;
    cluster.launch_server(s);
    sleep(2000).await;
    eprintln!("fault: restart PostgreSQL (immediate stop)");
    cluster.pg.restart();
    sleep(3000).await;
    let w = pick(3);
    eprintln!("fault: kill -9 worker {w}");
    cluster.workers[w].kill9();
    sleep(500).await;
    cluster.launch_worker(w);
    // The faults must have hit a cluster at work, not one already done.
    let busy = clients.iter().filter(|c| !c.is_finished()).count();
    eprintln!("{busy} of {CLIENTS} clients still at work after the last fault");
    assert!(
        busy > 0,
        "the workload ended before the faults: make it longer"
    );

    let mut outcomes = Vec::new();
    for c in clients {
        outcomes.push(c.await.expect("a client failed"));
    }
    eprintln!(
        "{CLIENTS} uploads and jobs done in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Every job settled exactly once: one reserve, one capture, nothing released.
    let mut db = {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        sqlx::AnyConnection::connect(&cluster.catalog)
            .await
            .unwrap()
    };
    let mut spent = 0;
    for o in &outcomes {
        let kinds: Vec<String> =
            sqlx::query_scalar("SELECT kind FROM credit_entries WHERE job_id = $1 ORDER BY kind")
                .bind(&o.job)
                .fetch_all(&mut db)
                .await
                .unwrap();
        assert_eq!(kinds, ["capture", "reserve"], "job {}", o.job);
        spent += o.price;
    }
    let jobs: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE idempotency_key LIKE 'cluster-%'")
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(jobs, CLIENTS as i64, "one job per client, retries included");
    let attempts: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(attempts), 0) AS BIGINT) FROM jobs WHERE idempotency_key LIKE 'cluster-%'",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    eprintln!(
        "client retries after faults: {}; waits asked for by a rate limit (429): {}; job attempts: {attempts} for {CLIENTS} jobs",
        retries.load(Ordering::Relaxed),
        throttled.load(Ordering::Relaxed)
    );

    // The ledger balances.
    let mut c = Client {
        retries: Arc::clone(&retries),
        throttled: Arc::clone(&throttled),
        http: cluster.http.clone(),
        urls: cluster.urls.clone(),
        key: cluster.key.clone(),
        n: 0,
    };
    let (_, _, credits) = c.send(|c| c.req(Method::GET, "/v1/credits")).await;
    assert_eq!(credits["reserved"], 0, "{credits}");
    assert_eq!(credits["available"], GRANT - spent, "{credits}");

    // Every upload intact: a link minted on one server, fetched from the other.
    for o in &outcomes {
        let (st, _, link) = c
            .send(|c| {
                c.req(Method::POST, &format!("/v1/videos/{}/links", o.video))
                    .json(&json!({}))
            })
            .await;
        assert_eq!(st, 201, "{link}");
        let url = link["url"].as_str().unwrap();
        let (minted_on, rest) = cluster
            .urls
            .iter()
            .find_map(|u| {
                url.strip_prefix(u.as_str())
                    .map(|r| (u.clone(), r.to_string()))
            })
            .expect("a link to one of the servers");
        let other = cluster.urls.iter().find(|u| **u != minted_on).unwrap();
        let got = cluster
            .http
            .get(format!("{other}{rest}"))
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 200);
        let bytes = got.bytes().await.unwrap();
        assert_eq!(Sha256::digest(&bytes).to_vec(), o.sha, "video {}", o.video);
    }

    // The audit log verifies (as one chain, written by every process).
    let out = cluster
        .bv(&cluster.servers[0].0.dir)
        .args(["admin", "audit", "verify"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "audit: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // No sandbox outlived its job (workers killed mid-job included).
    let t = Instant::now();
    loop {
        let left: Vec<_> = sandboxes()
            .into_iter()
            .filter(|p| !before_sandboxes.contains(p))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "sandboxes left: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The marker inside every upload is nowhere on disk in the clear.
    for dir in [cluster.root.path(), Path::new("/tmp")] {
        let hits = files_containing(dir, marker.as_bytes());
        assert!(hits.is_empty(), "plaintext on disk: {hits:?}");
    }
    drop(db);
    eprintln!(
        "cluster test passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
