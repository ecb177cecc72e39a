//! The web app in a real browser: Debian's chromium, headless, driven by
//! playwright-core (tests/web/browser.cjs) against a real `bv serve` with an
//! in-process worker and the real model. The script fails on any console
//! error, page error, failed request or CSP violation, and saves screenshots
//! of every page at desktop and phone width under `artifacts/web/`.
//!
//! One backend is enough here: what the browser sees does not depend on the
//! catalog's engine, and the API underneath runs on both in the other suites.

use std::path::PathBuf;
use std::process::Command;

use bv_catalog::Backend;
use serde_json::Value;

use crate::harness::{Server, shared_data};

fn playwright_modules() -> PathBuf {
    let m = shared_data().join("node/web/node_modules");
    assert!(
        m.join("playwright-core").is_dir() && std::path::Path::new("/usr/bin/chromium").exists(),
        "{} or /usr/bin/chromium is missing: run `make setup`",
        m.display()
    );
    m
}

fn ffmpeg(args: &[&str], out: &std::path::Path) {
    let st = Command::new("ffmpeg")
        .args(["-v", "error"])
        .args(args)
        .args(["-y"])
        .arg(out)
        .status()
        .unwrap();
    assert!(st.success(), "ffmpeg {args:?}");
}

/// A server with the model; `alice` is made with `bv admin user create`
/// unless the browser is to make her through the first-start link.
async fn server(env: &[(&str, &str)], alice: bool) -> Server {
    let models = shared_data().join("models");
    let mut all = vec![
        ("BV_WORKER_IN_PROCESS", "1"),
        ("BV_MODEL_DIR", models.to_str().unwrap()),
    ];
    all.extend_from_slice(env);
    let s = Server::start_with(Backend::Sqlite, &all).await;
    if alice {
        s.admin(
            &["user", "create", "--tenant", "default", "alice"],
            Some("correct horse battery staple\n"),
        );
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_uses_the_web_app_in_a_real_browser() {
    let modules = playwright_modules();
    // Nobody can sign in yet: the person follows the link the first start
    // printed and sets the password in the browser.
    let s = server(&[], false).await;
    let setup = s
        .setup_link
        .clone()
        .expect("a first start prints the setup link");
    s.admin(&["credits", "grant", "--tenant", "default", "50000"], None);
    // Signs out after 10 s without activity; a server of its own so the main
    // flow is not cut short while it waits for the job.
    let idle = server(&[("BV_SERVE_SESSION_IDLE_SECONDS", "10")], true).await;

    // A lossless 720p clip big enough to be mid-upload when the page reloads,
    // and a small clip with sound for the ×2 job.
    let big = s.dir.path().join("holiday footage.mkv");
    ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=1280x720:r=25:d=12",
            "-c:v",
            "libx264",
            "-qp",
            "0",
            "-preset",
            "ultrafast",
        ],
        &big,
    );
    let clip = s.dir.path().join("clip.mp4");
    ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=160x90:r=10:d=1",
            "-f",
            "lavfi",
            "-i",
            "sine=f=440:d=1",
            "-c:v",
            "libx264",
            "-c:a",
            "aac",
            "-shortest",
        ],
        &clip,
    );
    // A member of staff asks to open a video of a tenant that approves every
    // access first; the person approves it in the browser.
    let support = s
        .req(
            reqwest::Method::POST,
            "/v1/videos?name=support%20case.mp4",
            &s.key,
        )
        .body(std::fs::read(&clip).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(support.status(), 201);
    let support = support.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .req(reqwest::Method::PUT, "/v1/access/settings", &s.key)
        .json(&serde_json::json!({"require_approval": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.admin(
        &[
            "operator",
            "add",
            "carol",
            "--employer",
            "BetterVideo Ltd",
            "--location",
            "Dublin, IE",
        ],
        None,
    );
    let carol = |args: &[&str]| {
        s.bv()
            .env("SUDO_USER", "carol")
            .args(args)
            .output()
            .unwrap()
    };
    let req = carol(&[
        "admin",
        "access",
        "request",
        "--tenant",
        "default",
        "--video",
        &support,
        "--reason",
        "customer asked about a flicker",
        "--ticket",
        "SUP-7",
    ]);
    assert!(
        req.status.success(),
        "{}",
        String::from_utf8_lossy(&req.stderr)
    );
    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../artifacts/web");
    let _ = std::fs::remove_dir_all(&artifacts);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/web/browser.cjs");
    let mut node = Command::new("node");
    node.arg(&script)
        .env("NODE_PATH", &modules)
        .env("WEB_URL", &s.url)
        .env("WEB_IDLE_URL", &idle.url)
        .env("WEB_LOGIN", "alice")
        .env("WEB_SETUP_LINK", &setup)
        .env("WEB_PASSWORD", "correct horse battery staple")
        .env("WEB_BIG", &big)
        .env("WEB_CLIP", &clip)
        .env("WEB_CA", s.dir.path().join("tls/ca.pem"))
        .env("WEB_IDLE_CA", idle.dir.path().join("tls/ca.pem"))
        .env("WEB_ARTIFACTS", &artifacts)
        .env("WEB_DOWNLOADS", s.dir.path().join("downloads"));
    let out = tokio::task::spawn_blocking(move || node.output())
        .await
        .unwrap()
        .unwrap();
    if !out.status.success() {
        let log = std::fs::read_to_string(s.log_path()).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        panic!(
            "the browser run failed (screenshot: artifacts/web/failure.png):\n{}\n{}\nserver log, newest first:\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
            tail.join("\n")
        );
    }
    // The link the browser used made alice and is spent: a second use is
    // refused (and audited), and her sign-in came from it.
    let token = setup.split("#/setup/").nth(1).unwrap();
    let again = s
        .http
        .post(format!("{}/v1/setup", s.url))
        .json(&serde_json::json!({"token": token, "login": "mallory", "password": "correct horse battery staple"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 410);
    assert_eq!(
        again.json::<Value>().await.unwrap()["error"]["code"],
        "setup_link_invalid"
    );
    let audit = s
        .json(reqwest::Method::GET, "/v1/audit?limit=1000", &s.key)
        .await;
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "user.create"
                && e["actor"] == "setup-link"
                && e["outcome"] == "ok"),
        "{audit}"
    );
    // The approval given in the browser opened that video to carol, and the
    // setting she turned off is off.
    let open = carol(&[
        "admin", "access", "open", "--tenant", "default", "--video", &support,
    ]);
    assert!(
        open.status.success(),
        "{}",
        String::from_utf8_lossy(&open.stderr)
    );
    assert_eq!(open.stdout, std::fs::read(&clip).unwrap());
    let r = s
        .req(reqwest::Method::GET, "/v1/access/settings", &s.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["require_approval"], false);
    let found: Value = serde_json::from_slice(out.stdout.trim_ascii()).unwrap();
    eprintln!("browser run: {found}");
    assert!(
        std::fs::read_dir(&artifacts).unwrap().count() >= 20,
        "screenshots of every page at both widths"
    );
    // Nothing the test typed leaked into the server's log.
    let log = std::fs::read_to_string(s.log_path()).unwrap();
    assert!(!log.contains("correct horse battery staple"));
}
