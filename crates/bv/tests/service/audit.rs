//! The audit log: security events land in the tenant's own log with their
//! request id and source; `bv admin audit verify` passes on a clean log and
//! names the position of every edit, deletion, reordering, insertion and cut
//! made directly in the database.

use bv_catalog::Backend;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Row;

use crate::harness::Server;
use bv_testkit::on_both;

on_both!(backend;
    security_events_land_in_the_tenants_own_audit_log,
    tampering_with_the_audit_log_is_detected_at_its_position,
    a_stopped_server_leaves_its_last_entries_vouched_for,
);

async fn audit_page(s: &Server, key: &str) -> Vec<Value> {
    let r = s.req(Method::GET, "/v1/audit", key).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["entries"]
        .as_array()
        .unwrap()
        .clone()
}

async fn security_events_land_in_the_tenants_own_audit_log(b: Backend) {
    let s = Server::start(b).await;
    s.admin(
        &["user", "create", "--tenant", "default", "alice"],
        Some("a long passphrase\n"),
    );
    for pw in ["wrong", "a long passphrase"] {
        s.http
            .post(format!("{}/v1/session", s.url))
            .json(&json!({"login": "alice", "password": pw}))
            .send()
            .await
            .unwrap();
    }
    let r = s
        .req(Method::POST, "/v1/keys", &s.key)
        .json(&json!({"name": "ci", "scopes": ["videos:read"]}))
        .send()
        .await
        .unwrap();
    let key_id = r.json::<Value>().await.unwrap()["key"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.req(Method::DELETE, &format!("/v1/keys/{key_id}"), &s.key)
        .send()
        .await
        .unwrap();
    let r = s
        .req(Method::POST, "/v1/videos?name=a.bin", &s.key)
        .body(vec![7u8; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let upload_request = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let video = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let link: Value = s
        .req(Method::POST, &format!("/v1/videos/{video}/links"), &s.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let got = s
        .http
        .get(link["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    s.req(Method::DELETE, &format!("/v1/videos/{video}"), &s.key)
        .send()
        .await
        .unwrap();

    let entries = audit_page(&s, &s.key).await;
    let has = |action: &str, outcome: &str, target: &str| {
        entries.iter().any(|e| {
            e["action"] == action
                && e["outcome"] == outcome
                && e["target"].as_str().unwrap().contains(target)
        })
    };
    for (action, outcome, target) in [
        ("user.create", "ok", "principal:"),
        ("key.used", "ok", "key:"),
        ("session.login", "ok", "login:alice"),
        ("key.create", "ok", key_id.as_str()),
        ("key.revoke", "ok", key_id.as_str()),
        ("video.upload", "ok", video.as_str()),
        ("link.mint", "ok", video.as_str()),
        ("video.download", "ok", video.as_str()),
        ("video.delete", "ok", video.as_str()),
    ] {
        assert!(
            has(action, outcome, target),
            "{action} {outcome} missing: {entries:#?}"
        );
    }
    let upload = entries
        .iter()
        .find(|e| e["action"] == "video.upload")
        .unwrap();
    assert_eq!(upload["request_id"], upload_request.as_str(), "{upload}");
    assert_eq!(upload["source"], "127.0.0.1");
    let download = entries
        .iter()
        .find(|e| e["action"] == "video.download")
        .unwrap();
    assert_eq!(download["actor"], "link");
    // Newest first.
    let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "{seqs:?}");
    // A refused sign-in names no tenant: it is in the operators' log, not the tenant's.
    assert!(!has("session.login", "refused", "login:alice"));
    let tail = s.admin(&["audit", "tail", "--limit", "100"], None);
    assert!(tail.contains("\"refused\""), "{tail}");

    // Key rotations are recorded: the tenant's in its own log, the root's and
    // the link key's in the operators' log.
    let me: Value = s
        .req(Method::GET, "/v1/me", &s.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tenant = me["tenant_id"].as_str().unwrap().to_string();
    for args in [
        vec!["keys", "rotate", "--tenant", tenant.as_str()],
        vec!["keys", "rotate", "--root"],
        vec!["admin", "links", "rotate"],
    ] {
        let o = s.bv().args(&args).output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let mine = audit_page(&s, &s.key).await;
    assert!(
        mine.iter().any(|e| e["action"] == "key.rotate"
            && e["target"] == format!("tenant:{tenant}")
            && e["actor"].as_str().unwrap().starts_with("operator:")),
        "{mine:#?}"
    );
    let tail = s.admin(&["audit", "tail", "--limit", "100"], None);
    assert!(
        tail.contains("\"target\": \"root\"") && tail.contains("\"target\": \"links\""),
        "{tail}"
    );

    // Another tenant sees none of it.
    let (_, other) = s.second_tenant("globex");
    let theirs = audit_page(&s, &other).await;
    assert!(
        theirs
            .iter()
            .all(|e| !e["target"].as_str().unwrap().contains(&video)),
        "{theirs:#?}"
    );
    let v = s.bv().args(["admin", "audit", "verify"]).output().unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
}

/// The audit log's last position.
async fn last_seq(db: &mut sqlx::AnyConnection) -> i64 {
    sqlx::query("SELECT MAX(seq) AS m FROM audit_log")
        .fetch_one(db)
        .await
        .unwrap()
        .try_get("m")
        .unwrap()
}

/// `bv admin audit verify`: (exit status, the first problem's position).
fn verify(s: &Server) -> (i32, Option<i64>) {
    let out = s.bv().args(["admin", "audit", "verify"]).output().unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (out.status.code().unwrap(), r["problems"][0]["seq"].as_i64())
}

const COLUMNS: &str = "seq, at_ms, tenant_id, actor, action, target, outcome, request_id, \
                       source, detail, key_version, seal";

/// One raw row, to put back after an attack.
async fn take_row(db: &mut sqlx::AnyConnection, seq: i64) -> Vec<Option<String>> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT CAST(seq AS TEXT) AS seq, CAST(at_ms AS TEXT) AS at_ms, tenant_id, actor, action,
                target, outcome, request_id, source, detail,
                CAST(key_version AS TEXT) AS key_version, seal
         FROM audit_log WHERE seq = {seq}"
    )))
    .fetch_one(&mut *db)
    .await
    .unwrap();
    (0..12)
        .map(|i| r.try_get::<Option<String>, _>(i).unwrap())
        .collect()
}

async fn put_row(db: &mut sqlx::AnyConnection, row: &[Option<String>], seq: i64) {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO audit_log ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    )))
    .bind(seq)
    .bind(row[1].as_ref().unwrap().parse::<i64>().unwrap());
    for v in &row[2..10] {
        q = q.bind(v.clone());
    }
    q.bind(row[10].as_ref().unwrap().parse::<i64>().unwrap())
        .bind(row[11].clone())
        .execute(&mut *db)
        .await
        .unwrap();
}

async fn exec(db: &mut sqlx::AnyConnection, sql: &str) {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut *db)
        .await
        .unwrap();
}

async fn tampering_with_the_audit_log_is_detected_at_its_position(b: Backend) {
    let s = Server::start(b).await;
    for i in 0..6 {
        s.admin(
            &[
                "credits",
                "grant",
                "--tenant",
                "default",
                &format!("{}", i + 1),
            ],
            None,
        );
    }
    s.admin(&["audit", "checkpoint"], None);
    let mut db = s.raw_db().await;
    let last = last_seq(&mut db).await;
    assert!(last >= 7, "service.start and six grants: {last}");
    assert_eq!(verify(&s), (0, None), "a clean log verifies");

    // Edit: one field of entry 3.
    let row3 = take_row(&mut db, 3).await;
    exec(
        &mut db,
        "UPDATE audit_log SET detail = '{\"amount\":1000000}' WHERE seq = 3",
    )
    .await;
    assert_eq!(verify(&s), (7, Some(3)), "edit");
    exec(&mut db, "DELETE FROM audit_log WHERE seq = 3").await;
    put_row(&mut db, &row3, 3).await;
    assert_eq!(verify(&s), (0, None));

    // Delete: entry 4.
    let row4 = take_row(&mut db, 4).await;
    exec(&mut db, "DELETE FROM audit_log WHERE seq = 4").await;
    assert_eq!(verify(&s), (7, Some(4)), "delete");
    put_row(&mut db, &row4, 4).await;
    assert_eq!(verify(&s), (0, None));

    // Reorder: entries 2 and 5 trade places.
    exec(&mut db, "UPDATE audit_log SET seq = -2 WHERE seq = 2").await;
    exec(&mut db, "UPDATE audit_log SET seq = 2 WHERE seq = 5").await;
    exec(&mut db, "UPDATE audit_log SET seq = 5 WHERE seq = -2").await;
    assert_eq!(verify(&s), (7, Some(2)), "reorder");
    exec(&mut db, "UPDATE audit_log SET seq = -2 WHERE seq = 2").await;
    exec(&mut db, "UPDATE audit_log SET seq = 2 WHERE seq = 5").await;
    exec(&mut db, "UPDATE audit_log SET seq = 5 WHERE seq = -2").await;
    assert_eq!(verify(&s), (0, None));

    // Insert: a copy of entry 2 slipped in as entry 3, the rest moved up.
    exec(
        &mut db,
        "UPDATE audit_log SET seq = seq + 1000 WHERE seq >= 3",
    )
    .await;
    exec(
        &mut db,
        "UPDATE audit_log SET seq = seq - 999 WHERE seq >= 1000",
    )
    .await;
    let row2 = take_row(&mut db, 2).await;
    put_row(&mut db, &row2, 3).await;
    assert_eq!(verify(&s), (7, Some(3)), "insert");
    exec(&mut db, "DELETE FROM audit_log WHERE seq = 3").await;
    exec(
        &mut db,
        "UPDATE audit_log SET seq = seq + 1000 WHERE seq >= 4",
    )
    .await;
    exec(
        &mut db,
        "UPDATE audit_log SET seq = seq - 1001 WHERE seq >= 1000",
    )
    .await;
    assert_eq!(verify(&s), (0, None));

    // Insert at the end: a forged entry cannot carry a valid seal.
    put_row(&mut db, &row2, last + 1).await;
    assert_eq!(verify(&s), (7, Some(last + 1)), "append");
    exec(
        &mut db,
        &format!("DELETE FROM audit_log WHERE seq = {}", last + 1),
    )
    .await;

    // Cut off the end, below the checkpoint.
    exec(
        &mut db,
        &format!("DELETE FROM audit_log WHERE seq = {last}"),
    )
    .await;
    assert_eq!(verify(&s), (7, Some(last)), "truncation below a checkpoint");

    // The outside review's attack: cut the end and delete the checkpoint
    // rows that vouch for it. The anchor in the blob store still does.
    exec(&mut db, "DELETE FROM audit_checkpoints").await;
    assert_eq!(
        verify(&s),
        (7, Some(last)),
        "truncation with the catalog's checkpoints deleted too"
    );
}

/// A stop (SIGTERM) signs a last checkpoint, anchored outside the catalog:
/// what was recorded just before it cannot be cut off unnoticed.
async fn a_stopped_server_leaves_its_last_entries_vouched_for(b: Backend) {
    let mut s = Server::start(b).await;
    s.admin(&["credits", "grant", "--tenant", "default", "5"], None);
    let status = s.stop();
    assert!(status.success(), "a clean stop: {status:?}");
    let mut db = s.raw_db().await;
    let last = last_seq(&mut db).await;
    let out = s.bv().args(["admin", "audit", "verify"]).output().unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["anchors"], 1, "{r}");
    assert_eq!(r["problems"], serde_json::json!([]), "{r}");
    // An anchor copied under a higher name (appending is all it takes) does
    // not pass for the newest: its name is not the position it is signed for.
    let dir = s.dir.path().join("blobs/n/audit-anchors");
    let first = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let forged = dir.join("00000000009999999999");
    std::fs::copy(&first, &forged).unwrap();
    assert_eq!(verify(&s).0, 7, "a misnamed anchor is reported");
    std::fs::remove_file(&forged).unwrap();
    // A stray file that is not an anchor is ignored.
    std::fs::write(dir.join("notes"), b"hello").unwrap();
    assert_eq!(verify(&s), (0, None));
    // The grant was the last entry: cutting it (and every checkpoint row)
    // is caught by the anchor the stop wrote.
    exec(
        &mut db,
        &format!("DELETE FROM audit_log WHERE seq = {last}"),
    )
    .await;
    exec(&mut db, "DELETE FROM audit_checkpoints").await;
    assert_eq!(verify(&s), (7, Some(last)));
}
