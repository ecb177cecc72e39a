//! What every request handler shares.

use std::sync::Arc;

use bv_catalog::Catalog;
use bv_vault::Vault;

use crate::config::ServeConfig;
use crate::links::Links;
use crate::metrics::Metrics;

/// Shared service state.
#[derive(Debug)]
pub struct AppState {
    /// Metadata.
    pub catalog: Catalog,
    /// Sealed bytes.
    pub vault: Arc<Vault>,
    /// Settings of the HTTPS service.
    pub cfg: ServeConfig,
    /// The domain's settings (`[jobs]`, `[retention]`, `[billing]`).
    pub domain: bv_service::Settings,
    /// Base URL clients use (no trailing slash).
    pub public_url: String,
    /// Signed download links.
    pub links: Links,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    /// This server's id (upload lease owner), kept in the data directory so a
    /// restarted server takes its own uploads back at once.
    pub instance: String,
    /// The models and presets jobs may name (no models: any well-formed
    /// name is passed on to workers).
    pub offers: bv_service::offers::Offers,
    /// What the listener was built with (for the security report).
    pub tls: crate::report::TlsFacts,
    /// What the binary told us about the host (for the security report).
    pub host: crate::report::HostFacts,
    /// Uploads a request of this process is writing to.
    pub active_uploads: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// Handle passed to handlers.
pub type State = Arc<AppState>;
