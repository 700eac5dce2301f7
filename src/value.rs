//! The one value type that crosses every boundary: source rows, checkpoints, replica writes.
//!
//! Values reach DO SQLite inside one JSON text per batch (see `sql::upsert_batch`), never as
//! bound JS numbers, because the platform binds every JS number as a double and would round
//! integers above 2^53.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    pub fn text(s: impl Into<String>) -> Self {
        Value::Text(s.into())
    }

    /// Integral numbers come back from DO SQLite as doubles; bookkeeping reads accept both.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Integer(i) => Some(*i),
            Value::Real(f) if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 => Some(*f as i64),
            Value::Text(s) => s.parse().ok(),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn into_string(self) -> Option<String> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a user reads it in status and run records (`cursor`): text, digits, or hex.
    pub fn display_text(&self) -> Option<String> {
        match self {
            Value::Null => None,
            Value::Integer(i) => Some(i.to_string()),
            Value::Real(f) => Some(format_real(*f)),
            Value::Text(s) => Some(s.clone()),
            Value::Blob(b) => Some(hex(b)),
        }
    }

    /// Append this value as one cell of the batch JSON understood by `replica_sql::cell_expr`:
    /// integers and reals as JSON numbers (reals always with a dot or exponent, so SQLite
    /// reads them back as REAL), text as a JSON string, blobs as `{"x":"<hex>"}` (see
    /// `batch`, which writes cells the same way without a `Value`).
    pub fn write_json_cell(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Integer(i) => out.push_str(itoa::Buffer::new().format(*i)),
            Value::Real(f) => crate::batch::push_real_cell(*f, out),
            Value::Text(s) => write_json_string(s, out),
            Value::Blob(b) => crate::batch::push_blob_cell(b, out),
        }
    }
}

/// Shortest text that reads back to the same double, always marked as a real.
pub fn format_real(f: f64) -> String {
    let mut s = format!("{f:?}");
    if !s.contains(['.', 'e', 'E', 'i', 'N']) {
        s.push_str(".0");
    }
    s
}

pub fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(b.len() * 2);
    for &byte in b {
        s.push(DIGITS[(byte >> 4) as usize] as char);
        s.push(DIGITS[(byte & 15) as usize] as char);
    }
    s
}

pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// What each byte becomes inside a JSON string: 0 for itself, else the letter of its
/// two-character escape (`\"`, `\\`, `\n`, ...), or `u` for `\u00XX`.
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = b'u';
        b += 1;
    }
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t
};

/// Whether `s` holds a character that a JSON string must escape.
pub fn needs_json_escape(s: &str) -> bool {
    s.bytes().any(|b| ESCAPE[b as usize] != 0)
}

pub fn write_json_string(s: &str, out: &mut String) {
    out.reserve(s.len() + 2);
    out.push('"');
    // Copy runs that need no escape in one go: almost all text is such a run. Escaped bytes
    // are ASCII, so every run starts and ends on a character boundary.
    let mut run = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let e = ESCAPE[b as usize];
        if e == 0 {
            continue;
        }
        out.push_str(&s[run..i]);
        if e == b'u' {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        } else {
            out.push('\\');
            out.push(char::from(e));
        }
        run = i + 1;
    }
    out.push_str(&s[run..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reals_are_marked_and_round_trip() {
        for f in [0.0, 1.0, -2.5, 0.1, 1e308, 5e-324, 123456789.0, f64::MAX] {
            let s = format_real(f);
            assert!(s.contains(['.', 'e']), "{s}");
            assert_eq!(s.parse::<f64>().unwrap(), f);
        }
    }

    #[test]
    fn json_cells() {
        let mut out = String::new();
        for v in
            [Value::Null, Value::Integer(i64::MIN), Value::Real(f64::INFINITY), Value::text("a\"\\\u{1}é😀"), Value::Blob(vec![0, 255])]
        {
            v.write_json_cell(&mut out);
            out.push(',');
        }
        assert_eq!(out, "null,-9223372036854775808,9e999,\"a\\\"\\\\\\u0001é😀\",{\"x\":\"00FF\"},");
    }

    #[test]
    fn hex_round_trip() {
        let b: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&b)).unwrap(), b);
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
    }

    proptest::proptest! {
        /// The batch JSON must read back as the same text, whatever characters it holds.
        #[test]
        fn json_strings_round_trip(text in "(?s).{0,40}") {
            let mut out = String::new();
            write_json_string(&text, &mut out);
            proptest::prop_assert_eq!(serde_json::from_str::<String>(&out).unwrap(), text);
        }
    }
}
