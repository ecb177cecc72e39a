//! Bad input: every malformed, hostile or unusable input gets its stable
//! error code and exit status, no output file appears, and nothing else in
//! the output directory (nor the input) changes.

mod common;

use std::path::Path;

use common::*;
use sha2::{Digest, Sha256};

fn digest(p: &Path) -> Vec<u8> {
    Sha256::digest(std::fs::read(p).unwrap()).to_vec()
}

/// Runs enhance on `input` into a fresh directory holding one unrelated file,
/// and asserts the code, the status, and that nothing was created or touched.
fn refused(input: &Path, code: &str, status: i32, extra: &[&str]) {
    let outdir = tempfile::tempdir().unwrap();
    std::fs::write(outdir.path().join("keep.txt"), b"unrelated").unwrap();
    let before = input.exists().then(|| digest(input));
    let out = outdir.path().join("out.mp4");
    let r = enhance(input, &out, extra);
    assert_eq!(
        r.event["event"],
        "error",
        "{}: {}",
        input.display(),
        r.stderr
    );
    assert_eq!(r.event["code"], code, "{}: {}", input.display(), r.event);
    let message = r.event["message"].as_str().unwrap();
    assert!(!message.is_empty());
    // The user's own paths, never the jail's.
    for inside in [
        "/in/input",
        "/out/output",
        "/scratch/input",
        "/scratch/output",
    ] {
        assert!(!message.contains(inside), "{message}");
    }
    assert_eq!(r.status, Some(status), "{}", r.event);
    assert!(!out.exists(), "no output may appear");
    assert_eq!(
        listing(outdir.path()),
        ["keep.txt"],
        "no partial file may be left"
    );
    assert_eq!(
        std::fs::read(outdir.path().join("keep.txt")).unwrap(),
        b"unrelated"
    );
    if let Some(b) = before {
        assert_eq!(digest(input), b, "the input must not change");
    }
}

#[test]
fn not_a_video() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("notes.mp4");
    std::fs::write(
        &p,
        "this is a text file pretending to be a video\n".repeat(50),
    )
    .unwrap();
    refused(&p, "input_not_video", 3, &[]);
    // Audio only is not a video either.
    let a = d.path().join("tone.m4a");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=d=0.5",
        "-c:a",
        "aac",
        a.to_str().unwrap(),
    ]);
    refused(&a, "input_not_video", 3, &[]);
}

#[test]
fn zero_bytes_and_missing() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("empty.mp4");
    std::fs::write(&p, b"").unwrap();
    refused(&p, "input_empty", 3, &[]);
    refused(&d.path().join("nowhere.mp4"), "input_not_found", 3, &[]);
}

#[test]
fn truncated_before_the_index_and_inside_the_frames() {
    let d = tempfile::tempdir().unwrap();
    // Index (moov) at the end: cutting the file loses it.
    let bbb = std::fs::read(data_dir().join("samples/bigbuckbunny.mp4")).unwrap();
    let cut = d.path().join("cut.mp4");
    std::fs::write(&cut, &bbb[..bbb.len() / 2]).unwrap();
    refused(&cut, "input_truncated", 3, &[]);
    // Index first: the header parses, the frames run out.
    let whole = d.path().join("faststart.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=96x64:r=25:d=3",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-movflags",
        "+faststart",
        whole.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&whole).unwrap();
    let part = d.path().join("partial.mp4");
    std::fs::write(&part, &bytes[..bytes.len() * 6 / 10]).unwrap();
    refused(&part, "input_truncated", 3, &["--scale", "2"]);
}

#[test]
fn unsupported_codec() {
    let d = tempfile::tempdir().unwrap();
    let ok = d.path().join("ok.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=s=32x32:d=0.2",
        "-c:v",
        "libx264",
        ok.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&ok).unwrap();
    let pos = bytes
        .windows(15)
        .position(|w| w == b"V_MPEG4/ISO/AVC")
        .expect("codec id present");
    let mut unknown = bytes.clone();
    unknown[pos..pos + 15].copy_from_slice(b"V_BETTERVID/ZZZ");
    let p = d.path().join("unknown-codec.mkv");
    std::fs::write(&p, unknown).unwrap();
    refused(&p, "unsupported_codec", 3, &[]);
}

#[test]
fn absurd_declared_dimensions() {
    let d = tempfile::tempdir().unwrap();
    // A header claiming 60000x60000, with one tiny frame: refused before decoding.
    let p = d.path().join("huge.y4m");
    let mut y4m = b"YUV4MPEG2 W60000 H60000 F25:1 Ip A1:1 C420jpeg\nFRAME\n".to_vec();
    y4m.extend(vec![16u8; 4096]);
    std::fs::write(&p, y4m).unwrap();
    refused(&p, "dimensions_too_large", 3, &[]);
    // One FFmpeg can parse but the cap refuses.
    let p = d.path().join("large.y4m");
    let mut y4m = b"YUV4MPEG2 W16000 H16000 F25:1 Ip A1:1 C420jpeg\nFRAME\n".to_vec();
    y4m.extend(vec![16u8; 4096]);
    std::fs::write(&p, y4m).unwrap();
    refused(&p, "dimensions_too_large", 3, &[]);
    // A real 2100x2100 frame would give 8400x8400 at x4, over the 8192 default cap.
    let big = d.path().join("big.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=gray:s=2100x2100:d=0.04",
        "-frames:v",
        "1",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        big.to_str().unwrap(),
    ]);
    refused(&big, "dimensions_too_large", 3, &[]);
}

#[test]
fn the_dimension_cap_is_configurable() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("small.mp4");
    h264_clip(&src, "testsrc2=s=64x48:d=0.2");
    let out = d.path().join("o.mp4");
    let r = bv()
        .env("BV_ENGINE_MAX_OUTPUT_WIDTH", "200")
        .args(["enhance", "--json"])
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let ev: serde_json::Value = serde_json::from_slice(
        r.stdout
            .trim_ascii_end()
            .rsplit(|b| *b == b'\n')
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(ev["code"], "dimensions_too_large");
    assert!(!out.exists());
}

#[test]
fn unwritable_or_existing_output() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("in.mp4");
    h264_clip(&src, "testsrc2=s=32x32:d=0.2");
    // Directory that does not exist.
    let r = enhance(&src, &d.path().join("no/such/dir/out.mp4"), &[]);
    assert_eq!(
        (r.event["code"].as_str(), r.status),
        (Some("output_unwritable"), Some(4))
    );
    // A directory as the output.
    let r = enhance(&src, d.path(), &[]);
    assert!(matches!(r.status, Some(3 | 4)), "{:?}", r.status);
    assert!(
        matches!(
            r.event["code"].as_str(),
            Some("output_unwritable" | "invalid_option")
        ),
        "{}",
        r.event
    );
    // An existing file is kept unless --overwrite.
    let existing = d.path().join("exists.mp4");
    std::fs::write(&existing, b"precious").unwrap();
    let r = enhance(&src, &existing, &[]);
    assert_eq!(
        (r.event["code"].as_str(), r.status),
        (Some("output_exists"), Some(4))
    );
    assert_eq!(std::fs::read(&existing).unwrap(), b"precious");
    // The input itself as output.
    let r = enhance(&src, &src, &["--overwrite"]);
    assert_eq!(r.event["code"], "invalid_option");
    assert_eq!(listing(d.path()), ["exists.mp4", "in.mp4"]);
}

#[test]
fn bad_options() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("in.mp4");
    h264_clip(&src, "testsrc2=s=32x32:d=0.2");
    for (extra, code, status) in [
        (&["--model", "nonexistent"][..], "model_not_found", 5),
        (&["--scale", "5"][..], "invalid_option", 3),
        (&["--crf", "99"][..], "invalid_option", 3),
        (&["--preset", "ludicrous"][..], "invalid_option", 3),
        (&["--codec", "ffv1", "--crf", "10"][..], "invalid_option", 3),
    ] {
        refused(&src, code, status, extra);
    }
    // No extension: the container cannot be chosen.
    let r = enhance(&src, &d.path().join("noext"), &[]);
    assert_eq!(r.event["code"], "invalid_option");
    // FFV1 does not fit in MP4: a clear container error, no partial file.
    refused(
        &src,
        "output_container_unsupported",
        4,
        &["--codec", "ffv1"],
    );
    // ... said before any work, with the container that fits.
    let r = enhance(&src, &d.path().join("ffv1.mp4"), &["--codec", "ffv1"]);
    assert!(
        r.event["message"].as_str().unwrap().contains(".mkv"),
        "{}",
        r.event
    );
    // A container FFmpeg does not know: a container error too, not "ffmpeg failed".
    let r = enhance(&src, &d.path().join("out.xyz"), &[]);
    assert_eq!(
        (r.event["code"].as_str(), r.status),
        (Some("output_container_unsupported"), Some(4)),
        "{}",
        r.event
    );
    assert!(!d.path().join("out.xyz").exists());
}
