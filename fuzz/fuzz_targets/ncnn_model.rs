//! Fuzzes the ncnn model reader with a hostile `.param` text and `.bin`
//! weights: it returns a graph or an error, never panics, and never trusts a
//! size it reads enough to allocate past the input (libFuzzer's memory limit
//! catches that).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Up to the first NUL: the .param text; after it: the .bin bytes.
    let (param, bin) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(param) = std::str::from_utf8(param) else { return };
    let _ = bv_engine::model::ncnn::parse(param, bin);
});
