//! BetterVideo's sandbox: one job, one fresh jail, destroyed after.
//!
//! Layers, outermost first (docs/sandbox.md, decision 0010):
//! 1. [`jail`]: bubblewrap gives the job new user, mount, PID, network, IPC,
//!    UTS and cgroup namespaces, uid/gid 65534, no capabilities, no new
//!    privileges, a minimal read-only root (`/usr`, the `bv` binary, models,
//!    the job's own input and output), a private size-capped tmpfs `/scratch`,
//!    its own `/proc` and a minimal `/dev`, a scrubbed environment, and death
//!    with its parent. `prlimit` sets rlimits; per-job cgroups (v1 pids and
//!    memory, where the host lets us) cap processes and memory; the parent
//!    enforces a wall-clock deadline.
//! 2. [`confine`]: inside, before touching any input, the job runner applies
//!    Landlock (read-only filesystem except its writable paths) and a seccomp
//!    allowlist (anything else fails with EPERM), inherited by FFmpeg.
//! 3. Teardown is checked after every job: no process of the jail is left,
//!    its mount namespace (and with it the scratch tmpfs) is gone, and the
//!    cgroups are removed. The result says so.

pub mod cgroup;
pub mod confine;
pub mod error;
pub mod jail;

pub use error::SandboxError;
pub use jail::{Exit, Jail, Limits, Mount, Outcome, Teardown};
