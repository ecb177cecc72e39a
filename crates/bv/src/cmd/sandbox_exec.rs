//! `bv sandbox-exec`: confine this process (Landlock, seccomp), then run a
//! command under the same confinement. Used inside jails by the hostile-job
//! tests and the sandbox benchmark.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

/// Flags of `bv sandbox-exec`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Paths that stay writable (besides /dev).
    #[arg(long)]
    pub writable: Vec<PathBuf>,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// Runs the command (replaces this process).
pub fn run(a: Args) -> anyhow::Result<()> {
    let paths: Vec<&std::path::Path> = a.writable.iter().map(PathBuf::as_path).collect();
    bv_sandbox::confine::confine(&paths)?;
    let err = std::process::Command::new(&a.command[0])
        .args(&a.command[1..])
        .exec();
    Err(anyhow::anyhow!("exec {}: {err}", a.command[0]))
}
