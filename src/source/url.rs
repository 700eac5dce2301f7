//! Connection-URL pieces shared by the socket-based sources (PostgreSQL, MySQL).
//!
//! Messages name the part that is wrong, never its text: in a malformed URL such as
//! `user:secret/db` the password sits where a port or host would be.

use crate::error::{Error, Result};

pub fn bad_url(scheme: &str, why: &str) -> Error {
    Error::bad_request(format!("{scheme} URL: {why}"))
}

pub fn percent_decode(scheme: &str, s: &str, what: &str) -> Result<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(byte.ok_or_else(|| bad_url(scheme, &format!("bad percent-escape in the {what}")))?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

pub fn decoded_text(scheme: &str, s: &str, what: &str) -> Result<String> {
    String::from_utf8(percent_decode(scheme, s, what)?).map_err(|_| bad_url(scheme, &format!("the {what} is not UTF-8")))
}

pub fn parse_port(scheme: &str, p: &str) -> Result<u16> {
    p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(|| bad_url(scheme, "the port is not a number from 1 to 65535"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_never_echoes() {
        assert_eq!(decoded_text("x", "a%40b%2Fc", "user").unwrap(), "a@b/c");
        let e = percent_decode("x", "s3cret%zz", "password").unwrap_err();
        assert!(!e.message().contains("s3cret"));
        assert_eq!(parse_port("x", "5432").unwrap(), 5432);
        for bad in ["0", "65536", "s3cret", ""] {
            assert!(!parse_port("x", bad).unwrap_err().message().contains("s3cret"));
        }
    }
}
