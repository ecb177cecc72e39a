//! Launch-plus-teardown cost of a jail next to its building blocks, interleaved.
//! `launch_bench [rounds]` prints the median milliseconds of each.
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use bv_sandbox::Jail;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args.get(1).map_or(30, |a| a.parse().unwrap());
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
    let ours = |cgroups: bool| {
        let out = Jail {
            cgroups,
            ..Jail::default()
        }
        .run("/usr/bin/true", &[], b"", &mut |_| {}, &cancel)
        .unwrap();
        assert!(out.teardown.clean(), "{:?}", out.teardown);
        assert!(out.confinement.is_some());
        out.teardown.cgroups
    };
    let names = [
        "fork/exec true",
        "unshare (user, pid, mount, net, ipc, uts) true",
        "bwrap --unshare-all (minimal root, proc, dev, tmpfs) true",
        "ours without cgroups: launcher + jail + Landlock + seccomp + teardown checks, true",
        "ours: the same in per-job cgroups (a real job's launch), true",
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut cgroups = "";
    for r in 0..rounds + 2 {
        for (i, _) in names.iter().enumerate() {
            let t = Instant::now();
            match i {
                0 => drop(plain()),
                1 => drop(unshare()),
                2 => drop(bwrap()),
                3 => drop(ours(false)),
                _ => cgroups = ours(true),
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
    println!("(per-job cgroups: {cgroups}; target for ours: 10 ms)");
}
