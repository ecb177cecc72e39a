//! The domain's errors: what went wrong, with a stable code, and no HTTP
//! status (the API maps each to one at its edge; the CLI to an exit status).

use bv_catalog::CatalogError;
use bv_vault::VaultError;

/// Why a domain operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The catalog refused or failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The vault refused or failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The video has not been probed yet, so nothing about it can be priced.
    #[error("the video is still being examined; try again in a moment")]
    VideoNotReady,
    /// The video's probe refused it (its bytes are gone).
    #[error("this upload was rejected: {0}")]
    VideoRejected(String),
    /// Erasing a tenant needs its exact name as confirmation.
    #[error("erasing a tenant cannot be undone: confirm with the tenant's exact name")]
    ConfirmationRequired,
    /// A request that breaks a rule of the domain.
    #[error("{0}")]
    Invalid(String),
    /// A preset this service does not offer.
    #[error("no such preset here; GET /v1/models lists them")]
    UnknownPreset,
    /// A model this service does not offer.
    #[error("no such model here; GET /v1/models lists them")]
    UnknownModel,
    /// A scale the model does not do.
    #[error("{model} does not do x{scale}; GET /v1/models lists its scales")]
    UnsupportedScale {
        /// The model.
        model: String,
        /// The scale asked for.
        scale: u32,
    },
    /// A webhook URL that points inside a network (server-side request forgery).
    #[error("{0}")]
    WebhookRefused(String),
    /// Something stored is not what this version writes (a malformed id).
    #[error("internal: {0}")]
    Internal(String),
}

/// Result alias for the domain.
pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    /// The stable machine-readable code (part of the API and the CLI: never rename one).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Catalog(e) => e.code(),
            Self::Vault(e) => e.code(),
            Self::VideoNotReady => "video_not_ready",
            Self::VideoRejected(_) => "video_rejected",
            Self::ConfirmationRequired => "confirmation_required",
            Self::Invalid(_) => "invalid_request",
            Self::UnknownPreset => "unknown_preset",
            Self::UnknownModel => "unknown_model",
            Self::UnsupportedScale { .. } => "unsupported_scale",
            Self::WebhookRefused(_) => "webhook_url_refused",
            Self::Internal(_) => "internal_error",
        }
    }

    /// Whether this is "no such thing" (also what another tenant's thing looks like).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Self::Catalog(CatalogError::NotFound) | Self::Vault(VaultError::NotFound)
        )
    }

    /// An internal error from anything displayable.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_come_from_the_cause() {
        assert_eq!(
            ServiceError::from(CatalogError::NotFound).code(),
            "not_found"
        );
        assert!(ServiceError::from(CatalogError::NotFound).is_not_found());
        assert_eq!(
            ServiceError::ConfirmationRequired.code(),
            "confirmation_required"
        );
        assert!(!ServiceError::VideoNotReady.is_not_found());
    }
}
