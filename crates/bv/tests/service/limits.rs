//! Quotas and rate limits: request rates per key and per tenant shared by two
//! servers on one catalog, per-tenant overrides, unfinished uploads, sign-ins
//! and link minting per client address, and a storage quota that stores
//! nothing of what it refuses.

use bv_catalog::Backend;
use reqwest::Method;
use serde_json::Value;

use crate::harness::{Server, client};
use bv_testkit::on_both;

on_both!(backend;
    bursts_over_the_limit_get_429_on_two_servers,
    uploads_sign_ins_links_and_storage_are_bounded,
    the_cli_waits_out_a_rate_limit,
);

/// Status, error code and `Retry-After` of a response.
async fn answer(r: reqwest::Response) -> (u16, String, Option<u64>) {
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    let st = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    let code = v["error"]["code"].as_str().unwrap_or_default().to_string();
    (st, code, retry)
}

fn new_key(s: &Server, tenant: &str) -> String {
    s.admin(
        &[
            "key",
            "create",
            "--tenant",
            tenant,
            "--scopes",
            "videos:read,videos:write",
        ],
        None,
    )
    .trim()
    .to_string()
}

async fn list(s: &Server, base: &str, key: &str) -> (u16, String, Option<u64>) {
    let r = s
        .req(Method::GET, &format!("{base}/v1/videos"), key)
        .send()
        .await
        .unwrap();
    answer(r).await
}

async fn bursts_over_the_limit_get_429_on_two_servers(b: Backend) {
    // Six a minute per key with a burst of ten, twelve a minute per tenant
    // with a burst of twenty: nothing refills while the test runs.
    let s = Server::start_with(
        b,
        &[
            ("BV_SERVE_LIMITS_KEY_REQUESTS_PER_MINUTE", "6"),
            ("BV_SERVE_LIMITS_TENANT_REQUESTS_PER_MINUTE", "12"),
            ("BV_SERVE_LIMITS_BURST_SECONDS", "100"),
        ],
    )
    .await;
    let two = s.sibling();
    let servers = [s.url.clone(), two.url.clone()];
    let (k1, k2, k3) = (
        new_key(&s, "default"),
        new_key(&s, "default"),
        new_key(&s, "default"),
    );
    // Key 1: ten requests pass, spread over both servers; the eleventh is
    // refused on either, with the wait.
    for i in 0..10 {
        assert_eq!(list(&s, &servers[i % 2], &k1).await.0, 200, "request {i}");
    }
    for base in &servers {
        let (st, code, retry) = list(&s, base, &k1).await;
        assert_eq!((st, code.as_str()), (429, "rate_limited"));
        let retry = retry.expect("429 carries Retry-After");
        assert!((1..=10).contains(&retry), "Retry-After {retry}");
    }
    // Key 2 has its own ten; then the tenant's twenty are spent too, so
    // key 3 is refused at its first request, by the tenant's limit.
    for i in 0..10 {
        assert_eq!(list(&s, &servers[i % 2], &k2).await.0, 200, "request {i}");
    }
    let r = s
        .req(Method::GET, &format!("{}/v1/videos", servers[1]), &k3)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let msg: Value = r.json().await.unwrap();
    assert!(
        msg["error"]["message"]
            .as_str()
            .unwrap()
            .contains("this tenant"),
        "{msg}"
    );
    // Another tenant is not slowed by this one.
    let (_, other) = s.second_tenant("globex");
    for base in &servers {
        assert_eq!(list(&s, base, &other).await.0, 200);
    }
    // An operator lifts the tenant's limits: both servers follow at once.
    s.admin(
        &[
            "limits",
            "set",
            "--tenant",
            "default",
            "--key-requests-per-minute",
            "0",
            "--tenant-requests-per-minute",
            "0",
        ],
        None,
    );
    for base in &servers {
        assert_eq!(list(&s, base, &k1).await.0, 200);
        assert_eq!(list(&s, base, &k3).await.0, 200);
    }
    let shown: Value =
        serde_json::from_str(&s.admin(&["limits", "show", "--tenant", "default"], None)).unwrap();
    assert_eq!(shown["applies"]["key_requests_per_minute"], 0);
    assert_eq!(shown["set"]["tenant_requests_per_minute"], 0);
    // The refusals are counted.
    let m = s
        .http
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let refused: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("bv_rate_limited_total "))
        .expect("counter")
        .parse()
        .unwrap();
    assert!(refused >= 1, "{refused}");
}

fn tus_create(s: &Server, base: &str, len: u64) -> reqwest::RequestBuilder {
    s.req(Method::POST, &format!("{base}/v1/uploads"), &s.key)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", len.to_string())
}

/// Rows of videos and vault objects, and blob files on disk.
async fn stored(s: &Server) -> (i64, i64, usize) {
    use sqlx::Row;
    let mut db = s.raw_db().await;
    let count = |sql: &'static str| sqlx::query(sql);
    let videos: i64 = count("SELECT COUNT(*) FROM videos")
        .fetch_one(&mut db)
        .await
        .unwrap()
        .get(0);
    let objects: i64 = count("SELECT COUNT(*) FROM vault_objects")
        .fetch_one(&mut db)
        .await
        .unwrap()
        .get(0);
    let files = walk(&s.dir.path().join("blobs"));
    (videos, objects, files)
}

fn walk(dir: &std::path::Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.map(|e| e.unwrap().path())
        .map(|p| if p.is_dir() { walk(&p) } else { 1 })
        .sum()
}

async fn uploads_sign_ins_links_and_storage_are_bounded(b: Backend) {
    let s = Server::start_with(
        b,
        &[
            ("BV_SERVE_LIMITS_CONCURRENT_UPLOADS", "2"),
            ("BV_SERVE_LIMITS_LOGIN_PER_MINUTE_PER_ADDRESS", "3"),
            ("BV_SERVE_LIMITS_LINKS_PER_MINUTE_PER_ADDRESS", "3"),
            ("BV_SERVE_LIMITS_BURST_SECONDS", "100"),
            ("BV_SERVE_LOGIN_MAX_FAILURES", "100"),
            ("BV_SERVE_DEFAULT_QUOTA_MIB", "4"),
        ],
    )
    .await;
    let two = s.sibling();
    // Two unfinished uploads at once; a third is refused on either server.
    for base in [&s.url, &two.url] {
        let r = tus_create(&s, base, 10).send().await.unwrap();
        assert_eq!(r.status(), 201);
    }
    for base in [&s.url, &two.url] {
        let (st, code, retry) = answer(tus_create(&s, base, 10).send().await.unwrap()).await;
        assert_eq!((st, code.as_str()), (429, "too_many_uploads"));
        assert!(retry.is_some());
    }
    // A simple upload is an unfinished upload while it streams: refused too.
    let r = s
        .req(Method::POST, "/v1/videos?name=a.bin", &s.key)
        .body(vec![7u8; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(answer(r).await.1, "too_many_uploads");
    // Lifted for this tenant: a simple upload goes through.
    s.admin(
        &[
            "limits",
            "set",
            "--tenant",
            "default",
            "--concurrent-uploads",
            "10",
        ],
        None,
    );
    let r = s
        .req(Method::POST, "/v1/videos?name=a.bin", &s.key)
        .body(vec![7u8; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let video: Value = r.json().await.unwrap();
    let id = video["id"].as_str().unwrap();

    // Storage: 4 MiB, of which 20 bytes are reserved by the open uploads
    // and 1000 stored. A file that would cross the quota is refused before
    // a byte of it is kept, by either kind of upload.
    let before = stored(&s).await;
    let (st, code, _) = answer(tus_create(&s, &two.url, 4 << 20).send().await.unwrap()).await;
    assert_eq!((st, code.as_str()), (507, "quota_exceeded"));
    let r = s
        .req(Method::POST, "/v1/videos?name=big.bin", &s.key)
        .body(vec![1u8; 4 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(answer(r).await.1, "quota_exceeded");
    assert_eq!(
        stored(&s).await,
        before,
        "nothing of a refused upload is kept"
    );
    // What fits still goes in.
    let r = s
        .req(Method::POST, "/v1/videos?name=small.bin", &s.key)
        .body(vec![2u8; 1 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // Link minting per client address: a burst of five, then refused.
    let mint = format!("/v1/videos/{id}/links");
    for i in 0..5 {
        let base = if i % 2 == 0 { &s.url } else { &two.url };
        let r = s
            .req(Method::POST, &format!("{base}{mint}"), &s.key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "link {i}");
    }
    let r = s
        .req(Method::POST, &format!("{}{mint}", two.url), &s.key)
        .send()
        .await
        .unwrap();
    let (st, code, retry) = answer(r).await;
    assert_eq!((st, code.as_str()), (429, "rate_limited"));
    assert!(retry.is_some_and(|r| r >= 1));

    // Sign-in attempts per client address: five, then refused before the
    // password is even checked (failed sign-ins alone would allow 100).
    let login = serde_json::json!({"login": "nobody", "password": "wrong password"});
    for i in 0..5 {
        let base = if i % 2 == 0 { &s.url } else { &two.url };
        let r = s
            .http
            .post(format!("{base}/v1/session"))
            .json(&login)
            .send()
            .await
            .unwrap();
        assert_eq!(answer(r).await.1, "login_failed", "sign-in {i}");
    }
    let r = s
        .http
        .post(format!("{}/v1/session", s.url))
        .json(&login)
        .send()
        .await
        .unwrap();
    let (st, code, retry) = answer(r).await;
    assert_eq!((st, code.as_str()), (429, "rate_limited"));
    assert!(retry.is_some());
}

async fn the_cli_waits_out_a_rate_limit(b: Backend) {
    // One request a second, no burst: the second `bv ls` in a row is told
    // to wait a second, waits, and succeeds.
    let s = Server::start_with(
        b,
        &[
            ("BV_SERVE_LIMITS_KEY_REQUESTS_PER_MINUTE", "60"),
            ("BV_SERVE_LIMITS_BURST_SECONDS", "1"),
        ],
    )
    .await;
    let home = tempfile::tempdir().unwrap();
    let cert = s.dir.path().join("tls/ca.pem");
    let mut login = client(home.path())
        .args(["login", &s.url, "--ca", cert.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        writeln!(login.stdin.take().unwrap(), "{}", s.key).unwrap();
    }
    assert!(login.wait_with_output().unwrap().status.success());
    let mut waited = false;
    for _ in 0..3 {
        let out = client(home.path()).arg("ls").output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        waited |= err.contains("asks to wait");
    }
    assert!(
        waited,
        "three requests at once over one a second: one waited"
    );
}
