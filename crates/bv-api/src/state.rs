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
    /// Settings.
    pub cfg: ServeConfig,
    /// Base URL clients use (no trailing slash).
    pub public_url: String,
    /// Signed download links.
    pub links: Links,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    /// This server's id (upload lease owner), kept in the data directory so a
    /// restarted server takes its own uploads back at once.
    pub instance: String,
    /// The models jobs may name (empty: any well-formed name is passed on to workers).
    pub models: Vec<crate::routes::models::ModelOffer>,
    /// The presets jobs may name instead of a model and scale.
    pub presets: Vec<crate::routes::models::PresetOffer>,
    /// What the listener was built with (for the security report).
    pub tls: crate::report::TlsFacts,
    /// What the binary told us about the host (for the security report).
    pub host: crate::report::HostFacts,
    /// Uploads a request of this process is writing to.
    pub active_uploads: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// Handle passed to handlers.
pub type State = Arc<AppState>;
