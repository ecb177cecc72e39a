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
    /// PEM certificate chain for production; empty: a development CA in
    /// `<data_dir>/tls/` (clients trust `ca.pem`) and the 30-day certificate
    /// it issues, made when missing and renewed while serving. Reloaded on change.
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
    /// Per-upload size limit for new tenants, MiB.
    pub default_max_upload_mib: i64,
    /// Storage quota for new tenants, MiB.
    pub default_quota_mib: i64,
    /// Largest body of a simple (single-request) upload, MiB; bigger files use tus.
    pub simple_upload_max_mib: usize,
    /// Allow plain-http webhook URLs (development and tests only; production needs https).
    pub webhook_allow_http: bool,
    /// Let webhooks reach loopback, private and link-local addresses and
    /// names such as `localhost` (development and tests only: in production
    /// that would let a tenant make the service call into its own network).
    pub webhook_allow_private: bool,
    /// How often the server signs a checkpoint at the end of the audit log,
    /// seconds (entries cut off the end below a checkpoint are detected).
    pub audit_checkpoint_seconds: u64,
    /// Seconds a client gets to send a request's head (request line and
    /// headers); slower connections are closed (slow-header attacks).
    pub header_timeout_seconds: u64,
    /// Seconds a request body may stall (no byte arriving) before the request
    /// is answered 408 `body_timeout`; an interrupted tus upload resumes.
    pub body_idle_timeout_seconds: u64,
    /// Slowest request body accepted, bytes per second, averaged over each
    /// `body_idle_timeout_seconds` of waiting for the client (time the server
    /// spends storing what arrived does not count): a body trickled a byte
    /// at a time is answered 408 `body_timeout` too. 0: no minimum.
    pub min_body_bytes_per_second: u64,
    /// Seconds a connection may stay open with no request in progress (an
    /// HTTP/2 connection that only answers PINGs, an idle keep-alive); it
    /// is then closed gracefully (what is in flight finishes).
    pub idle_timeout_seconds: u64,
    /// Most connections open at once (further ones are closed at accept).
    pub max_connections: usize,
    /// Most connections open at once from one client address (an IPv6
    /// client counts by its /64, which one host can fill with addresses).
    pub max_connections_per_address: usize,
    /// Reverse proxies in front of the service: addresses or ranges
    /// (`127.0.0.1`, `10.0.0.0/8`; `BV_SERVE_TRUSTED_PROXIES` comma-separated).
    /// A request from one of them counts as from the client its
    /// `X-Forwarded-For` names (the rightmost address that is no trusted
    /// proxy): sign-in throttling, rate limits and the audit log see that
    /// client, and the proxy is exempt from the per-address connection cap.
    /// Empty (default): the header is ignored, whoever sends it.
    pub trusted_proxies: Vec<String>,
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

pub use bv_service::limits::LimitsConfig;

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
            default_max_upload_mib: 20 * 1024,
            default_quota_mib: 100 * 1024,
            simple_upload_max_mib: 64,
            webhook_allow_http: false,
            webhook_allow_private: false,
            audit_checkpoint_seconds: 60,
            header_timeout_seconds: 10,
            body_idle_timeout_seconds: 30,
            min_body_bytes_per_second: 1024,
            idle_timeout_seconds: 120,
            max_connections: 10_000,
            max_connections_per_address: 256,
            trusted_proxies: Vec::new(),
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
        if self.session_idle_seconds == 0 || self.session_absolute_seconds == 0 {
            return Err("session timeouts must be positive".into());
        }
        if self.idle_timeout_seconds == 0
            || self.max_connections == 0
            || self.max_connections_per_address == 0
        {
            return Err("serve.idle_timeout_seconds, serve.max_connections and \
                 serve.max_connections_per_address must be positive"
                .into());
        }
        crate::proxy::TrustedProxies::parse(&self.trusted_proxies)?;
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
