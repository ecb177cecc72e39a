//! Tenant erasure and export: after `erase` (API and CLI) no object of the
//! tenant opens by any means, its rows are gone, the other tenants are
//! untouched, and the signed receipt verifies (and stops verifying when a
//! byte of it changes).

use bv_catalog::Backend;
use reqwest::Method;
use serde_json::Value;
use sqlx::Row;

use crate::harness::{Server, payload};
use bv_testkit::on_both;

on_both!(backend; erase_shreds_everything_of_one_tenant_and_signs_a_receipt);

/// Uploads `body` as `key`'s tenant; (video id, its object ids).
async fn upload(s: &Server, key: &str, body: Vec<u8>) -> (String, Vec<String>) {
    let r = s
        .req(Method::POST, "/v1/videos?name=home.mp4", key)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    let id = v["id"].as_str().unwrap().to_string();
    let mut db = s.raw_db().await;
    let objects = sqlx::query("SELECT object_id FROM video_pieces WHERE video_id = $1")
        .bind(&id)
        .fetch_all(&mut db)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
    (id, objects)
}

/// Rows the tenant still has in each table that holds tenant rows, and its vault keys.
async fn rows_of(s: &Server, tenant: &str) -> Vec<(String, i64)> {
    let mut db = s.raw_db().await;
    let mut out = Vec::new();
    for table in bv_catalog::erasure::tenant_tables() {
        let sql = match table {
            "tenants" => "SELECT COUNT(*) FROM tenants WHERE id = $1".to_string(),
            "video_pieces" => "SELECT COUNT(*) FROM video_pieces p JOIN videos v ON v.id = p.video_id WHERE v.tenant_id = $1".to_string(),
            t => format!("SELECT COUNT(*) FROM {t} WHERE tenant_id = $1"),
        };
        let n: i64 = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .fetch_one(&mut db)
            .await
            .unwrap()
            .get(0);
        out.push((table.to_string(), n));
    }
    for (what, sql) in [
        (
            "vault_keys",
            "SELECT COUNT(*) FROM vault_keys WHERE kind = 'tenant' AND owner = $1",
        ),
        (
            "vault_objects",
            "SELECT COUNT(*) FROM vault_objects WHERE tenant = $1",
        ),
    ] {
        let n: i64 = sqlx::query(sql)
            .bind(tenant)
            .fetch_one(&mut db)
            .await
            .unwrap()
            .get(0);
        out.push((what.to_string(), n));
    }
    out
}

fn nonzero(rows: &[(String, i64)]) -> Vec<&(String, i64)> {
    rows.iter().filter(|(_, n)| *n != 0).collect()
}

async fn erase_shreds_everything_of_one_tenant_and_signs_a_receipt(b: Backend) {
    let s = Server::start(b).await;
    let (globex, globex_key) = s.second_tenant("globex");
    let (initech, initech_key) = s.second_tenant("initech");
    let me: Value = s.json(Method::GET, "/v1/me", &s.key).await;
    let default = me["tenant_id"].as_str().expect("tenant id").to_string();
    s.admin(&["credits", "grant", "--tenant", "default", "50"], None);

    let (video, objects) = upload(&s, &s.key, payload(3 << 20, b"DEFAULT-CONTENT")).await;
    assert!(objects.len() >= 3, "pieces of 1 MiB: {objects:?}");
    let (_, globex_objects) = upload(&s, &globex_key, payload(1000, b"GLOBEX")).await;
    let kept = payload(2 << 20, b"INITECH-CONTENT");
    let (initech_video, _) = upload(&s, &initech_key, kept.clone()).await;
    let link: Value = s
        .json(Method::POST, &format!("/v1/videos/{video}/links"), &s.key)
        .await;
    let link = link["url"].as_str().unwrap().to_string();

    // The export holds the tenant's videos and ledger.
    let r = s
        .req(Method::GET, "/v1/tenant/export", &s.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let export: Value = r.json().await.unwrap();
    assert_eq!(export["format"], "bettervideo-tenant-export/1");
    assert_eq!(export["tenant"]["id"], default.as_str());
    assert_eq!(export["videos"][0]["id"], video.as_str());
    assert_eq!(export["credits"]["ledger"][0]["amount"], 50);
    assert_eq!(export["credits"]["balance"]["available"], 50);
    let cli: Value = serde_json::from_str(&s.admin(&["tenant", "export", "globex"], None)).unwrap();
    assert_eq!(cli["tenant"]["id"], globex.as_str());
    assert_eq!(cli["videos"].as_array().unwrap().len(), 1);

    // Self-service erasure wants the tenant's exact name.
    let erase = |confirm: &str| {
        s.req(Method::DELETE, "/v1/tenant", &s.key)
            .json(&serde_json::json!({ "confirm": confirm }))
            .send()
    };
    let r = erase("Default").await.unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "confirmation_required");
    assert!(nonzero(&rows_of(&s, &default).await).len() > 5);
    let r = erase("default").await.unwrap();
    assert_eq!(r.status(), 200);
    let receipt: Value = r.json().await.unwrap();
    let rec = &receipt["receipt"];
    assert_eq!(rec["tenant_id"], default.as_str());
    assert_eq!(rec["objects"].as_u64().unwrap(), objects.len() as u64);
    assert_eq!(rec["bytes"].as_u64().unwrap(), 3 << 20);
    assert_eq!(rec["rows"]["videos"], 1);
    assert_eq!(rec["rows"]["credit_entries"], 1);
    assert!(!rec["key_versions"].as_array().unwrap().is_empty());

    // Nothing of the tenant is left, and nothing of it opens.
    assert_eq!(
        nonzero(&rows_of(&s, &default).await),
        Vec::<&(String, i64)>::new()
    );
    let r = s
        .req(Method::GET, "/v1/videos", &s.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the tenant's keys died with it");
    let r = s.http.get(&link).send().await.unwrap();
    assert_eq!(r.status(), 403, "its links are dead");
    for o in &objects {
        let out = s
            .bv()
            .args([
                "vault", "get", "--tenant", &default, "--object", o, "-o", "-",
            ])
            .output()
            .unwrap();
        assert!(!out.status.success(), "object {o} still opens");
        let blob = walk_names(&s.dir.path().join("blobs"));
        assert!(
            !blob.iter().any(|n| n.contains(o.as_str())),
            "blob of {o} left"
        );
    }

    // The receipt verifies; a changed byte does not.
    let file = s.dir.path().join("receipt.json");
    std::fs::write(&file, receipt.to_string()).unwrap();
    let out = s
        .bv()
        .args(["admin", "tenant", "verify-receipt", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("the receipt verifies"));
    let mut forged = receipt.clone();
    forged["receipt"]["objects"] = (objects.len() - 1).into();
    std::fs::write(&file, forged.to_string()).unwrap();
    let out = s
        .bv()
        .args(["admin", "tenant", "verify-receipt", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    assert!(String::from_utf8_lossy(&out.stderr).contains("receipt_invalid"));

    // An operator erases another tenant from the command line.
    let refused = s
        .bv()
        .args(["admin", "tenant", "erase", "globex", "--confirm", "initech"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let cli: Value =
        serde_json::from_str(&s.admin(&["tenant", "erase", "globex", "--confirm", "globex"], None))
            .unwrap();
    assert_eq!(
        cli["receipt"]["objects"].as_u64().unwrap(),
        globex_objects.len() as u64
    );
    assert!(
        cli["receipt"]["requested_by"]
            .as_str()
            .unwrap()
            .starts_with("operator:")
    );
    assert_eq!(
        nonzero(&rows_of(&s, &globex).await),
        Vec::<&(String, i64)>::new()
    );

    // The third tenant is untouched: its video reads back whole.
    assert!(nonzero(&rows_of(&s, &initech).await).len() > 5);
    let r = s
        .req(
            Method::GET,
            &format!("/v1/videos/{initech_video}/content"),
            &initech_key,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.bytes().await.unwrap() == kept,
        "another tenant's bytes changed"
    );

    // Both erasures are in the audit log, whose chain still verifies.
    let tail = s.admin(&["audit", "tail", "--limit", "200"], None);
    assert_eq!(tail.matches("tenant.erased").count(), 2, "{tail}");
    s.admin(&["audit", "verify"], None);
}

/// Every file name under `dir`.
fn walk_names(dir: &std::path::Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.map(|e| e.unwrap().path())
        .flat_map(|p| {
            if p.is_dir() {
                walk_names(&p)
            } else {
                vec![p.to_string_lossy().into_owned()]
            }
        })
        .collect()
}
