//! Every stream survives: clips built from FFmpeg's lavfi sources go through
//! `bv enhance`, and ffprobe proves the output has the same streams, frame
//! count, timestamps, bit depth and colour tags, at the expected size.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

fn video_stream(p: &Value) -> &Value {
    p["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_type"] == "video" && s["disposition"]["attached_pic"] != 1)
        .unwrap()
}

fn rotation(s: &Value) -> i64 {
    s["side_data_list"]
        .as_array()
        .and_then(|l| l.iter().find_map(|d| d["rotation"].as_i64()))
        .unwrap_or(0)
}

fn depth(pix_fmt: &str) -> u32 {
    bv_engine::video::probe::bit_depth(pix_fmt)
}

/// Runs `bv enhance` and checks everything the issue promises; returns both probes.
fn roundtrip(input: &Path, ext: &str, scale: u32, extra: &[&str]) -> (Value, Value, PathBuf) {
    let out = input.with_file_name(format!(
        "out-{}.{ext}",
        input.file_stem().unwrap().to_string_lossy()
    ));
    let mut args = vec!["--scale".to_string(), scale.to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = enhance(input, &out, &args);
    assert_eq!(
        r.status,
        Some(0),
        "enhance failed: {} {}",
        r.event,
        r.stderr
    );
    let (a, b) = (probe(input), probe(&out));
    let (sa, sb) = (
        a["streams"].as_array().unwrap(),
        b["streams"].as_array().unwrap(),
    );
    assert_eq!(sa.len(), sb.len(), "stream count");
    let (va, vb) = (video_stream(&a), video_stream(&b));
    for (x, y) in sa.iter().zip(sb) {
        assert_eq!(x["codec_type"], y["codec_type"], "stream kinds and order");
        if x["index"] != va["index"] {
            assert_eq!(
                x["codec_name"], y["codec_name"],
                "copied stream {}",
                x["index"]
            );
            assert_eq!(
                x["tags"]["language"], y["tags"]["language"],
                "language of stream {}",
                x["index"]
            );
        }
    }
    // Size, depth, colour, rotation.
    assert_eq!(
        vb["width"].as_u64().unwrap(),
        va["width"].as_u64().unwrap() * scale as u64
    );
    assert_eq!(
        vb["height"].as_u64().unwrap(),
        va["height"].as_u64().unwrap() * scale as u64
    );
    assert_eq!(
        depth(vb["pix_fmt"].as_str().unwrap()),
        depth(va["pix_fmt"].as_str().unwrap()),
        "bit depth"
    );
    for tag in ["color_primaries", "color_transfer", "color_range"] {
        if va.get(tag).is_some() {
            assert_eq!(va[tag], vb[tag], "{tag}");
        }
    }
    if va.get("color_space").is_some() {
        assert_eq!(va["color_space"], vb["color_space"], "color_space");
    }
    assert_eq!(rotation(va), rotation(vb), "rotation");
    // Frame count and every frame's timestamp.
    let (ia, ib) = (
        va["index"].as_u64().unwrap() as usize,
        vb["index"].as_u64().unwrap() as usize,
    );
    let (ta, tb) = (frame_times(input, ia), frame_times(&out, ib));
    assert_eq!(ta.len(), tb.len(), "frame count");
    for (i, (x, y)) in ta.iter().zip(&tb).enumerate() {
        assert!((x - y).abs() < 5e-4, "frame {i}: pts {x} became {y}");
    }
    // Chapters and global metadata.
    assert_eq!(
        a["chapters"].as_array().map(Vec::len),
        b["chapters"].as_array().map(Vec::len),
        "chapters"
    );
    for (x, y) in a["chapters"]
        .as_array()
        .unwrap()
        .iter()
        .zip(b["chapters"].as_array().unwrap())
    {
        assert_eq!(x["tags"]["title"], y["tags"]["title"]);
        assert!(
            (x["start_time"].as_str().unwrap().parse::<f64>().unwrap()
                - y["start_time"].as_str().unwrap().parse::<f64>().unwrap())
            .abs()
                < 1e-3
        );
    }
    assert_eq!(
        a["format"]["tags"]["title"], b["format"]["tags"]["title"],
        "title"
    );
    (a, b, out)
}

#[test]
fn multi_audio_subtitles_chapters_attachments_and_metadata_pass_through() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n).to_string_lossy().into_owned();
    std::fs::write(
        p("subs.srt"),
        "1\n00:00:00,100 --> 00:00:00,600\nHello\n\n2\n00:00:00,700 --> 00:00:00,900\nWorld\n",
    )
    .unwrap();
    std::fs::write(p("meta.txt"), ";FFMETADATA1\ntitle=Clip with everything\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=500\ntitle=One\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=500\nEND=1000\ntitle=Two\n").unwrap();
    std::fs::write(p("notes.txt"), "an attachment").unwrap();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=96x64:r=25:d=1",
        "-f",
        "lavfi",
        "-i",
        "sine=f=440:d=1",
        "-f",
        "lavfi",
        "-i",
        "sine=f=880:d=1",
        "-i",
        &p("subs.srt"),
        "-i",
        &p("meta.txt"),
        "-map",
        "0",
        "-map",
        "1",
        "-map",
        "2",
        "-map",
        "3",
        "-map_metadata",
        "4",
        "-map_chapters",
        "4",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-c:s",
        "srt",
        "-metadata:s:a:0",
        "language=eng",
        "-metadata:s:a:1",
        "language=fra",
        "-metadata:s:s:0",
        "language=deu",
        "-attach",
        &p("notes.txt"),
        "-metadata:s:t",
        "mimetype=text/plain",
        &p("all.mkv"),
    ]);
    let (a, b, _) = roundtrip(Path::new(&p("all.mkv")), "mkv", 2, &["--codec", "ffv1"]);
    let kinds: Vec<_> = b["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["codec_type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["video", "audio", "audio", "subtitle", "attachment"]);
    assert_eq!(b["chapters"].as_array().unwrap().len(), 2);
    assert_eq!(
        a["streams"][4]["tags"]["filename"],
        b["streams"][4]["tags"]["filename"]
    );
}

#[test]
fn variable_frame_rate_stays_variable() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("vfr.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=80x48:r=30:d=1.2",
        "-vf",
        "select='not(mod(n\\,3))+eq(n\\,4)+eq(n\\,5)+gt(n\\,30)'",
        "-fps_mode",
        "vfr",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        src.to_str().unwrap(),
    ]);
    let t = frame_times(&src, 0);
    let gaps: Vec<i64> = t
        .windows(2)
        .map(|w| ((w[1] - w[0]) * 1e4).round() as i64)
        .collect();
    assert!(
        gaps.iter().min() != gaps.iter().max(),
        "the source must really be VFR: {gaps:?}"
    );
    roundtrip(&src, "mp4", 2, &[]);
}

#[test]
fn ten_bit_hdr_tags_survive() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("hdr10.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=64x48:r=24:d=0.5",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p10le",
        "-color_primaries",
        "bt2020",
        "-color_trc",
        "smpte2084",
        "-colorspace",
        "bt2020nc",
        "-color_range",
        "tv",
        src.to_str().unwrap(),
    ]);
    let (_, b, _) = roundtrip(&src, "mkv", 2, &[]);
    assert_eq!(video_stream(&b)["pix_fmt"], "yuv420p10le");
    assert_eq!(video_stream(&b)["color_transfer"], "smpte2084");
}

#[test]
fn rotation_is_kept() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("rot.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=64x48:r=10:d=0.5",
        "-f",
        "lavfi",
        "-i",
        "sine=d=0.5",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        src.to_str().unwrap(),
    ]);
    bv_engine::video::mp4::set_rotation(&src, -90).unwrap();
    assert_eq!(
        rotation(video_stream(&probe(&src))),
        -90,
        "the source must be rotated"
    );
    let (_, b, _) = roundtrip(&src, "mp4", 2, &[]);
    assert_eq!(rotation(video_stream(&b)), -90);
}

#[test]
fn odd_sizes_work_at_every_scale() {
    let d = tempfile::tempdir().unwrap();
    for pix_fmt in ["yuv420p", "yuv444p"] {
        let src = d.path().join(format!("odd-{pix_fmt}.mkv"));
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc=s=67x41:r=25:d=0.4",
            "-c:v",
            "ffv1",
            "-pix_fmt",
            pix_fmt,
            src.to_str().unwrap(),
        ]);
        assert_eq!(
            video_stream(&probe(&src))["width"],
            67,
            "the source must really be odd-sized"
        );
        for scale in [2, 3] {
            let copy = d.path().join(format!("odd-{pix_fmt}-x{scale}.mkv"));
            std::fs::copy(&src, &copy).unwrap();
            roundtrip(&copy, "mp4", scale, &[]);
        }
    }
}
