//! A video enhanced in segments (cut at keyframes, joined by stream copy)
//! equals the video enhanced in one run: the same frames (lossless FFV1,
//! compared frame by frame), the input's frame count and timestamps, and
//! its audio, whole.

mod common;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use bv_engine::backend;
use bv_engine::gpu::Device;
use bv_engine::model::ModelStore;
use bv_engine::upscale::Upscaler;
use bv_engine::video::encode::{Codec, EncodeSettings};
use bv_engine::video::pipeline::{EnhanceOptions, enhance_into};
use bv_engine::video::segments::{enhance_in_segments, keyframes_us, plan};
use common::*;

fn upscaler() -> Upscaler {
    let model = ModelStore::new(data_dir().join("models"))
        .load("realesr-animevideov3", 2)
        .unwrap();
    Upscaler::new(backend::open(&model, Device::Cpu, 2).unwrap(), 2, 0)
}

fn opts() -> EnhanceOptions {
    EnhanceOptions {
        encode: EncodeSettings::new(Codec::Ffv1, None, None).unwrap(),
        max_width: 8192,
        max_height: 8192,
        overwrite: true,
        segment: None,
        max_frames: None,
    }
}

/// The MD5 of every decoded video frame, in order.
fn frame_hashes(path: &Path) -> Vec<String> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-f", "framemd5", "-"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.rsplit(',').next().unwrap().trim().to_string())
        .collect()
}

fn audio_packets(path: &Path) -> usize {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0", "-show_entries"])
        .args(["packet=pts", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn two_segments_give_the_frames_and_timestamps_of_one_run() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("in.mp4");
    // NTSC rate (timestamps that are not whole milliseconds), a keyframe
    // every 30 frames, and audio that must stay in sync.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=96x64:r=30000/1001:d=4",
        "-f",
        "lavfi",
        "-i",
        "sine=f=440:d=4",
        "-c:v",
        "libx264",
        "-g",
        "30",
        "-keyint_min",
        "30",
        "-sc_threshold",
        "0",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-shortest",
        src.to_str().unwrap(),
    ]);
    let keys = keyframes_us(&src, 0).unwrap();
    assert_eq!(keys.len(), 4, "{keys:?}");
    let segs = plan(&keys, 4_004_000, 2);
    assert_eq!(segs.len(), 2);
    assert_eq!(
        segs[0].end_us,
        Some(2_002_000),
        "cut at the keyframe nearest the middle"
    );

    let cancel = AtomicBool::new(false);
    let whole = d.path().join("whole.nut");
    let one = enhance_into(
        &src,
        &whole,
        "nut",
        &mut upscaler(),
        &opts(),
        &cancel,
        &mut |_| {},
    )
    .unwrap();
    let work = d.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let joined = d.path().join("joined.nut");
    let two = enhance_in_segments(
        &src,
        &joined,
        &work,
        &mut upscaler(),
        &opts(),
        2,
        &cancel,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!((one.frames, two.frames), (120, 120));

    let (a, b) = (frame_hashes(&whole), frame_hashes(&joined));
    assert_eq!(a.len(), 120);
    assert_eq!(a, b, "the same frames, in the same order");
    // NUT cannot hold the audio's negative start (AAC priming), so both
    // files shift every stream alike; the MP4 below keeps the input's times.
    let input_times = frame_times(&src, 0);
    assert_eq!(input_times.len(), 120);
    assert_eq!(
        frame_times(&joined, 0),
        frame_times(&whole, 0),
        "the single run's timestamps"
    );
    assert_eq!(
        audio_packets(&joined),
        audio_packets(&whole),
        "the audio, whole"
    );
    assert!(
        std::fs::read_dir(&work).unwrap().next().is_none(),
        "segment files removed"
    );

    // Into MP4 as a job would write it (H.264): the same count and times.
    let mp4 = d.path().join("joined.mp4");
    let h264 = EnhanceOptions {
        encode: EncodeSettings::new(Codec::H264, None, None).unwrap(),
        ..opts()
    };
    enhance_in_segments(
        &src,
        &mp4,
        &work,
        &mut upscaler(),
        &h264,
        2,
        &cancel,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(frame_times(&mp4, 0), input_times, "the input's timestamps");
    let p = probe(&mp4);
    assert_eq!(p["streams"][0]["width"], 192);
    assert_eq!(p["streams"][1]["codec_type"], "audio");
}
