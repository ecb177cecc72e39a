//! The command line as a user drives it: models, configuration, progress
//! events, Ctrl-C, and refusing a model file that does not match its pin.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn models_list_and_verify() {
    let out = bv().args(["models", "list", "--json"]).output().unwrap();
    assert!(out.status.success());
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let m = &list["models"][0];
    assert_eq!(m["name"], "realesr-animevideov3");
    assert_eq!(m["scales"], serde_json::json!([2, 3, 4]));
    assert_eq!(m["license"], "BSD-3-Clause");
    assert_eq!(m["installed"], true);
    let names = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(&list["presets"]),
        ["anime", "live-action", "denoise-light", "denoise-strong"]
    );
    for p in list["presets"].as_array().unwrap() {
        assert!(names(&list["models"]).contains(&p["model"].as_str().unwrap().to_string()));
        assert!(!p["note"].as_str().unwrap().is_empty());
    }
    assert!(names(&list["models"]).contains(&"realcugan-pro-denoise3x".to_string()));
    let text = bv().args(["models", "list"]).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("denoise-strong") && text.contains("Camera footage"),
        "{text}"
    );
    let out = bv().args(["models", "verify"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_tampered_model_is_refused() {
    let d = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(data_dir().join("models")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), d.path().join(e.file_name())).unwrap();
    }
    let bin = d.path().join("realesr-animevideov3-x4.bin");
    let mut bytes = std::fs::read(&bin).unwrap();
    bytes[1000] ^= 1; // one flipped bit in the weights
    std::fs::write(&bin, bytes).unwrap();

    let out = bv()
        .env("BV_MODEL_DIR", d.path())
        .args(["models", "verify"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stdout).contains("mismatch"));

    let src = d.path().join("in.mp4");
    h264_clip(&src, "testsrc2=s=32x32:d=0.2");
    let out = bv()
        .env("BV_MODEL_DIR", d.path())
        .args(["enhance", "--json"])
        .arg(&src)
        .arg("-o")
        .arg(d.path().join("o.mp4"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"model_hash_mismatch\""));
    assert!(!d.path().join("o.mp4").exists());
}

#[test]
fn config_show_and_check() {
    let out = bv()
        .env("BV_ENGINE_TILE", "320")
        .args(["config", "show"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("tile = 320"), "{text}");
    assert!(
        bv().args(["config", "check"])
            .output()
            .unwrap()
            .status
            .success()
    );
    let bad = bv()
        .env("BV_ENGINE_THREADS", "lots")
        .args(["config", "check"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("BV_ENGINE_THREADS"));
}

#[test]
fn json_progress_then_done() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("in.mp4");
    h264_clip(&src, "testsrc2=s=48x32:r=25:d=0.4");
    let out = d.path().join("out.mkv");
    let run = bv()
        .args(["enhance", "--json", "--scale", "2"])
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success());
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&run.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let progress: Vec<_> = events.iter().filter(|e| e["event"] == "progress").collect();
    assert_eq!(progress.len(), 10);
    assert_eq!(progress.last().unwrap()["frames"], 10);
    assert_eq!(progress.last().unwrap()["total"], 10);
    let done = events.last().unwrap();
    assert_eq!(done["event"], "done");
    assert_eq!(done["output_size"], serde_json::json!([96, 64]));
    assert!(done["inference_seconds"].as_f64().unwrap() > 0.0);
    assert!(out.exists());
    assert_eq!(listing(d.path()), ["in.mp4", "out.mkv"]);
}

/// The README's first example, as a user types it: relative paths from the
/// folder the files are in (every other test used absolute ones, and
/// `-o output.mp4` failed to build the jail).
#[test]
fn relative_paths_work_from_the_current_folder() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("sub")).unwrap();
    h264_clip(&d.path().join("input.mp4"), "testsrc2=s=48x32:r=25:d=0.2");
    for (cwd, input, output) in [
        (".", "input.mp4", "output.mp4"),
        (".", "./input.mp4", "./dot.mkv"),
        ("sub", "../input.mp4", "../up.mp4"),
    ] {
        let run = bv()
            .current_dir(d.path().join(cwd))
            .args(["enhance", "--scale", "2", input, "-o", output])
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "bv enhance {input} -o {output} in {cwd}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(d.path().join(cwd).join(output).is_file(), "{output}");
    }
    assert_eq!(
        listing(d.path()),
        ["dot.mkv", "input.mp4", "output.mp4", "sub", "up.mp4"],
        "no partial file left behind"
    );

    // A relative data directory (`BV_DATA_DIR=./data`) means the folder the
    // command started in, inside the jail too (it meant `/data` there).
    std::fs::create_dir(d.path().join("data")).unwrap();
    std::os::unix::fs::symlink(data_dir().join("models"), d.path().join("data/models")).unwrap();
    let run = bv()
        .current_dir(d.path())
        .env("BV_DATA_DIR", "./data")
        .args(["enhance", "--scale", "2", "input.mp4", "-o", "rel-data.mp4"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "BV_DATA_DIR=./data: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(d.path().join("rel-data.mp4").is_file());

    // No models where the data directory says: the code of a missing model
    // and the fix, not a sandbox failure.
    let run = bv()
        .current_dir(d.path())
        .env("BV_DATA_DIR", "./fresh")
        .args(["enhance", "--scale", "2", "input.mp4", "-o", "never.mp4"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(5), "{err}");
    assert!(err.starts_with("error[model_file_missing]"), "{err}");
    assert!(err.contains("run `make setup`"), "{err}");
    assert!(
        err.contains(&format!("{}/fresh/models", d.path().display())),
        "{err}"
    );
    assert!(!d.path().join("never.mp4").exists());
}

/// An empty or missing file is refused before any service is contacted
/// (no profile is even needed), with its code and exit status.
#[test]
fn empty_and_missing_files_are_refused_before_contacting_the_service() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("empty.mp4"), b"").unwrap();
    for (args, code, status) in [
        (vec!["upload", "empty.mp4"], "input_empty", 3),
        (
            vec!["submit", "empty.mp4", "-o", "out.mp4"],
            "input_empty",
            3,
        ),
        (vec!["upload", "nope.mp4"], "input_not_found", 3),
    ] {
        let run = bv()
            .current_dir(d.path())
            .env("BV_DATA_DIR", d.path().join("data"))
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(status), "{args:?}: {err}");
        assert!(err.contains(&format!("error[{code}]")), "{args:?}: {err}");
    }
}

#[test]
fn ctrl_c_stops_promptly_and_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("long.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x180:r=25:d=60",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        src.to_str().unwrap(),
    ]);
    let out = d.path().join("out.mp4");
    let mut child = bv()
        .args(["enhance", "--json"])
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Wait for real work to be under way.
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("\"progress\""), "{first}");
    let partials = listing(d.path())
        .into_iter()
        .filter(|n| n.contains(".partial."))
        .count();
    assert_eq!(
        partials, 1,
        "the output is written to a temporary file first"
    );
    let t = Instant::now();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let status = child.wait().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(status.code(), Some(130));
    assert!(rest.last().unwrap().contains("\"cancelled\""), "{rest:?}");
    assert!(!out.exists());
    assert_eq!(
        listing(d.path()),
        ["long.mp4"],
        "no partial output may remain"
    );
    // No FFmpeg process of this job is left running.
    let ps = std::process::Command::new("pgrep")
        .args(["-f", d.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        ps.stdout.is_empty(),
        "leftover processes: {}",
        String::from_utf8_lossy(&ps.stdout)
    );
}

#[test]
fn device_selection() {
    let frame = vec![128u8; 16 * 16 * 3];
    // Auto falls back to the CPU where no GPU is usable; cpu is always there.
    for device in ["auto", "cpu"] {
        let mut cmd = bv();
        cmd.args([
            "infer-pipe",
            "--width",
            "16",
            "--height",
            "16",
            "--device",
            device,
        ]);
        assert_eq!(pipe(cmd, &frame).len(), 64 * 64 * 3, "{device}");
    }
    // An explicit GPU that cannot be used is a clear error, not a silent fallback.
    if !bv_engine::gpu::cuda_driver_present() {
        let out = bv()
            .args([
                "infer-pipe",
                "--width",
                "16",
                "--height",
                "16",
                "--device",
                "cuda:0",
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(6));
        assert!(String::from_utf8_lossy(&out.stderr).contains("error[device_unavailable]"));
    }
    let out = bv()
        .args([
            "infer-pipe",
            "--width",
            "16",
            "--height",
            "16",
            "--device",
            "tpu",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("error[invalid_option]"));
}

/// `bv doctor` on a fresh data directory without models: a failing line
/// with the fix, exit non-zero; with the models `make setup` installed:
/// exit 0, every check ok or a warning with its fix. `--json` says the same.
#[test]
fn bv_doctor_fails_without_models_with_the_fix_and_passes_after_setup() {
    let d = tempfile::tempdir().unwrap();
    let fresh = || {
        let mut c = bv();
        c.current_dir(d.path())
            .env("BV_DATA_DIR", "data")
            .env("BV_MODEL_DIR", d.path().join("no-models"));
        c
    };
    let out = fresh().arg("doctor").output().unwrap();
    let (text, err) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{text}{err}");
    assert!(err.contains("error[doctor_failed]"), "{err}");
    let models = text
        .lines()
        .position(|l| l.starts_with("FAIL  models"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        text.lines()
            .nth(models + 1)
            .unwrap()
            .contains("fix: run `make setup`"),
        "{text}"
    );
    // Checked, not set up: no catalog and no root key were made.
    assert!(!d.path().join("data/catalog.db").exists());
    assert!(!d.path().join("data/root.key").exists());
    // Everything else was checked too, one line each.
    for name in [
        "user namespaces",
        "sandbox",
        "ffmpeg",
        "seccomp",
        "landlock",
        "cgroups",
        "catalog",
        "clock",
        "vault",
        "disk",
        "certificate",
        "gpus",
    ] {
        assert!(
            text.lines().any(|l| l[6..].starts_with(name)),
            "{name} missing: {text}"
        );
    }

    let out = fresh()
        .env("BV_MODEL_DIR", data_dir().join("models"))
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert_eq!(v["ok"], true, "{v:#}");
    for c in v["checks"].as_array().unwrap() {
        assert_ne!(c["status"], "fail", "{c}");
        if c["status"] == "warn" {
            assert!(c["fix"].is_string(), "{c}");
        }
    }
}

/// A command whose reader is gone (`bv config show | head -0`) ends as
/// `ls` would, by SIGPIPE, without a panic message. The pipe's read end is
/// closed before the command starts, so its first write fails every time.
#[test]
fn printing_commands_end_quietly_on_a_closed_pipe() {
    use std::os::unix::process::ExitStatusExt;
    for args in [&["config", "show"][..], &["models", "list"][..]] {
        let (read, write) = nix::unistd::pipe().unwrap();
        drop(read);
        let out = bv()
            .args(args)
            .stdout(Stdio::from(write))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(
            out.status.signal(),
            Some(13),
            "{args:?}: {:?} {err}",
            out.status
        );
    }
}

/// `bv login` says what is wrong and what to do: a plain-HTTP URL, no
/// scheme, no key on standard input, nothing listening.
#[test]
fn bv_login_errors_say_what_to_do() {
    let d = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let https = format!("https://127.0.0.1:{port}");
    for (url, key, status, says) in [
        (
            "http://localhost:8443",
            "bv_x",
            3,
            "speaks only HTTPS; use https://localhost:8443",
        ),
        ("localhost:8443", "bv_x", 3, "not a service URL"),
        (https.as_str(), "", 3, "no API key on standard input"),
        (
            https.as_str(),
            "bv_x",
            1,
            "nothing answers there: is `bv serve` running",
        ),
    ] {
        let mut c = bv()
            .current_dir(d.path())
            .env("BV_DATA_DIR", d.path().join("data"))
            .args(["login", url])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            // The command may have refused (and exited) before reading it.
            let _ = writeln!(c.stdin.take().unwrap(), "{key}");
        }
        let out = c.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(status), "{url}: {err}");
        assert!(err.contains(says), "{url}: {err}");
        assert!(!d.path().join("data/client/profile.json").exists());
    }
}

/// On a terminal, a key typed at `bv login` is not echoed, and Ctrl-C at the
/// prompt cancels cleanly (exit 130) instead of leaving echo off. Driven
/// through a real pseudo-terminal (Python's `pty`).
#[test]
fn secrets_typed_on_a_terminal_are_not_echoed_and_ctrl_c_cancels() {
    let d = tempfile::tempdir().unwrap();
    let script = r#"
import os, pty, sys, time
exe, data, typed = sys.argv[1], sys.argv[2], sys.argv[3].encode().decode('unicode_escape').encode('latin-1')
pid, fd = pty.fork()
if pid == 0:
    os.environ['BV_DATA_DIR'] = data
    os.execv(exe, [exe, 'login', 'https://127.0.0.1:1'])
out = b''
deadline = time.time() + 20
while b'(not shown): ' not in out and time.time() < deadline:
    out += os.read(fd, 1024)
os.write(fd, typed)
while time.time() < deadline:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode('utf-8', 'replace'))
sys.stdout.write('\nEXIT %d\n' % os.waitstatus_to_exitcode(status))
"#;
    let run = |typed: &str| {
        let out = std::process::Command::new("python3")
            .args(["-c", script, env!("CARGO_BIN_EXE_bv")])
            .arg(d.path().join("data"))
            .arg(typed)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = run("bv_0123456789abcdef_SECRETSECRET\\r");
    assert!(out.contains("API key (not shown): "), "{out}");
    assert!(!out.contains("SECRETSECRET"), "the key was echoed: {out}");
    assert!(out.contains("nothing answers there"), "{out}");
    let out = run("bv_part\\x03");
    assert!(out.contains("error[cancelled]"), "{out}");
    assert!(out.contains("EXIT 130"), "{out}");
    assert!(!out.contains("bv_part"), "{out}");
}
