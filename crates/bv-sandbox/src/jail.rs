//! Running one job in a fresh jail and checking that it is gone afterwards.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::cgroup::JobCgroups;
use crate::error::SandboxError;

/// Resource limits of one job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Address space per process (RLIMIT_AS) and the job's memory cgroup, bytes.
    pub memory_bytes: u64,
    /// CPU time per process (RLIMIT_CPU), seconds.
    pub cpu_seconds: u64,
    /// Processes and threads (cgroup pids.max; RLIMIT_NPROC when not root).
    pub processes: u64,
    /// Largest file a job may write (RLIMIT_FSIZE), bytes.
    pub file_size_bytes: u64,
    /// Open files per process (RLIMIT_NOFILE).
    pub open_files: u64,
    /// Wall-clock deadline, seconds.
    pub wall_seconds: u64,
    /// Size of the private tmpfs `/scratch`, bytes.
    pub scratch_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 16 << 30,
            cpu_seconds: 7 * 24 * 3600,
            processes: 512,
            file_size_bytes: 256 << 30,
            open_files: 1024,
            wall_seconds: 24 * 3600,
            scratch_bytes: 1 << 30,
        }
    }
}

/// A host path made visible inside the jail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Path on the host.
    pub host: PathBuf,
    /// Path inside the jail.
    pub inside: PathBuf,
    /// Read-write (otherwise read-only).
    pub writable: bool,
}

/// How the job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Exit {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal (e.g. 9 after the CPU limit, 25 after the file-size limit).
    Signal(i32),
    /// Killed at the wall-clock deadline.
    Deadline,
    /// Killed because the caller cancelled.
    Cancelled,
}

/// The checks made after every job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Teardown {
    /// Processes of the jail still alive after it ended (killed, and reported, if any).
    pub processes_left: usize,
    /// The jail's mount namespace, and with it `/scratch`, no longer exists.
    pub namespace_gone: bool,
    /// `removed`, `unavailable` (not root / no cgroup v1) or `left behind`.
    pub cgroups: &'static str,
    /// The process limit stopped a fork.
    pub pids_limit_hit: bool,
    /// The memory limit was reached.
    pub memory_limit_hit: bool,
}

impl Teardown {
    /// Everything of the jail is gone.
    pub fn clean(&self) -> bool {
        self.processes_left == 0 && self.namespace_gone && self.cgroups != "left behind"
    }
}

/// The result of a job.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Job id (also the cgroup name).
    pub id: String,
    /// How it ended.
    pub exit: Exit,
    /// The last 16 KiB of its stderr.
    pub stderr: String,
    /// Teardown checks.
    pub teardown: Teardown,
    /// Wall time from launch to teardown.
    pub elapsed: Duration,
}

/// A jail description: limits and mounts. Each [`run`](Jail::run) makes a fresh one.
#[derive(Debug, Clone)]
pub struct Jail {
    /// Resource limits.
    pub limits: Limits,
    /// Extra mounts (the `bv` binary, models, the job's input and output).
    pub mounts: Vec<Mount>,
    /// Put each job in its own cgroups (process and memory limits) when the
    /// host allows it. Costs one cgroup v1 migration per job (up to ~15 ms here).
    pub cgroups: bool,
}

impl Default for Jail {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            mounts: Vec::new(),
            cgroups: true,
        }
    }
}

fn job_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .map(|u| u.trim().replace('-', "")[..16].to_string())
        .unwrap_or_else(|_| format!("{:x}", std::process::id()))
}

fn find_tool(name: &'static str) -> Result<PathBuf, SandboxError> {
    ["/usr/bin", "/bin", "/usr/local/bin"]
        .iter()
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| p.exists())
        .ok_or(SandboxError::ToolMissing(name))
}

/// Every live process whose environment carries `marker` (only looked for when
/// `marker` is given: without cgroups it is how the jail's processes are found),
/// and whether any process still lives in mount namespace `mnt_ns`.
fn scan(marker: Option<&str>, mnt_ns: Option<&str>) -> (Vec<u32>, bool) {
    let mut pids = Vec::new();
    let mut ns_alive = false;
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(ns) = mnt_ns
                && std::fs::read_link(e.path().join("ns/mnt")).is_ok_and(|l| l.to_str() == Some(ns))
            {
                ns_alive = true;
            }
            if let Some(m) = marker
                && std::fs::read(e.path().join("environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == m.as_bytes()))
            {
                pids.push(pid);
            }
        }
    }
    (pids, ns_alive)
}

fn kill_all(pids: &[u32]) {
    if !pids.is_empty() {
        let _ = Command::new("kill")
            .arg("-KILL")
            .args(pids.iter().map(u32::to_string))
            .stderr(Stdio::null())
            .status();
    }
}

impl Jail {
    /// The bubblewrap command for `program args` inside (tested separately so
    /// the isolation flags are visible in one place).
    fn command(&self, id: &str, program: &str, args: &[String]) -> Result<Command, SandboxError> {
        let (bwrap, prlimit) = (find_tool("bwrap")?, find_tool("prlimit")?);
        let l = &self.limits;
        let mut c = Command::new(bwrap);
        c.args([
            "--unshare-all",
            "--unshare-user",
            "--uid",
            "65534",
            "--gid",
            "65534",
            "--cap-drop",
            "ALL",
        ]);
        c.args(["--die-with-parent", "--new-session", "--clearenv"]);
        c.args([
            "--setenv",
            "PATH",
            "/usr/bin:/bin",
            "--setenv",
            "HOME",
            "/scratch",
            "--setenv",
            "TMPDIR",
            "/scratch",
        ]);
        c.args(["--setenv", "LANG", "C.UTF-8", "--setenv", "BVJAIL_ID", id]);
        c.args([
            "--ro-bind",
            "/usr",
            "/usr",
            "--symlink",
            "usr/lib",
            "/lib",
            "--symlink",
            "usr/lib64",
            "/lib64",
        ]);
        c.args([
            "--symlink",
            "usr/bin",
            "/bin",
            "--symlink",
            "usr/sbin",
            "/sbin",
        ]);
        // Debian resolves some libraries (BLAS, LAPACK) through /etc/alternatives symlinks.
        for etc in ["/etc/alternatives", "/etc/ld.so.cache"] {
            if std::path::Path::new(etc).exists() {
                c.args(["--ro-bind", etc, etc]);
            }
        }
        c.args(["--proc", "/proc", "--dev", "/dev"]);
        c.args([
            "--size",
            &l.scratch_bytes.to_string(),
            "--tmpfs",
            "/scratch",
            "--symlink",
            "/scratch",
            "/tmp",
        ]);
        for m in &self.mounts {
            c.arg(if m.writable { "--bind" } else { "--ro-bind" })
                .arg(&m.host)
                .arg(&m.inside);
        }
        c.args(["--info-fd", "2", "--chdir", "/scratch", "--"]);
        c.arg(prlimit);
        c.arg(format!("--as={}", l.memory_bytes));
        c.arg(format!("--cpu={}", l.cpu_seconds));
        c.arg(format!("--fsize={}", l.file_size_bytes));
        c.arg(format!("--nofile={}", l.open_files));
        c.arg(format!("--nproc={}", l.processes));
        c.args(["--core=0", "--"]).arg(program).args(args);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Ok(c)
    }

    /// Runs `program args` (paths inside the jail) in a fresh jail. `input`
    /// is written to its stdin (after the jail is in its cgroups, so nothing
    /// runs unconstrained), each stdout line goes to `on_line`, `cancel` is
    /// polled. Teardown is checked before returning.
    pub fn run(
        &self,
        program: &str,
        args: &[String],
        input: &[u8],
        on_line: &mut dyn FnMut(&str),
        cancel: &AtomicBool,
    ) -> Result<Outcome, SandboxError> {
        let start = Instant::now();
        let id = job_id();
        let marker = format!("BVJAIL_ID={id}");
        let cgroups = if self.cgroups {
            JobCgroups::create(&id, self.limits.memory_bytes, self.limits.processes)
        } else {
            None
        };
        let mut cmd = self.command(&id, program, args)?;
        // Spawned from this thread, which joins the job's cgroups for the moment
        // of the fork and then returns: children start inside. (Not from a
        // short-lived helper thread: bubblewrap's --die-with-parent fires when
        // the *thread* that forked it exits. A long-lived helper was measured
        // slower: a cgroup v1 migration waits for an RCU grace period, and a
        // second one right after the first comes almost free.)
        let spawned = match &cgroups {
            Some(cg) => cg.enter().and_then(|()| {
                let r = cmd.spawn();
                cg.leave();
                r
            }),
            None => cmd.spawn(),
        };
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                if let Some(cg) = cgroups {
                    cg.remove();
                }
                return Err(e.into());
            }
        };
        // stderr: bubblewrap's info JSON (the jail's pid) first, then the job's messages.
        let (pid_tx, pid_rx) = mpsc::channel::<u32>();
        let mut stderr = child.stderr.take().expect("piped");
        let err_thread = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let mut sent = false;
            while let Ok(n) = stderr.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                if !sent
                    && let Some(p) = String::from_utf8_lossy(&buf)
                        .split("\"child-pid\":")
                        .nth(1)
                        .and_then(|r| {
                            r.trim_start()
                                .split(|c: char| !c.is_ascii_digit())
                                .next()?
                                .parse()
                                .ok()
                        })
                {
                    let _ = pid_tx.send(p);
                    sent = true;
                }
                if buf.len() > 32 << 10 {
                    buf.drain(..buf.len() - (16 << 10));
                }
            }
            let text = String::from_utf8_lossy(&buf).to_string();
            // Drop bubblewrap's info JSON from what the job said.
            match text.find('}') {
                Some(end) if text.trim_start().starts_with('{') && text.contains("child-pid") => {
                    text[end + 1..].trim().to_string()
                }
                _ => text.trim().to_string(),
            }
        });
        let (line_tx, line_rx) = mpsc::channel::<String>();
        let stdout = child.stdout.take().expect("piped");
        let out_thread = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stdin = child.stdin.take().expect("piped");
        let mnt_ns = pid_rx
            .recv_timeout(Duration::from_secs(10))
            .ok()
            .and_then(|pid| std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok())
            .and_then(|l| l.to_str().map(str::to_string));
        let _ = stdin.write_all(input);
        drop(stdin);

        let deadline = start + Duration::from_secs(self.limits.wall_seconds);
        let mut killed: Option<Exit> = None;
        let status = loop {
            match line_rx.recv_timeout(Duration::from_millis(5)) {
                Ok(line) => on_line(&line),
                Err(mpsc::RecvTimeoutError::Timeout | mpsc::RecvTimeoutError::Disconnected) => {}
            }
            if killed.is_none() {
                if cancel.load(Ordering::Relaxed) {
                    killed = Some(Exit::Cancelled);
                } else if Instant::now() >= deadline {
                    killed = Some(Exit::Deadline);
                }
                if killed.is_some() {
                    // bubblewrap's --die-with-parent takes every process of the jail with it.
                    let _ = child.kill();
                }
            }
            if let Some(st) = child.try_wait()? {
                break st;
            }
        };
        let _ = out_thread.join();
        for line in line_rx.try_iter() {
            on_line(&line);
        }
        let stderr = err_thread.join().unwrap_or_default();
        let exit = killed.unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (Some(c), _) => Exit::Code(c),
                (None, Some(s)) => Exit::Signal(s),
                _ => Exit::Code(-1),
            }
        });
        if mnt_ns.is_none() && stderr.contains("bwrap:") {
            if let Some(cg) = cgroups {
                cg.remove();
            }
            return Err(SandboxError::Unavailable(
                stderr.lines().last().unwrap_or_default().to_string(),
            ));
        }

        // Teardown checks: nothing of the jail may remain. Processes killed
        // with bubblewrap take a moment to finish exiting; give them 200 ms.
        let drain = Instant::now();
        let mut left = cgroups.as_ref().map(JobCgroups::procs).unwrap_or_default();
        while !left.is_empty() && drain.elapsed() < Duration::from_millis(200) {
            std::thread::sleep(Duration::from_micros(500));
            left = cgroups.as_ref().map(JobCgroups::procs).unwrap_or_default();
        }
        let by_env = cgroups.is_none().then_some(marker.as_str());
        let (marked, mut ns_alive) = scan(by_env, mnt_ns.as_deref());
        left.extend(marked);
        left.sort_unstable();
        left.dedup();
        if !left.is_empty() || ns_alive {
            kill_all(&left);
            std::thread::sleep(Duration::from_millis(20));
            ns_alive = scan(None, mnt_ns.as_deref()).1;
        }
        let (pids_limit_hit, memory_limit_hit) = cgroups.as_ref().map_or((false, false), |cg| {
            (cg.pids_limit_hit(), cg.memory_limit_hit())
        });
        let cg_state = match cgroups {
            None => "unavailable",
            Some(cg) => {
                if cg.remove() {
                    "removed"
                } else {
                    "left behind"
                }
            }
        };
        let teardown = Teardown {
            processes_left: left.len(),
            namespace_gone: mnt_ns.is_some() && !ns_alive,
            cgroups: cg_state,
            pids_limit_hit,
            memory_limit_hit,
        };
        Ok(Outcome {
            id,
            exit,
            stderr,
            teardown,
            elapsed: start.elapsed(),
        })
    }
}
