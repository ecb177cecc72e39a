//! Jobs run in segments by several workers: the same frames (lossless FFV1,
//! frame by frame) and the same timestamps as the job run whole, every
//! stream kept, charged once, nothing intermediate left; a job whose
//! coordinator is killed resumes with the finished segments kept; an
//! altered segment row is refused.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use bv_catalog::Backend;
use reqwest::Method;
use serde_json::Value;
use sqlx::Row;

use crate::harness::{Server, shared_data};
use crate::worker::{api_submit, get_json, poll, streams, upload};
use bv_testkit::on_both;

on_both!(backend;
    two_workers_share_a_job_in_segments_with_the_frames_of_a_whole_run,
    a_killed_coordinator_resumes_with_its_finished_segments_and_altered_rows_are_refused,
);

/// `seconds` of 96x64 H.264 at 30 fps with a keyframe every second, plus AAC audio.
fn clip(dir: &Path, seconds: u32) -> std::path::PathBuf {
    let out = dir.join(format!("clip-{seconds}s.mp4"));
    let st = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=s=96x64:r=30:d={seconds}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:duration={seconds}"))
        .args(["-c:v", "libx264", "-g", "30", "-keyint_min", "30"])
        .args(["-sc_threshold", "0", "-pix_fmt", "yuv420p", "-c:a", "aac"])
        .args(["-shortest", "-y"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    out
}

/// A `bv worker` with `env` on top of the server's settings.
fn worker(s: &Server, env: &[(&str, &str)], once: bool) -> Command {
    let mut c = s.bv();
    c.env("BV_MODEL_DIR", shared_data().join("models"))
        .env("BV_WORKER_POLL_MS", "50")
        .arg("worker")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if once {
        c.arg("--once");
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// Runs a `bv worker --once` to its end; its attempts.
fn once(s: &Server, env: &[(&str, &str)]) -> Vec<Value> {
    let out = worker(s, env, true).output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn stop(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}

/// Uploads and probes a clip; its video id.
async fn ready_clip(s: &Server, path: &Path) -> String {
    let video = upload(s, "/v1/videos?name=clip.mp4", std::fs::read(path).unwrap()).await;
    let probed = once(s, &[]);
    let v = get_json(s, &format!("/v1/videos/{video}")).await;
    assert_eq!(v["status"], "ready", "{v} {probed:?}");
    assert!(
        v["media"].get("segmenting").is_none(),
        "cut points are for workers, not in the API: {v}"
    );
    s.admin(&["credits", "grant", "--tenant", "default", "100000"], None);
    video
}

async fn submit(s: &Server, video: &str) -> String {
    let r = api_submit(
        s,
        serde_json::json!({"video_id": video, "scale": 2, "codec": "ffv1"}),
    )
    .await;
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn finished(s: &Server, job: &str, secs: u64) -> Value {
    poll(
        s,
        &format!("/v1/jobs/{job}"),
        |j| ["succeeded", "failed", "cancelled"].contains(&j["state"].as_str().unwrap()),
        secs,
    )
    .await
}

/// A finished job's output, downloaded to `name`.
async fn output(s: &Server, j: &Value, name: &str) -> std::path::PathBuf {
    assert_eq!(j["state"], "succeeded", "{j}");
    let out = j["output_video_id"].as_str().unwrap();
    let bytes = s
        .req(Method::GET, &format!("/v1/videos/{out}/content"), &s.key)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let path = s.dir.path().join(name);
    std::fs::write(&path, &bytes).unwrap();
    path
}

/// One line per decoded video frame: its timestamp and the MD5 of its pixels.
fn frame_md5s(file: &Path) -> Vec<String> {
    let o = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-map", "0:v:0", "-f", "framemd5", "-"])
        .output()
        .unwrap();
    assert!(o.status.success());
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Presentation times of the video frames, seconds after the first one
/// (a container may shift every stream: MKV moves the video by the AAC
/// priming that MP4 hides in an edit list, whole run or not).
fn times(file: &Path) -> Vec<String> {
    let o = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "packet=pts_time", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .unwrap();
    let mut t: Vec<f64> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    t.sort_by(f64::total_cmp);
    let first = t.first().copied().unwrap_or_default();
    t.iter().map(|t| format!("{:.3}", t - first)).collect()
}

/// What is left of a job's segments: (index, state, attempts, owner).
async fn segment_rows(s: &Server, job: &str) -> Vec<(i64, String, i64, Option<String>)> {
    let mut db = s.raw_db().await;
    sqlx::query(
        "SELECT idx, state, attempts, lease_owner FROM job_segments WHERE job_id = $1 ORDER BY idx",
    )
    .bind(job)
    .fetch_all(&mut db)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect()
}

/// Hidden videos (job outputs being written, segment outputs) still stored.
async fn hidden_videos(s: &Server) -> i64 {
    let mut db = s.raw_db().await;
    sqlx::query("SELECT COUNT(*) FROM videos WHERE state <> 'uploaded'")
        .fetch_one(&mut db)
        .await
        .unwrap()
        .get(0)
}

async fn two_workers_share_a_job_in_segments_with_the_frames_of_a_whole_run(b: Backend) {
    let s = Server::start(b).await;
    let input = clip(s.dir.path(), 4);
    let video = ready_clip(&s, &input).await;

    // The reference: the same job run whole.
    let whole = submit(&s, &video).await;
    let attempts = once(&s, &[("BV_WORKER_SEGMENT_SECONDS", "0")]);
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert!(attempts[0].get("segment").is_none());
    let whole_job = finished(&s, &whole, 120).await;
    assert!(whole_job.get("segments").is_none(), "{whole_job}");
    let whole_out = output(&s, &whole_job, "whole.mkv").await;

    // The same job on two workers, cut into two-second segments. Both
    // check their host first (models, sandbox, FFmpeg): the job is queued
    // once both take jobs, so neither can run every segment before the
    // other has looked.
    let env = [("BV_WORKER_SEGMENT_SECONDS", "2")];
    let logs: Vec<_> = (0..2)
        .map(|i| s.dir.path().join(format!("worker-{i}.log")))
        .collect();
    let spawn = |log: &std::path::Path| {
        worker(&s, &env, false)
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap()
    };
    let (w1, w2) = (spawn(&logs[0]), spawn(&logs[1]));
    let t0 = std::time::Instant::now();
    while !logs
        .iter()
        .all(|l| std::fs::read_to_string(l).is_ok_and(|t| t.contains("this worker takes jobs")))
    {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(60),
            "the workers did not start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let split = submit(&s, &video).await;
    let j = finished(&s, &split, 180).await;
    stop(w1);
    stop(w2);
    assert_eq!(
        j["segments"],
        serde_json::json!({"total": 2, "done": 2}),
        "{j}"
    );
    let rows = segment_rows(&s, &split).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.1 == "done" && r.2 == 1), "{rows:?}");
    assert_ne!(rows[0].3, rows[1].3, "each worker ran a segment: {rows:?}");
    let split_out = output(&s, &j, "split.mkv").await;

    // Lossless output: frame for frame the same pixels at the same times.
    let (a, c) = (frame_md5s(&whole_out), frame_md5s(&split_out));
    assert_eq!(a.len(), 120, "every frame of the input");
    // (framemd5 lines hold each frame's timestamp too.)
    assert_eq!(
        a, c,
        "the segmented job's frames and times are the whole run's"
    );
    assert_eq!(times(&split_out), times(&input), "the input's timestamps");
    assert_eq!(streams(&split_out), streams(&input), "the audio too");
    assert_eq!(j["frames_done"], 120, "{j}");
    let ov = get_json(
        &s,
        &format!("/v1/videos/{}", j["output_video_id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(
        (
            ov["media"]["width"].as_u64(),
            ov["media"]["height"].as_u64()
        ),
        (Some(192), Some(128)),
        "{ov}"
    );
    // Charged once, like the whole run; the segments' outputs are gone.
    let credits = get_json(&s, "/v1/credits").await;
    assert_eq!(credits["reserved"], 0, "{credits}");
    assert_eq!(j["price"], whole_job["price"]);
    assert_eq!(hidden_videos(&s).await, 0);
}

async fn a_killed_coordinator_resumes_with_its_finished_segments_and_altered_rows_are_refused(
    b: Backend,
) {
    let s = Server::start(b).await;
    let input = clip(s.dir.path(), 8);
    let video = ready_clip(&s, &input).await;
    let job = submit(&s, &video).await;
    // One worker, one-second segments, a short lease: killed once a
    // segment is done, the job's other segments still to do.
    let env = [
        ("BV_WORKER_SEGMENT_SECONDS", "1"),
        ("BV_WORKER_LEASE_SECONDS", "2"),
    ];
    let w = worker(&s, &env, false).spawn().unwrap();
    let j = poll(
        &s,
        &format!("/v1/jobs/{job}"),
        |j| j["segments"]["done"].as_i64().is_some_and(|d| d >= 1),
        120,
    )
    .await;
    stop(w);
    assert_eq!(j["segments"]["total"], 8, "{j}");
    let before = segment_rows(&s, &job).await;
    let kept: Vec<i64> = before
        .iter()
        .filter(|r| r.1 == "done")
        .map(|r| r.0)
        .collect();
    assert!(kept.len() < 8, "killed before the end: {before:?}");
    // Its leases run out; another worker finishes the job.
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    let attempts = once(&s, &env);
    let j = finished(&s, &job, 10).await;
    assert_eq!(j["state"], "succeeded", "{j} {attempts:?}");
    let after = segment_rows(&s, &job).await;
    for i in &kept {
        assert_eq!(
            after[*i as usize].2, 1,
            "segment {i} was done before the crash and not run again: {after:?}"
        );
    }
    assert!(
        attempts.iter().all(|a| a["ended"] == "Succeeded"),
        "{attempts:?}"
    );
    let out = output(&s, &j, "resumed.mkv").await;
    assert_eq!(frame_md5s(&out).len(), 240);
    assert_eq!(times(&out), times(&input));
    assert_eq!(hidden_videos(&s).await, 0);

    // An altered segment row (moved to another part of the video) is refused
    // and its job fails with nothing charged.
    let job = submit(&s, &video).await;
    let w = worker(&s, &env, false).spawn().unwrap();
    poll(
        &s,
        &format!("/v1/jobs/{job}"),
        |j| j["segments"]["total"].as_i64() == Some(8),
        120,
    )
    .await;
    stop(w);
    let mut db = s.raw_db().await;
    sqlx::query(
        "UPDATE job_segments SET start_us = 0, state = 'queued', lease_owner = NULL
         WHERE job_id = $1 AND idx = 7",
    )
    .bind(&job)
    .execute(&mut db)
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    let attempts = once(&s, &env);
    let j = finished(&s, &job, 10).await;
    assert_eq!(j["state"], "failed", "{j} {attempts:?}");
    assert!(
        j["error"]
            .as_str()
            .unwrap()
            .contains("does not match its MAC"),
        "{j}"
    );
    assert!(
        attempts.iter().any(|a| a["ended"] == "Refused"),
        "{attempts:?}"
    );
    let credits = get_json(&s, "/v1/credits").await;
    assert_eq!(credits["reserved"], 0, "{credits}");
    assert_eq!(hidden_videos(&s).await, 0);
}
