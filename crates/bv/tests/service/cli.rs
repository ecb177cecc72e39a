//! The client commands against a real server: login, upload (interrupted by
//! SIGINT and resumed), ls, link, download (continued), rm.

use std::process::{Command, Stdio};
use std::time::Duration;

use bv_catalog::Backend;
use reqwest::Method;

use crate::harness::{Server, payload};
use bv_testkit::on_both;

on_both!(backend;
    client_commands_round_trip_and_resume,
    a_server_without_models_takes_no_jobs_and_bv_submit_stops_with_the_fix,
    bv_submit_refuses_what_it_can_before_uploading,
    bv_submit_survives_ctrl_c_and_a_rerun_attaches_to_its_job,
    an_upload_resumes_at_the_byte_the_server_holds_whatever_the_piece_size,
);

fn client(dir: &std::path::Path) -> Command {
    let mut c = crate::harness::client(dir);
    c.stdin(Stdio::null());
    c
}

fn ok(c: &mut Command) -> (String, String) {
    let out = c.output().unwrap();
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{c:?}: {e}");
    (o, e)
}

/// The first hour's "resume works only in 64 MiB steps": with the default
/// piece size (64 MiB) an upload of a few MB interrupted part-way resumes at
/// the byte the server holds, not at 0 (what arrived of a piece is sealed
/// as a shorter piece when its request ends early).
async fn an_upload_resumes_at_the_byte_the_server_holds_whatever_the_piece_size(b: Backend) {
    let s = Server::start_with(b, &[("BV_JOBS_PIECE_MIB", "64")]).await;
    let home = tempfile::tempdir().unwrap();
    login(&s, home.path());
    let data = payload(3_000_000, b"RESUMEMARK");
    let file = home.path().join("clip.mp4");
    std::fs::write(&file, &data).unwrap();
    let up = client(home.path())
        .args(["upload", file.to_str().unwrap(), "--limit-rate", "1M"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(up.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    assert!(!up.wait_with_output().unwrap().status.success());
    let (id, err) = ok(client(home.path()).args(["upload", file.to_str().unwrap()]));
    let at: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("resuming at byte "))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("did not resume: {err}"));
    assert!(at > 0 && at < data.len() as u64, "{at}");
    let got = s
        .req(
            Method::GET,
            &format!("/v1/videos/{}/content", id.trim()),
            &s.key,
        )
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(
        got.as_ref() == data.as_slice(),
        "the resumed upload is whole"
    );
}

/// Runs `c`, which must fail with `error[code]` and exit `status`; its stderr.
fn refused(c: &mut Command, code: &str, status: i32) -> String {
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(status), "{c:?}: {err}");
    assert!(err.contains(&format!("error[{code}]")), "{c:?}: {err}");
    err
}

/// `bv login` for `s` in `home`.
fn login(s: &Server, home: &std::path::Path) {
    let cert = s.dir.path().join("tls/ca.pem");
    let mut login = client(home)
        .args(["login", &s.url, "--ca", cert.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        writeln!(login.stdin.take().unwrap(), "{}", s.key).unwrap();
    }
    let out = login.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The first hour's "probing forever": a server without models used to
/// lease the probe, fail it, and leave `bv submit` polling for ten minutes.
/// Now its worker takes no job (it says why, once, loudly), `/readyz` fails
/// with each check and its fix, and `bv submit` stops within seconds with
/// that fix; the upload is kept, unprobed, for when the models are there.
async fn a_server_without_models_takes_no_jobs_and_bv_submit_stops_with_the_fix(b: Backend) {
    let s = Server::start_with(
        b,
        &[
            ("BV_WORKER_IN_PROCESS", "1"),
            ("BV_MODEL_DIR", "/nonexistent-bv-models"),
        ],
    )
    .await;
    s.admin(&["credits", "grant", "--tenant", "default", "1000"], None);
    // /readyz: 503 once the checks have run, naming the models and the fix.
    let t0 = std::time::Instant::now();
    let ready = loop {
        let r = s
            .http
            .get(format!("{}/readyz", s.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
        let v: serde_json::Value = r.json().await.unwrap();
        if v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "models")
        {
            break v;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "{v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(ready["ready"], false, "{ready}");
    let models = ready["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "models")
        .unwrap();
    assert_eq!(models["status"], "fail", "{ready}");
    assert!(
        models["detail"]
            .as_str()
            .unwrap()
            .contains("/nonexistent-bv-models"),
        "{ready}"
    );
    assert!(
        models["fix"].as_str().unwrap().contains("make setup"),
        "{ready}"
    );
    let catalog = &ready["checks"][0];
    assert_eq!(
        (&catalog["name"], &catalog["status"]),
        (&"catalog".into(), &"ok".into())
    );

    let home = tempfile::tempdir().unwrap();
    login(&s, home.path());
    let clip = home.path().join("clip.mp4");
    crate::worker::lavfi_clip("testsrc2=s=64x48:r=25:d=0.2", &clip);
    let t0 = std::time::Instant::now();
    let out = client(home.path())
        .current_dir(home.path())
        .args(["submit", "clip.mp4", "-o", "out.mp4"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("error[processing_unavailable]"), "{err}");
    assert!(
        err.contains("models: no model directory at /nonexistent-bv-models"),
        "{err}"
    );
    assert!(err.contains("make setup"), "{err}");
    assert!(err.contains("bv submit --video "), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    assert!(!home.path().join("out.mp4").exists());
    // The upload is kept, not rejected; its probe was never leased.
    let videos = s.json(Method::GET, "/v1/videos", &s.key).await;
    let v = &videos["videos"][0];
    assert_eq!(v["status"], "probing", "{videos}");
    let jobs = s.json(Method::GET, "/v1/jobs", &s.key).await;
    let probe = &jobs["jobs"][0];
    assert_eq!(
        (&probe["state"], &probe["attempts"]),
        (&"queued".into(), &0.into()),
        "{jobs}"
    );
    // The worker said why, once, with the fix (at its next look at the
    // gate: within a poll interval).
    let t0 = std::time::Instant::now();
    let log = loop {
        let log = std::fs::read_to_string(s.log_path()).unwrap();
        if log.contains("this worker takes no jobs") || t0.elapsed() > Duration::from_secs(10) {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let log = std::fs::read_to_string(s.log_path()).unwrap_or(log);
    let said: Vec<_> = log
        .lines()
        .filter(|l| l.contains("this worker takes no jobs until this is fixed"))
        .collect();
    assert_eq!(said.len(), 1, "{log}");
    assert!(
        said[0].contains("ERROR") && said[0].contains("make setup"),
        "{}",
        said[0]
    );
}

/// What `bv submit` can check before a byte is uploaded, it checks: the
/// output path, the key's scopes, the model, scale, codec and preset, a
/// balance to spend. Each refusal has its code and exit status, and the
/// service holds no video afterwards.
async fn bv_submit_refuses_what_it_can_before_uploading(b: Backend) {
    let s = Server::start(b).await;
    let home = tempfile::tempdir().unwrap();
    login(&s, home.path());
    let clip = home.path().join("clip.mp4");
    crate::worker::lavfi_clip("testsrc2=s=64x48:r=25:d=0.2", &clip);
    std::fs::write(home.path().join("taken.mp4"), b"mine").unwrap();
    let run = |args: &[&str]| {
        let out = client(home.path())
            .current_dir(home.path())
            .arg("submit")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // No credits yet: refused before the upload.
    let (code, err) = run(&["clip.mp4", "-o", "out.mp4"]);
    assert_eq!(code, Some(9), "{err}");
    assert!(
        err.contains("error[insufficient_credits]") && err.contains("nothing was uploaded"),
        "{err}"
    );
    s.admin(&["credits", "grant", "--tenant", "default", "1000"], None);
    for (args, code, status) in [
        (&["clip.mp4", "-o", "taken.mp4"][..], "output_exists", 4),
        (&["clip.mp4", "-o", "."][..], "output_unwritable", 4),
        (
            &["clip.mp4", "-o", "no/such/dir/out.mp4"][..],
            "output_unwritable",
            4,
        ),
        (
            &["clip.mp4", "-o", "out.mp4", "--scale", "5"][..],
            "unsupported_scale",
            3,
        ),
        (
            &["clip.mp4", "-o", "out.mp4", "--codec", "vp9"][..],
            "invalid_option",
            3,
        ),
        (
            &["clip.mp4", "-o", "out.mp4", "--model", "nosuch"][..],
            "unknown_model",
            3,
        ),
        (
            &["clip.mp4", "-o", "out.mp4", "--for", "nosuch"][..],
            "unknown_preset",
            3,
        ),
    ] {
        let (c, err) = run(args);
        assert_eq!(c, Some(status), "{args:?}: {err}");
        assert!(err.contains(&format!("error[{code}]")), "{args:?}: {err}");
    }
    assert_eq!(
        std::fs::read(home.path().join("taken.mp4")).unwrap(),
        b"mine"
    );
    // The README's own `key create` example makes a key without jobs:write.
    let narrow_key = s
        .admin(
            &[
                "key",
                "create",
                "--tenant",
                "default",
                "--scopes",
                "videos:read,videos:write",
            ],
            None,
        )
        .trim()
        .to_string();
    let narrow = tempfile::tempdir().unwrap();
    let cert = s.dir.path().join("tls/ca.pem");
    let mut l = client(narrow.path())
        .args(["login", &s.url, "--ca", cert.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        writeln!(l.stdin.take().unwrap(), "{narrow_key}").unwrap();
    }
    assert!(l.wait().unwrap().success());
    let out = client(narrow.path())
        .current_dir(home.path())
        .args(["submit", "clip.mp4", "-o", "out.mp4"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(10), "{err}");
    assert!(
        err.contains("error[insufficient_scope]") && err.contains("jobs:write"),
        "{err}"
    );
    // `key list` shows scopes by their names and times as RFC 3339.
    let keys: serde_json::Value =
        serde_json::from_str(&s.admin(&["key", "list", "--tenant", "default"], None)).unwrap();
    let k = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["scopes"] == serde_json::json!(["videos:read", "videos:write"]))
        .unwrap_or_else(|| panic!("{keys}"));
    assert!(k["created_at"].as_str().unwrap().ends_with('Z'), "{k}");
    // Nothing reached the service.
    let videos = s.json(Method::GET, "/v1/videos", &s.key).await;
    assert_eq!(videos["videos"].as_array().unwrap().len(), 0, "{videos}");
}

/// Ctrl-C on `bv submit` stops following, never the job, and says how to
/// get back to it; a rerun reuses the upload and attaches to the job
/// (charged once); `bv jobs` lists, watches, downloads and cancels. No
/// worker runs in the server, so each job waits exactly where the test
/// wants it until `bv worker --once` runs it.
async fn bv_submit_survives_ctrl_c_and_a_rerun_attaches_to_its_job(b: Backend) {
    let s = Server::start(b).await;
    s.admin(&["credits", "grant", "--tenant", "default", "100000"], None);
    let home = tempfile::tempdir().unwrap();
    login(&s, home.path());
    let clip = home.path().join("clip.mp4");
    crate::worker::lavfi_clip("testsrc2=s=64x48:r=25:d=0.2", &clip);
    // Starts `bv submit ARGS`; returns it with the job id it reserved
    // credits for (or attached to), read from its stderr. The caller waits
    // for it (after a SIGINT); a failed assertion here ends the test anyway.
    #[allow(clippy::zombie_processes)]
    let start = |args: &[&str], probe_first: bool| {
        let mut child = client(home.path())
            .current_dir(home.path())
            .arg("submit")
            .args(args)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let mut lines = Vec::new();
        let t0 = std::time::Instant::now();
        let mut probed = !probe_first;
        loop {
            if !probed {
                // Runs the probe once the upload is in (nothing to run
                // before), and nothing else: the job must stay queued.
                let out = s
                    .bv()
                    .env("BV_MODEL_DIR", crate::harness::shared_data().join("models"))
                    .args(["worker", "--once", "--max-jobs", "1"])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                probed = !out.stdout.is_empty();
            }
            if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
                let job = l
                    .strip_prefix("job ")
                    .filter(|r| r.contains("credits reserved") || r.contains("earlier run"))
                    .map(|r| r.split([':', ' ']).next().unwrap().to_string());
                lines.push(l);
                if let Some(j) = job {
                    return (child, j, rx, lines);
                }
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "{lines:?}");
        }
    };
    let sigint = |child: &mut std::process::Child, rx: std::sync::mpsc::Receiver<String>| {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        let status = child.wait().unwrap();
        (status.code(), rx.iter().collect::<Vec<_>>().join("\n"))
    };
    let (mut a, job, rx, _) = start(&["clip.mp4", "-o", "out.mp4"], true);
    let (code, err) = sigint(&mut a, rx);
    assert_eq!(code, Some(130), "{err}");
    assert!(
        err.contains("error[interrupted]") && err.contains("keeps running"),
        "{err}"
    );
    assert!(
        err.contains(&format!("bv jobs watch {job}"))
            && err.contains(&format!("bv jobs cancel {job}")),
        "{err}"
    );
    let credits = s.json(Method::GET, "/v1/credits", &s.key).await;
    let price = credits["reserved"].as_i64().unwrap();
    assert!(price > 0, "{credits}");

    // The rerun reuses the upload and attaches: nothing charged again.
    let (mut again, same, rx, lines) = start(&["clip.mp4", "-o", "out.mp4"], false);
    assert_eq!(same, job, "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("uploaded earlier from this file")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("nothing charged again")),
        "{lines:?}"
    );
    let (code, _) = sigint(&mut again, rx);
    assert_eq!(code, Some(130));
    let credits = s.json(Method::GET, "/v1/credits", &s.key).await;
    assert_eq!(credits["reserved"].as_i64(), Some(price), "{credits}");

    // bv jobs: listed; no output yet; run; watched; downloaded.
    let (list, _) = ok(client(home.path()).args(["jobs"]));
    assert!(
        list.lines()
            .any(|l| l.starts_with(&job) && l.contains("queued")),
        "{list}"
    );
    refused(
        client(home.path()).current_dir(home.path()).args([
            "jobs",
            "download",
            &job,
            "-o",
            "early.mp4",
        ]),
        "job_not_finished",
        3,
    );
    assert!(!crate::worker::run_worker_once(&s).is_empty());
    let (said, _) = ok(client(home.path()).args(["jobs", "watch", &job]));
    assert!(said.contains("succeeded"), "{said}");
    ok(client(home.path())
        .current_dir(home.path())
        .args(["jobs", "download", &job, "-o", "got.mp4"]));
    // A rerun of the finished submit attaches to its job and downloads it.
    let (_, err) = ok(client(home.path())
        .current_dir(home.path())
        .args(["submit", "clip.mp4", "-o", "out.mp4"]));
    assert!(err.contains("nothing charged again"), "{err}");
    assert_eq!(
        std::fs::read(home.path().join("out.mp4")).unwrap(),
        std::fs::read(home.path().join("got.mp4")).unwrap()
    );
    let credits = s.json(Method::GET, "/v1/credits", &s.key).await;
    assert_eq!(credits["reserved"].as_i64(), Some(0), "{credits}");
    assert_eq!(
        credits["available"].as_i64(),
        Some(100_000 - price),
        "{credits}"
    );
    // One upload, one output: the reruns made no duplicate.
    let videos = s.json(Method::GET, "/v1/videos", &s.key).await;
    assert_eq!(videos["videos"].as_array().unwrap().len(), 2, "{videos}");

    // A job stopped by `bv jobs cancel` gives its credits back.
    let video = input_video(&s).await;
    let (mut c, other, rx, _) = start(&["--video", &video, "--scale", "4", "-o", "x4.mp4"], false);
    let _ = sigint(&mut c, rx);
    assert_ne!(other, job);
    ok(client(home.path()).args(["jobs", "cancel", &other]));
    let w = client(home.path())
        .args(["jobs", "watch", &other])
        .output()
        .unwrap();
    assert_eq!(
        w.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&w.stderr)
    );
    let credits = s.json(Method::GET, "/v1/credits", &s.key).await;
    assert_eq!(credits["reserved"].as_i64(), Some(0), "{credits}");
}

/// The id of the tenant's uploaded (input) video.
async fn input_video(s: &Server) -> String {
    let jobs = s.json(Method::GET, "/v1/jobs", &s.key).await;
    jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["kind"] == "enhance")
        .unwrap()["video_id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn client_commands_round_trip_and_resume(b: Backend) {
    let s = Server::start(b).await;
    let home = tempfile::tempdir().unwrap();

    // Login: the key comes on stdin; the profile is private.
    login(&s, home.path());
    use std::os::unix::fs::PermissionsExt;
    let prof = home.path().join("client/profile.json");
    assert_eq!(
        std::fs::metadata(&prof).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Upload, interrupted by Ctrl-C part-way (rate-limited so it is still running), then resumed.
    let data = payload(4_000_000, b"CLIMARK");
    let file = home.path().join("clip.mp4");
    std::fs::write(&file, &data).unwrap();
    let up = client(home.path())
        .args(["upload", file.to_str().unwrap(), "--limit-rate", "2M"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(up.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let first = up.wait_with_output().unwrap();
    assert!(!first.status.success(), "the first run was interrupted");
    let (id, err) = ok(client(home.path()).args(["upload", file.to_str().unwrap()]));
    let at: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("resuming at byte "))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("did not resume: {err}"));
    assert!(at > 0 && at < data.len() as u64, "{at}");
    let id = id.trim().to_string();
    assert_eq!(id.len(), 32);

    // ls, link, download.
    let (ls, _) = ok(client(home.path()).args(["ls"]));
    assert!(ls.contains(&id) && ls.contains("clip.mp4"), "{ls}");
    // The state column: no worker runs here, so it is still being examined.
    assert!(ls.lines().next().unwrap().contains("STATE"), "{ls}");
    assert!(
        ls.lines()
            .any(|l| l.starts_with(&id) && l.contains("probing")),
        "{ls}"
    );
    // --ttl takes a duration, as `key create` does.
    let (url, err) = ok(client(home.path()).args(["link", &id, "--ttl", "2m"]));
    assert!(err.contains("expires at"), "{err}");
    let got = s
        .http
        .get(url.trim())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(got.as_ref() == data.as_slice());
    let out = home.path().join("out.mp4");
    ok(client(home.path()).args(["download", &id, "-o", out.to_str().unwrap()]));
    assert!(std::fs::read(&out).unwrap() == data);
    // Without -o: the stored name, in the current directory; -o -: stdout.
    let here = tempfile::tempdir().unwrap();
    ok(client(home.path())
        .current_dir(here.path())
        .args(["download", &id]));
    assert!(std::fs::read(here.path().join("clip.mp4")).unwrap() == data);
    let piped = client(home.path())
        .args(["download", &id, "-o", "-"])
        .output()
        .unwrap();
    assert!(piped.status.success());
    assert!(piped.stdout == data, "the video on stdout");
    // A download that stopped part-way (the part file and the record of
    // what it is of, as an interrupted run leaves them) continues with a
    // Range request tied to the video's entity tag.
    let etag = s
        .req(Method::HEAD, &format!("/v1/videos/{id}/content"), &s.key)
        .send()
        .await
        .unwrap()
        .headers()["etag"]
        .to_str()
        .unwrap()
        .to_string();
    let out2 = home.path().join("out2.mp4");
    std::fs::write(home.path().join("out2.mp4.part"), &data[..1_500_000]).unwrap();
    let record = serde_json::json!({"video": id, "etag": etag}).to_string();
    std::fs::write(home.path().join("out2.mp4.part.json"), &record).unwrap();
    let (_, err) = ok(client(home.path()).args(["download", &id, "-o", out2.to_str().unwrap()]));
    assert!(err.contains("continuing at byte 1500000"), "{err}");
    assert!(std::fs::read(&out2).unwrap() == data);
    assert!(!home.path().join("out2.mp4.part.json").exists());
    // The outside review's splice: a part file of another video (here a
    // different upload) is never continued with this one's bytes, whether
    // its record names the other video or it has no record at all.
    let other = payload(2_000_000, b"OTHERVID");
    let other_file = home.path().join("other.mp4");
    std::fs::write(&other_file, &other).unwrap();
    let (other_id, _) = ok(client(home.path()).args(["upload", other_file.to_str().unwrap()]));
    let other_id = other_id.trim().to_string();
    let out3 = home.path().join("out3.mp4");
    for record in [Some(record.clone()), None] {
        std::fs::write(home.path().join("out3.mp4.part"), &data[..1_500_000]).unwrap();
        let _ = std::fs::remove_file(home.path().join("out3.mp4.part.json"));
        if let Some(r) = &record {
            std::fs::write(home.path().join("out3.mp4.part.json"), r).unwrap();
        }
        let (_, err) = ok(client(home.path()).args([
            "download",
            &other_id,
            "-o",
            out3.to_str().unwrap(),
            "--overwrite",
        ]));
        assert!(!err.contains("continuing"), "{err}");
        assert!(err.contains("starting over"), "{err}");
        assert!(std::fs::read(&out3).unwrap() == other, "no spliced file");
    }
    // A record naming this video with a stale tag: the server sends it whole.
    std::fs::write(home.path().join("out3.mp4.part"), &other[..1000]).unwrap();
    let stale = serde_json::json!({"video": other_id, "etag": "\"stale\""}).to_string();
    std::fs::write(home.path().join("out3.mp4.part.json"), stale).unwrap();
    // The file is there now: replaced only when asked.
    refused(
        client(home.path()).args(["download", &other_id, "-o", out3.to_str().unwrap()]),
        "output_exists",
        4,
    );
    let (_, err) = ok(client(home.path()).args([
        "download",
        &other_id,
        "-o",
        out3.to_str().unwrap(),
        "--overwrite",
    ]));
    assert!(err.contains("starting over"), "{err}");
    assert!(std::fs::read(&out3).unwrap() == other);

    // rm: gone for good.
    ok(client(home.path()).args(["rm", &id, &other_id]));
    let r = s
        .req(Method::GET, &format!("/v1/videos/{other_id}"), &s.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "bv rm took both ids");
    let r = s
        .req(Method::GET, &format!("/v1/videos/{id}"), &s.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let out = client(home.path())
        .args(["download", &id, "-o", "/dev/null"])
        .output()
        .unwrap();
    // The service's code, printed once, and its documented exit status.
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert_eq!(err.matches("error[").count(), 1, "{err}");
    assert!(
        err.starts_with("error[not_found]: ") && err.contains("(HTTP 404)"),
        "{err}"
    );

    // A revoked key: exit 10, and what to do.
    let kid = s.key.split('_').nth(1).unwrap();
    s.admin(&["key", "revoke", "--tenant", "default", kid], None);
    let out = client(home.path()).args(["ls"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(10), "{err}");
    assert!(
        err.starts_with("error[unauthenticated]: ") && err.contains("bv login"),
        "{err}"
    );
}
