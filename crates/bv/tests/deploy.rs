//! The deployment files in `deploy/` are linted with what this machine has:
//! every `BV_*` setting they give is one `bv` accepts (`bv config check`
//! refuses unknown names and bad values), and the systemd units pass
//! `systemd-analyze verify` without a single warning. The Dockerfile and the
//! compose file need a container runtime this machine does not have; their
//! settings are checked here, the image build is not.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// `bv config check` with exactly `vars` (plus a scratch data directory and
/// the installed models): panics with bv's message when it refuses them.
fn config_check(what: &str, vars: &[(String, String)]) {
    let scratch = tempfile::tempdir().unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_bv"));
    for (k, _) in std::env::vars() {
        if k.starts_with("BV_") {
            c.env_remove(k);
        }
    }
    for (k, v) in vars {
        c.env(k, v);
    }
    c.env("BV_DATA_DIR", scratch.path())
        .env("BV_MODEL_DIR", common::data_dir().join("models"))
        .args(["config", "check"]);
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `NAME=value` lines of an environment file.
fn env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("NAME=value");
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[test]
fn the_environment_file_holds_only_settings_bv_accepts() {
    let vars = env_file(&std::fs::read_to_string(deploy().join("bettervideo.env")).unwrap());
    assert!(vars.iter().any(|(k, _)| k == "BV_CATALOG_URL"));
    config_check("deploy/bettervideo.env", &vars);
    // The check is real: a misspelt name is refused.
    let mut bad = vars.clone();
    bad.push(("BV_VAULT_S3_BUCKETT".into(), "x".into()));
    let r = std::panic::catch_unwind(|| config_check("misspelt", &bad));
    assert!(r.is_err(), "an unknown BV_* name must be refused");
}

#[test]
fn the_compose_file_gives_only_settings_bv_accepts() {
    let text = std::fs::read_to_string(deploy().join("compose/compose.yaml")).unwrap();
    let vars: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| {
            let (k, v) = l.trim().split_once(": ")?;
            k.starts_with("BV_").then(|| {
                let v = v.trim().trim_matches('"');
                // ${BV_VAULT_ROOT_KEY:?…} comes from the operator's shell.
                let v = if v.starts_with("${") {
                    format!("v1:{}", "ab".repeat(32))
                } else {
                    v.to_string()
                };
                (k.to_string(), v)
            })
        })
        .collect();
    assert!(vars.len() >= 8, "{vars:?}");
    config_check("deploy/compose/compose.yaml", &vars);
}

#[test]
fn the_systemd_units_verify_without_warnings() {
    let units = tempfile::tempdir().unwrap();
    let env = env_file(&std::fs::read_to_string(deploy().join("bettervideo.env")).unwrap());
    for name in ["bettervideo-serve.service", "bettervideo-worker.service"] {
        let text = std::fs::read_to_string(deploy().join("systemd").join(name)).unwrap();
        // Their own Environment= lines are settings too.
        let mut vars = env.clone();
        for l in text.lines() {
            if let Some(kv) = l.strip_prefix("Environment=") {
                let (k, v) = kv.split_once('=').unwrap();
                vars.push((k.to_string(), v.to_string()));
            }
        }
        config_check(name, &vars);
        // verify needs the binary where ExecStart names it: point it at this build.
        let text = text.replace("/usr/local/bin/bv", env!("CARGO_BIN_EXE_bv"));
        std::fs::write(units.path().join(name), text).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(units.path().join("bettervideo-serve.service"))
        .arg(units.path().join("bettervideo-worker.service"))
        .output()
        .expect("systemd-analyze (make setup installs systemd)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}
