//! The sandbox self-test: a fresh jail, exactly like a job's, in which `bv`
//! tries what a hostile job would try (reach the network, read host files,
//! write outside its scratch) and reads back what confines it (capabilities,
//! no-new-privileges, seccomp, resource limits, the scratch size). `bv serve`
//! runs it at start-up and the security report quotes the result; `bv
//! sandbox-check` runs it by hand.
//!
//! Nothing here is assumed: every field is what the probe observed.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Config;

/// What the probe inside the jail observed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Probes {
    /// Each network attempt and how it failed (or `ESCAPED`).
    pub network: BTreeMap<String, String>,
    /// Each host path and what opening it gave.
    pub host_files: BTreeMap<String, String>,
    /// Each write outside `/scratch` and what it gave.
    pub writes: BTreeMap<String, String>,
    /// `CapEff` from /proc/self/status.
    pub capabilities: String,
    /// `NoNewPrivs`.
    pub no_new_privs: String,
    /// `Seccomp` (2: a filter is active).
    pub seccomp: String,
    /// The uid the job runs as, inside.
    pub uid: String,
    /// Soft limits from /proc/self/limits, by name.
    pub limits: BTreeMap<String, String>,
    /// The `/scratch` mount's options.
    pub scratch: String,
}

/// The self-test's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct SelfTest {
    /// Every check held.
    pub ok: bool,
    /// When it ran (RFC 3339).
    pub checked_at: String,
    /// Checks by name: `true` when it held.
    pub checks: BTreeMap<&'static str, bool>,
    /// What the probe saw.
    pub probes: Option<Probes>,
    /// Why it could not run, if it could not.
    pub error: Option<String>,
}

fn failed(e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::NotFound => "not found".into(),
        ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Inside the jail (`bv sandbox-probe HOST_PORT PATH…`): prints one JSON line.
pub fn probe_inside(host_port: u16, paths: &[String]) -> anyhow::Result<()> {
    let mut p = Probes::default();
    let t = Duration::from_secs(1);
    let mut net = |name: &str, r: std::io::Result<()>| {
        p.network.insert(
            name.into(),
            r.map_or_else(|e| failed(&e), |()| "ESCAPED".into()),
        );
    };
    net(
        "tcp to the host's loopback",
        TcpStream::connect_timeout(&([127, 0, 0, 1], host_port).into(), t).map(drop),
    );
    net(
        "tcp to 1.1.1.1:443",
        TcpStream::connect_timeout(&([1, 1, 1, 1], 443).into(), t).map(drop),
    );
    net(
        "udp to 9.9.9.9:53",
        UdpSocket::bind("0.0.0.0:0").and_then(|s| s.send_to(b"x", "9.9.9.9:53").map(drop)),
    );
    net(
        "dns lookup of example.com",
        ("example.com", 443).to_socket_addrs().map(drop),
    );
    for path in paths {
        let r = std::fs::read(path);
        p.host_files.insert(
            path.clone(),
            r.map_or_else(|e| failed(&e), |_| "ESCAPED".into()),
        );
    }
    for path in ["/probe", "/usr/probe", "/etc/probe", "/opt/bv/probe"] {
        let r = std::fs::File::create(path).and_then(|mut f| f.write_all(b"x"));
        p.writes.insert(
            path.into(),
            r.map_or_else(|e| failed(&e), |()| "ESCAPED".into()),
        );
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    p.capabilities = field("CapEff:");
    p.no_new_privs = field("NoNewPrivs:");
    p.seccomp = field("Seccomp:");
    p.uid = field("Uid:")
        .split_whitespace()
        .next()
        .unwrap_or("unknown")
        .to_string();
    for line in std::fs::read_to_string("/proc/self/limits")
        .unwrap_or_default()
        .lines()
        .skip(1)
    {
        // "Max cpu time              604800               604800               seconds"
        if let Some(name) = line.get(..26) {
            let soft = line[26..].split_whitespace().next().unwrap_or_default();
            p.limits.insert(name.trim().to_string(), soft.to_string());
        }
    }
    p.scratch = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/scratch"))
        .map(|l| l.split(" - ").nth(1).unwrap_or_default().to_string())
        .unwrap_or_else(|| "not mounted".into());
    println!("{}", serde_json::to_string(&p)?);
    Ok(())
}

/// Host paths a job must not be able to read: the service's data directory
/// (root key, catalog, TLS key), the host's password hashes, root's home.
fn forbidden_paths(cfg: &Config) -> Vec<String> {
    let d = &cfg.data_dir;
    vec![
        d.join("root.key").display().to_string(),
        d.join("catalog.db").display().to_string(),
        "/etc/shadow".into(),
        "/root/.bash_history".into(),
        d.join("tls/key.pem").display().to_string(),
    ]
}

fn verdict(cfg: &Config, p: &Probes) -> BTreeMap<&'static str, bool> {
    let none_escaped =
        |m: &BTreeMap<String, String>| !m.is_empty() && m.values().all(|v| v != "ESCAPED");
    let limit =
        |name: &str, want: u64| p.limits.get(name).map(String::as_str) == Some(&want.to_string());
    let l = &cfg.sandbox.limits;
    let scratch_kib = l.scratch_bytes / 1024;
    BTreeMap::from([
        ("network_refused", none_escaped(&p.network)),
        ("host_files_unreadable", none_escaped(&p.host_files)),
        ("read_only_outside_scratch", none_escaped(&p.writes)),
        ("no_capabilities", p.capabilities == "0000000000000000"),
        ("no_new_privileges", p.no_new_privs == "1"),
        ("seccomp_filter", p.seccomp == "2"),
        (
            "limits_active",
            limit("Max address space", l.memory_bytes)
                && limit("Max cpu time", l.cpu_seconds)
                && limit("Max file size", l.file_size_bytes)
                && limit("Max open files", l.open_files),
        ),
        (
            "scratch_size_capped",
            p.scratch.contains(&format!("size={scratch_kib}k")),
        ),
    ])
}

/// A self-test that did not run (what is reported instead).
pub fn not_run() -> SelfTest {
    SelfTest {
        ok: false,
        checked_at: bv_service::time::rfc3339_ms(bv_catalog::now_ms()),
        checks: BTreeMap::new(),
        probes: None,
        error: Some("not run".into()),
    }
}

/// Runs the self-test in a fresh jail configured like every job's.
pub fn run(cfg: &Config) -> SelfTest {
    let checked_at = bv_service::time::rfc3339_ms(bv_catalog::now_ms());
    let fail = |e: String| SelfTest {
        ok: false,
        checked_at: checked_at.clone(),
        checks: BTreeMap::new(),
        probes: None,
        error: Some(e),
    };
    // A listener on the host's loopback that a job must not reach.
    let Ok(host) = TcpListener::bind("127.0.0.1:0") else {
        return fail("cannot bind a loopback port for the probe".into());
    };
    let port = host.local_addr().map(|a| a.port()).unwrap_or(0);
    let jail = match crate::config::runner(cfg) {
        Ok(r) => r.jail(Vec::new()),
        Err(e) => return fail(format!("{e:#}")),
    };
    let mut args = vec!["sandbox-probe".to_string(), port.to_string()];
    args.extend(forbidden_paths(cfg));
    let mut line = None;
    let out = jail.run(
        bv_worker::runner::BV_INSIDE,
        &args,
        b"",
        &mut |l| line = Some(l.to_string()),
        &AtomicBool::new(false),
    );
    let out = match out {
        Ok(o) => o,
        Err(e) => return fail(format!("the sandbox could not start: {e}")),
    };
    let Some(probes) = line.and_then(|l| serde_json::from_str::<Probes>(&l).ok()) else {
        return fail(format!(
            "the probe reported nothing (exit {:?}): {}",
            out.exit,
            out.stderr.trim()
        ));
    };
    let mut checks = verdict(cfg, &probes);
    checks.insert("torn_down", out.teardown.clean());
    SelfTest {
        ok: checks.values().all(|v| *v),
        checked_at,
        checks,
        probes: Some(probes),
        error: None,
    }
}

/// `bv sandbox-check`: runs the self-test and prints it; fails unless every check held.
pub fn check(cfg: &Config) -> anyhow::Result<()> {
    let r = run(cfg);
    println!("{}", serde_json::to_string_pretty(&r)?);
    if !r.ok {
        return Err(crate::exit::JobFailed {
            code: "sandbox_self_test_failed".into(),
            message: "the sandbox self-test failed; see the checks above".into(),
        }
        .into());
    }
    Ok(())
}
