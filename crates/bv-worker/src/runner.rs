//! The parent side of a jailed run: the jail a job runs in, feeding it its
//! input and draining its output through pipes, and reading what the runner
//! (`bv job-run`, inside the jail) reports.
//!
//! Nothing here parses media or links the engine: the runner is the `bv`
//! binary itself, started inside the jail, and it answers in the job
//! contract's [`RunnerEvent`]s.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use bv_job::{Done, JobSpec, Progress, RunnerEvent, codes};
use bv_sandbox::{Exit, Jail, Limits, Mount};

use crate::error::{WorkerError, WorkerResult};

/// Where the `bv` binary appears inside the jail.
pub const BV_INSIDE: &str = "/opt/bv/bv";
/// Where the model directory appears inside the jail.
pub const MODELS_INSIDE: &str = "/models";

/// What every jailed run is given, and how it is run.
#[derive(Debug, Clone)]
pub struct Runner {
    /// The `bv` binary (the runner; bound read-only into the jail).
    pub exe: PathBuf,
    /// The host's model directory (bound read-only into the jail).
    pub models: PathBuf,
    /// Put each job in its own cgroups when the host allows it.
    pub cgroups: bool,
    /// Resource limits of each job.
    pub limits: Limits,
    /// Engine settings a job runs with.
    pub engine: EngineSettings,
}

/// The engine settings the worker passes on to the runner (the engine
/// itself is never linked here).
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Largest tile edge in input pixels; 0 picks tiles automatically.
    pub tile: usize,
    /// Inference threads; 0 means one per CPU core.
    pub threads: usize,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// Largest output width accepted.
    pub max_width: u64,
    /// Largest output height accepted.
    pub max_height: u64,
}

impl Runner {
    /// The jail every job runs in: the `bv` binary and the models,
    /// read-only, plus `extra` mounts.
    pub fn jail(&self, extra: Vec<Mount>) -> Jail {
        let mut mounts = vec![
            Mount {
                host: self.exe.clone(),
                inside: BV_INSIDE.into(),
                writable: false,
            },
            Mount {
                host: self.models.clone(),
                inside: MODELS_INSIDE.into(),
                writable: false,
            },
        ];
        mounts.extend(extra);
        Jail {
            cgroups: self.cgroups,
            limits: self.limits.clone(),
            mounts,
            ..Jail::default()
        }
    }

    /// A piped spec for `kind`: the input and output are files in the jail's
    /// private scratch, fed and drained through pipes.
    pub fn piped_spec(&self, kind: bv_job::JobKind, ext: &str) -> JobSpec {
        let e = &self.engine;
        JobSpec {
            input: "/scratch/input.media".into(),
            output: format!("/scratch/output.{ext}").into(),
            ext: ext.into(),
            models: MODELS_INSIDE.into(),
            kind,
            tile: e.tile,
            threads: e.threads,
            device: e.device.clone(),
            max_width: e.max_width,
            max_height: e.max_height,
            piped: true,
            max_frames: None,
        }
    }

    /// Runs a piped `spec` in a fresh jail, feeding it `input` and writing
    /// what it returns to `output`, both streamed.
    pub fn run_piped(
        &self,
        spec: &JobSpec,
        mut input: impl std::io::Read + Send,
        mut output: impl std::io::Write + Send,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(&Progress),
    ) -> WorkerResult<Done> {
        if !spec.piped {
            return Err(WorkerError::Internal("run_piped needs a piped job".into()));
        }
        let (in_r, mut in_w) = std::io::pipe()?;
        let (mut out_r, out_w) = std::io::pipe()?;
        let jail = self.jail(Vec::new());
        std::thread::scope(|s| {
            let feeder = s.spawn(move || {
                // A job that stops reading (it failed, or was killed) breaks the
                // pipe; its own report says why, so that error is not ours to raise.
                match std::io::copy(&mut input, &mut in_w) {
                    Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e),
                    _ => Ok(()),
                }
            });
            let drain =
                s.spawn(move || -> std::io::Result<u64> { std::io::copy(&mut out_r, &mut output) });
            let fds = vec![
                std::os::fd::OwnedFd::from(in_r),
                std::os::fd::OwnedFd::from(out_w),
            ];
            let done = self.run(&jail, spec, fds, cancel, progress);
            let fed = feeder.join().expect("feeder thread");
            let drained = drain.join().expect("drain thread");
            let done = done?;
            fed.map_err(|e| WorkerError::Pipe("feeding the job its input", e))?;
            drained.map_err(|e| WorkerError::Pipe("receiving the job's output", e))?;
            Ok(done)
        })
    }

    /// Runs `bv job-run` for `spec` in `jail`, turning its events into
    /// progress and its end into a result; checks the teardown.
    pub fn run(
        &self,
        jail: &Jail,
        spec: &JobSpec,
        fds: Vec<std::os::fd::OwnedFd>,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(&Progress),
    ) -> WorkerResult<Done> {
        let mut done = None;
        let mut failure = None;
        let start = std::time::Instant::now();
        let text = serde_json::to_string(spec).map_err(WorkerError::internal)?;
        let outcome = jail.run_with_fds(
            BV_INSIDE,
            &["job-run".to_string()],
            text.as_bytes(),
            fds,
            &mut |line| match RunnerEvent::parse(line) {
                Some(RunnerEvent::Progress { frames, total, .. }) => progress(&Progress {
                    frames,
                    total,
                    elapsed: start.elapsed(),
                }),
                Some(RunnerEvent::Done { summary }) => done = Some(summary),
                Some(RunnerEvent::Error { code, message }) => {
                    failure = Some(WorkerError::Job { code, message })
                }
                None => {}
            },
            cancel,
        )?;
        if !outcome.teardown.clean() {
            tracing::error!(teardown = ?outcome.teardown, "sandbox teardown was not clean");
            return Err(WorkerError::Job {
                code: codes::SANDBOX_TEARDOWN_FAILED.into(),
                message: format!("{:?}", outcome.teardown),
            });
        }
        match (outcome.exit, done, failure) {
            (Exit::Code(0), Some(d), _) => Ok(d),
            (_, _, Some(f)) => Err(f),
            (Exit::Cancelled, ..) => Err(WorkerError::Job {
                code: codes::CANCELLED.into(),
                message: "cancelled".into(),
            }),
            (Exit::Deadline, ..) => Err(WorkerError::Job {
                code: codes::JOB_TIMEOUT.into(),
                message: format!(
                    "the job passed its {} s deadline and was killed",
                    self.limits.wall_seconds
                ),
            }),
            (exit, ..) => Err(WorkerError::Job {
                code: codes::JOB_RESOURCE_LIMIT.into(),
                message: format!(
                    "the job ended ({exit:?}) without a result; a sandbox limit may have stopped it: {}",
                    outcome.stderr.lines().last().unwrap_or_default()
                ),
            }),
        }
    }
}
