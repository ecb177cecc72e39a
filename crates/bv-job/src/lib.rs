//! The job contract: the one place that says what a job is.
//!
//! Three parties speak it: the service, which stores a job's settings in its
//! queue row ([`JobKind::to_stored`]); the worker, which reads the row back,
//! tells the jailed runner what to do ([`JobSpec`]) and reads what it reports
//! ([`RunnerEvent`]); and the runner (`bv job-run`, inside the jail), which
//! runs the engine. The worker never links the engine and the engine never
//! sees a key: this crate is the only thing they share, so it is pure data —
//! no I/O, no keys, no media parsing.
//!
//! It also holds what both sides must agree on to be consistent: the output
//! codecs ([`Codec`], the only list of them), how a long video is cut into
//! segments ([`segment::plan`]) and the stable error codes a job can end
//! with, with what each means for a retry and for an exit status
//! ([`codes`]).
#![forbid(unsafe_code)]

pub mod codec;
pub mod codes;
pub mod kind;
pub mod segment;
pub mod spec;

pub use codec::Codec;
pub use kind::{Enhance, JobKind, KindError};
pub use segment::{Segment, Segmenting};
pub use spec::{Done, JobSpec, JoinSpec, Progress, RunnerEvent};
