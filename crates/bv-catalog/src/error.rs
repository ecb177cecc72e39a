//! Typed errors of the catalog, each with a stable code.

/// Everything that can go wrong in the catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// No such row for this tenant (also what another tenant's row looks like).
    #[error("not found")]
    NotFound,
    /// A unique name is taken.
    #[error("{0} already exists")]
    Exists(&'static str),
    /// The row changed under us (a concurrent writer won).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// A caller-supplied value is malformed.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The tenant's storage quota would be exceeded.
    #[error("storage quota exceeded: {used} of {quota} bytes used, {wanted} more requested")]
    Quota {
        /// Bytes in use.
        used: i64,
        /// The tenant's quota.
        quota: i64,
        /// Bytes asked for.
        wanted: i64,
    },
    /// An upload is larger than the tenant's per-upload limit.
    #[error("upload of {size} bytes is larger than this tenant's limit of {limit} bytes")]
    TooLarge {
        /// Announced size.
        size: i64,
        /// The limit.
        limit: i64,
    },
    /// The tenant already has as many unfinished uploads as it may.
    #[error("this tenant already has {limit} unfinished uploads; finish or cancel one first")]
    TooManyUploads {
        /// The limit.
        limit: i64,
    },
    /// The tenant already has as many queued or running jobs as it may.
    #[error("this tenant already has {limit} jobs queued or running; wait for one to end")]
    TooManyJobs {
        /// The limit.
        limit: i64,
    },
    /// The tenant's credits do not cover a job's estimated cost.
    #[error("insufficient credits: {available} available, {needed} needed")]
    InsufficientCredits {
        /// Spendable now.
        available: i64,
        /// What the job would reserve.
        needed: i64,
    },
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The database holds a schema newer than this program.
    #[error("database schema version {found} is newer than this program's {known}")]
    SchemaTooNew {
        /// Highest version applied to the database.
        found: i64,
        /// Highest version this program knows.
        known: i64,
    },
    /// Something that should not happen (randomness failed, a row is corrupt).
    #[error("internal: {0}")]
    Internal(String),
}

impl CatalogError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Exists(_) => "already_exists",
            Self::Conflict(_) => "conflict",
            Self::Invalid(_) => "invalid_argument",
            Self::Quota { .. } => "quota_exceeded",
            Self::TooLarge { .. } => "upload_too_large",
            Self::TooManyUploads { .. } => "too_many_uploads",
            Self::TooManyJobs { .. } => "too_many_jobs",
            Self::InsufficientCredits { .. } => "insufficient_credits",
            Self::Db(_) => "database_error",
            Self::SchemaTooNew { .. } => "schema_too_new",
            Self::Internal(_) => "internal_error",
        }
    }

    /// Maps a unique-constraint violation to [`CatalogError::Exists`].
    pub(crate) fn unique(e: sqlx::Error, what: &'static str) -> Self {
        match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => Self::Exists(what),
            _ => Self::Db(e),
        }
    }
}

/// Result alias.
pub type Result<T, E = CatalogError> = std::result::Result<T, E>;
