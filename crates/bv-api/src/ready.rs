//! Readiness: what `/readyz`, the start-up banner and `bv doctor` report.
//!
//! The binary runs the checks (models, the sandbox self-test, FFmpeg: they
//! need the engine and the sandbox, which this crate does not link) and
//! publishes them here; `/readyz` adds the catalog, asked on each request.
//! A process that runs jobs is ready only when it can run them: a server
//! that could only fail every job must not look healthy to a load balancer.

use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It holds.
    Ok,
    /// It holds, with less than the best (e.g. no Landlock on this kernel).
    Warn,
    /// It does not hold; `fix` says what to do.
    Fail,
}

/// One check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Check {
    /// What was checked (`catalog`, `models`, `sandbox`, `ffmpeg`, …).
    pub name: String,
    /// How it came out.
    pub status: Status,
    /// What was found, in one line.
    pub detail: String,
    /// What to do about a warning or a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    /// A check that holds.
    pub fn ok(name: &str, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    /// A check that holds with less than the best.
    pub fn warn(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    /// A check that fails.
    pub fn fail(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    /// Not a failure.
    pub fn passed(&self) -> bool {
        self.status != Status::Fail
    }

    /// `name: detail (fix: …)`, for logs and one-line messages.
    pub fn line(&self) -> String {
        match &self.fix {
            Some(f) => format!("{}: {} (fix: {f})", self.name, self.detail),
            None => format!("{}: {}", self.name, self.detail),
        }
    }
}

/// `GET /readyz`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// Every check passed: this process can take requests and, where it
    /// runs jobs, run them.
    pub ready: bool,
    /// Each check.
    pub checks: Vec<Check>,
}

/// What the binary publishes about running jobs in this process.
#[derive(Debug, Clone, Default)]
pub struct Processing {
    /// Workers in this process (`worker.in_process`); 0: jobs run elsewhere
    /// and their checks do not decide this process's readiness.
    pub workers: usize,
    /// The last checks of what jobs need (`None` until the first has run).
    pub checks: Arc<RwLock<Option<Vec<Check>>>>,
}

impl Processing {
    /// The checks that decide whether this process can run jobs.
    pub fn current(&self) -> Vec<Check> {
        if self.workers == 0 {
            return vec![Check::ok(
                "jobs",
                "no worker in this process (worker.in_process = 0): jobs run on `bv worker` hosts",
            )];
        }
        match self.checks.read().ok().and_then(|c| c.clone()) {
            Some(c) => c,
            None => vec![Check::fail(
                "jobs",
                "checking models, the sandbox and FFmpeg (a few seconds after start)",
                "wait a few seconds and ask again",
            )],
        }
    }
}
