//! Fuzzes the signed-link token: parsing arbitrary `e`, `v`, `s` values never
//! panics, and a link signed here survives only changes that leave its
//! meaning (expiry, version, signature bytes) as it was. The version is not
//! in the signed message; it picks the key, so another version is another key
//! (a first version of this target with one key for all versions "found" that).
#![no_main]

use bv_crypto::SecretKey;
use bv_crypto::links::{Refusal, check, parse, sign};
use libfuzzer_sys::fuzz_target;

fn split(q: &str) -> (String, String, String) {
    let get = |k: &str| {
        q.split('&')
            .find_map(|p| p.strip_prefix(&format!("{k}=")))
            .unwrap_or_default()
            .to_string()
    };
    (get("e"), get("v"), get("s"))
}

/// Each key version is its own key, as in the vault.
fn key_for(version: u32) -> SecretKey {
    let mut k = [5u8; 32];
    k[..4].copy_from_slice(&version.to_le_bytes());
    SecretKey::from_bytes(k)
}

fuzz_target!(|data: &[u8]| {
    let key = key_for(2);
    let text = String::from_utf8_lossy(data);
    // 1. Whatever arrives parses or not, and checks or not, without panicking.
    let (e, v, s) = split(&text);
    if let Some(t) = parse(&e, &v, &s) {
        let _ = check(Some(&key_for(t.version)), "GET", "tenant", "video", &t, 0);
    }
    // 2. A genuine link, then one byte of its query changed as the input says.
    let expires = u64::from(data.first().copied().unwrap_or(0)) * 1_000_003 + 1;
    let q = sign(&key, 2, "GET", "tenant", "video", expires);
    let (e0, v0, s0) = split(&q);
    let genuine = parse(&e0, &v0, &s0).expect("a signed link parses");
    assert_eq!(check(Some(&key), "GET", "tenant", "video", &genuine, 0), Ok(()));
    assert_eq!(check(Some(&key), "GET", "tenant", "video", &genuine, expires), Err(Refusal::Expired));
    if data.len() >= 3 {
        let mut b = q.clone().into_bytes();
        let at = usize::from(data[1]) * 7 % b.len();
        b[at] = data[2];
        let Ok(m) = String::from_utf8(b) else { return };
        let (e, v, s) = split(&m);
        if let Some(t) = parse(&e, &v, &s)
            && check(Some(&key_for(t.version)), "GET", "tenant", "video", &t, 0).is_ok()
        {
            assert_eq!(t, genuine, "an altered link verified: {m}");
        }
    }
});
