//! Running one job in a fresh jail (through the `bv-jail` launcher, see
//! [`crate::launch`]) and checking that it is gone afterwards.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::cgroup::JobCgroups;
use crate::confine::ConfineReport;
use crate::error::SandboxError;
use crate::launch::{LINE_PREFIX, LaunchSpec};

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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// Landlock and seccomp as the launcher applied them just before the job started.
    pub confinement: Option<ConfineReport>,
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
    /// The `bv-jail` launcher; by default found next to the running program
    /// (or one directory up, where test and example binaries live).
    pub launcher: Option<PathBuf>,
}

impl Default for Jail {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            mounts: Vec::new(),
            cgroups: true,
            launcher: None,
        }
    }
}

fn job_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .map(|u| u.trim().replace('-', "")[..16].to_string())
        .unwrap_or_else(|_| format!("{:x}", std::process::id()))
}

/// The launcher: next to the running program, or one directory up (cargo
/// puts test and example binaries in subdirectories of the binaries').
fn find_launcher() -> Result<PathBuf, SandboxError> {
    let exe = std::env::current_exe()?;
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join(LAUNCHER))
        .find(|p| p.is_file())
        .ok_or(SandboxError::ToolMissing(LAUNCHER))
}

const LAUNCHER: &str = "bv-jail";

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

/// What the job wrote on stderr (its last 16 KiB), the confinement report and
/// a setup error, if any. The launcher's lines are read before the job can
/// write anything: after `confined` (or `error`), every byte is the job's.
fn read_stderr(
    stderr: std::process::ChildStderr,
    ns_tx: &mpsc::Sender<String>,
) -> (String, Option<ConfineReport>, Option<String>) {
    let mut reader = BufReader::new(stderr);
    let (mut confinement, mut setup_error) = (None, None);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader).take(4096).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let Some(rest) = text.trim_end().strip_prefix(LINE_PREFIX) else {
            break;
        };
        if let Some(ns) = rest.strip_prefix("ns ") {
            let _ = ns_tx.send(ns.to_string());
        } else if let Some(report) = rest.strip_prefix("confined ") {
            confinement = serde_json::from_str(report).ok();
            line.clear();
            break;
        } else if let Some(e) = rest.strip_prefix("error: ") {
            setup_error = Some(e.to_string());
            line.clear();
            break;
        }
    }
    // The job's own messages (and anything unexpected): keep the tail.
    let mut buf = line;
    let mut chunk = [0u8; 4096];
    while let Ok(n) = reader.read(&mut chunk) {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > 32 << 10 {
            buf.drain(..buf.len() - (16 << 10));
        }
    }
    (
        String::from_utf8_lossy(&buf).trim().to_string(),
        confinement,
        setup_error,
    )
}

impl Jail {
    /// What the launcher is asked to build and run.
    fn spec(&self, id: &str, program: &str, args: &[String], pass_fds: u32) -> LaunchSpec {
        let env = [
            ("PATH", "/usr/bin:/bin"),
            ("HOME", "/scratch"),
            ("TMPDIR", "/scratch"),
            ("LANG", "C.UTF-8"),
            ("BVJAIL_ID", id),
        ];
        let mut writable = vec![PathBuf::from("/scratch")];
        writable.extend(
            self.mounts
                .iter()
                .filter(|m| m.writable)
                .map(|m| m.inside.clone()),
        );
        // Host paths resolved here, in the host's view: the launcher binds
        // them after pivoting, where an absolute symlink (a data directory's
        // `models` pointing elsewhere) would resolve inside the new root.
        let mounts = self
            .mounts
            .iter()
            .map(|m| Mount {
                host: std::fs::canonicalize(&m.host).unwrap_or_else(|_| m.host.clone()),
                ..m.clone()
            })
            .collect();
        LaunchSpec {
            limits: self.limits.clone(),
            mounts,
            writable,
            program: program.into(),
            args: args.to_vec(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            pass_fds,
        }
    }

    fn command(
        &self,
        id: &str,
        program: &str,
        args: &[String],
        fds: Vec<std::os::fd::OwnedFd>,
    ) -> Result<Command, SandboxError> {
        let launcher = match &self.launcher {
            Some(l) => l.clone(),
            None => find_launcher()?,
        };
        let spec = serde_json::to_string(&self.spec(id, program, args, fds.len() as u32))
            .map_err(|e| SandboxError::Setup(e.to_string()))?;
        let mut c = Command::new(launcher);
        {
            use command_fds::{CommandFdExt, FdMapping};
            let maps = fds
                .into_iter()
                .enumerate()
                .map(|(i, fd)| FdMapping {
                    parent_fd: fd,
                    child_fd: 3 + i as i32,
                })
                .collect();
            c.fd_mappings(maps)
                .map_err(|e| SandboxError::Setup(format!("passing descriptors: {e}")))?;
        }
        c.arg(spec)
            .env_clear()
            .stdin(Stdio::piped())
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
        self.run_with_fds(program, args, input, Vec::new(), on_line, cancel)
    }

    /// As [`Jail::run`], handing `fds` to the job as descriptors 3, 4, …
    /// (e.g. the read end of a pipe carrying plaintext in, the write end of
    /// one carrying the result out). The caller's copies are closed once the
    /// launcher has started.
    pub fn run_with_fds(
        &self,
        program: &str,
        args: &[String],
        input: &[u8],
        fds: Vec<std::os::fd::OwnedFd>,
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
        let mut cmd = self.command(&id, program, args, fds)?;
        // Spawned from this thread, which joins the job's cgroups for the moment
        // of the fork and then returns: children start inside. (Not from a
        // short-lived helper thread: the launcher's parent-death signal fires
        // when the *thread* that forked it exits. A long-lived helper was measured
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
        // The command owns the caller's copies of handed-in descriptors: close them
        // now, or the job's output pipe would never reach end-of-file.
        drop(cmd);
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                if let Some(cg) = cgroups {
                    cg.remove();
                }
                return Err(e.into());
            }
        };
        // stderr: the launcher's lines (the job's pid, then its confinement or
        // a setup error) come before the job starts; then the job's messages.
        let (ns_tx, ns_rx) = mpsc::channel::<String>();
        let stderr = child.stderr.take().expect("piped");
        let err_thread = std::thread::spawn(move || read_stderr(stderr, &ns_tx));
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
        // The launcher names the jail's mount namespace before the job exists.
        let mnt_ns = ns_rx
            .recv_timeout(Duration::from_secs(10))
            .ok()
            .filter(|ns| ns.starts_with("mnt:["));
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
                    // The jail's first process dies with the launcher (parent-death
                    // signal), and the kernel takes the rest of its PID namespace.
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
        let (stderr, confinement, setup_error) = err_thread.join().unwrap_or_default();
        let exit = killed.unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (Some(c), _) => Exit::Code(c),
                (None, Some(s)) => Exit::Signal(s),
                _ => Exit::Code(-1),
            }
        });
        if let Some(e) = setup_error {
            if let Some(cg) = cgroups {
                cg.remove();
            }
            return Err(SandboxError::Setup(e));
        }

        // Teardown checks: nothing of the jail may remain. Processes killed
        // with the launcher take a moment to finish exiting; give them 200 ms.
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
            // A process of the jail that is still exiting keeps its mount
            // namespace a moment longer; on a loaded host that can take more
            // than a few milliseconds, so wait up to a second for it to go.
            let wait = Instant::now();
            loop {
                std::thread::sleep(Duration::from_millis(5));
                ns_alive = scan(None, mnt_ns.as_deref()).1;
                if !ns_alive || wait.elapsed() > Duration::from_secs(1) {
                    break;
                }
            }
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
            confinement,
            elapsed: start.elapsed(),
        })
    }
}
