//! The worker against a real catalog and vault: a real video enhanced in a
//! sandbox from sealed input to sealed output and charged once; a tampered
//! job row refused with nothing run.

use std::path::PathBuf;
use std::process::Stdio;

use bv_catalog::{Backend, Catalog, JobState};
use reqwest::Method;
use serde_json::Value;

use crate::harness::{Server, shared_data};
use bv_testkit::on_both;

on_both!(backend;
    a_job_runs_sealed_in_sealed_out_and_a_tampered_row_is_refused,
    upload_enhance_download_over_https_with_the_in_process_worker,
    bv_submit_does_it_all_with_live_progress,
    fifty_concurrent_submits_over_https_accept_exactly_ten,
    webhooks_verify_independently_fail_when_tampered_and_survive_rotation,
    twenty_jobs_on_two_workers_all_complete,
    the_quote_is_the_price_reserved_and_unknown_models_are_refused,
    a_raw_h264_stream_is_priced_and_charged_for_every_frame,
    a_container_that_understates_its_frames_is_priced_for_what_plays,
    a_damaged_inputs_error_shows_no_pointer_or_jail_path,
);

/// A 64×48 H.264 clip, uploaded and probed (ready to enhance); its video id.
async fn probed_tiny_clip(s: &Server) -> String {
    let clip = s.dir.path().join("tiny.mp4");
    lavfi_clip("testsrc2=s=64x48:r=25:d=0.2", &clip);
    let video = upload(s, "/v1/videos?name=tiny.mp4", std::fs::read(&clip).unwrap()).await;
    run_worker_once(s);
    video
}

pub(crate) async fn get_json(s: &Server, path: &str) -> Value {
    let r = s.req(Method::GET, path, &s.key).send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

async fn the_quote_is_the_price_reserved_and_unknown_models_are_refused(b: Backend) {
    let s = Server::start(b).await;
    let video = probed_tiny_clip(&s).await;
    let models = get_json(&s, "/v1/models").await;
    let anime = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "realesr-animevideov3")
        .unwrap();
    assert_eq!(anime["scales"], serde_json::json!([2, 3, 4]));
    let quote = format!("/v1/jobs/quote?video_id={video}&scale=3");
    let q = get_json(&s, &quote).await;
    assert_eq!(
        (q["available"].as_i64(), q["enough"].as_bool()),
        (Some(0), Some(false))
    );
    assert_eq!(
        (q["output_width"].as_i64(), q["output_height"].as_i64()),
        (Some(192), Some(144))
    );
    s.admin(&["credits", "grant", "--tenant", "default", "100000"], None);
    let q = get_json(&s, &quote).await;
    assert_eq!(q["enough"], true, "{q}");
    for (body, code) in [
        (
            serde_json::json!({"video_id": video, "model": "no-such-model"}),
            "unknown_model",
        ),
        (
            serde_json::json!({"video_id": video, "scale": 5}),
            "invalid_request",
        ),
        (
            serde_json::json!({"video_id": video, "preset": "cinematic"}),
            "unknown_preset",
        ),
        (
            serde_json::json!({"video_id": video, "preset": "anime", "scale": 4}),
            "invalid_request",
        ),
    ] {
        let r = api_submit(&s, body).await;
        assert_eq!(r.status(), 400);
        assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], code);
    }
    let r = api_submit(&s, serde_json::json!({"video_id": video, "scale": 3})).await;
    let job: Value = r.json().await.unwrap();
    assert_eq!(job["price"], q["price"], "the quote is what is reserved");
    assert_eq!(get_json(&s, "/v1/credits").await["reserved"], q["price"]);
    // A preset names model, scale and codec; the job records which.
    let models = get_json(&s, "/v1/models").await;
    let strong = models["presets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "denoise-strong")
        .unwrap()
        .clone();
    let r = api_submit(
        &s,
        serde_json::json!({"video_id": video, "preset": "denoise-strong", "codec": "hevc"}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let p = &r.json::<Value>().await.unwrap()["preset"];
    assert_eq!(p["preset"], "denoise-strong");
    assert_eq!(p["model"], strong["model"]);
    assert_eq!(p["scale"], strong["scale"]);
    assert_eq!(p["codec"], "hevc", "codec overrides the preset's");
}

/// The outside review's "free compute": a raw H.264 stream has no container,
/// so no frame count and no duration; it was priced as one frame and then
/// enhanced in full. The probe now counts its frames, the price is for all
/// of them, the runner is told to stop there, and the charge is for the
/// frames done.
async fn a_raw_h264_stream_is_priced_and_charged_for_every_frame(b: Backend) {
    let s = Server::start_with(b, &[("BV_BILLING_PRICE_PER_MEGAPIXEL_FRAME", "100")]).await;
    let raw = s.dir.path().join("clip.h264");
    lavfi_as("testsrc2=s=64x48:r=25:d=1.2", &["-f", "h264"], &raw);
    let video = upload(
        &s,
        "/v1/videos?name=clip.h264",
        std::fs::read(&raw).unwrap(),
    )
    .await;
    run_worker_once(&s);
    let v = get_json(&s, &format!("/v1/videos/{video}")).await;
    assert_eq!(v["status"], "ready", "{v}");
    assert_eq!(v["media"]["frames"], 30, "every frame counted: {v}");
    // x2: 128×96 output, 30 frames, 100 credits per megapixel-frame.
    let want = (128.0 * 96.0 / 1e6 * 30.0 * 100.0_f64).ceil() as i64;
    let q = get_json(&s, &format!("/v1/jobs/quote?video_id={video}&scale=2")).await;
    assert_eq!(q["price"], want, "{q}");
    s.admin(&["credits", "grant", "--tenant", "default", "1000"], None);
    let r = api_submit(&s, serde_json::json!({"video_id": video, "scale": 2})).await;
    assert_eq!(r.status(), 201);
    let job: Value = r.json().await.unwrap();
    assert_eq!(job["price"], want);
    run_worker_once(&s);
    let j = get_json(&s, &format!("/v1/jobs/{}", job["id"].as_str().unwrap())).await;
    assert_eq!(j["state"], "succeeded", "{j}");
    assert_eq!(j["frames_done"], 30);
    let c = get_json(&s, "/v1/credits").await;
    assert_eq!(c["available"], 1000 - want, "{c}");
    assert_eq!(captured(&s).await, want);
}

/// The second review's variant: an MP4 whose edit list plays its 4 stored
/// frames 25 times says `nb_frames = 4`. The probe counts what the demuxer
/// yields instead, the price is for that, and the charge is for the frames
/// the job really did.
async fn a_container_that_understates_its_frames_is_priced_for_what_plays(b: Backend) {
    let s = Server::start_with(b, &[("BV_BILLING_PRICE_PER_MEGAPIXEL_FRAME", "100")]).await;
    let base = s.dir.path().join("base.mp4");
    lavfi_clip("testsrc2=s=64x48:r=2:d=2", &base);
    let looped = s.dir.path().join("looped.mp4");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/loop_edit_list.py");
    let st = std::process::Command::new("python3")
        .arg(script)
        .arg("25")
        .args([&base, &looped])
        .status()
        .unwrap();
    assert!(st.success());
    let said = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=nb_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(&looped)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&said.stdout).trim(),
        "4",
        "the container says 4"
    );
    let video = upload(
        &s,
        "/v1/videos?name=looped.mp4",
        std::fs::read(&looped).unwrap(),
    )
    .await;
    run_worker_once(&s);
    let v = get_json(&s, &format!("/v1/videos/{video}")).await;
    let counted = v["media"]["frames"].as_i64().unwrap();
    assert!(
        counted >= 50,
        "priced for what plays, not the 4 stored: {v}"
    );
    let want = (128.0 * 96.0 / 1e6 * counted as f64 * 100.0).ceil() as i64;
    let q = get_json(&s, &format!("/v1/jobs/quote?video_id={video}&scale=2")).await;
    assert_eq!(q["price"], want, "{q}");
    s.admin(&["credits", "grant", "--tenant", "default", "10000"], None);
    let r = api_submit(&s, serde_json::json!({"video_id": video, "scale": 2})).await;
    let job: Value = r.json().await.unwrap();
    run_worker_once(&s);
    let j = get_json(&s, &format!("/v1/jobs/{}", job["id"].as_str().unwrap())).await;
    assert_eq!(j["state"], "succeeded", "{j}");
    let done = j["frames_done"].as_i64().unwrap();
    assert!(done > 4 && done <= counted, "{done} of {counted}");
    assert_eq!(
        captured(&s).await,
        bv_service::jobs::settle(want, Some(counted), done as u64)
    );
}

/// The outside review's leak: a job's error carried FFmpeg's stderr with a
/// heap address (`[h264 @ 0x5621b2401e80]`) and paths inside the jail. The
/// tenant now sees the code and a short message without either.
async fn a_damaged_inputs_error_shows_no_pointer_or_jail_path(b: Backend) {
    let s = Server::start(b).await;
    let clip = s.dir.path().join("clip.mp4");
    lavfi_as(
        "testsrc2=s=64x48:r=25:d=2",
        &["-movflags", "+faststart"],
        &clip,
    );
    let mut bytes = std::fs::read(&clip).unwrap();
    let n = bytes.len();
    for b in &mut bytes[n / 2..(n / 2 + 600).min(n)] {
        *b = b.wrapping_mul(7).wrapping_add(13);
    }
    let video = upload(&s, "/v1/videos?name=damaged.mp4", bytes).await;
    run_worker_once(&s);
    let v = get_json(&s, &format!("/v1/videos/{video}")).await;
    // The damage is found by the probe or by the job's decoder, whichever
    // reads it first; either way the message shown is clean.
    let shown = if v["status"] == "rejected" {
        v["rejected"].as_str().unwrap().to_string()
    } else {
        s.admin(&["credits", "grant", "--tenant", "default", "1000"], None);
        let r = api_submit(&s, serde_json::json!({"video_id": video, "scale": 2})).await;
        let job: Value = r.json().await.unwrap();
        let id = job["id"].as_str().unwrap().to_string();
        run_worker_once(&s);
        let j = get_json(&s, &format!("/v1/jobs/{id}")).await;
        assert_eq!(j["state"], "failed", "{j}");
        j["error"].as_str().unwrap().to_string()
    };
    assert!(shown.starts_with("input_"), "{shown}");
    assert!(!shown.contains("0x") && !shown.contains(" @ "), "{shown}");
    for inner in ["/scratch", "/in/", "/out/", "/models/"] {
        assert!(!shown.contains(inner), "{shown}");
    }
}

async fn twenty_jobs_on_two_workers_all_complete(b: Backend) {
    let s = Server::start(b).await;
    let video = probed_tiny_clip(&s).await;
    s.admin(&["credits", "grant", "--tenant", "default", "100000"], None);
    let mut jobs = Vec::new();
    for _ in 0..20 {
        let r = api_submit(&s, serde_json::json!({"video_id": video, "scale": 2})).await;
        jobs.push(
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let spawn = || {
        s.bv()
            .env("BV_MODEL_DIR", shared_data().join("models"))
            .args(["worker", "--once"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let (a, b2) = (spawn(), spawn());
    let (oa, ob) = (
        a.wait_with_output().unwrap(),
        b2.wait_with_output().unwrap(),
    );
    // One line per attempt. A transient failure (retried) is allowed and
    // shown; a job that succeeded twice, or never, is not.
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&oa.stdout),
        String::from_utf8_lossy(&ob.stdout)
    );
    let attempts: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for a in attempts.iter().filter(|a| a["ended"] != "Succeeded") {
        eprintln!("an attempt that did not succeed (retried): {a}");
    }
    for j in &jobs {
        let ok = attempts
            .iter()
            .filter(|a| a["job"] == j.as_str() && a["ended"] == "Succeeded")
            .count();
        assert_eq!(ok, 1, "job {j} succeeded {ok} times: {out}");
    }
    for j in jobs {
        let v: Value = s
            .req(Method::GET, &format!("/v1/jobs/{j}"), &s.key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["state"], "succeeded", "{v}");
    }
    let credits: Value = s
        .req(Method::GET, "/v1/credits", &s.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(credits["reserved"], 0);
}

/// Uploads `body` in one request (`path` is `/v1/videos?name=…`); returns the video id.
pub(crate) async fn upload(s: &Server, path: &str, body: impl Into<reqwest::Body>) -> String {
    let r = s
        .req(Method::POST, path, &s.key)
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

/// An H.264 clip from an FFmpeg test source.
pub(crate) fn lavfi_clip(source: &str, out: &std::path::Path) {
    lavfi_as(source, &[], out);
}

/// An H.264 clip from an FFmpeg test source, with `extra` output options
/// (`-f h264` for a raw stream).
pub(crate) fn lavfi_as(source: &str, extra: &[&str], out: &std::path::Path) {
    let st = std::process::Command::new("ffmpeg")
        .args([
            "-v", "error", "-f", "lavfi", "-i", source, "-c:v", "libx264",
        ])
        .args(extra)
        .arg("-y")
        .arg(out)
        .status()
        .unwrap();
    assert!(st.success());
}

/// Credits captured from the tenant's ledger, all told.
async fn captured(s: &Server) -> i64 {
    get_json(s, "/v1/credits").await["ledger"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "capture")
        .map(|e| e["amount"].as_i64().unwrap())
        .sum()
}

/// The lines the Python receiver wrote so far.
fn received(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn wait_for_event(path: &std::path::Path, n: usize) -> Vec<Value> {
    let t0 = std::time::Instant::now();
    loop {
        let got = received(path);
        if got.len() >= n {
            return got;
        }
        assert!(t0.elapsed().as_secs() < 120, "no webhook arrived: {got:?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

async fn webhooks_verify_independently_fail_when_tampered_and_survive_rotation(b: Backend) {
    let models = shared_data().join("models");
    let s = Server::start_with(
        b,
        &[
            ("BV_WORKER_IN_PROCESS", "1"),
            ("BV_MODEL_DIR", models.to_str().unwrap()),
            ("BV_SERVE_WEBHOOK_ALLOW_HTTP", "true"),
            ("BV_SERVE_WEBHOOK_ALLOW_PRIVATE", "true"),
        ],
    )
    .await;
    let port = crate::harness::free_port();
    let hook = format!("http://127.0.0.1:{port}/hook");
    let r = s
        .req(Method::PUT, "/v1/webhook", &s.key)
        .json(&serde_json::json!({"url": hook}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let secret = r.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(secret.starts_with("whsec_"));
    let r = s
        .req(Method::PUT, "/v1/webhook", &s.key)
        .json(&serde_json::json!({"url": "ftp://x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let out = s.dir.path().join("received.jsonl");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/webhooks/receiver.py");
    let mut receiver = std::process::Command::new("python3")
        .arg(&script)
        .args([&port.to_string(), &secret])
        .arg(&out)
        .spawn()
        .unwrap();
    let sample = std::fs::read(shared_data().join("samples/carphone_pristine.mp4")).unwrap();
    let video = upload(&s, "/v1/videos?name=c.mp4", sample).await;
    poll(
        &s,
        &format!("/v1/videos/{video}"),
        |v| v["status"] == "ready",
        60,
    )
    .await;
    s.admin(&["credits", "grant", "--tenant", "default", "100000"], None);
    let r = api_submit(&s, serde_json::json!({"video_id": video, "scale": 2})).await;
    let job = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let got = wait_for_event(&out, 1).await;
    assert_eq!(got[0]["ok"], true, "Python verified the signature: {got:?}");
    let body: Value = serde_json::from_str(got[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        (body["type"].as_str(), body["data"]["job"]["id"].as_str()),
        (Some("job.succeeded"), Some(job.as_str()))
    );
    assert!(
        !got[0]["body"].as_str().unwrap().contains("http"),
        "no links in events"
    );
    // The same signature on an altered body: refused by the independent verifier.
    let tampered = got[0]["body"]
        .as_str()
        .unwrap()
        .replace("succeeded", "failed");
    let r = reqwest::Client::new()
        .post(&hook)
        .header("BV-Signature", got[0]["signature"].as_str().unwrap())
        .body(tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Rotation: events carry a signature with the new secret and one with the old, so a
    // receiver still holding the old secret keeps verifying while it switches.
    let r = s
        .req(Method::POST, "/v1/webhook/rotate", &s.key)
        .send()
        .await
        .unwrap();
    let new_secret = r.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new_secret, secret);
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let r = api_submit(&s, serde_json::json!({"video_id": video, "scale": 3})).await;
    assert_eq!(r.status(), 201);
    let got = wait_for_event(&out, 3).await;
    let last = &got[2];
    assert_eq!(last["ok"], true, "{got:?}");
    assert_eq!(
        last["signature"].as_str().unwrap().matches("v1=").count(),
        2,
        "{last}"
    );
    receiver.kill().unwrap();
    receiver.wait().unwrap();
}

async fn fifty_concurrent_submits_over_https_accept_exactly_ten(b: Backend) {
    let s = Server::start(b).await;
    let sample = std::fs::read(shared_data().join("samples/carphone_pristine.mp4")).unwrap();
    let video = upload(&s, "/v1/videos?name=c.mp4", sample).await;
    run_worker_once(&s);
    // The 402 says what one job needs.
    let r = api_submit(&s, serde_json::json!({"video_id": video, "scale": 2})).await;
    assert_eq!(r.status(), 402);
    let msg = r.json::<Value>().await.unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    let price: i64 = msg
        .split_whitespace()
        .rev()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    s.admin(
        &[
            "credits",
            "grant",
            "--tenant",
            "default",
            &(10 * price).to_string(),
        ],
        None,
    );
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let req = s
            .req(Method::POST, "/v1/jobs", &s.key)
            .json(&serde_json::json!({"video_id": video, "scale": 2}));
        tasks.push(tokio::spawn(async move {
            req.send().await.unwrap().status().as_u16()
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    assert_eq!(codes.iter().filter(|c| **c == 201).count(), 10, "{codes:?}");
    assert!(codes.iter().all(|c| *c == 201 || *c == 402), "{codes:?}");
    let credits: Value = s
        .req(Method::GET, "/v1/credits", &s.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (credits["available"].as_i64(), credits["reserved"].as_i64()),
        (Some(0), Some(10 * price))
    );
}

async fn bv_submit_does_it_all_with_live_progress(b: Backend) {
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
    let home = tempfile::tempdir().unwrap();
    let client = || crate::harness::client(home.path());
    let mut login = client()
        .args(["login", &s.url, "--ca"])
        .arg(s.dir.path().join("tls/ca.pem"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        writeln!(login.stdin.take().unwrap(), "{}", s.key).unwrap();
    }
    assert!(login.wait().unwrap().success());
    let out = home.path().join("carphone-x2.mp4");
    let r = client()
        .arg("submit")
        .arg(shared_data().join("samples/carphone_pristine.mp4"))
        .arg("-o")
        .arg(&out)
        .args(["--scale", "2"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{err}");
    assert!(err.contains("credits reserved"), "{err}");
    let p = probe(&out);
    assert_eq!(
        (p["width"].as_u64(), p["height"].as_u64()),
        (Some(352), Some(288))
    );
    // The events stream ends with the finished job.
    let jobs: Value = s
        .req(Method::GET, "/v1/jobs?state=succeeded", &s.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let job = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["kind"] == "enhance")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let text = s
        .req(Method::GET, &format!("/v1/jobs/{job}/events"), &s.key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("event: end") && text.contains("\"state\":\"succeeded\""),
        "{text}"
    );
}

pub(crate) async fn poll(
    s: &Server,
    path: &str,
    done: impl Fn(&Value) -> bool,
    secs: u64,
) -> Value {
    let t0 = std::time::Instant::now();
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
        assert!(
            t0.elapsed().as_secs() < secs,
            "gave up waiting on {path}: {v}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

pub(crate) fn streams(file: &std::path::Path) -> Vec<String> {
    let o = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

async fn upload_enhance_download_over_https_with_the_in_process_worker(b: Backend) {
    let models = shared_data().join("models");
    let s = Server::start_with(
        b,
        &[
            ("BV_WORKER_IN_PROCESS", "1"),
            ("BV_MODEL_DIR", models.to_str().unwrap()),
        ],
    )
    .await;
    // Big Buck Bunny, 1280x720 H.264 + AAC, cut to its first fifth of a second.
    let clip = s.dir.path().join("bbb.mp4");
    let st = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(shared_data().join("samples/bigbuckbunny.mp4"))
        .args([
            "-t",
            "0.2",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
            "-y",
        ])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(st.success());
    let data = std::fs::read(&clip).unwrap();
    let r = s
        .req(Method::POST, "/v1/uploads", &s.key)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", data.len().to_string())
        .header("upload-metadata", "filename YmJiLm1wNA==")
        .header("content-type", "application/offset+octet-stream")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let video = r.headers()["bv-video-id"].to_str().unwrap().to_string();
    let v = poll(
        &s,
        &format!("/v1/videos/{video}"),
        |v| v["status"] != "probing",
        60,
    )
    .await;
    assert_eq!(v["status"], "ready", "{v}");
    s.admin(&["credits", "grant", "--tenant", "default", "100000"], None);
    let job = submitted(
        &s,
        serde_json::json!({"video_id": video, "scale": 2, "idempotency_key": "bbb-x2"}),
    )
    .await;
    let j = poll(
        &s,
        &format!("/v1/jobs/{job}"),
        |j| ["succeeded", "failed", "cancelled"].contains(&j["state"].as_str().unwrap()),
        300,
    )
    .await;
    assert_eq!(j["state"], "succeeded", "{j}");
    assert!(j["frames_total"].as_i64().is_some_and(|t| t > 0), "{j}");
    let out = j["output_video_id"].as_str().unwrap();
    // The output is described without a second probe: ready, with its own size.
    let ov = get_json(&s, &format!("/v1/videos/{out}")).await;
    assert_eq!(ov["status"], "ready", "{ov}");
    assert_eq!(
        (
            ov["media"]["width"].as_u64(),
            ov["media"]["height"].as_u64()
        ),
        (Some(2560), Some(1440))
    );
    assert_eq!(ov["media"]["frames"], v["media"]["frames"], "{ov}");
    let bytes = s
        .req(Method::GET, &format!("/v1/videos/{out}/content"), &s.key)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let result = s.dir.path().join("bbb-x2.mp4");
    std::fs::write(&result, &bytes).unwrap();
    let (pout, pin) = (probe(&result), probe(&clip));
    assert_eq!(
        (pout["width"].as_u64(), pout["height"].as_u64()),
        (Some(2560), Some(1440))
    );
    assert_eq!(pout["nb_read_frames"], pin["nb_read_frames"], "every frame");
    assert_eq!(
        streams(&result),
        streams(&clip),
        "every stream (the audio too)"
    );
    // The same idempotency key does not submit (or charge) twice.
    let r = api_submit(
        &s,
        serde_json::json!({"video_id": video, "scale": 2, "idempotency_key": "bbb-x2"}),
    )
    .await;
    assert_eq!(r.json::<Value>().await.unwrap()["id"], job.as_str());
}

pub(crate) fn run_worker_once(s: &Server) -> Vec<Value> {
    let out = s
        .bv()
        .env("BV_MODEL_DIR", shared_data().join("models"))
        .args(["worker", "--once"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn probe(file: &std::path::Path) -> Value {
    let o = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
        ])
        .args(["stream=width,height,nb_read_frames", "-of", "json"])
        .arg(file)
        .output()
        .unwrap();
    serde_json::from_slice::<Value>(&o.stdout).unwrap()["streams"][0].clone()
}

/// `POST /v1/jobs` that must make a new job: its id.
pub(crate) async fn submitted(s: &Server, body: Value) -> String {
    let r = api_submit(s, body).await;
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

pub(crate) async fn api_submit(s: &Server, body: Value) -> reqwest::Response {
    s.req(Method::POST, "/v1/jobs", &s.key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn a_job_runs_sealed_in_sealed_out_and_a_tampered_row_is_refused(b: Backend) {
    let s = Server::start(b).await;
    let sample = std::fs::read(shared_data().join("samples/carphone_pristine.mp4")).unwrap();
    let r = s
        .req(Method::POST, "/v1/videos?name=carphone.mp4", &s.key)
        .body(sample.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    let input = v["id"].as_str().unwrap().to_string();
    assert_eq!(v["status"], "probing");
    let me: Value = s
        .req(Method::GET, "/v1/me", &s.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tenant = me["tenant_id"].as_str().unwrap();
    // Not probed yet: no price, no job.
    let r = api_submit(&s, serde_json::json!({"video_id": input, "scale": 2})).await;
    assert_eq!(r.status(), 409);
    // The probe runs in a sandbox like any job.
    let ran = run_worker_once(&s);
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert_eq!(ran[0]["ended"], "Succeeded", "{ran:?}");
    let v: Value = s
        .req(Method::GET, &format!("/v1/videos/{input}"), &s.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "ready", "{v}");
    assert_eq!(
        (v["media"]["width"].as_u64(), v["media"]["height"].as_u64()),
        (Some(176), Some(144))
    );
    // No credits: 402.
    let r = api_submit(&s, serde_json::json!({"video_id": input, "scale": 2})).await;
    assert_eq!(r.status(), 402);
    s.admin(&["credits", "grant", "--tenant", "default", "1000"], None);
    let r = api_submit(
        &s,
        serde_json::json!({"video_id": input, "scale": 2, "codec": "h264"}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let j: Value = r.json().await.unwrap();
    let job = j["id"].as_str().unwrap().to_string();
    let price = j["price"].as_i64().unwrap();
    assert!(price > 0);
    let credits: Value = s
        .req(Method::GET, "/v1/credits", &s.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (credits["available"].as_i64(), credits["reserved"].as_i64()),
        (Some(1000 - price), Some(price))
    );
    let ran = run_worker_once(&s);
    assert_eq!(ran[0]["ended"], "Succeeded", "{ran:?}");
    let j: Value = s
        .req(Method::GET, &format!("/v1/jobs/{job}"), &s.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(j["state"], "succeeded", "{j}");
    let out = j["output_video_id"].as_str().unwrap().to_string();
    let got = s
        .req(Method::GET, &format!("/v1/videos/{out}/content"), &s.key)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    let file = s.dir.path().join("result.mp4");
    std::fs::write(&file, got.bytes().await.unwrap()).unwrap();
    let f = s.dir.path().join("input.mp4");
    std::fs::write(&f, &sample).unwrap();
    let (pout, pin) = (probe(&file), probe(&f));
    assert_eq!(
        (pout["width"].as_u64(), pout["height"].as_u64()),
        (Some(352), Some(288)),
        "x2 of 176x144"
    );
    assert_eq!(pout["nb_read_frames"], pin["nb_read_frames"], "every frame");
    let v: Value = s
        .req(Method::GET, &format!("/v1/videos/{out}"), &s.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["name"], "carphone-x2.mp4");
    let credits: Value = s
        .req(Method::GET, "/v1/credits", &s.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (credits["available"].as_i64(), credits["reserved"].as_i64()),
        (Some(1000 - price), Some(0)),
        "charged once"
    );

    // Someone with database access alters queued jobs — the price, the preset, the input,
    // the tenant: the worker refuses every one, runs nothing, and records why.
    let (globex, _) = s.second_tenant("globex");
    let mut tampered = Vec::new();
    for change in ["price", "preset", "input", "tenant"] {
        let r = api_submit(&s, serde_json::json!({"video_id": input, "scale": 2})).await;
        let id = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        tampered.push((change, id));
    }
    {
        use sqlx::Connection;
        let mut conn = s.raw_db().await;
        for (change, id) in &tampered {
            let (sql, arg) = match *change {
                "price" => ("UPDATE jobs SET price = 1 WHERE id = $1 AND $2 = $2", ""),
                "preset" => (
                    "UPDATE jobs SET preset = $2 WHERE id = $1",
                    r#"{"model":"realesr-animevideov3","scale":4,"codec":"h264","crf":null}"#,
                ),
                "input" => (
                    "UPDATE jobs SET input_video_id = $2 WHERE id = $1",
                    out.as_str(),
                ),
                _ => (
                    "UPDATE jobs SET tenant_id = $2 WHERE id = $1",
                    globex.as_str(),
                ),
            };
            let n = sqlx::query(sql)
                .bind(id)
                .bind(arg)
                .execute(&mut conn)
                .await
                .unwrap()
                .rows_affected();
            assert_eq!(n, 1, "{change}");
        }
        conn.close().await.unwrap();
    }
    let c = Catalog::open(&s.catalog_url, 2).await.unwrap();
    let videos_before = c.videos(tenant, 100, None).await.unwrap().len();
    let ran = run_worker_once(&s);
    assert_eq!(ran.len(), 4, "{ran:?}");
    assert!(ran.iter().all(|r| r["ended"] == "Refused"), "{ran:?}");
    for (change, id) in &tampered {
        let owner = if *change == "tenant" {
            globex.as_str()
        } else {
            tenant
        };
        let j = c.job(owner, id).await.unwrap();
        assert_eq!(j.state, JobState::Failed, "{change}");
        assert!(j.last_error.unwrap().starts_with("refused"), "{change}");
        assert!(j.output_video_id.is_none(), "{change}: nothing ran");
    }
    assert_eq!(
        c.videos(tenant, 100, None).await.unwrap().len(),
        videos_before
    );
    // Every reservation (as the ledger holds it, not as the altered rows say) is released.
    assert_eq!(
        c.credit_balance(tenant).await.unwrap().available,
        1000 - price
    );
    assert_eq!(c.credit_balance(&globex).await.unwrap().available, 0);

    // Not a video: the probe rejects it and its bytes are shredded.
    let junk = upload(&s, "/v1/videos?name=notes.mp4", "just text, not a video").await;
    let ran = run_worker_once(&s);
    assert!(
        ran[0]["ended"].as_str().unwrap().starts_with("Failed"),
        "{ran:?}"
    );
    let v: Value = s
        .req(Method::GET, &format!("/v1/videos/{junk}"), &s.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "rejected", "{v}");
    assert!(
        v["rejected"]
            .as_str()
            .unwrap()
            .starts_with("input_not_video"),
        "{v}"
    );
    assert!(
        c.pieces(&junk).await.unwrap().is_empty(),
        "its bytes are gone"
    );
    let r = api_submit(&s, serde_json::json!({"video_id": junk, "scale": 2})).await;
    assert_eq!(r.status(), 409);

    // More hostile media: a cut-off MP4, and a header declaring 60000x60000 (a
    // decompression bomb). Each gets its code; the worker goes on serving.
    let bbb = std::fs::read(shared_data().join("samples/bigbuckbunny.mp4")).unwrap();
    let mut bomb = b"YUV4MPEG2 W60000 H60000 F25:1 Ip A1:1 C420jpeg\nFRAME\n".to_vec();
    bomb.extend(vec![16u8; 4096]);
    let mut hostile = Vec::new();
    for (name, body, code) in [
        ("cut.mp4", bbb[..bbb.len() / 2].to_vec(), "input_truncated"),
        ("bomb.y4m", bomb, "dimensions_too_large"),
    ] {
        let r = s
            .req(Method::POST, &format!("/v1/videos?name={name}"), &s.key)
            .body(body)
            .send()
            .await
            .unwrap();
        hostile.push((
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string(),
            code,
        ));
    }
    let r = api_submit(&s, serde_json::json!({"video_id": input, "scale": 2})).await;
    let after = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ran = run_worker_once(&s);
    assert_eq!(ran.len(), 3, "{ran:?}");
    for (id, code) in hostile {
        let v: Value = s
            .req(Method::GET, &format!("/v1/videos/{id}"), &s.key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["status"], "rejected", "{v}");
        assert!(v["rejected"].as_str().unwrap().starts_with(code), "{v}");
        // Its bytes are gone: a download says so (once "200, 0 bytes").
        let r = s
            .req(Method::GET, &format!("/v1/videos/{id}/content"), &s.key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 409);
        assert_eq!(
            r.json::<Value>().await.unwrap()["error"]["code"],
            "video_rejected"
        );
    }
    let j: Value = s
        .req(Method::GET, &format!("/v1/jobs/{after}"), &s.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(j["state"], "succeeded", "the worker keeps serving: {j}");
}

mod faults {
    use super::*;

    on_both!(backend; a_killed_worker_loses_its_job_to_another_and_cancel_stops_a_running_job);

    /// Children of `pid` (from /proc).
    fn children(pid: u32) -> Vec<u32> {
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().nth(1)?.parse::<u32>().ok());
            if ppid == Some(pid) {
                out.push(p);
            }
        }
        out
    }

    fn spawn_worker(s: &Server) -> std::process::Child {
        s.bv()
            .env("BV_MODEL_DIR", shared_data().join("models"))
            .env("BV_WORKER_LEASE_SECONDS", "3")
            .env("BV_WORKER_POLL_MS", "100")
            .args(["worker"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    async fn a_killed_worker_loses_its_job_to_another_and_cancel_stops_a_running_job(b: Backend) {
        let s = Server::start(b).await;
        let clip = s.dir.path().join("clip.mp4");
        lavfi_clip("testsrc2=s=320x180:r=25:d=2", &clip);
        let video = upload(
            &s,
            "/v1/videos?name=clip.mp4",
            std::fs::read(&clip).unwrap(),
        )
        .await;
        s.admin(&["credits", "grant", "--tenant", "default", "100000"], None);
        let mut first = spawn_worker(&s);
        poll(
            &s,
            &format!("/v1/videos/{video}"),
            |v| v["status"] == "ready",
            60,
        )
        .await;
        let r = api_submit(&s, serde_json::json!({"video_id": video, "scale": 2})).await;
        let job = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        poll(
            &s,
            &format!("/v1/jobs/{job}"),
            |j| j["frames_done"].as_i64().unwrap_or(0) > 0,
            60,
        )
        .await;
        // kill -9 the worker in the middle of the job: its sandbox dies with it.
        let jails = children(first.id());
        assert!(!jails.is_empty(), "the job runs in a jail under the worker");
        first.kill().unwrap();
        first.wait().unwrap();
        let t0 = std::time::Instant::now();
        while jails
            .iter()
            .any(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
        {
            assert!(
                t0.elapsed().as_secs() < 5,
                "the killed worker's sandbox is still alive"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        // After the lease runs out another worker finishes it: one output, one charge.
        let mut second = spawn_worker(&s);
        let j = poll(
            &s,
            &format!("/v1/jobs/{job}"),
            |j| j["state"] == "succeeded" || j["state"] == "failed",
            120,
        )
        .await;
        assert_eq!(j["state"], "succeeded", "{j}");
        assert_eq!(j["attempts"], 2, "{j}");
        let credits: Value = s
            .req(Method::GET, "/v1/credits", &s.key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let captures: Vec<&Value> = credits["ledger"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "capture" && e["job_id"] == job.as_str())
            .collect();
        assert_eq!(captures.len(), 1, "{credits}");
        assert_eq!(
            credits["available"].as_i64().unwrap(),
            100_000 - j["price"].as_i64().unwrap()
        );
        let list: Value = s
            .req(Method::GET, "/v1/videos", &s.key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let outputs = list["videos"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["name"] == "clip-x2.mp4")
            .count();
        assert_eq!(outputs, 1, "one output");

        // Cancel while it runs: the sandbox stops within seconds and the reservation is released.
        let r = api_submit(&s, serde_json::json!({"video_id": video, "scale": 4})).await;
        let job = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        poll(
            &s,
            &format!("/v1/jobs/{job}"),
            |j| j["frames_done"].as_i64().unwrap_or(0) > 0,
            60,
        )
        .await;
        let t0 = std::time::Instant::now();
        let r = s
            .req(Method::POST, &format!("/v1/jobs/{job}/cancel"), &s.key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let j = poll(
            &s,
            &format!("/v1/jobs/{job}"),
            |j| j["state"] != "running",
            30,
        )
        .await;
        assert_eq!(j["state"], "cancelled", "{j}");
        assert!(
            t0.elapsed().as_secs_f64() < 2.0,
            "stopped in {:?}",
            t0.elapsed()
        );
        let credits: Value = s
            .req(Method::GET, "/v1/credits", &s.key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(credits["reserved"], 0, "{credits}");
        second.kill().unwrap();
        second.wait().unwrap();
    }
}
