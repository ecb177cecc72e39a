//! Customer-held keys: a tenant that holds its own key gets objects nobody
//! at the service can open without it (not the API, not an operator with a
//! grant, not the vault's commands), and with it upload → job → download
//! works, the job holding the key only for its life.

use std::time::{Duration, Instant};

use base64::Engine;
use bv_catalog::Backend;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Row;

use crate::harness::{Server, files_containing, shared_data};
use bv_testkit::on_both;

on_both!(backend; a_tenant_held_key_is_needed_to_open_anything_and_suffices_for_a_job);

const HEADER: &str = "x-bv-customer-key";

async fn code(r: reqwest::Response) -> (u16, String) {
    let s = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or_default();
    (
        s,
        v["error"]["code"].as_str().unwrap_or_default().to_string(),
    )
}

async fn poll(s: &Server, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let v: Value = s
            .req(Method::GET, path, &s.key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out: {v}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn a_tenant_held_key_is_needed_to_open_anything_and_suffices_for_a_job(b: Backend) {
    let models = shared_data().join("models");
    let s = Server::start_with(
        b,
        &[
            ("BV_WORKER_IN_PROCESS", "1"),
            ("BV_MODEL_DIR", models.to_str().unwrap()),
        ],
    )
    .await;
    s.admin(&["credits", "grant", "--tenant", "default", "100000"], None);
    let raw: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11));
    let key = base64::engine::general_purpose::STANDARD.encode(raw);
    let wrong = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);

    // Take custody: the key must come with the request.
    let set = |h: Option<&str>, holder: &str| {
        let mut r = s
            .req(Method::PUT, "/v1/encryption", &s.key)
            .json(&json!({ "key_holder": holder }));
        if let Some(h) = h {
            r = r.header(HEADER, h);
        }
        r.send()
    };
    assert_eq!(
        code(set(None, "tenant").await.unwrap()).await,
        (400, "customer_key_required".into())
    );
    assert_eq!(set(Some(&key), "tenant").await.unwrap().status(), 200);

    // Upload: refused without the key, sealed with it; the probe job ran with it.
    let clip = s.dir.path().join("clip.mp4");
    let st = std::process::Command::new("ffmpeg")
        .args([
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=96x64:r=10:d=1",
        ])
        .args(["-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(st.success());
    let body = std::fs::read(&clip).unwrap();
    let up = |h: Option<&str>| {
        let mut r = s
            .req(Method::POST, "/v1/videos?name=held.mp4", &s.key)
            .body(body.clone());
        if let Some(h) = h {
            r = r.header(HEADER, h);
        }
        r.send()
    };
    assert_eq!(
        code(up(None).await.unwrap()).await,
        (400, "customer_key_required".into())
    );
    assert_eq!(
        code(up(Some(&wrong)).await.unwrap()).await,
        (403, "customer_key_mismatch".into())
    );
    let r = up(Some(&key)).await.unwrap();
    assert_eq!(r.status(), 201);
    let video = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let v = poll(&s, &format!("/v1/videos/{video}"), |v| {
        v["media"]["width"].is_number() || v["status"] == "rejected"
    })
    .await;
    assert_eq!(
        v["media"]["width"], 96,
        "the probe opened the upload with the tenant's key: {v}"
    );

    // The API opens nothing without it, the right bytes with it.
    let get = |path: String, h: Option<&str>| {
        let mut r = s.req(Method::GET, &path, &s.key);
        if let Some(h) = h {
            r = r.header(HEADER, h);
        }
        r.send()
    };
    let content = format!("/v1/videos/{video}/content");
    assert_eq!(
        code(get(content.clone(), None).await.unwrap()).await,
        (400, "customer_key_required".into())
    );
    assert_eq!(
        code(get(content.clone(), Some(&wrong)).await.unwrap()).await,
        (403, "customer_key_mismatch".into())
    );
    let got = get(content.clone(), Some(&key))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.as_ref(), body.as_slice());
    let link: Value = s
        .req(Method::POST, &format!("/v1/videos/{video}/links"), &s.key)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = link["url"].as_str().unwrap().to_string();
    let anon = |h: Option<&str>| {
        let mut r = s.http.get(&url);
        if let Some(h) = h {
            r = r.header(HEADER, h);
        }
        r.send()
    };
    assert_eq!(
        code(anon(None).await.unwrap()).await,
        (400, "customer_key_required".into())
    );
    assert_eq!(
        anon(Some(&key))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        body.as_slice()
    );

    // An operator with a grant in effect still cannot open it, nor can the vault's commands.
    s.admin(
        &[
            "operator",
            "add",
            "erin",
            "--employer",
            "BV",
            "--location",
            "Oslo, NO",
        ],
        None,
    );
    let op = |args: &[&str]| s.bv().env("SUDO_USER", "erin").args(args).output().unwrap();
    let o = op(&[
        "admin",
        "access",
        "request",
        "--tenant",
        "default",
        "--video",
        &video,
        "--reason",
        "custody test",
        "--ticket",
        "T-2",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = op(&[
        "admin", "access", "open", "--tenant", "default", "--video", &video,
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("customer_key_required"),
        "{err}"
    );
    assert!(o.stdout.is_empty(), "not a byte without the tenant's key");
    assert_eq!(o.status.code(), Some(10));
    let mut db = s.raw_db().await;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT v.tenant_id, p.object_id FROM video_pieces p JOIN videos v ON v.id = p.video_id WHERE v.id = '{video}'"
    )))
    .fetch_one(&mut db)
    .await
    .unwrap();
    let (tenant, object): (String, String) = (row.get(0), row.get(1));
    let o = op(&["vault", "verify", "--tenant", &tenant, &object]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("customer_key_required"),
        "{err}"
    );

    // A job needs the key at submission, holds it while it runs, and drops it.
    let submit = |h: Option<&str>| {
        let mut r = s
            .req(Method::POST, "/v1/jobs", &s.key)
            .json(&json!({"video_id": video, "scale": 2}));
        if let Some(h) = h {
            r = r.header(HEADER, h);
        }
        r.send()
    };
    assert_eq!(
        code(submit(None).await.unwrap()).await,
        (400, "customer_key_required".into())
    );
    let r = submit(Some(&key)).await.unwrap();
    assert_eq!(r.status(), 201);
    let job = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let j = poll(&s, &format!("/v1/jobs/{job}"), |j| {
        ["succeeded", "failed", "cancelled"].contains(&j["state"].as_str().unwrap_or_default())
    })
    .await;
    assert_eq!(j["state"], "succeeded", "{j}");
    let custody: Option<String> = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT custody FROM jobs WHERE id = '{job}'"
    )))
    .fetch_one(&mut db)
    .await
    .unwrap()
    .get(0);
    assert_eq!(custody, None, "the job let go of the key when it ended");
    let out = j["output_video_id"].as_str().unwrap();
    let out_content = format!("/v1/videos/{out}/content");
    assert_eq!(
        code(get(out_content.clone(), None).await.unwrap()).await,
        (400, "customer_key_required".into())
    );
    let result = get(out_content, Some(&key))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let file = s.dir.path().join("result.mp4");
    std::fs::write(&file, &result).unwrap();
    let probe = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&probe.stdout).trim(), "192,128");
    std::fs::remove_file(&file).unwrap();
    std::fs::remove_file(&clip).unwrap();

    // The security report says who holds the keys.
    let r: Value = s
        .req(Method::GET, "/v1/security-report", &s.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["at_rest"]["tenants"]["keys_held_by_the_tenant"], 1);
    // Two jobs finished (the probe and the enhancement), each torn down clean.
    assert_eq!(r["intermediate_files"]["jobs_finished_last_30_days"], 2);
    assert_eq!(r["intermediate_files"]["teardown_failures_last_30_days"], 0);
    assert!(
        r["your_tenant"]["key_holder"]
            .as_str()
            .unwrap()
            .starts_with("the tenant")
    );

    // Custody cannot flip while videos are stored; the key is nowhere on disk.
    assert_eq!(
        code(set(None, "service").await.unwrap()).await,
        (409, "conflict".into())
    );
    assert!(files_containing(s.dir.path(), &raw).is_empty());
    assert!(files_containing(s.dir.path(), key.as_bytes()).is_empty());
}
