//! BetterVideo's sandbox: one job, one fresh jail, destroyed after.
//!
//! Layers, outermost first (docs/sandbox.md, decision 0010):
//! 1. [`jail`] (the parent side) creates the job's cgroups (v1 pids and
//!    memory, where the host lets us), starts the [`launch`]er `bv-jail`
//!    inside them, feeds the job its input, enforces a wall-clock deadline
//!    and checks the teardown.
//! 2. [`launch`] (`bv-jail`) gives the job new user, mount, PID, network,
//!    IPC, UTS and cgroup namespaces, uid/gid 65534, a minimal read-only root
//!    (`/usr`, the loader's files, the job's own mounts), a private
//!    size-capped tmpfs `/scratch`, its own `/proc`, a minimal `/dev`, a down
//!    loopback and nothing else on the network, rlimits, no capabilities, no
//!    new privileges, no inherited descriptors, a scrubbed environment, and
//!    death with its parent.
//! 3. [`confine`]: just before the job starts, the launcher applies Landlock
//!    (read-only filesystem except the writable paths) and a seccomp
//!    allowlist (anything else fails with EPERM); the job inherits both.
//! 4. Teardown is checked after every job: no process of the jail is left,
//!    its mount namespace (and with it the scratch tmpfs) is gone, and the
//!    cgroups are removed. The result says so.

pub mod cgroup;
pub mod confine;
pub mod error;
pub mod jail;
pub mod launch;
mod sys;

pub use error::SandboxError;
pub use jail::{Exit, Jail, Limits, Mount, Outcome, Teardown};
pub use sys::{default_sigpipe, handed_in, landlock_abi};
