//! The inference backend seam.
//!
//! The video pipeline and the tiler talk to a [`Backend`]; the CPU backend
//! runs this crate's own kernels. A GPU backend (CUDA through ONNX Runtime,
//! OpenVINO GPU, …) implements the same trait and plugs in without touching
//! the pipeline.

use crate::error::Result;
use crate::model::LoadedModel;
use crate::nn::{Network, Tensor};

/// Runs one model on RGB images with values in [0, 1].
pub trait Backend: Send {
    /// Short description for logs and benchmarks (e.g. `cpu(avx2+fma, 2 threads)`).
    fn describe(&self) -> String;
    /// Input pixels on each side that influence an output pixel; tiles overlap by this much.
    fn radius(&self) -> usize;
    /// Runs the model on one image (or tile). The output is unclamped.
    fn infer(&mut self, input: Tensor) -> Result<Tensor>;
    /// Hands a finished output back so its memory can be reused.
    fn recycle(&mut self, _t: Tensor) {}
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

    fn infer(&mut self, input: Tensor) -> Result<Tensor> {
        self.net.run(input)
    }

    fn recycle(&mut self, t: Tensor) {
        self.net.recycle(t);
    }
}
