//! Service configuration (the `[serve]` section of `bv`'s configuration file).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How `bv serve` listens, authenticates and limits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// HTTPS listen address.
    pub listen: String,
    /// Optional plain-HTTP listen address that only redirects to HTTPS (empty: none).
    pub redirect_listen: String,
    /// The URL clients reach the service at (used in `Location` headers and
    /// links). Empty: `https://localhost:<port>`.
    pub public_url: String,
    /// PEM certificate chain for production; empty: a self-signed development
    /// certificate in `<data_dir>/tls/` (generated when missing). Reloaded on change.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key matching `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Extra host names for the development certificate (localhost and the
    /// loopback addresses are always in it).
    pub dev_cert_names: Vec<String>,
    /// Seconds between checks of the certificate files for changes.
    pub tls_reload_seconds: u64,
    /// Default lifetime of a signed download link, seconds.
    pub link_ttl_seconds: u64,
    /// Longest lifetime a signed link may be given, seconds (S3 allows 7 days).
    pub link_max_ttl_seconds: u64,
    /// A web session ends after this many idle seconds.
    pub session_idle_seconds: u64,
    /// A web session ends this many seconds after sign-in, however active.
    pub session_absolute_seconds: u64,
    /// Failed sign-ins allowed per login name and per client address in the window.
    pub login_max_failures: i64,
    /// Window for counting failed sign-ins, seconds.
    pub login_window_seconds: u64,
    /// An unfinished resumable upload is abandoned after this many seconds
    /// (the sweeper shreds what it received).
    pub upload_ttl_seconds: u64,
    /// A job's output is deleted this many seconds after the job succeeds
    /// (0: kept until its owner deletes it). Per tenant: `bv admin tenant retention`.
    pub output_retention_seconds: u64,
    /// Keep an uploaded original after a job on it succeeds (by default it is
    /// deleted then). Per tenant: `bv admin tenant retention`.
    pub keep_originals: bool,
    /// A failed job's input is kept this many seconds for a retry, then
    /// deleted (unless originals are kept).
    pub failed_input_retention_seconds: u64,
    /// Seconds between two runs of the retention sweeper.
    pub sweep_seconds: u64,
    /// Bytes sealed into one vault object while an upload streams in; a
    /// request's bytes become durable (and count in the offset) piece by piece.
    pub piece_mib: usize,
    /// Per-upload size limit for new tenants, MiB.
    pub default_max_upload_mib: i64,
    /// Storage quota for new tenants, MiB.
    pub default_quota_mib: i64,
    /// Largest body of a simple (single-request) upload, MiB; bigger files use tus.
    pub simple_upload_max_mib: usize,
    /// Price of enhancement, credits per output megapixel-frame (a 720p×2
    /// frame is 3.7 megapixels).
    pub price_per_megapixel_frame: f64,
    /// Most attempts per job (a dead worker's attempt counts).
    pub job_max_attempts: i64,
    /// Allow plain-http webhook URLs (development and tests only; production needs https).
    pub webhook_allow_http: bool,
    /// How often the server signs a checkpoint at the end of the audit log,
    /// seconds (entries cut off the end below a checkpoint are detected).
    pub audit_checkpoint_seconds: u64,
    /// Seconds a client gets to send a request's head (request line and
    /// headers); slower connections are closed (slow-header attacks).
    pub header_timeout_seconds: u64,
    /// Seconds a request body may stall (no byte arriving) before the request
    /// is answered 408 `body_timeout`; an interrupted tus upload resumes.
    pub body_idle_timeout_seconds: u64,
    /// Where vulnerabilities are reported (`mailto:` or `https:` URI), for
    /// `/.well-known/security.txt` and the security report; empty: not
    /// configured, and both say so.
    pub security_contact: String,
    /// Where processing runs, in words for the security report (e.g. "our
    /// own servers in Frankfurt, DE"); empty: the report names this host.
    pub processing_location: String,
    /// Request rates and concurrency limits (per tenant: `bv admin tenant limits`).
    pub limits: LimitsConfig,
}

/// Rate and concurrency limits that keep one noisy tenant or client from
/// starving the others. Every count lives in the catalog, so several servers
/// sharing it share the limits. 0 turns a limit off.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Requests per minute for each API key (and each signed-in person).
    pub key_requests_per_minute: u32,
    /// Requests per minute for a whole tenant, all its keys together.
    pub tenant_requests_per_minute: u32,
    /// How many seconds' worth of a rate may be spent at once after a quiet
    /// spell (the burst).
    pub burst_seconds: u32,
    /// Unfinished uploads a tenant may have at once.
    pub concurrent_uploads: u32,
    /// Jobs a tenant may have queued or running at once (probes aside).
    pub active_jobs: u32,
    /// Sign-in attempts per minute from one client address (failed sign-ins
    /// are limited on their own by `login_max_failures`).
    pub login_per_minute_per_address: u32,
    /// Download links minted per minute from one client address.
    pub links_per_minute_per_address: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            key_requests_per_minute: 1200,
            tenant_requests_per_minute: 6000,
            burst_seconds: 10,
            concurrent_uploads: 50,
            active_jobs: 500,
            login_per_minute_per_address: 30,
            links_per_minute_per_address: 300,
        }
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8443".into(),
            redirect_listen: String::new(),
            public_url: String::new(),
            tls_cert: None,
            tls_key: None,
            dev_cert_names: Vec::new(),
            tls_reload_seconds: 5,
            link_ttl_seconds: 15 * 60,
            link_max_ttl_seconds: 7 * 24 * 3600,
            session_idle_seconds: 30 * 60,
            session_absolute_seconds: 12 * 3600,
            login_max_failures: 5,
            login_window_seconds: 15 * 60,
            upload_ttl_seconds: 24 * 3600,
            output_retention_seconds: 7 * 24 * 3600,
            keep_originals: false,
            failed_input_retention_seconds: 24 * 3600,
            sweep_seconds: 60,
            piece_mib: 64,
            default_max_upload_mib: 20 * 1024,
            default_quota_mib: 100 * 1024,
            simple_upload_max_mib: 64,
            price_per_megapixel_frame: 1.0,
            job_max_attempts: 3,
            webhook_allow_http: false,
            audit_checkpoint_seconds: 300,
            header_timeout_seconds: 10,
            body_idle_timeout_seconds: 30,
            security_contact: String::new(),
            processing_location: String::new(),
            limits: LimitsConfig::default(),
        }
    }
}

impl ServeConfig {
    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), String> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("serve.tls_cert and serve.tls_key go together".into());
        }
        if self.link_ttl_seconds == 0 || self.link_ttl_seconds > self.link_max_ttl_seconds {
            return Err("serve.link_ttl_seconds must be 1..=serve.link_max_ttl_seconds".into());
        }
        if self.piece_mib == 0 || self.piece_mib > 1024 {
            return Err("serve.piece_mib must be 1..=1024".into());
        }
        if self.session_idle_seconds == 0 || self.session_absolute_seconds == 0 {
            return Err("session timeouts must be positive".into());
        }
        let price = self.price_per_megapixel_frame;
        if price.is_nan() || price < 0.0 || self.job_max_attempts < 1 {
            return Err(
                "serve.price_per_megapixel_frame must be >= 0 and serve.job_max_attempts >= 1"
                    .into(),
            );
        }
        if self.header_timeout_seconds == 0 || self.body_idle_timeout_seconds == 0 {
            return Err(
                "serve.header_timeout_seconds and serve.body_idle_timeout_seconds must be positive"
                    .into(),
            );
        }
        let c = &self.security_contact;
        if !c.is_empty()
            && (!(c.starts_with("mailto:") || c.starts_with("https://"))
                || c.len() > 300
                || c.chars().any(|ch| ch.is_control() || ch.is_whitespace()))
        {
            return Err("serve.security_contact must be a mailto: or https:// URI".into());
        }
        if self.processing_location.len() > 300
            || self.processing_location.chars().any(char::is_control)
        {
            return Err("serve.processing_location must be one line of at most 300 bytes".into());
        }
        if self.audit_checkpoint_seconds == 0 {
            return Err("serve.audit_checkpoint_seconds must be positive".into());
        }
        if self.default_max_upload_mib <= 0 || self.default_quota_mib <= 0 {
            return Err("default tenant limits must be positive".into());
        }
        Ok(())
    }
}
