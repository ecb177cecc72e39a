//! Enhancement jobs in the sandbox: the parent side that launches the jail,
//! and `bv job-run`, the runner inside it.
//!
//! The parent never parses media: it checks paths and options, creates the
//! output's temporary file, and hands the job to a jail that sees only `/usr`,
//! the `bv` binary, the models, the input (read-only) and that one output file.
//! The launcher confines the runner (Landlock, seccomp) before it starts; the
//! runner reads the job, runs the same pipeline as `--no-sandbox` and reports
//! JSON events on stdout.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use bv_engine::backend;
use bv_engine::model::ModelStore;
use bv_engine::upscale::Upscaler;
use bv_engine::video::encode::{Codec, EncodeSettings};
use bv_engine::video::pipeline::{EnhanceOptions, Progress, Summary, enhance_into, prepare_output};
use bv_engine::video::segments::{self, Segment};
use bv_sandbox::{Exit, Jail, Mount};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::exit::{JobFailed, code_of};

/// Where the `bv` binary appears inside the jail.
pub const BV_INSIDE: &str = "/opt/bv/bv";
/// Where the model directory appears inside the jail.
pub const MODELS_INSIDE: &str = "/models";

/// What the runner is asked to do (paths are inside the jail).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobSpec {
    /// Input file.
    pub input: PathBuf,
    /// Output file (exists, will be overwritten).
    pub output: PathBuf,
    /// Output container extension.
    pub ext: String,
    /// Model directory.
    pub models: PathBuf,
    /// Model name.
    pub model: String,
    /// Scale.
    pub scale: u32,
    /// Codec name.
    pub codec: String,
    /// CRF.
    pub crf: Option<u32>,
    /// Encoder preset.
    pub preset: Option<String>,
    /// Tile edge.
    pub tile: usize,
    /// Inference threads.
    pub threads: usize,
    /// Device.
    pub device: String,
    /// Output size cap.
    pub max_width: u64,
    /// Output size cap.
    pub max_height: u64,
    /// The plaintext comes in on descriptor 3 and the result goes back on
    /// descriptor 4 (pipes); `input` and `output` are then files in the
    /// jail's private `/scratch`, which dies with the jail.
    #[serde(default)]
    pub piped: bool,
    /// Only probe the input (streams, size, frame count) and report it.
    #[serde(default)]
    pub probe_only: bool,
    /// Enhance only this part of the input, video only (the output is NUT),
    /// for a job that several workers run in segments.
    #[serde(default)]
    pub segment: Option<Segment>,
    /// Join enhanced segments with the original's other streams instead of
    /// enhancing (nothing is decoded or encoded).
    #[serde(default)]
    pub join: Option<JoinSpec>,
}

/// What a join gets on its piped input: the original, then each segment's
/// file, back to back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinSpec {
    /// The original's length in bytes.
    pub original_len: u64,
    /// Each segment's length in bytes and what it covers, in order.
    pub parts: Vec<(u64, Segment)>,
}

/// Summary as the runner reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Done {
    /// Frames.
    pub frames: u64,
    /// Input size.
    pub input_size: (u64, u64),
    /// Output size.
    pub output_size: (u64, u64),
    /// Wall seconds inside the jail.
    pub seconds: f64,
    /// Seconds in the model.
    pub inference_seconds: f64,
    /// Backend.
    pub backend: String,
    /// What a probe found (probe jobs only).
    #[serde(default)]
    pub media: Option<serde_json::Value>,
}

/// Runs the pipeline for `spec` (shared by the runner and `--no-sandbox` callers).
pub fn execute(
    spec: &JobSpec,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(&Progress),
) -> anyhow::Result<Summary> {
    let encode = EncodeSettings::new(spec.codec.parse::<Codec>()?, spec.crf, spec.preset.clone())?;
    let model = ModelStore::new(&spec.models).load(&spec.model, spec.scale)?;
    let backend = backend::open(&model, spec.device.parse()?, spec.threads)?;
    let mut upscaler = Upscaler::new(backend, spec.scale as usize, spec.tile);
    let opts = EnhanceOptions {
        encode,
        max_width: spec.max_width,
        max_height: spec.max_height,
        overwrite: true,
        segment: spec.segment,
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
    let frames = info.frame_estimate().unwrap_or(0);
    // Where the video may be cut for several workers (decision 0023): any
    // keyframe will do, so a very long list is thinned, not truncated.
    let segmenting = segments::keyframes_us(&spec.input, v.index)
        .ok()
        .filter(|k| !k.is_empty())
        .map(|k| {
            let step = k.len().div_ceil(MAX_KEYFRAMES);
            let kept: Vec<i64> = k.iter().step_by(step).copied().collect();
            let end_us = info.duration.map_or(0, |d| (d * 1e6) as i64) + info.start_time_us;
            serde_json::json!({"keyframes_us": kept, "end_us": end_us})
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

/// `bv job-run`: inside the jail (already confined by the launcher); reads the job from stdin.
pub fn run_inside() -> anyhow::Result<()> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    let spec: JobSpec = serde_json::from_str(&text).context("reading the job")?;
    let cancel = AtomicBool::new(false);
    let emit = |v: serde_json::Value| println!("{v}");
    if spec.piped {
        // MP4 keeps its index at either end, so the input must be seekable:
        // it lands in /scratch first (size-capped tmpfs, private to this jail).
        let mut src = std::fs::File::from(bv_sandbox::handed_in(3)?);
        let mut f = std::fs::File::create(&spec.input).context("scratch input")?;
        match &spec.join {
            None => {
                std::io::copy(&mut src, &mut f).context("receiving the input")?;
            }
            Some(j) => {
                receive_exactly(&mut src, &mut f, j.original_len)?;
                for (i, (len, _)) in j.parts.iter().enumerate() {
                    let mut p = std::fs::File::create(part_path(&spec, i))?;
                    receive_exactly(&mut src, &mut p, *len)?;
                }
            }
        }
        drop((src, f));
        std::fs::File::create(&spec.output).context("scratch output")?;
    }
    if spec.probe_only {
        let result = probe_summary(&spec);
        let _ = std::fs::remove_file(&spec.input);
        return match result {
            Ok(done) => {
                emit(serde_json::json!({"event": "done", "summary": done}));
                Ok(())
            }
            Err(e) => {
                emit(
                    serde_json::json!({"event": "error", "code": code_of(&e), "message": format!("{e:#}")}),
                );
                std::process::exit(crate::exit::status_for(&code_of(&e)));
            }
        };
    }
    if let Some(j) = &spec.join {
        return report(&spec, join_inside(&spec, j));
    }
    let result = execute(&spec, &cancel, &mut |p| {
        emit(
            serde_json::json!({"event": "progress", "frames": p.frames, "total": p.total, "elapsed_s": p.elapsed.as_secs_f64()}),
        )
    });
    match result {
        Ok(s) => {
            if spec.piped {
                let mut dst = std::fs::File::from(bv_sandbox::handed_in(4)?);
                let mut f = std::fs::File::open(&spec.output)?;
                std::io::copy(&mut f, &mut dst).context("sending the result")?;
                let _ = std::fs::remove_file(&spec.input);
                let _ = std::fs::remove_file(&spec.output);
            }
            let done = Done {
                frames: s.frames,
                input_size: s.input_size,
                output_size: s.output_size,
                seconds: s.elapsed.as_secs_f64(),
                inference_seconds: s.inference.as_secs_f64(),
                backend: s.backend,
                media: None,
            };
            emit(serde_json::json!({"event": "done", "summary": done}));
            Ok(())
        }
        Err(e) => {
            emit(
                serde_json::json!({"event": "error", "code": code_of(&e), "message": format!("{e:#}")}),
            );
            std::process::exit(crate::exit::status_for(&code_of(&e)));
        }
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
    let emit = |v: serde_json::Value| println!("{v}");
    match result.and_then(|done| {
        let mut dst = std::fs::File::from(bv_sandbox::handed_in(4)?);
        let mut f = std::fs::File::open(&spec.output)?;
        std::io::copy(&mut f, &mut dst).context("sending the result")?;
        let _ = std::fs::remove_file(&spec.input);
        let _ = std::fs::remove_file(&spec.output);
        Ok(done)
    }) {
        Ok(done) => {
            emit(serde_json::json!({"event": "done", "summary": done}));
            Ok(())
        }
        Err(e) => {
            emit(
                serde_json::json!({"event": "error", "code": code_of(&e), "message": format!("{e:#}")}),
            );
            std::process::exit(crate::exit::status_for(&code_of(&e)));
        }
    }
}

/// The jail every enhancement job runs in: the `bv` binary and the models,
/// read-only, plus `extra` mounts.
pub(crate) fn job_jail(cfg: &Config, extra: Vec<Mount>) -> anyhow::Result<Jail> {
    let mut mounts = vec![
        Mount {
            host: std::env::current_exe()?,
            inside: BV_INSIDE.into(),
            writable: false,
        },
        Mount {
            host: cfg.model_dir(),
            inside: MODELS_INSIDE.into(),
            writable: false,
        },
    ];
    mounts.extend(extra);
    Ok(Jail {
        cgroups: cfg.sandbox.cgroups,
        limits: cfg.sandbox.limits.clone(),
        mounts,
        ..Jail::default()
    })
}

/// The parent side: runs `spec_for(paths inside)` on `input` into `output` in a fresh jail.
pub fn run_sandboxed(
    cfg: &Config,
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
    let jail = job_jail(
        cfg,
        vec![
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
        ],
    )?;
    let done = run_job(cfg, &jail, &spec, Vec::new(), cancel, progress)?;
    temp.commit(output)?;
    Ok(done)
}

/// The parent side without any host file in the jail: `input` is streamed
/// into it through a pipe and the result streamed out of it through another
/// (the way the service runs jobs). `spec_for` gets the paths inside
/// (`/scratch/…`) and the output extension.
pub fn run_streamed(
    cfg: &Config,
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
    let done = run_piped(cfg, &spec, src, dst, cancel, progress)?;
    temp.commit(output)?;
    Ok(done)
}

/// Runs a piped `spec` in a fresh jail, feeding it `input` and writing what
/// it returns to `output`, both streamed.
pub fn run_piped(
    cfg: &Config,
    spec: &JobSpec,
    mut input: impl std::io::Read + Send,
    mut output: impl std::io::Write + Send,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(&Progress),
) -> anyhow::Result<Done> {
    anyhow::ensure!(spec.piped, "run_piped needs a piped job");
    let (in_r, mut in_w) = std::io::pipe()?;
    let (mut out_r, out_w) = std::io::pipe()?;
    let jail = job_jail(cfg, Vec::new())?;
    std::thread::scope(|s| {
        let feeder = s.spawn(move || {
            // A job that stops reading (it failed, or was killed) breaks the
            // pipe; its own report says why, so that error is not ours to raise.
            match std::io::copy(&mut input, &mut in_w) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e),
                _ => Ok(()),
            }
        });
        let drain =
            s.spawn(move || -> std::io::Result<u64> { std::io::copy(&mut out_r, &mut output) });
        let fds = vec![
            std::os::fd::OwnedFd::from(in_r),
            std::os::fd::OwnedFd::from(out_w),
        ];
        let done = run_job(cfg, &jail, spec, fds, cancel, progress);
        let fed = feeder.join().expect("feeder thread");
        let drained = drain.join().expect("drain thread");
        let done = done?;
        fed.context("feeding the job its input")?;
        drained.context("receiving the job's output")?;
        Ok(done)
    })
}

/// Runs `bv job-run` for `spec` in `jail`, turning its events into progress
/// and its end into a result; checks the teardown.
fn run_job(
    cfg: &Config,
    jail: &Jail,
    spec: &JobSpec,
    fds: Vec<std::os::fd::OwnedFd>,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(&Progress),
) -> anyhow::Result<Done> {
    let mut done = None;
    let mut failure: Option<JobFailed> = None;
    let start = std::time::Instant::now();
    let outcome = jail.run_with_fds(
        BV_INSIDE,
        &["job-run".to_string()],
        serde_json::to_string(spec)?.as_bytes(),
        fds,
        &mut |line| {
            let Ok(ev) = serde_json::from_str::<serde_json::Value>(line) else {
                return;
            };
            match ev["event"].as_str() {
                Some("progress") => progress(&Progress {
                    frames: ev["frames"].as_u64().unwrap_or(0),
                    total: ev["total"].as_u64(),
                    elapsed: start.elapsed(),
                }),
                Some("done") => done = serde_json::from_value(ev["summary"].clone()).ok(),
                Some("error") => {
                    failure = Some(JobFailed {
                        code: ev["code"].as_str().unwrap_or("error").into(),
                        message: ev["message"].as_str().unwrap_or_default().into(),
                    })
                }
                _ => {}
            }
        },
        cancel,
    )?;
    if !outcome.teardown.clean() {
        eprintln!(
            "WARNING: sandbox teardown was not clean: {:?}",
            outcome.teardown
        );
        return Err(JobFailed {
            code: "sandbox_teardown_failed".into(),
            message: format!("{:?}", outcome.teardown),
        }
        .into());
    }
    match (outcome.exit, done, failure) {
        (Exit::Code(0), Some(d), _) => Ok(d),
        (_, _, Some(f)) => Err(f.into()),
        (Exit::Cancelled, ..) => Err(bv_engine::EngineError::Cancelled.into()),
        (Exit::Deadline, ..) => Err(JobFailed {
            code: "job_timeout".into(),
            message: format!("the job passed its {} s deadline and was killed", cfg.sandbox.limits.wall_seconds),
        }
        .into()),
        (exit, ..) => Err(JobFailed {
            code: "job_resource_limit".into(),
            message: format!("the job ended ({exit:?}) without a result; a sandbox limit may have stopped it: {}", outcome.stderr.lines().last().unwrap_or_default()),
        }
        .into()),
    }
}
