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

/// Exit status for a stable error code.
pub fn status_for(code: &str) -> i32 {
    match code {
        "cancelled" => 130,
        "output_unwritable" | "output_exists" | "output_container_unsupported" => 4,
        "model_not_found"
        | "model_file_missing"
        | "model_hash_mismatch"
        | "model_invalid"
        | "model_unsupported" => 5,
        "device_unavailable" => 6,
        "sealed_auth_failed"
        | "sealed_truncated"
        | "sealed_trailing_data"
        | "sealed_format"
        | "audit_chain_broken"
        | "receipt_invalid" => 7,
        "key_error" | "vault_config_invalid" => 8,
        "job_resource_limit" | "job_timeout" => 9,
        "no_access_grant"
        | "not_an_operator"
        | "customer_key_required"
        | "customer_key_mismatch" => 10,
        "input_not_found"
        | "input_empty"
        | "input_not_video"
        | "input_truncated"
        | "unsupported_codec"
        | "dimensions_too_large"
        | "invalid_option"
        | "object_not_found"
        | "invalid_argument"
        | "not_found"
        | "already_exists"
        | "range_not_satisfiable" => 3,
        _ => 1,
    }
}

/// The stable code of any error the binary reports.
pub fn code_of(e: &anyhow::Error) -> String {
    if let Some(ee) = e.downcast_ref::<EngineError>() {
        ee.code().into()
    } else if let Some(ve) = e.downcast_ref::<bv_vault::VaultError>() {
        ve.code().into()
    } else if let Some(se) = e.downcast_ref::<bv_sandbox::SandboxError>() {
        se.code().into()
    } else if let Some(c) = e.downcast_ref::<bv_catalog::CatalogError>() {
        c.code().into()
    } else if let Some(j) = e.downcast_ref::<JobFailed>() {
        j.code.clone()
    } else {
        "error".into()
    }
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
