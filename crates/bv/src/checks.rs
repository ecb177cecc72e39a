//! The host checks behind `bv doctor`, the start-up banner, `/readyz` and the
//! worker's gate. Each says what it found and, when it fails, what to do.
//!
//! [`processing`] holds what a job needs (models, the sandbox, FFmpeg): a
//! worker leases nothing until those pass. The rest ([`all`]) is what an
//! operator checks before trusting a host: the kernel's confinement
//! features, the catalog and its clock, the vault, free disk, the TLS
//! certificate, GPUs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bv_api::ready::Check;
use bv_engine::model::ModelStore;

use crate::cmd::selftest::SelfTest;
use crate::config::Config;

/// What `make setup` does, for fixes that need it.
const SETUP: &str = "run `make setup` in the BetterVideo checkout";

/// What to do when the models in `dir` are missing or different.
pub fn models_fix(dir: &Path) -> String {
    format!(
        "{SETUP} (it installs the pinned models into $BV_DATA_DIR/models, by default \
         ~/.local/share/bettervideo/models), or point model_dir / BV_MODEL_DIR at a directory \
         that holds them (looked in {})",
        dir.display()
    )
}

/// The pinned models are all there and match their digests.
pub fn models(cfg: &Config) -> Check {
    let dir = cfg.model_dir();
    let fix = models_fix(&dir);
    if !dir.is_dir() {
        return Check::fail(
            "models",
            format!("no model directory at {}", dir.display()),
            fix,
        );
    }
    let store = ModelStore::new(dir.clone());
    let files = store.verify_all();
    let bad: Vec<_> = files.iter().filter(|f| f.status != "ok").collect();
    match bad.first() {
        None => Check::ok(
            "models",
            format!(
                "{} models, {} files match their pinned SHA-256 in {}",
                store.manifest().models.len(),
                files.len(),
                dir.display()
            ),
        ),
        Some(first) => Check::fail(
            "models",
            format!(
                "{} of {} model files missing or different in {} (first: {}, {})",
                bad.len(),
                files.len(),
                dir.display(),
                first.path.file_name().unwrap_or_default().to_string_lossy(),
                first.status
            ),
            fix,
        ),
    }
}

/// A fresh jail runs the self-test probe and every confinement holds.
pub fn sandbox(cfg: &Config) -> (Check, SelfTest) {
    let r = crate::cmd::selftest::run(cfg);
    let check = if r.ok {
        Check::ok(
            "sandbox",
            format!(
                "self-test passed: {} checks held in a fresh jail",
                r.checks.len()
            ),
        )
    } else if let Some(e) = &r.error {
        Check::fail(
            "sandbox",
            format!("no jail could run: {}", bv_job::codes::shown(e)),
            "run `bv sandbox-check` to see why; docs/sandbox.md says what the host must allow \
             (user namespaces, a writable /tmp, the model directory)",
        )
    } else {
        let failed: Vec<_> = r
            .checks
            .iter()
            .filter(|(_, held)| !**held)
            .map(|(name, _)| *name)
            .collect();
        Check::fail(
            "sandbox",
            format!("self-test failed: {}", failed.join(", ")),
            "run `bv sandbox-check` for what the probe saw; docs/sandbox.md says what each check needs",
        )
    };
    (check, r)
}

/// FFmpeg runs and has the encoders of every codec offered.
pub fn ffmpeg() -> Check {
    let fix = "install FFmpeg with libx264, libx265 and SVT-AV1 (`make setup` installs Debian's)";
    let run = |args: &[&str]| {
        Command::new("ffmpeg")
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
    };
    let version = match run(&["-hide_banner", "-version"]) {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .nth(2)
            .unwrap_or("?")
            .to_string(),
        Ok(o) => {
            return Check::fail(
                "ffmpeg",
                format!("`ffmpeg -version` exited {}", o.status),
                fix,
            );
        }
        Err(e) => return Check::fail("ffmpeg", format!("ffmpeg cannot be run: {e}"), fix),
    };
    let encoders = run(&["-hide_banner", "-encoders"])
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let missing: Vec<_> = bv_job::Codec::ALL
        .into_iter()
        .filter(|c| !encoders.contains(&format!(" {} ", c.encoder())))
        .collect();
    let names = |cs: &[bv_job::Codec]| {
        cs.iter()
            .map(|c| format!("{} ({})", c.as_str(), c.encoder()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if missing.is_empty() {
        Check::ok(
            "ffmpeg",
            format!(
                "version {version}; encoders for {}",
                names(&bv_job::Codec::ALL)
            ),
        )
    } else if missing.contains(&bv_job::Codec::H264) {
        Check::fail(
            "ffmpeg",
            format!(
                "version {version} lacks {} (h264 is the default)",
                names(&missing)
            ),
            fix,
        )
    } else {
        Check::warn(
            "ffmpeg",
            format!(
                "version {version} lacks {}: jobs asking for them fail",
                names(&missing)
            ),
            fix,
        )
    }
}

/// What a job needs on this host, in the order a fix should follow; the
/// self-test is returned too (the security report quotes it).
pub fn processing(cfg: &Config) -> (Vec<Check>, SelfTest) {
    let (sandbox, selftest) = sandbox(cfg);
    (vec![models(cfg), sandbox, ffmpeg()], selftest)
}

/// Checks what jobs need now and then, opens or closes `gate` by the result
/// and hands every result to `publish` (the first as soon as it is known).
/// With `repeat`, a failing host is checked again every 30 s, so `make
/// setup` run while the service runs is picked up, and a passing one every
/// 10 minutes; without (a process that runs no jobs), once.
pub fn watch_processing(
    cfg: Config,
    gate: Arc<bv_worker::Gate>,
    repeat: bool,
    publish: impl Fn(&[Check], &SelfTest) + Send + 'static,
) {
    std::thread::spawn(move || {
        loop {
            let (checks, selftest) = processing(&cfg);
            let failing: Vec<_> = checks
                .iter()
                .filter(|c| !c.passed())
                .map(Check::line)
                .collect();
            if failing.is_empty() {
                gate.open();
            } else {
                gate.close(failing.join("; "));
            }
            publish(&checks, &selftest);
            if !repeat {
                return;
            }
            std::thread::sleep(Duration::from_secs(if failing.is_empty() {
                600
            } else {
                30
            }));
        }
    });
}

/// User namespaces (every jail needs its own).
fn user_namespaces() -> Check {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    let fix = "allow them: `sysctl -w user.max_user_namespaces=15000` (and on Debian/Ubuntu \
               kernel.unprivileged_userns_clone=1, kernel.apparmor_restrict_unprivileged_userns=0)";
    match read("/proc/sys/user/max_user_namespaces").as_deref() {
        None => Check::fail("user namespaces", "not offered by this kernel", fix),
        Some("0") => Check::fail("user namespaces", "user.max_user_namespaces is 0", fix),
        Some(n) => {
            // Only unprivileged processes are affected by these two switches.
            let root = nix::unistd::Uid::effective().is_root();
            let blocked = !root
                && (read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0")
                    || read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref()
                        == Some("1"));
            if blocked {
                Check::fail(
                    "user namespaces",
                    "unprivileged user namespaces are switched off on this host",
                    fix,
                )
            } else {
                Check::ok("user namespaces", format!("allowed (up to {n})"))
            }
        }
    }
}

/// Per-job cgroups: created and removed once, as a job's would be.
fn cgroups(cfg: &Config) -> Check {
    if !cfg.sandbox.cgroups {
        return Check::warn(
            "cgroups",
            "off (sandbox.cgroups = false): jobs are limited by rlimits and a PID namespace only",
            "set sandbox.cgroups = true where the host offers cgroup v1 pids and memory",
        );
    }
    let id = format!("doctor-{}", std::process::id());
    match bv_sandbox::cgroup::JobCgroups::create(&id, 64 << 20, 16).map(|c| c.remove()) {
        Some(true) => Check::ok(
            "cgroups",
            "v1 pids and memory controllers writable: each job gets its own",
        ),
        Some(false) => Check::warn(
            "cgroups",
            format!("a test cgroup bettervideo-{id} could not be removed"),
            "remove it by hand (rmdir under /sys/fs/cgroup/pids and /sys/fs/cgroup/memory)",
        ),
        None => Check::warn(
            "cgroups",
            "not available to this process (no writable cgroup v1 pids and memory): jobs are \
             limited by rlimits and a PID namespace only",
            "run the service as root on a host with cgroup v1 pids and memory controllers \
             for per-job memory and process caps",
        ),
    }
}

/// Landlock, which the jail applies best-effort.
fn landlock() -> Check {
    match bv_sandbox::landlock_abi() {
        Ok(v) => Check::ok(
            "landlock",
            format!("ABI v{v}: a job can write only its own scratch and output"),
        ),
        Err(e) => Check::warn(
            "landlock",
            format!(
                "not offered by this kernel ({e}): jobs still run on a read-only root with \
                 seccomp, in their own mount namespace"
            ),
            "a kernel of 5.13 or later with Landlock among its LSMs (lsm=landlock,…) adds it",
        ),
    }
}

/// The self-test's seccomp observation.
fn seccomp(t: &SelfTest) -> Check {
    match t.checks.get("seccomp_filter") {
        Some(true) => Check::ok("seccomp", "a filter is active inside the jail"),
        Some(false) => Check::fail(
            "seccomp",
            "no filter was active inside the jail",
            "a kernel built with CONFIG_SECCOMP_FILTER is required",
        ),
        None => Check::fail(
            "seccomp",
            "unknown: the self-test did not run",
            "see the sandbox check",
        ),
    }
}

/// The nearest existing directory at or above `p` (a fresh data directory
/// does not exist yet; its filesystem does).
fn existing(p: &Path) -> PathBuf {
    p.ancestors()
        .find(|a| a.is_dir())
        .unwrap_or(Path::new("/"))
        .to_path_buf()
}

/// Free space where the data directory (sealed uploads, outputs, scratch) lives.
fn disk(cfg: &Config) -> Check {
    let at = existing(&cfg.data_dir);
    let st = match nix::sys::statvfs::statvfs(&at) {
        Ok(s) => s,
        Err(e) => {
            return Check::fail(
                "disk",
                format!("cannot read free space of {}: {e}", at.display()),
                "check the data directory (BV_DATA_DIR)",
            );
        }
    };
    let free = st.blocks_available() * st.fragment_size();
    let gib = free as f64 / f64::from(1u32 << 30);
    let detail = format!("{gib:.1} GiB free at {}", at.display());
    let fix = "free space on that filesystem or move the data directory (BV_DATA_DIR)";
    if free < 1 << 30 {
        Check::fail("disk", detail, fix)
    } else if free < 5 << 30 {
        Check::warn(
            "disk",
            format!("{detail}: uploads and outputs fill it fast"),
            fix,
        )
    } else {
        Check::ok("disk", detail)
    }
}

/// The catalog opens within a deadline, and its clock agrees with ours.
async fn catalog(cfg: &Config) -> (Vec<Check>, Option<bv_catalog::Catalog>) {
    let url = crate::config::redacted_url(&cfg.catalog_url());
    let open = tokio::time::timeout(
        Duration::from_secs(10),
        crate::cmd::serve::open_catalog(cfg),
    )
    .await;
    let fix = "check that the database runs and catalog.url (BV_CATALOG_URL) points at it";
    let c = match open {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            let detail = format!("{url}: {}", bv_job::codes::shown(&format!("{e:#}")));
            return (vec![Check::fail("catalog", detail, fix)], None);
        }
        Err(_) => {
            let detail = format!("{url}: no answer within 10 s");
            return (vec![Check::fail("catalog", detail, fix)], None);
        }
    };
    let mut out = vec![Check::ok("catalog", format!("{url} answers"))];
    let before = bv_catalog::now_ms();
    out.push(match c.clock_ms().await {
        Ok(None) => Check::ok("clock", "SQLite shares this host's clock"),
        Ok(Some(theirs)) => {
            // Their reading was taken somewhere within our round trip.
            let ours = (before + bv_catalog::now_ms()) / 2;
            let skew = ours - theirs;
            let detail = format!("{:+.2} s against the catalog's clock", skew as f64 / 1000.0);
            if skew.abs() > 2000 {
                Check::fail(
                    "clock",
                    detail,
                    "synchronise every host's clock (chrony or systemd-timesyncd): leases and \
                     signed links compare times written by several hosts",
                )
            } else {
                Check::ok("clock", detail)
            }
        }
        Err(e) => Check::fail(
            "clock",
            format!("cannot read the catalog's clock: {e}"),
            fix,
        ),
    });
    (out, Some(c))
}

/// The vault opens (root key readable, store reachable).
async fn vault(cfg: &Config, c: &bv_catalog::Catalog) -> Check {
    let hsm = cfg.vault.root_key_provider == "pkcs11";
    let at = if cfg.vault.backend == "s3" {
        format!(
            "S3 bucket {} at {}",
            cfg.vault.s3_bucket, cfg.vault.s3_endpoint
        )
    } else {
        format!("local store in {}", cfg.data_dir.display())
    };
    match tokio::time::timeout(
        Duration::from_secs(15),
        crate::cmd::vault::open_vault(cfg, c),
    )
    .await
    {
        Ok(Ok(_)) if hsm => Check::ok(
            "vault",
            format!(
                "{at} opens with its root key in PKCS#11 token {:?}",
                cfg.vault.pkcs11_token
            ),
        ),
        Ok(Ok(_)) => Check::ok("vault", format!("{at} opens with its root key")),
        Ok(Err(e)) => Check::fail(
            "vault",
            format!("{at}: {}", bv_job::codes::shown(&format!("{e:#}"))),
            if hsm {
                "see docs/keys.md: the token (vault.pkcs11_module, pkcs11_token, the PIN in BV_VAULT_PKCS11_PIN or pkcs11_pin_file) and the store's settings"
            } else {
                "see docs/vault.md: the root key (vault.root_key_file or BV_VAULT_ROOT_KEY) and the store's settings"
            },
        ),
        Err(_) => Check::fail(
            "vault",
            format!("{at}: no answer within 15 s"),
            "check that the object store runs and vault.s3_endpoint points at it",
        ),
    }
}

/// The certificate the service presents, and how long it stays valid.
fn certificate(cfg: &Config) -> Check {
    let (path, dev) = match &cfg.serve.tls_cert {
        Some(p) => (p.clone(), false),
        None => (cfg.data_dir.join("tls/cert.pem"), true),
    };
    let pem = match std::fs::read_to_string(&path) {
        Ok(p) => p,
        Err(_) if dev => {
            return Check::ok(
                "certificate",
                "none yet: `bv serve` makes a development certificate on its first start",
            );
        }
        Err(e) => {
            return Check::fail(
                "certificate",
                format!("{}: {e}", path.display()),
                "set serve.tls_cert and serve.tls_key to a readable PEM certificate and key",
            );
        }
    };
    let Some(not_after) = der::first_pem_not_after(&pem) else {
        return Check::fail(
            "certificate",
            format!("{}: no X.509 certificate could be read", path.display()),
            "serve.tls_cert must be a PEM certificate chain, leaf first",
        );
    };
    let days = (not_after - bv_catalog::now_ms() / 1000) / 86_400;
    let what = if dev {
        "development certificate"
    } else {
        "certificate"
    };
    let renew = "renew it (an ACME client, or your CA); `bv serve` reloads a changed file";
    if days < 0 {
        Check::fail(
            "certificate",
            format!("{what} {} expired {} days ago", path.display(), -days),
            renew,
        )
    } else if days < 14 {
        Check::warn(
            "certificate",
            format!("{what} {} expires in {days} days", path.display()),
            renew,
        )
    } else {
        Check::ok(
            "certificate",
            format!("{what} {} valid for {days} more days", path.display()),
        )
    }
}

/// NVIDIA GPUs this host has (informational: sandboxed jobs run on the CPU).
fn gpus() -> Check {
    let mut names = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc/driver/nvidia/gpus") {
        for e in dir.flatten() {
            let info = std::fs::read_to_string(e.path().join("information")).unwrap_or_default();
            let model = info
                .lines()
                .find_map(|l| l.strip_prefix("Model:"))
                .map_or("unknown model", str::trim);
            names.push(format!("{model} ({})", e.file_name().to_string_lossy()));
        }
    }
    if names.is_empty() {
        return Check::ok("gpus", "none found: jobs run on the CPU");
    }
    names.sort();
    if bv_engine::gpu::cuda_driver_present() {
        Check::ok(
            "gpus",
            format!(
                "{}: {} (sandboxed jobs still run on the CPU; `bv enhance --device cuda` uses them)",
                names.len(),
                names.join(", ")
            ),
        )
    } else {
        Check::warn(
            "gpus",
            format!("{} found, but no libcuda.so.1", names.join(", ")),
            "install the NVIDIA driver's user-space libraries",
        )
    }
}

/// Every check of `bv doctor`, in the order a fix should follow.
pub async fn all(cfg: &Config) -> Vec<Check> {
    let mut out = Vec::new();
    let cfg2 = cfg.clone();
    let (mut jobs, selftest) = tokio::task::spawn_blocking(move || processing(&cfg2))
        .await
        .unwrap_or_else(|e| {
            (
                vec![Check::fail(
                    "sandbox",
                    format!("the check panicked: {e}"),
                    "report a bug",
                )],
                crate::cmd::selftest::not_run(),
            )
        });
    out.push(user_namespaces());
    out.append(&mut jobs);
    out.push(seccomp(&selftest));
    out.push(landlock());
    out.push(cgroups(cfg));
    // A data directory `bv serve` has not started on yet is checked, not
    // set up: no catalog file, no root key made here.
    let url = cfg.catalog_url();
    let sqlite_file = url
        .strip_prefix("sqlite://")
        .map(|p| PathBuf::from(p.split('?').next().unwrap_or(p)));
    let root_key = cfg
        .vault
        .root_key_file
        .clone()
        .unwrap_or_else(|| cfg.data_dir.join("root.key"));
    if sqlite_file.as_ref().is_some_and(|f| !f.exists()) {
        let first = "none yet: `bv serve` makes it on its first start";
        out.push(Check::ok("catalog", format!("{url}: {first}")));
        out.push(Check::ok("clock", "SQLite shares this host's clock"));
        out.push(Check::ok(
            "vault",
            format!("root key {}: {first}", root_key.display()),
        ));
    } else {
        let (mut cat, c) = catalog(cfg).await;
        out.append(&mut cat);
        let in_a_file = cfg.vault.root_key_provider != "pkcs11" && cfg.vault.root_key.is_none();
        if in_a_file && !root_key.exists() {
            out.push(Check::fail(
                "vault",
                format!(
                    "no root key at {}, but a catalog exists",
                    root_key.display()
                ),
                "restore the root key from its backup (without it nothing stored can be opened)",
            ));
        } else if let Some(c) = c {
            out.push(vault(cfg, &c).await);
        } else {
            out.push(Check::fail(
                "vault",
                "not checked: the catalog did not open",
                "fix the catalog first",
            ));
        }
    }
    out.push(disk(cfg));
    out.push(certificate(cfg));
    out.push(gpus());
    out
}

/// Just enough DER to read a certificate's validity (no X.509 crate is in
/// the build for this one field).
mod der {
    use base64::Engine as _;

    /// One TLV: (tag, contents, the rest after it).
    fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, b) = b.split_first()?;
        let (&first, mut b) = b.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || b.len() < n {
                return None;
            }
            let l = b[..n]
                .iter()
                .fold(0usize, |a, x| (a << 8) | usize::from(*x));
            b = &b[n..];
            l
        };
        (b.len() >= len).then(|| (tag, &b[..len], &b[len..]))
    }

    /// Seconds since the epoch of a UTCTime (tag 0x17) or GeneralizedTime (0x18).
    fn time(tag: u8, v: &[u8]) -> Option<i64> {
        let s = std::str::from_utf8(v).ok()?.strip_suffix('Z')?;
        let (year, rest) = match tag {
            0x17 => {
                let y: i64 = s.get(..2)?.parse().ok()?;
                (if y < 50 { 2000 + y } else { 1900 + y }, s.get(2..)?)
            }
            0x18 => (s.get(..4)?.parse().ok()?, s.get(4..)?),
            _ => return None,
        };
        let n = |i: usize| rest.get(i..i + 2)?.parse::<i64>().ok();
        let (m, d, hh, mm, ss) = (n(0)?, n(2)?, n(4)?, n(6)?, n(8)?);
        // Days from the civil date (Howard Hinnant's algorithm).
        let y = if m <= 2 { year - 1 } else { year };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
    }

    /// `notAfter` of the first certificate in a PEM text, seconds since the epoch.
    pub fn first_pem_not_after(pem: &str) -> Option<i64> {
        let body: String = pem
            .split("-----BEGIN CERTIFICATE-----")
            .nth(1)?
            .split("-----END CERTIFICATE-----")
            .next()?
            .split_whitespace()
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .ok()?;
        let (_, cert, _) = tlv(&der)?;
        let (_, tbs, _) = tlv(cert)?;
        let mut rest = tbs;
        // [0] version is optional; then serial, signature, issuer, validity.
        let (tag, _, r) = tlv(rest)?;
        rest = if tag == 0xa0 { tlv(r)?.2 } else { r };
        let (_, _, r) = tlv(rest)?; // signature algorithm
        let (_, _, r) = tlv(r)?; // issuer
        let (_, validity, _) = tlv(r)?;
        let (_, _, r) = tlv(validity)?; // notBefore
        let (tag, v, _) = tlv(r)?;
        time(tag, v)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn reads_both_time_forms() {
            assert_eq!(time(0x17, b"700101000000Z"), Some(0));
            assert_eq!(time(0x17, b"491231235959Z"), Some(2_524_607_999));
            assert_eq!(time(0x18, b"20260301120000Z"), Some(1_772_366_400));
            assert_eq!(time(0x18, b"2026030112000Z"), None);
        }

        #[test]
        fn reads_not_after_of_a_generated_certificate() {
            let mut p = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
            p.not_after = rcgen::date_time_ymd(2031, 7, 9);
            let key = rcgen::KeyPair::generate().unwrap();
            let pem = p.self_signed(&key).unwrap().pem();
            assert_eq!(first_pem_not_after(&pem), Some(1_941_321_600));
            assert_eq!(first_pem_not_after("not a certificate"), None);
        }
    }
}
