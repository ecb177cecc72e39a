//! The architecture's arrows, checked on the dependency graph cargo
//! resolves (`cargo metadata`), so a forbidden `use` cannot compile in the
//! first place (decision 0029):
//!
//! - the domain layer (`bv-service`) lists no HTTP crate (axum, hyper, http,
//!   tower, reqwest) among its dependencies — what the vault's S3 client
//!   pulls in below it is the vault's business;
//! - the worker reaches neither the API nor the engine, at any depth;
//! - the API never reaches the engine (it parses no media);
//! - the engine reaches no key, database or API crate;
//! - nothing but the `bv` binary depends on the API.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// Normal (not dev) dependencies of each package, by name.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    // This host's platform only: other platforms' crates may not be downloaded.
    let platform = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--offline", "--locked"])
        .args(["--filter-platform", &platform])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: Value = serde_json::from_slice(&out.stdout).unwrap();
    let name_of: BTreeMap<&str, &str> = m["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for node in m["resolve"]["nodes"].as_array().unwrap() {
        let me = name_of[node["id"].as_str().unwrap()].to_string();
        let deps = g.entry(me).or_default();
        for d in node["deps"].as_array().unwrap() {
            let normal = d["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null());
            if normal {
                deps.insert(name_of[d["pkg"].as_str().unwrap()].to_string());
            }
        }
    }
    g
}

/// Everything `root` reaches through normal dependencies.
fn closure(g: &BTreeMap<String, BTreeSet<String>>, root: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![root.to_string()];
    while let Some(p) = todo.pop() {
        for d in g.get(&p).into_iter().flatten() {
            if seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    seen
}

#[test]
fn the_arrows_the_architecture_forbids_do_not_exist() {
    let g = graph();
    let direct = |p: &str| g.get(p).cloned().unwrap_or_default();
    for http in [
        "axum",
        "hyper",
        "http",
        "tower",
        "reqwest",
        "hyper-util",
        "tower-http",
    ] {
        assert!(
            !direct("bv-service").contains(http),
            "bv-service depends on {http}"
        );
    }
    assert!(
        ["bv-catalog", "bv-vault", "bv-crypto", "bv-job"]
            .iter()
            .all(|p| direct("bv-service").contains(*p)),
        "the domain sits on the catalog, the vault, crypto and the job contract"
    );
    let worker = closure(&g, "bv-worker");
    for p in ["bv-api", "bv-engine", "axum"] {
        assert!(!worker.contains(p), "bv-worker reaches {p}");
    }
    assert!(worker.contains("bv-service") && worker.contains("bv-sandbox"));
    assert!(
        !closure(&g, "bv-api").contains("bv-engine"),
        "the API reaches the engine"
    );
    let engine = closure(&g, "bv-engine");
    for p in [
        "bv-crypto",
        "bv-vault",
        "bv-catalog",
        "bv-api",
        "bv-service",
        "bv-worker",
    ] {
        assert!(!engine.contains(p), "the engine reaches {p}");
    }
    let job = closure(&g, "bv-job");
    assert!(
        job.iter().all(|p| !p.starts_with("bv-")),
        "the job contract stands alone: {job:?}"
    );
    let users: Vec<&String> = g
        .iter()
        .filter(|(_, deps)| deps.contains("bv-api"))
        .map(|(p, _)| p)
        .collect();
    assert_eq!(users, ["bv"], "only the binary uses the API");
}
