//! Per-job cgroups (v1 `pids` and `memory` controllers), where the host lets us.
//!
//! The jail is spawned from a thread that first joins the job's cgroups, so
//! the launcher and everything it starts are inside before the job runs; the
//! thread then returns to where it was. Without writable cgroups (not root,
//! cgroup v2 only) jobs still have rlimits and a PID namespace.

use std::path::{Path, PathBuf};

const CONTROLLERS: [&str; 2] = ["pids", "memory"];

/// The cgroups of one job.
#[derive(Debug)]
pub struct JobCgroups {
    /// (job directory, the directory this process was in) per controller.
    dirs: Vec<(PathBuf, PathBuf)>,
}

fn current(controller: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        ctrls
            .split(',')
            .any(|c| c == controller)
            .then(|| path.trim_start_matches('/').to_string())
    })?;
    let dir = Path::new("/sys/fs/cgroup").join(controller).join(rel);
    dir.is_dir().then_some(dir)
}

impl JobCgroups {
    /// Creates the job's cgroups with limits; `None` when cgroups are not available to us.
    pub fn create(id: &str, memory_bytes: u64, processes: u64) -> Option<Self> {
        let mut dirs = Vec::new();
        for c in CONTROLLERS {
            let parent = current(c)?;
            let dir = parent.join(format!("bettervideo-{id}"));
            if std::fs::create_dir(&dir).is_err() {
                Self { dirs }.remove();
                return None;
            }
            let set = match c {
                "pids" => std::fs::write(dir.join("pids.max"), processes.to_string()),
                _ => std::fs::write(dir.join("memory.limit_in_bytes"), memory_bytes.to_string()),
            };
            dirs.push((dir, parent));
            if set.is_err() {
                Self { dirs }.remove();
                return None;
            }
        }
        Some(Self { dirs })
    }

    /// Moves the calling thread into the job's cgroups (its children will start there).
    ///
    /// Writes `0` (the calling thread) to `tasks`: for that one case the kernel
    /// skips the global threadgroup lock, whose write side waits for an RCU
    /// grace period (measured here: 0.07 ms instead of 0.1–15 ms with the tid).
    pub fn enter(&self) -> std::io::Result<()> {
        for (dir, _) in &self.dirs {
            std::fs::write(dir.join("tasks"), "0")?;
        }
        Ok(())
    }

    /// Moves the calling thread back to where it was.
    pub fn leave(&self) {
        for (_, parent) in &self.dirs {
            let _ = std::fs::write(parent.join("tasks"), "0");
        }
    }

    /// Processes still in the job's cgroups.
    pub fn procs(&self) -> Vec<u32> {
        let mut out: Vec<u32> = self
            .dirs
            .iter()
            .filter_map(|(d, _)| std::fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|s| {
                s.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<u32>>()
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Whether the pids limit was hit (a fork bomb was stopped).
    pub fn pids_limit_hit(&self) -> bool {
        self.dirs
            .iter()
            .filter(|(d, _)| d.starts_with("/sys/fs/cgroup/pids"))
            .filter_map(|(d, _)| std::fs::read_to_string(d.join("pids.events")).ok())
            .any(|s| s.split_whitespace().nth(1).is_some_and(|n| n != "0"))
    }

    /// Whether the memory limit was hit.
    pub fn memory_limit_hit(&self) -> bool {
        self.dirs
            .iter()
            .filter(|(d, _)| d.starts_with("/sys/fs/cgroup/memory"))
            .filter_map(|(d, _)| std::fs::read_to_string(d.join("memory.failcnt")).ok())
            .any(|s| s.trim() != "0")
    }

    /// Removes the cgroups (they must be empty); returns whether all went.
    pub fn remove(self) -> bool {
        let mut ok = true;
        for (d, _) in &self.dirs {
            ok &= std::fs::remove_dir(d).is_ok();
        }
        ok
    }
}
