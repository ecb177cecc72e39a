//! Secrets that people hold: API keys, session tokens, passwords; and the
//! HMAC that signs what the service hands out (download links, later queue
//! payloads).
//!
//! Bearer tokens carry 256 random bits, so a plain SHA-256 of the token is a
//! safe thing to store (no guessing to slow down); passwords are low-entropy
//! and get argon2id. MAC checks are constant-time.

use aws_lc_rs::{digest, hmac};
use zeroize::Zeroizing;

use crate::error::CryptoError;
use crate::keys::{SecretKey, random_bytes};

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(D[usize::from(b >> 4)] as char);
        s.push(D[usize::from(b & 15)] as char);
    }
    s
}

/// Bytes of a hex string (either case); `None` if it is not hex.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// `n` random bytes as lower-case hex (`2n` characters).
pub fn random_hex(n: usize) -> Result<String, CryptoError> {
    let mut b = Zeroizing::new(vec![0u8; n]);
    random_bytes(&mut b)?;
    Ok(hex(&b))
}

/// SHA-256 of `data`, hex: what is stored in place of a bearer token.
pub fn token_hash(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

/// Constant-time equality of two byte strings of possibly different lengths.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// HMAC-SHA256 of `msg` under `key`.
pub fn mac(key: &SecretKey, msg: &[u8]) -> [u8; 32] {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key.expose());
    let tag = hmac::sign(&k, msg);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// HMAC-SHA256 of `msg` under a key of any length (e.g. a webhook secret string).
pub fn mac_bytes(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut out = [0u8; 32];
    out.copy_from_slice(hmac::sign(&k, msg).as_ref());
    out
}

/// Whether `tag` is the HMAC-SHA256 of `msg` under `key` (constant-time).
pub fn mac_verify(key: &SecretKey, msg: &[u8], tag: &[u8]) -> bool {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key.expose());
    hmac::verify(&k, msg, tag).is_ok()
}

/// argon2id hash of a password in PHC string form (OWASP's parameters:
/// 19 MiB, 2 passes, 1 lane), with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, CryptoError> {
    use argon2::password_hash::PasswordHasher;
    let a = argon2::Argon2::default();
    a.hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| CryptoError::KeyMaterial(format!("password hash: {e}")))
}

/// Whether `password` matches the PHC string `phc` (a malformed string never matches).
pub fn verify_password(password: &str, phc: &str) -> bool {
    use argon2::password_hash::PasswordVerifier;
    let Ok(h) = argon2::password_hash::phc::PasswordHash::new(phc) else {
        return false;
    };
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), &h)
        .is_ok()
}

/// Whether `phc` is a well-formed argon2 PHC string.
pub fn is_password_hash(phc: &str) -> bool {
    argon2::password_hash::phc::PasswordHash::new(phc).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_hashes_and_macs() {
        let t = random_hex(32).unwrap();
        assert_eq!(t.len(), 64);
        assert_ne!(t, random_hex(32).unwrap());
        // Known answer: SHA-256("abc").
        assert_eq!(
            token_hash(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let k = SecretKey::from_bytes([7; 32]);
        let tag = mac(&k, b"GET /x");
        assert!(mac_verify(&k, b"GET /x", &tag));
        assert!(!mac_verify(&k, b"GET /y", &tag));
        assert!(!mac_verify(
            &SecretKey::from_bytes([8; 32]),
            b"GET /x",
            &tag
        ));
        assert!(!mac_verify(&k, b"GET /x", &tag[..31]));
        assert!(ct_eq(b"ab", b"ab") && !ct_eq(b"ab", b"abc") && !ct_eq(b"ab", b"ac"));
    }

    #[test]
    fn passwords() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct horsE", &h));
        assert!(!verify_password("correct horse", "not a hash"));
        assert_ne!(h, hash_password("correct horse").unwrap(), "salted");
    }
}
