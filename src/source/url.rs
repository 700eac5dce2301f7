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

/// A connection URL taken apart: user, password, host, database and query pairs decoded,
/// the port parsed (or the scheme's default).
pub struct UrlParts {
    pub user: Option<String>,
    pub password: Option<Vec<u8>>,
    pub host: String,
    pub port: u16,
    pub database: Option<String>,
    pub params: Vec<(String, String)>,
}

/// Splits `url`, which must start with one of `schemes` (e.g. `postgres://`, matched without
/// regard to case); `scheme` names it in messages.
pub fn split(scheme: &str, url: &str, schemes: &[&str], default_port: u16) -> Result<UrlParts> {
    let lower = url.to_ascii_lowercase();
    let Some(prefix) = schemes.iter().find(|p| lower.starts_with(*p)) else {
        return Err(bad_url(scheme, &format!("must start with {}", schemes.join(" or "))));
    };
    let rest = &url[prefix.len()..];
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    // An unescaped '/' or '?' in the password ends the authority early: the rest of the
    // password would be read as host, port, database or a parameter name, and those appear in
    // error messages. The '@' that ends the user info then follows the host, where none belongs.
    if path.is_some_and(|p| p.contains('@')) || query.is_some_and(|q| q.contains('@')) {
        return Err(bad_url(
            scheme,
            "'@' after the host: percent-encode '/', '?', '#' and '@' in the user name and password (%2F, %3F, %23, %40)",
        ));
    }
    // An unescaped '@' in a password is common enough to accept: the last '@' ends the user info.
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    let (mut user, mut password) = (None, None);
    if let Some(ui) = userinfo {
        let (u, p) = match ui.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (ui, None),
        };
        user = Some(decoded_text(scheme, u, "user name")?);
        if let Some(p) = p {
            password = Some(percent_decode(scheme, p, "password")?);
        }
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| bad_url(scheme, "unterminated [ in the host"))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| bad_url(scheme, "unexpected text after the host"))?),
        };
        (h.to_string(), port)
    } else {
        if hostport.contains(',') {
            return Err(bad_url(scheme, "several hosts are not supported"));
        }
        match hostport.split_once(':') {
            Some((h, p)) => (decoded_text(scheme, h, "host")?, Some(p)),
            None => (decoded_text(scheme, hostport, "host")?, None),
        }
    };
    let port = match port {
        None | Some("") => default_port,
        Some(p) => parse_port(scheme, p)?,
    };
    let database = path.filter(|p| !p.is_empty()).map(|db| decoded_text(scheme, db, "database name")).transpose()?;
    let mut params = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        params.push((decoded_text(scheme, k, "query")?, decoded_text(scheme, v, "query")?));
    }
    Ok(UrlParts { user, password, host, port, database, params })
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
