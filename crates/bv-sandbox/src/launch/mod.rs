//! `bv-jail`, the launcher: builds one job's jail and runs the job in it.
//!
//! [`crate::jail::Jail::run`] executes `bv-jail '<LaunchSpec JSON>'` with a
//! clean environment and pipes for stdin, stdout and stderr. The launcher
//! (single-threaded, so it may fork freely):
//! 1. asks to be killed with its parent, unshares user, mount, PID, network,
//!    IPC, UTS and cgroup namespaces in one call and maps uid/gid 65534 inside
//!    to its own ids outside (so it needs no privilege at all), and reports
//!    the new mount namespace (`bv-jail: ns mnt:[N]`) before anything of the
//!    job exists, so the line cannot be forged and the teardown check knows
//!    what to look for even when the job is gone before anyone reads /proc;
//! 2. forks the job's first process, PID 1 of the new PID namespace, and
//!    reports its pid on stderr (`bv-jail: pid N`); then waits and exits as
//!    the job did (same code, or the same signal); while it waits it holds
//!    no capability, cannot open a file and may make only a handful of
//!    system calls ([`crate::confine::supervisor`]);
//! 3. in that process: builds the minimal read-only root ([`root`]), sets the
//!    hostname, rlimits, drops every capability, sets no-new-privileges,
//!    closes every descriptor but 0–2, applies Landlock and the seccomp
//!    allowlist ([`crate::confine`]), reports that (`bv-jail: confined {…}`)
//!    and executes the job with the given environment.
//!
//! When PID 1 exits, the kernel kills everything else in its namespace; when
//! the launcher dies, PID 1 is killed with it (parent-death signal).

mod root;

use std::ffi::CString;
use std::path::PathBuf;

use nix::sched::CloneFlags;
use nix::sys::prctl;
use nix::sys::resource::{Resource, setrlimit};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::ForkResult;
use serde::{Deserialize, Serialize};

use crate::error::SandboxError;
use crate::jail::{Limits, Mount};
use crate::sys;

/// The uid and gid of the job inside its user namespace ("nobody").
pub const JAIL_ID: u32 = 65534;

/// The prefix of every line the launcher itself writes on stderr.
pub const LINE_PREFIX: &str = "bv-jail: ";

/// Everything the launcher needs, passed as its single argument.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaunchSpec {
    /// Resource limits (rlimits and the scratch size; cgroups are the parent's).
    pub limits: Limits,
    /// Host paths made visible inside, besides `/usr` and the loader's files.
    pub mounts: Vec<Mount>,
    /// Paths inside that stay writable under Landlock (besides `/dev`).
    pub writable: Vec<PathBuf>,
    /// The program to run (a path inside the jail).
    pub program: String,
    /// Its arguments (without the program itself).
    pub args: Vec<String>,
    /// Its whole environment.
    pub env: Vec<(String, String)>,
    /// Descriptors 3, 4, … handed in (pipes for plaintext in and out); all
    /// others above 2 are closed.
    #[serde(default)]
    pub pass_fds: u32,
}

/// Writes one launcher line to stderr in a single `write` (atomic on a pipe
/// below 4 KiB): the launcher and the job's first process both report there,
/// and `eprintln!` writes a formatted line in pieces that could interleave.
fn say(line: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(format!("{LINE_PREFIX}{line}\n").as_bytes());
}

/// Entry point of the `bv-jail` binary.
pub fn main() -> ! {
    let code = match launch() {
        Ok(code) => code,
        Err(e) => {
            say(&format!("error: {e}"));
            125
        }
    };
    std::process::exit(code)
}

fn launch() -> Result<i32, SandboxError> {
    let spec: LaunchSpec = std::env::args()
        .nth(1)
        .ok_or_else(|| SandboxError::Setup("usage: bv-jail '<launch spec JSON>'".into()))
        .and_then(|a| {
            serde_json::from_str(&a).map_err(|e| SandboxError::Setup(format!("launch spec: {e}")))
        })?;
    let err = |what: &'static str| move |e: nix::Error| SandboxError::Setup(format!("{what}: {e}"));
    sys::default_sigpipe().map_err(err("SIGPIPE"))?;
    prctl::set_pdeathsig(Signal::SIGKILL).map_err(err("parent-death signal"))?;
    setrlimit(Resource::RLIMIT_CORE, 0, 0).map_err(err("RLIMIT_CORE"))?;
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    nix::sched::unshare(
        CloneFlags::CLONE_NEWUSER
            | CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWNET
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWCGROUP,
    )
    .map_err(|e| {
        SandboxError::Setup(format!(
            "unshare: {e} (are unprivileged user namespaces allowed? see docs/sandbox.md)"
        ))
    })?;
    // A process may map only its own ids, and only after giving up setgroups.
    let write = |file: &str, text: String| {
        std::fs::write(file, text).map_err(|e| SandboxError::Setup(format!("{file}: {e}")))
    };
    write("/proc/self/setgroups", "deny".into())?;
    write("/proc/self/uid_map", format!("{JAIL_ID} {uid} 1"))?;
    write("/proc/self/gid_map", format!("{JAIL_ID} {gid} 1"))?;
    let ns = std::fs::read_link("/proc/self/ns/mnt")
        .map_err(|e| SandboxError::Setup(format!("mount namespace: {e}")))?;
    say(&format!("ns {}", ns.display()));

    match sys::fork_single_threaded().map_err(err("fork"))? {
        ForkResult::Child => {
            let Err(e) = job(&spec);
            say(&format!("error: {e}"));
            std::process::exit(125);
        }
        ForkResult::Parent { child } => {
            say(&format!("pid {child}"));
            // The job holds the handed-in pipes now; the launcher letting go of
            // its copies is what lets the caller see end-of-file when the job ends.
            sys::close_from(3).map_err(err("close_range"))?;
            // From here the supervisor only waits: it gives up every power
            // it held in the job's namespaces. A supervisor that cannot be
            // confined does not supervise: the job is killed.
            if let Err(e) = crate::confine::supervisor() {
                let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
                let _ = waitpid(child, None);
                return Err(e);
            }
            loop {
                match waitpid(child, None) {
                    Ok(WaitStatus::Exited(_, code)) => return Ok(code),
                    Ok(WaitStatus::Signaled(_, sig, _)) => {
                        // Die the same way, so the caller sees the signal
                        // (SIGXCPU after the CPU limit, SIGKILL, …).
                        let _ = nix::sys::signal::raise(sig);
                        return Ok(128 + sig as i32);
                    }
                    Ok(_) | Err(nix::Error::EINTR) => continue,
                    Err(e) => return Err(err("wait")(e)),
                }
            }
        }
    }
}

/// In the job's first process: build the jail, confine, execute. Returns only on failure.
fn job(spec: &LaunchSpec) -> Result<std::convert::Infallible, SandboxError> {
    let err = |what: &'static str| move |e: nix::Error| SandboxError::Setup(format!("{what}: {e}"));
    prctl::set_pdeathsig(Signal::SIGKILL).map_err(err("parent-death signal"))?;
    nix::unistd::setsid().map_err(err("setsid"))?;
    root::build(spec)?;
    nix::unistd::sethostname("bv-job").map_err(err("hostname"))?;
    set_limits(&spec.limits).map_err(err("setrlimit"))?;
    sys::drop_all_capabilities().map_err(err("capabilities"))?;
    prctl::set_no_new_privs().map_err(err("no-new-privileges"))?;
    let program = cstring(&spec.program)?;
    let mut argv = vec![program.clone()];
    for a in &spec.args {
        argv.push(cstring(a)?);
    }
    let env = spec
        .env
        .iter()
        .map(|(k, v)| cstring(&format!("{k}={v}")))
        .collect::<Result<Vec<_>, _>>()?;
    sys::close_from(3 + spec.pass_fds).map_err(err("close_range"))?;
    let writable: Vec<&std::path::Path> = spec.writable.iter().map(PathBuf::as_path).collect();
    let report = crate::confine::confine(&writable)?;
    say(&format!(
        "confined {}",
        serde_json::to_string(&report).unwrap_or_default()
    ));
    let e = nix::unistd::execve(&program, &argv, &env).unwrap_err();
    Err(SandboxError::Setup(format!(
        "execute {}: {e}",
        spec.program
    )))
}

fn cstring(s: &str) -> Result<CString, SandboxError> {
    CString::new(s).map_err(|_| SandboxError::Setup(format!("NUL byte in {s:?}")))
}

fn set_limits(l: &Limits) -> nix::Result<()> {
    for (r, v) in [
        (Resource::RLIMIT_AS, l.memory_bytes),
        (Resource::RLIMIT_CPU, l.cpu_seconds),
        (Resource::RLIMIT_FSIZE, l.file_size_bytes),
        (Resource::RLIMIT_NOFILE, l.open_files),
        (Resource::RLIMIT_NPROC, l.processes),
        (Resource::RLIMIT_CORE, 0),
    ] {
        setrlimit(r, v, v)?;
    }
    Ok(())
}
