//! The domain's settings: `[jobs]`, `[retention]` and `[billing]`.
//!
//! They are the service's, not the HTTPS server's: a GPU host that runs only
//! `bv worker` reads them too (how big a sealed piece is, how many attempts a
//! job gets, how long an output is kept). Until version 0.2 the same keys
//! were read from `[serve]`; the binary still takes them there, with a
//! warning ([`MOVED_FROM_SERVE`]).

use serde::{Deserialize, Serialize};

/// Keys that moved out of `[serve]`: (old key, new section, new key).
pub const MOVED_FROM_SERVE: &[(&str, &str, &str)] = &[
    ("piece_mib", "jobs", "piece_mib"),
    ("job_max_attempts", "jobs", "max_attempts"),
    ("upload_ttl_seconds", "retention", "upload_ttl_seconds"),
    ("output_retention_seconds", "retention", "output_seconds"),
    ("keep_originals", "retention", "keep_originals"),
    (
        "failed_input_retention_seconds",
        "retention",
        "failed_input_seconds",
    ),
    ("sweep_seconds", "retention", "sweep_seconds"),
    (
        "price_per_megapixel_frame",
        "billing",
        "price_per_megapixel_frame",
    ),
];

/// How jobs and their bytes are handled.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Bytes sealed into one vault object while an upload or a job's output
    /// streams in, MiB; a request's bytes become durable (and count in the
    /// offset) piece by piece.
    pub piece_mib: usize,
    /// Most attempts per job (a dead worker's attempt counts).
    pub max_attempts: i64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            piece_mib: 64,
            max_attempts: 3,
        }
    }
}

impl JobsConfig {
    /// A piece's size in bytes.
    pub fn piece_bytes(&self) -> u64 {
        (self.piece_mib as u64) << 20
    }
}

/// When videos are deleted (per tenant: `bv admin retention set`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// An unfinished resumable upload is abandoned after this many seconds
    /// (the sweeper shreds what it received).
    pub upload_ttl_seconds: u64,
    /// A job's output is deleted this many seconds after the job succeeds
    /// (0: kept until its owner deletes it).
    pub output_seconds: u64,
    /// Keep an uploaded original after a job on it succeeds (by default it
    /// is deleted then).
    pub keep_originals: bool,
    /// A failed job's input is kept this many seconds for a retry, then
    /// deleted (unless originals are kept).
    pub failed_input_seconds: u64,
    /// Seconds between two runs of the retention sweeper.
    pub sweep_seconds: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            upload_ttl_seconds: 24 * 3600,
            output_seconds: 7 * 24 * 3600,
            keep_originals: false,
            failed_input_seconds: 24 * 3600,
            sweep_seconds: 60,
        }
    }
}

/// What enhancement costs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BillingConfig {
    /// Credits per output megapixel-frame (a 720p×2 frame is 3.7 megapixels).
    pub price_per_megapixel_frame: f64,
}

impl Default for BillingConfig {
    fn default() -> Self {
        Self {
            price_per_megapixel_frame: 1.0,
        }
    }
}

impl JobsConfig {
    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), String> {
        if self.piece_mib == 0 || self.piece_mib > 1024 {
            return Err("jobs.piece_mib must be 1..=1024".into());
        }
        if self.max_attempts < 1 {
            return Err("jobs.max_attempts must be >= 1".into());
        }
        Ok(())
    }
}

impl BillingConfig {
    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), String> {
        let p = self.price_per_megapixel_frame;
        if p.is_nan() || p < 0.0 || p.is_infinite() {
            return Err("billing.price_per_megapixel_frame must be a number >= 0".into());
        }
        Ok(())
    }
}

/// The domain's settings together: what a server and a worker both read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    /// `[jobs]`.
    pub jobs: JobsConfig,
    /// `[retention]`.
    pub retention: RetentionConfig,
    /// `[billing]`.
    pub billing: BillingConfig,
}
