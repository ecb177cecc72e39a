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
    a_probe_that_cannot_run_rejects_the_video_and_bv_submit_stops_at_once,
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

/// `bv login` for `s` in `home`.
fn login(s: &Server, home: &std::path::Path) {
    let cert = s.dir.path().join("tls/cert.pem");
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

/// The first hour's "probing forever": a worker that cannot run the probe
/// (here its model directory is missing, so no jail can be built) used to
/// leave the video `probing` and `bv submit` polling for ten minutes. Once
/// the probe has failed for good the video is rejected with the probe's
/// code, and the client stops at once and prints it.
async fn a_probe_that_cannot_run_rejects_the_video_and_bv_submit_stops_at_once(b: Backend) {
    let s = Server::start_with(
        b,
        &[
            ("BV_WORKER_IN_PROCESS", "1"),
            ("BV_MODEL_DIR", "/nonexistent-bv-models"),
            ("BV_JOBS_MAX_ATTEMPTS", "1"),
        ],
    )
    .await;
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
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("error[video_rejected]"), "{err}");
    assert!(
        err.contains("sandbox_unavailable"),
        "the probe's own code: {err}"
    );
    assert!(t0.elapsed() < Duration::from_secs(60), "{:?}", t0.elapsed());
    assert!(!home.path().join("out.mp4").exists());
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
    let (url, _) = ok(client(home.path()).args(["link", &id, "--ttl", "60"]));
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
        let (_, err) =
            ok(client(home.path()).args(["download", &other_id, "-o", out3.to_str().unwrap()]));
        assert!(!err.contains("continuing"), "{err}");
        assert!(err.contains("starting over"), "{err}");
        assert!(std::fs::read(&out3).unwrap() == other, "no spliced file");
    }
    // A record naming this video with a stale tag: the server sends it whole.
    std::fs::write(home.path().join("out3.mp4.part"), &other[..1000]).unwrap();
    let stale = serde_json::json!({"video": other_id, "etag": "\"stale\""}).to_string();
    std::fs::write(home.path().join("out3.mp4.part.json"), stale).unwrap();
    let (_, err) =
        ok(client(home.path()).args(["download", &other_id, "-o", out3.to_str().unwrap()]));
    assert!(err.contains("starting over"), "{err}");
    assert!(std::fs::read(&out3).unwrap() == other);

    // rm: gone for good.
    ok(client(home.path()).args(["rm", &id]));
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
