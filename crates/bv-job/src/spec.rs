//! The runner's side of the contract: what `bv job-run` is told on its
//! standard input ([`JobSpec`]) and the JSON lines it answers on its
//! standard output ([`RunnerEvent`]), ending with a [`Done`] or an error
//! code. Paths are the jail's, never the host's.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::kind::JobKind;
use crate::segment::Segment;

/// What the runner is asked to do (paths are inside the jail).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Input file.
    pub input: PathBuf,
    /// Output file (exists, will be overwritten).
    pub output: PathBuf,
    /// Output container extension.
    pub ext: String,
    /// Model directory.
    pub models: PathBuf,
    /// What to do.
    pub kind: JobKind,
    /// Tile edge (0: automatic).
    pub tile: usize,
    /// Inference threads (0: one per core).
    pub threads: usize,
    /// Device (`auto`, `cpu`, `cuda`, `cuda:N`).
    pub device: String,
    /// Output size cap.
    pub max_width: u64,
    /// Output size cap.
    pub max_height: u64,
    /// The plaintext comes in on descriptor 3 and the result goes back on
    /// descriptor 4 (pipes); `input` and `output` are then files in the
    /// jail's private `/scratch`, which dies with the jail.
    #[serde(default)]
    pub piped: bool,
    /// Process at most this many frames: what the job was priced for (the
    /// probe's count), so an input whose container understates its length
    /// is not enhanced beyond what was paid.
    #[serde(default)]
    pub max_frames: Option<u64>,
}

/// What a join gets on its piped input: the original, then each segment's
/// file, back to back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinSpec {
    /// The original's length in bytes.
    pub original_len: u64,
    /// Each segment's length in bytes and what it covers, in order.
    pub parts: Vec<(u64, Segment)>,
}

/// A finished run, as the runner reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Done {
    /// Frames.
    pub frames: u64,
    /// Input size.
    pub input_size: (u64, u64),
    /// Output size.
    pub output_size: (u64, u64),
    /// Wall seconds inside the jail.
    pub seconds: f64,
    /// Seconds in the model.
    pub inference_seconds: f64,
    /// Backend.
    pub backend: String,
    /// What a probe found (probe jobs only).
    #[serde(default)]
    pub media: Option<serde_json::Value>,
}

/// How far a run got.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Frames finished.
    pub frames: u64,
    /// Expected total, when the container says.
    pub total: Option<u64>,
    /// Time since the start.
    pub elapsed: Duration,
}

/// One line the runner writes on its standard output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum RunnerEvent {
    /// Frames done so far.
    Progress {
        /// Frames finished.
        frames: u64,
        /// Expected total, when known.
        total: Option<u64>,
        /// Seconds since the run started.
        elapsed_s: f64,
    },
    /// The run finished.
    Done {
        /// What it did.
        summary: Done,
    },
    /// The run failed with a stable code.
    Error {
        /// Stable error code ([`crate::codes`]).
        code: String,
        /// For people.
        message: String,
    },
}

impl RunnerEvent {
    /// The event for `p`.
    pub fn progress(p: &Progress) -> Self {
        Self::Progress {
            frames: p.frames,
            total: p.total,
            elapsed_s: p.elapsed.as_secs_f64(),
        }
    }

    /// One line of JSON (what the runner prints).
    pub fn line(&self) -> String {
        serde_json::to_string(self).expect("runner events serialise")
    }

    /// Reads one line; `None` for anything else the runner printed.
    pub fn parse(line: &str) -> Option<Self> {
        serde_json::from_str(line).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_back_and_keep_their_wire_form() {
        let p = RunnerEvent::progress(&Progress {
            frames: 3,
            total: Some(9),
            elapsed: Duration::from_millis(1500),
        });
        let line = p.line();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&line).unwrap(),
            serde_json::json!({"event": "progress", "frames": 3, "total": 9, "elapsed_s": 1.5})
        );
        assert!(matches!(
            RunnerEvent::parse(&line),
            Some(RunnerEvent::Progress { frames: 3, .. })
        ));
        let e = RunnerEvent::parse(r#"{"event":"error","code":"input_empty","message":"m"}"#);
        assert!(matches!(e, Some(RunnerEvent::Error { code, .. }) if code == "input_empty"));
        assert!(RunnerEvent::parse("ffmpeg said something").is_none());
        assert!(RunnerEvent::parse(r#"{"event":"nope"}"#).is_none());
    }
}
