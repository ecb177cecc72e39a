//! A real third-party tus client (tus-js-client from npm, run by Node)
//! uploads, is interrupted, resumes, and the stored object round-trips.

use std::path::PathBuf;

use bv_catalog::Backend;
use reqwest::Method;
use serde_json::Value;

use crate::harness::{Server, payload};
use bv_testkit::on_both;

on_both!(backend; tus_js_client_uploads_is_interrupted_and_resumes);

fn tus_js_modules() -> PathBuf {
    let data = std::env::var_os("BV_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".local/share/bettervideo")
        });
    let m = data.join("node/tus-js/node_modules");
    assert!(
        m.join("tus-js-client").is_dir(),
        "{} is missing: run `make setup`",
        m.display()
    );
    m
}

async fn tus_js_client_uploads_is_interrupted_and_resumes(b: Backend) {
    let s = Server::start(b).await;
    let data = payload(5_300_000, b"TUSJS");
    let file = s.dir.path().join("input.bin");
    std::fs::write(&file, &data).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/tus-js/upload.cjs");
    let mut node = std::process::Command::new("node");
    node.arg(&script)
        .args([&s.url, &s.key, file.to_str().unwrap()])
        .env("NODE_PATH", tus_js_modules())
        .env("NODE_EXTRA_CA_CERTS", s.dir.path().join("tls/ca.pem"));
    let out = tokio::task::spawn_blocking(move || node.output())
        .await
        .unwrap()
        .unwrap();
    std::fs::remove_file(&file).unwrap();
    assert!(
        out.status.success(),
        "node: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    // It was interrupted part-way and resumed from the server's offset, not from zero.
    let interrupted = r["interruptedAt"].as_u64().unwrap();
    assert!(interrupted > 0 && interrupted < data.len() as u64, "{r}");
    let resumed_from = r["heads"][0].as_u64().unwrap();
    assert_eq!(
        resumed_from, interrupted,
        "HEAD reports what was stored: {r}"
    );
    assert!(r["patches"].as_u64().unwrap() >= 4, "{r}");
    let video = r["videoId"].as_str().unwrap();
    let got = s
        .req(Method::GET, &format!("/v1/videos/{video}/content"), &s.key)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(
        got.as_ref() == data.as_slice(),
        "the object round-trips byte for byte"
    );
    let v: Value = s
        .req(Method::GET, &format!("/v1/videos/{video}"), &s.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["name"], "tus-js.bin");
}
