//! Fuzzes the tus header values bv serve parses (`Upload-Length`,
//! `Upload-Offset`, `Upload-Metadata`): never a panic, counts only from plain
//! digits, and metadata that round-trips through its own encoding.
#![no_main]

#[path = "../../crates/bv-api/src/tus_wire.rs"]
mod tus_wire;

use base64::Engine;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(n) = tus_wire::byte_count(&text) {
        assert!(text.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(Ok(n), text.parse::<u64>());
        assert!(n <= i64::MAX as u64);
    }
    let _ = tus_wire::metadata(&text);
    // Any name and type, encoded as a client would, come back unchanged.
    let (name, ctype) = text.split_once('\n').unwrap_or((&text, "video/mp4"));
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let header = format!("filename {},filetype {},other", b64(name), b64(ctype));
    let (n, c) = tus_wire::metadata(&header).expect("well-formed metadata parses");
    assert_eq!((n.as_str(), c.as_str()), (name, ctype));
});
