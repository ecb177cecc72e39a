//! `bv enhance`: upscale a video file locally.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use bv_engine::backend;
use bv_engine::model::ModelStore;
use bv_engine::upscale::Upscaler;
use bv_engine::video::encode::{Codec, EncodeSettings};
use bv_engine::video::pipeline::{EnhanceOptions, enhance};

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
    /// Model (see `bv models list`); default from the configuration.
    #[arg(long)]
    pub model: Option<String>,
    /// Upscale factor offered by the model (2, 3 or 4).
    #[arg(long)]
    pub scale: Option<u32>,
    /// Video codec of the output.
    #[arg(long, default_value = "h264", value_parser = ["h264", "hevc", "av1", "ffv1"])]
    pub codec: String,
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
}

/// Runs the command.
pub fn run(cfg: &Config, a: Args) -> anyhow::Result<()> {
    let encode = EncodeSettings::new(a.codec.parse::<Codec>()?, a.crf, a.preset.clone())?;
    let store = ModelStore::new(cfg.model_dir());
    let model_name = a.model.as_deref().unwrap_or(&cfg.engine.model);
    let scale = a.scale.unwrap_or(cfg.engine.scale);
    let model = store.load(model_name, scale)?;
    let device = a.device.as_deref().unwrap_or(&cfg.engine.device).parse()?;
    let backend = backend::open(&model, device, a.threads.unwrap_or(cfg.engine.threads))?;
    let mut upscaler = Upscaler::new(backend, scale as usize, a.tile.unwrap_or(cfg.engine.tile));

    let cancel = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&cancel))
            .context("installing signal handlers")?;
    }
    let opts = EnhanceOptions {
        encode,
        max_width: cfg.engine.max_output_width,
        max_height: cfg.engine.max_output_height,
        overwrite: a.overwrite,
    };
    let mut reporter = Reporter::new(a.json);
    let result = enhance(
        &a.input,
        &a.output,
        &mut upscaler,
        &opts,
        &cancel,
        &mut |p| reporter.update(p),
    );
    reporter.finish();
    let s = result?;
    let secs = s.elapsed.as_secs_f64();
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "event": "done", "output": a.output, "frames": s.frames,
                "input_size": [s.input_size.0, s.input_size.1], "output_size": [s.output_size.0, s.output_size.1],
                "seconds": secs, "inference_seconds": s.inference.as_secs_f64(), "backend": s.backend,
                "model": model_name, "scale": scale,
            })
        );
    } else {
        eprintln!(
            "{} frames {}x{} -> {}x{} in {:.1} s ({:.2} fps, {:.0}% in the model, {})",
            s.frames,
            s.input_size.0,
            s.input_size.1,
            s.output_size.0,
            s.output_size.1,
            secs,
            s.frames as f64 / secs.max(1e-9),
            100.0 * s.inference.as_secs_f64() / secs.max(1e-9),
            s.backend
        );
        println!("{}", a.output.display());
    }
    Ok(())
}
