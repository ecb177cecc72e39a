//! Fuzzes the sealed-object opener and its arithmetic.
//!
//! Input byte 0 picks the mode: 0 seals the rest and checks it opens back
//! to the same bytes (and that one flipped byte, chosen by the input, is
//! refused); anything else feeds the bytes to the opener as a stored object,
//! which must return an error or authentic data, never panic.
#![no_main]

use bv_crypto::SecretKey;
use bv_crypto::format::{self, Binding, Header, Sealer, open_stream, seal_stream};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dek = SecretKey::from_bytes([7; 32]);
    let b = Binding { tenant: [1; 16], object: [2; 16], key_version: 1 };
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode == 0 {
        let mut sealed = Vec::new();
        seal_stream(rest, &mut sealed, Sealer::new(&dek, &b, 12).unwrap()).unwrap();
        let mut back = Vec::new();
        open_stream(&sealed[..], &mut back, &dek, &b).unwrap();
        assert_eq!(back, rest);
        let pos = rest.first().map_or(0, |x| *x as usize * 131) % sealed.len();
        sealed[pos] ^= 0x40;
        let mut out = Vec::new();
        assert!(open_stream(&sealed[..], &mut out, &dek, &b).is_err());
        assert!(rest.starts_with(&out), "only authentic plaintext may be released");
    } else {
        let mut out = Vec::new();
        let _ = open_stream(rest, &mut out, &dek, &b);
        if let Ok(h) = Header::parse(rest) {
            let s = h.segment_size();
            if let Ok(len) = format::plain_len(rest.len() as u64, s) {
                let a = (mode as u64 * 977) % (len + 1);
                let _ = format::range_plan(len, s, a, len);
            }
        }
    }
});
