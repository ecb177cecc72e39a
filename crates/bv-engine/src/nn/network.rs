//! A compiled model: the graph turned into a list of steps over tensors.
//!
//! Compilation validates the graph once (plan.rs), picks a kernel per
//! convolution (Winograd for 3x3 layers of vector-friendly width, direct for
//! other small odd kernels, the generic kernel for strided, even and
//! transposed ones), and runs unpadded ("valid") odd convolutions as padded
//! ones whose border is cut off, so they use the fast kernels too. Running
//! keeps freed activations in a small pool so steady-state frames allocate
//! nothing large. A convolution or concatenation whose output is read only by
//! convolutions stores it in half precision
//! (docs/decisions/0003-half-precision-activations.md).

use std::rc::Rc;
use std::sync::Arc;

use super::direct::Direct;
use super::generic::GenericConv;
use super::ops;
use super::tensor::{Elem, Tensor};
use super::winograd::Winograd;
use crate::error::{EngineError, Result};
use crate::model::ncnn::{Borders, Dense, Interp};
use crate::plan::{Plan, PlanOp};

enum ConvImpl {
    Winograd(Winograd),
    Direct(Direct),
    Generic(GenericConv),
}

enum Step {
    Conv {
        conv: ConvImpl,
        src: usize,
        dst: usize,
        /// Pixels cut from each side of the padded kernel's output (an
        /// unpadded convolution run by a padded kernel).
        trim: usize,
        /// Store the output in half precision (all its readers are convolutions).
        half_out: bool,
    },
    PRelu {
        slopes: Vec<f32>,
        src: usize,
        dst: usize,
    },
    PixelShuffle {
        r: usize,
        src: usize,
        dst: usize,
    },
    Interp {
        p: Interp,
        src: usize,
        dst: usize,
    },
    Add {
        a: usize,
        b: usize,
        coeffs: [f32; 2],
        dst: usize,
    },
    Mul {
        a: usize,
        b: usize,
        dst: usize,
    },
    Concat {
        srcs: Vec<usize>,
        dst: usize,
        /// Store the output in half precision (all its readers are convolutions).
        half_out: bool,
    },
    Crop {
        b: Borders,
        src: usize,
        dst: usize,
    },
    Pool {
        /// Which of the network's poolings this is.
        k: usize,
        src: usize,
        dst: usize,
    },
    Dense {
        d: Dense,
        src: usize,
        dst: usize,
    },
    Split {
        src: usize,
        dsts: Vec<usize>,
    },
}

/// A model ready to run on RGB images.
pub struct Network {
    steps: Vec<Step>,
    n_blobs: usize,
    input: usize,
    output: usize,
    /// For each blob, the index of the last step that reads it.
    last_use: Vec<usize>,
    /// Sizes, border and scale (the plan without its weights).
    shape: Plan,
    /// Input pixels per automatic tile.
    tile_pixels: usize,
    /// The whole frame's means for each global pooling, while its tiles run.
    fixed: Vec<Option<Tensor>>,
    pool: Vec<Tensor>,
    pool_h: Vec<Tensor<u16>>,
    threads: Arc<rayon::ThreadPool>,
}

fn invalid(msg: String) -> EngineError {
    EngineError::ModelInvalid(msg)
}

fn get(blobs: &[Option<Rc<Tensor>>], b: usize) -> Rc<Tensor> {
    blobs[b].clone().expect("blob computed before use")
}

/// The kernel for a convolution, and the border to trim from its output.
fn conv_impl(conv: &crate::model::ncnn::Conv, slopes: &Option<Vec<f32>>) -> (ConvImpl, usize) {
    let half = conv.kw / 2;
    if conv.stride == 1 && conv.kw % 2 == 1 && conv.pad <= half {
        let mut same = conv.clone();
        same.pad = half;
        let trim = half - conv.pad;
        if Winograd::supports(&same) {
            return (
                ConvImpl::Winograd(Winograd::new(&same, slopes.clone())),
                trim,
            );
        }
        if Direct::supports(&same) {
            return (ConvImpl::Direct(Direct::new(&same, slopes.clone())), trim);
        }
    }
    (
        ConvImpl::Generic(GenericConv::new(conv, slopes.clone(), false)),
        0,
    )
}

impl Network {
    /// Compiles `graph` to run with `threads` worker threads (0 = one per core).
    pub fn compile(graph: &crate::model::ncnn::Graph, threads: usize) -> Result<Self> {
        let mut plan = Plan::new(graph)?;
        let mut steps = Vec::with_capacity(plan.steps.len());
        for ps in &plan.steps {
            let (src, dst) = (ps.inputs[0], ps.outputs[0]);
            steps.push(match &ps.op {
                PlanOp::Conv { conv, slopes } => {
                    let (conv, trim) = conv_impl(conv, slopes);
                    // Half precision is decided below, once every reader is known.
                    Step::Conv {
                        conv,
                        src,
                        dst,
                        trim,
                        half_out: false,
                    }
                }
                PlanOp::Deconv { conv, slopes } => Step::Conv {
                    conv: ConvImpl::Generic(GenericConv::new(conv, slopes.clone(), true)),
                    src,
                    dst,
                    trim: 0,
                    half_out: false,
                },
                PlanOp::PRelu { slopes } => Step::PRelu {
                    slopes: slopes.clone(),
                    src,
                    dst,
                },
                PlanOp::PixelShuffle { r } => Step::PixelShuffle { r: *r, src, dst },
                PlanOp::Interp(p) => Step::Interp { p: *p, src, dst },
                PlanOp::Add { coeffs } => Step::Add {
                    a: src,
                    b: ps.inputs[1],
                    coeffs: *coeffs,
                    dst,
                },
                PlanOp::Mul => Step::Mul {
                    a: src,
                    b: ps.inputs[1],
                    dst,
                },
                PlanOp::Concat => Step::Concat {
                    srcs: ps.inputs.clone(),
                    dst,
                    half_out: false,
                },
                PlanOp::Crop(b) => Step::Crop { b: *b, src, dst },
                PlanOp::GlobalAvgPool => Step::Pool {
                    k: steps
                        .iter()
                        .filter(|s| matches!(s, Step::Pool { .. }))
                        .count(),
                    src,
                    dst,
                },
                PlanOp::Dense(d) => Step::Dense {
                    d: d.clone(),
                    src,
                    dst,
                },
                PlanOp::Split => Step::Split {
                    src,
                    dsts: ps.outputs.clone(),
                },
            });
        }
        let (n_blobs, input, output) = (plan.n_blobs, plan.input, plan.output);
        let tile_pixels = plan.auto_tile_pixels(crate::upscale::AUTO_TILE_PIXELS);
        let last_use = plan.last_use.clone();
        // The weights now live in the kernels; the plan keeps only the shapes.
        for s in &mut plan.steps {
            if let PlanOp::Conv { conv, .. } | PlanOp::Deconv { conv, .. } = &mut s.op {
                conv.weights = Vec::new();
            }
        }
        let mut only_convs_read = vec![true; n_blobs];
        for s in &steps {
            for b in step_inputs(s) {
                only_convs_read[b] &= matches!(s, Step::Conv { .. });
            }
        }
        for s in &mut steps {
            match s {
                Step::Conv {
                    conv: ConvImpl::Winograd(_) | ConvImpl::Direct(_),
                    dst,
                    half_out,
                    ..
                }
                | Step::Concat { dst, half_out, .. } => {
                    *half_out = only_convs_read[*dst] && *dst != output;
                }
                _ => {}
            }
        }
        let threads = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("bv-infer-{i}"))
            .build()
            .map_err(|e| EngineError::Io(std::io::Error::other(e)))?;
        Ok(Self {
            steps,
            n_blobs,
            input,
            output,
            last_use,
            fixed: vec![None; plan.pools.len()],
            shape: plan,
            tile_pixels,
            pool: Vec::new(),
            pool_h: Vec::new(),
            threads: Arc::new(threads),
        })
    }

    /// How far (in input pixels) an output pixel's inputs reach: the overlap tiles need.
    pub fn radius(&self) -> usize {
        self.shape.radius
    }

    /// Input pixels per tile when the tile size is automatic.
    pub fn tile_pixels(&self) -> usize {
        self.tile_pixels
    }

    /// Tiles start at multiples of this.
    pub fn align(&self) -> usize {
        self.shape.align
    }

    /// Fixes the means of every global pooling to the whole frame's, tile by
    /// tile: pass `k` runs each tile up to pooling `k` (earlier poolings
    /// already fixed) and sums the part of the pooled map that the tile's
    /// core owns in the whole frame's map. With one tile (or no pooling)
    /// nothing is fixed: the run computes the means itself.
    pub fn prepare_frame(
        &mut self,
        w: usize,
        h: usize,
        tiles: &[crate::upscale::TileRect],
        input: &dyn Fn(&crate::upscale::TileRect) -> Tensor,
    ) -> Result<()> {
        self.fixed.iter_mut().for_each(|f| *f = None);
        if self.fixed.is_empty() || tiles.len() <= 1 {
            return Ok(());
        }
        let too_small = || EngineError::InvalidOption(format!("frame too small: {w}x{h}"));
        let (pw, ph) = (
            self.shape.padded(w).ok_or_else(too_small)?,
            self.shape.padded(h).ok_or_else(too_small)?,
        );
        let sizes = self.shape.sizes(pw, ph).ok_or_else(too_small)?;
        let b = self.shape.border;
        for k in 0..self.fixed.len() {
            let src = self.shape.steps[self.shape.pools[k]].inputs[0];
            let (fw, fh) = sizes[src].ok_or_else(too_small)?;
            let r = self.shape.res[src];
            // The whole map's index at frame coordinate v (of n), the ends
            // stretched to the map's ends: each tile owns [at(start), at(end)).
            let at = |v: usize, n: usize, padded: usize, f: usize| -> usize {
                if v == 0 {
                    0
                } else if v >= n {
                    f
                } else {
                    let shrink = (padded as f64 * r - f as f64) / 2.0;
                    (((v + b) as f64 * r - shrink).round().max(0.0) as usize).min(f)
                }
            };
            let c = self.shape.channels[src];
            let mut sum = vec![0.0f64; c];
            for t in tiles {
                let map = self.run_inner(input(t), Some(k))?;
                // The tile's map is a window of the whole map starting here
                // (whole numbers: tiles start at multiples of `align`).
                let (ox, oy) = (
                    (t.cx.0 as f64 * r).round() as usize,
                    (t.cy.0 as f64 * r).round() as usize,
                );
                let (x0, x1) = (at(t.x.0, w, pw, fw), at(t.x.1, w, pw, fw));
                let (y0, y1) = (at(t.y.0, h, ph, fh), at(t.y.1, h, ph, fh));
                if x0 < ox || y0 < oy || x1 - ox > map.w || y1 - oy > map.h {
                    return Err(EngineError::InvalidOption(format!(
                        "tile {:?} does not cover its share of pooling {k}; use a larger --tile",
                        (t.x, t.y)
                    )));
                }
                for y in y0 - oy..y1 - oy {
                    let row = map.row(y);
                    for px in row[(x0 - ox) * c..(x1 - ox) * c].chunks_exact(c) {
                        sum.iter_mut()
                            .zip(px)
                            .for_each(|(s, v)| *s += f64::from(*v));
                    }
                }
                self.give(Rc::new(map));
            }
            let n = (fw * fh) as f64;
            let means: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
            self.fixed[k] = Some(Tensor::from_hwc(1, 1, c, &means));
        }
        Ok(())
    }

    /// Worker threads used.
    pub fn threads(&self) -> usize {
        self.threads.current_num_threads()
    }

    fn take(&mut self, h: usize, w: usize, c: usize) -> Tensor {
        take_from(&mut self.pool, h, w, c)
    }

    fn give(&mut self, t: Rc<Tensor>) {
        if let Ok(t) = Rc::try_unwrap(t) {
            keep(&mut self.pool, t);
        }
    }

    /// Runs the model on an RGB tensor (values in [0, 1]); returns the RGB
    /// output (`scale` times the input's size), unclamped.
    pub fn run(&mut self, input: Tensor) -> Result<Tensor> {
        self.run_inner(input, None)
    }

    /// Runs the model, or (with `stop`) only up to global pooling `stop`,
    /// returning the map that pooling would average.
    fn run_inner(&mut self, input: Tensor, stop: Option<usize>) -> Result<Tensor> {
        if input.c != 3 || input.h == 0 || input.w == 0 {
            return Err(EngineError::InvalidOption(format!(
                "network input must be non-empty RGB, got {}x{}x{}",
                input.h, input.w, input.c
            )));
        }
        let (h, w) = (input.h, input.w);
        let too_small =
            || EngineError::InvalidOption(format!("image too small for this model: {w}x{h}"));
        let (ph, pw) = (
            self.shape.padded(h).ok_or_else(too_small)?,
            self.shape.padded(w).ok_or_else(too_small)?,
        );
        let threads = Arc::clone(&self.threads);
        if (ph, pw) == (h, w) {
            return threads.install(|| self.run_steps(input, stop));
        }
        // A network that consumes a border: extend the image by repeating its
        // edge pixels, run, and keep the part that covers the image.
        let b = self.shape.border;
        let mut padded = self.take(ph, pw, 3);
        for y in 0..ph {
            let src = input.row(y.saturating_sub(b).min(h - 1));
            let row = padded.row_mut(y);
            for (x, px) in row.chunks_exact_mut(3).enumerate() {
                let sx = x.saturating_sub(b).min(w - 1);
                px.copy_from_slice(&src[sx * 3..sx * 3 + 3]);
            }
        }
        self.give(Rc::new(input));
        let full = threads.install(|| self.run_steps(padded, stop))?;
        if stop.is_some() {
            return Ok(full);
        }
        let s = self.shape.scale;
        let mut out = self.take(h * s, w * s, 3);
        ops::crop(&full, 0, 0, &mut out);
        self.give(Rc::new(full));
        Ok(out)
    }

    fn run_steps(&mut self, input: Tensor, stop: Option<usize>) -> Result<Tensor> {
        let mut blobs: Vec<Option<Rc<Tensor>>> = vec![None; self.n_blobs];
        blobs[self.input] = Some(Rc::new(input));
        let mut half: Vec<Option<Tensor<u16>>> = vec![None; self.n_blobs];
        let steps = std::mem::take(&mut self.steps);
        let mut result = Ok(());
        let mut stopped = None;
        for (i, step) in steps.iter().enumerate() {
            if let Step::Pool { k, src, .. } = step
                && stop == Some(*k)
            {
                stopped = Some(*src);
                break;
            }
            let r = self.run_step(step, &mut blobs, &mut half);
            if let Err(e) = r {
                result = Err(e);
                break;
            }
            for b in step_inputs(step) {
                if self.last_use[b] == i && b != self.output {
                    if let Some(t) = blobs[b].take() {
                        self.give(t);
                    }
                    if let Some(t) = half[b].take() {
                        keep(&mut self.pool_h, t);
                    }
                }
            }
        }
        self.steps = steps;
        result?;
        let out = blobs[stopped.unwrap_or(self.output)]
            .take()
            .expect("output computed");
        for t in half.into_iter().flatten() {
            keep(&mut self.pool_h, t);
        }
        for t in blobs.into_iter().flatten() {
            self.give(t);
        }
        Ok(Rc::try_unwrap(out).unwrap_or_else(|rc| (*rc).clone()))
    }

    fn run_step(
        &mut self,
        step: &Step,
        blobs: &mut [Option<Rc<Tensor>>],
        half: &mut [Option<Tensor<u16>>],
    ) -> Result<()> {
        match step {
            Step::Conv {
                conv,
                src,
                dst,
                trim,
                half_out,
            } => {
                if let Some(x) = half[*src].take() {
                    self.conv_step(conv, &x, *dst, *trim, *half_out, blobs, half)?;
                    half[*src] = Some(x);
                } else {
                    let x = get(blobs, *src);
                    self.conv_step(conv, &*x, *dst, *trim, *half_out, blobs, half)?;
                }
            }
            Step::PRelu { slopes, src, dst } => {
                let x = blobs[*src].take().expect("blob computed before use");
                let mut t = Rc::try_unwrap(x).unwrap_or_else(|rc| (*rc).clone());
                ops::prelu(&mut t, slopes);
                blobs[*dst] = Some(Rc::new(t));
            }
            Step::PixelShuffle { r, src, dst } => {
                let x = get(blobs, *src);
                let mut out = self.take(x.h * r, x.w * r, x.c / (r * r));
                ops::pixel_shuffle(&x, *r, &mut out);
                blobs[*dst] = Some(Rc::new(out));
            }
            Step::Interp { p, src, dst } => {
                let x = get(blobs, *src);
                let (oh, ow) = ops::interp_size(p, x.h, x.w);
                if oh == 0 || ow == 0 {
                    return Err(EngineError::InvalidOption(format!(
                        "image too small to resize: {}x{}",
                        x.w, x.h
                    )));
                }
                let mut out = self.take(oh, ow, x.c);
                ops::interp(&x, p, &mut out);
                blobs[*dst] = Some(Rc::new(out));
            }
            Step::Add { a, b, coeffs, dst } => {
                let tb = get(blobs, *b);
                let mut t = self.owned(blobs, *a, &tb)?;
                ops::add_into(&mut t, &tb, *coeffs);
                blobs[*dst] = Some(Rc::new(t));
            }
            Step::Mul { a, b, dst } => {
                let tb = get(blobs, *b);
                let mut t = self.owned(blobs, *a, &tb)?;
                ops::mul_into(&mut t, &tb);
                blobs[*dst] = Some(Rc::new(t));
            }
            Step::Concat {
                srcs,
                dst,
                half_out,
            } => {
                let ts: Vec<Rc<Tensor>> = srcs.iter().map(|b| get(blobs, *b)).collect();
                let (h, w) = (ts[0].h, ts[0].w);
                if ts.iter().any(|t| (t.h, t.w) != (h, w)) {
                    return Err(invalid("concat of differently sized blobs".into()));
                }
                let c = ts.iter().map(|t| t.c).sum();
                let refs: Vec<&Tensor> = ts.iter().map(|t| &**t).collect();
                if *half_out {
                    let mut out = take_from(&mut self.pool_h, h, w, c);
                    ops::concat(&refs, &mut out);
                    half[*dst] = Some(out);
                } else {
                    let mut out = self.take(h, w, c);
                    ops::concat(&refs, &mut out);
                    blobs[*dst] = Some(Rc::new(out));
                }
            }
            Step::Crop { b, src, dst } => {
                let x = get(blobs, *src);
                let Some((w, h)) = b.apply(x.w, x.h) else {
                    return Err(EngineError::InvalidOption(format!(
                        "image too small for this model: crop of {}x{}",
                        x.w, x.h
                    )));
                };
                let mut out = self.take(h, w, x.c);
                ops::crop(&x, b.top, b.left, &mut out);
                blobs[*dst] = Some(Rc::new(out));
            }
            Step::Pool { k, src, dst } => {
                let means = match &self.fixed[*k] {
                    Some(m) => m.clone(),
                    None => ops::global_avg_pool(&get(blobs, *src)),
                };
                blobs[*dst] = Some(Rc::new(means));
            }
            Step::Dense { d, src, dst } => {
                let x = get(blobs, *src);
                blobs[*dst] = Some(Rc::new(ops::dense(&x, d)));
            }
            Step::Split { src, dsts } => {
                let x = get(blobs, *src);
                for d in dsts {
                    blobs[*d] = Some(x.clone());
                }
            }
        }
        Ok(())
    }

    /// Blob `a` to update in place (copied if another reader shares it),
    /// checked to combine with `b`.
    fn owned(&mut self, blobs: &mut [Option<Rc<Tensor>>], a: usize, b: &Tensor) -> Result<Tensor> {
        let ta = blobs[a].take().expect("blob computed before use");
        if (ta.h, ta.w) != (b.h, b.w) && (b.h, b.w) != (1, 1) {
            return Err(invalid(format!(
                "combining {}x{} and {}x{}",
                ta.w, ta.h, b.w, b.h
            )));
        }
        Ok(Rc::try_unwrap(ta).unwrap_or_else(|rc| (*rc).clone()))
    }

    #[allow(clippy::too_many_arguments)]
    fn conv_step<E: Elem>(
        &mut self,
        conv: &ConvImpl,
        x: &Tensor<E>,
        dst: usize,
        trim: usize,
        half_out: bool,
        blobs: &mut [Option<Rc<Tensor>>],
        half: &mut [Option<Tensor<u16>>],
    ) -> Result<()> {
        let c = conv_out(conv);
        let (h, w) = match conv {
            ConvImpl::Generic(g) => match (g.out_len(x.h), g.out_len(x.w)) {
                (Some(h), Some(w)) => (h, w),
                _ => {
                    return Err(EngineError::InvalidOption(format!(
                        "image too small for this model: {}x{}",
                        x.w, x.h
                    )));
                }
            },
            _ => (x.h, x.w),
        };
        if h <= 2 * trim || w <= 2 * trim {
            return Err(EngineError::InvalidOption(format!(
                "image too small for this model: {}x{}",
                x.w, x.h
            )));
        }
        if let ConvImpl::Generic(g) = conv {
            // The generic kernel stores f32 only.
            let mut out = take_from(&mut self.pool, h, w, c);
            g.forward(x, &mut out);
            blobs[dst] = Some(Rc::new(out));
            return Ok(());
        }
        if half_out {
            let mut out = take_from(&mut self.pool_h, h, w, c);
            conv_forward(conv, x, &mut out);
            half[dst] = Some(trimmed(&mut self.pool_h, out, trim));
        } else {
            let mut out = take_from(&mut self.pool, h, w, c);
            conv_forward(conv, x, &mut out);
            blobs[dst] = Some(Rc::new(trimmed(&mut self.pool, out, trim)));
        }
        Ok(())
    }

    /// Returns a finished output tensor to the pool for the next frame.
    pub fn recycle(&mut self, t: Tensor) {
        self.give(Rc::new(t));
    }
}

/// `t` without `trim` pixels on each side (the padded tensor goes back to the pool).
fn trimmed<E: Elem>(pool: &mut Vec<Tensor<E>>, t: Tensor<E>, trim: usize) -> Tensor<E> {
    if trim == 0 {
        return t;
    }
    let mut out = take_from(pool, t.h - 2 * trim, t.w - 2 * trim, t.c);
    ops::crop(&t, trim, trim, &mut out);
    keep(pool, t);
    out
}

/// A pooled tensor of that shape, or a new zero one. Recycled tensors keep a
/// zero border: kernels only ever write the interior.
fn take_from<E: Elem>(pool: &mut Vec<Tensor<E>>, h: usize, w: usize, c: usize) -> Tensor<E> {
    match pool.iter().position(|t| (t.h, t.w, t.c) == (h, w, c)) {
        Some(i) => pool.swap_remove(i),
        None => Tensor::zeros(h, w, c),
    }
}

/// Most bytes a pool of freed tensors holds: reuse saves allocations, but
/// for a heavy model (x4plus's 4x-resolution layers are hundreds of MB per
/// tensor) a pool of 8 would hold gigabytes beyond the tile's budget.
const POOL_BYTES: usize = crate::plan::TILE_BUDGET_BYTES / 2;

/// Returns a tensor to a pool of at most 8 and at most [`POOL_BYTES`],
/// dropping the oldest first (1x1 vectors are not worth a place).
fn keep<E: Elem>(pool: &mut Vec<Tensor<E>>, t: Tensor<E>) {
    if t.h * t.w <= 1 {
        return;
    }
    let bytes = |t: &Tensor<E>| t.data.len() * std::mem::size_of::<E>();
    if bytes(&t) > POOL_BYTES {
        return;
    }
    pool.push(t);
    while pool.len() > 8 || pool.iter().map(bytes).sum::<usize>() > POOL_BYTES {
        pool.remove(0);
    }
}

fn conv_forward<EI: Elem, EO: Elem>(conv: &ConvImpl, x: &Tensor<EI>, out: &mut Tensor<EO>) {
    match conv {
        ConvImpl::Winograd(c) => c.forward(x, out),
        ConvImpl::Direct(c) => c.forward(x, out),
        ConvImpl::Generic(_) => unreachable!("generic convolutions run in conv_step"),
    }
}

fn conv_out(c: &ConvImpl) -> usize {
    match c {
        ConvImpl::Winograd(w) => w.out_c(),
        ConvImpl::Direct(d) => d.out_c(),
        ConvImpl::Generic(g) => g.out_c(),
    }
}

fn step_inputs(s: &Step) -> Vec<usize> {
    match s {
        Step::Conv { src, .. }
        | Step::PRelu { src, .. }
        | Step::PixelShuffle { src, .. }
        | Step::Interp { src, .. }
        | Step::Crop { src, .. }
        | Step::Pool { src, .. }
        | Step::Dense { src, .. }
        | Step::Split { src, .. } => vec![*src],
        Step::Add { a, b, .. } | Step::Mul { a, b, .. } => vec![*a, *b],
        Step::Concat { srcs, .. } => srcs.clone(),
    }
}
