//! A model's execution plan, shared by every backend.
//!
//! Built once from the parsed graph: the single input and output are found,
//! channel counts are checked, each convolution absorbs the PReLU that is its
//! only reader, and the last reader of every blob is recorded so backends can
//! free (or reuse) buffers as soon as possible.

use crate::error::{EngineError, Result};
use crate::model::ncnn::{Conv, Graph, Interp, Op};

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
    /// `inputs[0] + inputs[1]`.
    Add,
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
    /// Input pixels that can influence an output pixel, in each direction.
    pub radius: usize,
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
        let mut steps = Vec::new();
        let mut radius = 0;
        let mut fused = vec![false; graph.layers.len()];
        for (i, l) in graph.layers.iter().enumerate() {
            if fused[i] {
                continue;
            }
            let c_in = l.inputs.first().map(|s| channels[*s]).unwrap_or(0);
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
                    // Fuse a PReLU that is this convolution's only reader.
                    let mut step_outputs = l.outputs.clone();
                    let mut slopes = None;
                    let dst = l.outputs[0];
                    if consumers[dst] == 1
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
                Op::Add => {
                    let (a, b) = (l.inputs[0], l.inputs[1]);
                    if channels[a] != channels[b] {
                        return Err(invalid(format!(
                            "layer {}: adds {} and {} channels",
                            l.name, channels[a], channels[b]
                        )));
                    }
                    (PlanOp::Add, channels[a])
                }
            };
            for &o in &l.outputs {
                channels[o] = out_c;
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
        Ok(Self {
            steps,
            n_blobs,
            input,
            output,
            channels,
            last_use,
            radius,
        })
    }
}
