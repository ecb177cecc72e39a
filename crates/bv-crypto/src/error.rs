//! Typed errors of the crypto part, each with a stable code.

/// Everything that can go wrong sealing, opening or unwrapping.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The header is not a sealed-object header this version understands.
    #[error("not a sealed object: {0}")]
    Format(&'static str),
    /// A segment's authentication tag did not verify (tampered, moved, wrong key or wrong identity).
    #[error("authentication failed at segment {segment}")]
    Auth {
        /// Index of the first segment that failed.
        segment: u64,
    },
    /// The object ends before its final segment.
    #[error("sealed object truncated after {segments} segments")]
    Truncated {
        /// Authentic segments seen before the end.
        segments: u64,
    },
    /// Bytes follow the final segment.
    #[error("data after the final segment")]
    TrailingData,
    /// A byte range outside the object.
    #[error("range {start}..{end} is outside the object ({len} bytes)")]
    Range {
        /// Requested start.
        start: u64,
        /// Requested end (exclusive).
        end: u64,
        /// Plaintext length.
        len: u64,
    },
    /// A wrapped key did not unwrap (wrong wrapping key, wrong context, or tampered).
    #[error("key unwrap failed")]
    Unwrap,
    /// Key material is malformed.
    #[error("invalid key material: {0}")]
    KeyMaterial(String),
    /// The system random number generator failed.
    #[error("random number generator failed")]
    Random,
    /// The object would exceed the format's segment counter.
    #[error("object too large for the sealed-object format")]
    TooLarge,
}

impl CryptoError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Format(_) => "sealed_format",
            Self::Auth { .. } => "sealed_auth_failed",
            Self::Truncated { .. } => "sealed_truncated",
            Self::TrailingData => "sealed_trailing_data",
            Self::Range { .. } => "range_not_satisfiable",
            Self::Unwrap => "key_unwrap_failed",
            Self::KeyMaterial(_) => "key_material_invalid",
            Self::Random => "rng_failed",
            Self::TooLarge => "object_too_large",
        }
    }
}
