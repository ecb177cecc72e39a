//! Keys: secret key values, wrapping, and the root-key seam.
//!
//! The hierarchy (ARCHITECTURE.md invariant 2): a root key wraps each
//! tenant's keys, a tenant key wraps each object's data key. Every wrap is
//! AES-256-GCM with a fresh 96-bit nonce and an associated "context" that
//! names what the wrapped key is for (tenant, object, versions), so a wrapped
//! key copied to another slot does not unwrap.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::CryptoError;

/// Key length in bytes (AES-256).
pub const KEY_LEN: usize = 32;
/// Version byte of the wrapped-key encoding.
const WRAP_V1: u8 = 1;
/// Length of a wrapped key: version, nonce, ciphertext, tag.
pub const WRAPPED_LEN: usize = 1 + NONCE_LEN + KEY_LEN + 16;

/// A 256-bit secret. Zeroed when dropped; its `Debug` output hides the value.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct SecretKey([u8; KEY_LEN]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Fills `buf` from the operating system's CSPRNG.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), CryptoError> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| CryptoError::Random)
}

impl SecretKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut k = [0u8; KEY_LEN];
        random_bytes(&mut k)?;
        Ok(Self(k))
    }

    /// A key from raw bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// A key from a slice of exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        let arr: [u8; KEY_LEN] = bytes.try_into().map_err(|_| {
            CryptoError::KeyMaterial(format!("a key is {KEY_LEN} bytes, got {}", bytes.len()))
        })?;
        Ok(Self(arr))
    }

    /// The key bytes (for key derivation and for storing a root key file).
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Lower-case hex of the key (for a root key file); zeroed when dropped.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(self.0.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Parses 64 hex digits.
    pub fn from_hex(hex: &str) -> Result<Self, CryptoError> {
        let hex = hex.trim();
        if hex.len() != 2 * KEY_LEN || !hex.is_ascii() {
            return Err(CryptoError::KeyMaterial("expected 64 hex digits".into()));
        }
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        for (i, b) in k.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map_err(|_| CryptoError::KeyMaterial("expected 64 hex digits".into()))?;
        }
        Ok(Self(*k))
    }

    fn aead(&self) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.0).expect("32-byte AES-256 key"))
    }

    /// AES-256-GCM under this key: `version` byte, random 96-bit nonce,
    /// ciphertext, tag; `context` is the associated data.
    fn seal_tagged(
        &self,
        version: u8,
        plain: &[u8],
        context: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        random_bytes(&mut nonce)?;
        // The plaintext may be a key: the working copy is wiped.
        let mut body = Zeroizing::new(plain.to_vec());
        let tag = self
            .aead()
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut body,
            )
            .map_err(|_| CryptoError::Random)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + body.len() + 16);
        out.push(version);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens what [`seal_tagged`](Self::seal_tagged) sealed with `version` and `context`.
    fn open_tagged(
        &self,
        version: u8,
        sealed: &[u8],
        context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.len() < 1 + NONCE_LEN + 16 || sealed[0] != version {
            return Err(CryptoError::Unwrap);
        }
        let nonce: [u8; NONCE_LEN] = sealed[1..1 + NONCE_LEN].try_into().expect("length checked");
        let mut body = Zeroizing::new(sealed[1 + NONCE_LEN..].to_vec());
        let n = self
            .aead()
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut body,
            )
            .map_err(|_| CryptoError::Unwrap)?
            .len();
        body.truncate(n);
        Ok(body)
    }

    /// Wraps `key` under this key, bound to `context`.
    pub fn wrap(&self, key: &SecretKey, context: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.seal_tagged(WRAP_V1, &key.0, context)
    }

    /// Seals a short value (a file name, a URL) under this key, bound to
    /// `context`: version byte, random 96-bit nonce, ciphertext, tag.
    pub fn seal_value(&self, plain: &[u8], context: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if plain.len() > MAX_VALUE_LEN {
            return Err(CryptoError::TooLarge);
        }
        self.seal_tagged(VALUE_V1, plain, context)
    }

    /// Opens what [`seal_value`](Self::seal_value) sealed with the same `context`.
    pub fn open_value(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, CryptoError> {
        Ok(self.open_tagged(VALUE_V1, sealed, context)?.to_vec())
    }

    /// Unwraps a key wrapped by [`wrap`](Self::wrap) with the same `context`.
    pub fn unwrap(&self, wrapped: &[u8], context: &[u8]) -> Result<SecretKey, CryptoError> {
        if wrapped.len() != WRAPPED_LEN {
            return Err(CryptoError::Unwrap);
        }
        SecretKey::from_slice(&self.open_tagged(WRAP_V1, wrapped, context)?)
    }
}

/// Format byte of a sealed value.
const VALUE_V1: u8 = 0x02;
/// Longest value [`SecretKey::seal_value`] takes (catalog fields are short).
pub const MAX_VALUE_LEN: usize = 64 * 1024;

/// The top of the hierarchy: wraps and unwraps tenant keys under versioned
/// root keys. Implemented locally by [`LocalRootKeys`]; an external KMS
/// (HashiCorp Vault Transit, AWS KMS) implements the same trait and never
/// hands out the root key itself.
pub trait RootKeys: Send + Sync {
    /// The version new wraps use.
    fn current_version(&self) -> u32;
    /// All versions that can still unwrap.
    fn versions(&self) -> Vec<u32>;
    /// Wraps `key` under root version `version`, bound to `context`.
    fn wrap(&self, version: u32, key: &SecretKey, context: &[u8]) -> Result<Vec<u8>, CryptoError>;
    /// Unwraps a key wrapped under root version `version`.
    fn unwrap(
        &self,
        version: u32,
        wrapped: &[u8],
        context: &[u8],
    ) -> Result<SecretKey, CryptoError>;
}

/// Root keys held in process memory, loaded from a key file or an
/// environment variable (text: one `v<N>:<64 hex digits>` per line or per
/// comma; the highest version is current).
#[derive(Clone)]
pub struct LocalRootKeys {
    keys: Vec<(u32, SecretKey)>,
}

impl std::fmt::Debug for LocalRootKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocalRootKeys(versions {:?})", self.versions())
    }
}

impl LocalRootKeys {
    /// Parses the text form.
    pub fn parse(text: &str) -> Result<Self, CryptoError> {
        let mut keys = Vec::new();
        for item in text
            .split([',', '\n'])
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (v, hex) = item
                .strip_prefix('v')
                .and_then(|r| r.split_once(':'))
                .ok_or_else(|| {
                    CryptoError::KeyMaterial("root keys are written `v<N>:<64 hex digits>`".into())
                })?;
            let v: u32 = v
                .parse()
                .map_err(|_| CryptoError::KeyMaterial("bad root key version".into()))?;
            if keys.iter().any(|(k, _)| *k == v) {
                return Err(CryptoError::KeyMaterial(format!(
                    "root key version {v} appears twice"
                )));
            }
            keys.push((v, SecretKey::from_hex(hex)?));
        }
        if keys.is_empty() {
            return Err(CryptoError::KeyMaterial("no root key".into()));
        }
        keys.sort_by_key(|(v, _)| *v);
        Ok(Self { keys })
    }

    /// A single fresh version-1 root key.
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self {
            keys: vec![(1, SecretKey::generate()?)],
        })
    }

    /// The text form (for writing the key file).
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut s = String::new();
        for (v, k) in &self.keys {
            s.push_str(&format!("v{v}:{}\n", k.to_hex().as_str()));
        }
        Zeroizing::new(s)
    }

    /// Adds a new current version and returns its number.
    pub fn rotate(&mut self) -> Result<u32, CryptoError> {
        let v = self.current_version() + 1;
        self.keys.push((v, SecretKey::generate()?));
        Ok(v)
    }

    /// Drops every version not in `keep` (the current one is always kept).
    pub fn retire_except(&mut self, keep: &[u32]) {
        let cur = self.current_version();
        self.keys.retain(|(v, _)| *v == cur || keep.contains(v));
    }

    fn key(&self, version: u32) -> Result<&SecretKey, CryptoError> {
        self.keys
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, k)| k)
            .ok_or_else(|| {
                CryptoError::KeyMaterial(format!("root key version {version} is not available"))
            })
    }
}

impl RootKeys for LocalRootKeys {
    fn current_version(&self) -> u32 {
        self.keys.last().expect("never empty").0
    }
    fn versions(&self) -> Vec<u32> {
        self.keys.iter().map(|(v, _)| *v).collect()
    }
    fn wrap(&self, version: u32, key: &SecretKey, context: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.key(version)?.wrap(key, context)
    }
    fn unwrap(
        &self,
        version: u32,
        wrapped: &[u8],
        context: &[u8],
    ) -> Result<SecretKey, CryptoError> {
        self.key(version)?.unwrap(wrapped, context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_round_trip_bound_to_their_context() {
        let k = SecretKey::generate().unwrap();
        let s = k
            .seal_value("clip é.mp4".as_bytes(), b"video:1:name")
            .unwrap();
        assert_eq!(
            k.open_value(&s, b"video:1:name").unwrap(),
            "clip é.mp4".as_bytes()
        );
        assert_eq!(k.open_value(&s, b"video:2:name"), Err(CryptoError::Unwrap));
        let again = k
            .seal_value("clip é.mp4".as_bytes(), b"video:1:name")
            .unwrap();
        assert_ne!(s, again, "a fresh nonce each time");
        for i in 0..s.len() {
            let mut t = s.clone();
            t[i] ^= 0x01;
            assert!(k.open_value(&t, b"video:1:name").is_err(), "byte {i}");
        }
        let other = SecretKey::generate().unwrap();
        assert!(other.open_value(&s, b"video:1:name").is_err());
        assert_eq!(
            k.seal_value(&vec![0; MAX_VALUE_LEN + 1], b"x"),
            Err(CryptoError::TooLarge)
        );
    }

    #[test]
    fn wrap_roundtrip_and_context_binding() {
        let kek = SecretKey::generate().unwrap();
        let k = SecretKey::generate().unwrap();
        let w = kek.wrap(&k, b"tenant A / object 1").unwrap();
        assert_eq!(w.len(), WRAPPED_LEN);
        assert_eq!(kek.unwrap(&w, b"tenant A / object 1").unwrap(), k);
        assert_eq!(
            kek.unwrap(&w, b"tenant B / object 1"),
            Err(CryptoError::Unwrap)
        );
        assert_eq!(
            SecretKey::generate()
                .unwrap()
                .unwrap(&w, b"tenant A / object 1"),
            Err(CryptoError::Unwrap)
        );
        for i in 0..w.len() {
            let mut t = w.clone();
            t[i] ^= 0x01;
            assert_eq!(
                kek.unwrap(&t, b"tenant A / object 1"),
                Err(CryptoError::Unwrap),
                "bit flip at {i}"
            );
        }
        assert!(!format!("{k:?}").contains(&k.to_hex()[..8]));
    }

    #[test]
    fn root_keys_parse_rotate_retire() {
        let mut r = LocalRootKeys::generate().unwrap();
        let k = SecretKey::generate().unwrap();
        let w1 = r.wrap(1, &k, b"c").unwrap();
        assert_eq!(r.rotate().unwrap(), 2);
        let text = r.to_text();
        let parsed = LocalRootKeys::parse(&text).unwrap();
        assert_eq!(parsed.versions(), vec![1, 2]);
        assert_eq!(parsed.unwrap(1, &w1, b"c").unwrap(), k);
        r.retire_except(&[]);
        assert_eq!(r.versions(), vec![2]);
        assert!(r.unwrap(1, &w1, b"c").is_err());
        assert!(LocalRootKeys::parse("v1:abc").is_err());
        assert!(LocalRootKeys::parse("").is_err());
        assert!(LocalRootKeys::parse(&format!("v1:{0}\nv1:{0}", "00".repeat(32))).is_err());
    }
}
