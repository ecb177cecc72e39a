//! Signed download links, the token format (invariant 5): the query string
//! `e=<expiry, Unix seconds>&v=<key version>&s=<64 hex digits>` carrying
//! HMAC-SHA256, under version `v` of the link key, of
//! `bettervideo link v1 \n METHOD \n tenant \n video \n expiry`.
//!
//! Pure: which key a version names, and where keys live, is the caller's
//! business; this module parses, signs and checks.

use crate::keys::SecretKey;
use crate::secret::{from_hex, hex, mac, mac_verify};

/// The signed message of a link.
pub fn message(method: &str, tenant: &str, video: &str, expires: u64) -> Vec<u8> {
    format!("bettervideo link v1\n{method}\n{tenant}\n{video}\n{expires}").into_bytes()
}

/// A link's parameters, parsed (not yet checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Expiry, Unix seconds.
    pub expires: u64,
    /// The link key version that signed it.
    pub version: u32,
    /// The 32-byte signature.
    pub sig: Vec<u8>,
}

/// Why a link was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Malformed, tampered, wrong object, wrong method, unknown key version.
    Invalid,
    /// Authentic but past its expiry.
    Expired,
}

/// Parses the three parameters as received: decimal expiry and version,
/// exactly 64 hex digits of signature. Anything else is `None`.
pub fn parse(e: &str, v: &str, s: &str) -> Option<Token> {
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    if !digits(e) || !digits(v) || s.len() != 64 {
        return None;
    }
    Some(Token {
        expires: e.parse().ok()?,
        version: v.parse().ok()?,
        sig: from_hex(s)?,
    })
}

/// The query string of a link for `method` on `video` of `tenant`, signed
/// with version `version` of the link key `key`.
pub fn sign(
    key: &SecretKey,
    version: u32,
    method: &str,
    tenant: &str,
    video: &str,
    expires: u64,
) -> String {
    let sig = mac(key, &message(method, tenant, video, expires));
    format!("e={expires}&v={version}&s={}", hex(&sig))
}

/// Checks `t` with the key its version names (`None`: no such version) at
/// time `now`. The signature is checked first, in constant time, so an
/// altered expiry is `Invalid`, never `Expired`.
pub fn check(
    key: Option<&SecretKey>,
    method: &str,
    tenant: &str,
    video: &str,
    t: &Token,
    now: u64,
) -> Result<(), Refusal> {
    let key = key.ok_or(Refusal::Invalid)?;
    if !mac_verify(key, &message(method, tenant, video, t.expires), &t.sig) {
        return Err(Refusal::Invalid);
    }
    if now >= t.expires {
        return Err(Refusal::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> (String, String, String) {
        let get = |k: &str| {
            q.split('&')
                .find_map(|p| p.strip_prefix(&format!("{k}=")))
                .unwrap_or_default()
                .to_string()
        };
        (get("e"), get("v"), get("s"))
    }

    #[test]
    fn a_signed_link_checks_and_nothing_else_does() {
        let k = SecretKey::from_bytes([9; 32]);
        let q = sign(&k, 3, "GET", "t1", "v1", 1000);
        let (e, v, s) = params(&q);
        let t = parse(&e, &v, &s).unwrap();
        assert_eq!(t.version, 3);
        assert_eq!(check(Some(&k), "GET", "t1", "v1", &t, 999), Ok(()));
        assert_eq!(
            check(Some(&k), "GET", "t1", "v1", &t, 1000),
            Err(Refusal::Expired)
        );
        for (m, tn, vd) in [
            ("HEAD", "t1", "v1"),
            ("GET", "t2", "v1"),
            ("GET", "t1", "v2"),
        ] {
            assert_eq!(check(Some(&k), m, tn, vd, &t, 0), Err(Refusal::Invalid));
        }
        let other = SecretKey::from_bytes([8; 32]);
        assert_eq!(
            check(Some(&other), "GET", "t1", "v1", &t, 0),
            Err(Refusal::Invalid)
        );
        assert_eq!(check(None, "GET", "t1", "v1", &t, 0), Err(Refusal::Invalid));
        let later = Token {
            expires: 5000,
            ..t.clone()
        };
        assert_eq!(
            check(Some(&k), "GET", "t1", "v1", &later, 0),
            Err(Refusal::Invalid)
        );
        for (e, v, s) in [
            ("", "1", s.as_str()),
            ("+5", "1", &s),
            ("5", "-1", &s),
            ("5", "1", &s[1..]),
            ("5", "1", "zz"),
        ] {
            assert!(parse(e, v, s).is_none(), "{e} {v} {s}");
        }
    }
}
