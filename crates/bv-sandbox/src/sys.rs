//! The launcher's few system calls that have no safe wrapper. The only
//! `unsafe` code of the sandbox lives here.
#![allow(unsafe_code)]

use nix::errno::Errno;
use nix::unistd::ForkResult;

/// Forks the launcher.
///
/// Only `bv-jail` calls this, and `bv-jail` is single-threaded (it starts no
/// threads and links nothing that does), so the child may do anything the
/// parent could: allocate, format, open files.
pub fn fork_single_threaded() -> nix::Result<ForkResult> {
    // SAFETY: the process has exactly one thread (see above), so no lock can
    // be held by a thread that does not exist in the child.
    unsafe { nix::unistd::fork() }
}

/// Restores the default action of SIGPIPE, which Rust's runtime ignores and
/// an ignored disposition would be inherited by the job across `execve`.
pub fn default_sigpipe() -> nix::Result<()> {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: installing SIG_DFL runs no handler code; nothing else in this
    // process relies on SIGPIPE being ignored.
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) }.map(drop)
}

/// Empties the capability bounding set and the ambient set, so nothing the
/// job executes can ever regain a capability (file capabilities included).
pub fn drop_all_capabilities() -> nix::Result<()> {
    // SAFETY: prctl with integer arguments only; no memory is passed.
    let r = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    Errno::result(r)?;
    for cap in 0..=last_capability() {
        // SAFETY: as above.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        // EINVAL: a capability this kernel does not know; nothing to drop.
        if let Err(e) = Errno::result(r)
            && e != Errno::EINVAL
        {
            return Err(e);
        }
    }
    Ok(())
}

fn last_capability() -> libc::c_ulong {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(63)
}

/// Closes every file descriptor from `first` up.
pub fn close_from(first: u32) -> nix::Result<()> {
    // SAFETY: close_range takes integers only; the launcher holds no Rust
    // object owning these descriptors past this point (it is about to exec).
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) };
    Errno::result(r).map(drop)
}
