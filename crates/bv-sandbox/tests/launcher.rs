//! The launcher's contract with the parent: input in, lines out, the job's
//! exit status through, and setup failures reported as errors (never as a
//! job that silently did nothing).

use std::sync::atomic::AtomicBool;

use bv_sandbox::{Exit, Jail, Mount, SandboxError};

fn jail(mounts: Vec<Mount>) -> Jail {
    Jail {
        mounts,
        launcher: Some(env!("CARGO_BIN_EXE_bv-jail").into()),
        ..Jail::default()
    }
}

fn sh(
    j: &Jail,
    script: &str,
    input: &[u8],
) -> Result<(bv_sandbox::Outcome, Vec<String>), SandboxError> {
    let mut lines = Vec::new();
    let out = j.run(
        "/usr/bin/sh",
        &["-c".into(), script.into()],
        input,
        &mut |l| lines.push(l.to_string()),
        &AtomicBool::new(false),
    )?;
    assert!(out.teardown.clean(), "{:?}", out.teardown);
    Ok((out, lines))
}

#[test]
fn input_goes_in_lines_come_out_status_comes_back() {
    let (out, lines) = sh(
        &jail(vec![]),
        "tr a-z A-Z; echo to-stderr >&2; exit 7",
        b"one\ntwo\n",
    )
    .unwrap();
    assert_eq!(lines, ["ONE", "TWO"]);
    assert_eq!(out.exit, Exit::Code(7));
    assert_eq!(
        out.stderr, "to-stderr",
        "the launcher's own lines are not the job's"
    );
    let c = out.confinement.expect("confinement reported");
    assert_eq!(c.landlock, "fully enforced");
}

#[test]
fn mounts_are_read_only_unless_writable() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("in.txt"), "from the host").unwrap();
    std::fs::write(d.path().join("out.txt"), "").unwrap();
    let mounts = vec![
        Mount {
            host: d.path().join("in.txt"),
            inside: "/in/in.txt".into(),
            writable: false,
        },
        Mount {
            host: d.path().join("out.txt"),
            inside: "/out/out.txt".into(),
            writable: true,
        },
    ];
    let (out, lines) = sh(
        &jail(mounts),
        "cat /in/in.txt; echo; (echo x > /in/in.txt) 2>/dev/null || echo RO; echo written > /out/out.txt && echo RW",
        b"",
    )
    .unwrap();
    assert_eq!(out.exit, Exit::Code(0), "{}", out.stderr);
    assert_eq!(lines, ["from the host", "RO", "RW"]);
    assert_eq!(
        std::fs::read_to_string(d.path().join("in.txt")).unwrap(),
        "from the host"
    );
    assert_eq!(
        std::fs::read_to_string(d.path().join("out.txt")).unwrap(),
        "written\n"
    );
}

#[test]
fn setup_failures_are_errors_with_the_reason() {
    let missing = Mount {
        host: "/nonexistent/model".into(),
        inside: "/models".into(),
        writable: false,
    };
    match sh(&jail(vec![missing]), "true", b"") {
        Err(e @ SandboxError::Setup(_)) => {
            assert_eq!(e.code(), "sandbox_unavailable");
            assert!(e.to_string().contains("/nonexistent/model"), "{e}");
        }
        other => panic!("expected a setup error, got {other:?}"),
    }
    let escape = Mount {
        host: "/usr".into(),
        inside: "/scratch/../etc".into(),
        writable: true,
    };
    assert!(matches!(
        sh(&jail(vec![escape]), "true", b""),
        Err(SandboxError::Setup(_))
    ));
    let absent = Jail {
        launcher: Some("/nonexistent/bv-jail".into()),
        ..Jail::default()
    };
    assert!(matches!(sh(&absent, "true", b""), Err(SandboxError::Io(_))));
}

#[test]
fn plaintext_goes_in_and_comes_out_through_handed_in_pipes() {
    use std::io::{Read, Write};
    let (in_r, in_w) = nix::unistd::pipe().unwrap();
    let (out_r, out_w) = nix::unistd::pipe().unwrap();
    // More than a pipe holds, so both directions must stream.
    let data: Vec<u8> = (0..3_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let expect: Vec<u8> = data.iter().map(u8::to_ascii_uppercase).collect();
    let writer = std::thread::spawn(move || {
        let mut f = std::fs::File::from(in_w);
        f.write_all(&data).unwrap();
    });
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        std::fs::File::from(out_r).read_to_end(&mut got).unwrap();
        got
    });
    let mut lines = Vec::new();
    let out = jail(vec![])
        .run_with_fds(
            "/usr/bin/sh",
            &[
                "-c".into(),
                "[ -e /proc/self/fd/5 ] && exit 9; tr a-z A-Z <&3 >&4; echo done".into(),
            ],
            b"",
            vec![in_r, out_w],
            &mut |l| lines.push(l.to_string()),
            &AtomicBool::new(false),
        )
        .unwrap();
    writer.join().unwrap();
    let got = reader.join().unwrap();
    assert_eq!(out.exit, Exit::Code(0), "{}", out.stderr);
    assert!(out.teardown.clean());
    assert_eq!(lines, ["done"]);
    assert!(
        got == expect,
        "the result came back whole ({} bytes)",
        got.len()
    );
}

/// The supervisor (the launcher once the job runs) keeps no power over the
/// job's namespaces: no capability in any set, no-new-privileges, a seccomp
/// filter (the outside review's finding 10: it kept every capability of the
/// job's user namespace). Read from the host while the job runs; then the
/// job is killed from the host, and the signal still comes back through
/// the confined supervisor.
#[test]
fn the_supervisor_gives_up_every_capability_while_the_job_runs() {
    let launcher = std::fs::canonicalize(env!("CARGO_BIN_EXE_bv-jail")).unwrap();
    // (pid, status) of every process whose parent is `parent`.
    let children = |parent: u32| -> Vec<(u32, String)> {
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            let Ok(status) = std::fs::read_to_string(e.path().join("status")) else {
                continue;
            };
            let ppid = status.lines().find_map(|l| l.strip_prefix("PPid:"));
            if ppid.map(str::trim) == Some(parent.to_string().as_str()) {
                out.push((pid, status));
            }
        }
        out
    };
    let field = |status: &str, name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    // Other tests of this binary run launchers beside this one: this job's
    // is the one whose command line carries this marker.
    let marker = format!("supervisor-probe-{}", std::process::id());
    let script = format!("echo ready; sleep 10; exit 3 # {marker}");
    let mut seen = None;
    let mut lines = Vec::new();
    let out = jail(vec![])
        .run(
            "/usr/bin/sh",
            &["-c".into(), script],
            b"",
            &mut |l| {
                lines.push(l.to_string());
                // The job printed: its supervisor confined itself before that.
                let (pid, status) = children(std::process::id())
                    .into_iter()
                    .find(|(pid, _)| {
                        let cmdline =
                            std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                        std::fs::read_link(format!("/proc/{pid}/exe")).ok().as_ref()
                            == Some(&launcher)
                            && String::from_utf8_lossy(&cmdline).contains(&marker)
                    })
                    .expect("the supervisor runs");
                seen = Some(status);
                for (job, _) in children(pid) {
                    nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(job as i32),
                        nix::sys::signal::Signal::SIGKILL,
                    )
                    .unwrap();
                }
            },
            &AtomicBool::new(false),
        )
        .unwrap();
    assert_eq!(lines, ["ready"]);
    let status = seen.expect("the supervisor was read while the job ran");
    for cap in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
        assert_eq!(field(&status, cap), "0000000000000000", "{cap}\n{status}");
    }
    assert_eq!(field(&status, "NoNewPrivs:"), "1", "{status}");
    assert_eq!(field(&status, "Seccomp:"), "2", "{status}");
    // Confined, it still reports the job's end as it was: killed, not "exit 3".
    assert_eq!(out.exit, Exit::Signal(9), "{}", out.stderr);
}
