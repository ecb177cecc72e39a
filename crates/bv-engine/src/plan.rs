//! A model's execution plan, shared by every backend.
//!
//! Built once from the parsed graph: the single input and output are found,
//! channel counts are checked, each convolution absorbs the PReLU that is its
//! only reader, and the last reader of every blob is recorded so backends can
//! free (or reuse) buffers as soon as possible. It also says how much
//! context a tile needs and how much memory a tile pixel costs, which the
//! tiler turns into tile sizes.

use crate::error::{EngineError, Result};
use crate::model::ncnn::{Activation, Conv, Graph, Interp, Op};

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
    /// The inputs joined along the channel axis.
    Concat,
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
        // Each blob's area relative to the input (resizes and shuffles change it).
        let mut area = vec![1.0f64; n_blobs];
        let mut steps = Vec::new();
        let mut radius = 0;
        let mut fused = vec![false; graph.layers.len()];
        for (i, l) in graph.layers.iter().enumerate() {
            if fused[i] {
                continue;
            }
            let c_in = l.inputs.first().map(|s| channels[*s]).unwrap_or(0);
            let a_in = l.inputs.first().map_or(1.0, |s| area[*s]);
            let (op, out_c) = match &l.op {
                Op::Input => continue,
                Op::Split => (PlanOp::Split, c_in),
                Op::Convolution(conv) => {
                    if conv.in_c != c_in {
                        return Err(invalid(format!(
                            "layer {}: expects {} channels, gets {c_in}",
                            l.name, conv.in_c
                        )));
                    }
                    radius += conv.pad;
                    let mut step_outputs = l.outputs.clone();
                    // An activation of the model file is a PReLU with one slope.
                    let mut slopes = match conv.act {
                        Activation::Identity => None,
                        Activation::Relu => Some(vec![0.0; conv.out_c]),
                        Activation::LeakyRelu(s) => Some(vec![s; conv.out_c]),
                    };
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
                        channels[dst] = conv.out_c;
                        step_outputs = next.outputs.clone();
                    }
                    for &o in &step_outputs {
                        channels[o] = conv.out_c;
                        area[o] = a_in;
                    }
                    steps.push(PlanStep {
                        op: PlanOp::Conv {
                            conv: conv.clone(),
                            slopes,
                        },
                        inputs: l.inputs.clone(),
                        outputs: step_outputs,
                    });
                    continue;
                }
                Op::PRelu { slopes } => {
                    check_slopes(&l.name, slopes, c_in)?;
                    (
                        PlanOp::PRelu {
                            slopes: expand(slopes, c_in),
                        },
                        c_in,
                    )
                }
                Op::PixelShuffle { factor } => {
                    let rr = factor * factor;
                    if c_in % rr != 0 {
                        return Err(invalid(format!(
                            "layer {}: {c_in} channels do not shuffle by {factor}",
                            l.name
                        )));
                    }
                    (PlanOp::PixelShuffle { r: *factor }, c_in / rr)
                }
                Op::Interp(p) => {
                    radius += 2;
                    (PlanOp::Interp(*p), c_in)
                }
                Op::Add { coeffs } => {
                    let (a, b) = (l.inputs[0], l.inputs[1]);
                    if channels[a] != channels[b] {
                        return Err(invalid(format!(
                            "layer {}: adds {} and {} channels",
                            l.name, channels[a], channels[b]
                        )));
                    }
                    (PlanOp::Add { coeffs: *coeffs }, channels[a])
                }
                Op::Concat => (PlanOp::Concat, l.inputs.iter().map(|b| channels[*b]).sum()),
            };
            let a_out = match &l.op {
                Op::PixelShuffle { factor } => a_in * (factor * factor) as f64,
                Op::Interp(p) => a_in * f64::from(p.scale_h) * f64::from(p.scale_w),
                _ => a_in,
            };
            for &o in &l.outputs {
                channels[o] = out_c;
                area[o] = a_out;
            }
            steps.push(PlanStep {
                op,
                inputs: l.inputs.clone(),
                outputs: l.outputs.clone(),
            });
        }
        if channels[output] != 3 {
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
        let bytes_per_pixel = peak_bytes(&steps, &channels, &area, &last_use, input);
        Ok(Self {
            steps,
            n_blobs,
            input,
            output,
            channels,
            last_use,
            radius: radius.min(MAX_CONTEXT),
            bytes_per_pixel,
        })
    }

    /// Input pixels per tile when the tile size is automatic: what fits
    /// [`TILE_BUDGET_BYTES`], and never more than `cap`.
    pub fn auto_tile_pixels(&self, cap: usize) -> usize {
        (TILE_BUDGET_BYTES / self.bytes_per_pixel.max(1)).clamp(4096, cap)
    }
}

/// The most f32 activation bytes alive at once while the steps run, per
/// input pixel: every blob from the step that writes it to its last reader
/// (split outputs share their source's memory).
fn peak_bytes(
    steps: &[PlanStep],
    channels: &[usize],
    area: &[f64],
    last_use: &[usize],
    input: usize,
) -> usize {
    let size = |b: usize| channels[b] as f64 * area[b] * 4.0;
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
