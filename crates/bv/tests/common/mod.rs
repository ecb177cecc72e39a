//! Helpers shared by the integration tests: the real `bv` binary, real FFmpeg,
//! and the data directory prepared by `scripts/setup.sh`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// The data directory `make setup` filled (models, samples, reference venv).
pub fn data_dir() -> PathBuf {
    let d = bv_testkit::data_dir();
    assert!(
        d.join("models").is_dir(),
        "{} has no models: run `make setup` first",
        d.display()
    );
    d
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A `bv` command using the shared data directory.
pub fn bv() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bv"));
    c.env("BV_DATA_DIR", data_dir())
        .env_remove("BV_CONFIG")
        .stdin(Stdio::null());
    c
}

/// Runs FFmpeg quietly and panics on failure.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Encodes a lavfi source (e.g. `testsrc2=s=32x32:d=0.2`) as 8-bit H.264 into `path`.
pub fn h264_clip(path: &Path, source: &str) {
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        source,
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        path.to_str().unwrap(),
    ]);
}

/// ffprobe's JSON for a file (streams, format, chapters).
pub fn probe(path: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_streams",
            "-show_format",
            "-show_chapters",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Presentation timestamps (in seconds, as ffprobe prints them) of every video frame of stream `v`.
pub fn frame_times(path: &Path, v: usize) -> Vec<f64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            &v.to_string(),
            "-show_entries",
            "frame=pts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim().trim_end_matches(',').parse().unwrap())
        .collect()
}

/// Decodes `n` frames of `video` to packed rgb24, optionally resized (bicubic in planar RGB, like the peers).
pub fn decode_rgb(video: &Path, n: usize, size: Option<(usize, usize)>, start: usize) -> Vec<u8> {
    let mut vf = format!("trim=start_frame={start},setpts=PTS-STARTPTS");
    if let Some((w, h)) = size {
        vf += &format!(",format=gbrp,scale={w}:{h}:flags=bicubic+accurate_rnd");
    }
    vf += ",format=rgb24";
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(video)
        .args([
            "-an",
            "-vf",
            &vf,
            "-frames:v",
            &n.to_string(),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

/// Runs `cmd` with `input` on stdin and returns its stdout (panics on failure).
pub fn pipe(mut cmd: Command, input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// PSNR (dB) between two 8-bit images.
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mse = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

/// Result of `bv enhance --json`: exit status, last JSON event, stderr.
pub struct Run {
    pub status: Option<i32>,
    pub event: Value,
    pub stderr: String,
}

/// Runs `bv enhance --json IN -o OUT extra…`.
pub fn enhance(input: &Path, output: &Path, extra: &[&str]) -> Run {
    let out: Output = bv()
        .arg("enhance")
        .arg(input)
        .arg("-o")
        .arg(output)
        .arg("--json")
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let event = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    Run {
        status: out.status.code(),
        event,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Names of the files in `dir` (to prove nothing partial is left behind).
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
