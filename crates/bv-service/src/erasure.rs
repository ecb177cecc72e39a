//! Erasing a whole tenant, with a signed receipt.
//!
//! Order matters: the tenant is locked out (keys and sessions deleted), its
//! running jobs are told to stop, then its vault keys are destroyed — from
//! that moment no object of the tenant opens, backups included — then its
//! object records, blobs and catalog rows go, then the vault is swept once
//! more for anything a straggling request sealed meanwhile. The receipt
//! says what went and when, and is signed with an Ed25519 key (a vault
//! service key, `erasure`) whose public half anyone can check it with.

use std::collections::BTreeMap;

use bv_catalog::{Catalog, Tenant};
use bv_vault::Vault;
use serde::{Deserialize, Serialize};

use crate::audit::{Event, Origin};
use crate::error::{ServiceError, ServiceResult};

/// The receipt's format name.
pub const RECEIPT_FORMAT: &str = "bettervideo-erasure-receipt/1";

/// What was erased, as signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// [`RECEIPT_FORMAT`].
    pub format: String,
    /// The tenant's id.
    pub tenant_id: String,
    /// The tenant's name.
    pub tenant_name: String,
    /// Who asked (`operator:<name>` or `principal:<id>`).
    pub requested_by: String,
    /// When the tenant's keys were destroyed (RFC 3339).
    pub keys_destroyed_at: String,
    /// When the erasure finished (RFC 3339).
    pub finished_at: String,
    /// Tenant key versions destroyed.
    pub key_versions: Vec<u32>,
    /// Sealed objects removed.
    pub objects: usize,
    /// Plaintext bytes those objects held.
    pub bytes: u64,
    /// Catalog rows removed, per table.
    pub rows: BTreeMap<String, u64>,
    /// What a copy of the catalog or a backup can still open, for the
    /// configuration that ran the erasure, in one sentence (absent from
    /// receipts signed before it was added).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub copies: String,
    /// Version of the erasure signing key.
    pub signing_key_version: u32,
    /// Its Ed25519 public key, hex.
    pub public_key: String,
}

/// A receipt and its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignedReceipt {
    /// What was erased.
    pub receipt: Receipt,
    /// Ed25519 signature of the receipt's JSON (as serialised here, fields
    /// in the order above), hex.
    pub signature: String,
}

/// The bytes a receipt's signature covers.
fn signed_bytes(r: &Receipt) -> Vec<u8> {
    serde_json::to_vec(r).expect("a receipt serialises")
}

/// The receipt's sentence on copies: what holds for this configuration
/// (docs/erasure.md, "What a copy of the disk holds").
fn copies(
    catalog: &Catalog,
    vault: &Vault,
    first: &bv_vault::TenantErasure,
    late: &bv_vault::TenantErasure,
) -> String {
    if first.kek_destroyed || late.kek_destroyed {
        return format!(
            "This tenant's key-encryption key was destroyed inside the HSM (PKCS#11 token {:?}): \
             no copy of the catalog, of its write-ahead log or of its backups can unwrap this \
             tenant's keys any more.",
            vault.keys().token().unwrap_or_default()
        );
    }
    let mut versions: Vec<u32> = first.root_versions.clone();
    versions.extend(
        late.root_versions
            .iter()
            .filter(|v| !first.root_versions.contains(v)),
    );
    if versions.is_empty() {
        return "The tenant had no keys: nothing of it can be opened from any copy.".into();
    }
    let versions = versions
        .iter()
        .map(|v| format!("v{v}"))
        .collect::<Vec<_>>()
        .join(", ");
    match catalog.backend() {
        bv_catalog::Backend::Sqlite => format!(
            "The catalog's files hold no copy of the destroyed keys (SQLite, zeroed and its log \
             emptied); a backup taken before this erasure still opens the tenant's data with root \
             key {versions} until that is retired: run `bv keys rotate --root`."
        ),
        bv_catalog::Backend::Postgres => format!(
            "PostgreSQL may keep the destroyed keys in dead rows, its write-ahead log and its \
             backups; those open the tenant's data only with root key {versions}, usable until it \
             is retired: run `bv keys rotate --root`."
        ),
    }
}

/// Erases `tenant`: see the module documentation.
pub async fn erase(
    catalog: &Catalog,
    vault: &Vault,
    tenant: &Tenant,
    requested_by: &str,
    origin: &Origin,
) -> ServiceResult<SignedReceipt> {
    let t = crate::media::tenant_id(&tenant.id)?;
    catalog.lock_out_tenant(&tenant.id).await?;
    catalog.stop_tenant_jobs(&tenant.id).await?;
    let first = vault.erase_tenant(&t).await?;
    let keys_destroyed_at = crate::time::rfc3339_ms(bv_catalog::now_ms());
    let rows = catalog.erase_tenant_rows(&tenant.id).await?;
    // A request or job that was already past its checks may have sealed
    // something after the keys went (under a fresh key): that goes too.
    let late = vault.erase_tenant(&t).await?;
    crate::media::scrub(catalog).await;
    let (signing_key_version, signer) = vault.erasure_signer().await?;
    let copies = copies(catalog, vault, &first, &late);
    let mut key_versions = first.key_versions;
    key_versions.extend(late.key_versions);
    let receipt = Receipt {
        format: RECEIPT_FORMAT.into(),
        tenant_id: tenant.id.clone(),
        tenant_name: tenant.name.clone(),
        requested_by: requested_by.into(),
        keys_destroyed_at,
        finished_at: crate::time::rfc3339_ms(bv_catalog::now_ms()),
        key_versions,
        objects: first.objects + late.objects,
        bytes: first.bytes + late.bytes,
        rows,
        copies,
        signing_key_version,
        public_key: bv_crypto::secret::hex(&signer.public_key()),
    };
    let signature = bv_crypto::secret::hex(&signer.sign(&signed_bytes(&receipt)));
    let detail = serde_json::json!({
        "objects": receipt.objects, "bytes": receipt.bytes, "rows": receipt.rows,
        "key_versions": receipt.key_versions, "receipt_signature": signature,
    });
    let e = Event {
        tenant: Some(&tenant.id),
        actor: requested_by,
        action: "tenant.erased",
        target: &format!("tenant:{}", tenant.id),
        outcome: "ok",
    };
    crate::audit::record(catalog, vault, origin, e, detail).await;
    if first.blobs_left + late.blobs_left > 0 {
        tracing::warn!(
            blobs = first.blobs_left + late.blobs_left,
            "erasure left unreadable blobs behind; the orphan sweep removes them"
        );
    }
    Ok(SignedReceipt { receipt, signature })
}

/// Why a receipt does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptProblem {
    /// Not a receipt of this format.
    Format,
    /// This service has no erasure key of that version.
    UnknownKey,
    /// The public key in the receipt is not this service's key of that version.
    ForeignKey,
    /// The signature does not match the receipt.
    Signature,
}

/// Checks a receipt against this service's erasure key of its version.
pub async fn verify(vault: &Vault, s: &SignedReceipt) -> ServiceResult<Result<(), ReceiptProblem>> {
    if s.receipt.format != RECEIPT_FORMAT {
        return Ok(Err(ReceiptProblem::Format));
    }
    let Some(public) = vault
        .erasure_public_key(s.receipt.signing_key_version)
        .await?
    else {
        return Ok(Err(ReceiptProblem::UnknownKey));
    };
    if bv_crypto::secret::hex(&public) != s.receipt.public_key {
        return Ok(Err(ReceiptProblem::ForeignKey));
    }
    let sig = bv_crypto::secret::from_hex(&s.signature).unwrap_or_default();
    if !bv_crypto::sign::verify(&public, &signed_bytes(&s.receipt), &sig) {
        return Ok(Err(ReceiptProblem::Signature));
    }
    Ok(Ok(()))
}

/// Refused unless `confirm` names the tenant (erasure cannot be undone).
pub fn check_confirmation(tenant: &Tenant, confirm: &str) -> ServiceResult<()> {
    if confirm != tenant.name {
        return Err(ServiceError::ConfirmationRequired);
    }
    Ok(())
}
