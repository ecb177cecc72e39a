//! Operators (staff) and tenant content: nothing without a grant; a grant
//! opens only its one video, only for its lifetime; with approval required,
//! nothing until the tenant approves; every attempt, granted or refused, is
//! in the tenant's access-transparency log with its reason.

use std::process::Output;
use std::time::Duration;

use bv_catalog::Backend;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Row;

use crate::harness::{Server, payload};
use bv_testkit::on_both;

on_both!(backend; operators_open_nothing_without_a_grant_and_every_access_is_logged);

/// `bv …` as operator `who` (the person behind sudo).
fn as_op(s: &Server, who: &str, args: &[&str]) -> Output {
    s.bv().env("SUDO_USER", who).args(args).output().unwrap()
}

/// `bv admin access open` as `who`: Ok(bytes) or Err(stderr), checking that
/// a refusal exits 10 with `no_access_grant` and writes no byte.
fn open(s: &Server, who: &str, video: &str) -> Result<Vec<u8>, String> {
    let out = as_op(
        s,
        who,
        &[
            "admin", "access", "open", "--tenant", "default", "--video", video,
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    if out.status.success() {
        return Ok(out.stdout);
    }
    assert_eq!(out.status.code(), Some(10), "{err}");
    assert!(err.contains("no_access_grant"), "{err}");
    assert!(out.stdout.is_empty(), "a refusal writes nothing");
    Err(err)
}

fn request(s: &Server, who: &str, video: &str, ttl: &str) -> Value {
    let out = as_op(
        s,
        who,
        &[
            "admin",
            "access",
            "request",
            "--tenant",
            "default",
            "--video",
            video,
            "--reason-code",
            "customer_request",
            "--reason",
            "customer reports a green frame at 0:03",
            "--ticket",
            "SUP-42",
            "--ttl",
            ttl,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn upload(s: &Server, name: &str, body: Vec<u8>) -> String {
    let r = s
        .req(Method::POST, &format!("/v1/videos?name={name}"), &s.key)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn api(s: &Server, m: Method, path: &str, key: &str, body: Option<Value>) -> (u16, Value) {
    let mut r = s.req(m, path, key);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

async fn operators_open_nothing_without_a_grant_and_every_access_is_logged(b: Backend) {
    let s = Server::start(b).await;
    let (body_a, body_b) = (
        payload(2_500_000, b"OPERATOR-A"),
        payload(1_200_000, b"OPERATOR-B"),
    );
    let a = upload(&s, "a.bin", body_a.clone()).await;
    let vb = upload(&s, "b.bin", body_b.clone()).await;
    let (mut refused, mut opened) = (0, 0);

    // Not an operator, then an operator without a grant: nothing.
    open(&s, "alice", &a).unwrap_err();
    refused += 1;
    s.admin(
        &[
            "operator",
            "add",
            "alice",
            "--employer",
            "BetterVideo Ltd",
            "--location",
            "Dublin, IE",
        ],
        None,
    );
    s.admin(
        &[
            "operator",
            "add",
            "bob",
            "--employer",
            "BetterVideo Ltd",
            "--location",
            "Lisbon, PT",
        ],
        None,
    );
    let e = open(&s, "alice", &a).unwrap_err();
    assert!(e.contains("no grant"), "{e}");
    refused += 1;
    // Nor through the vault's own commands.
    let mut db = s.raw_db().await;
    let obj: String = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT object_id FROM video_pieces WHERE video_id = '{a}' ORDER BY seq LIMIT 1"
    )))
    .fetch_one(&mut db)
    .await
    .unwrap()
    .get(0);
    let tenant: String = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT tenant_id FROM videos WHERE id = '{a}'"
    )))
    .fetch_one(&mut db)
    .await
    .unwrap()
    .get(0);
    for cmd in ["get", "rm"] {
        let out = as_op(&s, "alice", &["vault", cmd, "--tenant", &tenant, &obj]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(10), "vault {cmd}: {err}");
        assert!(out.stdout.is_empty());
        refused += 1;
    }

    // A grant opens its one video, for its operator only, until it ends.
    let g = request(&s, "alice", &a, "1h");
    assert_eq!(g["status"], "active");
    assert_eq!(open(&s, "alice", &a).unwrap(), body_a, "byte for byte");
    opened += 1;
    open(&s, "alice", &vb).unwrap_err();
    open(&s, "bob", &a).unwrap_err();
    refused += 2;
    let out = as_op(
        &s,
        "alice",
        &["admin", "access", "revoke", g["id"].as_str().unwrap()],
    );
    assert!(out.status.success());
    open(&s, "alice", &a).unwrap_err();
    refused += 1;
    request(&s, "alice", &vb, "2s");
    assert_eq!(open(&s, "alice", &vb).unwrap(), body_b);
    opened += 1;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let e = open(&s, "alice", &vb).unwrap_err();
    assert!(e.contains("expired"), "{e}");
    refused += 1;

    // Approval required: nothing until the tenant approves; a denial holds.
    let (st, v) = api(
        &s,
        Method::PUT,
        "/v1/access/settings",
        &s.key,
        Some(json!({"require_approval": true})),
    )
    .await;
    assert_eq!((st, v["require_approval"].clone()), (200, json!(true)));
    let p = request(&s, "alice", &a, "1h");
    assert_eq!(p["status"], "pending");
    let e = open(&s, "alice", &a).unwrap_err();
    assert!(e.contains("approval"), "{e}");
    refused += 1;
    let (_, list) = api(&s, Method::GET, "/v1/access/requests", &s.key, None).await;
    let mine = list["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == p["id"])
        .unwrap()
        .clone();
    assert_eq!(mine["status"], "pending");
    assert_eq!(mine["employer"], "BetterVideo Ltd");
    assert_eq!(mine["location"], "Dublin, IE");
    assert_eq!(mine["reason"], "customer reports a green frame at 0:03");
    assert_eq!(mine["ticket"], "SUP-42");
    let (_, other_key) = s.second_tenant("globex");
    let approve = format!("/v1/access/requests/{}/approve", p["id"].as_str().unwrap());
    let (st, _) = api(&s, Method::POST, &approve, &other_key, None).await;
    assert_eq!(st, 404, "another tenant cannot approve");
    let (st, ok) = api(&s, Method::POST, &approve, &s.key, None).await;
    assert_eq!((st, ok["status"].clone()), (200, json!("active")));
    assert_eq!(open(&s, "alice", &a).unwrap(), body_a);
    opened += 1;
    let d = request(&s, "alice", &vb, "1h");
    let deny = format!("/v1/access/requests/{}/deny", d["id"].as_str().unwrap());
    let (st, no) = api(&s, Method::POST, &deny, &s.key, None).await;
    assert_eq!((st, no["status"].clone()), (200, json!("denied")));
    let e = open(&s, "alice", &vb).unwrap_err();
    assert!(e.contains("denied"), "{e}");
    refused += 1;

    // The tenant reads every attempt, with its reason; the other tenant reads none.
    let (st, log) = api(&s, Method::GET, "/v1/access/log", &s.key, None).await;
    assert_eq!(st, 200);
    let entries = log["entries"].as_array().unwrap();
    let of = |action: &str, outcome: &str| -> Vec<&Value> {
        entries
            .iter()
            .filter(|e| e["action"] == action && e["outcome"] == outcome)
            .collect()
    };
    let ok = of("operator.access", "ok");
    assert_eq!(ok.len(), opened, "{log:#}");
    for e in &ok {
        assert_eq!(e["actor"], "operator:alice");
        assert_eq!(e["detail"]["reason_code"], "customer_request");
        assert_eq!(
            e["detail"]["reason"],
            "customer reports a green frame at 0:03"
        );
        assert_eq!(e["detail"]["ticket"], "SUP-42");
        assert_eq!(e["detail"]["employer"], "BetterVideo Ltd");
        assert_eq!(e["detail"]["location"], "Dublin, IE");
        assert_eq!(e["detail"]["method"], "bv admin access open");
    }
    assert_eq!(of("operator.access", "refused").len(), refused, "{log:#}");
    assert_eq!(of("access.requested", "active").len(), 2);
    assert_eq!(of("access.requested", "pending").len(), 2);
    assert_eq!(of("access.approved", "ok").len(), 1);
    assert_eq!(of("access.denied", "ok").len(), 1);
    assert_eq!(of("access.revoked", "ok").len(), 1);
    assert!(
        of("operator.access", "refused")
            .iter()
            .any(|e| e["detail"]["method"] == "bv vault get")
    );
    // The other tenant sees the operators' work on its own account (its
    // creation, its key) and nothing of this tenant's.
    let (_, other) = api(&s, Method::GET, "/v1/access/log", &other_key, None).await;
    let actions: Vec<&str> = other["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["key.create", "tenant.create"]);

    // The object the vault refused to remove is still whole, and the chain verifies.
    let r = s
        .req(Method::GET, &format!("/v1/videos/{a}/content"), &s.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), body_a.as_slice());
    let out = s.bv().args(["admin", "audit", "verify"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
