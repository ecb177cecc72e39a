//! Launch-plus-teardown cost of a jail next to its building blocks, interleaved.
//! `launch_bench [rounds] [path to bv]` prints the median milliseconds of each.
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use bv_sandbox::{Jail, Mount};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args.get(1).map_or(30, |a| a.parse().unwrap());
    let bv = args.get(2).cloned();
    let plain = || Command::new("/usr/bin/true").status().unwrap();
    let unshare = || {
        Command::new("unshare")
            .args([
                "--user",
                "--map-root-user",
                "--pid",
                "--fork",
                "--mount",
                "--net",
                "--ipc",
                "--uts",
                "/usr/bin/true",
            ])
            .status()
            .unwrap()
    };
    let bwrap = || {
        Command::new("bwrap")
            .args([
                "--unshare-all",
                "--unshare-user",
                "--uid",
                "65534",
                "--gid",
                "65534",
                "--cap-drop",
                "ALL",
            ])
            .args([
                "--die-with-parent",
                "--new-session",
                "--ro-bind",
                "/usr",
                "/usr",
                "--symlink",
                "usr/lib",
                "/lib",
            ])
            .args([
                "--symlink",
                "usr/lib64",
                "/lib64",
                "--symlink",
                "usr/bin",
                "/bin",
                "--proc",
                "/proc",
                "--dev",
                "/dev",
            ])
            .args(["--tmpfs", "/scratch", "/usr/bin/true"])
            .status()
            .unwrap()
    };
    let cancel = AtomicBool::new(false);
    let ours = |program: &str, args: &[String], mounts: Vec<Mount>, cgroups: bool| {
        let out = Jail {
            mounts,
            cgroups,
            ..Jail::default()
        }
        .run(program, args, b"", &mut |_| {}, &cancel)
        .unwrap();
        assert!(out.teardown.clean(), "{:?}", out.teardown);
    };
    let mut names = vec![
        "fork/exec true",
        "unshare true",
        "bwrap true",
        "ours without cgroups: jail + prlimit + teardown checks, true",
        "ours: jail + cgroups + prlimit + teardown checks, true",
    ];
    if bv.is_some() {
        names.push("ours without cgroups + bv sandbox-exec (Landlock, seccomp), true");
        names.push("ours + bv sandbox-exec (Landlock, seccomp), true: a real job's launch");
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for r in 0..rounds + 2 {
        for (i, _) in names.iter().enumerate() {
            let t = Instant::now();
            match i {
                0 => drop(plain()),
                1 => drop(unshare()),
                2 => drop(bwrap()),
                3 => ours("/usr/bin/true", &[], Vec::new(), false),
                4 => ours("/usr/bin/true", &[], Vec::new(), true),
                k => {
                    let mount = Mount {
                        host: bv.clone().unwrap().into(),
                        inside: "/opt/bv/bv".into(),
                        writable: false,
                    };
                    let args: Vec<String> = [
                        "sandbox-exec",
                        "--writable",
                        "/scratch",
                        "--",
                        "/usr/bin/true",
                    ]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                    ours("/opt/bv/bv", &args, vec![mount], k == 6)
                }
            }
            if r >= 2 {
                times[i].push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    for (name, mut t) in names.into_iter().zip(times) {
        t.sort_by(f64::total_cmp);
        println!(
            "{:>8.2} ms median  {:>8.2} ms min  {name}",
            t[t.len() / 2],
            t[0]
        );
    }
}
