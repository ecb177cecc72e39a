//! Models: the ncnn file reader and the manifest that pins every file.

pub mod manifest;
pub mod ncnn;

pub use manifest::{LoadedModel, Manifest, ModelInfo, ModelStore};
