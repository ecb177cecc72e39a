//! Video in and out: probing, the NUT frame pipes and the FFmpeg pipeline.

pub mod encode;
pub mod mp4;
pub mod nut;
pub mod pipeline;
pub mod probe;
pub mod segments;
