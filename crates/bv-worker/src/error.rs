//! The worker's errors, each with the stable code a job ends with.

use bv_catalog::CatalogError;
use bv_sandbox::SandboxError;
use bv_service::ServiceError;
use bv_vault::VaultError;

/// Why an attempt (or the worker's own bookkeeping) failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The catalog refused or failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The vault refused or failed (a piece failing verification, say).
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// A rule of the domain.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The sandbox could not run the job.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// The job ran and failed: the code the runner reported (or the
    /// sandbox's, for a job it stopped).
    #[error("{message}")]
    Job {
        /// Stable code ([`bv_job::codes`]).
        code: String,
        /// For people.
        message: String,
    },
    /// The job's settings in its (authentic) row do not parse.
    #[error(transparent)]
    Settings(#[from] bv_job::KindError),
    /// Reading the job's input failed: that decides the attempt, whatever
    /// the job then did with a cut input.
    #[error("reading the job's input: {0}")]
    Input(Box<WorkerError>),
    /// Sealing the job's output failed.
    #[error("sealing the job's output: {0}")]
    Output(Box<WorkerError>),
    /// A pipe to or from the jail broke.
    #[error("{0}: {1}")]
    Pipe(&'static str, std::io::Error),
    /// Local I/O.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The worker lost its job's lease (too slow to renew, or presumed dead).
    #[error("the job's lease was lost to another worker")]
    LeaseLost,
    /// A bug or an impossible state.
    #[error("internal: {0}")]
    Internal(String),
}

/// Result alias for the worker.
pub type WorkerResult<T> = Result<T, WorkerError>;

impl WorkerError {
    /// The stable code (what a failed job records, and `bv`'s exit status).
    pub fn code(&self) -> &str {
        match self {
            Self::Catalog(e) => e.code(),
            Self::Vault(e) => e.code(),
            Self::Service(e) => e.code(),
            Self::Sandbox(e) => e.code(),
            Self::Job { code, .. } => code,
            Self::Settings(_) => bv_job::codes::INVALID_OPTION,
            Self::Input(e) | Self::Output(e) => e.code(),
            Self::Pipe(..) | Self::Io(_) => "io_error",
            Self::LeaseLost => "lease_lost",
            Self::Internal(_) => "internal_error",
        }
    }

    /// An internal error from anything displayable.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }
}
