//! Making user-controlled text safe to log.
//!
//! The JSON log format already escapes C0 controls (CR, LF, ESC) inside
//! strings, so nothing a client sends can start a new line. It does not
//! escape C1 controls (U+0080–U+009F: U+009B is an 8-bit "CSI" that some
//! terminals obey like ESC `[`) or the Unicode line separators, which some
//! log viewers break lines at. [`text`] writes every such character as a
//! visible `\u{…}` escape, and caps the length.

/// `s` with every control or line-separator character escaped, at most `max` characters.
pub fn text(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    for (i, c) in s.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn controls_of_every_kind_become_visible_escapes() {
        assert_eq!(
            super::text("a\r\nb\u{1b}[31m", 100),
            "a\\u{d}\\u{a}b\\u{1b}[31m"
        );
        assert_eq!(super::text("x\u{9b}2J\u{2028}", 100), "x\\u{9b}2J\\u{2028}");
        assert_eq!(super::text("Mozilla/5.0 (X11)", 100), "Mozilla/5.0 (X11)");
        assert_eq!(super::text("abcdef", 3), "abc…");
    }
}
