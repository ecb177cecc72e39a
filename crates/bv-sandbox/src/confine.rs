//! Confinement applied by the job itself, inside the jail, before it reads
//! any input: Landlock (read-only filesystem except the given writable
//! paths) and a seccomp allowlist. Both are inherited across `execve`, so
//! FFmpeg runs under them too.

use std::collections::BTreeMap;
use std::path::Path;

use landlock::{
    ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
    path_beneath_rules,
};
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

use crate::error::SandboxError;

/// What was applied.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConfineReport {
    /// `fully enforced`, `partially enforced` or `not enforced` (kernel without Landlock).
    pub landlock: String,
    /// Syscalls allowed by the seccomp filter.
    pub seccomp_allowed: usize,
}

/// System calls a job (the runner, FFmpeg, Python in tests) may make; every
/// other one fails with EPERM: sockets, ptrace, mount, namespaces, keyrings,
/// BPF, modules, perf, io_uring, userfaultfd, process_vm_*, reboot, …
#[cfg(target_arch = "x86_64")]
const ALLOWED: &[i64] = &[
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_preadv,
    libc::SYS_pwritev,
    libc::SYS_open,
    libc::SYS_openat,
    libc::SYS_close,
    libc::SYS_close_range,
    libc::SYS_fstat,
    libc::SYS_stat,
    libc::SYS_lstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_statfs,
    libc::SYS_fstatfs,
    libc::SYS_lseek,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mprotect,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_brk,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigtimedwait,
    libc::SYS_rt_sigsuspend,
    libc::SYS_sigaltstack,
    libc::SYS_ioctl,
    libc::SYS_access,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_pipe,
    libc::SYS_pipe2,
    libc::SYS_dup,
    libc::SYS_dup2,
    libc::SYS_dup3,
    libc::SYS_fcntl,
    libc::SYS_flock,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_ftruncate,
    libc::SYS_fallocate,
    libc::SYS_getdents64,
    libc::SYS_getcwd,
    libc::SYS_chdir,
    libc::SYS_fchdir,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_mkdir,
    libc::SYS_mkdirat,
    libc::SYS_rmdir,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_readlink,
    libc::SYS_readlinkat,
    libc::SYS_umask,
    libc::SYS_fchmod,
    libc::SYS_chmod,
    libc::SYS_fchmodat,
    libc::SYS_utimensat,
    libc::SYS_clone,
    libc::SYS_clone3,
    libc::SYS_fork,
    libc::SYS_vfork,
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_wait4,
    libc::SYS_waitid,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_kill,
    libc::SYS_tgkill,
    libc::SYS_tkill,
    libc::SYS_pidfd_open,
    libc::SYS_pidfd_send_signal,
    libc::SYS_getpid,
    libc::SYS_getppid,
    libc::SYS_gettid,
    libc::SYS_getuid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getegid,
    libc::SYS_getresuid,
    libc::SYS_getresgid,
    libc::SYS_getgroups,
    libc::SYS_getpgrp,
    libc::SYS_getpgid,
    libc::SYS_setpgid,
    libc::SYS_getsid,
    libc::SYS_setsid,
    libc::SYS_prctl,
    libc::SYS_arch_prctl,
    libc::SYS_set_tid_address,
    libc::SYS_set_robust_list,
    libc::SYS_get_robust_list,
    libc::SYS_rseq,
    libc::SYS_futex,
    libc::SYS_futex_waitv,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_sched_setaffinity,
    libc::SYS_sched_getparam,
    libc::SYS_sched_getscheduler,
    libc::SYS_sched_get_priority_max,
    libc::SYS_sched_get_priority_min,
    libc::SYS_getpriority,
    libc::SYS_setpriority,
    libc::SYS_nanosleep,
    libc::SYS_clock_nanosleep,
    libc::SYS_clock_gettime,
    libc::SYS_clock_getres,
    libc::SYS_gettimeofday,
    libc::SYS_time,
    libc::SYS_times,
    libc::SYS_getrusage,
    libc::SYS_getrlimit,
    libc::SYS_prlimit64,
    libc::SYS_sysinfo,
    libc::SYS_uname,
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_select,
    libc::SYS_pselect6,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_eventfd2,
    libc::SYS_restart_syscall,
    libc::SYS_getrandom,
    libc::SYS_memfd_create,
    libc::SYS_membarrier,
    libc::SYS_get_mempolicy,
    libc::SYS_set_mempolicy,
    libc::SYS_mbind,
    libc::SYS_mlock,
    libc::SYS_munlock,
    libc::SYS_alarm,
    libc::SYS_getitimer,
    libc::SYS_setitimer,
    libc::SYS_sched_setscheduler,
];

#[cfg(target_arch = "aarch64")]
const ALLOWED: &[i64] = &[];

/// Namespace flags a job's `clone` may not carry: with them a confined job
/// made itself a user namespace with every capability inside it (the outside
/// review's finding 10). `unshare` and `setns` are not allowed at all.
const NAMESPACE_FLAGS: [u64; 8] = [
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    // CLONE_NEWTIME: not exported by libc for clone; the kernel's value.
    0x80,
];

/// The extra filters stacked on the allowlist (the kernel applies the most
/// restrictive answer of all filters): `clone` with a namespace flag is
/// refused (EPERM); `clone3`, whose flags live in memory a filter cannot
/// read, answers ENOSYS, so libc falls back to `clone`, which is checked.
/// `clone3` must stay in the allowlist: were the allowlist to refuse it too,
/// its EPERM could win over ENOSYS, and libc would not fall back (threads,
/// FFmpeg's among them, would fail to start). A test holds this.
fn clone_programs() -> Result<[BpfProgram; 2], SandboxError> {
    #[cfg(target_arch = "x86_64")]
    let arch = TargetArch::x86_64;
    #[cfg(target_arch = "aarch64")]
    let arch = TargetArch::aarch64;
    let bad = |e: seccompiler::BackendError| SandboxError::Confine(e.to_string());
    let mut flag_rules = Vec::new();
    for flag in NAMESPACE_FLAGS {
        let c = seccompiler::SeccompCondition::new(
            0,
            seccompiler::SeccompCmpArgLen::Qword,
            seccompiler::SeccompCmpOp::MaskedEq(flag),
            flag,
        )
        .map_err(bad)?;
        flag_rules.push(seccompiler::SeccompRule::new(vec![c]).map_err(bad)?);
    }
    let compile = |rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>>, errno: i32| {
        let f = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(errno as u32),
            arch,
        )
        .map_err(|e| SandboxError::Confine(e.to_string()))?;
        f.try_into()
            .map_err(|e: seccompiler::BackendError| SandboxError::Confine(e.to_string()))
    };
    let clone: BpfProgram = compile([(libc::SYS_clone, flag_rules)].into(), libc::EPERM)?;
    let clone3: BpfProgram = compile([(libc::SYS_clone3, Vec::new())].into(), libc::ENOSYS)?;
    Ok([clone, clone3])
}

/// System calls the jail's supervisor makes once the job runs: wait for
/// it, report, exit the way it did (raising its signal), allocate.
#[cfg(target_arch = "x86_64")]
const SUPERVISOR_ALLOWED: &[i64] = &[
    libc::SYS_write,
    libc::SYS_close,
    libc::SYS_wait4,
    libc::SYS_waitid,
    libc::SYS_kill,
    libc::SYS_tgkill,
    libc::SYS_tkill,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    libc::SYS_restart_syscall,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_mprotect,
    libc::SYS_brk,
    libc::SYS_futex,
    libc::SYS_sched_yield,
    libc::SYS_clock_gettime,
    libc::SYS_exit,
    libc::SYS_exit_group,
];
#[cfg(target_arch = "aarch64")]
const SUPERVISOR_ALLOWED: &[i64] = &[];

/// A filter allowing exactly `allowed`; anything else fails with EPERM.
fn allowlist(allowed: &[i64]) -> Result<BpfProgram, SandboxError> {
    #[cfg(target_arch = "x86_64")]
    let arch = TargetArch::x86_64;
    #[cfg(target_arch = "aarch64")]
    let arch = TargetArch::aarch64;
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> =
        allowed.iter().map(|nr| (*nr, Vec::new())).collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        arch,
    )
    .map_err(|e| SandboxError::Confine(e.to_string()))?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| SandboxError::Confine(e.to_string()))
}

/// Confines the jail's supervisor (the launcher once it has started the
/// job) to what it still does: wait, report on its open stderr, exit. It
/// held every capability of the job's user namespace, no seccomp and no
/// no-new-privileges (the outside review's finding 10); now it keeps no
/// capability in any set, can open no file (Landlock with no rule), and
/// may make only [`SUPERVISOR_ALLOWED`] system calls.
pub fn supervisor() -> Result<(), SandboxError> {
    if SUPERVISOR_ALLOWED.is_empty() {
        return Err(SandboxError::Confine(
            "no supervisor allowlist for this architecture".into(),
        ));
    }
    let sys =
        |what: &'static str| move |e: nix::Error| SandboxError::Confine(format!("{what}: {e}"));
    crate::sys::drop_all_capabilities().map_err(sys("capability bounding set"))?;
    nix::sys::prctl::set_no_new_privs().map_err(sys("no-new-privileges"))?;
    // Best effort, like the job's: a kernel without Landlock still gets the rest.
    let abi = ABI::V5;
    let err = |e: landlock::RulesetError| SandboxError::Confine(format!("landlock: {e}"));
    Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .map_err(err)?
        .create()
        .map_err(err)?
        .restrict_self()
        .map_err(err)?;
    crate::sys::clear_capability_sets().map_err(sys("capability sets"))?;
    let prog = allowlist(SUPERVISOR_ALLOWED)?;
    seccompiler::apply_filter(&prog).map_err(|e| SandboxError::Confine(format!("seccomp: {e}")))
}

fn seccomp_program() -> Result<BpfProgram, SandboxError> {
    allowlist(ALLOWED)
}

/// Applies Landlock and seccomp to this process (all its threads must not exist yet:
/// call it first thing). `writable` paths (and `/dev`) keep write access.
pub fn confine(writable: &[&Path]) -> Result<ConfineReport, SandboxError> {
    if ALLOWED.is_empty() {
        return Err(SandboxError::Confine(
            "no seccomp allowlist for this architecture".into(),
        ));
    }
    let abi = ABI::V5;
    let err = |e: landlock::RulesetError| SandboxError::Confine(format!("landlock: {e}"));
    let mut rw: Vec<&Path> = writable.to_vec();
    rw.push(Path::new("/dev"));
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .map_err(err)?
        .create()
        .map_err(err)?
        .add_rules(path_beneath_rules(["/"], AccessFs::from_read(abi)))
        .map_err(err)?
        .add_rules(path_beneath_rules(rw, AccessFs::from_all(abi)))
        .map_err(err)?
        .restrict_self()
        .map_err(err)?;
    let landlock = match status.ruleset {
        RulesetStatus::FullyEnforced => "fully enforced",
        RulesetStatus::PartiallyEnforced => "partially enforced",
        RulesetStatus::NotEnforced => "not enforced",
    };
    // The clone filters go first: the allowlist does not allow `seccomp`
    // itself, so nothing can be stacked after it.
    for extra in clone_programs()? {
        seccompiler::apply_filter(&extra)
            .map_err(|e| SandboxError::Confine(format!("seccomp: {e}")))?;
    }
    let prog = seccomp_program()?;
    seccompiler::apply_filter(&prog).map_err(|e| SandboxError::Confine(format!("seccomp: {e}")))?;
    Ok(ConfineReport {
        landlock: landlock.into(),
        seccomp_allowed: ALLOWED.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_compiles_and_denies_the_dangerous_calls() {
        assert!(seccomp_program().is_ok());
        assert!(clone_programs().is_ok());
        // clone3 is refused with ENOSYS by its own filter, never EPERM by the allowlist.
        assert!(ALLOWED.contains(&libc::SYS_clone3) && ALLOWED.contains(&libc::SYS_clone));
        for nr in [
            libc::SYS_socket,
            libc::SYS_connect,
            libc::SYS_ptrace,
            libc::SYS_mount,
            libc::SYS_unshare,
            libc::SYS_setns,
            libc::SYS_keyctl,
            libc::SYS_bpf,
            libc::SYS_init_module,
            libc::SYS_finit_module,
            libc::SYS_perf_event_open,
            libc::SYS_process_vm_readv,
            libc::SYS_userfaultfd,
            libc::SYS_io_uring_setup,
            libc::SYS_reboot,
            libc::SYS_chroot,
        ] {
            assert!(!ALLOWED.contains(&nr), "syscall {nr} must not be allowed");
        }
    }
}
