//! The vault: put, get, range, verify, delete and sweep sealed objects.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bv_crypto::format::{self, Binding, DEFAULT_SEGMENT_LOG2, HEADER_LEN, Opener, Sealer, TAG_LEN};
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::blobs::Blobs;
use crate::config::VaultConfig;
use crate::custody::CustomerKey;
use crate::error::{Result, VaultError};
use crate::ids::{ObjectId, TenantId};
use crate::keyring::KeyRing;
use crate::keystore::{KeyStore, ObjectRecord, ObjectState};

/// A stored object as callers see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ObjectInfo {
    /// Object id.
    pub object: String,
    /// Owning tenant.
    pub tenant: String,
    /// Plaintext length.
    pub plain_len: u64,
    /// Stored (sealed) length.
    pub sealed_len: u64,
}

/// What a sweep removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    /// Interrupted puts whose keys and leftovers were removed.
    pub abandoned_puts: usize,
    /// Leftover pieces (staging files, incomplete uploads, blobs) removed for them.
    pub pieces: usize,
    /// Blobs with no key record (unreadable garbage) removed.
    pub orphan_blobs: usize,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn binding(t: &TenantId, o: &ObjectId, r: &ObjectRecord) -> Binding {
    Binding {
        tenant: t.0,
        object: o.0,
        key_version: r.dek_version,
    }
}

/// Reads until `buf` is full or the reader ends; returns the bytes read.
async fn read_full(r: &mut (impl AsyncRead + Unpin), buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let k = r.read(&mut buf[n..]).await?;
        if k == 0 {
            break;
        }
        n += k;
    }
    Ok(n)
}

/// The service-key purpose that seals customer keys for a job's life.
pub const CUSTODY_PURPOSE: &str = "custody";

/// Sealed objects in a blob store, keys in a key ring.
#[derive(Debug)]
pub struct Vault {
    blobs: Blobs,
    keys: KeyRing,
    segment_log2: u8,
    part_size: usize,
    fields: crate::fields::FieldKeys,
}

impl Vault {
    /// Opens the vault described by `cfg` with its keys in `store`; also
    /// returns the key ring's notice, if any.
    pub fn open(
        cfg: &VaultConfig,
        data_dir: &Path,
        store: Arc<dyn KeyStore>,
    ) -> Result<(Self, Option<String>)> {
        if cfg.part_size_mib < 5 || cfg.part_size_mib > 512 {
            return Err(VaultError::Config(
                "vault.part_size_mib must be 5..=512".into(),
            ));
        }
        let blobs = Blobs::open(cfg, data_dir)?;
        let (keys, notice) = KeyRing::open(cfg, data_dir, store)?;
        Ok((
            Self {
                blobs,
                keys,
                segment_log2: DEFAULT_SEGMENT_LOG2,
                part_size: cfg.part_size_mib << 20,
                fields: Default::default(),
            },
            notice,
        ))
    }

    /// A vault over explicit parts.
    pub fn new(blobs: Blobs, keys: KeyRing, part_size: usize) -> Self {
        Self {
            blobs,
            keys,
            segment_log2: DEFAULT_SEGMENT_LOG2,
            part_size,
            fields: Default::default(),
        }
    }

    /// The field keys this process holds (see [`crate::fields`]).
    pub fn field_keys(&self) -> &crate::fields::FieldKeys {
        &self.fields
    }

    /// The key ring (rotation, status).
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// HMAC-SHA256 of `msg` under the current version of the service key
    /// `purpose` (e.g. `queue`): (version, tag). The key never leaves the vault.
    pub async fn mac(&self, purpose: &str, msg: &[u8]) -> Result<(u32, [u8; 32])> {
        let keys = self.keys.service_keys(purpose).await?;
        let (v, k) = keys
            .last()
            .expect("service_keys never returns an empty list");
        Ok((*v, bv_crypto::secret::mac(k, msg)))
    }

    /// Whether `tag` is the MAC of `msg` under version `version` of the
    /// service key `purpose` (constant-time; an unknown version never matches).
    pub async fn mac_verify(
        &self,
        purpose: &str,
        version: u32,
        msg: &[u8],
        tag: &[u8],
    ) -> Result<bool> {
        Ok(self
            .keys
            .service_key(purpose, version)
            .await?
            .is_some_and(|k| bv_crypto::secret::mac_verify(&k, msg, tag)))
    }

    /// The blob backend.
    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// The committed record of `o` if `t` owns it; anything else is "not found".
    async fn committed(&self, t: &TenantId, o: &ObjectId) -> Result<(ObjectRecord, u64, u64)> {
        match self.keys.store().object(o).await? {
            Some(r) if r.tenant == t.to_string() => match r.state {
                ObjectState::Committed {
                    plain_len,
                    sealed_len,
                } => Ok((r, plain_len, sealed_len)),
                ObjectState::Pending { .. } => Err(VaultError::NotFound),
            },
            _ => Err(VaultError::NotFound),
        }
    }

    /// Seals everything `src` yields into a new object of tenant `t`.
    /// Memory: one upload part plus two segments, whatever the size.
    pub async fn put(&self, t: &TenantId, src: impl AsyncRead + Unpin) -> Result<ObjectInfo> {
        self.put_for(t, src, None).await
    }

    /// The keyed fingerprint of a customer key for tenant `t` (what the
    /// catalog and key store keep instead of the key).
    pub async fn customer_fingerprint(&self, t: &TenantId, ck: &CustomerKey) -> Result<String> {
        let mut msg = format!("{t}|").into_bytes();
        msg.extend_from_slice(ck.expose());
        let (v, tag) = self.mac(crate::custody::FINGERPRINT_PURPOSE, &msg).await?;
        Ok(format!("v{v}:{}", bv_crypto::secret::hex(&tag)))
    }

    /// Seals a customer key for the life of one job (bound to `context`, e.g.
    /// the job id) under the service key `custody`; the catalog keeps the
    /// result only while the job runs.
    pub async fn seal_custody(&self, context: &str, ck: &CustomerKey) -> Result<String> {
        let keys = self.keys.service_keys(CUSTODY_PURPOSE).await?;
        let (v, k) = keys
            .last()
            .expect("service_keys never returns an empty list");
        let key = bv_crypto::keys::SecretKey::from_bytes(*ck.expose());
        let wrapped = k.wrap(&key, format!("bettervideo custody|{context}").as_bytes())?;
        Ok(format!("v{v}:{}", bv_crypto::secret::hex(&wrapped)))
    }

    /// Opens what [`seal_custody`](Self::seal_custody) sealed for `context`.
    pub async fn open_custody(&self, context: &str, sealed: &str) -> Result<CustomerKey> {
        let bad = || VaultError::Key("malformed custody record".into());
        let (v, hex) = sealed.split_once(':').ok_or_else(bad)?;
        let v: u32 = v
            .strip_prefix('v')
            .and_then(|v| v.parse().ok())
            .ok_or_else(bad)?;
        let k = self
            .keys
            .service_key(CUSTODY_PURPOSE, v)
            .await?
            .ok_or_else(bad)?;
        let key = k.unwrap(
            &bv_crypto::secret::from_hex(hex).ok_or_else(bad)?,
            format!("bettervideo custody|{context}").as_bytes(),
        )?;
        CustomerKey::from_slice(key.expose())
    }

    /// [`put`](Self::put), sealing under a data key that also needs the
    /// customer's key `ck` to open (see [`crate::custody`]).
    pub async fn put_for(
        &self,
        t: &TenantId,
        src: impl AsyncRead + Unpin,
        ck: Option<&CustomerKey>,
    ) -> Result<ObjectInfo> {
        self.put_as(t, src, ck, None).await
    }

    /// [`put_for`](Self::put_for) of a video's piece: recorded as one
    /// ([`crate::keystore::PIECE`]), so that once no video refers to it the
    /// reconciliation may take it for an orphan.
    pub async fn put_piece(
        &self,
        t: &TenantId,
        src: impl AsyncRead + Unpin,
        ck: Option<&CustomerKey>,
    ) -> Result<ObjectInfo> {
        self.put_as(t, src, ck, Some(crate::keystore::PIECE)).await
    }

    async fn put_as(
        &self,
        t: &TenantId,
        src: impl AsyncRead + Unpin,
        ck: Option<&CustomerKey>,
        purpose: Option<&str>,
    ) -> Result<ObjectInfo> {
        let o = ObjectId::random()?;
        let (tenant_share, tenant_key_version, wrapped_dek) =
            self.keys.new_object_key(t, &o).await?;
        let (dek, customer) = match ck {
            Some(ck) => {
                let fp = self.customer_fingerprint(t, ck).await?;
                let (dek, share) = crate::custody::split(&tenant_share, ck, fp, t, &o, 1)?;
                (dek, Some(share))
            }
            None => (tenant_share, None),
        };
        let mut record = ObjectRecord {
            object: o.to_string(),
            tenant: t.to_string(),
            dek_version: 1,
            tenant_key_version,
            wrapped_dek,
            created: now(),
            state: ObjectState::Pending { upload: None },
            customer,
            purpose: purpose.map(str::to_string),
        };
        // The pending record comes first, so a crash at any later point leaves
        // something the sweep can find.
        self.keys.store().put_object(&o, &record).await?;
        let mut upload = match self.blobs.begin(&o, self.part_size).await {
            Ok(u) => u,
            Err(e) => {
                self.keys.store().delete_object(&o).await?;
                return Err(e);
            }
        };
        if let Some(id) = upload.id() {
            record.state = ObjectState::Pending { upload: Some(id) };
            if let Err(e) = self.keys.store().put_object(&o, &record).await {
                let _ = upload.abort().await;
                self.keys.store().delete_object(&o).await?;
                return Err(e);
            }
        }
        let sealer = Sealer::new(&dek, &binding(t, &o, &record), self.segment_log2)?;
        match Self::stream_sealed(src, &mut upload, sealer).await {
            Ok((plain_len, sealed_len)) => {
                upload.finish().await?;
                record.state = ObjectState::Committed {
                    plain_len,
                    sealed_len,
                };
                self.keys.store().put_object(&o, &record).await?;
                Ok(ObjectInfo {
                    object: o.to_string(),
                    tenant: t.to_string(),
                    plain_len,
                    sealed_len,
                })
            }
            Err(e) => {
                let _ = upload.abort().await;
                let _ = self.blobs.reclaim(&o, None).await;
                self.keys.store().delete_object(&o).await?;
                Err(e)
            }
        }
    }

    async fn stream_sealed(
        mut src: impl AsyncRead + Unpin,
        upload: &mut crate::blobs::Upload,
        mut sealer: Sealer,
    ) -> Result<(u64, u64)> {
        let s = sealer.segment_size();
        upload.write(sealer.header()).await?;
        let mut sealed = HEADER_LEN as u64;
        let mut cur = vec![0u8; s];
        let mut n = read_full(&mut src, &mut cur).await?;
        let mut next = vec![0u8; s];
        let mut total = 0u64;
        loop {
            let m = if n == s {
                read_full(&mut src, &mut next).await?
            } else {
                0
            };
            let last = m == 0;
            cur.truncate(n);
            sealer.seal_segment(&mut cur, last)?;
            upload.write(&cur).await?;
            sealed += cur.len() as u64;
            total += n as u64;
            if last {
                return Ok((total, sealed));
            }
            cur.resize(s, 0);
            std::mem::swap(&mut cur, &mut next);
            n = m;
        }
    }

    /// Opens object `o` of tenant `t` into `dst`, releasing each segment only
    /// after it verifies. Returns the plaintext length.
    pub async fn get(
        &self,
        t: &TenantId,
        o: &ObjectId,
        dst: impl AsyncWrite + Unpin,
    ) -> Result<u64> {
        self.get_for(t, o, dst, None).await
    }

    /// The data key of `r`: the tenant's share, joined with the customer's
    /// when the object has one (which then needs `ck`).
    async fn dek(
        &self,
        t: &TenantId,
        o: &ObjectId,
        r: &ObjectRecord,
        ck: Option<&CustomerKey>,
    ) -> Result<bv_crypto::keys::SecretKey> {
        let tenant_share = self.keys.object_key(r).await?;
        match &r.customer {
            None => Ok(tenant_share),
            Some(share) => {
                let ck = match ck {
                    Some(c) => Some((c, self.customer_fingerprint(t, c).await?)),
                    None => None,
                };
                crate::custody::join(&tenant_share, share, ck, t, o, r.dek_version)
            }
        }
    }

    /// [`get`](Self::get) of an object that may need the customer's key.
    pub async fn get_for(
        &self,
        t: &TenantId,
        o: &ObjectId,
        mut dst: impl AsyncWrite + Unpin,
        ck: Option<&CustomerKey>,
    ) -> Result<u64> {
        let (r, plain_len, _) = self.committed(t, o).await?;
        let dek = self.dek(t, o, &r, ck).await?;
        let (_, mut chunks) = self.blobs.get(o).await?;
        // Unconsumed bytes are buf[at..]; consumed ones are dropped when a
        // chunk arrives, so a big chunk is not shifted once per segment.
        let mut buf: Vec<u8> = Vec::new();
        let mut at = 0usize;
        let mut opener: Option<Opener> = None;
        let mut seg_size = 0usize;
        let mut n_segments = 0u64;
        let mut index = 0u64;
        let mut out = Vec::new();
        let mut written = 0u64;
        let mut ended = false;
        loop {
            // Take whole segments (the last one by its index, from the trusted record).
            loop {
                if opener.is_none() {
                    if buf.len() - at < HEADER_LEN {
                        break;
                    }
                    let op = Opener::new(&buf[at..at + HEADER_LEN], &dek, &binding(t, o, &r))?;
                    seg_size = op.header().segment_size();
                    n_segments = format::segment_count(plain_len, seg_size);
                    at += HEADER_LEN;
                    opener = Some(op);
                }
                let op = opener.as_ref().expect("set above");
                if index == n_segments {
                    if buf.len() > at {
                        return Err(VaultError::Integrity(bv_crypto::CryptoError::TrailingData));
                    }
                    break;
                }
                let last = index == n_segments - 1;
                let want = if last {
                    (plain_len - index * seg_size as u64) as usize + TAG_LEN
                } else {
                    seg_size + TAG_LEN
                };
                if buf.len() - at < want && !ended {
                    break;
                }
                if buf.len() - at < want {
                    // The stream ended early: what is there is a damaged or missing segment.
                    op.open_segment(index, &buf[at..], true, &mut out)?;
                    return Err(VaultError::Integrity(bv_crypto::CryptoError::Truncated {
                        segments: index,
                    }));
                }
                op.open_segment(index, &buf[at..at + want], last, &mut out)?;
                dst.write_all(&out).await?;
                written += out.len() as u64;
                at += want;
                index += 1;
            }
            if ended {
                break;
            }
            match chunks.next().await {
                Some(c) => {
                    let c = c?;
                    buf.drain(..at);
                    at = 0;
                    buf.extend_from_slice(&c);
                }
                None => ended = true,
            }
        }
        if opener.is_none() {
            return Err(VaultError::Integrity(bv_crypto::CryptoError::Format(
                "shorter than a header",
            )));
        }
        if index < n_segments {
            return Err(VaultError::Integrity(bv_crypto::CryptoError::Truncated {
                segments: index,
            }));
        }
        dst.flush().await?;
        Ok(written)
    }

    /// Bytes `range` of the plaintext, opening only the segments it needs.
    pub async fn get_range(
        &self,
        t: &TenantId,
        o: &ObjectId,
        range: Range<u64>,
    ) -> Result<Vec<u8>> {
        self.get_range_for(t, o, range, None).await
    }

    /// [`get_range`](Self::get_range) of an object that may need the customer's key.
    pub async fn get_range_for(
        &self,
        t: &TenantId,
        o: &ObjectId,
        range: Range<u64>,
        ck: Option<&CustomerKey>,
    ) -> Result<Vec<u8>> {
        let (r, plain_len, _) = self.committed(t, o).await?;
        let dek = self.dek(t, o, &r, ck).await?;
        let header = self.blobs.get_range(o, 0..HEADER_LEN as u64).await?;
        let opener = Opener::new(&header, &dek, &binding(t, o, &r))?;
        let s = opener.header().segment_size();
        let (first, last, bytes) = format::range_plan(plain_len, s, range.start, range.end)?;
        let n = format::segment_count(plain_len, s);
        let sealed = self.blobs.get_range(o, bytes).await?;
        let mut plain = Vec::with_capacity((range.end - range.start) as usize);
        let mut out = Vec::new();
        for (k, seg) in sealed.chunks(s + TAG_LEN).enumerate() {
            let idx = first + k as u64;
            opener.open_segment(idx, seg, idx == n - 1, &mut out)?;
            let seg_start = idx * s as u64;
            let from = range.start.saturating_sub(seg_start) as usize;
            let to = ((range.end - seg_start) as usize).min(out.len());
            if from < to {
                plain.extend_from_slice(&out[from..to]);
            }
        }
        if first + (sealed.len().div_ceil(s + TAG_LEN) as u64) != last + 1 {
            return Err(VaultError::Integrity(bv_crypto::CryptoError::Truncated {
                segments: first,
            }));
        }
        Ok(plain)
    }

    /// Verifies every segment's tag without writing plaintext anywhere.
    pub async fn verify(&self, t: &TenantId, o: &ObjectId) -> Result<u64> {
        self.get(t, o, tokio::io::sink()).await
    }

    /// Describes a committed object.
    pub async fn stat(&self, t: &TenantId, o: &ObjectId) -> Result<ObjectInfo> {
        let (_, plain_len, sealed_len) = self.committed(t, o).await?;
        Ok(ObjectInfo {
            object: o.to_string(),
            tenant: t.to_string(),
            plain_len,
            sealed_len,
        })
    }

    /// Deletes an object: its wrapped data key first (after which the blob is
    /// unreadable, backups included), then the blob.
    pub async fn delete(&self, t: &TenantId, o: &ObjectId) -> Result<()> {
        self.committed(t, o).await?;
        self.keys.store().delete_object(o).await?;
        self.blobs.delete(o).await
    }

    /// Removes what interrupted puts older than `older_than` left behind, and
    /// blobs that have no key record at all.
    pub async fn sweep(&self, older_than: Duration) -> Result<SweepReport> {
        let mut rep = SweepReport::default();
        let cutoff = now().saturating_sub(older_than.as_secs());
        for o in self.keys.store().objects().await? {
            let Some(r) = self.keys.store().object(&o).await? else {
                continue;
            };
            if let ObjectState::Pending { upload } = &r.state
                && r.created <= cutoff
            {
                rep.pieces += self.blobs.reclaim(&o, upload.as_deref()).await?;
                self.keys.store().delete_object(&o).await?;
                rep.abandoned_puts += 1;
            }
        }
        for (o, age) in self.blobs.list().await? {
            if age >= older_than.as_secs() && self.keys.store().object(&o).await?.is_none() {
                self.blobs.delete(&o).await?;
                rep.orphan_blobs += 1;
            }
        }
        Ok(rep)
    }
}
