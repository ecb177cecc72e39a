//! Error reporting at the edge: stable codes and exit statuses.
//!
//! Exit statuses: 1 system or internal failure, 2 usage (from clap),
//! 3 bad input (file or option), 4 output problem, 5 model problem,
//! 6 compute device unavailable, 7 stored data failed verification,
//! 8 key or vault configuration problem, 9 the job broke a sandbox limit,
//! 10 access refused (no operator grant in effect, or the tenant holds its
//! own key), 130 cancelled. The status follows from the error code, so an error that
//! happened inside the sandbox exits exactly like one outside.

use bv_engine::EngineError;

/// A job that failed inside the sandbox, reported by its stable code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct JobFailed {
    /// Stable error code (as the job reported it, or a sandbox code).
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

/// Exit status for a stable error code (the job contract's table, so an
/// error inside the sandbox exits exactly like one outside).
pub fn status_for(code: &str) -> i32 {
    bv_job::codes::exit_status(code)
}

/// The stable code of any error the binary reports: every typed error of
/// the parts is found in the chain, whatever context was added on the way.
pub fn code_of(e: &anyhow::Error) -> String {
    for cause in e.chain() {
        let code = if let Some(x) = cause.downcast_ref::<EngineError>() {
            x.code()
        } else if let Some(x) = cause.downcast_ref::<bv_worker::WorkerError>() {
            x.code()
        } else if let Some(x) = cause.downcast_ref::<bv_service::ServiceError>() {
            x.code()
        } else if let Some(x) = cause.downcast_ref::<bv_vault::VaultError>() {
            x.code()
        } else if let Some(x) = cause.downcast_ref::<bv_sandbox::SandboxError>() {
            x.code()
        } else if let Some(x) = cause.downcast_ref::<bv_catalog::CatalogError>() {
            x.code()
        } else if let Some(x) = cause.downcast_ref::<bv_api::ServeError>() {
            x.code()
        } else if cause.is::<bv_job::KindError>() {
            bv_job::codes::INVALID_OPTION
        } else if let Some(j) = cause.downcast_ref::<JobFailed>() {
            &j.code
        } else {
            continue;
        };
        return code.to_string();
    }
    "error".into()
}

/// Prints `e` (as text on stderr, or a JSON event on stdout) and returns the exit status.
pub fn report(e: &anyhow::Error, json: bool) -> i32 {
    let code = code_of(e);
    let message = format!("{e:#}");
    if json {
        println!(
            "{}",
            serde_json::json!({"event": "error", "code": code, "message": message})
        );
    } else {
        eprintln!("error[{code}]: {message}");
    }
    status_for(&code)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exit-status table names other crates' codes as text: each is
    /// checked against the error that really carries it, so a renamed code
    /// fails here instead of silently exiting 1.
    #[test]
    fn the_parts_codes_exit_as_documented() {
        use bv_catalog::CatalogError;
        use bv_crypto::CryptoError;
        use bv_vault::VaultError;
        let cases: Vec<(&str, i32)> = vec![
            (CatalogError::NotFound.code(), 3),
            (CatalogError::Exists("tenant").code(), 3),
            (CatalogError::Invalid("x".into()).code(), 3),
            (VaultError::NotFound.code(), 3),
            (VaultError::Invalid("x".into()).code(), 3),
            (VaultError::Range(CryptoError::TrailingData).code(), 3),
            (VaultError::Config("x".into()).code(), 8),
            (VaultError::Key("x".into()).code(), 8),
            (VaultError::Integrity(CryptoError::TrailingData).code(), 7),
            (VaultError::Integrity(CryptoError::Format("x")).code(), 7),
            (
                VaultError::Integrity(CryptoError::Auth { segment: 0 }).code(),
                7,
            ),
            (bv_service::ServiceError::ConfirmationRequired.code(), 3),
            (
                bv_service::ServiceError::VideoRejected("x".into()).code(),
                3,
            ),
            (EngineError::InputEmpty("x".into()).code(), 3),
            (EngineError::OutputExists("x".into()).code(), 4),
            (EngineError::Cancelled.code(), 130),
        ];
        for (code, status) in cases {
            assert_eq!(status_for(code), status, "{code}");
        }
    }
}
