//! Stable error codes a job can end with, and what each means.
//!
//! A code crosses three boundaries: the runner reports it from inside the
//! jail, the worker decides from it whether a retry can help
//! ([`permanent`]), and the `bv` binary turns it into an exit status
//! ([`exit_status`]). Codes are part of the API and the CLI: never rename
//! one. Codes not listed here (a crate's own, such as the catalog's) still
//! reach [`exit_status`], which files them by their documented class.

/// The host (or the service) cannot run jobs now: models missing, the
/// sandbox cannot start, FFmpeg absent; the message names the check and its fix.
pub const PROCESSING_UNAVAILABLE: &str = "processing_unavailable";
/// The job was cancelled (by its owner, or Ctrl-C).
pub const CANCELLED: &str = "cancelled";
/// A client stopped following (Ctrl-C); what it followed goes on.
pub const INTERRUPTED: &str = "interrupted";
/// The input file does not exist.
pub const INPUT_NOT_FOUND: &str = "input_not_found";
/// The input has no bytes.
pub const INPUT_EMPTY: &str = "input_empty";
/// The input is not a video.
pub const INPUT_NOT_VIDEO: &str = "input_not_video";
/// The input ends early.
pub const INPUT_TRUNCATED: &str = "input_truncated";
/// The job's input video was deleted while it was queued.
pub const INPUT_GONE: &str = "input_gone";
/// The video codec is not one the engine decodes.
pub const UNSUPPORTED_CODEC: &str = "unsupported_codec";
/// The output would be larger than allowed.
pub const DIMENSIONS_TOO_LARGE: &str = "dimensions_too_large";
/// An option is out of range or unknown.
pub const INVALID_OPTION: &str = "invalid_option";
/// The model is not in the manifest.
pub const MODEL_NOT_FOUND: &str = "model_not_found";
/// A model file the manifest names is missing.
pub const MODEL_FILE_MISSING: &str = "model_file_missing";
/// A model file does not match its pinned hash.
pub const MODEL_HASH_MISMATCH: &str = "model_hash_mismatch";
/// A model file cannot be read as a model.
pub const MODEL_INVALID: &str = "model_invalid";
/// The model cannot run on the chosen device or scale.
pub const MODEL_UNSUPPORTED: &str = "model_unsupported";
/// The output's container cannot hold the result.
pub const OUTPUT_CONTAINER_UNSUPPORTED: &str = "output_container_unsupported";
/// The output cannot be written.
pub const OUTPUT_UNWRITABLE: &str = "output_unwritable";
/// The output exists and overwriting was not asked for.
pub const OUTPUT_EXISTS: &str = "output_exists";
/// The compute device asked for is not there.
pub const DEVICE_UNAVAILABLE: &str = "device_unavailable";
/// The job broke a sandbox limit (memory, processes, file size, CPU time).
pub const JOB_RESOURCE_LIMIT: &str = "job_resource_limit";
/// The job passed its wall-clock deadline.
pub const JOB_TIMEOUT: &str = "job_timeout";
/// The sandbox's teardown found something left behind.
pub const SANDBOX_TEARDOWN_FAILED: &str = "sandbox_teardown_failed";

/// What a code means to the person who ran the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A system or internal failure (exit 1).
    Internal,
    /// Bad input: a file or an option (exit 3).
    BadInput,
    /// The output cannot be written as asked (exit 4).
    Output,
    /// A model problem (exit 5).
    Model,
    /// The compute device is unavailable (exit 6).
    Device,
    /// Stored data failed verification (exit 7).
    Integrity,
    /// A key or vault configuration problem (exit 8).
    KeyConfig,
    /// The job broke a sandbox limit (exit 9).
    Limit,
    /// Access refused (exit 10).
    Access,
    /// Cancelled (exit 130).
    Cancelled,
}

impl Class {
    /// The `bv` exit status of this class (README: "Exit statuses").
    pub fn exit_status(self) -> i32 {
        match self {
            Self::Internal => 1,
            Self::BadInput => 3,
            Self::Output => 4,
            Self::Model => 5,
            Self::Device => 6,
            Self::Integrity => 7,
            Self::KeyConfig => 8,
            Self::Limit => 9,
            Self::Access => 10,
            Self::Cancelled => 130,
        }
    }
}

/// The class of a stable code (any crate's).
pub fn class(code: &str) -> Class {
    match code {
        CANCELLED | INTERRUPTED => Class::Cancelled,
        OUTPUT_UNWRITABLE | OUTPUT_EXISTS | OUTPUT_CONTAINER_UNSUPPORTED => Class::Output,
        MODEL_NOT_FOUND | MODEL_FILE_MISSING | MODEL_HASH_MISMATCH | MODEL_INVALID
        | MODEL_UNSUPPORTED => Class::Model,
        DEVICE_UNAVAILABLE | PROCESSING_UNAVAILABLE => Class::Device,
        "sealed_auth_failed"
        | "sealed_truncated"
        | "sealed_trailing_data"
        | "sealed_format"
        | "audit_chain_broken"
        | "receipt_invalid" => Class::Integrity,
        "key_error" | "vault_config_invalid" | "config_invalid" => Class::KeyConfig,
        JOB_RESOURCE_LIMIT
        | JOB_TIMEOUT
        // The service's answers, as the client commands exit with them.
        | "rate_limited"
        | "too_many_attempts"
        | "quota_exceeded"
        | "upload_too_large"
        | "insufficient_credits" => Class::Limit,
        "no_access_grant"
        | "not_an_operator"
        | "customer_key_required"
        | "customer_key_mismatch"
        | "customer_key_not_enabled"
        | "invalid_customer_key"
        | "unauthenticated"
        | "insufficient_scope"
        | "csrf_failed"
        | "login_failed"
        | "link_invalid"
        | "link_expired"
        | "not_logged_in" => Class::Access,
        INPUT_NOT_FOUND
        | INPUT_EMPTY
        | INPUT_NOT_VIDEO
        | INPUT_TRUNCATED
        | UNSUPPORTED_CODEC
        | DIMENSIONS_TOO_LARGE
        | INVALID_OPTION
        | "object_not_found"
        | "invalid_argument"
        | "confirmation_required"
        | "video_rejected"
        | "video_not_ready"
        | "invalid_request"
        | "invalid_json"
        | "invalid_query"
        | "unknown_model"
        | "unknown_preset"
        | "job_not_finished"
        | "unsupported_scale"
        | "webhook_url_refused"
        | "not_found"
        | "already_exists"
        | "range_not_satisfiable" => Class::BadInput,
        _ => Class::Internal,
    }
}

/// The exit status for a stable code.
pub fn exit_status(code: &str) -> i32 {
    class(code).exit_status()
}

/// Whether a job that failed with `code` would fail the same way again: its
/// input, options or model are the problem, it broke a limit, or it was
/// cancelled. Anything else (a worker or storage hiccup) is retried.
pub fn permanent(code: &str) -> bool {
    matches!(
        code,
        INPUT_NOT_VIDEO
            | INPUT_EMPTY
            | INPUT_TRUNCATED
            | INPUT_GONE
            | UNSUPPORTED_CODEC
            | DIMENSIONS_TOO_LARGE
            | INVALID_OPTION
            | MODEL_NOT_FOUND
            | MODEL_UNSUPPORTED
            | OUTPUT_CONTAINER_UNSUPPORTED
            | JOB_RESOURCE_LIMIT
            | JOB_TIMEOUT
            | CANCELLED
    )
}

/// Most characters of a message shown to a tenant or a user.
pub const SHOWN_MAX: usize = 300;

/// `message` as a tenant or user may see it: FFmpeg's heap addresses
/// (`[h264 @ 0x5621b2401e80]`) removed, paths inside a job's jail named for
/// what they are (`/scratch/input.media` is "the input"), one line, at most
/// [`SHOWN_MAX`] characters. What a tool printed stays in the service log;
/// this keeps a process's memory layout and the jail's inner paths out of
/// job errors, rejected videos and the audit detail.
pub fn shown(message: &str) -> String {
    let line = message
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let mut out = String::with_capacity(line.len().min(SHOWN_MAX));
    for (i, word) in line.split(' ').enumerate() {
        if word.starts_with("0x") && word.trim_end_matches([']', ',', ':']).len() > 6 {
            // A pointer: "[h264 @ 0x5621b2401e80]" becomes "[h264]".
            if out.ends_with(" @") {
                out.truncate(out.len() - 2);
            }
            if word.ends_with(']') {
                out.push(']');
            }
            continue;
        }
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&jail_path(word));
    }
    if out.chars().count() > SHOWN_MAX {
        out = out.chars().take(SHOWN_MAX - 1).collect();
        out.push('…');
    }
    out
}

/// A word that is a path inside a job's jail, named for what it is.
fn jail_path(word: &str) -> String {
    let bare = word.trim_matches(|c: char| matches!(c, '\'' | '"' | ',' | ':' | '(' | ')'));
    let named = if bare.starts_with("/scratch/input") || bare.starts_with("/in/") {
        "the input"
    } else if bare.starts_with("/scratch/output") || bare.starts_with("/out/") {
        "the output"
    } else if bare.starts_with("/models/") {
        "the model files"
    } else if bare.starts_with("/scratch/") {
        "the job's scratch space"
    } else {
        return word.to_string();
    };
    word.replacen(bare, named, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_messages_hold_no_pointer_and_no_jail_path() {
        assert_eq!(
            shown("[h264 @ 0x5621b2401e80] top block unavailable for requested intra mode -1"),
            "[h264] top block unavailable for requested intra mode -1"
        );
        assert_eq!(
            shown("/scratch/input.media: Invalid data found when processing input"),
            "the input: Invalid data found when processing input"
        );
        assert_eq!(
            shown("could not open '/models/x4.bin' for /out/output.xyz\nsecond line"),
            "could not open 'the model files' for the output"
        );
        assert_eq!(shown(&"x".repeat(1000)).chars().count(), SHOWN_MAX);
        assert_eq!(shown("plain words stay"), "plain words stay");
    }

    #[test]
    fn documented_statuses() {
        assert_eq!(exit_status(CANCELLED), 130);
        assert_eq!(exit_status(INPUT_EMPTY), 3);
        assert_eq!(exit_status("not_found"), 3);
        assert_eq!(exit_status(OUTPUT_EXISTS), 4);
        assert_eq!(exit_status(MODEL_HASH_MISMATCH), 5);
        assert_eq!(exit_status(DEVICE_UNAVAILABLE), 6);
        assert_eq!(exit_status("sealed_auth_failed"), 7);
        assert_eq!(exit_status("key_error"), 8);
        assert_eq!(exit_status(JOB_TIMEOUT), 9);
        assert_eq!(exit_status("no_access_grant"), 10);
        assert_eq!(exit_status("whatever_else"), 1);
    }

    #[test]
    fn retries_only_where_they_can_help() {
        assert!(permanent(INPUT_NOT_VIDEO) && permanent(CANCELLED) && permanent(INPUT_GONE));
        assert!(!permanent("io_error") && !permanent(SANDBOX_TEARDOWN_FAILED));
        // A missing or altered model file may be mended by the operator.
        assert!(!permanent(MODEL_HASH_MISMATCH) && !permanent(DEVICE_UNAVAILABLE));
    }
}
