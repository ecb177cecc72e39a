//! Writing the audit log: the chain key over the vault, where an action came
//! from, and one call that records an event (in the catalog's sealed chain,
//! and as a structured log line).
//!
//! A failure to write the audit log is logged loudly but does not undo what
//! already happened (the action has committed by then); it is a `bv admin
//! audit verify` away from being noticed, and `/readyz` fails if the catalog
//! cannot be written at all.

use std::sync::Arc;

use bv_catalog::{Catalog, ChainKey, NewAuditEvent};
use bv_crypto::SecretKey;
use bv_vault::{Vault, VaultError};

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

/// Where an action came from (empty for the service's own: workers, the
/// sweeper, admin commands).
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The request id (also in the `x-request-id` response header).
    pub request_id: String,
    /// The peer address.
    pub source: String,
}

/// One event, as its author describes it.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    /// The tenant concerned.
    pub tenant: Option<&'a str>,
    /// Who acted (`principal:<id>`, `worker:<id>`, `system:retention`, …).
    pub actor: &'a str,
    /// Dotted action name.
    pub action: &'a str,
    /// What it was done to.
    pub target: &'a str,
    /// `ok`, `refused`, …
    pub outcome: &'a str,
}

/// Records `e` (with `detail`, a small JSON object without secrets).
pub async fn record(
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

/// Where checkpoints are anchored in the vault's blob store, one record per
/// checkpoint named by its zero-padded position (so names sort in order).
pub const ANCHORS: &str = "audit-anchors";

/// Signs a checkpoint at the end of the audit log (the last one again when
/// nothing was added) and anchors it outside the catalog, in the vault's
/// blob store: someone able to rewrite the catalog can cut entries off the
/// end and delete the checkpoint rows that vouch for them, but not the
/// anchor. Returns its position.
pub async fn checkpoint(catalog: &Catalog, vault: &Vault) -> crate::ServiceResult<Option<i64>> {
    let key = VaultChainKey::load(vault).await?;
    let Some(c) = catalog.audit_checkpoint(&key).await? else {
        return Ok(None);
    };
    let name = format!("{ANCHORS}/{:020}", c.seq);
    let bytes = serde_json::to_vec(&c).expect("a checkpoint serialises");
    vault.blobs().put_named(&name, bytes).await?;
    Ok(Some(c.seq))
}

/// Verifies the audit chain, its checkpoints and the newest anchor in the
/// blob store (which vouches for the furthest the log has reached).
pub async fn verify(
    catalog: &Catalog,
    vault: &Vault,
) -> crate::ServiceResult<bv_catalog::AuditReport> {
    let key = VaultChainKey::load(vault).await?;
    // Anchors are named by their position; other names are not ours. The
    // newest one vouches for the furthest point the log reached; its name
    // must be the position it is signed for (a copy of an older anchor
    // added under a higher name, or written over the newest, is caught).
    let names = vault.blobs().list_named(ANCHORS).await?;
    let newest = names
        .iter()
        .filter_map(|n| {
            let tail = n.strip_prefix(ANCHORS)?.strip_prefix('/')?;
            (tail.len() == 20 && tail.bytes().all(|b| b.is_ascii_digit()))
                .then(|| (tail.parse::<i64>().ok(), n))
        })
        .filter_map(|(seq, n)| Some((seq?, n)))
        .max_by_key(|(seq, _)| *seq);
    let mut anchored = Vec::new();
    if let Some((seq, name)) = newest
        && let Some(bytes) = vault.blobs().get_named(name).await?
    {
        let forged = bv_catalog::AuditCheckpoint {
            seq,
            seal: String::new(),
            at_ms: 0,
            key_version: -1,
            signature: String::new(),
        };
        match serde_json::from_slice::<bv_catalog::AuditCheckpoint>(&bytes) {
            Ok(c) if c.seq == seq => anchored.push(c),
            // Unreadable, or signed for another position than its name:
            // reported like a forged one (a signature that fails), there.
            _ => anchored.push(forged),
        }
    }
    Ok(catalog.verify_audit(&key, &anchored).await?)
}
