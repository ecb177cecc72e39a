//! `bv enhance`: upscale a video file locally, inside the sandbox by default.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use bv_engine::video::encode::{Codec, EncodeSettings};
use bv_engine::video::pipeline::prepare_output;
use bv_job::{Done, Enhance, JobKind, JobSpec};
use bv_worker::runner::MODELS_INSIDE;

use crate::cmd::job::{done_of, execute, run_sandboxed, run_streamed};
use crate::config::Config;
use crate::progress::Reporter;

/// Flags of `bv enhance`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Input video.
    pub input: PathBuf,
    /// Output file; its extension picks the container (.mp4, .mkv, .mov, …).
    #[arg(short, long)]
    pub output: PathBuf,
    /// A preset (see `bv models list`): anime, live-action, denoise-light,
    /// denoise-strong. It names the model, scale and codec.
    #[arg(long = "for", value_name = "PRESET", conflicts_with_all = ["model", "scale"])]
    pub for_preset: Option<String>,
    /// Model (see `bv models list`); default from the configuration.
    #[arg(long)]
    pub model: Option<String>,
    /// Upscale factor offered by the model (2, 3 or 4).
    #[arg(long)]
    pub scale: Option<u32>,
    /// Video codec of the output (default h264, or the preset's).
    #[arg(long, value_parser = Codec::names())]
    pub codec: Option<String>,
    /// Constant-rate factor (lower is better quality); default depends on the codec.
    #[arg(long)]
    pub crf: Option<u32>,
    /// Encoder speed preset; default depends on the codec.
    #[arg(long)]
    pub preset: Option<String>,
    /// Largest tile edge in input pixels (0 = automatic, bounded memory).
    #[arg(long)]
    pub tile: Option<usize>,
    /// Inference threads on the CPU (0 = one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Where inference runs: auto, cpu, cuda, cuda:N (default from the configuration).
    #[arg(long)]
    pub device: Option<String>,
    /// Emit progress and the result as JSON lines on stdout.
    #[arg(long)]
    pub json: bool,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub overwrite: bool,
    /// Run FFmpeg and the model without the sandbox (debugging only; prints a warning).
    #[arg(long)]
    pub no_sandbox: bool,
    /// Stream the input into the sandbox and the result out of it through pipes
    /// instead of showing it the files (how the service runs jobs; the jail's
    /// scratch, sandbox.limits.scratch_bytes, must hold both).
    #[arg(long, conflicts_with = "no_sandbox")]
    pub stream: bool,
}

/// Runs the command.
/// The codec fits the container the output's name asks for, said before any
/// work with the container that fits (FFmpeg would fail only at the end).
fn container_fits(codec: Codec, output: &std::path::Path) -> anyhow::Result<()> {
    let ext = output
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let fits = match ext.as_str() {
        "mp4" | "m4v" | "mov" => codec != Codec::Ffv1,
        "webm" => codec == Codec::Av1,
        _ => true,
    };
    if fits {
        return Ok(());
    }
    let other = if codec == Codec::Ffv1 {
        ".mkv"
    } else {
        ".mkv or .mp4"
    };
    Err(bv_engine::EngineError::OutputContainerUnsupported(format!(
        "{} cannot be stored in .{ext}; name the output {other} (e.g. -o {})",
        codec.as_str(),
        output.with_extension("mkv").display()
    ))
    .into())
}

pub fn run(cfg: &Config, mut a: Args) -> anyhow::Result<()> {
    if let Some(name) = &a.for_preset {
        let manifest = bv_engine::model::Manifest::builtin();
        let p = manifest.preset(name)?;
        a.model = Some(p.model.clone());
        a.scale = Some(p.scale);
        a.codec = a.codec.take().or_else(|| Some(p.codec.to_string()));
        a.crf = a.crf.or(p.crf);
    }
    let codec: Codec = a.codec.as_deref().unwrap_or("h264").parse()?;
    // Options are checked here, before any jail starts.
    EncodeSettings::new(codec, a.crf, a.preset.clone())?;
    container_fits(codec, &a.output)?;
    let model_name = a.model.clone().unwrap_or_else(|| cfg.engine.model.clone());
    let scale = a.scale.unwrap_or(cfg.engine.scale);
    // The jail binds the model directory: without one it could not even
    // start, and would say so as a sandbox failure with no way forward.
    let models = cfg.model_dir();
    if !models.is_dir() {
        return Err(crate::exit::JobFailed {
            code: bv_job::codes::MODEL_FILE_MISSING.into(),
            message: format!(
                "no model directory at {}; {}",
                models.display(),
                crate::checks::models_fix(&models)
            ),
        }
        .into());
    }
    let spec_for = |input: PathBuf, output: PathBuf, ext: String, models: PathBuf| JobSpec {
        input,
        output,
        ext,
        models,
        kind: JobKind::Enhance(Enhance {
            codec,
            crf: a.crf,
            encoder_preset: a.preset.clone(),
            ..Enhance::new(model_name.clone(), scale)
        }),
        tile: a.tile.unwrap_or(cfg.engine.tile),
        threads: a.threads.unwrap_or(cfg.engine.threads),
        device: a
            .device
            .clone()
            .unwrap_or_else(|| cfg.engine.device.clone()),
        max_width: cfg.engine.max_output_width,
        max_height: cfg.engine.max_output_height,
        piped: false,
        max_frames: None,
    };

    let cancel = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&cancel))
            .context("installing signal handlers")?;
    }
    let mut reporter = Reporter::new(a.json);
    let result = if a.no_sandbox {
        eprintln!(
            "WARNING: --no-sandbox: the video is parsed by FFmpeg without isolation (for debugging only)"
        );
        (|| -> anyhow::Result<Done> {
            let (temp, ext) = prepare_output(&a.input, &a.output, a.overwrite)?;
            let spec = spec_for(
                a.input.clone(),
                temp.path().to_path_buf(),
                ext,
                cfg.model_dir(),
            );
            let s = execute(&spec, &cancel, &mut |p| reporter.update(p))?;
            temp.commit(&a.output)?;
            Ok(done_of(s))
        })()
    } else if a.stream {
        run_streamed(
            &crate::config::runner(cfg)?,
            &a.input,
            &a.output,
            a.overwrite,
            |i, o, e| spec_for(i, o, e, MODELS_INSIDE.into()),
            &cancel,
            &mut |p| reporter.update(p),
        )
    } else {
        run_sandboxed(
            &crate::config::runner(cfg)?,
            &a.input,
            &a.output,
            a.overwrite,
            |i, o, e| spec_for(i, o, e, MODELS_INSIDE.into()),
            &cancel,
            &mut |p| reporter.update(p),
        )
    };
    reporter.finish();
    let s = result?;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "event": "done", "output": a.output, "frames": s.frames,
                "input_size": [s.input_size.0, s.input_size.1], "output_size": [s.output_size.0, s.output_size.1],
                "seconds": s.seconds, "inference_seconds": s.inference_seconds, "backend": s.backend,
                "model": model_name, "scale": scale, "sandbox": !a.no_sandbox,
            })
        );
    } else {
        eprintln!(
            "{} frames {}x{} -> {}x{} in {:.1} s ({:.2} fps, {:.0}% in the model, {}{})",
            s.frames,
            s.input_size.0,
            s.input_size.1,
            s.output_size.0,
            s.output_size.1,
            s.seconds,
            s.frames as f64 / s.seconds.max(1e-9),
            100.0 * s.inference_seconds / s.seconds.max(1e-9),
            s.backend,
            if a.no_sandbox {
                ", NOT sandboxed"
            } else {
                ", sandboxed"
            }
        );
        println!("{}", a.output.display());
    }
    Ok(())
}
