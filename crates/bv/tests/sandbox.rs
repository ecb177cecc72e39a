//! Hostile jobs: real attacks from inside the jail (Python, started by the
//! launcher exactly as the job runner is: same namespaces, root, limits,
//! Landlock and seccomp). Each attack must fail or be contained, the job must
//! end with a clear outcome, the host must stay healthy, and the teardown
//! checks must find nothing left.

mod common;

use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::UnixListener;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use bv_sandbox::{Exit, Jail, Limits, Mount, Outcome};

fn jail(limits: Limits) -> Jail {
    Jail {
        limits,
        mounts: vec![Mount {
            host: env!("CARGO_BIN_EXE_bv").into(),
            inside: "/opt/bv/bv".into(),
            writable: false,
        }],
        ..Jail::default()
    }
}

fn small() -> Limits {
    Limits {
        memory_bytes: 1 << 30,
        cpu_seconds: 30,
        processes: 64,
        wall_seconds: 30,
        scratch_bytes: 16 << 20,
        ..Limits::default()
    }
}

/// Runs Python `code` in a fresh jail under `limits`; returns the outcome and its stdout lines.
fn attack(code: &str, limits: Limits) -> (Outcome, Vec<String>) {
    let mut lines = Vec::new();
    let args = ["-c".to_string(), code.to_string()];
    let out = jail(limits)
        .run(
            "/usr/bin/python3",
            &args,
            b"",
            &mut |l| lines.push(l.to_string()),
            &AtomicBool::new(false),
        )
        .unwrap();
    assert!(
        out.teardown.clean(),
        "teardown not clean: {:?}",
        out.teardown
    );
    let confined = out
        .confinement
        .as_ref()
        .expect("the launcher reports its confinement");
    assert!(confined.seccomp_allowed > 0);
    (out, lines)
}

/// Asserts every probe line says CONTAINED and none says ESCAPED.
fn contained(lines: &[String], expected: usize) {
    let escaped: Vec<_> = lines.iter().filter(|l| l.starts_with("ESCAPED")).collect();
    assert!(escaped.is_empty(), "escapes: {escaped:?}");
    let n = lines.iter().filter(|l| l.starts_with("CONTAINED")).count();
    assert_eq!(
        n, expected,
        "expected {expected} contained probes, got {lines:?}"
    );
}

const PROBE: &str = r#"
import errno, os, sys
def probe(name, f):
    try:
        r = f()
        print(f"ESCAPED {name}: {r!r}", flush=True)
    except BaseException as e:
        print(f"CONTAINED {name}: {type(e).__name__} {e}", flush=True)
"#;

#[test]
fn no_network_no_host_sockets_no_dns() {
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("host.sock");
    let unix = UnixListener::bind(&sock_path).unwrap();
    unix.set_nonblocking(true).unwrap();
    let code = format!(
        "{PROBE}
import socket
probe('tcp to a host port', lambda: socket.create_connection(('127.0.0.1', {tp}), timeout=2))
probe('tcp to loopback', lambda: socket.create_connection(('127.0.0.1', 22), timeout=2))
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'x', ('127.0.0.1', {up})); return 'sent'
probe('udp to a host port', udp)
def unix():
    s = socket.socket(socket.AF_UNIX); s.connect('{sp}'); return 'connected'
probe('unix socket of the host', unix)
probe('dns lookup', lambda: socket.getaddrinfo('example.com', 80))
",
        tp = tcp.local_addr().unwrap().port(),
        up = udp.local_addr().unwrap().port(),
        sp = sock_path.display()
    );
    let (out, lines) = attack(&code, small());
    contained(&lines, 5);
    assert_eq!(out.exit, Exit::Code(0));
    assert!(
        tcp.accept().is_err() && udp.recv(&mut [0u8; 8]).is_err() && unix.accept().is_err(),
        "the host heard nothing"
    );
}

#[test]
fn host_files_keys_and_data_are_out_of_reach() {
    let data = common::data_dir();
    let code = format!(
        "{PROBE}
probe('read /etc/shadow', lambda: open('/etc/shadow').read())
probe('read /etc/passwd', lambda: open('/etc/passwd').read())
probe('read the data directory', lambda: os.listdir('{d}'))
probe('read the root key file', lambda: open('{d}/root.key').read())
probe('read /root', lambda: os.listdir('/root'))
probe('write /usr', lambda: open('/usr/evil', 'w').write('x'))
probe('write the bv binary', lambda: open('/opt/bv/bv', 'r+b').write(b'x'))
probe('write /', lambda: open('/evil', 'w').write('x'))
probe('write /proc/sys', lambda: open('/proc/sys/kernel/hostname', 'w').write('x'))
open('/scratch/fine', 'w').write('scratch is writable')
print('OK scratch', flush=True)
",
        d = data.display()
    );
    let (out, lines) = attack(&code, small());
    contained(&lines, 9);
    assert!(lines.iter().any(|l| l == "OK scratch"));
    assert_eq!(out.exit, Exit::Code(0));
}

#[test]
fn no_capabilities_no_inherited_descriptors_a_scrubbed_environment() {
    // A descriptor this process leaves inheritable must not reach the job.
    let leaked = std::fs::File::open("/etc/hostname").unwrap();
    nix::fcntl::fcntl(
        &leaked,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .unwrap();
    let code = "import os
status = dict(l.split(':\t', 1) for l in open('/proc/self/status').read().splitlines() if ':\t' in l)
print('CAPS', *(status[k].strip() for k in ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']), flush=True)
print('NONEWPRIVS', status['NoNewPrivs'].strip(), 'SECCOMP', status['Seccomp'].strip(), flush=True)
print('IDS', os.getuid(), os.getgid(), os.getgroups(), flush=True)
print('FDS', *sorted(int(f) for f in os.listdir('/proc/self/fd')), flush=True)
print('ENV', *sorted(os.environ), flush=True)
print('HOST', os.uname().nodename, os.getpid(), flush=True)";
    let (out, lines) = attack(code, small());
    drop(leaked);
    assert_eq!(out.exit, Exit::Code(0), "{}", out.stderr);
    let zero = "0000000000000000";
    assert_eq!(lines[0], format!("CAPS {zero} {zero} {zero} {zero} {zero}"));
    assert_eq!(lines[1], "NONEWPRIVS 1 SECCOMP 2");
    // Host groups are unmapped (and show as 65534, the overflow id) if any remain.
    assert!(
        lines[2] == "IDS 65534 65534 []" || lines[2] == "IDS 65534 65534 [65534]",
        "{}",
        lines[2]
    );
    // 0-2 and the descriptor listing /proc/self/fd.
    assert_eq!(lines[3], "FDS 0 1 2 3");
    assert_eq!(lines[4], "ENV BVJAIL_ID HOME LANG PATH TMPDIR");
    assert_eq!(lines[5], "HOST bv-job 1", "own UTS and PID namespaces");
}

#[test]
fn the_network_is_a_down_loopback_only() {
    // The job waits; meanwhile the host looks into its network namespace.
    let token = format!("netns-probe-{}", std::process::id());
    let code = format!("import time; print('READY', flush=True); time.sleep(3) # {token}");
    let mut seen = None;
    let out = jail(small())
        .run(
            "/usr/bin/python3",
            &["-c".into(), code],
            b"",
            &mut |l| {
                if l != "READY" {
                    return;
                }
                let pid = std::fs::read_dir("/proc")
                    .unwrap()
                    .flatten()
                    .find(|e| {
                        std::fs::read(e.path().join("cmdline"))
                            .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&token))
                    })
                    .map(|e| e.file_name().into_string().unwrap())
                    .expect("the job's process");
                let probe = "import fcntl, socket, struct
names = [n for _, n in socket.if_nameindex()]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
flags = struct.unpack('16sH', fcntl.ioctl(s, 0x8913, struct.pack('16sH', b'lo', 0))[:18])[1]
print(names, 'up' if flags & 1 else 'down')";
                let o = std::process::Command::new("nsenter")
                    .args(["-t", &pid, "--user", "--net", "--preserve-credentials"])
                    .args(["python3", "-c", probe])
                    .output()
                    .unwrap();
                seen = Some(format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout).trim(),
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
            },
            &AtomicBool::new(false),
        )
        .unwrap();
    assert_eq!(out.exit, Exit::Code(0));
    assert_eq!(seen.as_deref(), Some("['lo'] down"));
}

#[test]
fn host_processes_are_invisible_and_dangerous_calls_refused() {
    let code = format!(
        "{PROBE}
pids = [p for p in os.listdir('/proc') if p.isdigit()]
print(('CONTAINED' if len(pids) <= 4 else 'ESCAPED') + f' process list: {{pids}}', flush=True)
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
def sys_(name, nr, *args):
    def f():
        r = libc.syscall(nr, *args)
        if r == -1:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        return r
    probe(name, f)
sys_('ptrace', 101, 0, 0, 0, 0)
sys_('mount', 165, b'none', b'/scratch', b'tmpfs', 0, 0)
sys_('unshare', 272, 0x10000000)
sys_('setns', 308, os.open('/proc/self/ns/net', os.O_RDONLY), 0)
sys_('keyctl', 250, 0, -3, 0)
sys_('bpf', 321, 0, 0, 0)
sys_('init_module', 175, 0, 0, b'')
sys_('finit_module', 313, os.open('/usr/bin/true', os.O_RDONLY), b'', 0)
sys_('signal a host process', 62, {host}, 0)
# clone into new user and mount namespaces (SIGCHLD as the exit signal)
sys_('clone with namespace flags', 56, 0x10000000 | 0x20000 | 17, 0, 0, 0, 0)
def clone3():
    r = libc.syscall(435, 0, 0)
    e = ctypes.get_errno()
    if r == -1 and e == errno.ENOSYS:
        raise OSError(e, 'clone3 answers ENOSYS')
    return (r, e)
probe('clone3', clone3)
",
        host = std::process::id()
    );
    let (_, lines) = attack(&code, small());
    contained(&lines, 12);
}

#[test]
fn fork_bomb_is_stopped() {
    let code = "import os, time
printed = False
while True:
    try:
        os.fork()
    except OSError as e:
        if not printed:
            print('CONTAINED fork failed:', e, flush=True); printed = True
        time.sleep(0.05)";
    let t = Instant::now();
    let (out, lines) = attack(
        code,
        Limits {
            wall_seconds: 4,
            ..small()
        },
    );
    assert_eq!(out.exit, Exit::Deadline);
    assert!(t.elapsed() < Duration::from_secs(15));
    if out.teardown.cgroups == "removed" {
        assert!(
            out.teardown.pids_limit_hit,
            "the process limit stopped the bomb"
        );
        assert!(lines.iter().any(|l| l.starts_with("CONTAINED")));
    }
    // The host can still start processes.
    assert!(
        std::process::Command::new("true")
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn memory_bomb_is_refused() {
    let code = "blocks = []
try:
    while True:
        blocks.append(bytearray(64 << 20))
except MemoryError:
    print('CONTAINED memory', len(blocks) * 64, 'MiB', flush=True)";
    let (out, lines) = attack(code, small());
    contained(&lines, 1);
    let mib: u64 = lines[0].split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(mib <= 1024, "stopped at {mib} MiB");
    assert_eq!(out.exit, Exit::Code(0));
}

#[test]
fn scratch_has_a_size_cap() {
    let code = "n = 0
try:
    with open('/scratch/fill', 'wb') as f:
        while True:
            f.write(b'x' * (1 << 20)); f.flush(); n += 1
except OSError as e:
    print('CONTAINED scratch full after', n, 'MiB:', e, flush=True)";
    let (_, lines) = attack(code, small());
    contained(&lines, 1);
    let mib: u64 = lines[0].split_whitespace().nth(4).unwrap().parse().unwrap();
    assert!(mib <= 16, "wrote {mib} MiB into a 16 MiB scratch");
}

#[test]
fn cpu_spin_and_sleep_are_bounded() {
    let t = Instant::now();
    let (out, _) = attack(
        "while True: pass",
        Limits {
            cpu_seconds: 1,
            ..small()
        },
    );
    assert!(
        matches!(out.exit, Exit::Signal(9) | Exit::Signal(24) | Exit::Code(_)),
        "{:?}",
        out.exit
    );
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "the CPU limit stopped the spin"
    );
    let t = Instant::now();
    let (out, _) = attack(
        "import time; time.sleep(60)",
        Limits {
            wall_seconds: 2,
            ..small()
        },
    );
    assert_eq!(out.exit, Exit::Deadline);
    assert!(t.elapsed() < Duration::from_secs(6));
}

#[test]
fn nothing_survives_the_job() {
    // A background process in a new session, and a file in scratch. The
    // sleep's argument is unique, so no other `sleep` on the machine matches.
    let marker = format!(
        "300.{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let code = format!(
        "import subprocess
subprocess.Popen(['/usr/bin/sleep', '{marker}'], start_new_session=True)
open('/scratch/left-behind', 'w').write('for the next job')
print('OK planted', flush=True)"
    );
    let (out, lines) = attack(&code, small());
    assert!(lines.iter().any(|l| l == "OK planted"));
    assert_eq!(
        (out.teardown.processes_left, out.teardown.namespace_gone),
        (0, true)
    );
    let ps = std::process::Command::new("pgrep")
        .args(["-f", &format!("sleep {marker}")])
        .output()
        .unwrap();
    assert!(
        ps.stdout.is_empty(),
        "the background process died with the jail"
    );
    // The next job sees an empty scratch and nothing of the first.
    let (_, lines) = attack(
        "import os; print('SCRATCH', sorted(os.listdir('/scratch')), flush=True)",
        small(),
    );
    assert_eq!(lines, ["SCRATCH []"]);
}

#[test]
fn another_jobs_scratch_is_invisible() {
    let secret = "s3cr3t-marker-of-job-one";
    let a = std::thread::spawn(move || {
        attack(
            &format!(
                "import time; open('/scratch/secret', 'w').write('{secret}'); print('OK', flush=True); time.sleep(3)"
            ),
            small(),
        )
    });
    std::thread::sleep(Duration::from_millis(800));
    let code = format!(
        "import os
found = []
roots = ['/scratch', '/tmp'] + [f'/proc/{{p}}/root/scratch' for p in os.listdir('/proc') if p.isdigit()]
for root in roots:
    for dirpath, dirs, files in os.walk(root):
        for f in files:
            try:
                if '{secret}' in open(os.path.join(dirpath, f), errors='ignore').read(4096): found.append(os.path.join(dirpath, f))
            except Exception: pass
print('ESCAPED' if found else 'CONTAINED', found, flush=True)"
    );
    let (_, lines) = attack(&code, small());
    contained(&lines, 1);
    let (_, first_lines) = a.join().unwrap();
    assert_eq!(first_lines, ["OK"]);
}

#[test]
fn enhance_in_the_sandbox_equals_no_sandbox() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("in.mp4");
    common::h264_clip(&src, "testsrc2=s=64x48:r=25:d=0.4");
    let md5 = |p: &std::path::Path| {
        let o = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(p)
            .args(["-f", "framemd5", "-"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let (a, b) = (d.path().join("sandboxed.mkv"), d.path().join("plain.mkv"));
    let r = common::enhance(&src, &a, &["--scale", "2", "--codec", "ffv1"]);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert_eq!(r.event["sandbox"], true);
    let r = common::enhance(
        &src,
        &b,
        &["--scale", "2", "--codec", "ffv1", "--no-sandbox"],
    );
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("WARNING: --no-sandbox"));
    // Streamed through pipes (no host file in the jail), as the service runs jobs.
    let c = d.path().join("streamed.mkv");
    let r = common::enhance(&src, &c, &["--scale", "2", "--codec", "ffv1", "--stream"]);
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let (ma, mb, mc) = (md5(&a), md5(&b), md5(&c));
    assert!(!ma.is_empty());
    assert_eq!(ma, mb, "identical frames");
    assert_eq!(ma, mc, "identical frames when streamed");
    // Hostile input through the pipes: a clear code, nothing left behind.
    let junk = d.path().join("junk.mp4");
    std::fs::write(&junk, b"not a video at all").unwrap();
    let r = common::enhance(&junk, &d.path().join("never.mkv"), &["--stream"]);
    assert_eq!(r.status, Some(3), "{}", r.stderr);
    assert!(
        r.stderr.contains("input_not_video") || r.event["code"] == "input_not_video",
        "{}",
        r.stderr
    );
    assert!(!d.path().join("never.mkv").exists());
    let mut f = std::fs::File::open(&a).unwrap();
    let mut head = [0u8; 4];
    f.read_exact(&mut head).unwrap();
    assert_eq!(head, [0x1A, 0x45, 0xDF, 0xA3], "a complete Matroska file");
}
