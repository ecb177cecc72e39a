//! Retention with a shortened clock: originals go when their job succeeds
//! (unless the tenant keeps them), outputs when their retention runs out,
//! failed jobs' inputs after a grace period, abandoned uploads after their
//! lifetime; links die with the object; every deletion is a crypto-shred and
//! is audited; nothing goes early.

use std::process::Stdio;
use std::time::Duration;

use bv_catalog::Backend;
use reqwest::Method;
use serde_json::Value;
use sqlx::Row;

use crate::harness::{Server, shared_data};
use crate::worker::{api_submit, get_json, poll, upload};
use bv_testkit::on_both;

on_both!(backend;
    retention_deletes_what_is_due_audited_and_nothing_early,
    the_server_sweeps_on_its_own,
);

/// A 64x48 H.264 clip.
fn tiny_clip(s: &Server, name: &str) -> Vec<u8> {
    let path = s.dir.path().join(name);
    crate::worker::lavfi_clip("testsrc2=s=64x48:r=25:d=0.2", &path);
    std::fs::read(path).unwrap()
}

/// One `bv worker --once` with `env` on top of the server's settings.
fn work(s: &Server, env: &[(&str, &str)]) -> Vec<Value> {
    let mut c = s.bv();
    c.env("BV_MODEL_DIR", shared_data().join("models"))
        .args(["worker", "--once"])
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Uploads and probes a clip; its id.
async fn ready(s: &Server, name: &str) -> String {
    let v = upload(s, &format!("/v1/videos?name={name}"), tiny_clip(s, name)).await;
    work(s, &[]);
    let got = get_json(s, &format!("/v1/videos/{v}")).await;
    assert_eq!(got["status"], "ready", "{got}");
    assert_eq!(
        got["delete_at"],
        Value::Null,
        "nothing scheduled yet: {got}"
    );
    v
}

/// Submits an x2 job on `video` and runs it with `env`; the job as it ended.
async fn enhance(s: &Server, video: &str, env: &[(&str, &str)]) -> Value {
    let r = api_submit(s, serde_json::json!({"video_id": video, "scale": 2})).await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    work(s, env);
    get_json(s, &format!("/v1/jobs/{id}")).await
}

async fn status(s: &Server, path: &str) -> u16 {
    s.req(Method::GET, path, &s.key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Starts a tus upload of 1000 bytes and sends none; its location and video.
async fn open_upload(s: &Server) -> (String, String) {
    let r = s
        .req(Method::POST, "/v1/uploads", &s.key)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "1000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let header = |h: &str| r.headers()[h].to_str().unwrap().to_string();
    (header("location"), header("bv-video-id"))
}

/// The status of a tus `HEAD` on an upload.
async fn tus_head(s: &Server, location: &str) -> u16 {
    s.req(Method::HEAD, location, &s.key)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn sweep(s: &Server) -> Value {
    serde_json::from_str(s.admin(&["retention", "run"], None).trim()).unwrap()
}

/// Milliseconds from now until an API time (`2026-11-27T04:36:57.796Z`).
fn ms_until(at: &Value) -> i64 {
    let at = at.as_str().unwrap();
    let n = |s: &str| s.parse::<i64>().unwrap();
    let (d, t) = at.trim_end_matches('Z').split_once('T').unwrap();
    let d: Vec<i64> = d.split('-').map(n).collect();
    let (hms, frac) = t.split_once('.').unwrap();
    let t: Vec<i64> = hms.split(':').map(n).collect();
    // Days since 1970 of a civil date (H. Hinnant's algorithm).
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let (era, yoe) = (y.div_euclid(400), y.rem_euclid(400));
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + (153 * m + 2) / 5 + d[2] - 1;
    let days = era * 146_097 + doe - 719_468;
    let ms = (days * 86_400 + t[0] * 3_600 + t[1] * 60 + t[2]) * 1_000 + n(frac);
    assert_eq!(bv_api::time::rfc3339_ms(ms), at, "read back as written");
    ms - bv_catalog::now_ms()
}

/// The vault objects holding a video's pieces that still have a key.
async fn keyed_pieces(s: &Server, objects: &[String]) -> i64 {
    let mut db = s.raw_db().await;
    let mut n = 0;
    for o in objects {
        let r = sqlx::query("SELECT COUNT(*) FROM vault_objects WHERE object = $1")
            .bind(o)
            .fetch_one(&mut db)
            .await
            .unwrap();
        n += r.get::<i64, _>(0);
    }
    n
}

async fn pieces_of(s: &Server, video: &str) -> Vec<String> {
    let mut db = s.raw_db().await;
    sqlx::query("SELECT object_id FROM video_pieces WHERE video_id = $1")
        .bind(video)
        .fetch_all(&mut db)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn retention_deletes_what_is_due_audited_and_nothing_early(b: Backend) {
    let s = Server::start_with(
        b,
        &[
            ("BV_RETENTION_OUTPUT_SECONDS", "20"),
            ("BV_RETENTION_FAILED_INPUT_SECONDS", "20"),
            ("BV_RETENTION_UPLOAD_TTL_SECONDS", "8"),
            ("BV_RETENTION_SWEEP_SECONDS", "3600"),
            ("BV_RETENTION_KEEP_ORIGINALS", "false"),
        ],
    )
    .await;
    s.admin(&["credits", "grant", "--tenant", "default", "100000"], None);

    // A job succeeds: its original is due at once, its output in 20 s.
    let a = ready(&s, "a.mp4").await;
    let a_pieces = pieces_of(&s, &a).await;
    let job = enhance(&s, &a, &[]).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let out = job["output_video_id"].as_str().unwrap().to_string();
    let va = get_json(&s, &format!("/v1/videos/{a}")).await;
    assert_eq!(va["retention"], "original", "{va}");
    assert!(ms_until(&va["delete_at"]) <= 0, "{va}");
    let vo = get_json(&s, &format!("/v1/videos/{out}")).await;
    assert_eq!(vo["retention"], "output", "{vo}");
    let left = ms_until(&vo["delete_at"]);
    assert!((10_000..=20_000).contains(&left), "{vo}");
    let r = s
        .req(Method::POST, &format!("/v1/videos/{out}/links"), &s.key)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let link = r.json::<Value>().await.unwrap()["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(s.http.get(&link).send().await.unwrap().status(), 200);

    // A job fails for good: its input stays 20 s for a retry.
    let b_video = ready(&s, "b.mp4").await;
    let job = enhance(&s, &b_video, &[("BV_ENGINE_MAX_OUTPUT_WIDTH", "100")]).await;
    assert_eq!(job["state"], "failed", "{job}");
    let vb = get_json(&s, &format!("/v1/videos/{b_video}")).await;
    assert_eq!(vb["retention"], "failed_input", "{vb}");
    assert!(ms_until(&vb["delete_at"]) > 10_000, "{vb}");

    // A tenant that keeps originals keeps this one; its output still expires.
    s.admin(
        &[
            "retention",
            "set",
            "--tenant",
            "default",
            "--keep-originals",
            "true",
        ],
        None,
    );
    let d = ready(&s, "d.mp4").await;
    let job = enhance(&s, &d, &[]).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let out_d = job["output_video_id"].as_str().unwrap().to_string();
    assert_eq!(
        get_json(&s, &format!("/v1/videos/{d}")).await["delete_at"],
        Value::Null
    );

    // An upload that never finishes.
    let (tus, c) = open_upload(&s).await;

    // Now only the original is due: nothing else goes early.
    let swept = sweep(&s);
    assert_eq!(swept["expired"], 1, "{swept}");
    assert_eq!(swept["abandoned"], 0, "{swept}");
    assert_eq!(status(&s, &format!("/v1/videos/{a}")).await, 404);
    assert!(!a_pieces.is_empty());
    assert_eq!(keyed_pieces(&s, &a_pieces).await, 0, "crypto-shredded");
    for v in [&out, &b_video, &d, &out_d] {
        assert_eq!(status(&s, &format!("/v1/videos/{v}")).await, 200, "{v}");
    }
    assert_eq!(tus_head(&s, &tus).await, 200, "the upload is still open");

    // Past every deadline: the output (and its link), the failed input and
    // the abandoned upload go; the kept original stays.
    let out_pieces = pieces_of(&s, &out).await;
    let mut wait = 0;
    for v in [&out_d, &b_video] {
        let got = get_json(&s, &format!("/v1/videos/{v}")).await;
        wait = wait.max(ms_until(&got["delete_at"]));
    }
    tokio::time::sleep(Duration::from_millis(wait.max(0) as u64 + 500)).await;
    let swept = sweep(&s);
    assert_eq!(swept["expired"], 3, "{swept}");
    assert_eq!(swept["abandoned"], 1, "{swept}");
    for v in [&out, &b_video, &out_d] {
        assert_eq!(status(&s, &format!("/v1/videos/{v}")).await, 404, "{v}");
    }
    assert_eq!(keyed_pieces(&s, &out_pieces).await, 0, "crypto-shredded");
    assert_eq!(status(&s, &format!("/v1/videos/{d}")).await, 200);
    let dead = s.http.get(&link).send().await.unwrap();
    assert_eq!(dead.status(), 403, "the link died");
    let body: Value = dead.json().await.unwrap();
    assert_eq!(body["error"]["code"], "link_invalid", "{body}");
    assert_eq!(
        tus_head(&s, &tus).await,
        404,
        "the abandoned upload is gone"
    );

    // Each deletion is in the tenant's audit log with its rule; the chain holds.
    let log = get_json(&s, "/v1/audit?limit=1000").await;
    let mut rules: Vec<(String, String)> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "video.expired")
        .map(|e| {
            (
                e["target"].as_str().unwrap().to_string(),
                e["detail"]["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    rules.sort();
    let mut want = vec![
        (format!("video:{a}"), "original".to_string()),
        (format!("video:{out}"), "output".to_string()),
        (format!("video:{b_video}"), "failed_input".to_string()),
        (format!("video:{out_d}"), "output".to_string()),
        (format!("video:{c}"), "abandoned_upload".to_string()),
    ];
    want.sort();
    assert_eq!(rules, want);
    s.admin(&["audit", "verify"], None);
}

async fn the_server_sweeps_on_its_own(b: Backend) {
    let s = Server::start_with(
        b,
        &[
            ("BV_RETENTION_UPLOAD_TTL_SECONDS", "1"),
            ("BV_RETENTION_SWEEP_SECONDS", "1"),
        ],
    )
    .await;
    let (_, video) = open_upload(&s).await;
    let log = poll(
        &s,
        "/v1/audit?limit=1000",
        |l| {
            l["entries"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["action"] == "video.expired")
        },
        30,
    )
    .await;
    let e = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "video.expired")
        .unwrap()
        .clone();
    assert_eq!(e["target"], format!("video:{video}"), "{e}");
    assert_eq!(e["detail"]["rule"], "abandoned_upload", "{e}");
    assert_eq!(e["actor"], "system:retention", "{e}");
}
