//! Catalog configuration (one section of `bv`'s configuration file).

use serde::{Deserialize, Serialize};

/// Where the catalog lives.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CatalogConfig {
    /// Database URL: `sqlite:///path/catalog.db` or `postgres://user@host:5432/db`.
    /// Empty: the embedded default, `<data_dir>/catalog.db`.
    pub url: String,
    /// Most connections the pool opens.
    pub max_connections: u32,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            max_connections: 8,
        }
    }
}

impl CatalogConfig {
    /// The URL in effect for a data directory.
    pub fn url_for(&self, data_dir: &std::path::Path) -> String {
        if self.url.is_empty() {
            format!("sqlite://{}", data_dir.join("catalog.db").display())
        } else {
            self.url.clone()
        }
    }
}
