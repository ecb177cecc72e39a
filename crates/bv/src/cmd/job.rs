//! `bv job-run`, the runner inside a jail, and the local side of `bv enhance`
//! that hands a file to one.
//!
//! The parent never parses media: it checks paths and options, creates the
//! output's temporary file, and hands the job to a jail that sees only `/usr`,
//! the `bv` binary, the models, the input (read-only) and that one output file
//! (the jail itself and the run are the worker's: `bv_worker::runner`).
//! The launcher confines the runner (Landlock, seccomp) before it starts; the
//! runner reads the job ([`JobSpec`]), runs the same pipeline as
//! `--no-sandbox` and reports [`RunnerEvent`]s on stdout.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use bv_engine::backend;
use bv_engine::model::ModelStore;
use bv_engine::upscale::Upscaler;
use bv_engine::video::encode::EncodeSettings;
use bv_engine::video::pipeline::{EnhanceOptions, Progress, Summary, enhance_into, prepare_output};
use bv_engine::video::segments;
use bv_job::{Done, JobKind, JobSpec, JoinSpec, RunnerEvent, Segment};
use bv_sandbox::Mount;
use bv_worker::Runner;

use crate::exit::code_of;

/// Runs the pipeline for `spec` (shared by the runner and `--no-sandbox` callers).
pub fn execute(
    spec: &JobSpec,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(&Progress),
) -> anyhow::Result<Summary> {
    let JobKind::Enhance(e) = &spec.kind else {
        anyhow::bail!("not an enhancement: {}", spec.kind.name());
    };
    let encode = EncodeSettings::new(e.codec, e.crf, e.encoder_preset.clone())?;
    let model = ModelStore::new(&spec.models).load(&e.model, e.scale)?;
    let backend = backend::open(&model, spec.device.parse()?, spec.threads)?;
    let mut upscaler = Upscaler::new(backend, e.scale as usize, spec.tile);
    let opts = EnhanceOptions {
        encode,
        max_width: spec.max_width,
        max_height: spec.max_height,
        overwrite: true,
        segment: e.segment,
        max_frames: spec.max_frames,
    };
    Ok(enhance_into(
        &spec.input,
        &spec.output,
        &spec.ext,
        &mut upscaler,
        &opts,
        cancel,
        progress,
    )?)
}

/// The most keyframe times a probe records.
const MAX_KEYFRAMES: usize = 4096;

/// A probe job: what the input holds, refused when it is not a video the
/// engine can take (no video stream, unknown codec, dimensions past the cap).
fn probe_summary(spec: &JobSpec) -> anyhow::Result<Done> {
    let t0 = std::time::Instant::now();
    let info = bv_engine::video::probe::probe(&spec.input)?;
    let v = info
        .main_video()
        .ok_or_else(|| bv_engine::EngineError::InputNotVideo("no video stream".into()))?;
    if v.width == 0 || v.height == 0 || v.width > spec.max_width || v.height > spec.max_height {
        return Err(bv_engine::EngineError::DimensionsTooLarge {
            in_w: v.width,
            in_h: v.height,
            out_w: v.width,
            out_h: v.height,
            max_w: spec.max_width,
            max_h: spec.max_height,
        }
        .into());
    }
    // What a job on it is priced by and may process: every packet the
    // demuxer yields, counted. Not the container's own count, which can
    // understate what plays (an MP4 edit list that loops 4 frames a hundred
    // times says 4 and plays 400), nor an estimate from duration and rate.
    let frames = bv_engine::video::probe::count_frames(&spec.input, v.index)?;
    if frames == 0 {
        return Err(bv_engine::EngineError::InputTruncated(format!(
            "video stream {} has no frames",
            v.index
        ))
        .into());
    }
    // Where the video may be cut for several workers (decision 0023): any
    // keyframe will do, so a very long list is thinned, not truncated.
    let segmenting = segments::keyframes_us(&spec.input, v.index)
        .ok()
        .filter(|k| !k.is_empty())
        .map(|k| {
            let step = k.len().div_ceil(MAX_KEYFRAMES);
            let kept: Vec<i64> = k.iter().step_by(step).copied().collect();
            let end_us = info.duration.map_or(0, |d| (d * 1e6) as i64) + info.start_time_us;
            bv_job::Segmenting {
                keyframes_us: kept,
                end_us,
            }
        });
    let streams: Vec<serde_json::Value> = info
        .streams
        .iter()
        .map(|s| serde_json::json!({"kind": s.kind, "codec": s.codec}))
        .collect();
    Ok(Done {
        frames,
        input_size: (v.width, v.height),
        output_size: (0, 0),
        seconds: t0.elapsed().as_secs_f64(),
        inference_seconds: 0.0,
        backend: "probe".into(),
        media: Some(serde_json::json!({
            "format": info.format,
            "duration_s": info.duration,
            "width": v.width,
            "height": v.height,
            "codec": v.codec,
            "pix_fmt": v.pix_fmt,
            "fps": v.avg_fps,
            "frames": frames,
            "streams": streams,
            "segmenting": segmenting,
        })),
    })
}

/// Prints one event for the parent (the runner's only way to talk).
fn emit(ev: RunnerEvent) {
    println!("{}", ev.line());
}

/// Reports `e` as the run's end and exits with its status.
fn fail_with(e: &anyhow::Error) -> ! {
    let code = code_of(e);
    emit(RunnerEvent::Error {
        code: code.clone(),
        message: format!("{e:#}"),
    });
    std::process::exit(bv_job::codes::exit_status(&code));
}

/// `bv job-run`: inside the jail (already confined by the launcher); reads the job from stdin.
pub fn run_inside() -> anyhow::Result<()> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    let spec: JobSpec = serde_json::from_str(&text).context("reading the job")?;
    let cancel = AtomicBool::new(false);
    if spec.piped {
        // MP4 keeps its index at either end, so the input must be seekable:
        // it lands in /scratch first (size-capped tmpfs, private to this jail).
        let mut src = std::fs::File::from(bv_sandbox::handed_in(3)?);
        let mut f = std::fs::File::create(&spec.input).context("scratch input")?;
        match &spec.kind {
            JobKind::Join(j) => {
                receive_exactly(&mut src, &mut f, j.original_len)?;
                for (i, (len, _)) in j.parts.iter().enumerate() {
                    let mut p = std::fs::File::create(part_path(&spec, i))?;
                    receive_exactly(&mut src, &mut p, *len)?;
                }
            }
            _ => {
                std::io::copy(&mut src, &mut f).context("receiving the input")?;
            }
        }
        drop((src, f));
        std::fs::File::create(&spec.output).context("scratch output")?;
    }
    match &spec.kind {
        JobKind::Probe => {
            let result = probe_summary(&spec);
            let _ = std::fs::remove_file(&spec.input);
            match result {
                Ok(summary) => {
                    emit(RunnerEvent::Done { summary });
                    Ok(())
                }
                Err(e) => fail_with(&e),
            }
        }
        JobKind::Join(j) => report(&spec, join_inside(&spec, j)),
        JobKind::Enhance(_) => {
            let result = execute(&spec, &cancel, &mut |p| emit(RunnerEvent::progress(p)));
            match result {
                Ok(s) => {
                    if spec.piped {
                        let mut dst = std::fs::File::from(bv_sandbox::handed_in(4)?);
                        let mut f = std::fs::File::open(&spec.output)?;
                        std::io::copy(&mut f, &mut dst).context("sending the result")?;
                        let _ = std::fs::remove_file(&spec.input);
                        let _ = std::fs::remove_file(&spec.output);
                    }
                    emit(RunnerEvent::Done {
                        summary: done_of(s),
                    });
                    Ok(())
                }
                Err(e) => fail_with(&e),
            }
        }
    }
}

/// A finished pipeline's summary as the contract reports it.
pub fn done_of(s: Summary) -> Done {
    Done {
        frames: s.frames,
        input_size: s.input_size,
        output_size: s.output_size,
        seconds: s.elapsed.as_secs_f64(),
        inference_seconds: s.inference.as_secs_f64(),
        backend: s.backend,
        media: None,
    }
}

/// Copies exactly `len` bytes of the piped input into `to`.
fn receive_exactly(from: &mut impl Read, to: &mut std::fs::File, len: u64) -> anyhow::Result<()> {
    let n = std::io::copy(&mut from.take(len), to).context("receiving the input")?;
    if n != len {
        anyhow::bail!("the input ended after {n} of {len} bytes");
    }
    Ok(())
}

/// Where the `i`th segment of a join lands in the jail's scratch.
fn part_path(spec: &JobSpec, i: usize) -> PathBuf {
    spec.input.with_file_name(format!("segment-{i:04}.nut"))
}

/// Joins the segments (already in scratch) with the original's other streams.
fn join_inside(spec: &JobSpec, j: &JoinSpec) -> anyhow::Result<Done> {
    let t0 = std::time::Instant::now();
    let parts: Vec<(PathBuf, Segment)> = j
        .parts
        .iter()
        .enumerate()
        .map(|(i, (_, seg))| (part_path(spec, i), *seg))
        .collect();
    segments::join(&parts, &spec.input, &spec.output)?;
    for (p, _) in &parts {
        let _ = std::fs::remove_file(p);
    }
    let info = bv_engine::video::probe::probe(&spec.output)?;
    let v = info
        .main_video()
        .ok_or_else(|| bv_engine::EngineError::InputNotVideo("joined output".into()))?;
    Ok(Done {
        frames: info.frame_estimate().unwrap_or(0),
        input_size: (0, 0),
        output_size: (v.width, v.height),
        seconds: t0.elapsed().as_secs_f64(),
        inference_seconds: 0.0,
        backend: "join".into(),
        media: None,
    })
}

/// Sends a finished join's output back and reports how it ended.
fn report(spec: &JobSpec, result: anyhow::Result<Done>) -> anyhow::Result<()> {
    match result.and_then(|done| {
        let mut dst = std::fs::File::from(bv_sandbox::handed_in(4)?);
        let mut f = std::fs::File::open(&spec.output)?;
        std::io::copy(&mut f, &mut dst).context("sending the result")?;
        let _ = std::fs::remove_file(&spec.input);
        let _ = std::fs::remove_file(&spec.output);
        Ok(done)
    }) {
        Ok(summary) => {
            emit(RunnerEvent::Done { summary });
            Ok(())
        }
        Err(e) => fail_with(&e),
    }
}

/// The parent side: runs `spec_for(paths inside)` on `input` into `output` in a fresh jail.
pub fn run_sandboxed(
    runner: &Runner,
    input: &Path,
    output: &Path,
    overwrite: bool,
    spec_for: impl FnOnce(PathBuf, PathBuf, String) -> JobSpec,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(&Progress),
) -> anyhow::Result<Done> {
    let input_host = input
        .canonicalize()
        .map_err(|_| bv_engine::EngineError::InputNotFound(input.to_path_buf()))?;
    if !input_host.is_file() {
        return Err(bv_engine::EngineError::InputNotFound(input.to_path_buf()).into());
    }
    let (temp, ext) = prepare_output(input, output, overwrite)?;
    let (input_inside, output_inside) = (
        PathBuf::from(format!("/in/input.{ext}")),
        PathBuf::from(format!("/out/output.{ext}")),
    );
    let spec = spec_for(input_inside, output_inside, ext.clone());
    let jail = runner.jail(vec![
        Mount {
            host: input_host,
            inside: spec.input.clone(),
            writable: false,
        },
        Mount {
            host: temp.path().to_path_buf(),
            inside: spec.output.clone(),
            writable: true,
        },
    ]);
    let done = runner
        .run(&jail, &spec, Vec::new(), cancel, progress)
        .map_err(|e| {
            with_host_paths(
                anyhow::Error::from(e),
                &[(&spec.input, input), (&spec.output, output)],
            )
        })?;
    temp.commit(output)?;
    Ok(done)
}

/// An error from inside the jail with the jail's paths (`/in/input.mp4`,
/// `/scratch/output.mkv`, which the user never named) replaced by the
/// user's own. The code stays the job's.
fn with_host_paths(e: anyhow::Error, map: &[(&Path, &Path)]) -> anyhow::Error {
    let said = format!("{e:#}");
    let mut shown = said.clone();
    for (inside, host) in map {
        shown = shown.replace(&inside.display().to_string(), &host.display().to_string());
    }
    if shown == said {
        return e;
    }
    crate::exit::JobFailed {
        code: crate::exit::code_of(&e),
        message: shown,
    }
    .into()
}

/// The parent side without any host file in the jail: `input` is streamed
/// into it through a pipe and the result streamed out of it through another
/// (the way the service runs jobs). `spec_for` gets the paths inside
/// (`/scratch/…`) and the output extension.
pub fn run_streamed(
    runner: &Runner,
    input: &Path,
    output: &Path,
    overwrite: bool,
    spec_for: impl FnOnce(PathBuf, PathBuf, String) -> JobSpec,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(&Progress),
) -> anyhow::Result<Done> {
    let src = std::fs::File::open(input)
        .map_err(|_| bv_engine::EngineError::InputNotFound(input.to_path_buf()))?;
    let (temp, ext) = prepare_output(input, output, overwrite)?;
    let mut spec = spec_for(
        PathBuf::from("/scratch/input.media"),
        PathBuf::from(format!("/scratch/output.{ext}")),
        ext,
    );
    spec.piped = true;
    let dst = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(temp.path())?;
    let done = runner
        .run_piped(&spec, src, dst, cancel, progress)
        .map_err(|e| {
            with_host_paths(
                anyhow::Error::from(e),
                &[(&spec.input, input), (&spec.output, output)],
            )
        })?;
    temp.commit(output)?;
    Ok(done)
}
