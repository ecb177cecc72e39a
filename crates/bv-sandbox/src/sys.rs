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

/// Empties this process's effective, permitted and inheritable capability
/// sets. A process that never executes anything (the jail's supervisor)
/// keeps whatever its user namespace gave it otherwise: `execve` is what
/// clears them for the job.
pub fn clear_capability_sets() -> nix::Result<()> {
    /// `struct __user_cap_header_struct` from `<linux/capability.h>`.
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    /// `struct __user_cap_data_struct`.
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    /// `_LINUX_CAPABILITY_VERSION_3`: two data structs, 64 capabilities.
    const VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: `header` and `data` are live, properly laid out
    // (`#[repr(C)]` copies of the kernel's structs) for the whole call, and
    // version 3 reads exactly two data structs; pid 0 means this thread.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) };
    Errno::result(r).map(drop)
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

/// Descriptors already claimed by [`handed_in`] (bit N for descriptor N).
static CLAIMED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Takes ownership of descriptor `n` (3..64) that the launcher handed to this
/// job ([`crate::Jail::run_with_fds`]). Fails if it is not open or was
/// already taken.
pub fn handed_in(n: i32) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    if !(3..64).contains(&n) {
        return Err(std::io::Error::other(format!(
            "descriptor {n} is not a handed-in one"
        )));
    }
    let bit = 1u64 << n;
    if CLAIMED.fetch_or(bit, std::sync::atomic::Ordering::SeqCst) & bit != 0 {
        return Err(std::io::Error::other(format!(
            "descriptor {n} was already taken"
        )));
    }
    // SAFETY: F_GETFD only reads the descriptor's flags; any integer is a valid argument.
    if unsafe { libc::fcntl(n, libc::F_GETFD) } < 0 {
        CLAIMED.fetch_and(!bit, std::sync::atomic::Ordering::SeqCst);
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: descriptor `n` is open (F_GETFD succeeded); the launcher's
    // contract is that descriptors 3.. are handed to the job and nothing else
    // in this process owns them, and the bit above makes sure this function
    // gives each one away at most once.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(n) })
}

/// The Landlock ABI version the kernel offers, or why there is none
/// (`bv doctor` reports it; the jail applies Landlock best-effort).
pub fn landlock_abi() -> Result<i64, Errno> {
    /// `LANDLOCK_CREATE_RULESET_VERSION` from `<linux/landlock.h>`.
    const VERSION: u32 = 1;
    // SAFETY: with this flag, a null attribute pointer and a zero size the
    // kernel only returns its ABI version: no memory is read or written and
    // no descriptor is created.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            VERSION,
        )
    };
    if r < 0 { Err(Errno::last()) } else { Ok(r) }
}
