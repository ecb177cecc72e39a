//! CUDA backend: the execution plan on an NVIDIA GPU.
//!
//! Convolutions are `im2col` + one cuBLAS SGEMM (full fp32, no TF32) + a fused
//! bias/PReLU kernel; the other layers are small kernels from `kernels.cu`,
//! compiled with NVRTC when the backend starts. Tensors live on the device in
//! channel-major order; only the input tile goes up and the output comes back.
//! This is the only module besides `nn::simd` with `unsafe`: kernel launches
//! and cuBLAS calls cannot check their arguments, so every call site asserts
//! the buffer sizes it relies on first.
#![allow(unsafe_code)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Arc;

use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::{CompileOptions, compile_ptx_with_opts};

use crate::backend::Backend;
use crate::error::{EngineError, Result};
use crate::frame::Frame;
use crate::model::LoadedModel;
use crate::model::ncnn::{Interp, InterpMode};
use crate::nn::Tensor;
use crate::plan::{Plan, PlanOp};
use crate::upscale::Core;

const SOURCE: &str = include_str!("kernels.cu");

fn failed(e: impl std::fmt::Debug) -> EngineError {
    EngineError::DeviceFailed(format!("{e:?}"))
}

/// Runs `f`, turning a panic (cudarc panics when a CUDA library cannot be loaded) into an error.
fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
        EngineError::DeviceUnavailable(format!(
            "{what}: {}",
            msg.unwrap_or_else(|| "library could not be loaded".into())
        ))
    })
}

struct Kernels {
    hwc_to_chw: CudaFunction,
    chw_to_hwc: CudaFunction,
    im2col: CudaFunction,
    bias_act: CudaFunction,
    prelu: CudaFunction,
    pixel_shuffle: CudaFunction,
    resize_nearest: CudaFunction,
    resize_bicubic: CudaFunction,
    add: CudaFunction,
    quantize_core: CudaFunction,
}

enum Step {
    Conv {
        /// `[out_c][in_c * k * k]`, the im2col row order.
        weights: CudaSlice<f32>,
        bias: CudaSlice<f32>,
        slopes: Option<CudaSlice<f32>>,
        in_c: usize,
        out_c: usize,
        k: usize,
        pad: usize,
        src: usize,
        dst: usize,
    },
    PRelu {
        slopes: CudaSlice<f32>,
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
    },
    Split {
        src: usize,
        dsts: Vec<usize>,
    },
}

/// A device tensor, `c x h x w`.
struct Blob {
    buf: CudaSlice<f32>,
    c: usize,
    h: usize,
    w: usize,
}

/// The CUDA backend (see the module docs).
pub struct CudaBackend {
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    k: Kernels,
    steps: Vec<Step>,
    n_blobs: usize,
    input: usize,
    output: usize,
    last_use: Vec<usize>,
    radius: usize,
    tile_pixels: usize,
    col: Option<CudaSlice<f32>>,
    name: String,
}

fn grid(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(256).clamp(1, 1 << 20) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn int(v: usize) -> Result<i32> {
    i32::try_from(v)
        .map_err(|_| EngineError::InvalidOption(format!("{v} is too large for the GPU kernels")))
}

impl CudaBackend {
    /// Opens CUDA device `ordinal` and uploads `model`.
    pub fn new(model: &LoadedModel, ordinal: usize) -> Result<Self> {
        if !super::cuda_driver_present() {
            return Err(EngineError::DeviceUnavailable(
                "no CUDA driver (libcuda.so.1) on this machine".into(),
            ));
        }
        let ctx = guarded("CUDA driver", || CudaContext::new(ordinal))?
            .map_err(|e| EngineError::DeviceUnavailable(format!("CUDA device {ordinal}: {e:?}")))?;
        let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        let stream = ctx.default_stream();
        let ptx = guarded("NVRTC", || {
            compile_ptx_with_opts(SOURCE, CompileOptions::default())
        })?
        .map_err(|e| EngineError::DeviceUnavailable(format!("compiling kernels: {e:?}")))?;
        let module = ctx.load_module(ptx).map_err(failed)?;
        let f = |n: &str| module.load_function(n).map_err(failed);
        let k = Kernels {
            hwc_to_chw: f("hwc_to_chw")?,
            chw_to_hwc: f("chw_to_hwc")?,
            im2col: f("im2col")?,
            bias_act: f("bias_act")?,
            prelu: f("prelu")?,
            pixel_shuffle: f("pixel_shuffle")?,
            resize_nearest: f("resize_nearest")?,
            resize_bicubic: f("resize_bicubic")?,
            add: f("add")?,
            quantize_core: f("quantize_core")?,
        };
        let blas = guarded("cuBLAS", || CudaBlas::new(stream.clone()))?
            .map_err(|e| EngineError::DeviceUnavailable(format!("cuBLAS: {e:?}")))?;

        let plan = Plan::new(&model.graph)?;
        // The kernels here cover the Real-ESRGAN models (padded, stride-1
        // convolutions); Real-CUGAN's strided, transposed and pooling layers
        // run on the CPU (`--device auto` falls back to it).
        let cpu_only = |what: &str| {
            Err(EngineError::ModelUnsupported(format!(
                "{what} has no GPU kernel yet; run this model with --device cpu"
            )))
        };
        for ps in &plan.steps {
            match &ps.op {
                PlanOp::Conv { conv, .. }
                    if conv.stride != 1 || conv.kw % 2 == 0 || conv.pad != conv.kw / 2 =>
                {
                    return cpu_only("an unpadded, strided or even-sized convolution");
                }
                PlanOp::Deconv { .. } => return cpu_only("a transposed convolution"),
                PlanOp::Mul | PlanOp::Crop(_) | PlanOp::GlobalAvgPool | PlanOp::Dense(_) => {
                    return cpu_only("squeeze-and-excitation (pooling, crop, product)");
                }
                _ => {}
            }
        }
        let up = |v: &[f32]| stream.memcpy_stod(v).map_err(failed);
        let mut steps = Vec::with_capacity(plan.steps.len());
        for ps in &plan.steps {
            let (src, dst) = (ps.inputs[0], ps.outputs[0]);
            steps.push(match &ps.op {
                PlanOp::Conv { conv, slopes } => Step::Conv {
                    weights: up(&conv.weights)?,
                    bias: up(&conv.bias)?,
                    slopes: slopes.as_deref().map(up).transpose()?,
                    in_c: conv.in_c,
                    out_c: conv.out_c,
                    k: conv.kw,
                    pad: conv.pad,
                    src,
                    dst,
                },
                PlanOp::PRelu { slopes } => Step::PRelu {
                    slopes: up(slopes)?,
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
                },
                PlanOp::Split => Step::Split {
                    src,
                    dsts: ps.outputs.clone(),
                },
                PlanOp::Deconv { .. }
                | PlanOp::Mul
                | PlanOp::Crop(_)
                | PlanOp::GlobalAvgPool
                | PlanOp::Dense(_) => unreachable!("refused above"),
            });
        }
        let tile_pixels = plan.auto_tile_pixels(crate::upscale::AUTO_TILE_PIXELS);
        Ok(Self {
            tile_pixels,
            stream,
            blas,
            k,
            steps,
            n_blobs: plan.n_blobs,
            input: plan.input,
            output: plan.output,
            last_use: plan.last_use,
            radius: plan.radius,
            col: None,
            name: format!("cuda:{ordinal} ({name})"),
        })
    }

    fn alloc(&self, n: usize) -> Result<CudaSlice<f32>> {
        // SAFETY: every buffer allocated here is fully written by the kernel
        // that produces it before anything reads it.
        unsafe { self.stream.alloc::<f32>(n) }.map_err(failed)
    }

    fn conv(&mut self, x: &Blob, step: &Step) -> Result<Blob> {
        let Step::Conv {
            weights,
            bias,
            slopes,
            in_c,
            out_c,
            k,
            pad,
            ..
        } = step
        else {
            unreachable!()
        };
        let hw = x.h * x.w;
        let kk = in_c * k * k;
        if self.col.as_ref().is_none_or(|c| c.len() < kk * hw) {
            self.col = Some(self.alloc(kk * hw)?);
        }
        let col = self.col.as_mut().expect("allocated above");
        let mut out = {
            // SAFETY: written in full by the GEMM below before any read.
            unsafe { self.stream.alloc::<f32>(out_c * hw) }.map_err(failed)?
        };
        assert!(x.buf.len() >= in_c * hw && col.len() >= kk * hw && weights.len() == out_c * kk);
        let (c_, h_, w_, k_, p_) = (int(*in_c)?, int(x.h)?, int(x.w)?, int(*k)?, int(*pad)?);
        let mut b = self.stream.launch_builder(&self.k.im2col);
        b.arg(&x.buf)
            .arg(&mut *col)
            .arg(&c_)
            .arg(&h_)
            .arg(&w_)
            .arg(&k_)
            .arg(&p_);
        // SAFETY: `im2col` reads in_c*h*w inputs and writes in_c*k*k*h*w
        // columns; the assert above checks both buffers are that large.
        unsafe { b.launch(grid(kk * hw)) }.map_err(failed)?;
        // out (hw x out_c, column-major) = col (hw x kk) * weights^T (kk x out_c)
        let cfg = GemmConfig {
            transa: cublasOperation_t::CUBLAS_OP_N,
            transb: cublasOperation_t::CUBLAS_OP_N,
            m: int(hw)?,
            n: int(*out_c)?,
            k: int(kk)?,
            alpha: 1.0f32,
            lda: int(hw)?,
            ldb: int(kk)?,
            beta: 0.0f32,
            ldc: int(hw)?,
        };
        // SAFETY: A is hw x kk with lda = hw (col holds at least kk*hw), B is
        // kk x out_c with ldb = kk (weights hold out_c*kk), C is hw x out_c with
        // ldc = hw (out holds out_c*hw), as asserted above.
        unsafe { self.blas.gemm(cfg, &*col, weights, &mut out) }.map_err(failed)?;
        let (oc, hw_, has) = (int(*out_c)?, int(hw)?, i32::from(slopes.is_some()));
        let slope_buf = slopes.as_ref().unwrap_or(bias);
        assert!(bias.len() >= *out_c && slope_buf.len() >= *out_c && out.len() >= out_c * hw);
        let mut b = self.stream.launch_builder(&self.k.bias_act);
        b.arg(&mut out)
            .arg(bias)
            .arg(slope_buf)
            .arg(&oc)
            .arg(&hw_)
            .arg(&has);
        // SAFETY: reads out_c biases/slopes and updates out_c*hw values; sizes asserted.
        unsafe { b.launch(grid(out_c * hw)) }.map_err(failed)?;
        Ok(Blob {
            buf: out,
            c: *out_c,
            h: x.h,
            w: x.w,
        })
    }

    /// Runs the plan on `input` and returns the output on the device.
    fn run(&mut self, input: Tensor) -> Result<Rc<Blob>> {
        let (h, w) = (input.h, input.w);
        let hwc = self.stream.memcpy_stod(&input.to_hwc()).map_err(failed)?;
        let mut x = self.alloc(3 * h * w)?;
        let (three, hw) = (3i32, int(h * w)?);
        let mut b = self.stream.launch_builder(&self.k.hwc_to_chw);
        b.arg(&hwc).arg(&mut x).arg(&three).arg(&hw);
        // SAFETY: both buffers hold exactly 3*h*w values.
        unsafe { b.launch(grid(3 * h * w)) }.map_err(failed)?;
        let mut blobs: Vec<Option<Rc<Blob>>> = (0..self.n_blobs).map(|_| None).collect();
        blobs[self.input] = Some(Rc::new(Blob { buf: x, c: 3, h, w }));
        let steps = std::mem::take(&mut self.steps);
        let result = self.run_steps(&steps, &mut blobs);
        self.steps = steps;
        result?;
        Ok(blobs[self.output].take().expect("output computed"))
    }

    fn download(&mut self, out: &Blob) -> Result<Tensor> {
        let n = out.c * out.h * out.w;
        let mut hwc = self.alloc(n)?;
        let (c, ohw) = (int(out.c)?, int(out.h * out.w)?);
        let mut b = self.stream.launch_builder(&self.k.chw_to_hwc);
        b.arg(&out.buf).arg(&mut hwc).arg(&c).arg(&ohw);
        // SAFETY: both buffers hold exactly c*h*w values.
        unsafe { b.launch(grid(n)) }.map_err(failed)?;
        let host = self.stream.memcpy_dtov(&hwc).map_err(failed)?;
        Ok(Tensor::from_hwc(out.h, out.w, out.c, &host))
    }

    fn run_steps(&mut self, steps: &[Step], blobs: &mut [Option<Rc<Blob>>]) -> Result<()> {
        let get = |blobs: &[Option<Rc<Blob>>], i: usize| {
            blobs[i].clone().expect("blob computed before use")
        };
        for (i, step) in steps.iter().enumerate() {
            match step {
                Step::Conv { src, dst, .. } => {
                    let x = get(blobs, *src);
                    blobs[*dst] = Some(Rc::new(self.conv(&x, step)?));
                }
                Step::PRelu { slopes, src, dst } => {
                    let x = get(blobs, *src);
                    let n = x.c * x.h * x.w;
                    let mut out = self.stream.clone_dtod(&x.buf).map_err(failed)?;
                    let (c, hw) = (int(x.c)?, int(x.h * x.w)?);
                    assert!(slopes.len() >= x.c);
                    let mut b = self.stream.launch_builder(&self.k.prelu);
                    b.arg(&mut out).arg(slopes).arg(&c).arg(&hw);
                    // SAFETY: updates c*h*w values reading c slopes; sizes asserted.
                    unsafe { b.launch(grid(n)) }.map_err(failed)?;
                    blobs[*dst] = Some(Rc::new(Blob {
                        buf: out,
                        c: x.c,
                        h: x.h,
                        w: x.w,
                    }));
                }
                Step::PixelShuffle { r, src, dst } => {
                    let x = get(blobs, *src);
                    let oc = x.c / (r * r);
                    let n = oc * x.h * r * x.w * r;
                    let mut out = self.alloc(n)?;
                    let (oc_, h, w, r_) = (int(oc)?, int(x.h)?, int(x.w)?, int(*r)?);
                    let mut b = self.stream.launch_builder(&self.k.pixel_shuffle);
                    b.arg(&x.buf)
                        .arg(&mut out)
                        .arg(&oc_)
                        .arg(&h)
                        .arg(&w)
                        .arg(&r_);
                    // SAFETY: reads the (oc*r*r) x h x w input, writes n outputs.
                    unsafe { b.launch(grid(n)) }.map_err(failed)?;
                    blobs[*dst] = Some(Rc::new(Blob {
                        buf: out,
                        c: oc,
                        h: x.h * r,
                        w: x.w * r,
                    }));
                }
                Step::Interp { p, src, dst } => {
                    let x = get(blobs, *src);
                    let (oh, ow) = crate::nn::ops::interp_size(p, x.h, x.w);
                    if oh == 0 || ow == 0 {
                        return Err(EngineError::InvalidOption(format!(
                            "image too small to resize: {}x{}",
                            x.w, x.h
                        )));
                    }
                    let n = x.c * oh * ow;
                    let mut out = self.alloc(n)?;
                    let (c, h, w, oh_, ow_) = (int(x.c)?, int(x.h)?, int(x.w)?, int(oh)?, int(ow)?);
                    let (hs, ws) = (1.0 / p.scale_h, 1.0 / p.scale_w);
                    let kernel = match p.mode {
                        InterpMode::Nearest => &self.k.resize_nearest,
                        InterpMode::Bicubic => &self.k.resize_bicubic,
                    };
                    let mut b = self.stream.launch_builder(kernel);
                    b.arg(&x.buf)
                        .arg(&mut out)
                        .arg(&c)
                        .arg(&h)
                        .arg(&w)
                        .arg(&oh_)
                        .arg(&ow_);
                    if p.mode == InterpMode::Nearest {
                        b.arg(&hs).arg(&ws);
                    }
                    // SAFETY: reads the c x h x w input (indices clamped inside it), writes c*oh*ow.
                    unsafe { b.launch(grid(n)) }.map_err(failed)?;
                    blobs[*dst] = Some(Rc::new(Blob {
                        buf: out,
                        c: x.c,
                        h: oh,
                        w: ow,
                    }));
                }
                Step::Add {
                    a,
                    b: bb,
                    coeffs,
                    dst,
                } => {
                    let (xa, xb) = (get(blobs, *a), get(blobs, *bb));
                    if (xa.c, xa.h, xa.w) != (xb.c, xb.h, xb.w) {
                        return Err(EngineError::ModelInvalid(format!(
                            "add of {}x{} and {}x{}",
                            xa.w, xa.h, xb.w, xb.h
                        )));
                    }
                    let n = xa.c * xa.h * xa.w;
                    let mut out = self.stream.clone_dtod(&xa.buf).map_err(failed)?;
                    let n_ = n as i64;
                    let [ka, kb] = *coeffs;
                    let mut b = self.stream.launch_builder(&self.k.add);
                    b.arg(&mut out).arg(&xb.buf).arg(&ka).arg(&kb).arg(&n_);
                    // SAFETY: both operands hold n values (shapes checked above).
                    unsafe { b.launch(grid(n)) }.map_err(failed)?;
                    blobs[*dst] = Some(Rc::new(Blob {
                        buf: out,
                        c: xa.c,
                        h: xa.h,
                        w: xa.w,
                    }));
                }
                Step::Concat { srcs, dst } => {
                    let xs: Vec<Rc<Blob>> = srcs.iter().map(|b| get(blobs, *b)).collect();
                    let (h, w) = (xs[0].h, xs[0].w);
                    if xs.iter().any(|x| (x.h, x.w) != (h, w)) {
                        return Err(EngineError::ModelInvalid(
                            "concat of differently sized blobs".into(),
                        ));
                    }
                    let c: usize = xs.iter().map(|x| x.c).sum();
                    let mut out = self.alloc(c * h * w)?;
                    // Channel-major storage: each input is one contiguous run.
                    let mut at = 0;
                    for x in &xs {
                        let n = x.c * h * w;
                        let mut dst_run = out.slice_mut(at..at + n);
                        self.stream
                            .memcpy_dtod(&x.buf.slice(..n), &mut dst_run)
                            .map_err(failed)?;
                        at += n;
                    }
                    blobs[*dst] = Some(Rc::new(Blob { buf: out, c, h, w }));
                }
                Step::Split { src, dsts } => {
                    let x = get(blobs, *src);
                    for d in dsts {
                        blobs[*d] = Some(x.clone());
                    }
                }
            }
            // Free what no later step reads.
            for b in 0..blobs.len() {
                if b != self.output
                    && blobs[b].is_some()
                    && self.last_use[b] == i
                    && step_reads(step, b)
                {
                    blobs[b] = None;
                }
            }
        }
        Ok(())
    }
}

fn step_reads(s: &Step, b: usize) -> bool {
    match s {
        Step::Conv { src, .. }
        | Step::PRelu { src, .. }
        | Step::PixelShuffle { src, .. }
        | Step::Interp { src, .. }
        | Step::Split { src, .. } => *src == b,
        Step::Add { a, b: bb, .. } => *a == b || *bb == b,
        Step::Concat { srcs, .. } => srcs.contains(&b),
    }
}

impl Backend for CudaBackend {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn radius(&self) -> usize {
        self.radius
    }

    fn tile_pixels(&self) -> usize {
        self.tile_pixels
    }

    fn infer(&mut self, input: Tensor) -> Result<Tensor> {
        let out = self.run(input)?;
        self.download(&out)
    }

    fn infer_into(&mut self, input: Tensor, core: &Core, frame: &mut Frame) -> Result<()> {
        let out = self.run(input)?;
        if (out.c, out.w, out.h) != (3, core.model_w, core.model_h) {
            return Err(EngineError::ModelInvalid(format!(
                "model produced {}x{}x{}, expected {}x{}x3",
                out.w, out.h, out.c, core.model_w, core.model_h
            )));
        }
        let ((sx, sy), (w, h), bytes) = (core.src, core.size, frame.depth.bytes());
        assert!(sx + w <= out.w && sy + h <= out.h && out.buf.len() >= 3 * out.w * out.h);
        let n = w * h * 3;
        let mut q = {
            // SAFETY: u8 has no invalid bit patterns; every byte is written by the kernel below.
            unsafe { self.stream.alloc::<u8>(n * bytes) }.map_err(failed)?
        };
        let args = (
            int(out.h)?,
            int(out.w)?,
            int(sx)?,
            int(sy)?,
            int(w)?,
            int(h)?,
            frame.depth.max(),
            int(bytes)?,
        );
        let mut b = self.stream.launch_builder(&self.k.quantize_core);
        b.arg(&out.buf)
            .arg(&mut q)
            .arg(&args.0)
            .arg(&args.1)
            .arg(&args.2)
            .arg(&args.3);
        b.arg(&args.4).arg(&args.5).arg(&args.6).arg(&args.7);
        // SAFETY: reads inside the 3 x h x w output (the core lies inside it, asserted)
        // and writes w*h*3*bytes bytes, the size of `q`.
        unsafe { b.launch(grid(n)) }.map_err(failed)?;
        let host = self.stream.memcpy_dtov(&q).map_err(failed)?;
        let row = w * 3 * bytes;
        let frame_row = frame.width * 3 * bytes;
        for (y, src) in host.chunks_exact(row).enumerate() {
            let start = (core.dst.1 + y) * frame_row + core.dst.0 * 3 * bytes;
            frame.data[start..start + row].copy_from_slice(src);
        }
        Ok(())
    }
}
