//! Error reporting at the edge: stable codes and exit statuses.
//!
//! Exit statuses: 1 system or internal failure, 2 usage (from clap),
//! 3 bad input (file or option), 4 output problem, 5 model problem,
//! 6 compute device unavailable, 7 stored data failed verification,
//! 8 key or vault configuration problem,
//! 130 cancelled.

use bv_engine::EngineError;

/// Exit status for an engine error.
pub fn status(e: &EngineError) -> i32 {
    use EngineError::*;
    match e {
        Cancelled => 130,
        OutputUnwritable { .. } | OutputExists(_) | OutputContainerUnsupported(_) => 4,
        ModelNotFound(_)
        | ModelFileMissing(_)
        | ModelHashMismatch { .. }
        | ModelInvalid(_)
        | ModelUnsupported(_) => 5,
        DeviceUnavailable(_) => 6,
        _ if e.is_bad_input() => 3,
        _ => 1,
    }
}

/// Exit status for a vault error.
pub fn vault_status(e: &bv_vault::VaultError) -> i32 {
    use bv_vault::VaultError::*;
    match e {
        NotFound | Invalid(_) | Range(_) => 3,
        Integrity(_) => 7,
        Key(_) | Config(_) => 8,
        Store(_) | Io(_) => 1,
    }
}

/// Prints `e` (as text on stderr, or a JSON event on stdout) and returns the exit status.
pub fn report(e: &anyhow::Error, json: bool) -> i32 {
    let (code, status) = if let Some(ee) = e.downcast_ref::<EngineError>() {
        (ee.code(), status(ee))
    } else if let Some(ve) = e.downcast_ref::<bv_vault::VaultError>() {
        (ve.code(), vault_status(ve))
    } else {
        ("error", 1)
    };
    let message = format!("{e:#}");
    if json {
        println!(
            "{}",
            serde_json::json!({"event": "error", "code": code, "message": message})
        );
    } else {
        eprintln!("error[{code}]: {message}");
    }
    status
}
