//! The jail's root filesystem, built in its own mount namespace:
//!
//! ```text
//! /            tmpfs, read-only once built
//! /usr         read-only bind of the host's /usr (lib, lib64, bin, sbin link into it)
//! /etc/…       read-only binds of the loader's files only (ld.so.cache, alternatives)
//! /proc        a new procfs: only the jail's PID namespace
//! /dev         null zero full random urandom (binds), fd/stdin/stdout/stderr links, shm → /scratch
//! /scratch     private tmpfs, size-capped, noexec; /tmp links here; cwd and $HOME
//! + the job's mounts (read-only unless marked writable)
//! ```
//!
//! Nothing else of the host exists inside: no /home, /root, /var, /sys, /run,
//! no data directory, no keys.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::statvfs::{FsFlags, statvfs};

use super::LaunchSpec;
use crate::error::SandboxError;

/// Where the new root's tmpfs is first mounted (a mount point every system
/// has; the tmpfs is visible only in the jail's mount namespace).
const BASE: &str = "/tmp";
/// Where the host's root stays reachable while the jail is assembled.
const OLD: &str = "/oldroot";
/// Device nodes a job may use.
const DEVICES: [&str; 5] = ["null", "zero", "full", "random", "urandom"];
/// Loader files some libraries are found through (BLAS/LAPACK via alternatives).
const ETC: [&str; 2] = ["/etc/ld.so.cache", "/etc/alternatives"];

fn setup<T>(what: impl std::fmt::Display) -> impl FnOnce(T) -> SandboxError
where
    T: std::fmt::Display,
{
    move |e| SandboxError::Setup(format!("{what}: {e}"))
}

/// A host path as seen from the new root while it is being assembled.
fn host(p: &Path) -> PathBuf {
    Path::new(OLD).join(p.strip_prefix("/").unwrap_or(p))
}

const NONE: Option<&str> = None;

/// Builds the root for `spec`, pivots into it and leaves the process in `/scratch`.
pub fn build(spec: &LaunchSpec) -> Result<(), SandboxError> {
    // Nothing done here may propagate back to the host's mounts.
    mount(NONE, "/", NONE, MsFlags::MS_REC | MsFlags::MS_PRIVATE, NONE)
        .map_err(setup("making mounts private"))?;
    mount(
        Some("bv-jail"),
        BASE,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755,size=1m,nr_inodes=1024"),
    )
    .map_err(setup("root tmpfs"))?;
    // Pivot first and keep the host's root under /oldroot until the binds are
    // made: host paths (even under /tmp) stay reachable, then it is detached.
    std::fs::create_dir(Path::new(BASE).join(&OLD[1..])).map_err(setup(OLD))?;
    nix::unistd::chdir(BASE).map_err(setup("chdir"))?;
    nix::unistd::pivot_root(".", &OLD[1..]).map_err(setup("pivot_root"))?;
    nix::unistd::chdir("/").map_err(setup("chdir /"))?;

    for d in ["/usr", "/etc", "/proc", "/dev", "/scratch"] {
        std::fs::create_dir(d).map_err(setup(d))?;
    }
    for (link, to) in [
        ("/lib", "usr/lib"),
        ("/lib64", "usr/lib64"),
        ("/bin", "usr/bin"),
        ("/sbin", "usr/sbin"),
        ("/tmp", "scratch"),
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
        ("/dev/shm", "/scratch"),
    ] {
        std::os::unix::fs::symlink(to, link).map_err(setup(link))?;
    }
    bind(
        &host(Path::new("/usr")),
        Path::new("/usr"),
        Access::ReadOnly,
    )?;
    for etc in ETC.iter().map(Path::new).filter(|p| host(p).exists()) {
        bind(&host(etc), etc, Access::ReadOnly)?;
    }
    for dev in DEVICES {
        let node = Path::new("/dev").join(dev);
        bind(&host(&node), &node, Access::Device)?;
    }
    for m in &spec.mounts {
        let access = if m.writable {
            Access::ReadWrite
        } else {
            Access::ReadOnly
        };
        if !m.inside.is_absolute() || m.inside.components().any(|c| c.as_os_str() == "..") {
            return Err(SandboxError::Setup(format!(
                "mount target {} must be an absolute path without ..",
                m.inside.display()
            )));
        }
        bind(&host(&m.host), &m.inside, access)?;
    }
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        NONE,
    )
    .map_err(setup("/proc"))?;
    let scratch_opts = format!(
        "mode=0700,size={},nr_inodes={}",
        spec.limits.scratch_bytes.max(4096),
        (spec.limits.scratch_bytes / 4096).clamp(1024, 1 << 20)
    );
    mount(
        Some("scratch"),
        "/scratch",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(scratch_opts.as_str()),
    )
    .map_err(setup("/scratch"))?;

    umount2(OLD, MntFlags::MNT_DETACH).map_err(setup("detaching the host's root"))?;
    std::fs::remove_dir(OLD).map_err(setup(OLD))?;
    mount(
        NONE,
        "/",
        NONE,
        MsFlags::MS_REMOUNT
            | MsFlags::MS_BIND
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV,
        NONE,
    )
    .map_err(setup("read-only root"))?;
    nix::unistd::chdir("/scratch").map_err(setup("chdir /scratch"))?;
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    ReadOnly,
    ReadWrite,
    /// Writable device node (no `nodev`, but `noexec`).
    Device,
}

/// Bind-mounts `host` at `target` (creating the mount point) and remounts it
/// with `access`, keeping the flags the host's mount has locked (a user
/// namespace may add restrictions but never lift them).
fn bind(host: &Path, target: &Path, access: Access) -> Result<(), SandboxError> {
    let shown = Path::new("/").join(host.strip_prefix(OLD).unwrap_or(host));
    let shown = shown.display();
    let meta = std::fs::metadata(host).map_err(setup(&shown))?;
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(setup(parent.display()))?;
    }
    if meta.is_dir() {
        std::fs::create_dir_all(target).map_err(setup(target.display()))?;
    } else if !target.exists() {
        std::fs::File::create(target).map_err(setup(target.display()))?;
    }
    mount(Some(host), target, NONE, MsFlags::MS_BIND, NONE)
        .map_err(setup(format!("bind {shown}")))?;
    let locked = statvfs(host).map_err(setup(&shown))?.flags();
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID;
    for (st, ms) in [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if locked.contains(st) {
            flags |= ms;
        }
    }
    if !locked.intersects(FsFlags::ST_NOATIME | FsFlags::ST_RELATIME) {
        flags |= MsFlags::MS_STRICTATIME;
    }
    match access {
        Access::ReadOnly => flags |= MsFlags::MS_RDONLY | MsFlags::MS_NODEV,
        Access::ReadWrite => flags |= MsFlags::MS_NODEV,
        Access::Device => flags |= MsFlags::MS_NOEXEC,
    }
    mount(NONE, target, NONE, flags, NONE).map_err(setup(format!("remount {shown}")))
}
