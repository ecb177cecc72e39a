//! Typed errors reach the exit status: the binary's admin and vault
//! commands, run as an operator would on a fresh data directory, exit with
//! the status their error's code documents (README, "Exit statuses") —
//! not 1 for everything, as when errors were flattened to strings.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bv(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bv"));
    for (k, _) in std::env::vars() {
        if k.starts_with("BV_") {
            c.env_remove(k);
        }
    }
    c.env("BV_DATA_DIR", data).stdin(Stdio::null());
    c
}

fn run(c: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = c.output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into(),
        String::from_utf8_lossy(&stderr).into(),
    )
}

/// Every regular file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn admin_and_vault_failures_exit_with_their_documented_status() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();

    // A tenant that does not exist: not_found, bad input (3).
    let (code, _, err) = run(bv(d).args(["admin", "tenant", "export", "nosuch"]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("error[not_found]"), "{err}");

    // An erasure not confirmed with the tenant's name: refused (3), nothing erased.
    let (code, out, err) = run(bv(d).args(["admin", "tenant", "create", "acme"]));
    assert_eq!(code, 0, "{err}");
    let tenant: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (code, _, err) = run(bv(d).args(["admin", "tenant", "erase", "acme", "--confirm", "acm"]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("error[confirmation_required]"), "{err}");
    let (code, out, _) = run(bv(d).args(["admin", "tenant", "export", "acme"]));
    assert_eq!(code, 0);
    assert!(out.contains("bettervideo-tenant-export/1"));

    // A stored object with one bit flipped: integrity (7), and no plaintext written.
    let t = tenant["id"].as_str().unwrap();
    let input = d.join("plain.bin");
    std::fs::write(&input, vec![42u8; 300_000]).unwrap();
    let (code, out, err) =
        run(bv(d).args(["vault", "put", "--tenant", t, input.to_str().unwrap()]));
    assert_eq!(code, 0, "{err}");
    let object = serde_json::from_str::<serde_json::Value>(&out).unwrap()["object"]
        .as_str()
        .unwrap()
        .to_string();
    let blobs = files(&d.join("blobs"));
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    let mut sealed = std::fs::read(&blobs[0]).unwrap();
    let mid = sealed.len() / 2;
    sealed[mid] ^= 0x01;
    std::fs::write(&blobs[0], sealed).unwrap();
    let got = d.join("got.bin");
    let (code, _, err) = run(bv(d).args([
        "vault",
        "get",
        "--tenant",
        t,
        &object,
        "-o",
        got.to_str().unwrap(),
    ]));
    assert_eq!(code, 7, "{err}");
    assert!(err.contains("error[sealed_auth_failed]"), "{err}");
    assert!(
        !got.exists() || std::fs::read(&got).unwrap().len() < 300_000,
        "the whole plaintext was not written"
    );
}
