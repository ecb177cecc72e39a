//! BetterVideo's engine: pure compute on untrusted media.
//!
//! It loads pinned models ([`model`]), runs them with its own CPU kernels
//! ([`nn`], behind the [`backend::Backend`] seam), upscales frames in bounded
//! memory ([`upscale`]) and drives FFmpeg to decode and re-encode whole videos
//! with every other stream intact ([`video`]). It knows no keys, no database,
//! no network and no tenants, so it can run inside a sandbox with nothing
//! sensitive in reach.

pub mod backend;
pub mod error;
pub mod frame;
pub mod gpu;
pub mod model;
pub mod nn;
pub mod plan;
pub mod upscale;
pub mod video;

pub use error::{EngineError, Result};
pub use frame::{Depth, Frame};
