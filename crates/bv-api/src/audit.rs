//! Writing the audit log from the service: the chain key over the vault, where
//! a request came from, and one call that records an event (in the catalog's
//! sealed chain, and as a structured log line).
//!
//! A failure to write the audit log is logged loudly but does not undo what
//! already happened (the action has committed by then); it is a `bv admin
//! audit verify` away from being noticed, and `/readyz` fails if the catalog
//! cannot be written at all.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use bv_catalog::{Catalog, ChainKey, NewAuditEvent};
use bv_crypto::SecretKey;
use bv_vault::{Vault, VaultError};
use http::request::Parts;

use crate::state::AppState;

/// The vault service-key purpose that seals the audit chain.
pub const AUDIT_PURPOSE: &str = "audit";

/// The audit chain key: the live versions of the vault's `audit` service key
/// (wrapped by the root key; the database never holds it), read once for one
/// append, checkpoint or verification.
pub struct VaultChainKey(Arc<Vec<(u32, SecretKey)>>);

impl VaultChainKey {
    /// Reads the chain key's versions from the vault.
    pub async fn load(vault: &Vault) -> Result<Self, VaultError> {
        Ok(Self(vault.keys().service_keys(AUDIT_PURPOSE).await?))
    }
}

impl ChainKey for VaultChainKey {
    fn seal(&self, msg: &[u8]) -> Result<(u32, [u8; 32]), String> {
        let (v, k) = self.0.last().ok_or("no audit key")?;
        Ok((*v, bv_crypto::secret::mac(k, msg)))
    }

    fn check(&self, version: u32, msg: &[u8], tag: &[u8]) -> bool {
        self.0
            .iter()
            .find(|(v, _)| *v == version)
            .is_some_and(|(_, k)| bv_crypto::secret::mac_verify(k, msg, tag))
    }
}

/// The request id the middleware gave a request (in its extensions).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Where a request came from.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The request id (also in the `x-request-id` response header).
    pub request_id: String,
    /// The peer address.
    pub source: String,
}

impl Origin {
    /// Reads both from a request's parts.
    pub fn of(parts: &Parts) -> Self {
        Self {
            request_id: parts
                .extensions
                .get::<RequestId>()
                .map(|r| r.0.clone())
                .unwrap_or_default(),
            source: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
                .unwrap_or_default(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::of(parts))
    }
}

/// One event, as a handler describes it.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    /// The tenant concerned.
    pub tenant: Option<&'a str>,
    /// Who acted (`principal:<id>`, `link`, …).
    pub actor: &'a str,
    /// Dotted action name.
    pub action: &'a str,
    /// What it was done to.
    pub target: &'a str,
    /// `ok`, `refused`, …
    pub outcome: &'a str,
}

/// Records `e` (with `detail`, a small JSON object without secrets).
pub async fn record(st: &AppState, origin: &Origin, e: Event<'_>, detail: serde_json::Value) {
    record_with(&st.catalog, &st.vault, origin, e, detail).await;
}

/// [`record`] for processes without the API's state (workers, admin commands).
pub async fn record_with(
    catalog: &Catalog,
    vault: &Vault,
    origin: &Origin,
    e: Event<'_>,
    detail: serde_json::Value,
) {
    let detail = detail.to_string();
    // Targets and actors can hold client text (a login name): escape it for the log line.
    tracing::info!(target: "audit", action = e.action, outcome = e.outcome, tenant = e.tenant,
        actor = %crate::logsafe::text(e.actor, 200), object = %crate::logsafe::text(e.target, 300),
        request_id = %origin.request_id, "audit event");
    let ev = NewAuditEvent {
        tenant_id: e.tenant,
        actor: e.actor,
        action: e.action,
        target: e.target,
        outcome: e.outcome,
        request_id: &origin.request_id,
        source: &origin.source,
        detail: &detail,
    };
    let appended = match VaultChainKey::load(vault).await {
        Ok(key) => catalog
            .append_audit(&ev, &key)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(err) = appended {
        tracing::error!(action = e.action, error = %err, "could not write the audit log");
    }
}
