//! The one place that parses and quotes SQL identifiers.
//!
//! User input names tables and columns; nothing of it is ever spliced into SQL except through
//! `quote_double`/`quote_backtick` after `parse_*` accepted it.

/// How the origin quotes identifiers; `Backtick` sources (MySQL) also accept backquotes in input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quoting {
    Double,
    Backtick,
}

/// A parsed identifier: its real name, and whether the user quoted it (which decides case
/// folding at sources like PostgreSQL that fold unquoted names to lower case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub quoted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualifiedName {
    pub schema: Option<Ident>,
    pub name: Ident,
}

const MAX_LEN: usize = 128;

/// Parses one identifier from the start of `s`; returns it and the rest.
fn parse_one(s: &str, backquotes: bool) -> Result<(Ident, &str), String> {
    let mut chars = s.char_indices();
    let first = match chars.next() {
        None => return Err("is empty".into()),
        Some((_, c)) => c,
    };
    let close = match first {
        '"' => Some('"'),
        '`' if backquotes => Some('`'),
        _ => None,
    };
    if let Some(q) = close {
        let mut name = String::new();
        let body = &s[1..];
        let mut it = body.char_indices().peekable();
        while let Some((i, c)) = it.next() {
            if c == q {
                if matches!(it.peek(), Some((_, c2)) if *c2 == q) {
                    it.next();
                    name.push(q);
                    continue;
                }
                if name.is_empty() {
                    return Err("is an empty quoted identifier".into());
                }
                if name.chars().count() > MAX_LEN {
                    return Err(format!("is longer than {MAX_LEN} characters"));
                }
                return Ok((Ident { name, quoted: true }, &body[i + 1..]));
            }
            if c == '\0' {
                return Err("contains a NUL character".into());
            }
            name.push(c);
        }
        return Err(format!("has an unterminated {q}quote"));
    }
    if !(first.is_ascii_alphabetic() || first == '_') {
        return Err(format!("must start with a letter or underscore, or be quoted (found {first:?})"));
    }
    let end = s.char_indices().find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '$')).map(|(i, _)| i).unwrap_or(s.len());
    if end > MAX_LEN {
        return Err(format!("is longer than {MAX_LEN} characters"));
    }
    Ok((Ident { name: s[..end].to_string(), quoted: false }, &s[end..]))
}

fn describe_rest(rest: &str) -> String {
    let c = rest.chars().next().unwrap_or(' ');
    format!("has unexpected {c:?} after the identifier (quote names that contain it)")
}

/// One identifier, e.g. a column: `id`, `"Order Items"`, `"a""b"`.
pub fn parse_ident(s: &str, quoting: Quoting) -> Result<Ident, String> {
    let (id, rest) = parse_one(s, quoting == Quoting::Backtick)?;
    if !rest.is_empty() {
        return Err(describe_rest(rest));
    }
    Ok(id)
}

/// `table` or `schema.table`, each part plain or quoted.
pub fn parse_qualified(s: &str, quoting: Quoting) -> Result<QualifiedName, String> {
    let bq = quoting == Quoting::Backtick;
    let (first, rest) = parse_one(s, bq)?;
    if rest.is_empty() {
        return Ok(QualifiedName { schema: None, name: first });
    }
    let Some(rest) = rest.strip_prefix('.') else {
        return Err(describe_rest(rest));
    };
    let (second, rest) = parse_one(rest, bq).map_err(|e| format!("table part {e}"))?;
    if !rest.is_empty() {
        return Err(describe_rest(rest));
    }
    Ok(QualifiedName { schema: Some(first), name: second })
}

/// `"name"` with embedded quotes doubled: SQLite and PostgreSQL.
pub fn quote_double(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 2);
    s.push('"');
    for c in name.chars() {
        if c == '"' {
            s.push('"');
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// `` `name` `` with embedded backquotes doubled: MySQL and MariaDB.
pub fn quote_backtick(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 2);
    s.push('`');
    for c in name.chars() {
        if c == '`' {
            s.push('`');
        }
        s.push(c);
    }
    s.push('`');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn q(s: &str) -> Result<QualifiedName, String> {
        parse_qualified(s, Quoting::Double)
    }

    #[test]
    fn accepts_plain_and_quoted() {
        assert_eq!(parse_ident("id", Quoting::Double).unwrap().name, "id");
        assert_eq!(parse_ident("a$1_", Quoting::Double).unwrap().name, "a$1_");
        let id = parse_ident(r#""Weird ""Name""""#, Quoting::Double).unwrap();
        assert_eq!(id, Ident { name: r#"Weird "Name""#.into(), quoted: true });
        let t = q(r#""My Schema"."Order Items""#).unwrap();
        assert_eq!(t.schema.unwrap().name, "My Schema");
        assert_eq!(t.name.name, "Order Items");
        let t = parse_qualified("`db`.`t``x`", Quoting::Backtick).unwrap();
        assert_eq!(t.name.name, "t`x");
        assert_eq!(q("public.users").unwrap().schema.unwrap().name, "public");
    }

    #[test]
    fn rejects_injection_and_junk() {
        for bad in [
            "",
            "1abc",
            "a b",
            "a;drop table x",
            "a--",
            "a/*",
            "\"open",
            "\"\"",
            "a.",
            ".a",
            "a.b.c",
            "`x`",
            "t; DELETE FROM t",
            "x'",
            "a\u{0}",
            "\"a\u{0}\"",
            "é",
        ] {
            assert!(q(bad).is_err(), "accepted {bad:?}");
        }
        assert!(parse_ident("a.b", Quoting::Double).is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_double(r#"a"b"#), r#""a""b""#);
        assert_eq!(quote_backtick("a`b"), "`a``b`");
    }

    proptest! {
        #[test]
        fn quote_then_parse_round_trips(name in "[^\u{0}]{1,40}") {
            let id = parse_ident(&quote_double(&name), Quoting::Double).unwrap();
            prop_assert_eq!(&id.name, &name);
            let id = parse_ident(&quote_backtick(&name), Quoting::Backtick).unwrap();
            prop_assert_eq!(&id.name, &name);
        }

        #[test]
        fn never_panics(s in ".{0,60}") {
            let _ = parse_qualified(&s, Quoting::Double);
            let _ = parse_qualified(&s, Quoting::Backtick);
        }

        #[test]
        fn accepted_plain_names_are_safe(s in ".{0,30}") {
            if let Ok(id) = parse_ident(&s, Quoting::Double) {
                if !id.quoted {
                    prop_assert!(id.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$'));
                }
            }
        }
    }
}
