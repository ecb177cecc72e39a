//! Reader for ncnn models: the `.param` text graph and the `.bin` weights.
//!
//! Only the subset that BetterVideo's pinned models use is accepted; anything
//! else is refused with [`EngineError::ModelUnsupported`] rather than guessed.
//! Format reference: ncnn's `param-and-model-file-structure` wiki page and
//! `ModelBin::load` (weight tags 0x01306B47 = fp16, 0x0002C056 / 0 = fp32).

use std::collections::HashMap;

use crate::error::{EngineError, Result};

/// Magic first line of an ncnn v2 `.param` file.
const PARAM_MAGIC: &str = "7767517";
/// Weight tag of half-precision data.
const TAG_FP16: u32 = 0x0130_6B47;
/// Weight tag of raw fp32 data with a tag word.
const TAG_FP32: u32 = 0x0002_C056;

/// Largest tensor element count we accept from a header before allocating.
const MAX_WEIGHTS: usize = 1 << 28;

/// A parsed model: layers in execution order over numbered blobs.
#[derive(Debug, Clone)]
pub struct Graph {
    /// Layers in file order, which ncnn guarantees is a topological order.
    pub layers: Vec<Layer>,
    /// Blob names, indexed by blob id.
    pub blobs: Vec<String>,
}

/// One node of the graph.
#[derive(Debug, Clone)]
pub struct Layer {
    /// Layer name from the param file (for error messages).
    pub name: String,
    /// What the layer computes.
    pub op: Op,
    /// Input blob ids.
    pub inputs: Vec<usize>,
    /// Output blob ids.
    pub outputs: Vec<usize>,
}

/// The operators the engine implements.
#[derive(Debug, Clone)]
pub enum Op {
    /// The graph input (an RGB image in [0, 1]).
    Input,
    /// Copies its input to every output.
    Split,
    /// 2-D convolution.
    Convolution(Conv),
    /// Parametric ReLU with one slope per channel (or one shared).
    PRelu {
        /// Negative slopes.
        slopes: Vec<f32>,
    },
    /// Depth-to-space (PyTorch `PixelShuffle` order).
    PixelShuffle {
        /// Upscale factor r: C*r*r channels become C channels, r times larger.
        factor: usize,
    },
    /// Resize.
    Interp(Interp),
    /// Weighted element-wise sum of two equally shaped tensors:
    /// `coeffs[0] * a + coeffs[1] * b` (BinaryOp add is `[1, 1]`).
    Add {
        /// The weight of each operand.
        coeffs: [f32; 2],
    },
    /// Joins its inputs along the channel axis, in input order.
    Concat,
    /// Transposed convolution (`weights` as `[out_c][in_c][kh][kw]`; `pad`
    /// is cropped from each side of the full output).
    Deconvolution(Conv),
    /// Cuts pixels off the borders.
    Crop(Borders),
    /// The mean of every channel over the whole image (a 1x1 output).
    GlobalAvgPool,
    /// A fully connected layer on a 1x1 input.
    InnerProduct(Dense),
    /// Element-wise product; the second operand may be 1x1 (one factor per channel).
    Mul,
}

/// How many pixels a crop removes on each side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Borders {
    /// Rows removed at the top.
    pub top: usize,
    /// Columns removed on the left.
    pub left: usize,
    /// Rows removed at the bottom.
    pub bottom: usize,
    /// Columns removed on the right.
    pub right: usize,
}

impl Borders {
    /// The size left of `w x h` (`None` when nothing is).
    pub fn apply(&self, w: usize, h: usize) -> Option<(usize, usize)> {
        Some((
            w.checked_sub(self.left + self.right).filter(|v| *v > 0)?,
            h.checked_sub(self.top + self.bottom).filter(|v| *v > 0)?,
        ))
    }
}

/// A fully connected layer: `act(weights · x + bias)`.
#[derive(Debug, Clone)]
pub struct Dense {
    /// Output features.
    pub out_c: usize,
    /// Input features.
    pub in_c: usize,
    /// `[out_c][in_c]`.
    pub weights: Vec<f32>,
    /// One bias per output (zeros when the model has none).
    pub bias: Vec<f32>,
    /// Activation applied to the output.
    pub act: Activation,
}

/// An activation fused into a convolution by the model file (ncnn's
/// `activation_type`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// None.
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `x` for positive values, `slope * x` otherwise.
    LeakyRelu(f32),
    /// `1 / (1 + e^-x)`.
    Sigmoid,
}

/// Convolution parameters and weights.
#[derive(Debug, Clone)]
pub struct Conv {
    /// Output channels.
    pub out_c: usize,
    /// Input channels (derived from the weight count).
    pub in_c: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Zero padding on each side (top, left; bottom and right are equal);
    /// for a transposed convolution, what is cropped from each side.
    pub pad: usize,
    /// Step between kernel applications (a transposed convolution's upscale).
    pub stride: usize,
    /// Weights, `[out_c][in_c][kh][kw]`.
    pub weights: Vec<f32>,
    /// One bias per output channel (zeros when the model has none).
    pub bias: Vec<f32>,
    /// Activation applied to the output.
    pub act: Activation,
}

/// Resize parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interp {
    /// Sampling kernel.
    pub mode: InterpMode,
    /// Output height = floor(input height * scale_h).
    pub scale_h: f32,
    /// Output width = floor(input width * scale_w).
    pub scale_w: f32,
}

/// Resize kernels supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterpMode {
    /// Nearest neighbour.
    Nearest,
    /// Bicubic (Keys, A = -0.75, half-pixel centres), as ncnn computes it.
    Bicubic,
}

/// Values of one layer's `key=value` parameter list.
#[derive(Debug, Default)]
struct Params(HashMap<i32, String>);

impl Params {
    fn parse(tokens: &[&str], layer: &str) -> Result<Self> {
        let mut map = HashMap::new();
        for t in tokens {
            let (k, v) = t
                .split_once('=')
                .ok_or_else(|| invalid(format!("layer {layer}: malformed parameter {t:?}")))?;
            let k: i32 = k
                .parse()
                .map_err(|_| invalid(format!("layer {layer}: malformed parameter key {k:?}")))?;
            map.insert(k, v.to_string());
        }
        Ok(Self(map))
    }

    fn int(&self, id: i32, default: i64, layer: &str) -> Result<i64> {
        match self.0.get(&id) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| {
                invalid(format!(
                    "layer {layer}: parameter {id}={v} is not an integer"
                ))
            }),
        }
    }

    fn float(&self, id: i32, default: f32, layer: &str) -> Result<f32> {
        match self.0.get(&id) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| invalid(format!("layer {layer}: parameter {id}={v} is not a number"))),
        }
    }

    /// Array parameter `id` (written `-(23300 + id)=n,v1,…,vn`), if present.
    fn floats(&self, id: i32, layer: &str) -> Result<Option<Vec<f32>>> {
        let Some(v) = self.0.get(&(-23300 - id)) else {
            return Ok(None);
        };
        let bad = || invalid(format!("layer {layer}: malformed array parameter {id}"));
        let mut it = v.split(',');
        let n: usize = it.next().and_then(|n| n.parse().ok()).ok_or_else(bad)?;
        let vals: Vec<f32> = it
            .map(|x| x.parse().map_err(|_| bad()))
            .collect::<Result<_>>()?;
        if vals.len() != n || n > 64 {
            return Err(bad());
        }
        Ok(Some(vals))
    }

    /// Refuses any parameter not in `known` (plain ids and array ids alike),
    /// so a model relying on one we ignore is refused rather than misread.
    fn only(&self, known: &[i32], layer: &str) -> Result<()> {
        let mut keys: Vec<i32> = self.0.keys().copied().collect();
        keys.sort_unstable();
        for k in keys {
            let id = if k <= -23300 { -23300 - k } else { k };
            if !known.contains(&id) {
                return Err(unsupported(format!("layer {layer}: parameter {id}")));
            }
        }
        Ok(())
    }

    fn usize(&self, id: i32, default: i64, layer: &str, max: usize) -> Result<usize> {
        let v = self.int(id, default, layer)?;
        usize::try_from(v)
            .ok()
            .filter(|v| *v <= max)
            .ok_or_else(|| invalid(format!("layer {layer}: parameter {id}={v} out of range")))
    }
}

fn invalid(msg: String) -> EngineError {
    EngineError::ModelInvalid(msg)
}

fn unsupported(msg: String) -> EngineError {
    EngineError::ModelUnsupported(msg)
}

/// Sequential reader over the `.bin` weight file.
struct WeightReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> WeightReader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.data.len())
            .ok_or_else(|| {
                invalid(format!(
                    "weight file ends inside {what} (needs {n} bytes at offset {})",
                    self.pos
                ))
            })?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// Raw little-endian fp32 values (ncnn "type 1" data: biases, slopes).
    fn raw_f32(&mut self, n: usize, what: &str) -> Result<Vec<f32>> {
        let bytes = self.take(
            n.checked_mul(4)
                .ok_or_else(|| invalid("size overflow".into()))?,
            what,
        )?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    /// Tagged data (ncnn "type 0"): a tag word then fp16 or fp32 values.
    fn tagged(&mut self, n: usize, what: &str) -> Result<Vec<f32>> {
        let tag = self.take(4, what)?;
        let tag = u32::from_le_bytes([tag[0], tag[1], tag[2], tag[3]]);
        match tag {
            TAG_FP16 => {
                let padded = (n * 2).div_ceil(4) * 4;
                let bytes = self.take(padded, what)?;
                Ok(bytes[..n * 2]
                    .chunks_exact(2)
                    .map(|b| half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
                    .collect())
            }
            TAG_FP32 | 0 => self.raw_f32(n, what),
            other => Err(unsupported(format!(
                "{what}: weight storage tag {other:#010x} (only fp16 and fp32 are supported)"
            ))),
        }
    }
}

/// Parses an ncnn model from the bytes of its `.param` and `.bin` files.
pub fn parse(param: &str, bin: &[u8]) -> Result<Graph> {
    let mut lines = param.lines().map(str::trim).filter(|l| !l.is_empty());
    if lines.next() != Some(PARAM_MAGIC) {
        return Err(invalid("not an ncnn v2 .param file (bad magic)".into()));
    }
    let counts: Vec<usize> = lines
        .next()
        .ok_or_else(|| invalid("missing layer/blob counts".into()))?
        .split_whitespace()
        .map(|t| t.parse().map_err(|_| invalid(format!("bad count {t:?}"))))
        .collect::<Result<_>>()?;
    let [layer_count, blob_count] = counts[..] else {
        return Err(invalid("the counts line must hold two numbers".into()));
    };
    if layer_count == 0 || layer_count > 100_000 || blob_count > 100_000 {
        return Err(invalid(format!(
            "implausible counts {layer_count} layers / {blob_count} blobs"
        )));
    }

    let mut blob_ids: HashMap<String, usize> = HashMap::new();
    let mut blobs: Vec<String> = Vec::new();
    let mut produced = Vec::new();
    let mut weights = WeightReader { data: bin, pos: 0 };
    let mut layers = Vec::with_capacity(layer_count);

    for _ in 0..layer_count {
        let line = lines
            .next()
            .ok_or_else(|| invalid("fewer layer lines than declared".into()))?;
        let tok: Vec<&str> = line.split_whitespace().collect();
        if tok.len() < 4 {
            return Err(invalid(format!("malformed layer line {line:?}")));
        }
        let (ty, name) = (tok[0], tok[1].to_string());
        let n_in: usize = tok[2]
            .parse()
            .map_err(|_| invalid(format!("layer {name}: bad input count")))?;
        let n_out: usize = tok[3]
            .parse()
            .map_err(|_| invalid(format!("layer {name}: bad output count")))?;
        // Checked: counts near usize::MAX must not wrap past this test (the
        // fuzzer found that they did, and Vec::with_capacity then panicked).
        let declared = n_in.checked_add(n_out).and_then(|n| n.checked_add(4));
        if declared.is_none_or(|n| tok.len() < n) {
            return Err(invalid(format!(
                "layer {name}: fewer blob names than declared"
            )));
        }
        let mut inputs = Vec::with_capacity(n_in);
        for b in &tok[4..4 + n_in] {
            let id = *blob_ids.get(*b).ok_or_else(|| {
                invalid(format!(
                    "layer {name}: input blob {b} is not produced earlier"
                ))
            })?;
            inputs.push(id);
        }
        let mut outputs = Vec::with_capacity(n_out);
        for b in &tok[4 + n_in..4 + n_in + n_out] {
            if blob_ids.contains_key(*b) {
                return Err(invalid(format!("layer {name}: blob {b} is produced twice")));
            }
            let id = blobs.len();
            blobs.push(b.to_string());
            blob_ids.insert(b.to_string(), id);
            produced.push(id);
            outputs.push(id);
        }
        let params = Params::parse(&tok[4 + n_in + n_out..], &name)?;
        let op = parse_op(ty, &name, &params, n_in, n_out, &mut weights)?;
        layers.push(Layer {
            name,
            op,
            inputs,
            outputs,
        });
    }
    if blobs.len() != blob_count {
        return Err(invalid(format!(
            "declared {blob_count} blobs, found {}",
            blobs.len()
        )));
    }
    if weights.pos != bin.len() {
        return Err(invalid(format!(
            "weight file has {} bytes, the graph uses {}",
            bin.len(),
            weights.pos
        )));
    }
    Ok(Graph { layers, blobs })
}

fn expect_arity(
    name: &str,
    n_in: usize,
    n_out: usize,
    want_in: usize,
    want_out: Option<usize>,
) -> Result<()> {
    if n_in != want_in || want_out.is_some_and(|w| w != n_out) || n_out == 0 {
        return Err(invalid(format!(
            "layer {name}: unexpected {n_in} inputs / {n_out} outputs"
        )));
    }
    Ok(())
}

fn parse_op(
    ty: &str,
    name: &str,
    p: &Params,
    n_in: usize,
    n_out: usize,
    w: &mut WeightReader,
) -> Result<Op> {
    Ok(match ty {
        "Input" => {
            expect_arity(name, n_in, n_out, 0, Some(1))?;
            Op::Input
        }
        "Split" => {
            expect_arity(name, n_in, n_out, 1, None)?;
            Op::Split
        }
        "Convolution" => {
            expect_arity(name, n_in, n_out, 1, Some(1))?;
            Op::Convolution(parse_conv(name, p, w, false)?)
        }
        "Deconvolution" => {
            expect_arity(name, n_in, n_out, 1, Some(1))?;
            Op::Deconvolution(parse_conv(name, p, w, true)?)
        }
        "Crop" => {
            expect_arity(name, n_in, n_out, 1, Some(1))?;
            p.only(&[9, 10, 11], name)?;
            let (starts, ends, axes) =
                (p.floats(9, name)?, p.floats(10, name)?, p.floats(11, name)?);
            // The form the models use: starts and ends (relative to the end)
            // on the height and width axes.
            let (Some(starts), Some(ends), Some(axes)) = (starts, ends, axes) else {
                return Err(unsupported(format!(
                    "layer {name}: Crop without starts/ends/axes"
                )));
            };
            let hw = [[-2.0f32, -1.0], [1.0, 2.0]];
            if !hw.iter().any(|a| axes[..] == a[..]) || starts.len() != 2 || ends.len() != 2 {
                return Err(unsupported(format!(
                    "layer {name}: Crop other than of height and width"
                )));
            }
            let side = |v: f32, sign: f32| {
                let v = v * sign;
                (v.fract() == 0.0 && (0.0..=4096.0).contains(&v))
                    .then_some(v as usize)
                    .ok_or_else(|| {
                        unsupported(format!(
                            "layer {name}: Crop bound {} of that form",
                            v * sign
                        ))
                    })
            };
            Op::Crop(Borders {
                top: side(starts[0], 1.0)?,
                left: side(starts[1], 1.0)?,
                bottom: side(ends[0], -1.0)?,
                right: side(ends[1], -1.0)?,
            })
        }
        "Pooling" => {
            expect_arity(name, n_in, n_out, 1, Some(1))?;
            // Only the global average (0=1 average, 4=1 global).
            p.only(&[0, 4], name)?;
            if p.int(0, 0, name)? != 1 || p.int(4, 0, name)? != 1 {
                return Err(unsupported(format!(
                    "layer {name}: Pooling other than a global average"
                )));
            }
            Op::GlobalAvgPool
        }
        "InnerProduct" => {
            expect_arity(name, n_in, n_out, 1, Some(1))?;
            p.only(&[0, 1, 2, 9, 10], name)?;
            let out_c = p.usize(0, 0, name, 1 << 14)?;
            let size = p.usize(2, 0, name, MAX_WEIGHTS)?;
            if out_c == 0 || size == 0 || size % out_c != 0 {
                return Err(invalid(format!(
                    "layer {name}: weight count {size} does not fit {out_c} outputs"
                )));
            }
            let act = activation(name, p)?;
            let weights = w.tagged(size, name)?;
            let bias = if p.int(1, 0, name)? != 0 {
                w.raw_f32(out_c, name)?
            } else {
                vec![0.0; out_c]
            };
            Op::InnerProduct(Dense {
                out_c,
                in_c: size / out_c,
                weights,
                bias,
                act,
            })
        }
        "PReLU" => {
            expect_arity(name, n_in, n_out, 1, Some(1))?;
            let n = p.usize(0, 0, name, 1 << 16)?;
            if n == 0 {
                return Err(invalid(format!("layer {name}: PReLU without slopes")));
            }
            Op::PRelu {
                slopes: w.raw_f32(n, name)?,
            }
        }
        "PixelShuffle" => {
            expect_arity(name, n_in, n_out, 1, Some(1))?;
            if p.int(1, 0, name)? != 0 {
                return Err(unsupported(format!(
                    "layer {name}: PixelShuffle mode other than 0"
                )));
            }
            let factor = p.usize(0, 1, name, 16)?;
            if factor == 0 {
                return Err(invalid(format!("layer {name}: PixelShuffle factor 0")));
            }
            Op::PixelShuffle { factor }
        }
        "Interp" => {
            expect_arity(name, n_in, n_out, 1, Some(1))?;
            let mode = match p.int(0, 0, name)? {
                1 => InterpMode::Nearest,
                3 => InterpMode::Bicubic,
                m => return Err(unsupported(format!("layer {name}: Interp resize type {m}"))),
            };
            if p.int(3, 0, name)? != 0
                || p.int(4, 0, name)? != 0
                || p.int(5, 0, name)? != 0
                || p.int(6, 0, name)? != 0
            {
                return Err(unsupported(format!(
                    "layer {name}: Interp with fixed size or align_corner"
                )));
            }
            let scale_h = p.float(1, 1.0, name)?;
            let scale_w = p.float(2, 1.0, name)?;
            if !(0.01..=16.0).contains(&scale_h) || !(0.01..=16.0).contains(&scale_w) {
                return Err(invalid(format!(
                    "layer {name}: Interp scale {scale_h}x{scale_w} out of range"
                )));
            }
            Op::Interp(Interp {
                mode,
                scale_h,
                scale_w,
            })
        }
        "BinaryOp" => {
            expect_arity(name, n_in, n_out, 2, Some(1))?;
            p.only(&[0, 1, 2], name)?;
            if p.int(1, 0, name)? != 0 {
                return Err(unsupported(format!(
                    "layer {name}: BinaryOp with a scalar operand"
                )));
            }
            match p.int(0, 0, name)? {
                0 => Op::Add { coeffs: [1.0, 1.0] },
                2 => Op::Mul,
                t => return Err(unsupported(format!("layer {name}: BinaryOp type {t}"))),
            }
        }
        "Eltwise" => {
            expect_arity(name, n_in, n_out, 2, Some(1))?;
            p.only(&[0, 1], name)?;
            // 1 = SUM; product and max are not used by supported models.
            if p.int(0, 0, name)? != 1 {
                return Err(unsupported(format!("layer {name}: Eltwise other than sum")));
            }
            let coeffs = match p.floats(1, name)?.as_deref() {
                None | Some([]) => [1.0, 1.0],
                Some([a, b]) => [*a, *b],
                Some(_) => {
                    return Err(invalid(format!(
                        "layer {name}: Eltwise coefficients do not match its 2 inputs"
                    )));
                }
            };
            if coeffs.iter().any(|c| !c.is_finite()) {
                return Err(invalid(format!("layer {name}: coefficient not finite")));
            }
            Op::Add { coeffs }
        }
        "Concat" => {
            if n_in < 1 {
                return Err(invalid(format!("layer {name}: Concat without inputs")));
            }
            expect_arity(name, n_in, n_out, n_in, Some(1))?;
            p.only(&[0], name)?;
            if p.int(0, 0, name)? != 0 {
                return Err(unsupported(format!(
                    "layer {name}: Concat along an axis other than channels"
                )));
            }
            Op::Concat
        }
        other => return Err(unsupported(format!("layer {name}: operator {other}"))),
    })
}

/// A layer's fused activation (`9=` type, `10=` its parameters).
fn activation(name: &str, p: &Params) -> Result<Activation> {
    Ok(match (p.int(9, 0, name)?, p.floats(10, name)?.as_deref()) {
        (0, _) => Activation::Identity,
        (1, _) => Activation::Relu,
        (2, Some([s])) if s.is_finite() => Activation::LeakyRelu(*s),
        (2, None | Some([])) => Activation::Relu,
        (4, _) => Activation::Sigmoid,
        (t, _) => {
            return Err(unsupported(format!("layer {name}: activation type {t}")));
        }
    })
}

fn parse_conv(name: &str, p: &Params, w: &mut WeightReader, transposed: bool) -> Result<Conv> {
    let out_c = p.usize(0, 0, name, 1 << 14)?;
    let kw = p.usize(1, 0, name, 15)?;
    let kh = p.usize(11, kw as i64, name, 15)?;
    let dilation = (p.int(2, 1, name)?, p.int(12, p.int(2, 1, name)?, name)?);
    let stride = (p.int(3, 1, name)?, p.int(13, p.int(3, 1, name)?, name)?);
    let pad_l = p.int(4, 0, name)?;
    let pads = [pad_l, p.int(15, pad_l, name)?, p.int(14, pad_l, name)?];
    let pad_b = p.int(16, pads[2], name)?;
    let bias_term = p.int(5, 0, name)? != 0;
    let size = p.usize(6, 0, name, MAX_WEIGHTS)?;
    if p.int(8, 0, name)? != 0 {
        return Err(unsupported(format!("layer {name}: int8 convolution")));
    }
    let act = activation(name, p)?;
    if act == Activation::Sigmoid {
        return Err(unsupported(format!(
            "layer {name}: sigmoid in a convolution"
        )));
    }
    // Transposed convolutions: no output padding or fixed output size.
    if transposed && [18, 19, 20, 21].iter().any(|k| p.0.contains_key(k)) {
        return Err(unsupported(format!(
            "layer {name}: output padding or size in a transposed convolution"
        )));
    }
    if dilation != (1, 1) || stride.0 != stride.1 || !(1..=4).contains(&stride.0) {
        return Err(unsupported(format!(
            "layer {name}: dilation {dilation:?} / stride {stride:?}"
        )));
    }
    // Square kernels, the same padding on every side, at most the kernel.
    let pad = pads[0];
    if kh != kw || pads.iter().chain([&pad_b]).any(|v| *v != pad) || !(0..kw as i64).contains(&pad)
    {
        return Err(unsupported(format!(
            "layer {name}: only square kernels with equal padding on every side"
        )));
    }
    if out_c == 0 || kw == 0 || size == 0 || size % (out_c * kw * kh) != 0 {
        return Err(invalid(format!(
            "layer {name}: weight count {size} does not fit {out_c}x?x{kh}x{kw}"
        )));
    }
    let in_c = size / (out_c * kw * kh);
    let weights = w.tagged(size, name)?;
    let bias = if bias_term {
        w.raw_f32(out_c, name)?
    } else {
        vec![0.0; out_c]
    };
    Ok(Conv {
        out_c,
        in_c,
        kh,
        kw,
        pad: pad as usize,
        stride: stride.0 as usize,
        weights,
        bias,
        act,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_param(extra: &str) -> String {
        format!(
            "7767517\n3 3\nInput in 0 1 data\nConvolution c 1 1 data x 0=2 1=1 5=1 6=2{extra}\nPReLU p 1 1 x out 0=1\n"
        )
    }

    fn bin_fp16() -> Vec<u8> {
        let mut b = TAG_FP16.to_le_bytes().to_vec();
        for v in [0.5f32, -2.0] {
            b.extend(half::f16::from_f32(v).to_bits().to_le_bytes());
        }
        for v in [1.0f32, 2.0, 0.25] {
            b.extend(v.to_le_bytes());
        }
        b
    }

    #[test]
    fn parses_fp16_conv_bias_and_prelu() {
        let g = parse(&tiny_param(""), &bin_fp16()).unwrap();
        assert_eq!(g.layers.len(), 3);
        let Op::Convolution(c) = &g.layers[1].op else {
            panic!("not a conv")
        };
        assert_eq!((c.out_c, c.in_c, c.kh), (2, 1, 1));
        assert_eq!(c.weights, vec![0.5, -2.0]);
        assert_eq!(c.bias, vec![1.0, 2.0]);
        let Op::PRelu { slopes } = &g.layers[2].op else {
            panic!("not prelu")
        };
        assert_eq!(slopes, &vec![0.25]);
    }

    #[test]
    fn refuses_trailing_or_missing_weights() {
        let mut b = bin_fp16();
        b.push(0);
        assert!(matches!(
            parse(&tiny_param(""), &b),
            Err(EngineError::ModelInvalid(_))
        ));
        let b = bin_fp16();
        assert!(matches!(
            parse(&tiny_param(""), &b[..b.len() - 1]),
            Err(EngineError::ModelInvalid(_))
        ));
    }

    #[test]
    fn refuses_unknown_ops_and_tags() {
        let p = "7767517\n2 2\nInput in 0 1 data\nSoftmax s 1 1 data out\n";
        assert!(matches!(
            parse(p, &[]),
            Err(EngineError::ModelUnsupported(_))
        ));
        let mut b = bin_fp16();
        b[0] = 7;
        assert!(matches!(
            parse(&tiny_param(""), &b),
            Err(EngineError::ModelUnsupported(_))
        ));
        assert!(matches!(
            parse(&tiny_param(" 2=2"), &bin_fp16()),
            Err(EngineError::ModelUnsupported(_))
        ));
    }

    #[test]
    fn parses_fused_activations_weighted_sums_and_concat() {
        let p = "7767517\n6 8\nInput in 0 1 data\nSplit s 1 2 data a b\n\
                 Convolution c 1 1 a x 0=1 1=1 6=1 9=2 -23310=1,2.000000e-01\n\
                 Eltwise e 2 1 x b y 0=1 -23301=2,2.000000e-01,1.000000e+00\n\
                 Split t 1 2 y y1 y2\nConcat k 2 1 y1 y2 out\n";
        let mut bin = TAG_FP32.to_le_bytes().to_vec();
        bin.extend(1.5f32.to_le_bytes());
        let g = parse(p, &bin).unwrap();
        let Op::Convolution(c) = &g.layers[2].op else {
            panic!("not a conv")
        };
        assert_eq!(c.act, Activation::LeakyRelu(0.2));
        assert!(matches!(g.layers[3].op, Op::Add { coeffs: [a, b] } if a == 0.2 && b == 1.0));
        assert!(matches!(g.layers[5].op, Op::Concat));
        assert_eq!(g.layers[5].inputs.len(), 2);

        // What the engine does not implement is refused, not approximated.
        for (bad, code) in [
            ("Eltwise e 2 1 x b y 0=0", "unsupported"),
            ("Eltwise e 2 1 x b y 0=1 -23301=3,1,1,1", "invalid"),
            ("Eltwise e 2 1 x b y 0=1 -23301=2,1", "invalid"),
            ("Eltwise e 2 1 x b y 0=1 7=1", "unsupported"),
        ] {
            let q = p.replace(
                "Eltwise e 2 1 x b y 0=1 -23301=2,2.000000e-01,1.000000e+00",
                bad,
            );
            let e = parse(&q, &bin).unwrap_err();
            assert_eq!(e.code().split('_').nth(1), Some(code), "{bad}: {e}");
        }
        let q = p.replace("Concat k 2 1 y1 y2 out", "Concat k 2 1 y1 y2 out 0=1");
        assert!(matches!(
            parse(&q, &bin),
            Err(EngineError::ModelUnsupported(_))
        ));
        let q = p.replace("9=2 -23310=1,2.000000e-01", "9=5");
        assert!(matches!(
            parse(&q, &bin),
            Err(EngineError::ModelUnsupported(_))
        ));
    }

    #[test]
    fn refuses_bad_magic_and_dangling_blobs() {
        assert!(matches!(
            parse("123\n", &[]),
            Err(EngineError::ModelInvalid(_))
        ));
        let p = "7767517\n1 1\nPReLU p 1 1 nowhere out 0=1\n";
        assert!(matches!(parse(p, &[]), Err(EngineError::ModelInvalid(_))));
    }

    #[test]
    fn refuses_blob_counts_that_would_wrap() {
        // Found by the ncnn_model fuzz target: 4 + n_in + n_out wrapped around.
        for counts in [
            "18446744073709551615 1",
            "1 18446744073709551615",
            "18446744073709551612 0",
        ] {
            let p = format!("7767517\n1 1\nInput in {counts} x\n");
            assert!(
                matches!(parse(&p, &[]), Err(EngineError::ModelInvalid(_))),
                "{counts}"
            );
        }
    }
}
