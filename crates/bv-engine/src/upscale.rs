//! Frame upscaling with bounded memory: overlapping tiles over a [`Backend`].
//!
//! A frame larger than the tile budget is cut into a grid of tiles; each tile
//! is run with `radius` pixels of real context on every side (the model's
//! receptive field), and only its core is kept. With that much context the
//! stitched result equals a whole-frame run up to float rounding.
//!
//! Two things keep that true for Real-CUGAN: tiles start at multiples of
//! the network's total stride (so its downsampling layers see each tile in
//! the phase they see the frame), and its squeeze-and-excitation blocks,
//! which scale every channel by a function of that channel's mean over the
//! *whole* image, get the whole frame's means: before the tiles run, the
//! backend computes them tile by tile, one pooling layer per pass
//! ([`Backend::prepare_frame`]).

use rayon::prelude::*;

use crate::backend::Backend;
use crate::error::{EngineError, Result};
use crate::frame::{Depth, Frame};
use crate::nn::Tensor;

/// Most input pixels per tile when `--tile` is 0 (about 270 MB of activations
/// for animevideov3); heavier models get fewer, from their plan's memory per
/// pixel ([`crate::plan::Plan::auto_tile_pixels`]).
pub const AUTO_TILE_PIXELS: usize = 512 * 1024;

/// One tile: the core it produces and the context it reads (input pixels, half-open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileRect {
    /// Core columns.
    pub x: (usize, usize),
    /// Core rows.
    pub y: (usize, usize),
    /// Context columns read.
    pub cx: (usize, usize),
    /// Context rows read.
    pub cy: (usize, usize),
}

/// Splits `n` into `parts` nearly equal ranges.
fn split(n: usize, parts: usize) -> Vec<(usize, usize)> {
    (0..parts)
        .map(|i| (i * n / parts, (i + 1) * n / parts))
        .collect()
}

/// Plans the tiles for a `w x h` frame. `tile` = 0 picks the grid with the
/// fewest tiles that keeps each core under `auto_pixels`; otherwise tiles
/// are at most `tile x tile`.
pub fn plan_tiles(
    w: usize,
    h: usize,
    tile: usize,
    radius: usize,
    auto_pixels: usize,
    align: usize,
) -> Vec<TileRect> {
    let align = align.max(1);
    let (nx, ny) = if tile == 0 {
        let mut best = (w.max(1), h.max(1));
        for nx in 1..=w.max(1) {
            let ny = (1..=h.max(1)).find(|ny| w.div_ceil(nx) * h.div_ceil(*ny) <= auto_pixels);
            if let Some(ny) = ny {
                // Fewest tiles first, then the least overlap (the shorter seams).
                let cost = |(a, b): (usize, usize)| (a * b, a * h + b * w);
                if cost((nx, ny)) < cost(best) {
                    best = (nx, ny);
                }
            }
            if nx > best.0 * best.1 {
                break;
            }
        }
        best
    } else {
        (w.div_ceil(tile), h.div_ceil(tile))
    };
    let mut tiles = Vec::with_capacity(nx * ny);
    for &y in &split(h, ny) {
        for &x in &split(w, nx) {
            let start = |v: usize| v.saturating_sub(radius) / align * align;
            let cx = (start(x.0), (x.1 + radius).min(w));
            let cy = (start(y.0), (y.1 + radius).min(h));
            tiles.push(TileRect { x, y, cx, cy });
        }
    }
    tiles
}

/// Upscales whole frames through a backend, tile by tile.
pub struct Upscaler {
    backend: Box<dyn Backend>,
    scale: usize,
    tile: usize,
}

impl Upscaler {
    /// `scale` is the model's factor; `tile` the maximum tile edge (0 = auto).
    pub fn new(backend: Box<dyn Backend>, scale: usize, tile: usize) -> Self {
        Self {
            backend,
            scale,
            tile,
        }
    }

    /// The backend's description.
    pub fn describe(&self) -> String {
        self.backend.describe()
    }

    /// The upscale factor.
    pub fn scale(&self) -> usize {
        self.scale
    }

    /// Output size for an input size.
    pub fn output_size(&self, w: usize, h: usize) -> (usize, usize) {
        (w * self.scale, h * self.scale)
    }

    /// The tiles a `w x h` frame is cut into.
    pub fn tiles(&self, w: usize, h: usize) -> Vec<TileRect> {
        plan_tiles(
            w,
            h,
            self.tile,
            self.backend.radius(),
            self.backend.tile_pixels(),
            self.backend.align(),
        )
    }

    /// Upscales one frame; the output has the same sample depth.
    pub fn upscale(&mut self, frame: &Frame) -> Result<Frame> {
        let s = self.scale;
        let mut out = Frame::new(frame.width * s, frame.height * s, frame.depth);
        let tiles = self.tiles(frame.width, frame.height);
        let input = |t: &TileRect| {
            let (cw, ch) = (t.cx.1 - t.cx.0, t.cy.1 - t.cy.0);
            let mut input = Tensor::zeros(ch, cw, 3);
            for y in 0..ch {
                let row = input.row_mut(y);
                let base = ((t.cy.0 + y) * frame.width + t.cx.0) * 3;
                for (i, v) in row.iter_mut().enumerate() {
                    *v = frame.sample(base + i);
                }
            }
            input
        };
        self.backend
            .prepare_frame(frame.width, frame.height, &tiles, &input)?;
        for t in tiles {
            let (cw, ch) = (t.cx.1 - t.cx.0, t.cy.1 - t.cy.0);
            let input = input(&t);
            let core = Core {
                model_w: cw * s,
                model_h: ch * s,
                src: ((t.x.0 - t.cx.0) * s, (t.y.0 - t.cy.0) * s),
                size: ((t.x.1 - t.x.0) * s, (t.y.1 - t.y.0) * s),
                dst: (t.x.0 * s, t.y.0 * s),
            };
            self.backend.infer_into(input, &core, &mut out)?;
        }
        Ok(out)
    }
}

/// Which part of a tile's model output is kept, and where it goes in the frame
/// (all in output pixels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Core {
    /// Width the model must produce for this tile.
    pub model_w: usize,
    /// Height the model must produce for this tile.
    pub model_h: usize,
    /// Top-left of the kept core inside the model output.
    pub src: (usize, usize),
    /// Width and height of the core.
    pub size: (usize, usize),
    /// Top-left of the core in the output frame.
    pub dst: (usize, usize),
}

/// Checks the model output size, then clamps, quantizes and stores the core
/// of `result` into `frame` (rows in parallel).
pub fn store_core(result: &Tensor, core: &Core, frame: &mut Frame) -> Result<()> {
    if (result.w, result.h) != (core.model_w, core.model_h) {
        return Err(EngineError::ModelInvalid(format!(
            "model produced {}x{}, expected {}x{}",
            result.w, result.h, core.model_w, core.model_h
        )));
    }
    let (depth, bytes) = (frame.depth, frame.depth.bytes());
    let row_bytes = frame.width * 3 * bytes;
    let (sx, sy) = core.src;
    let (w, h) = core.size;
    let col0 = core.dst.0 * 3 * bytes;
    frame
        .data
        .par_chunks_mut(row_bytes)
        .skip(core.dst.1)
        .take(h)
        .enumerate()
        .for_each(|(y, row)| {
            let src = &result.row(sy + y)[sx * 3..(sx + w) * 3];
            quantize(src, &mut row[col0..col0 + w * 3 * bytes], depth);
        });
    Ok(())
}

/// Clamps to [0, 1], scales to the sample range, rounds and stores into `dst`
/// (one byte per sample, or two little-endian bytes).
fn quantize(src: &[f32], dst: &mut [u8], depth: Depth) {
    let max = depth.max();
    match depth {
        Depth::U8 => {
            for (d, v) in dst.iter_mut().zip(src) {
                *d = (v.clamp(0.0, 1.0) * max).round() as u8;
            }
        }
        Depth::U16 => {
            for (d, v) in dst.chunks_exact_mut(2).zip(src) {
                d.copy_from_slice(&((v.clamp(0.0, 1.0) * max).round() as u16).to_le_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_the_frame_once_with_clamped_context() {
        for (w, h, tile) in [(640, 360, 0), (1920, 1080, 0), (1281, 721, 256), (7, 5, 2)] {
            let tiles = plan_tiles(w, h, tile, 20, AUTO_TILE_PIXELS, 1);
            let mut cover = vec![0u8; w * h];
            for t in &tiles {
                assert!(t.cx.0 <= t.x.0 && t.x.1 <= t.cx.1 && t.cx.1 <= w);
                assert!(t.cy.0 <= t.y.0 && t.y.1 <= t.cy.1 && t.cy.1 <= h);
                if tile == 0 {
                    assert!((t.x.1 - t.x.0) * (t.y.1 - t.y.0) <= AUTO_TILE_PIXELS);
                } else {
                    assert!(t.x.1 - t.x.0 <= tile && t.y.1 - t.y.0 <= tile);
                }
                for y in t.y.0..t.y.1 {
                    for x in t.x.0..t.x.1 {
                        cover[y * w + x] += 1;
                    }
                }
            }
            assert!(cover.iter().all(|c| *c == 1), "{w}x{h} tile {tile}");
        }
        assert_eq!(plan_tiles(640, 360, 0, 20, AUTO_TILE_PIXELS, 1).len(), 1);
        assert_eq!(plan_tiles(1280, 720, 0, 20, AUTO_TILE_PIXELS, 1).len(), 2);
    }
}
