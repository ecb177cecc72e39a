//! GPU backends and device selection.
//!
//! With the `cuda` feature the engine can run models on NVIDIA GPUs through
//! the CUDA driver, NVRTC and cuBLAS, all loaded at run time: a binary built
//! with the feature still runs on machines without them.

#[cfg(feature = "cuda")]
pub mod cuda;

use std::str::FromStr;

use crate::error::EngineError;

/// Where inference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// A GPU when one is usable, else the CPU.
    Auto,
    /// The CPU kernels.
    Cpu,
    /// CUDA device N.
    Cuda(usize),
}

impl FromStr for Device {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, EngineError> {
        match s {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| {
                    EngineError::InvalidOption(format!(
                        "unknown device {s:?} (auto, cpu, cuda, cuda:N)"
                    ))
                }),
        }
    }
}

/// Whether a CUDA driver library can be found (without loading it).
pub fn cuda_driver_present() -> bool {
    let mut dirs: Vec<std::path::PathBuf> = std::env::var_os("LD_LIBRARY_PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(
        [
            "/usr/lib/x86_64-linux-gnu",
            "/usr/lib64",
            "/usr/lib",
            "/usr/local/nvidia/lib64",
            "/usr/local/cuda/lib64",
        ]
        .map(std::path::PathBuf::from),
    );
    dirs.iter()
        .any(|d| d.join("libcuda.so.1").exists() || d.join("libcuda.so").exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!("auto".parse::<Device>().unwrap(), Device::Auto);
        assert_eq!("cuda:3".parse::<Device>().unwrap(), Device::Cuda(3));
        assert_eq!("cuda".parse::<Device>().unwrap(), Device::Cuda(0));
        assert!("gpu".parse::<Device>().is_err());
        assert!("cuda:x".parse::<Device>().is_err());
    }
}
