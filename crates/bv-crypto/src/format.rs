//! The sealed-object format, version 1 (spec: `docs/sealed-object-format.md`).
//!
//! ```text
//! header (52 bytes, the associated data of every segment)
//!   magic "BVSO" | version 1 | algorithm 1 | segment size log2 | 0
//!   data-key version (u32 BE) | salt (32) | nonce prefix (7) | 0
//! segments: ciphertext of `segment size` plaintext bytes + 16-byte tag,
//!   the last one holding 0..=segment size bytes (exactly one segment when empty)
//! segment key = HKDF-SHA256(ikm = data key, salt, info = "bettervideo sealed object v1"
//!                            | tenant id | object id | data-key version)
//! nonce(i)    = nonce prefix (7) | i (u32 BE) | 1 if last else 0
//! ```
//!
//! The per-object key binds every segment to its tenant, object and data-key
//! version; the header as associated data authenticates the whole header;
//! the counter and last flag in the nonce detect reordering, dropping,
//! duplication and truncation. Segments open independently, so a byte range
//! costs only the segments it touches.

use std::io::{self, Read, Write};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use zeroize::Zeroizing;

use crate::error::CryptoError;
use crate::keys::{KEY_LEN, SecretKey, random_bytes};

/// First bytes of every sealed object.
pub const MAGIC: [u8; 4] = *b"BVSO";
/// Format version written by this code.
pub const VERSION: u8 = 1;
/// AES-256-GCM segments, HKDF-SHA256 per-object key.
pub const ALG_AES256GCM_HKDF_SHA256: u8 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 52;
/// Authentication tag length.
pub const TAG_LEN: usize = 16;
/// Default segment size: 64 KiB (see docs/decisions/0007-sealed-segment-size.md).
pub const DEFAULT_SEGMENT_LOG2: u8 = 16;
/// Smallest and largest segment sizes accepted (4 KiB .. 16 MiB).
pub const SEGMENT_LOG2_RANGE: std::ops::RangeInclusive<u8> = 12..=24;
const INFO: &[u8] = b"bettervideo sealed object v1";
const PREFIX_LEN: usize = 7;

/// What an object is bound to: opening with any other binding fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// Tenant id (128 bits).
    pub tenant: [u8; 16],
    /// Object id (128 bits).
    pub object: [u8; 16],
    /// Version of the object's data key.
    pub key_version: u32,
}

/// A parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// log2 of the plaintext segment size.
    pub segment_log2: u8,
    /// Data-key version the object was sealed with.
    pub key_version: u32,
    /// HKDF salt.
    pub salt: [u8; 32],
    /// Nonce prefix.
    pub nonce_prefix: [u8; PREFIX_LEN],
}

impl Header {
    /// The 52 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..4].copy_from_slice(&MAGIC);
        h[4] = VERSION;
        h[5] = ALG_AES256GCM_HKDF_SHA256;
        h[6] = self.segment_log2;
        h[8..12].copy_from_slice(&self.key_version.to_be_bytes());
        h[12..44].copy_from_slice(&self.salt);
        h[44..51].copy_from_slice(&self.nonce_prefix);
        h
    }

    /// Parses and checks the fixed fields (the rest is authenticated when segments open).
    pub fn parse(b: &[u8]) -> Result<Self, CryptoError> {
        if b.len() < HEADER_LEN {
            return Err(CryptoError::Format("shorter than a header"));
        }
        if b[..4] != MAGIC {
            return Err(CryptoError::Format("bad magic"));
        }
        if b[4] != VERSION {
            return Err(CryptoError::Format("unsupported version"));
        }
        if b[5] != ALG_AES256GCM_HKDF_SHA256 {
            return Err(CryptoError::Format("unsupported algorithm"));
        }
        if !SEGMENT_LOG2_RANGE.contains(&b[6]) {
            return Err(CryptoError::Format("segment size out of range"));
        }
        if b[7] != 0 || b[51] != 0 {
            return Err(CryptoError::Format("reserved bytes set"));
        }
        Ok(Self {
            segment_log2: b[6],
            key_version: u32::from_be_bytes(b[8..12].try_into().expect("4 bytes")),
            salt: b[12..44].try_into().expect("32 bytes"),
            nonce_prefix: b[44..51].try_into().expect("7 bytes"),
        })
    }

    /// Plaintext bytes per segment.
    pub fn segment_size(&self) -> usize {
        1 << self.segment_log2
    }
}

/// Number of segments for a plaintext length (at least one).
pub fn segment_count(plain_len: u64, segment_size: usize) -> u64 {
    plain_len.div_ceil(segment_size as u64).max(1)
}

/// Sealed length of a plaintext length.
pub fn sealed_len(plain_len: u64, segment_size: usize) -> u64 {
    HEADER_LEN as u64 + plain_len + TAG_LEN as u64 * segment_count(plain_len, segment_size)
}

/// Plaintext length of a sealed object of `sealed` bytes.
pub fn plain_len(sealed: u64, segment_size: usize) -> Result<u64, CryptoError> {
    let body = sealed
        .checked_sub(HEADER_LEN as u64)
        .ok_or(CryptoError::Format("shorter than a header"))?;
    let full = (segment_size + TAG_LEN) as u64;
    let n = body.div_ceil(full).max(1);
    let len = body
        .checked_sub(n * TAG_LEN as u64)
        .ok_or(CryptoError::Truncated { segments: 0 })?;
    if sealed_len(len, segment_size) != sealed {
        return Err(CryptoError::Truncated { segments: 0 });
    }
    Ok(len)
}

/// The segments a plaintext byte range `start..end` needs, and where their
/// ciphertext lies: `(first segment, last segment, byte range in the sealed object)`.
pub fn range_plan(
    plain_len: u64,
    segment_size: usize,
    start: u64,
    end: u64,
) -> Result<(u64, u64, std::ops::Range<u64>), CryptoError> {
    if start > end || end > plain_len || (start == end && start != 0) {
        return Err(CryptoError::Range {
            start,
            end,
            len: plain_len,
        });
    }
    let s = segment_size as u64;
    let first = start / s;
    let last = if end == 0 { 0 } else { (end - 1) / s };
    let full = s + TAG_LEN as u64;
    let from = HEADER_LEN as u64 + first * full;
    let to = (HEADER_LEN as u64 + (last + 1) * full).min(sealed_len(plain_len, segment_size));
    Ok((first, last, from..to))
}

fn segment_key(dek: &SecretKey, header: &Header, b: &Binding) -> LessSafeKey {
    let mut info = Vec::with_capacity(INFO.len() + 36);
    info.extend_from_slice(INFO);
    info.extend_from_slice(&b.tenant);
    info.extend_from_slice(&b.object);
    info.extend_from_slice(&b.key_version.to_be_bytes());
    let mut k = Zeroizing::new([0u8; KEY_LEN]);
    Salt::new(HKDF_SHA256, &header.salt)
        .extract(dek.expose())
        .expand(&[&info], HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut k[..]))
        .expect("HKDF-SHA256 can produce 32 bytes");
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &k[..]).expect("32-byte key"))
}

fn nonce(prefix: &[u8; PREFIX_LEN], index: u64, last: bool) -> Result<Nonce, CryptoError> {
    let i = u32::try_from(index).map_err(|_| CryptoError::TooLarge)?;
    let mut n = [0u8; 12];
    n[..7].copy_from_slice(prefix);
    n[7..11].copy_from_slice(&i.to_be_bytes());
    n[11] = u8::from(last);
    Ok(Nonce::assume_unique_for_key(n))
}

/// Seals an object segment by segment.
pub struct Sealer {
    key: LessSafeKey,
    header: Header,
    header_bytes: [u8; HEADER_LEN],
    next: u64,
    finished: bool,
}

impl Sealer {
    /// A sealer with a fresh random salt and nonce prefix.
    pub fn new(dek: &SecretKey, binding: &Binding, segment_log2: u8) -> Result<Self, CryptoError> {
        let mut salt = [0u8; 32];
        let mut prefix = [0u8; PREFIX_LEN];
        random_bytes(&mut salt)?;
        random_bytes(&mut prefix)?;
        Self::with_nonce_material(dek, binding, segment_log2, salt, prefix)
    }

    /// A sealer with given salt and prefix (test vectors only: reusing them
    /// with the same data key would repeat nonces).
    pub fn with_nonce_material(
        dek: &SecretKey,
        binding: &Binding,
        segment_log2: u8,
        salt: [u8; 32],
        nonce_prefix: [u8; PREFIX_LEN],
    ) -> Result<Self, CryptoError> {
        if !SEGMENT_LOG2_RANGE.contains(&segment_log2) {
            return Err(CryptoError::Format("segment size out of range"));
        }
        let header = Header {
            segment_log2,
            key_version: binding.key_version,
            salt,
            nonce_prefix,
        };
        Ok(Self {
            key: segment_key(dek, &header, binding),
            header,
            header_bytes: header.encode(),
            next: 0,
            finished: false,
        })
    }

    /// The header to write before the segments.
    pub fn header(&self) -> &[u8; HEADER_LEN] {
        &self.header_bytes
    }

    /// Plaintext bytes per segment.
    pub fn segment_size(&self) -> usize {
        self.header.segment_size()
    }

    /// Encrypts the next segment in place and appends its tag. Every segment
    /// but the last must hold exactly [`segment_size`](Self::segment_size) bytes.
    pub fn seal_segment(&mut self, buf: &mut Vec<u8>, last: bool) -> Result<(), CryptoError> {
        assert!(!self.finished, "segment sealed after the last one");
        assert!(
            buf.len() == self.segment_size() || (last && buf.len() <= self.segment_size()),
            "wrong segment length"
        );
        let n = nonce(&self.header.nonce_prefix, self.next, last)?;
        let tag = self
            .key
            .seal_in_place_separate_tag(n, Aad::from(&self.header_bytes[..]), buf)
            .map_err(|_| CryptoError::TooLarge)?;
        buf.extend_from_slice(tag.as_ref());
        self.next += 1;
        self.finished = last;
        Ok(())
    }
}

/// Opens segments of a sealed object.
pub struct Opener {
    key: LessSafeKey,
    header: Header,
    header_bytes: [u8; HEADER_LEN],
}

impl Opener {
    /// Parses `header` and derives the segment key for `binding`.
    pub fn new(header: &[u8], dek: &SecretKey, binding: &Binding) -> Result<Self, CryptoError> {
        let h = Header::parse(header)?;
        let header_bytes: [u8; HEADER_LEN] =
            header[..HEADER_LEN].try_into().expect("length checked");
        Ok(Self {
            key: segment_key(dek, &h, binding),
            header: h,
            header_bytes,
        })
    }

    /// The parsed header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    fn try_open(
        &self,
        index: u64,
        sealed: &[u8],
        last: bool,
        out: &mut Vec<u8>,
    ) -> Result<bool, CryptoError> {
        let (ct, tag) = sealed.split_at(sealed.len() - TAG_LEN);
        out.resize(ct.len(), 0);
        let n = nonce(&self.header.nonce_prefix, index, last)?;
        Ok(self
            .key
            .open_separate_gather(n, Aad::from(&self.header_bytes[..]), ct, tag, out)
            .is_ok())
    }

    /// Opens segment `index` (`sealed` = ciphertext and tag) into `out`.
    /// `last` says whether the caller saw it end the object. Errors say why:
    /// a genuine non-final segment at the end is [`CryptoError::Truncated`], a
    /// genuine final segment followed by more data is [`CryptoError::TrailingData`],
    /// anything else [`CryptoError::Auth`]. `out` holds plaintext only on success.
    pub fn open_segment(
        &self,
        index: u64,
        sealed: &[u8],
        last: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        let max = self.header.segment_size() + TAG_LEN;
        if sealed.len() < TAG_LEN || sealed.len() > max || (!last && sealed.len() != max) {
            out.clear();
            return Err(if last && sealed.len() < TAG_LEN {
                CryptoError::Truncated { segments: index }
            } else {
                CryptoError::Auth { segment: index }
            });
        }
        if self.try_open(index, sealed, last, out)? {
            return Ok(());
        }
        // Diagnose without releasing anything: was it genuine with the other flag?
        let other = self.try_open(index, sealed, !last, out)?;
        out.clear();
        Err(match (other, last) {
            (true, true) => CryptoError::Truncated {
                segments: index + 1,
            },
            (true, false) => CryptoError::TrailingData,
            _ => CryptoError::Auth { segment: index },
        })
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Errors of the streaming helpers: the crypto said no, or I/O failed.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The object failed verification.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Seals everything `r` yields into `w`; returns the plaintext length.
/// Memory: two segments, whatever the size.
pub fn seal_stream(
    mut r: impl Read,
    mut w: impl Write,
    mut sealer: Sealer,
) -> Result<u64, StreamError> {
    let s = sealer.segment_size();
    w.write_all(sealer.header())?;
    let mut cur = vec![0u8; s];
    let mut n = read_full(&mut r, &mut cur)?;
    let mut total = 0u64;
    let mut next = vec![0u8; s];
    loop {
        // One segment of lookahead tells whether this one is the last.
        let m = if n == s {
            read_full(&mut r, &mut next)?
        } else {
            0
        };
        let last = m == 0;
        let mut seg = std::mem::take(&mut cur);
        seg.truncate(n);
        sealer.seal_segment(&mut seg, last)?;
        w.write_all(&seg)?;
        total += n as u64;
        if last {
            return Ok(total);
        }
        seg.resize(s, 0);
        cur = std::mem::replace(&mut next, seg);
        n = m;
    }
}

/// Opens a sealed object from `r`, writing only authenticated plaintext to
/// `w`, segment by segment; returns the plaintext length. On error, what was
/// written is an authentic prefix and the caller must discard it.
pub fn open_stream(
    mut r: impl Read,
    mut w: impl Write,
    dek: &SecretKey,
    binding: &Binding,
) -> Result<u64, StreamError> {
    let mut header = [0u8; HEADER_LEN];
    if read_full(&mut r, &mut header)? < HEADER_LEN {
        return Err(CryptoError::Format("shorter than a header").into());
    }
    let opener = Opener::new(&header, dek, binding)?;
    let full = opener.header.segment_size() + TAG_LEN;
    let mut cur = vec![0u8; full];
    let mut n = read_full(&mut r, &mut cur)?;
    let mut next = vec![0u8; full];
    let mut out = Vec::with_capacity(full);
    let mut total = 0u64;
    for index in 0.. {
        if n == 0 {
            return Err(CryptoError::Truncated { segments: index }.into());
        }
        let m = if n == full {
            read_full(&mut r, &mut next)?
        } else {
            0
        };
        opener.open_segment(index, &cur[..n], m == 0, &mut out)?;
        w.write_all(&out)?;
        total += out.len() as u64;
        if m == 0 {
            return Ok(total);
        }
        std::mem::swap(&mut cur, &mut next);
        n = m;
    }
    unreachable!("the loop returns")
}

#[cfg(test)]
mod tests;
