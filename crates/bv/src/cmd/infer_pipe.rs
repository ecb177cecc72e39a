//! `bv infer-pipe`: the engine on raw frames, for benchmarks and fidelity tests.
//!
//! Reads packed rgb24 frames of `--width` x `--height` from stdin until EOF,
//! writes each upscaled frame to stdout, and prints the seconds spent in the
//! model for each frame on stderr (`infer <seconds>`), so a harness can time
//! inference alone, as the peers are timed.

use std::io::{Read, Write};
use std::time::Instant;

use bv_engine::backend;
use bv_engine::model::ModelStore;
use bv_engine::upscale::Upscaler;
use bv_engine::{Depth, Frame};

use crate::config::Config;

/// Flags of `bv infer-pipe`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model name.
    #[arg(long)]
    pub model: Option<String>,
    /// Scale.
    #[arg(long)]
    pub scale: Option<u32>,
    /// Frame width.
    #[arg(long)]
    pub width: usize,
    /// Frame height.
    #[arg(long)]
    pub height: usize,
    /// Inference threads on the CPU (0 = one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Where inference runs: auto, cpu, cuda, cuda:N (default from the configuration).
    #[arg(long)]
    pub device: Option<String>,
    /// Tile edge (0 = automatic).
    #[arg(long)]
    pub tile: Option<usize>,
}

/// Runs the command.
pub fn run(cfg: &Config, a: Args) -> anyhow::Result<()> {
    let scale = a.scale.unwrap_or(cfg.engine.scale);
    let model = ModelStore::new(cfg.model_dir())
        .load(a.model.as_deref().unwrap_or(&cfg.engine.model), scale)?;
    let device = a.device.as_deref().unwrap_or(&cfg.engine.device).parse()?;
    let backend = backend::open(&model, device, a.threads.unwrap_or(cfg.engine.threads))?;
    let mut up = Upscaler::new(backend, scale as usize, a.tile.unwrap_or(cfg.engine.tile));
    eprintln!("backend {}", up.describe());
    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    let mut frame = Frame::new(a.width, a.height, Depth::U8);
    loop {
        match stdin.read_exact(&mut frame.data) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        }
        let t = Instant::now();
        let out = up.upscale(&frame)?;
        eprintln!("infer {:.6}", t.elapsed().as_secs_f64());
        stdout.write_all(&out.data)?;
        stdout.flush()?;
    }
    Ok(())
}
