//! The vault as an operator drives it, in separate processes: streaming a
//! multi-GiB object in bounded memory, and a put killed with SIGKILL.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bv_testkit::S3Server;
use sha2::{Digest, Sha256};

const TENANT: &str = "6b1f0a5e9c3d47a2b8e4f0c1d2e3f4a5";
const BUCKET: &str = "bv-cli-test";

/// `bv` with its own data directory (and, for S3, the server's settings).
fn bv(data: &Path, s3: Option<&S3Server>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bv"));
    c.env("BV_DATA_DIR", data)
        .env("BV_VAULT_PART_SIZE_MIB", "5")
        .env_remove("BV_CONFIG");
    if let Some(s) = s3 {
        c.env("BV_VAULT_BACKEND", "s3")
            .env("BV_VAULT_S3_BUCKET", BUCKET)
            .env("BV_VAULT_S3_ENDPOINT", &s.endpoint)
            .env("BV_VAULT_S3_ACCESS_KEY_ID", &s.key)
            .env("BV_VAULT_S3_SECRET_ACCESS_KEY", &s.secret)
            .env("BV_VAULT_S3_ALLOW_HTTP", "true");
    }
    c
}

/// The same command under GNU time, which reports the peak resident set size.
fn timed(cmd: &Command) -> Command {
    let mut t = Command::new("/usr/bin/time");
    t.arg("-f")
        .arg("maxrss_kb=%M")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => t.env(k, v),
            None => t.env_remove(k),
        };
    }
    t
}

fn max_rss_mib(stderr: &str) -> f64 {
    let kb: f64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("maxrss_kb="))
        .expect("GNU time output")
        .trim()
        .parse()
        .unwrap();
    kb / 1024.0
}

/// Fills `buf` with the pseudo-random stream continuing from `x`.
fn fill(buf: &mut [u8], x: &mut u64) {
    for c in buf.chunks_exact_mut(8) {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        c.copy_from_slice(&x.to_le_bytes());
    }
}

#[test]
fn a_multi_gib_object_streams_in_bounded_memory() {
    let d = tempfile::tempdir().unwrap();
    let total: u64 = (2 << 30) + 12_345;
    let put = {
        let mut c = bv(d.path(), None);
        c.args(["vault", "put", "--tenant", TENANT, "-"]);
        c
    };
    let mut child = timed(&put)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let (mut x, mut sent, mut h) = (0x1234_5678_9abc_def1u64, 0u64, Sha256::new());
        let mut buf = vec![0u8; 1 << 20];
        while sent < total {
            fill(&mut buf, &mut x);
            let n = (total - sent).min(buf.len() as u64) as usize;
            h.update(&buf[..n]);
            stdin.write_all(&buf[..n]).unwrap();
            sent += n as u64;
        }
        h.finalize().to_vec()
    });
    let want = writer.join().unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let put_rss = max_rss_mib(&err);
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["plain_len"], total);
    let id = info["object"].as_str().unwrap().to_string();

    let get = {
        let mut c = bv(d.path(), None);
        c.args(["vault", "get", "--tenant", TENANT, &id, "-o", "-"]);
        c
    };
    let mut child = timed(&get)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (mut h, mut got, mut buf) = (Sha256::new(), 0u64, vec![0u8; 1 << 20]);
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        got += n as u64;
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let get_rss = max_rss_mib(&err);
    assert_eq!(got, total);
    assert_eq!(
        h.finalize().to_vec(),
        want,
        "the object reads back byte for byte"
    );
    eprintln!("2 GiB object: peak RSS put {put_rss:.1} MiB, get {get_rss:.1} MiB");
    assert!(
        put_rss < 64.0 && get_rss < 64.0,
        "peak RSS put {put_rss:.1} MiB, get {get_rss:.1} MiB (limit 64)"
    );
}

/// The vault's object records, read from the catalog's key store
/// (`vault_objects`) beside the running command.
fn records(data: &Path) -> Vec<serde_json::Value> {
    let db = data.join("catalog.db");
    if !db.exists() {
        return Vec::new();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let url = format!("sqlite://{}?mode=ro", db.display());
        let mut c = sqlx::AnyConnection::connect(&url).await.unwrap();
        // The table appears when the command's catalog is migrated.
        let rows: Vec<String> = sqlx::query_scalar("SELECT record FROM vault_objects")
            .fetch_all(&mut c)
            .await
            .unwrap_or_default();
        rows.iter()
            .map(|r| serde_json::from_str(r).unwrap())
            .collect()
    })
}

/// Files below `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn killed_put_leaves_nothing_visible(s3: bool) {
    let d = tempfile::tempdir().unwrap();
    let server = s3.then(|| S3Server::start(&d.path().join("s3"), BUCKET));
    let garbage_dir = match &server {
        Some(s) => s.dir.clone(),
        None => d.path().join("blobs"),
    };
    let mut child = bv(d.path(), server.as_ref())
        .args(["vault", "put", "--tenant", TENANT, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut x = 99u64;
    for _ in 0..16 {
        fill(&mut buf, &mut x);
        stdin.write_all(&buf).unwrap();
    }
    // Mid-put: a pending record and some stored pieces, but no object yet.
    let t = Instant::now();
    while !(records(d.path()).len() == 1
        && files(&garbage_dir)
            .iter()
            .any(|p| std::fs::metadata(p).unwrap().len() >= 5 << 20))
    {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the put made no progress"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    drop(stdin);

    let recs = records(d.path());
    assert_eq!(recs.len(), 1);
    assert_eq!(
        recs[0]["state"], "pending",
        "an interrupted put is never committed"
    );
    let id = recs[0]["object"].as_str().unwrap().to_string();
    let stat = bv(d.path(), server.as_ref())
        .args(["vault", "stat", "--tenant", TENANT, &id])
        .output()
        .unwrap();
    assert_eq!(stat.status.code(), Some(3), "the object is not visible");
    assert!(String::from_utf8_lossy(&stat.stderr).contains("object_not_found"));
    assert!(
        !files(&garbage_dir).is_empty(),
        "the crash left garbage to reclaim"
    );
    assert!(
        !files(&garbage_dir)
            .iter()
            .any(|p| p.file_name().unwrap().to_string_lossy() == id),
        "no final blob"
    );

    let sweep = bv(d.path(), server.as_ref())
        .args(["vault", "sweep", "--older-than", "0"])
        .output()
        .unwrap();
    assert!(sweep.status.success());
    let rep: serde_json::Value = serde_json::from_slice(&sweep.stdout).unwrap();
    assert_eq!(rep["abandoned_puts"], 1);
    assert!(rep["pieces"].as_u64().unwrap() >= 1);
    assert!(records(d.path()).is_empty(), "the pending key is shredded");
    let left: Vec<_> = files(&garbage_dir)
        .into_iter()
        .filter(|p| std::fs::metadata(p).unwrap().len() > 4096)
        .collect();
    assert!(left.is_empty(), "garbage reclaimed, still there: {left:?}");
}

#[test]
fn killed_put_local() {
    killed_put_leaves_nothing_visible(false);
}

#[test]
fn killed_put_s3() {
    killed_put_leaves_nothing_visible(true);
}

#[test]
fn get_into_a_pipe_or_device_writes_into_it_and_leaves_it_in_place() {
    use std::os::unix::fs::FileTypeExt;
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("in.bin");
    std::fs::write(&src, b"sealed then streamed into a FIFO").unwrap();
    let out = bv(d.path(), None)
        .args(["vault", "put", "--tenant", TENANT])
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = info["object"].as_str().unwrap().to_string();
    let fifo = d.path().join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let f2 = fifo.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(std::fs::read(f2).unwrap()));
    let out = bv(d.path(), None)
        .args(["vault", "get", "--tenant", TENANT, &id, "-o"])
        .arg(&fifo)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // (Had the FIFO been replaced, its reader would wait forever: time out instead.)
    let got = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the FIFO was written");
    assert_eq!(got, b"sealed then streamed into a FIFO");
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo(),
        "the FIFO was not replaced by a file (as /dev/null once was)"
    );
}
