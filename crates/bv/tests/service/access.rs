//! Authentication, scopes, tenancy and sessions, attacked endpoint by endpoint.

use std::time::Duration;

use bv_api::routes::{Access, ENDPOINTS};
use bv_catalog::Backend;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::Server;
use bv_testkit::on_both;

on_both!(backend;
    every_endpoint_refuses_keys_without_its_scope,
    expired_and_revoked_keys_are_refused_at_once,
    another_tenants_ids_look_like_random_ids,
    sessions_cookies_csrf_timeouts_and_throttling,
);

async fn new_key(s: &Server, scopes: &[&str], expires: Option<u64>) -> String {
    let mut body = json!({"name": "t", "scopes": scopes});
    if let Some(e) = expires {
        body["expires_in_seconds"] = json!(e);
    }
    let r = s
        .req(Method::POST, "/v1/keys", &s.key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    v["secret"].as_str().unwrap().to_string()
}

fn path(e: &bv_api::routes::Endpoint, id: &str) -> String {
    e.path.replace("{id}", id)
}

async fn every_endpoint_refuses_keys_without_its_scope(b: Backend) {
    let s = Server::start(b).await;
    let all = ["videos:read", "videos:write", "jobs:write", "admin"];
    let id = "0123456789abcdef0123456789abcdef";
    for e in ENDPOINTS {
        let method: Method = e.method.parse().unwrap();
        match e.access {
            Access::Scoped(scope) => {
                let others: Vec<&str> = all
                    .iter()
                    .copied()
                    .filter(|x| *x != scope.as_str())
                    .collect();
                let key = new_key(&s, &others, None).await;
                let r = s
                    .req(method.clone(), &path(e, id), &key)
                    .header("tus-resumable", "1.0.0")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::FORBIDDEN, "{} {}", e.method, e.path);
                if method != Method::HEAD {
                    let v: Value = r.json().await.unwrap();
                    assert_eq!(
                        v["error"]["code"], "insufficient_scope",
                        "{} {}",
                        e.method, e.path
                    );
                }
                // And no credential at all: 401.
                let r = s
                    .http
                    .request(method.clone(), format!("{}{}", s.url, path(e, id)))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    r.status(),
                    StatusCode::UNAUTHORIZED,
                    "{} {}",
                    e.method,
                    e.path
                );
            }
            Access::Authenticated => {
                let r = s
                    .http
                    .request(method, format!("{}{}", s.url, path(e, id)))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    r.status(),
                    StatusCode::UNAUTHORIZED,
                    "{} {}",
                    e.method,
                    e.path
                );
            }
            Access::SignedLink => {
                let r = s
                    .http
                    .request(method, format!("{}{}", s.url, path(e, id)))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::FORBIDDEN, "{} {}", e.method, e.path);
            }
            Access::Public => {}
        }
    }
}

async fn expired_and_revoked_keys_are_refused_at_once(b: Backend) {
    let s = Server::start(b).await;
    let me = |k: String| {
        let s = &s;
        async move {
            s.req(Method::GET, "/v1/me", &k)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let short = new_key(&s, &["videos:read"], Some(1)).await;
    assert_eq!(me(short.clone()).await, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(me(short).await, 401);

    let k = new_key(&s, &["videos:read"], None).await;
    assert_eq!(me(k.clone()).await, 200);
    let id = &k[3..19];
    let r = s
        .req(Method::DELETE, &format!("/v1/keys/{id}"), &s.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(me(k.clone()).await, 401, "revocation is immediate");
    // The CLI revokes as immediately.
    let k2 = new_key(&s, &["videos:read"], None).await;
    s.admin(&["key", "revoke", "--tenant", "default", &k2[3..19]], None);
    assert_eq!(me(k2).await, 401);
    // Listing shows last use, never a secret.
    let list = s
        .req(Method::GET, "/v1/keys", &s.key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!list.contains(&k[20..]));
    assert!(list.contains("last_used_at"));
}

/// (status, error code) of a response.
async fn outcome(r: reqwest::Response) -> (u16, String) {
    let st = r.status().as_u16();
    let body = r.text().await.unwrap_or_default();
    let code = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
        .unwrap_or_default();
    (st, code)
}

async fn another_tenants_ids_look_like_random_ids(b: Backend) {
    let s = Server::start(b).await;
    let (_, other) = s.second_tenant("globex");
    // Tenant A owns a video, an upload in progress and a key.
    let r = s
        .req(Method::POST, "/v1/videos?name=a.mp4", &s.key)
        .body(vec![7u8; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let video = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .req(Method::POST, "/v1/uploads", &s.key)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "10")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let upload = r.headers()["location"]
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let key_id = new_key(&s, &["videos:read"], None).await[3..19].to_string();
    // And a queued job (straight into the catalog: no worker runs in this test).
    let me: Value = s
        .req(Method::GET, "/v1/me", &s.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let catalog = bv_catalog::Catalog::open(&s.catalog_url, 1).await.unwrap();
    let job = bv_catalog::new_id().unwrap();
    catalog
        .submit_job(&bv_catalog::NewJob {
            id: &job,
            tenant_id: me["tenant_id"].as_str().unwrap(),
            principal_id: me["principal_id"].as_str().unwrap(),
            input_video_id: &video,
            preset: "{}",
            price: 0,
            payload_mac: "00",
            mac_key_version: 1,
            priority: 0,
            max_attempts: 1,
            idempotency_key: None,
            custody: None,
            max_active: None,
        })
        .await
        .unwrap();
    let random32 = "0123456789abcdef0123456789abcdef";
    let random16 = "0123456789abcdef";

    for e in ENDPOINTS.iter().filter(|e| e.path.contains("{id}")) {
        let (mine, random) = match e.path {
            p if p.starts_with("/v1/keys/") => (key_id.as_str(), random16),
            p if p.starts_with("/v1/uploads/") => (upload.as_str(), random32),
            p if p.starts_with("/v1/jobs/") => (job.as_str(), random32),
            _ => (video.as_str(), random32),
        };
        let send = |id: &str| {
            let m: Method = e.method.parse().unwrap();
            let mut rq = s
                .req(m, &path(e, id), &other)
                .header("tus-resumable", "1.0.0");
            if e.method == "PATCH" {
                rq = rq
                    .header("content-type", "application/offset+octet-stream")
                    .header("upload-offset", "0")
                    .body(vec![1u8; 10]);
            }
            if e.path.ends_with("/links") {
                rq = rq.json(&json!({}));
            }
            rq.send()
        };
        let theirs = outcome(send(mine).await.unwrap()).await;
        let nothing = outcome(send(random).await.unwrap()).await;
        assert_eq!(
            theirs, nothing,
            "{} {}: another tenant's id must look like a random one",
            e.method, e.path
        );
        assert!(
            theirs.0 == 404 || theirs.0 == 403,
            "{} {}: {theirs:?}",
            e.method,
            e.path
        );
    }
    // Tenant B's lists stay empty; A's things are intact.
    let v: Value = s
        .req(Method::GET, "/v1/videos", &other)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["videos"].as_array().unwrap().len(), 0);
    let r = s
        .req(Method::GET, &format!("/v1/videos/{video}/content"), &s.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), &[7u8; 1000][..]);
    let r = s
        .req(Method::HEAD, &format!("/v1/uploads/{upload}"), &s.key)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["upload-offset"], "0");
    let j: Value = s
        .req(Method::GET, &format!("/v1/jobs/{job}"), &s.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (j["state"].as_str(), j["cancel_requested"].as_bool()),
        (Some("queued"), Some(false)),
        "{j}"
    );
    let v: Value = s
        .req(Method::GET, "/v1/keys", &s.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["revoked_at"].is_null())
    );
}

async fn sessions_cookies_csrf_timeouts_and_throttling(b: Backend) {
    let s = Server::start_with(
        b,
        &[
            ("BV_SERVE_SESSION_IDLE_SECONDS", "2"),
            ("BV_SERVE_LOGIN_MAX_FAILURES", "3"),
        ],
    )
    .await;
    s.admin(
        &["user", "create", "--tenant", "default", "alice"],
        Some("a long passphrase\n"),
    );
    let login = |pw: &str| {
        s.http
            .post(format!("{}/v1/session", s.url))
            .json(&json!({"login": "alice", "password": pw}))
            .send()
    };
    let r = login("a long passphrase").await.unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    for attr in [
        "__Host-bv_session=",
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(cookie.contains(attr), "{attr} missing from {cookie}");
    }
    let token = cookie.split(';').next().unwrap().to_string();
    let csrf = r.json::<Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    let with_cookie = |m: Method, p: &str| {
        s.http
            .request(m, format!("{}{p}", s.url))
            .header("cookie", &token)
    };

    let me: Value = with_cookie(Method::GET, "/v1/me")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["via"], "session");
    // Unsafe methods need the CSRF token.
    let r = with_cookie(Method::POST, "/v1/videos?name=x")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(outcome(r).await, (403, "csrf_failed".into()));
    let r = with_cookie(Method::POST, "/v1/videos?name=x")
        .header("x-csrf-token", "0".repeat(64))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(outcome(r).await, (403, "csrf_failed".into()));
    let r = with_cookie(Method::POST, "/v1/videos?name=x")
        .header("x-csrf-token", &csrf)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // Idle timeout.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(
        with_cookie(Method::GET, "/v1/me")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // Sign-out ends the session at once.
    let r = login("a long passphrase").await.unwrap();
    let token2 = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf2 = r.json::<Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .http
        .delete(format!("{}/v1/session", s.url))
        .header("cookie", &token2)
        .header("x-csrf-token", &csrf2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        s.http
            .get(format!("{}/v1/me", s.url))
            .header("cookie", &token2)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // Throttling: after 3 failures even the right password waits.
    for _ in 0..3 {
        assert_eq!(
            outcome(login("wrong password!").await.unwrap()).await,
            (401, "login_failed".into())
        );
    }
    assert_eq!(
        outcome(login("a long passphrase").await.unwrap()).await,
        (429, "too_many_attempts".into())
    );
    // Nothing secret reached the log.
    let log = std::fs::read_to_string(s.log_path()).unwrap();
    for secret in [
        "a long passphrase",
        &token[token.find('=').unwrap() + 1..],
        &csrf,
        &s.key,
    ] {
        assert!(!log.contains(secret), "a secret is in the server log");
    }
}

/// Behind a reverse proxy (`serve.trusted_proxies`), sign-in throttling and
/// the audit log see the client the proxy names, so one guesser locks only
/// itself out, not everyone the proxy carries (the second review's point);
/// without the setting, `X-Forwarded-For` is the client's own text and
/// changing it dodges nothing. The test's client plays the proxy from
/// 127.0.0.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_names_the_client_and_nobody_else_can() {
    for trusted in [true, false] {
        let mut env = vec![("BV_SERVE_LOGIN_MAX_FAILURES", "3")];
        if trusted {
            env.push(("BV_SERVE_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1"));
        }
        let s = Server::start_with(Backend::Sqlite, &env).await;
        s.admin(
            &["user", "create", "--tenant", "default", "alice"],
            Some("a long passphrase\n"),
        );
        let login = |pw: &str, client: &str| {
            s.http
                .post(format!("{}/v1/session", s.url))
                .header("x-forwarded-for", client)
                .json(&json!({"login": "alice", "password": pw}))
                .send()
        };
        for _ in 0..3 {
            assert_eq!(
                outcome(login("wrong password!", "203.0.113.7").await.unwrap()).await,
                (401, "login_failed".into())
            );
        }
        assert_eq!(
            outcome(login("a long passphrase", "203.0.113.7").await.unwrap()).await,
            (429, "too_many_attempts".into()),
            "the guesser waits"
        );
        // Someone else through the same proxy; a forged hop left of the
        // proxy's own entry changes nothing.
        let other = outcome(
            login("a long passphrase", "203.0.113.7, 198.51.100.20")
                .await
                .unwrap(),
        )
        .await;
        if trusted {
            assert_eq!(other, (200, String::new()), "another client signs in");
            let entries = s.json(Method::GET, "/v1/audit", &s.key).await["entries"]
                .as_array()
                .unwrap()
                .clone();
            let login_ok = entries
                .iter()
                .find(|e| e["action"] == "session.login" && e["outcome"] == "ok")
                .expect("the sign-in is audited");
            assert_eq!(login_ok["source"], "198.51.100.20", "{login_ok}");
        } else {
            assert_eq!(
                other,
                (429, "too_many_attempts".into()),
                "an untrusted peer's header is ignored: same address, same lock"
            );
        }
    }
}
