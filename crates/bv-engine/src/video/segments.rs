//! Long videos in segments: cut at keyframes, enhanced separately (on
//! several workers, or resumed after a crash one segment at a time), and
//! joined by stream copy.
//!
//! Each segment decodes from a keyframe with the input's own timestamps
//! (`-copyts`), so its frames are exactly the frames a whole run would
//! produce there (the models look at one frame at a time), and is written
//! video-only with those timestamps. The join concatenates the segments
//! with FFmpeg's concat demuxer, stating each segment's exact duration (the
//! distance between its cut points, not what its last frame suggests), and
//! copies every other stream (audio, subtitles, chapters, metadata) from
//! the original, so nothing drifts.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

use std::sync::atomic::AtomicBool;

use super::pipeline::{EnhanceOptions, Progress, Summary, enhance_into};
use crate::error::{EngineError, Result};
use crate::upscale::Upscaler;

pub use bv_job::segment::{Segment, plan};

/// The times of the video stream's keyframes, microseconds (rounded down, so
/// a seek to one lands on or after its frame).
pub fn keyframes_us(input: &Path, stream: usize) -> Result<Vec<i64>> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams"])
        .arg(stream.to_string())
        .args(["-skip_frame", "nokey", "-show_entries"])
        .args(["frame=pts,best_effort_timestamp:stream=time_base"])
        .args(["-of", "json"])
        .arg(input)
        .stdin(Stdio::null())
        .output()
        .map_err(|_| EngineError::ToolMissing("ffprobe"))?;
    if !out.status.success() {
        return Err(EngineError::Ffmpeg(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    #[derive(Deserialize)]
    struct Doc {
        #[serde(default)]
        frames: Vec<F>,
        #[serde(default)]
        streams: Vec<S>,
    }
    #[derive(Deserialize)]
    struct F {
        pts: Option<i64>,
        best_effort_timestamp: Option<i64>,
    }
    #[derive(Deserialize)]
    struct S {
        time_base: String,
    }
    let doc: Doc = serde_json::from_slice(&out.stdout)
        .map_err(|e| EngineError::Ffmpeg(format!("ffprobe output: {e}")))?;
    let tb = doc
        .streams
        .first()
        .and_then(|s| s.time_base.split_once('/'))
        .and_then(|(n, d)| Some((n.parse::<i128>().ok()?, d.parse::<i128>().ok()?)))
        .filter(|(n, d)| *n > 0 && *d > 0)
        .ok_or_else(|| EngineError::Ffmpeg("no time base for the video stream".into()))?;
    let mut ts: Vec<i64> = doc
        .frames
        .iter()
        .filter_map(|f| f.pts.or(f.best_effort_timestamp))
        .map(|p| (i128::from(p) * tb.0 * 1_000_000).div_euclid(tb.1) as i64)
        .collect();
    ts.sort_unstable();
    ts.dedup();
    Ok(ts)
}

/// Enhances `input` into `output` in up to `parts` segments, one after the
/// other, through files in `work` (what several workers do at once, each
/// with one segment), then joins them. The result has the frames a single
/// run gives.
#[allow(clippy::too_many_arguments)]
pub fn enhance_in_segments(
    input: &Path,
    output: &Path,
    work: &Path,
    upscaler: &mut Upscaler,
    opts: &EnhanceOptions,
    parts: usize,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Summary> {
    let info = super::probe::probe(input)?;
    let v = info
        .main_video()
        .ok_or_else(|| EngineError::InputNotVideo(input.display().to_string()))?;
    let end_us = info.duration.map_or(0, |d| (d * 1e6) as i64) + info.start_time_us;
    let segments = plan(&keyframes_us(input, v.index)?, end_us, parts);
    let mut done = Vec::with_capacity(segments.len());
    let mut total: Option<Summary> = None;
    for seg in segments {
        let path = work.join(format!("segment-{:04}.nut", seg.index));
        let o = EnhanceOptions {
            segment: Some(seg),
            ..opts.clone()
        };
        let s = enhance_into(input, &path, "nut", upscaler, &o, cancel, progress)?;
        total = Some(match total {
            None => s,
            Some(t) => Summary {
                frames: t.frames + s.frames,
                elapsed: t.elapsed + s.elapsed,
                inference: t.inference + s.inference,
                ..t
            },
        });
        done.push((path, seg));
    }
    join(&done, input, output)?;
    for (p, _) in &done {
        let _ = std::fs::remove_file(p);
    }
    Ok(total.expect("at least one segment"))
}

/// Joins enhanced segment files (video only, in order, each covering its
/// [`Segment`]) with every other stream of `original` into `output`, whose
/// extension picks the container. Only stream copies: nothing is re-encoded.
pub fn join(parts: &[(PathBuf, Segment)], original: &Path, output: &Path) -> Result<()> {
    let info = super::probe::probe(original)?;
    let v = info
        .main_video()
        .ok_or_else(|| EngineError::InputNotVideo(original.display().to_string()))?;
    let rotated = v.rotation != 0 && v.rotation % 90 == 0;
    let ext = output
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let carries = matches!(ext.as_str(), "mp4" | "mov" | "m4v");
    if rotated && !carries {
        // Segments keep the stored (unrotated) frames; only MP4/MOV can say how to turn them.
        return Err(EngineError::OutputContainerUnsupported(format!(
            "a rotated video in segments needs an MP4 or MOV output, not .{ext}"
        )));
    }
    // The video's first frame, on the input's timeline; a whole run shifts
    // every stream by the file's start time, and so does the join.
    let first = keyframes_us(original, v.index)?
        .first()
        .copied()
        .unwrap_or(info.start_time_us);
    let list = output.with_extension("concat.txt");
    let mut text = String::from("ffconcat version 1.0\n");
    for (path, seg) in parts {
        let name = path
            .to_str()
            .filter(|p| !p.contains(['\'', '\n', '\r']))
            .ok_or_else(|| EngineError::InvalidOption("segment path not usable".into()))?;
        text += &format!("file '{name}'\n");
        if let (Some(end), start) = (seg.end_us, seg.start_us) {
            // The exact length, so the next segment starts where it started in the input.
            let len = end - start.unwrap_or(first);
            text += &format!("duration {}.{:06}\n", len / 1_000_000, len % 1_000_000);
        }
    }
    std::fs::write(&list, text).map_err(EngineError::Io)?;
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "concat", "-safe", "0"]);
    let lead = first - info.start_time_us;
    if lead != 0 {
        // The concat demuxer starts at zero; the video started this much later.
        cmd.args(["-itsoffset", &format!("{lead}us")]);
    }
    cmd.arg("-i").arg(&list);
    if info.start_time_us != 0 {
        cmd.args(["-itsoffset", &format!("{}us", -info.start_time_us)]);
    }
    cmd.arg("-i").arg(original);
    for s in &info.streams {
        if s.index == v.index {
            cmd.args(["-map", "0:0"]);
        } else {
            cmd.args(["-map", &format!("1:{}", s.index)]);
        }
    }
    cmd.args(["-map_metadata", "1", "-map_chapters", "1", "-c", "copy"]);
    cmd.args(["-copy_unknown", "-max_muxing_queue_size", "4096"]);
    if carries {
        cmd.args(["-movflags", "+faststart"]);
    }
    cmd.arg(output).stdin(Stdio::null());
    let out = cmd
        .output()
        .map_err(|_| EngineError::ToolMissing("ffmpeg"))?;
    let _ = std::fs::remove_file(&list);
    if !out.status.success() {
        return Err(EngineError::Ffmpeg(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    if rotated {
        super::mp4::set_rotation(output, v.rotation)?;
    }
    Ok(())
}
