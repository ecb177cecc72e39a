//! The inference backend seam.
//!
//! The video pipeline and the tiler talk to a [`Backend`]; the CPU backend
//! runs this crate's own kernels. A GPU backend (CUDA through ONNX Runtime,
//! OpenVINO GPU, …) implements the same trait and plugs in without touching
//! the pipeline.

use crate::error::{EngineError, Result};
use crate::frame::Frame;
use crate::gpu::Device;
use crate::model::LoadedModel;
use crate::nn::{Network, Tensor};
use crate::upscale::{Core, TileRect, store_core};

/// Runs one model on RGB images with values in [0, 1].
pub trait Backend: Send {
    /// Short description for logs and benchmarks (e.g. `cpu(avx2+fma, 2 threads)`).
    fn describe(&self) -> String;
    /// Input pixels on each side that influence an output pixel; tiles overlap by this much.
    fn radius(&self) -> usize;
    /// Input pixels per tile when the tile size is automatic (bounded by the
    /// model's activation memory per pixel).
    fn tile_pixels(&self) -> usize {
        crate::upscale::AUTO_TILE_PIXELS
    }
    /// Tiles start at multiples of this (the network's total stride).
    fn align(&self) -> usize {
        1
    }
    /// Called with a frame's tiles before they run: a network with global
    /// pooling computes the whole frame's means here so every tile uses
    /// them. `input` builds a tile's input.
    fn prepare_frame(
        &mut self,
        _w: usize,
        _h: usize,
        _tiles: &[TileRect],
        _input: &dyn Fn(&TileRect) -> Tensor,
    ) -> Result<()> {
        Ok(())
    }
    /// Runs the model on one image (or tile). The output is unclamped.
    fn infer(&mut self, input: Tensor) -> Result<Tensor>;
    /// Hands a finished output back so its memory can be reused.
    fn recycle(&mut self, _t: Tensor) {}
    /// Runs the model on a tile and stores the clamped, quantized `core` of
    /// its output into `frame`. Backends with their own memory (GPUs) override
    /// this to quantize where the output is and move only the core's bytes.
    fn infer_into(&mut self, input: Tensor, core: &Core, frame: &mut Frame) -> Result<()> {
        let result = self.infer(input)?;
        store_core(&result, core, frame)?;
        self.recycle(result);
        Ok(())
    }
}

/// The CPU backend: Winograd/direct convolutions with AVX2+FMA or portable vectors.
pub struct CpuBackend {
    net: Network,
}

impl CpuBackend {
    /// Compiles `model` for `threads` threads (0 = one per core).
    pub fn new(model: &LoadedModel, threads: usize) -> Result<Self> {
        Ok(Self {
            net: Network::compile(&model.graph, threads)?,
        })
    }
}

impl Backend for CpuBackend {
    fn describe(&self) -> String {
        format!(
            "cpu({}, {} threads)",
            crate::nn::simd::simd_level(),
            self.net.threads()
        )
    }

    fn radius(&self) -> usize {
        self.net.radius()
    }

    fn tile_pixels(&self) -> usize {
        self.net.tile_pixels()
    }

    fn align(&self) -> usize {
        self.net.align()
    }

    fn prepare_frame(
        &mut self,
        w: usize,
        h: usize,
        tiles: &[TileRect],
        input: &dyn Fn(&TileRect) -> Tensor,
    ) -> Result<()> {
        self.net.prepare_frame(w, h, tiles, input)
    }

    fn infer(&mut self, input: Tensor) -> Result<Tensor> {
        self.net.run(input)
    }

    fn recycle(&mut self, t: Tensor) {
        self.net.recycle(t);
    }
}

/// Opens the backend for `device`. `Auto` takes CUDA device 0 when a usable
/// GPU is present (and this build has the `cuda` feature), else the CPU.
pub fn open(model: &LoadedModel, device: Device, threads: usize) -> Result<Box<dyn Backend>> {
    match device {
        Device::Cpu => Ok(Box::new(CpuBackend::new(model, threads)?)),
        Device::Cuda(n) => open_cuda(model, n),
        Device::Auto => match open_cuda(model, 0) {
            Ok(b) => Ok(b),
            Err(EngineError::DeviceUnavailable(_) | EngineError::ModelUnsupported(_)) => {
                Ok(Box::new(CpuBackend::new(model, threads)?))
            }
            Err(e) => Err(e),
        },
    }
}

#[cfg(feature = "cuda")]
fn open_cuda(model: &LoadedModel, n: usize) -> Result<Box<dyn Backend>> {
    Ok(Box::new(crate::gpu::cuda::CudaBackend::new(model, n)?))
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(_model: &LoadedModel, _n: usize) -> Result<Box<dyn Backend>> {
    Err(EngineError::DeviceUnavailable(
        "this build has no CUDA support (feature `cuda`)".into(),
    ))
}
