//! BetterVideo's domain layer: the rules both the HTTPS service and the
//! workers apply, with typed errors and no HTTP in them.
//!
//! - [`media`]: video bytes sealed into vault pieces as they stream in, and
//!   crypto-shredded on delete;
//! - [`fields`]: catalog values sealed under their tenant's field key;
//! - [`jobs`]: the job contract as the queue holds it — settings, price,
//!   the payload MAC that workers check;
//! - [`audit`]: recording security events in the sealed, hash-chained log;
//! - [`retention`], [`erasure`], [`export`]: what happens to a tenant's data
//!   over time, when it leaves, and what it can take with it;
//! - [`webhooks`]: signed events and their delivery;
//! - [`background`]: the loops a server runs (sweeper, audit checkpoints,
//!   webhook delivery), started together by [`background::spawn`];
//! - [`config`]: the `[jobs]`, `[retention]` and `[billing]` settings.
//!
//! Arrows: this crate uses the catalog, the vault and crypto, and the job
//! contract (`bv-job`); the API and the worker use it; it uses neither, nor
//! any HTTP server crate, nor the engine.
#![forbid(unsafe_code)]

pub mod audit;
pub mod background;
pub mod config;
pub mod erasure;
pub mod error;
pub mod export;
pub mod fields;
pub mod jobs;
pub mod limits;
pub mod logsafe;
pub mod media;
pub mod offers;
pub mod retention;
pub mod time;
pub mod views;
pub mod webhooks;

pub use config::{BillingConfig, JobsConfig, RetentionConfig, Settings};
pub use error::{ServiceError, ServiceResult};
