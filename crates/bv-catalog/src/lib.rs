//! BetterVideo's catalog: every piece of metadata the service keeps.
//!
//! One schema and one dialect for SQLite (embedded default) and PostgreSQL
//! (scale-out), reached through sqlx's `Any` driver with runtime-checked
//! queries, so both backends run the very same SQL and the same test suite.
//! Every query that touches tenant data takes the tenant id and filters on
//! it: another tenant's row is indistinguishable from a missing one.
//!
//! Secrets never reach this crate in the clear: API keys and session tokens
//! are stored as SHA-256 hashes, passwords as argon2id PHC strings.
#![forbid(unsafe_code)]

pub mod access;
pub mod accounts;
pub mod api_keys;
pub mod audit;
pub mod config;
pub mod credits;
mod db;
pub mod erasure;
pub mod error;
pub mod jobs;
pub mod keys;
pub mod limits;
mod migrate;
pub mod retention;
pub mod sealing;
pub mod segments;
pub mod sessions;
pub mod setup;
pub mod uploads;
pub mod videos;
pub mod webhooks;

pub use access::{Grant, GrantStatus, NewGrant, Operator};
pub use accounts::{Principal, Tenant, TenantLimits};
pub use api_keys::{ApiKey, KeyAuth, Scope};
pub use audit::{AuditCheckpoint, AuditEntry, AuditReport, ChainKey, NewAuditEvent};
pub use config::CatalogConfig;
pub use credits::{Balance, CreditEntry};
pub use db::{Backend, Catalog, now_ms};
pub use error::CatalogError;
pub use jobs::{Job, JobState, NewJob};
pub use limits::{Rate, TenantLimitOverrides};
pub use retention::{DueVideo, Retain, Rule, TenantRetention};
pub use segments::{JobSegment, NewSegment, SegmentState};
pub use sessions::{NewSession, SessionAuth};
pub use uploads::{NewUpload, Upload};
pub use videos::{Piece, Video, VideoState};

/// A fresh 128-bit random id as 32 hex digits.
pub fn new_id() -> Result<String, CatalogError> {
    bv_crypto::secret::random_hex(16).map_err(|e| CatalogError::Internal(e.to_string()))
}

/// Whether `s` looks like an id this catalog hands out (32 lower-case hex digits).
pub fn is_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
