//! Typed errors of the vault, each with a stable code.

use bv_crypto::CryptoError;

/// Everything that can go wrong in the vault.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// No such object for this tenant (also what another tenant's object looks like).
    #[error("object not found")]
    NotFound,
    /// The stored object failed verification (tampered, truncated, moved).
    #[error("stored object failed verification: {0}")]
    Integrity(CryptoError),
    /// A byte range outside the object.
    #[error("range not satisfiable: {0}")]
    Range(CryptoError),
    /// Key material problem (missing root key version, unwrap failure, bad key file).
    #[error("key error: {0}")]
    Key(String),
    /// The blob store failed.
    #[error("blob store: {0}")]
    Store(#[from] object_store::Error),
    /// The key store (the catalog's key tables) failed.
    #[error("key store: {0}")]
    KeyStore(String),
    /// Local I/O (key store, key file, input, output).
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Invalid configuration.
    #[error("vault configuration: {0}")]
    Config(String),
    /// An argument is malformed (e.g. an id).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// The object needs the tenant's own key: missing or wrong (code, message).
    #[error("{1}")]
    CustomerKey(&'static str, String),
}

impl VaultError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "object_not_found",
            Self::Integrity(e) => e.code(),
            Self::Range(_) => "range_not_satisfiable",
            Self::Key(_) => "key_error",
            Self::Store(_) => "blob_store_error",
            Self::KeyStore(_) => "key_store_error",
            Self::Io(_) => "io_error",
            Self::Config(_) => "vault_config_invalid",
            Self::Invalid(_) => "invalid_argument",
            Self::CustomerKey(code, _) => code,
        }
    }
}

impl From<CryptoError> for VaultError {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::Range { .. } => Self::Range(e),
            CryptoError::Unwrap | CryptoError::KeyMaterial(_) | CryptoError::Random => {
                Self::Key(e.to_string())
            }
            _ => Self::Integrity(e),
        }
    }
}

/// Result alias.
pub type Result<T, E = VaultError> = std::result::Result<T, E>;
