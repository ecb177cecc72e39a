//! The audit log: append-only, hash-chained, checked end to end.
//!
//! Every entry is sealed with a keyed MAC over its own fields *and the
//! previous entry's seal*. The key ([`ChainKey`]) lives in the vault, never in
//! the database, so someone who can write to the database can neither forge
//! an entry nor repair the chain after editing, deleting, reordering or
//! inserting one: [`Catalog::verify_audit`] reports the first position where
//! the chain breaks. Signed checkpoints record how far the log had reached,
//! so cutting entries off the end below a checkpoint is detected too.
//!
//! Appends are serialised (SQLite's single writer; a PostgreSQL advisory
//! lock), which is what gives every entry one predecessor.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::db::{Backend, Catalog, now_ms};
use crate::error::{CatalogError, Result};

/// The keyed MAC that seals entries (implemented over the vault's `audit`
/// service key; versioned so the key can rotate without breaking old seals).
pub trait ChainKey: Send + Sync {
    /// Seals `msg` with the current key: (key version, tag).
    fn seal(&self, msg: &[u8]) -> std::result::Result<(u32, [u8; 32]), String>;
    /// Whether `tag` seals `msg` under key version `version`.
    fn check(&self, version: u32, msg: &[u8], tag: &[u8]) -> bool;
}

/// An event to record.
#[derive(Debug, Clone, Default)]
pub struct NewAuditEvent<'a> {
    /// The tenant it concerns (`None`: the service as a whole).
    pub tenant_id: Option<&'a str>,
    /// Who acted: `principal:<id>`, `operator:<name>`, `link`, `worker`, `system`.
    pub actor: &'a str,
    /// What happened, dotted (`session.login`, `video.delete`, …).
    pub action: &'a str,
    /// What it happened to (`video:<id>`, `key:<id>`, …).
    pub target: &'a str,
    /// `ok`, `refused`, `failed`, …
    pub outcome: &'a str,
    /// The request that caused it (empty outside requests).
    pub request_id: &'a str,
    /// Source address (empty outside requests).
    pub source: &'a str,
    /// Small JSON object with anything else worth keeping (never secrets).
    pub detail: &'a str,
}

/// A recorded entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Position in the log, from 1, without gaps.
    pub seq: i64,
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// The tenant it concerns.
    pub tenant_id: Option<String>,
    /// Who acted.
    pub actor: String,
    /// What happened.
    pub action: String,
    /// What it happened to.
    pub target: String,
    /// How it ended.
    pub outcome: String,
    /// The request.
    pub request_id: String,
    /// Source address.
    pub source: String,
    /// More, as JSON.
    pub detail: String,
    /// The chain key version that sealed it.
    pub key_version: i64,
    /// Its seal (hex), which the next entry's seal covers.
    pub seal: String,
}

/// One break in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditProblem {
    /// The position where the log stops being trustworthy.
    pub seq: i64,
    /// What is wrong there.
    pub problem: String,
}

/// A signed checkpoint: the log had reached entry `seq`, whose seal was
/// `seal`, at `at_ms`. Kept in the catalog and, as an anchor, outside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditCheckpoint {
    /// The last entry it vouches for.
    pub seq: i64,
    /// That entry's seal.
    pub seal: String,
    /// When it was signed, ms.
    pub at_ms: i64,
    /// The chain key version that signed it.
    pub key_version: i64,
    /// The signature (hex).
    pub signature: String,
}

/// What [`Catalog::verify_audit`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    /// Entries read.
    pub entries: i64,
    /// The last entry's position (0: empty log).
    pub last_seq: i64,
    /// Checkpoints read.
    pub checkpoints: i64,
    /// Checkpoints anchored outside the catalog that were checked.
    pub anchors: i64,
    /// Breaks found, first first (empty: the log verifies).
    pub problems: Vec<AuditProblem>,
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn put(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u64).to_be_bytes());
    out.extend_from_slice(field);
}

/// The bytes an entry's seal covers: a version tag, every field
/// (length-prefixed, so no two entries encode alike) and the previous seal.
pub fn link_bytes(e: &AuditEntry, prev_seal: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    put(&mut out, b"bv-audit-v1");
    put(&mut out, e.seq.to_string().as_bytes());
    put(&mut out, e.at_ms.to_string().as_bytes());
    match &e.tenant_id {
        Some(t) => put(&mut out, format!("t:{t}").as_bytes()),
        None => put(&mut out, b"-"),
    }
    for f in [
        &e.actor,
        &e.action,
        &e.target,
        &e.outcome,
        &e.request_id,
        &e.source,
        &e.detail,
    ] {
        put(&mut out, f.as_bytes());
    }
    put(&mut out, prev_seal.as_bytes());
    out
}

/// The bytes a checkpoint's signature covers.
pub fn checkpoint_bytes(seq: i64, seal: &str, at_ms: i64) -> Vec<u8> {
    let mut out = Vec::new();
    put(&mut out, b"bv-audit-checkpoint-v1");
    put(&mut out, seq.to_string().as_bytes());
    put(&mut out, seal.as_bytes());
    put(&mut out, at_ms.to_string().as_bytes());
    out
}

fn entry(r: &AnyRow) -> Result<AuditEntry> {
    Ok(AuditEntry {
        seq: r.try_get("seq")?,
        at_ms: r.try_get("at_ms")?,
        tenant_id: r.try_get("tenant_id")?,
        actor: r.try_get("actor")?,
        action: r.try_get("action")?,
        target: r.try_get("target")?,
        outcome: r.try_get("outcome")?,
        request_id: r.try_get("request_id")?,
        source: r.try_get("source")?,
        detail: r.try_get("detail")?,
        key_version: r.try_get("key_version")?,
        seal: r.try_get("seal")?,
    })
}

/// The columns of `audit_log`, as a literal (queries must be static strings).
macro_rules! columns {
    () => {
        "seq, at_ms, tenant_id, actor, action, target, outcome, request_id, source, detail, key_version, seal"
    };
}

/// Keeps a field to a sane size and free of control characters, so an entry
/// stays one readable line wherever it is shown.
fn clean(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .take(max)
        .collect()
}

impl Catalog {
    async fn audit_lock(&self, tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
        if self.backend() == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext('bv_audit_log'))::TEXT")
                .fetch_one(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Appends an event, sealed onto the chain.
    pub async fn append_audit(
        &self,
        e: &NewAuditEvent<'_>,
        key: &dyn ChainKey,
    ) -> Result<AuditEntry> {
        let mut tx = self.write_tx().await?;
        self.audit_lock(&mut tx).await?;
        let last = sqlx::query("SELECT seq, seal FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
        let (seq, prev) = match last {
            Some(r) => (
                r.try_get::<i64, _>("seq")? + 1,
                r.try_get::<String, _>("seal")?,
            ),
            None => (1, GENESIS.to_string()),
        };
        let mut out = AuditEntry {
            seq,
            at_ms: now_ms(),
            tenant_id: e.tenant_id.map(str::to_string),
            actor: clean(e.actor, 200),
            action: clean(e.action, 100),
            target: clean(e.target, 300),
            outcome: clean(e.outcome, 100),
            request_id: clean(e.request_id, 64),
            source: clean(e.source, 100),
            detail: clean(e.detail, 2000),
            key_version: 0,
            seal: String::new(),
        };
        let (v, tag) = key
            .seal(&link_bytes(&out, &prev))
            .map_err(CatalogError::Internal)?;
        out.key_version = i64::from(v);
        out.seal = bv_crypto::secret::hex(&tag);
        sqlx::query(concat!(
            "INSERT INTO audit_log (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(out.seq)
        .bind(out.at_ms)
        .bind(out.tenant_id.clone())
        .bind(&out.actor)
        .bind(&out.action)
        .bind(&out.target)
        .bind(&out.outcome)
        .bind(&out.request_id)
        .bind(&out.source)
        .bind(&out.detail)
        .bind(out.key_version)
        .bind(&out.seal)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(out)
    }

    /// A tenant's newest entries before position `before`, newest first.
    pub async fn audit_entries_before(
        &self,
        tenant_id: &str,
        before: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>> {
        sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM audit_log WHERE tenant_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
        ))
        .bind(tenant_id)
        .bind(before)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(entry)
        .collect()
    }

    /// A tenant's access-transparency entries (what operators asked for and
    /// did, and the tenant's answers) before position `before`, newest first.
    pub async fn access_log_before(
        &self,
        tenant_id: &str,
        before: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>> {
        sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM audit_log WHERE tenant_id = $1 AND seq < $2
              AND (actor LIKE 'operator:%' OR action LIKE 'access.%')
              ORDER BY seq DESC LIMIT $3"
        ))
        .bind(tenant_id)
        .bind(before)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(entry)
        .collect()
    }

    /// How many entries with `action` and an outcome matching `outcome` (a
    /// LIKE pattern; `%` for any) there are since `since_ms`, for one tenant or all.
    pub async fn audit_count(
        &self,
        action: &str,
        outcome: &str,
        tenant_id: Option<&str>,
        since_ms: i64,
    ) -> Result<i64> {
        let r = sqlx::query(
            "SELECT COUNT(*) FROM audit_log WHERE action = $1 AND outcome LIKE $2
             AND COALESCE(tenant_id, '') LIKE $3 AND at_ms >= $4",
        )
        .bind(action)
        .bind(outcome)
        .bind(tenant_id.unwrap_or("%"))
        .bind(since_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(r.try_get(0)?)
    }

    /// How many entries with `action` whose JSON detail matches `detail` (a
    /// LIKE pattern) there are since `since_ms`.
    pub async fn audit_count_detail(
        &self,
        action: &str,
        detail: &str,
        since_ms: i64,
    ) -> Result<i64> {
        let r = sqlx::query(
            "SELECT COUNT(*) FROM audit_log WHERE action = $1 AND detail LIKE $2 AND at_ms >= $3",
        )
        .bind(action)
        .bind(detail)
        .bind(since_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(r.try_get(0)?)
    }

    /// The newest entry with `action`, if any.
    pub async fn latest_audit(&self, action: &str) -> Result<Option<AuditEntry>> {
        sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM audit_log WHERE action = $1 ORDER BY seq DESC LIMIT 1"
        ))
        .bind(action)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(entry)
        .transpose()
    }

    /// The newest entries of all tenants, newest first (operators' view).
    pub async fn audit_tail(&self, limit: i64) -> Result<Vec<AuditEntry>> {
        sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM audit_log ORDER BY seq DESC LIMIT $1"
        ))
        .bind(limit.clamp(1, 10_000))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(entry)
        .collect()
    }

    /// Records a signed checkpoint at the current end of the log (none when
    /// the log is empty); when the end is already checkpointed, that one.
    pub async fn audit_checkpoint(&self, key: &dyn ChainKey) -> Result<Option<AuditCheckpoint>> {
        let mut tx = self.write_tx().await?;
        self.audit_lock(&mut tx).await?;
        let Some(last) = sqlx::query("SELECT seq, seal FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let seq: i64 = last.try_get("seq")?;
        let seal: String = last.try_get("seal")?;
        let done = sqlx::query(
            "SELECT seq, seal, at_ms, key_version, signature FROM audit_checkpoints WHERE seq = $1",
        )
        .bind(seq)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(r) = done {
            return Ok(Some(AuditCheckpoint {
                seq,
                seal: r.try_get("seal")?,
                at_ms: r.try_get("at_ms")?,
                key_version: r.try_get("key_version")?,
                signature: r.try_get("signature")?,
            }));
        }
        let at = now_ms();
        let (v, sig) = key
            .seal(&checkpoint_bytes(seq, &seal, at))
            .map_err(CatalogError::Internal)?;
        sqlx::query(
            "INSERT INTO audit_checkpoints (seq, seal, at_ms, key_version, signature)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(seq)
        .bind(&seal)
        .bind(at)
        .bind(i64::from(v))
        .bind(bv_crypto::secret::hex(&sig))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(AuditCheckpoint {
            seq,
            seal,
            at_ms: at,
            key_version: i64::from(v),
            signature: bv_crypto::secret::hex(&sig),
        }))
    }

    /// Walks the whole log and its checkpoints, and the checkpoints
    /// `anchored` outside the catalog (which someone able to rewrite the
    /// catalog cannot delete with it); reports every break. Memory stays
    /// bounded: entries are read a page at a time and only the checkpoints
    /// are held.
    pub async fn verify_audit(
        &self,
        key: &dyn ChainKey,
        anchored: &[AuditCheckpoint],
    ) -> Result<AuditReport> {
        let mut report = AuditReport {
            entries: 0,
            last_seq: 0,
            checkpoints: 0,
            anchors: 0,
            problems: Vec::new(),
        };
        // Checkpoints first: seq -> the seal they vouch for.
        let mut vouched = std::collections::BTreeMap::new();
        for r in &sqlx::query(
            "SELECT seq, seal, at_ms, key_version, signature FROM audit_checkpoints ORDER BY seq",
        )
        .fetch_all(&self.pool)
        .await?
        {
            report.checkpoints += 1;
            let seq: i64 = r.try_get("seq")?;
            let seal: String = r.try_get("seal")?;
            let at: i64 = r.try_get("at_ms")?;
            let v: i64 = r.try_get("key_version")?;
            let sig = bv_crypto::secret::from_hex(&r.try_get::<String, _>("signature")?)
                .unwrap_or_default();
            if u32::try_from(v).is_ok_and(|v| key.check(v, &checkpoint_bytes(seq, &seal, at), &sig))
            {
                vouched.insert(seq, seal);
            } else {
                report.problems.push(AuditProblem {
                    seq,
                    problem: "a checkpoint here is not validly signed".into(),
                });
            }
        }
        for c in anchored {
            report.anchors += 1;
            let sig = bv_crypto::secret::from_hex(&c.signature).unwrap_or_default();
            let bytes = checkpoint_bytes(c.seq, &c.seal, c.at_ms);
            if u32::try_from(c.key_version).is_ok_and(|v| key.check(v, &bytes, &sig)) {
                // Where both vouch for a position they must agree; an anchor
                // beyond every catalog checkpoint is what catches a cut tail
                // whose checkpoint rows were deleted too.
                if vouched.get(&c.seq).is_some_and(|s| *s != c.seal) {
                    report.problems.push(AuditProblem {
                        seq: c.seq,
                        problem: "the catalog's checkpoint here differs from its anchor".into(),
                    });
                }
                vouched.insert(c.seq, c.seal.clone());
            } else {
                report.problems.push(AuditProblem {
                    seq: c.seq,
                    problem: "an anchored checkpoint here is not validly signed".into(),
                });
            }
        }
        let mut prev = GENESIS.to_string();
        let mut expected = 1i64;
        loop {
            let page = sqlx::query(concat!(
                "SELECT ",
                columns!(),
                " FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT 1000"
            ))
            .bind(report.last_seq)
            .fetch_all(&self.pool)
            .await?;
            if page.is_empty() {
                break;
            }
            for r in &page {
                let e = entry(r)?;
                report.entries += 1;
                if e.seq != expected {
                    report.problems.push(AuditProblem {
                        seq: expected,
                        problem: format!("entries {expected}..{} are missing (deleted)", e.seq - 1),
                    });
                }
                let tag = bv_crypto::secret::from_hex(&e.seal).unwrap_or_default();
                if !u32::try_from(e.key_version)
                    .is_ok_and(|v| key.check(v, &link_bytes(&e, &prev), &tag))
                {
                    report.problems.push(AuditProblem {
                        seq: e.seq,
                        problem: "does not match its seal: edited, inserted or moved here, \
                                  or its predecessor was"
                            .into(),
                    });
                }
                if vouched.get(&e.seq).is_some_and(|s| *s != e.seal) {
                    report.problems.push(AuditProblem {
                        seq: e.seq,
                        problem: "differs from the entry a checkpoint vouches for".into(),
                    });
                }
                expected = e.seq + 1;
                report.last_seq = e.seq;
                prev = e.seal;
            }
        }
        if let Some((&seq, _)) = vouched.range(report.last_seq + 1..).next_back() {
            report.problems.push(AuditProblem {
                seq: report.last_seq + 1,
                problem: format!(
                    "the log ends at {} but a checkpoint vouches for entry {seq}: entries were cut off the end",
                    report.last_seq
                ),
            });
        }
        report.problems.sort_by_key(|p| p.seq);
        Ok(report)
    }
}
