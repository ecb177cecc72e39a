//! BetterVideo's HTTPS service.
//!
//! `bv serve` builds a [`state::AppState`] from the catalog and the vault and
//! calls [`start`]: rustls on every listener (TLS 1.2/1.3, AEAD with forward
//! secrecy only), an optional plain-HTTP port that only redirects, the
//! routes of [`routes`] behind the middleware of [`middleware`]. The
//! rules behind the routes are the domain's (`bv_service`); this crate adds
//! HTTP: authentication, tenancy answers, status codes, bodies.
//!
//! This part never parses media: bytes go from the socket into the vault
//! sealed, and from the vault to the socket verified.
#![forbid(unsafe_code)]

pub mod audit;
pub mod auth;
pub mod config;
pub mod custody;
pub mod error;
pub mod extract;
pub mod limits;
pub mod links;
mod listen;
pub mod media;
pub mod metrics;
pub mod middleware;
pub mod proxy;
pub mod ready;
pub mod report;
pub mod routes;
pub mod sealed;
pub mod state;
pub mod throttle;
pub mod tls;
pub mod tus_wire;

pub use bv_service::{logsafe, time};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bv_catalog::Catalog;
use bv_vault::Vault;

pub use config::ServeConfig;
pub use error::ApiError;
use state::AppState;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Configuration makes no sense.
    #[error("serve configuration: {0}")]
    Config(String),
    /// Certificate or key problem.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// A listener could not be opened.
    #[error("cannot listen on {addr}: {err}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        err: std::io::Error,
    },
    /// The data directory could not be used.
    #[error("data directory: {0}")]
    Io(#[from] std::io::Error),
}

impl ServeError {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Config(_) => "config_invalid",
            Self::Tls(_) => "tls_setup_failed",
            Self::Bind { .. } => "listen_failed",
            Self::Io(_) => "io_error",
        }
    }
}

/// A running service.
#[derive(Debug)]
pub struct Running {
    /// The HTTPS address actually bound.
    pub addr: SocketAddr,
    /// The redirect listener's address, if any.
    pub redirect_addr: Option<SocketAddr>,
    /// The URL clients use.
    pub url: String,
    /// The development CA's certificate (`tls/ca.pem`: what clients trust), when one is used.
    pub dev_cert: Option<PathBuf>,
    /// Whether the development CA was just made.
    pub dev_cert_new: bool,
    /// Shared state (tests and the binary read it).
    pub state: state::State,
    server: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Waits until the server stops (it runs until the process ends).
    pub async fn wait(self) {
        let _ = self.server.await;
    }
}

/// The router with its middleware and state.
pub fn app(st: state::State) -> axum::Router {
    routes::router()
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&st),
            middleware::observe,
        ))
        .with_state(st)
}

/// This server's persistent instance id (`<data_dir>/instance-id`).
fn instance_id(data_dir: &Path) -> Result<String, std::io::Error> {
    let p = data_dir.join("instance-id");
    if let Ok(s) = std::fs::read_to_string(&p)
        && bv_catalog::is_id(s.trim())
    {
        return Ok(s.trim().to_string());
    }
    let id = bv_catalog::new_id().map_err(std::io::Error::other)?;
    std::fs::create_dir_all(data_dir)?;
    std::fs::write(&p, &id)?;
    Ok(id)
}

/// The state every handler shares, for a service reached at `public_url`
/// (checks that the link signing keys can be read). [`start`] serves it;
/// the router tests drive [`app`] with it in-process.
#[allow(clippy::too_many_arguments)]
pub async fn state(
    cfg: ServeConfig,
    domain: bv_service::Settings,
    catalog: Catalog,
    vault: Arc<Vault>,
    data_dir: &Path,
    offers: bv_service::offers::Offers,
    host: report::HostFacts,
    public_url: String,
    tls: report::TlsFacts,
) -> Result<state::State, ServeError> {
    let st = Arc::new(AppState {
        links: links::Links::new(Arc::clone(&vault)),
        catalog,
        vault,
        public_url,
        metrics: metrics::Metrics::default(),
        instance: instance_id(data_dir)?,
        active_uploads: Default::default(),
        offers,
        domain,
        cfg,
        tls,
        host,
    });
    // Fail now, not on the first link, if the signing keys cannot be read.
    st.vault
        .keys()
        .service_keys(links::PURPOSE)
        .await
        .map_err(|e| ServeError::Config(format!("link signing keys: {e}")))?;
    Ok(st)
}

/// Starts the service on `cfg.listen`.
pub async fn start(
    cfg: ServeConfig,
    catalog: Catalog,
    vault: Arc<Vault>,
    domain: bv_service::Settings,
    data_dir: &Path,
    offers: bv_service::offers::Offers,
    host: report::HostFacts,
) -> Result<Running, ServeError> {
    cfg.validate().map_err(ServeError::Config)?;
    let (cert, key, dev_ca, dev_new) = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone(), None, false),
        _ => {
            let dir = data_dir.join("tls");
            let d = tls::ensure_dev_ca(&dir, &cfg.dev_cert_names)?;
            tls::renew_dev_cert(dir, cfg.dev_cert_names.clone());
            (d.cert, d.key, Some(d.ca), d.new)
        }
    };
    let certs = tls::CertStore::open(&cert, &key)?;
    certs.watch(Duration::from_secs(cfg.tls_reload_seconds));
    let tls_cfg = tls::server_config(certs)?;
    let key_kind = tls::load_certified_key(&cert, &key)?.key.algorithm();

    let bind = |a: &str| {
        let a = a.to_string();
        async move {
            tokio::net::TcpListener::bind(&a)
                .await
                .map_err(|err| ServeError::Bind { addr: a, err })
        }
    };
    let listener = bind(&cfg.listen).await?;
    let addr = listener.local_addr()?;
    let redirect = if cfg.redirect_listen.is_empty() {
        None
    } else {
        Some(bind(&cfg.redirect_listen).await?)
    };
    let redirect_addr = redirect.as_ref().map(|l| l.local_addr()).transpose()?;
    let url = if cfg.public_url.is_empty() {
        let host = if addr.ip().is_loopback() || addr.ip().is_unspecified() {
            "localhost".to_string()
        } else {
            addr.ip().to_string()
        };
        format!("https://{host}:{}", addr.port())
    } else {
        cfg.public_url.trim_end_matches('/').to_string()
    };
    let tls_facts = report::TlsFacts {
        protocols: vec!["TLSv1.3".into(), "TLSv1.2".into()],
        suites: tls::suites_for(key_kind),
        redirect: redirect_addr.map(|a| a.to_string()),
    };
    let st = state(
        cfg,
        domain,
        catalog,
        vault,
        data_dir,
        offers,
        host,
        url.clone(),
        tls_facts,
    )
    .await?;
    if let Some(r) = redirect {
        tokio::spawn(listen::redirect(r, addr.port()));
    }
    let conns = listen::Connections {
        header_timeout: Duration::from_secs(st.cfg.header_timeout_seconds),
        idle_timeout: Duration::from_secs(st.cfg.idle_timeout_seconds),
        max: st.cfg.max_connections,
        per_address: st.cfg.max_connections_per_address,
    };
    let proxies =
        proxy::TrustedProxies::parse(&st.cfg.trusted_proxies).map_err(ServeError::Config)?;
    let server = tokio::spawn(listen::serve_tls(
        listener,
        tls_cfg,
        app(Arc::clone(&st)),
        conns,
        Arc::new(proxies),
    ));
    Ok(Running {
        addr,
        redirect_addr,
        url,
        dev_cert: dev_ca,
        dev_cert_new: dev_new,
        state: st,
        server,
    })
}
