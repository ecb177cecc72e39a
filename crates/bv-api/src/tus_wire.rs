//! The values of tus 1.0 headers, as pure functions of strings (no HTTP
//! types, one dependency: base64), so the fuzz target compiles this file on
//! its own.

use base64::Engine;

/// `Upload-Length` / `Upload-Offset`: a non-negative decimal integer, digits
/// only (no sign, no spaces), that fits in 63 bits like every size we store.
pub fn byte_count(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|n| *n <= i64::MAX as u64)
}

/// `Upload-Metadata`: `key base64,key base64,…` → (file name, content type),
/// with defaults for those not given, exactly as tus 1.0 writes it: pairs
/// separated by commas, a non-empty key without spaces or commas, one space,
/// a base64 value (which may be left out with its space). Other keys are
/// ignored; anything else, or a value that is not base64 of UTF-8, is an
/// error. An empty header means no metadata.
pub fn metadata(raw: &str) -> Result<(String, String), String> {
    let (mut name, mut ctype) = (None, None);
    for pair in raw.split(',').filter(|_| !raw.is_empty()) {
        let (k, v) = pair.split_once(' ').unwrap_or((pair, ""));
        if k.is_empty() || v.contains(' ') {
            return Err(format!(
                "Upload-Metadata is comma-separated \"key base64\" pairs; {pair:?} is not one"
            ));
        }
        let val = base64::engine::general_purpose::STANDARD
            .decode(v)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| format!("Upload-Metadata value of {k:?} is not base64 UTF-8"))?;
        match k {
            "filename" | "name" => name = Some(val),
            "filetype" | "contentType" | "content_type" => ctype = Some(val),
            _ => {}
        }
    }
    Ok((
        name.unwrap_or_else(|| "upload".into()),
        ctype.unwrap_or_else(|| "application/octet-stream".into()),
    ))
}
