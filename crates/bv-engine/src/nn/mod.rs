//! Neural-network inference on the CPU: tensors, kernels and the compiled network.

pub mod direct;
pub mod generic;
pub mod network;
pub mod ops;
pub mod simd;
pub mod tensor;
pub mod winograd;

pub use network::Network;
pub use tensor::Tensor;
