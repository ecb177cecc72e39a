//! A model's execution plan, shared by every backend.
//!
//! Built once from the parsed graph: the single input and output are found,
//! channel counts are checked, each convolution absorbs the activation that
//! follows it, and the last reader of every blob is recorded so backends can
//! free (or reuse) buffers as soon as possible. It also says how much
//! context a tile needs, how much memory a tile pixel costs (which the tiler
//! turns into tile sizes), and, for networks whose convolutions do not pad
//! (Real-CUGAN), how much border the input needs so that the output covers
//! the whole image.

use crate::error::{EngineError, Result};
use crate::model::ncnn::{Activation, Borders, Conv, Dense, Graph, Interp, Op};

/// Most context (input pixels on each side) a tile is given. A model whose
/// receptive field is wider (x4plus: some 350 pixels through 350 layers) is
/// cut with this much overlap: measured on x4plus, a tile's core then lies
/// within 60 dB (at most 2 levels of 255) of a whole-frame run even at its
/// edges, where 10 px (Real-ESRGAN's own tiling) leaves 30 dB seams, 32 px
/// 44 dB and 80 px none at all.
pub const MAX_CONTEXT: usize = 64;

/// Activation memory one tile may use when the tile size is automatic.
pub const TILE_BUDGET_BYTES: usize = 512 << 20;

/// What a step computes.
#[derive(Debug, Clone)]
pub enum PlanOp {
    /// Convolution, optionally followed by a fused PReLU (one slope per output channel).
    Conv {
        /// Kernel and weights.
        conv: Conv,
        /// Fused PReLU slopes, expanded to one per output channel.
        slopes: Option<Vec<f32>>,
    },
    /// Transposed convolution with an optional fused PReLU.
    Deconv {
        /// Kernel and weights (`[out_c][in_c][kh][kw]`).
        conv: Conv,
        /// Fused PReLU slopes, one per output channel.
        slopes: Option<Vec<f32>>,
    },
    /// Stand-alone PReLU (slopes expanded to one per channel).
    PRelu {
        /// Slopes.
        slopes: Vec<f32>,
    },
    /// Depth-to-space by `r`.
    PixelShuffle {
        /// Factor.
        r: usize,
    },
    /// Resize.
    Interp(Interp),
    /// `coeffs[0] * inputs[0] + coeffs[1] * inputs[1]`.
    Add {
        /// Operand weights.
        coeffs: [f32; 2],
    },
    /// `inputs[0] * inputs[1]`, the second possibly 1x1 (one factor per channel).
    Mul,
    /// The inputs joined along the channel axis.
    Concat,
    /// Borders cut off.
    Crop(Borders),
    /// Mean of each channel (1x1 output).
    GlobalAvgPool,
    /// Fully connected layer on a 1x1 input.
    Dense(Dense),
    /// Copies `inputs[0]` to every output.
    Split,
}

/// One step: an operation over numbered blobs.
#[derive(Debug, Clone)]
pub struct PlanStep {
    /// The operation.
    pub op: PlanOp,
    /// Blobs read.
    pub inputs: Vec<usize>,
    /// Blobs written.
    pub outputs: Vec<usize>,
}

/// The validated, fused plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Steps in execution order.
    pub steps: Vec<PlanStep>,
    /// Number of blob ids.
    pub n_blobs: usize,
    /// The RGB input blob.
    pub input: usize,
    /// The RGB output blob.
    pub output: usize,
    /// Channels of every blob.
    pub channels: Vec<usize>,
    /// For each blob, the index of the last step that reads it.
    pub last_use: Vec<usize>,
    /// Context a tile is given on each side: the receptive field (input
    /// pixels that can influence an output pixel), at most [`MAX_CONTEXT`].
    pub radius: usize,
    /// Peak bytes of f32 activations alive at once, per input pixel.
    pub bytes_per_pixel: usize,
    /// Output pixels per input pixel along each axis.
    pub scale: usize,
    /// Input pixels the network consumes on each side (0 for networks that
    /// pad their convolutions): the input is extended by this much (edge
    /// pixels repeated) so that the output covers the whole image.
    pub border: usize,
    /// The global average poolings (step indices, in order): each makes
    /// every output pixel depend on the whole image, so tiles of a frame
    /// share the means the whole frame gives (see `upscale.rs`).
    pub pools: Vec<usize>,
    /// Each blob's resolution relative to the input (0 for 1x1 vectors).
    pub res: Vec<f64>,
    /// Tiles start at multiples of this many input pixels, so that every
    /// strided layer sees them in the phase it sees the whole frame.
    pub align: usize,
}

fn invalid(msg: String) -> EngineError {
    EngineError::ModelInvalid(msg)
}

fn check_slopes(name: &str, s: &[f32], c: usize) -> Result<()> {
    if s.len() != 1 && s.len() != c {
        return Err(invalid(format!(
            "layer {name}: {} slopes for {c} channels",
            s.len()
        )));
    }
    Ok(())
}

fn expand(s: &[f32], c: usize) -> Vec<f32> {
    if s.len() == 1 {
        vec![s[0]; c]
    } else {
        s.to_vec()
    }
}

/// A fused activation as PReLU slopes, if it is one.
fn act_slopes(name: &str, act: Activation, c: usize) -> Result<Option<Vec<f32>>> {
    Ok(match act {
        Activation::Identity => None,
        Activation::Relu => Some(vec![0.0; c]),
        Activation::LeakyRelu(s) => Some(vec![s; c]),
        Activation::Sigmoid => {
            return Err(EngineError::ModelUnsupported(format!(
                "layer {name}: sigmoid after a convolution"
            )));
        }
    })
}

impl Plan {
    /// Validates `graph` and builds its plan.
    pub fn new(graph: &Graph) -> Result<Self> {
        let n_blobs = graph.blobs.len();
        let mut consumers = vec![0usize; n_blobs];
        for l in &graph.layers {
            for &b in &l.inputs {
                consumers[b] += 1;
            }
        }
        let inputs: Vec<usize> = graph
            .layers
            .iter()
            .filter(|l| matches!(l.op, Op::Input))
            .map(|l| l.outputs[0])
            .collect();
        let [input] = inputs[..] else {
            return Err(invalid(format!(
                "expected one Input layer, found {}",
                inputs.len()
            )));
        };
        let outputs: Vec<usize> = (0..n_blobs).filter(|b| consumers[*b] == 0).collect();
        let [output] = outputs[..] else {
            return Err(invalid(format!(
                "expected one graph output, found {}",
                outputs.len()
            )));
        };

        let mut channels = vec![0usize; n_blobs];
        channels[input] = 3;
        // Each blob's resolution relative to the input (0 for 1x1 vectors).
        let mut res = vec![1.0f64; n_blobs];
        // Input pixels that influence a blob's pixel, on each side.
        let mut reach = vec![0.0f64; n_blobs];
        let mut steps = Vec::new();
        let mut fused = vec![false; graph.layers.len()];
        for (i, l) in graph.layers.iter().enumerate() {
            if fused[i] {
                continue;
            }
            let c_in = l.inputs.first().map(|s| channels[*s]).unwrap_or(0);
            let r_in = l.inputs.first().map_or(1.0, |s| res[*s]);
            let reach_in = l.inputs.iter().map(|s| reach[*s]).fold(0.0, f64::max);
            let (op, out_c, r_out, reach_out) = match &l.op {
                Op::Input => continue,
                Op::Split => (PlanOp::Split, c_in, r_in, reach_in),
                Op::Convolution(conv) | Op::Deconvolution(conv) => {
                    let transposed = matches!(l.op, Op::Deconvolution(_));
                    if conv.in_c != c_in {
                        return Err(invalid(format!(
                            "layer {}: expects {} channels, gets {c_in}",
                            l.name, conv.in_c
                        )));
                    }
                    let mut step_outputs = l.outputs.clone();
                    // An activation of the model file is a PReLU with one slope.
                    let mut slopes = act_slopes(&l.name, conv.act, conv.out_c)?;
                    let dst = l.outputs[0];
                    // Else fuse a PReLU that is this convolution's only reader.
                    if slopes.is_none()
                        && consumers[dst] == 1
                        && let Some((j, next)) = graph
                            .layers
                            .iter()
                            .enumerate()
                            .skip(i + 1)
                            .find(|(_, n)| n.inputs.contains(&dst))
                        && let Op::PRelu { slopes: s } = &next.op
                    {
                        check_slopes(&next.name, s, conv.out_c)?;
                        slopes = Some(expand(s, conv.out_c));
                        fused[j] = true;
                        step_outputs = next.outputs.clone();
                    }
                    let (r_out, grow) = if transposed {
                        let r = r_in * conv.stride as f64;
                        (r, (conv.kw as f64 / conv.stride as f64 / 2.0).ceil() / r_in)
                    } else {
                        (r_in / conv.stride as f64, (conv.kw / 2) as f64 / r_in)
                    };
                    for &o in &step_outputs {
                        channels[o] = conv.out_c;
                        res[o] = r_out;
                        reach[o] = reach_in + grow;
                    }
                    let conv = conv.clone();
                    steps.push(PlanStep {
                        op: if transposed {
                            PlanOp::Deconv { conv, slopes }
                        } else {
                            PlanOp::Conv { conv, slopes }
                        },
                        inputs: l.inputs.clone(),
                        outputs: step_outputs,
                    });
                    continue;
                }
                Op::PRelu { slopes } => {
                    check_slopes(&l.name, slopes, c_in)?;
                    let op = PlanOp::PRelu {
                        slopes: expand(slopes, c_in),
                    };
                    (op, c_in, r_in, reach_in)
                }
                Op::PixelShuffle { factor } => {
                    let rr = factor * factor;
                    if c_in % rr != 0 {
                        return Err(invalid(format!(
                            "layer {}: {c_in} channels do not shuffle by {factor}",
                            l.name
                        )));
                    }
                    let op = PlanOp::PixelShuffle { r: *factor };
                    (op, c_in / rr, r_in * *factor as f64, reach_in)
                }
                Op::Interp(p) => {
                    let r = r_in * f64::from(p.scale_h.max(p.scale_w));
                    (PlanOp::Interp(*p), c_in, r, reach_in + 2.0 / r.min(r_in))
                }
                Op::Add { .. } | Op::Mul => {
                    let (a, b) = (l.inputs[0], l.inputs[1]);
                    let mul = matches!(l.op, Op::Mul);
                    // A product may scale each channel by a 1x1 operand.
                    let per_channel = mul && res[b] == 0.0;
                    if channels[a] != channels[b] || (!per_channel && res[a] != res[b]) {
                        return Err(invalid(format!(
                            "layer {}: combines {} and {} channels of different shapes",
                            l.name, channels[a], channels[b]
                        )));
                    }
                    let op = match &l.op {
                        Op::Add { coeffs } => PlanOp::Add { coeffs: *coeffs },
                        _ => PlanOp::Mul,
                    };
                    (op, channels[a], res[a], reach_in)
                }
                Op::Concat => {
                    if l.inputs.iter().any(|b| res[*b] != r_in) {
                        return Err(invalid(format!(
                            "layer {}: concatenates blobs of different resolutions",
                            l.name
                        )));
                    }
                    let c = l.inputs.iter().map(|b| channels[*b]).sum();
                    (PlanOp::Concat, c, r_in, reach_in)
                }
                Op::Crop(b) => (PlanOp::Crop(*b), c_in, r_in, reach_in),
                Op::GlobalAvgPool => (PlanOp::GlobalAvgPool, c_in, 0.0, 0.0),
                Op::InnerProduct(d) => {
                    if d.in_c != c_in || r_in != 0.0 {
                        return Err(invalid(format!(
                            "layer {}: a fully connected layer needs a 1x1 input of {} channels",
                            l.name, d.in_c
                        )));
                    }
                    (PlanOp::Dense(d.clone()), d.out_c, 0.0, 0.0)
                }
            };
            if r_in == 0.0 && !matches!(op, PlanOp::Split | PlanOp::Dense(_)) {
                return Err(invalid(format!(
                    "layer {}: an image operation on a 1x1 vector",
                    l.name
                )));
            }
            for &o in &l.outputs {
                channels[o] = out_c;
                res[o] = r_out;
                reach[o] = reach_out;
            }
            steps.push(PlanStep {
                op,
                inputs: l.inputs.clone(),
                outputs: l.outputs.clone(),
            });
        }
        if channels[output] != 3 || res[output] < 1.0 {
            return Err(invalid(format!(
                "the output has {} channels, not RGB",
                channels[output]
            )));
        }
        let mut last_use = vec![0usize; n_blobs];
        for (i, s) in steps.iter().enumerate() {
            for &b in &s.inputs {
                last_use[b] = i;
            }
        }
        let bytes_per_pixel = peak_bytes(&steps, &channels, &res, &last_use, input);
        let pools = (0..steps.len())
            .filter(|i| matches!(steps[*i].op, PlanOp::GlobalAvgPool))
            .collect();
        let align = (1..=64)
            .find(|a| {
                res.iter()
                    .all(|r| ((r * *a as f64) - (r * *a as f64).round()).abs() < 1e-9)
            })
            .ok_or_else(|| invalid("a resolution that no tile alignment fits".into()))?;
        let mut plan = Self {
            steps,
            n_blobs,
            input,
            output,
            channels,
            last_use,
            radius: 0,
            bytes_per_pixel,
            scale: 1,
            border: 0,
            pools,
            res,
            align,
        };
        let (scale, border) = plan.geometry()?;
        plan.scale = scale;
        plan.border = border;
        plan.radius = (reach[output].ceil() as usize).max(border).min(MAX_CONTEXT);
        Ok(plan)
    }

    /// Input pixels per tile when the tile size is automatic: what fits
    /// [`TILE_BUDGET_BYTES`], and never more than `cap`.
    pub fn auto_tile_pixels(&self, cap: usize) -> usize {
        (TILE_BUDGET_BYTES / self.bytes_per_pixel.max(1)).clamp(4096, cap)
    }

    /// The output size for a `w x h` input, or `None` where the network
    /// cannot take that size (an image too small for its borders, halves
    /// that do not meet again).
    pub fn output_size(&self, w: usize, h: usize) -> Option<(usize, usize)> {
        self.sizes(w, h)?[self.output]
    }

    /// Every blob's size for a `w x h` input (`None` as in [`Self::output_size`]).
    pub fn sizes(&self, w: usize, h: usize) -> Option<Vec<Option<(usize, usize)>>> {
        let mut size: Vec<Option<(usize, usize)>> = vec![None; self.n_blobs];
        size[self.input] = Some((w, h));
        for s in &self.steps {
            let (w, h) = size[s.inputs[0]]?;
            let out = match &s.op {
                PlanOp::Conv { conv, .. } => {
                    let o = |n: usize| {
                        let n = (n + 2 * conv.pad).checked_sub(conv.kw)?;
                        Some(n / conv.stride + 1)
                    };
                    (o(w)?, o(h)?)
                }
                PlanOp::Deconv { conv, .. } => {
                    let o = |n: usize| {
                        ((n - 1) * conv.stride + conv.kw)
                            .checked_sub(2 * conv.pad)
                            .filter(|v| *v > 0)
                    };
                    (o(w)?, o(h)?)
                }
                PlanOp::PixelShuffle { r } => (w * r, h * r),
                PlanOp::Interp(p) => {
                    let (oh, ow) = crate::nn::ops::interp_size(p, h, w);
                    (oh > 0 && ow > 0).then_some((ow, oh))?
                }
                PlanOp::Add { .. } | PlanOp::Concat => {
                    if s.inputs.iter().any(|b| size[*b] != Some((w, h))) {
                        return None;
                    }
                    (w, h)
                }
                PlanOp::Mul => {
                    let b = size[s.inputs[1]]?;
                    if b != (w, h) && b != (1, 1) {
                        return None;
                    }
                    (w, h)
                }
                PlanOp::Crop(b) => b.apply(w, h)?,
                PlanOp::GlobalAvgPool | PlanOp::Dense(_) => (1, 1),
                PlanOp::PRelu { .. } | PlanOp::Split => (w, h),
            };
            for &o in &s.outputs {
                size[o] = Some(out);
            }
        }
        Some(size)
    }

    /// The padded input size for an image of `n` pixels along one axis:
    /// `n` plus the border on both sides plus the fewest extra pixels (at
    /// the end) that the network's strides need.
    pub fn padded(&self, n: usize) -> Option<usize> {
        let base = n + 2 * self.border;
        (0..16)
            .map(|e| base + e)
            .find(|m| self.output_size(*m, *m).is_some())
    }

    /// The upscale factor and the border, found by running the shape rules
    /// on a range of sizes: output = scale * (input - 2 * border).
    fn geometry(&self) -> Result<(usize, usize)> {
        let fits: Vec<(usize, usize)> = (48..=96)
            .filter_map(|n| self.output_size(n, n).map(|(w, _)| (n, w)))
            .collect();
        let bad = |why: &str| invalid(format!("the network's sizes do not add up: {why}"));
        let (&(n1, o1), &(n2, o2)) = match (fits.first(), fits.last()) {
            (Some(a), Some(b)) if a.0 < b.0 => (a, b),
            _ => return Err(bad("no input size between 48 and 96 pixels fits")),
        };
        if (o2 - o1) % (n2 - n1) != 0 || o2 <= o1 {
            return Err(bad("not a whole upscale factor"));
        }
        let scale = (o2 - o1) / (n2 - n1);
        let lost = (scale * n1).checked_sub(o1).ok_or_else(|| bad("grows"))?;
        if lost % (2 * scale) != 0 || fits.iter().any(|(n, o)| scale * n - lost != *o) {
            return Err(bad("an uneven border"));
        }
        Ok((scale, lost / (2 * scale)))
    }
}

/// The most f32 activation bytes alive at once while the steps run, per
/// input pixel: every blob from the step that writes it to its last reader
/// (split outputs share their source's memory).
fn peak_bytes(
    steps: &[PlanStep],
    channels: &[usize],
    res: &[f64],
    last_use: &[usize],
    input: usize,
) -> usize {
    let size = |b: usize| channels[b] as f64 * res[b] * res[b] * 4.0;
    let mut live = size(input);
    let mut peak = live;
    let mut alive = vec![false; channels.len()];
    alive[input] = true;
    for (i, s) in steps.iter().enumerate() {
        if !matches!(s.op, PlanOp::Split) {
            for &o in &s.outputs {
                live += size(o);
                alive[o] = true;
            }
        }
        peak = peak.max(live);
        for &b in &s.inputs {
            if last_use[b] == i && alive[b] {
                live -= size(b);
                alive[b] = false;
            }
        }
        if let PlanOp::Split = s.op {
            // The outputs alias the input: account the memory to the last of them.
            let last = s.outputs.iter().map(|o| last_use[*o]).max().unwrap_or(i);
            if last > i {
                let keeper = *s
                    .outputs
                    .iter()
                    .max_by_key(|o| last_use[**o])
                    .expect("a split has outputs");
                if !alive[keeper] {
                    alive[keeper] = true;
                    live += size(keeper);
                }
            }
        }
    }
    peak.ceil() as usize
}
