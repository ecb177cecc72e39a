//! Typed errors of the engine, each with a stable machine-readable code.
//!
//! The codes are part of the public contract (CLI output, later the HTTP API):
//! never rename one, only add new ones. The codes a job can end with are
//! the job contract's ([`bv_job::codes`]), so the worker and the binary read
//! them from the same place.

use std::path::PathBuf;

use bv_job::codes;

/// Everything that can go wrong while loading a model or enhancing a video.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The input path does not exist or cannot be opened.
    #[error("input file {0} does not exist or cannot be read")]
    InputNotFound(PathBuf),
    /// The input file has zero bytes.
    #[error("input file {0} is empty (0 bytes)")]
    InputEmpty(PathBuf),
    /// FFmpeg could not recognise the input as a container with a video stream.
    #[error("input is not a video: {0}")]
    InputNotVideo(String),
    /// The container was recognised but its data ends early or is damaged.
    #[error("input is truncated or damaged: {0}")]
    InputTruncated(String),
    /// The video stream uses a codec that FFmpeg here cannot decode.
    #[error("unsupported video codec: {0}")]
    UnsupportedCodec(String),
    /// Input or output dimensions exceed the configured cap.
    #[error("dimensions too large: {in_w}x{in_h} input would give {out_w}x{out_h} output, {}", limit_text(*max_w, *max_h))]
    DimensionsTooLarge {
        /// Declared input width.
        in_w: u64,
        /// Declared input height.
        in_h: u64,
        /// Output width it would produce.
        out_w: u64,
        /// Output height it would produce.
        out_h: u64,
        /// Configured maximum output width (0: FFmpeg's own limit was hit).
        max_w: u64,
        /// Configured maximum output height (0: FFmpeg's own limit was hit).
        max_h: u64,
    },
    /// The output location cannot be written.
    #[error("cannot write output {path}: {reason}")]
    OutputUnwritable {
        /// The requested output path.
        path: PathBuf,
        /// Why (from the operating system).
        reason: String,
    },
    /// The output file already exists and overwriting was not requested.
    #[error("output {0} already exists (pass --overwrite to replace it)")]
    OutputExists(PathBuf),
    /// The output container cannot hold one of the input's streams.
    #[error("the output container cannot hold the input's streams: {0}")]
    OutputContainerUnsupported(String),
    /// No model of that name/scale in the manifest.
    #[error("unknown model {0}")]
    ModelNotFound(String),
    /// A model file named by the manifest is absent from the model directory.
    #[error("model file {0} is missing (run `make setup`)")]
    ModelFileMissing(PathBuf),
    /// A model file's SHA-256 differs from the manifest: refused.
    #[error(
        "model file {path} has SHA-256 {actual}, the manifest pins {expected}: refusing to load it"
    )]
    ModelHashMismatch {
        /// The file that failed verification.
        path: PathBuf,
        /// Digest pinned in the manifest.
        expected: String,
        /// Digest of the bytes on disk.
        actual: String,
    },
    /// The model files are not valid ncnn files.
    #[error("invalid model: {0}")]
    ModelInvalid(String),
    /// The model uses an operator or parameter this engine does not implement.
    #[error("unsupported model feature: {0}")]
    ModelUnsupported(String),
    /// An option value is out of range or inconsistent.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// The requested encoder is not available in this FFmpeg build.
    #[error("encoder unavailable: {0}")]
    EncoderUnavailable(String),
    /// FFmpeg or ffprobe is not installed.
    #[error("{0} not found on PATH (run `make setup`)")]
    ToolMissing(&'static str),
    /// An FFmpeg process failed for a reason not attributable to the input.
    #[error("ffmpeg failed: {0}")]
    Ffmpeg(String),
    /// The requested compute device cannot be used (absent, no driver, no libraries).
    #[error("device unavailable: {0}")]
    DeviceUnavailable(String),
    /// The compute device failed while running.
    #[error("device failed: {0}")]
    DeviceFailed(String),
    /// The job was cancelled (Ctrl-C, SIGTERM or a caller's request).
    #[error("cancelled")]
    Cancelled,
    /// An I/O error outside the input and output files.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl EngineError {
    /// The stable machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InputNotFound(_) => codes::INPUT_NOT_FOUND,
            Self::InputEmpty(_) => codes::INPUT_EMPTY,
            Self::InputNotVideo(_) => codes::INPUT_NOT_VIDEO,
            Self::InputTruncated(_) => codes::INPUT_TRUNCATED,
            Self::UnsupportedCodec(_) => codes::UNSUPPORTED_CODEC,
            Self::DimensionsTooLarge { .. } => codes::DIMENSIONS_TOO_LARGE,
            Self::OutputUnwritable { .. } => codes::OUTPUT_UNWRITABLE,
            Self::OutputExists(_) => codes::OUTPUT_EXISTS,
            Self::OutputContainerUnsupported(_) => codes::OUTPUT_CONTAINER_UNSUPPORTED,
            Self::ModelNotFound(_) => codes::MODEL_NOT_FOUND,
            Self::ModelFileMissing(_) => codes::MODEL_FILE_MISSING,
            Self::ModelHashMismatch { .. } => codes::MODEL_HASH_MISMATCH,
            Self::ModelInvalid(_) => codes::MODEL_INVALID,
            Self::ModelUnsupported(_) => codes::MODEL_UNSUPPORTED,
            Self::InvalidOption(_) => codes::INVALID_OPTION,
            Self::EncoderUnavailable(_) => "encoder_unavailable",
            Self::ToolMissing(_) => "ffmpeg_missing",
            Self::Ffmpeg(_) => "ffmpeg_failed",
            Self::DeviceUnavailable(_) => codes::DEVICE_UNAVAILABLE,
            Self::DeviceFailed(_) => "device_failed",
            Self::Cancelled => codes::CANCELLED,
            Self::Io(_) => "io_error",
        }
    }

    /// True when the error is the caller's input (file or options), not the system.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::InputNotFound(_)
                | Self::InputEmpty(_)
                | Self::InputNotVideo(_)
                | Self::InputTruncated(_)
                | Self::UnsupportedCodec(_)
                | Self::DimensionsTooLarge { .. }
                | Self::InvalidOption(_)
        )
    }
}

fn limit_text(w: u64, h: u64) -> String {
    if w == 0 || h == 0 {
        "beyond what FFmpeg can decode".into()
    } else {
        format!("the limit is {w}x{h}")
    }
}

impl From<bv_job::codec::UnknownCodec> for EngineError {
    fn from(e: bv_job::codec::UnknownCodec) -> Self {
        Self::InvalidOption(e.to_string())
    }
}

/// Result alias for the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
