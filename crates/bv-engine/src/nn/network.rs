//! A compiled model: the graph turned into a list of steps over tensors.
//!
//! Compilation validates channel counts once, fuses each convolution with the
//! PReLU that follows it, and picks the convolution kernel (Winograd for 3x3
//! layers of vector-friendly width, direct otherwise). Running keeps freed
//! activations in a small pool so steady-state frames allocate nothing large.
//! A convolution whose output is read only by other convolutions stores it in
//! half precision (docs/decisions/0003-half-precision-activations.md).

use std::rc::Rc;
use std::sync::Arc;

use super::direct::Direct;
use super::ops;
use super::tensor::{Elem, Tensor};
use super::winograd::Winograd;
use crate::error::{EngineError, Result};
use crate::model::ncnn::{Graph, Interp};
use crate::plan::{Plan, PlanOp};

enum ConvImpl {
    Winograd(Winograd),
    Direct(Direct),
}

enum Step {
    Conv {
        conv: ConvImpl,
        src: usize,
        dst: usize,
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
    Concat {
        srcs: Vec<usize>,
        dst: usize,
        /// Store the output in half precision (all its readers are convolutions).
        half_out: bool,
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
    /// Context a tile needs, in each direction.
    radius: usize,
    /// Input pixels per automatic tile.
    tile_pixels: usize,
    pool: Vec<Tensor>,
    pool_h: Vec<Tensor<u16>>,
    threads: Arc<rayon::ThreadPool>,
}

fn invalid(msg: String) -> EngineError {
    EngineError::ModelInvalid(msg)
}

impl Network {
    /// Compiles `graph` to run with `threads` worker threads (0 = one per core).
    pub fn compile(graph: &Graph, threads: usize) -> Result<Self> {
        let plan = Plan::new(graph)?;
        let mut steps = Vec::with_capacity(plan.steps.len());
        for ps in &plan.steps {
            let (src, dst) = (ps.inputs[0], ps.outputs[0]);
            steps.push(match &ps.op {
                PlanOp::Conv { conv, slopes } => {
                    let conv_impl = if Winograd::supports(conv) {
                        ConvImpl::Winograd(Winograd::new(conv, slopes.clone()))
                    } else if Direct::supports(conv) {
                        ConvImpl::Direct(Direct::new(conv, slopes.clone()))
                    } else {
                        return Err(EngineError::ModelUnsupported(format!(
                            "kernel {}x{}",
                            conv.kh, conv.kw
                        )));
                    };
                    // Half precision is decided below, once every reader is known.
                    Step::Conv {
                        conv: conv_impl,
                        src,
                        dst,
                        half_out: false,
                    }
                }
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
                PlanOp::Concat => Step::Concat {
                    srcs: ps.inputs.clone(),
                    dst,
                    half_out: false,
                },
                PlanOp::Split => Step::Split {
                    src,
                    dsts: ps.outputs.clone(),
                },
            });
        }
        let (n_blobs, input, output, radius) = (plan.n_blobs, plan.input, plan.output, plan.radius);
        let tile_pixels = plan.auto_tile_pixels(crate::upscale::AUTO_TILE_PIXELS);
        let last_use = plan.last_use;
        let mut only_convs_read = vec![true; n_blobs];
        for s in &steps {
            for b in step_inputs(s) {
                only_convs_read[b] &= matches!(s, Step::Conv { .. });
            }
        }
        for s in &mut steps {
            if let Step::Conv { dst, half_out, .. } | Step::Concat { dst, half_out, .. } = s {
                *half_out = only_convs_read[*dst] && *dst != output;
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
            radius,
            tile_pixels,
            pool: Vec::new(),
            pool_h: Vec::new(),
            threads: Arc::new(threads),
        })
    }

    /// How far (in input pixels) an output pixel's inputs reach: the overlap tiles need.
    pub fn radius(&self) -> usize {
        self.radius
    }

    /// Input pixels per tile when the tile size is automatic.
    pub fn tile_pixels(&self) -> usize {
        self.tile_pixels
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

    /// Runs the model on an RGB tensor (values in [0, 1]); returns the RGB output, unclamped.
    pub fn run(&mut self, input: Tensor) -> Result<Tensor> {
        if input.c != 3 || input.h == 0 || input.w == 0 {
            return Err(EngineError::InvalidOption(format!(
                "network input must be non-empty RGB, got {}x{}x{}",
                input.h, input.w, input.c
            )));
        }
        let threads = Arc::clone(&self.threads);
        threads.install(|| self.run_steps(input))
    }

    fn run_steps(&mut self, input: Tensor) -> Result<Tensor> {
        let mut blobs: Vec<Option<Rc<Tensor>>> = vec![None; self.n_blobs];
        blobs[self.input] = Some(Rc::new(input));
        let mut half: Vec<Option<Tensor<u16>>> = vec![None; self.n_blobs];
        let get = |blobs: &[Option<Rc<Tensor>>], b: usize| {
            blobs[b].clone().expect("blob computed before use")
        };
        let steps = std::mem::take(&mut self.steps);
        let mut result = Ok(());
        for (i, step) in steps.iter().enumerate() {
            match step {
                Step::Conv {
                    conv,
                    src,
                    dst,
                    half_out,
                } => {
                    let c = conv_out(conv);
                    if let Some(x) = &half[*src] {
                        if *half_out {
                            let mut out = take_from(&mut self.pool_h, x.h, x.w, c);
                            conv_forward(conv, x, &mut out);
                            half[*dst] = Some(out);
                        } else {
                            let mut out = take_from(&mut self.pool, x.h, x.w, c);
                            conv_forward(conv, x, &mut out);
                            blobs[*dst] = Some(Rc::new(out));
                        }
                    } else {
                        let x = get(&blobs, *src);
                        if *half_out {
                            let mut out = take_from(&mut self.pool_h, x.h, x.w, c);
                            conv_forward(conv, &*x, &mut out);
                            half[*dst] = Some(out);
                        } else {
                            let mut out = take_from(&mut self.pool, x.h, x.w, c);
                            conv_forward(conv, &*x, &mut out);
                            blobs[*dst] = Some(Rc::new(out));
                        }
                    }
                }
                Step::PRelu { slopes, src, dst } => {
                    let x = blobs[*src].take().expect("blob computed before use");
                    let mut t = Rc::try_unwrap(x).unwrap_or_else(|rc| (*rc).clone());
                    ops::prelu(&mut t, slopes);
                    blobs[*dst] = Some(Rc::new(t));
                }
                Step::PixelShuffle { r, src, dst } => {
                    let x = get(&blobs, *src);
                    let mut out = self.take(x.h * r, x.w * r, x.c / (r * r));
                    ops::pixel_shuffle(&x, *r, &mut out);
                    blobs[*dst] = Some(Rc::new(out));
                }
                Step::Interp { p, src, dst } => {
                    let x = get(&blobs, *src);
                    let (oh, ow) = ops::interp_size(p, x.h, x.w);
                    if oh == 0 || ow == 0 {
                        result = Err(EngineError::InvalidOption(format!(
                            "image too small to resize: {}x{}",
                            x.w, x.h
                        )));
                        break;
                    }
                    let mut out = self.take(oh, ow, x.c);
                    ops::interp(&x, p, &mut out);
                    blobs[*dst] = Some(Rc::new(out));
                }
                Step::Add { a, b, coeffs, dst } => {
                    let (ta, tb) = (get(&blobs, *a), get(&blobs, *b));
                    if (ta.h, ta.w) != (tb.h, tb.w) {
                        result = Err(invalid(format!(
                            "add of {}x{} and {}x{}",
                            ta.w, ta.h, tb.w, tb.h
                        )));
                        break;
                    }
                    drop(ta);
                    let x = blobs[*a].take().expect("blob computed before use");
                    let mut t = Rc::try_unwrap(x).unwrap_or_else(|rc| (*rc).clone());
                    ops::add_into(&mut t, &tb, *coeffs);
                    blobs[*dst] = Some(Rc::new(t));
                }
                Step::Concat {
                    srcs,
                    dst,
                    half_out,
                } => {
                    let ts: Vec<Rc<Tensor>> = srcs.iter().map(|b| get(&blobs, *b)).collect();
                    let (h, w) = (ts[0].h, ts[0].w);
                    if ts.iter().any(|t| (t.h, t.w) != (h, w)) {
                        result = Err(invalid("concat of differently sized blobs".into()));
                        break;
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
                Step::Split { src, dsts } => {
                    let x = get(&blobs, *src);
                    for d in dsts {
                        blobs[*d] = Some(x.clone());
                    }
                }
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
        let out = blobs[self.output].take().expect("output computed");
        for t in blobs.into_iter().flatten() {
            self.give(t);
        }
        Ok(Rc::try_unwrap(out).unwrap_or_else(|rc| (*rc).clone()))
    }

    /// Returns a finished output tensor to the pool for the next frame.
    pub fn recycle(&mut self, t: Tensor) {
        self.give(Rc::new(t));
    }
}

/// A pooled tensor of that shape, or a new zero one. Recycled tensors keep a
/// zero border: kernels only ever write the interior.
fn take_from<E: Elem>(pool: &mut Vec<Tensor<E>>, h: usize, w: usize, c: usize) -> Tensor<E> {
    match pool.iter().position(|t| (t.h, t.w, t.c) == (h, w, c)) {
        Some(i) => pool.swap_remove(i),
        None => Tensor::zeros(h, w, c),
    }
}

/// Returns a tensor to a pool of at most 8.
fn keep<E: Elem>(pool: &mut Vec<Tensor<E>>, t: Tensor<E>) {
    if pool.len() >= 8 {
        pool.remove(0);
    }
    pool.push(t);
}

fn conv_forward<EI: Elem, EO: Elem>(conv: &ConvImpl, x: &Tensor<EI>, out: &mut Tensor<EO>) {
    match conv {
        ConvImpl::Winograd(c) => c.forward(x, out),
        ConvImpl::Direct(c) => c.forward(x, out),
    }
}

fn conv_out(c: &ConvImpl) -> usize {
    match c {
        ConvImpl::Winograd(w) => w.out_c(),
        ConvImpl::Direct(d) => d.out_c(),
    }
}

fn step_inputs(s: &Step) -> Vec<usize> {
    match s {
        Step::Conv { src, .. }
        | Step::PRelu { src, .. }
        | Step::PixelShuffle { src, .. }
        | Step::Interp { src, .. }
        | Step::Split { src, .. } => vec![*src],
        Step::Add { a, b, .. } => vec![*a, *b],
        Step::Concat { srcs, .. } => srcs.clone(),
    }
}
