//! The root key in an HSM (issue 23): SoftHSM2 through PKCS#11, on both
//! catalog backends. The server and its workers run with
//! `root_key_provider = "pkcs11"`; OpenSC's `pkcs11-tool`, a reference
//! client of the token, reads the key's attributes; rotation makes a new
//! version in the token and destroys the old one, and a catalog restored
//! from before the rotation (the attack a backup allows) opens nothing,
//! because the root version its keys need no longer exists anywhere; an
//! erased tenant's key dies in the token, so a copy of its rows and blobs
//! taken before the erasure opens nothing either (issue 20, finding 1).

use std::process::Command;

use bv_catalog::Backend;
use reqwest::Method;
use serde_json::Value;
use sqlx::Row;

use crate::harness::Server;
use crate::worker::{lavfi_clip, poll, run_worker_once, submitted, upload};
use bv_testkit::on_both;

on_both!(backend; the_root_key_lives_in_the_hsm_and_a_retired_version_opens_nothing);

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const PIN: &str = "4711-user-pin";

/// A SoftHSM2 token of its own: a configuration and a token directory in a
/// temporary directory, set up the way an operator would with
/// `softhsm2-util`.
pub(crate) struct Hsm {
    dir: tempfile::TempDir,
    token: String,
}

impl Hsm {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        std::fs::write(
            dir.path().join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        let h = Self {
            dir,
            token: "bettervideo-test".into(),
        };
        let out = h
            .tool("softhsm2-util")
            .args(["--init-token", "--free", "--label", &h.token])
            .args(["--so-pin", "4711-so-pin", "--pin", PIN])
            .output()
            .expect("softhsm2-util (make setup installs softhsm2)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        h
    }

    fn conf(&self) -> String {
        self.dir
            .path()
            .join("softhsm2.conf")
            .to_string_lossy()
            .into()
    }

    fn tool(&self, name: &str) -> Command {
        let mut c = Command::new(name);
        c.env("SOFTHSM2_CONF", self.conf());
        c
    }

    /// The settings of a server whose root keys live in this token.
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SOFTHSM2_CONF", self.conf()),
            ("BV_VAULT_ROOT_KEY_PROVIDER", "pkcs11".into()),
            ("BV_VAULT_PKCS11_MODULE", MODULE.into()),
            ("BV_VAULT_PKCS11_TOKEN", self.token.clone()),
            ("BV_VAULT_PKCS11_PIN", PIN.into()),
        ]
    }

    /// The token's secret keys as OpenSC's `pkcs11-tool` lists them:
    /// (label, access flags).
    pub(crate) fn keys(&self) -> Vec<(String, String)> {
        let out = self
            .tool("pkcs11-tool")
            .args(["--module", MODULE, "--token-label", &self.token])
            .args([
                "--login",
                "--pin",
                PIN,
                "--list-objects",
                "--type",
                "secrkey",
            ])
            .output()
            .expect("pkcs11-tool (make setup installs opensc)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let mut keys = Vec::new();
        let mut label = None;
        for line in text.lines().map(str::trim) {
            if let Some(l) = line.strip_prefix("label:") {
                label = Some(l.trim().to_string());
            } else if let Some(a) = line.strip_prefix("Access:") {
                keys.push((label.take().unwrap_or_default(), a.trim().to_string()));
            }
        }
        keys.sort();
        keys
    }
}

/// The catalog's wrapped keys of one kind (`tenant` or `service`):
/// (owner, version, root_version, wrapped).
async fn key_rows(s: &Server, kind: &str) -> Vec<(String, i64, i64, String)> {
    let mut db = s.raw_db().await;
    sqlx::query(
        "SELECT owner, version, root_version, wrapped FROM vault_keys
         WHERE kind = $1 ORDER BY owner, version",
    )
    .bind(kind)
    .fetch_all(&mut db)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.get::<String, _>(0),
            r.get::<i64, _>(1),
            r.get::<i64, _>(2),
            r.get::<String, _>(3),
        )
    })
    .collect()
}

/// Writes wrapped keys back, as a restored backup of the catalog would
/// (rows that are gone are inserted again).
async fn restore(s: &Server, kind: &str, rows: &[(String, i64, i64, String)]) {
    let mut db = s.raw_db().await;
    for (owner, version, root, wrapped) in rows {
        sqlx::query("DELETE FROM vault_keys WHERE kind = $1 AND owner = $2 AND version = $3")
            .bind(kind)
            .bind(owner.as_str())
            .bind(*version)
            .execute(&mut db)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO vault_keys (kind, owner, version, root_version, wrapped)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(kind)
        .bind(owner.as_str())
        .bind(*version)
        .bind(*root)
        .bind(wrapped.as_str())
        .execute(&mut db)
        .await
        .unwrap();
    }
}

/// `bv admin audit verify`, which unwraps the audit chain's service key:
/// (exit status, stderr).
fn audit_verify(s: &Server) -> (i32, String) {
    let out = s.bv().args(["admin", "audit", "verify"]).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Every file under `dir`, with its bytes.
fn files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

/// A video's bytes as the API serves them: (status, body). A body cut off
/// by the server (a key failing once the answer has started streaming)
/// reads as status 0 and no bytes.
async fn content(s: &Server, video: &str) -> (u16, Vec<u8>) {
    let r = s
        .req(Method::GET, &format!("/v1/videos/{video}/content"), &s.key)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    match r.bytes().await {
        Ok(b) => (status, b.to_vec()),
        Err(_) => (0, Vec::new()),
    }
}

async fn the_root_key_lives_in_the_hsm_and_a_retired_version_opens_nothing(b: Backend) {
    let hsm = Hsm::new();
    let env = hsm.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let s = Server::start_with(b, &env).await;
    assert!(
        !s.dir.path().join("root.key").exists(),
        "no root key file: the key is in the token"
    );
    // The first start made version 1 in the token, and the token says it
    // can never leave: sensitive, never extractable.
    let keys = hsm.keys();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0].0, "bettervideo-root-v1");
    for flag in ["sensitive", "always sensitive", "never extractable"] {
        assert!(keys[0].1.contains(flag), "{flag}: {keys:?}");
    }

    // Uploads and jobs work: a clip probed and enhanced by a worker process
    // using the same token, the result downloaded.
    let clip = s.dir.path().join("tiny.mp4");
    lavfi_clip("testsrc2=s=64x48:r=25:d=0.2", &clip);
    let bytes = std::fs::read(&clip).unwrap();
    let video = upload(&s, "/v1/videos?name=tiny.mp4", bytes.clone()).await;
    run_worker_once(&s);
    s.admin(&["credits", "grant", "--tenant", "default", "1000"], None);
    let job = submitted(
        &s,
        serde_json::json!({"video_id": video, "scale": 2, "idempotency_key": "hsm"}),
    )
    .await;
    run_worker_once(&s);
    let j = poll(
        &s,
        &format!("/v1/jobs/{job}"),
        |j| j["state"] != "queued",
        60,
    )
    .await;
    assert_eq!(j["state"], "succeeded", "{j}");
    let out = j["output_video_id"].as_str().unwrap().to_string();
    let (status, enhanced) = content(&s, &out).await;
    assert_eq!(status, 200);
    assert!(enhanced.len() > 1000);
    assert_eq!(content(&s, &video).await, (200, bytes.clone()));

    // Rotation: version 2 made in the token, the service keys re-wrapped
    // under it, version 1 destroyed there; each tenant's own key in the
    // token renewed the same way (generation 2, generation 1 destroyed).
    // The running server follows.
    let tenant_id = s.json(Method::GET, "/v1/me", &s.key).await["tenant_id"]
        .as_str()
        .unwrap()
        .to_string();
    let tenants = key_rows(&s, "tenant").await;
    assert!(
        !tenants.is_empty() && tenants.iter().all(|r| r.2 == 0),
        "{tenants:?}"
    );
    let before = key_rows(&s, "service").await;
    assert!(
        !before.is_empty() && before.iter().all(|r| r.2 == 1),
        "{before:?}"
    );
    assert_eq!(audit_verify(&s).0, 0);
    let out_rotate = s.bv().args(["keys", "rotate", "--root"]).output().unwrap();
    assert!(
        out_rotate.status.success(),
        "{}",
        String::from_utf8_lossy(&out_rotate.stderr)
    );
    let labels = |h: &Hsm| h.keys().into_iter().map(|k| k.0).collect::<Vec<_>>();
    assert_eq!(
        labels(&hsm),
        [
            format!("bettervideo-root-tenant-{tenant_id}-g2"),
            "bettervideo-root-v2".to_string()
        ],
        "v1 and the tenant's first key are gone from the token"
    );
    let status: Value =
        serde_json::from_slice(&s.bv().args(["keys", "status"]).output().unwrap().stdout).unwrap();
    assert_eq!(status["root_provider"], "pkcs11", "{status}");
    assert_eq!(status["root_versions"], serde_json::json!([2]), "{status}");
    let after = key_rows(&s, "service").await;
    assert!(after.iter().all(|r| r.2 == 2), "{after:?}");
    let tenants_after = key_rows(&s, "tenant").await;
    assert_eq!(tenants_after.len(), tenants.len());
    assert!(
        tenants_after
            .iter()
            .zip(&tenants)
            .all(|(a, b)| a.2 == 0 && a.3 != b.3),
        "every tenant key re-wrapped"
    );
    assert_eq!(content(&s, &video).await, (200, bytes.clone()));
    assert_eq!(content(&s, &out).await, (200, enhanced.clone()));
    assert_eq!(audit_verify(&s).0, 0);

    // The attack: the catalog as a backup from before the rotation had it
    // (a deleted video's keys surviving in PostgreSQL's dead rows or a
    // backup are such a copy). Its keys need root version 1 and the
    // tenant's first key, which no longer exist anywhere: nothing opens.
    restore(&s, "service", &before).await;
    restore(&s, "tenant", &tenants).await;
    let (code, err) = audit_verify(&s);
    assert_ne!(code, 0, "a retired root version opened a backup's key");
    assert!(err.contains("root key version 1"), "{err}");
    let (status, body) = content(&s, &video).await;
    assert_ne!(status, 200, "a retired tenant key opened a backup's key");
    assert_ne!(body, bytes);
    // With the current rows back, everything opens again: nothing was lost.
    restore(&s, "service", &after).await;
    restore(&s, "tenant", &tenants_after).await;
    assert_eq!(audit_verify(&s).0, 0);
    assert_eq!(content(&s, &video).await, (200, bytes.clone()));

    // Erasure destroys the tenant's own key in the token: its wrapped keys,
    // its object record and its blob, all put back as a copy of the disk
    // would have them, open nothing.
    let (acme, acme_key) = s.second_tenant("acme");
    let secret = b"acme's footage, never to be seen again".repeat(100);
    let r = s
        .req(Method::POST, "/v1/videos?name=a.mp4", &acme_key)
        .body(secret.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let acme_video = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut db = s.raw_db().await;
    let object: String = sqlx::query("SELECT object_id FROM video_pieces WHERE video_id = $1")
        .bind(acme_video.as_str())
        .fetch_one(&mut db)
        .await
        .unwrap()
        .get(0);
    let record: String = sqlx::query("SELECT record FROM vault_objects WHERE object = $1")
        .bind(object.as_str())
        .fetch_one(&mut db)
        .await
        .unwrap()
        .get(0);
    let acme_keys: Vec<_> = key_rows(&s, "tenant")
        .await
        .into_iter()
        .filter(|r| r.0 == acme)
        .collect();
    assert!(acme_keys.iter().all(|r| r.2 == 0), "{acme_keys:?}");
    let blobs = files(&s.dir.path().join("blobs"));
    // `bv vault verify` opens every segment (so it needs the object's data
    // key, hence the tenant's key, hence its key in the token) and writes no
    // plaintext anywhere: an operator tool that needs no access grant.
    let verify = || {
        s.bv()
            .args(["vault", "verify", "--tenant", &acme, &object])
            .output()
            .unwrap()
    };
    let before_erasure = verify();
    assert!(
        before_erasure.status.success(),
        "{}",
        String::from_utf8_lossy(&before_erasure.stderr)
    );
    assert!(
        String::from_utf8_lossy(&before_erasure.stdout)
            .contains(&format!("ok: {} bytes", secret.len())),
        "the copy opens before the erasure"
    );
    let receipt: Value =
        serde_json::from_str(&s.admin(&["tenant", "erase", "acme", "--confirm", "acme"], None))
            .unwrap();
    let copies = receipt["receipt"]["copies"].as_str().unwrap_or_default();
    assert!(
        copies.contains("destroyed inside the HSM") && copies.contains("backups"),
        "{receipt}"
    );
    assert!(
        !labels(&hsm).iter().any(|l| l.contains(acme.as_str())),
        "acme's key is gone from the token: {:?}",
        hsm.keys()
    );
    restore(&s, "tenant", &acme_keys).await;
    sqlx::query("INSERT INTO vault_objects (object, tenant, record) VALUES ($1, $2, $3)")
        .bind(object.as_str())
        .bind(acme.as_str())
        .bind(record.as_str())
        .execute(&mut db)
        .await
        .unwrap();
    for (path, bytes) in &blobs {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    let after_erasure = verify();
    let err = String::from_utf8_lossy(&after_erasure.stderr);
    assert!(
        !after_erasure.status.success(),
        "the erased tenant's copy opened"
    );
    assert!(
        err.contains("key-encryption key is not in PKCS#11 token"),
        "{err}"
    );
}
