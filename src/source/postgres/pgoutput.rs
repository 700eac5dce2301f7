//! pgoutput, PostgreSQL's logical replication output plugin, as a pure function over bytes:
//! `parse` reads one message, exactly what one row's `data` column of
//! `pg_logical_slot_peek_binary_changes(slot, upto_lsn, upto_nchanges, 'proto_version', '1',
//! 'publication_names', pub [, 'messages', 'true'] [, 'binary', 'true'])` holds. No IO here:
//! the CDC engine runs the peek over plain SQL and hands each row's bytes in, and the tests
//! feed bytes captured from a real server (`tests/fixtures/pgoutput.txt`).
//!
//! Message formats: "Logical Replication Message Formats" in PostgreSQL's protocol chapter;
//! every integer is big-endian, a String is NUL-terminated. What the server sends, as seen
//! through the SQL interface (PostgreSQL 15):
//! - Each peek call is a new decoding session, so a Relation message (preceded by Type
//!   messages for columns of non-builtin types: enums, domains, composites) comes before the
//!   first change of each relation in every call, and again after anything that invalidates
//!   the relation's cache (ALTER TABLE, TRUNCATE). Decoders keep relations by oid.
//! - Tuple columns follow the Relation's columns one for one: dropped and generated columns
//!   and columns outside the publication's column list are absent from both, so match by
//!   position in the Relation message, never by attnum. Type oids there are the columns' own
//!   types (a domain's oid, not its base type's).
//! - Begin and Commit frame the changes of one transaction (PostgreSQL 15+ skips a transaction
//!   without published changes; older servers send it as an empty Begin..Commit); a
//!   non-transactional Message arrives on its own, outside any Begin..Commit.
//! - An old key (`K`, REPLICA IDENTITY DEFAULT or USING INDEX) lists every column with the
//!   non-key ones NULL; it is sent for an Update only when the key changed. An old tuple (`O`,
//!   REPLICA IDENTITY FULL) is complete. `u` (an unchanged TOASTed value, which the server
//!   does not have at hand) appears only in the new tuple of an Update: keep the old value.
//! - Text values (`t`) are the type's output function's text in the decoding session, so its
//!   settings (TimeZone, DateStyle, ...) shape them: see `types::SESSION_SETTINGS`. They are
//!   in the server's encoding (the peek returns bytea: no client-encoding conversion).
//!
//! Protocol version 1 is complete here. Versions 2+ (`streaming`), 3 (`two_phase`) and 4
//! (`streaming = parallel`) add messages that `parse` refuses with `ErrorKind::Unsupported`:
//! Stream Start `S` (xid, first-segment flag), Stream Stop `E`, Stream Commit `c` (xid, flags,
//! commit LSN, end LSN, time), Stream Abort `A` (xid, subxid; v4 adds LSN and time), and for
//! two-phase Begin Prepare `b`, Prepare `P`, Commit Prepared `K`, Rollback Prepared `r`,
//! Stream Prepare `p`. Supporting streaming would also need state: between Stream Start and
//! Stream Stop, Relation, Type, Insert, Update, Delete, Truncate and Message carry the
//! streamed transaction's xid (Int32) right after the tag, so `parse` would take an
//! `in_stream` flag, and the engine would buffer or spill each xid's changes until its
//! Stream Commit (or drop them on Stream Abort).

use super::lsn::Lsn;
use std::fmt;

/// One pgoutput message. Strings and values borrow from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    Begin(Begin),
    Commit(Commit),
    Origin(Origin<'a>),
    Relation(Relation<'a>),
    Type(Type<'a>),
    Insert(Insert<'a>),
    Update(Update<'a>),
    Delete(Delete<'a>),
    Truncate(Truncate),
    Message(LogicalMessage<'a>),
}

/// Times are PostgreSQL's: microseconds since 2000-01-01 00:00:00 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Begin {
    /// The commit record's LSN (the Commit message's `commit_lsn`).
    pub final_lsn: Lsn,
    pub commit_time: i64,
    pub xid: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    /// Unused by the server so far (always 0).
    pub flags: u8,
    pub commit_lsn: Lsn,
    /// The end of the commit record: where a slot is advanced to once this transaction is applied.
    pub end_lsn: Lsn,
    pub commit_time: i64,
}

/// The transaction came from a replication origin (replayed by another subscriber).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin<'a> {
    /// The commit's LSN on the origin server (0/0 when the session did not set it).
    pub commit_lsn: Lsn,
    pub name: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation<'a> {
    pub oid: u32,
    /// Empty for `pg_catalog`.
    pub namespace: &'a str,
    pub name: &'a str,
    pub replica_identity: ReplicaIdentity,
    pub columns: Vec<RelationColumn<'a>>,
}

/// `pg_class.relreplident`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaIdentity {
    /// `d`: the primary key.
    Default,
    /// `n`: nothing (updates and deletes carry no old row).
    Nothing,
    /// `f`: every column.
    Full,
    /// `i`: a unique index chosen with `REPLICA IDENTITY USING INDEX`.
    Index,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelationColumn<'a> {
    /// Bit 1: the column is part of the replica identity key.
    pub flags: u8,
    pub name: &'a str,
    pub type_oid: u32,
    /// `atttypmod`: -1 when the type has none.
    pub type_modifier: i32,
}

impl RelationColumn<'_> {
    pub fn is_key(&self) -> bool {
        self.flags & 1 != 0
    }
}

/// A non-builtin type used by a following Relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Type<'a> {
    /// The column's type, as in the Relation message.
    pub oid: u32,
    /// The namespace and name of the type's base type for a domain (a domain over integer is
    /// `("", "int4")`), of the type itself otherwise. Empty for `pg_catalog`.
    pub namespace: &'a str,
    pub name: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insert<'a> {
    pub relation: u32,
    pub new: Tuple<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update<'a> {
    pub relation: u32,
    /// `None` when the key did not change (identity DEFAULT/INDEX) or identity is NOTHING.
    pub old: Option<OldRow<'a>>,
    pub new: Tuple<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete<'a> {
    pub relation: u32,
    pub old: OldRow<'a>,
}

/// The row before an Update or Delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OldRow<'a> {
    /// `K`: the replica identity key's columns; every other column is `Null`.
    Key(Tuple<'a>),
    /// `O`: the whole row (REPLICA IDENTITY FULL).
    Full(Tuple<'a>),
}

impl<'a> OldRow<'a> {
    pub fn tuple(&self) -> &Tuple<'a> {
        match self {
            OldRow::Key(t) | OldRow::Full(t) => t,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncate {
    /// Bit 1: CASCADE, bit 2: RESTART IDENTITY.
    pub options: u8,
    /// Every relation the statement emptied that the publication holds, CASCADE ones included.
    pub relations: Vec<u32>,
}

impl Truncate {
    pub fn cascade(&self) -> bool {
        self.options & 1 != 0
    }
    pub fn restart_identity(&self) -> bool {
        self.options & 2 != 0
    }
}

/// From `pg_logical_emit_message` (sent only with the `messages` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogicalMessage<'a> {
    /// Part of its transaction (inside Begin..Commit) or emitted at once.
    pub transactional: bool,
    pub lsn: Lsn,
    pub prefix: &'a str,
    pub content: &'a [u8],
}

/// One value per column of the relation, in the Relation message's order.
pub type Tuple<'a> = Vec<Datum<'a>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datum<'a> {
    /// `n`
    Null,
    /// `u`: a TOASTed value the Update did not change; the server does not send it.
    Unchanged,
    /// `t`: the type's output function's text, in the server's encoding.
    Text(&'a [u8]),
    /// `b`: the type's send function's bytes (with the `binary` option).
    Binary(&'a [u8]),
}

impl Message<'_> {
    /// The message's name in PostgreSQL's documentation.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Begin(_) => "Begin",
            Message::Commit(_) => "Commit",
            Message::Origin(_) => "Origin",
            Message::Relation(_) => "Relation",
            Message::Type(_) => "Type",
            Message::Insert(_) => "Insert",
            Message::Update(_) => "Update",
            Message::Delete(_) => "Delete",
            Message::Truncate(_) => "Truncate",
            Message::Message(_) => "Message",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input ends inside the message.
    Truncated,
    /// A message tag this decoder does not know (not pgoutput, or a newer protocol).
    UnknownMessage,
    /// A message of protocol version 2+ (streaming, two-phase): never sent with `proto_version` 1.
    Unsupported,
    /// A value out of its domain (a tuple marker, a replica identity, a negative length, non-UTF-8 names).
    Malformed,
    /// Bytes left after a complete message.
    TrailingBytes,
}

/// What was malformed and where: the message's tag, the byte offset in the input, what was
/// being read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    kind: ErrorKind,
    tag: Option<u8>,
    offset: usize,
    detail: String,
}

impl DecodeError {
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    /// Where in the message's bytes the problem was found.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.tag {
            None => write!(f, "pgoutput: {}", self.detail),
            Some(t) => write!(f, "pgoutput {} message: {} at byte {}", tag_name(t), self.detail, self.offset),
        }
    }
}

impl std::error::Error for DecodeError {}

fn tag_name(tag: u8) -> String {
    let name = match tag {
        b'B' => "Begin",
        b'C' => "Commit",
        b'O' => "Origin",
        b'R' => "Relation",
        b'Y' => "Type",
        b'I' => "Insert",
        b'U' => "Update",
        b'D' => "Delete",
        b'T' => "Truncate",
        b'M' => "Message",
        b'S' => "Stream Start",
        b'E' => "Stream Stop",
        b'c' => "Stream Commit",
        b'A' => "Stream Abort",
        b'b' => "Begin Prepare",
        b'P' => "Prepare",
        b'K' => "Commit Prepared",
        b'r' => "Rollback Prepared",
        b'p' => "Stream Prepare",
        t if t.is_ascii_graphic() => return format!("unknown ({:?})", char::from(t)),
        t => return format!("unknown (0x{t:02x})"),
    };
    name.to_string()
}

/// Decodes one message; the whole of `data` must be that message.
pub fn parse(data: &[u8]) -> Result<Message<'_>, DecodeError> {
    let Some(&tag) = data.first() else {
        return Err(DecodeError { kind: ErrorKind::Truncated, tag: None, offset: 0, detail: "empty message".into() });
    };
    let mut r = Reader { buf: data, pos: 1, tag };
    let msg = match tag {
        b'B' => Message::Begin(Begin { final_lsn: r.lsn("final LSN")?, commit_time: r.i64("commit time")?, xid: r.u32("xid")? }),
        b'C' => Message::Commit(Commit {
            flags: r.u8("flags")?,
            commit_lsn: r.lsn("commit LSN")?,
            end_lsn: r.lsn("end LSN")?,
            commit_time: r.i64("commit time")?,
        }),
        b'O' => Message::Origin(Origin { commit_lsn: r.lsn("origin commit LSN")?, name: r.str("origin name")? }),
        b'R' => Message::Relation(relation(&mut r)?),
        b'Y' => Message::Type(Type { oid: r.u32("type oid")?, namespace: r.str("namespace")?, name: r.str("type name")? }),
        b'I' => {
            let relation = r.u32("relation oid")?;
            r.marker(b"N", "new tuple marker 'N'")?;
            Message::Insert(Insert { relation, new: tuple(&mut r)? })
        }
        b'U' => {
            let relation = r.u32("relation oid")?;
            let old = match r.marker(b"KON", "tuple marker 'K', 'O' or 'N'")? {
                b'K' => Some(OldRow::Key(tuple(&mut r)?)),
                b'O' => Some(OldRow::Full(tuple(&mut r)?)),
                _ => None,
            };
            if old.is_some() {
                r.marker(b"N", "new tuple marker 'N'")?;
            }
            Message::Update(Update { relation, old, new: tuple(&mut r)? })
        }
        b'D' => {
            let relation = r.u32("relation oid")?;
            let old = match r.marker(b"KO", "old tuple marker 'K' or 'O'")? {
                b'K' => OldRow::Key(tuple(&mut r)?),
                _ => OldRow::Full(tuple(&mut r)?),
            };
            Message::Delete(Delete { relation, old })
        }
        b'T' => {
            let n = r.u32("relation count")? as usize;
            let options = r.u8("options")?;
            // Checked before allocating: a corrupt count must not reserve gigabytes.
            if r.remaining() < n.saturating_mul(4) {
                return Err(r.err(ErrorKind::Truncated, format!("{n} relation oids announced, {} bytes left", r.remaining())));
            }
            let relations = (0..n).map(|_| r.u32("relation oid")).collect::<Result<_, _>>()?;
            Message::Truncate(Truncate { options, relations })
        }
        b'M' => {
            let transactional = r.u8("flags")? & 1 != 0;
            let lsn = r.lsn("message LSN")?;
            let prefix = r.str("prefix")?;
            let len = r.len("content length")?;
            Message::Message(LogicalMessage { transactional, lsn, prefix, content: r.take(len, "content")? })
        }
        b'S' | b'E' | b'c' | b'A' | b'b' | b'P' | b'K' | b'r' | b'p' => {
            return Err(r.err(
                ErrorKind::Unsupported,
                "a protocol version 2+ message (streaming or two-phase), never sent with proto_version '1'; \
                 peek with 'proto_version', '1' and without 'streaming' or 'two_phase'"
                    .into(),
            ));
        }
        _ => return Err(DecodeError { kind: ErrorKind::UnknownMessage, tag: Some(tag), offset: 0, detail: "unknown message tag".into() }),
    };
    if r.remaining() > 0 {
        return Err(r.err(ErrorKind::TrailingBytes, format!("{} bytes after the end of the message", r.remaining())));
    }
    Ok(msg)
}

fn relation<'a>(r: &mut Reader<'a>) -> Result<Relation<'a>, DecodeError> {
    let oid = r.u32("relation oid")?;
    let namespace = r.str("namespace")?;
    let name = r.str("relation name")?;
    let at = r.pos;
    let replica_identity = match r.u8("replica identity")? {
        b'd' => ReplicaIdentity::Default,
        b'n' => ReplicaIdentity::Nothing,
        b'f' => ReplicaIdentity::Full,
        b'i' => ReplicaIdentity::Index,
        other => {
            r.pos = at;
            return Err(r.err(ErrorKind::Malformed, format!("unknown replica identity {}", show_byte(other))));
        }
    };
    let n = r.count("column count")?;
    let mut columns = Vec::with_capacity(n.min(r.remaining()));
    for i in 0..n {
        let col = (|| {
            Ok(RelationColumn {
                flags: r.u8("flags")?,
                name: r.str("name")?,
                type_oid: r.u32("type oid")?,
                type_modifier: r.i32("type modifier")?,
            })
        })()
        .map_err(|e: DecodeError| e.in_column(i))?;
        columns.push(col);
    }
    Ok(Relation { oid, namespace, name, replica_identity, columns })
}

/// TupleData: Int16 column count, then per column a kind byte and, for `t`/`b`, Int32 length and bytes.
fn tuple<'a>(r: &mut Reader<'a>) -> Result<Tuple<'a>, DecodeError> {
    let n = r.count("column count")?;
    let mut out = Vec::with_capacity(n.min(r.remaining()));
    for i in 0..n {
        let d = (|| {
            Ok(match r.marker(b"ntub", "value kind 'n', 'u', 't' or 'b'")? {
                b'n' => Datum::Null,
                b'u' => Datum::Unchanged,
                b't' => {
                    let len = r.len("text length")?;
                    Datum::Text(r.take(len, "text value")?)
                }
                _ => {
                    let len = r.len("binary length")?;
                    Datum::Binary(r.take(len, "binary value")?)
                }
            })
        })()
        .map_err(|e: DecodeError| e.in_column(i))?;
        out.push(d);
    }
    Ok(out)
}

impl DecodeError {
    fn in_column(mut self, i: usize) -> Self {
        self.detail = format!("column {} of the tuple: {}", i + 1, self.detail);
        self
    }
}

fn show_byte(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("{:?}", char::from(b))
    } else {
        format!("0x{b:02x}")
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    tag: u8,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn err(&self, kind: ErrorKind, detail: String) -> DecodeError {
        DecodeError { kind, tag: Some(self.tag), offset: self.pos, detail }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(self.err(ErrorKind::Truncated, format!("truncated reading {what}: {n} bytes needed, {} left", self.remaining())));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], DecodeError> {
        let s = self.take(N, what)?;
        let mut a = [0; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        self.array(what).map(u32::from_be_bytes)
    }

    fn i32(&mut self, what: &str) -> Result<i32, DecodeError> {
        self.array(what).map(i32::from_be_bytes)
    }

    fn i64(&mut self, what: &str) -> Result<i64, DecodeError> {
        self.array(what).map(i64::from_be_bytes)
    }

    fn lsn(&mut self, what: &str) -> Result<Lsn, DecodeError> {
        self.array(what).map(u64::from_be_bytes).map(Lsn)
    }

    /// An Int16 count that PostgreSQL never sends negative.
    fn count(&mut self, what: &str) -> Result<usize, DecodeError> {
        let at = self.pos;
        let n = i16::from_be_bytes(self.array(what)?);
        usize::try_from(n).map_err(|_| {
            self.pos = at;
            self.err(ErrorKind::Malformed, format!("negative {what} {n}"))
        })
    }

    /// An Int32 length that PostgreSQL never sends negative.
    fn len(&mut self, what: &str) -> Result<usize, DecodeError> {
        let at = self.pos;
        let n = self.i32(what)?;
        usize::try_from(n).map_err(|_| {
            self.pos = at;
            self.err(ErrorKind::Malformed, format!("negative {what} {n}"))
        })
    }

    /// One byte that must be one of `allowed`.
    fn marker(&mut self, allowed: &[u8], what: &str) -> Result<u8, DecodeError> {
        let at = self.pos;
        let b = self.u8(what)?;
        if allowed.contains(&b) {
            return Ok(b);
        }
        self.pos = at;
        Err(self.err(ErrorKind::Malformed, format!("expected {what}, got {}", show_byte(b))))
    }

    /// A NUL-terminated name (identifiers and prefixes: UTF-8 on every server this replica reads).
    fn str(&mut self, what: &str) -> Result<&'a str, DecodeError> {
        let rest = &self.buf[self.pos..];
        let Some(end) = rest.iter().position(|&b| b == 0) else {
            return Err(self.err(ErrorKind::Truncated, format!("truncated reading {what}: no terminating NUL")));
        };
        let s = std::str::from_utf8(&rest[..end]).map_err(|_| self.err(ErrorKind::Malformed, format!("{what} is not UTF-8")))?;
        self.pos += end + 1;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::postgres::types::{decode, decode_text};
    use crate::value::Value;
    use proptest::prelude::*;

    const FIXTURE: &str = include_str!("../../../tests/fixtures/pgoutput.txt");

    /// The messages of one `[section]`, in order, each with the comment above its transaction.
    fn section(name: &str) -> Vec<(String, Vec<u8>)> {
        crate::test_support::fixture_section(FIXTURE, name)
    }

    fn parsed<'a>(messages: &'a [(String, Vec<u8>)], step: &str) -> Vec<Message<'a>> {
        let m: Vec<Message<'a>> =
            messages.iter().filter(|(w, _)| w.starts_with(step)).map(|(_, b)| parse(b).unwrap_or_else(|e| panic!("{e}"))).collect();
        assert!(!m.is_empty(), "no step {step:?}");
        m
    }

    /// pgoutput's own encoding of a message (`logicalrep_write_*`), to check `parse` against
    /// the server's bytes both ways and to round-trip generated messages.
    fn encode(m: &Message<'_>) -> Vec<u8> {
        let mut o = Vec::new();
        let s = |o: &mut Vec<u8>, s: &str| {
            o.extend_from_slice(s.as_bytes());
            o.push(0);
        };
        let tuple = |o: &mut Vec<u8>, t: &Tuple<'_>| {
            o.extend((t.len() as i16).to_be_bytes());
            for d in t {
                match d {
                    Datum::Null => o.push(b'n'),
                    Datum::Unchanged => o.push(b'u'),
                    Datum::Text(v) | Datum::Binary(v) => {
                        o.push(if matches!(d, Datum::Text(_)) { b't' } else { b'b' });
                        o.extend((v.len() as i32).to_be_bytes());
                        o.extend_from_slice(v);
                    }
                }
            }
        };
        let old = |o: &mut Vec<u8>, r: &OldRow<'_>| {
            o.push(if matches!(r, OldRow::Key(_)) { b'K' } else { b'O' });
            tuple(o, r.tuple());
        };
        match m {
            Message::Begin(b) => {
                o.push(b'B');
                o.extend(b.final_lsn.0.to_be_bytes());
                o.extend(b.commit_time.to_be_bytes());
                o.extend(b.xid.to_be_bytes());
            }
            Message::Commit(c) => {
                o.push(b'C');
                o.push(c.flags);
                o.extend(c.commit_lsn.0.to_be_bytes());
                o.extend(c.end_lsn.0.to_be_bytes());
                o.extend(c.commit_time.to_be_bytes());
            }
            Message::Origin(x) => {
                o.push(b'O');
                o.extend(x.commit_lsn.0.to_be_bytes());
                s(&mut o, x.name);
            }
            Message::Relation(r) => {
                o.push(b'R');
                o.extend(r.oid.to_be_bytes());
                s(&mut o, r.namespace);
                s(&mut o, r.name);
                o.push(match r.replica_identity {
                    ReplicaIdentity::Default => b'd',
                    ReplicaIdentity::Nothing => b'n',
                    ReplicaIdentity::Full => b'f',
                    ReplicaIdentity::Index => b'i',
                });
                o.extend((r.columns.len() as i16).to_be_bytes());
                for c in &r.columns {
                    o.push(c.flags);
                    s(&mut o, c.name);
                    o.extend(c.type_oid.to_be_bytes());
                    o.extend(c.type_modifier.to_be_bytes());
                }
            }
            Message::Type(t) => {
                o.push(b'Y');
                o.extend(t.oid.to_be_bytes());
                s(&mut o, t.namespace);
                s(&mut o, t.name);
            }
            Message::Insert(i) => {
                o.push(b'I');
                o.extend(i.relation.to_be_bytes());
                o.push(b'N');
                tuple(&mut o, &i.new);
            }
            Message::Update(u) => {
                o.push(b'U');
                o.extend(u.relation.to_be_bytes());
                if let Some(r) = &u.old {
                    old(&mut o, r);
                }
                o.push(b'N');
                tuple(&mut o, &u.new);
            }
            Message::Delete(d) => {
                o.push(b'D');
                o.extend(d.relation.to_be_bytes());
                old(&mut o, &d.old);
            }
            Message::Truncate(t) => {
                o.push(b'T');
                o.extend((t.relations.len() as u32).to_be_bytes());
                o.push(t.options);
                for r in &t.relations {
                    o.extend(r.to_be_bytes());
                }
            }
            Message::Message(x) => {
                o.push(b'M');
                o.push(u8::from(x.transactional));
                o.extend(x.lsn.0.to_be_bytes());
                s(&mut o, x.prefix);
                o.extend((x.content.len() as i32).to_be_bytes());
                o.extend_from_slice(x.content);
            }
        }
        o
    }

    #[test]
    fn every_captured_message_parses_and_encodes_back_to_the_same_bytes() {
        let mut kinds = std::collections::BTreeSet::new();
        for name in ["text", "binary"] {
            for (what, bytes) in section(name) {
                let m = parse(&bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
                kinds.insert(m.name());
                assert_eq!(encode(&m), bytes, "{what}: {m:?}");
            }
        }
        let all = ["Begin", "Commit", "Origin", "Relation", "Type", "Insert", "Update", "Delete", "Truncate", "Message"];
        assert_eq!(kinds.len(), all.len(), "{kinds:?}");
    }

    fn text<'a>(t: &Tuple<'a>, i: usize) -> &'a str {
        match t[i] {
            Datum::Text(b) => std::str::from_utf8(b).unwrap(),
            other => panic!("column {i}: {other:?}"),
        }
    }

    #[test]
    fn transactions_relations_and_types() {
        let text_msgs = section("text");
        let m = parsed(&text_msgs, "insert every type's edge values");
        let (Message::Begin(b), Message::Commit(c)) = (&m[0], &m[m.len() - 1]) else { panic!("{:?}", &m[0]) };
        assert_eq!((b.final_lsn, b.commit_time), (c.commit_lsn, c.commit_time));
        assert!(c.end_lsn > c.commit_lsn && c.flags == 0);
        // 2026 or later, in microseconds since 2000-01-01.
        assert!(b.commit_time > 26 * 365 * 86_400 * 1_000_000, "{}", b.commit_time);
        // Types first: the enum by its name, the domain by its base type's.
        let Message::Type(t) = m[1] else { panic!("{:?}", m[1]) };
        assert_eq!((t.namespace, t.name), ("public", "mood"));
        let Message::Type(t) = m[2] else { panic!("{:?}", m[2]) };
        assert_eq!((t.namespace, t.name), ("", "int4"));
        let Message::Relation(r) = &m[3] else { panic!("{:?}", m[3]) };
        assert_eq!((r.namespace, r.name, r.replica_identity), ("public", "all_types", ReplicaIdentity::Default));
        assert_eq!(r.columns.len(), 71);
        assert_eq!((r.columns[0].name, r.columns[0].type_oid, r.columns[0].is_key()), ("id", 23, true));
        assert!(r.columns[1..].iter().all(|c| !c.is_key()));
        let num2 = r.columns.iter().find(|c| c.name == "num2").unwrap();
        assert_eq!((num2.type_oid, num2.type_modifier), (1700, (12 << 16) + 2 + 4));
        let dom = r.columns.iter().find(|c| c.name == "dom").unwrap();
        assert_eq!(dom.type_oid, t.oid, "the domain's own oid");
        assert!(m[4..m.len() - 1].iter().all(|x| matches!(x, Message::Insert(i) if i.relation == r.oid)));

        let m = parsed(&text_msgs, "identity FULL");
        let Message::Relation(r) = &m[1] else { panic!("{:?}", m[1]) };
        assert_eq!(r.replica_identity, ReplicaIdentity::Full);
        // With identity FULL every column is flagged as part of the key.
        assert!(r.columns.iter().all(RelationColumn::is_key));
    }

    #[test]
    fn tuples_nulls_and_text_values() {
        let text_msgs = section("text");
        let m = parsed(&text_msgs, "insert every type's edge values");
        let rows: Vec<&Tuple<'_>> = m.iter().filter_map(|x| if let Message::Insert(i) = x { Some(&i.new) } else { None }).collect();
        assert_eq!(rows.len(), 6);
        assert_eq!(text(rows[0], 0), "1");
        assert_eq!(text(rows[0], 3), "9223372036854775807");
        assert_eq!(text(rows[1], 3), "-9223372036854775808");
        // '' and NULL differ: row 2's text is 'é😀\n', row 3's NULL; row 2's varchar is ''.
        assert_eq!(text(rows[1], 24), "é😀\n");
        assert_eq!(rows[2][24], Datum::Null);
        assert_eq!(text(rows[1], 26), "");
        assert_eq!(decode_text("timestamp with time zone", text(rows[0], 13)), Ok(Value::text("2026-01-02T03:04:05.123456Z")));
        assert_eq!(decode_text("date", text(rows[2], 15)), Ok(Value::text("-000043-03-15")));
        assert_eq!(decode_text("integer[]", text(rows[3], 40)), Ok(Value::text("[[1,2],[3,4]]")));
        // Row 6: NULL everywhere but the key.
        assert!(rows[5][1..].iter().all(|d| *d == Datum::Null));
    }

    #[test]
    fn updates_deletes_old_rows_and_unchanged_toast() {
        let text_msgs = section("text");
        let m = parsed(&text_msgs, "update non-key columns");
        let Message::Update(u) = &m[1] else { panic!("{:?}", m[1]) };
        assert!(u.old.is_none(), "key unchanged: no old row");
        assert_eq!(text(&u.new, 24), "changed");

        let m = parsed(&text_msgs, "update the primary key");
        let Message::Update(u) = &m[1] else { panic!("{:?}", m[1]) };
        let Some(OldRow::Key(k)) = &u.old else { panic!("{:?}", u.old) };
        assert_eq!(text(k, 0), "2");
        assert!(k[1..].iter().all(|d| *d == Datum::Null), "non-key columns of a K tuple are NULL");
        assert_eq!(text(&u.new, 0), "100");

        let m = parsed(&text_msgs, "delete (identity DEFAULT");
        let Message::Delete(d) = &m[1] else { panic!("{:?}", m[1]) };
        assert!(matches!(&d.old, OldRow::Key(k) if text(k, 0) == "3"));

        let m = parsed(&text_msgs, "identity FULL");
        let updates: Vec<&Update<'_>> = m.iter().filter_map(|x| if let Message::Update(u) = x { Some(u) } else { None }).collect();
        let Some(OldRow::Full(o)) = &updates[0].old else { panic!("{:?}", updates[0].old) };
        assert_eq!((text(o, 0), text(o, 1), o[2]), ("1", "a", Datum::Null));
        assert_eq!(text(&updates[0].new, 1), "a2");
        let Some(OldRow::Full(o)) = &updates[1].old else { panic!() };
        assert_eq!((text(o, 0), text(&updates[1].new, 0)), ("2", "3"));
        let Some(Message::Delete(d)) = m.iter().find(|x| matches!(x, Message::Delete(_))) else { panic!() };
        assert!(matches!(&d.old, OldRow::Full(o) if text(o, 1) == "a2"));

        let m = parsed(&text_msgs, "insert a 3.2 kB");
        let Message::Insert(i) = &m[2] else { panic!("{:?}", m[2]) };
        assert_eq!(text(&i.new, 2).len(), 3200);
        let m = parsed(&text_msgs, "update leaving the TOASTed column unchanged");
        let Message::Update(u) = &m[1] else { panic!("{:?}", m[1]) };
        assert_eq!((text(&u.new, 1), u.new[2]), ("changed", Datum::Unchanged));
    }

    #[test]
    fn truncate_messages_origin_and_new_columns() {
        let text_msgs = section("text");
        let m = parsed(&text_msgs, "TRUNCATE of two tables");
        let oids: Vec<u32> = m.iter().filter_map(|x| if let Message::Relation(r) = x { Some(r.oid) } else { None }).collect();
        let Some(Message::Truncate(t)) = m.iter().find(|x| matches!(x, Message::Truncate(_))) else { panic!() };
        assert!(t.cascade() && t.restart_identity());
        assert_eq!(t.relations, oids);

        let m = parsed(&text_msgs, "a transactional logical message");
        let Message::Message(x) = m[1] else { panic!("{:?}", m[1]) };
        assert!(x.transactional);
        assert_eq!((x.prefix, x.content), ("er", &b"hello"[..]));
        let m = parsed(&text_msgs, "outside any transaction");
        assert_eq!(m.len(), 1);
        let Message::Message(x) = m[0] else { panic!("{:?}", m[0]) };
        assert!(!x.transactional && x.lsn > Lsn::INVALID);
        assert_eq!(x.content, &[0, 255]);

        let m = parsed(&text_msgs, "a change replayed from a replication origin");
        let Message::Origin(o) = m[1] else { panic!("{:?}", m[1]) };
        assert_eq!(o.commit_lsn.to_string(), "0/ABCDEF");
        assert!(o.name.starts_with("er_origin_"));

        let m = parsed(&text_msgs, "insert and update after ADD COLUMN");
        let Message::Relation(r) = &m[3] else { panic!("{:?}", m[3]) };
        assert_eq!(r.columns.last().map(|c| c.name), Some("added"));
        let Message::Insert(i) = &m[4] else { panic!("{:?}", m[4]) };
        assert_eq!((i.new.len(), text(&i.new, 71)), (72, "new"));
    }

    fn source_type(oid: u32) -> Option<&'static str> {
        Some(match oid {
            16 => "boolean",
            17 => "bytea",
            19 => "name",
            20 => "bigint",
            21 => "smallint",
            23 => "integer",
            25 => "text",
            26 => "oid",
            114 => "json",
            700 => "real",
            701 => "double precision",
            1042 => "character",
            1043 => "character varying",
            1082 => "date",
            1083 => "time without time zone",
            1114 => "timestamp without time zone",
            1184 => "timestamp with time zone",
            1186 => "interval",
            1266 => "time with time zone",
            2950 => "uuid",
            3802 => "jsonb",
            _ => return None,
        })
    }

    /// The same rows with the `binary` option: the binary decoder and `decode_text` agree on
    /// every natively decoded column.
    #[test]
    fn binary_tuples_agree_with_text_tuples() {
        let (text_msgs, binary_msgs) = (section("text"), section("binary"));
        let t = parsed(&text_msgs, "insert every type's edge values");
        let b = parsed(&binary_msgs, "insert every type's edge values");
        assert_eq!(t.len(), b.len());
        let Message::Relation(rel) = &b[3] else { panic!("{:?}", b[3]) };
        let mut compared = 0;
        for (tm, bm) in t.iter().zip(&b) {
            let (Message::Insert(ti), Message::Insert(bi)) = (tm, bm) else { continue };
            for (i, col) in rel.columns.iter().enumerate() {
                let Some(ty) = source_type(col.type_oid) else { continue };
                match (ti.new[i], bi.new[i]) {
                    (Datum::Null, Datum::Null) => {}
                    (Datum::Text(tx), Datum::Binary(bx)) => {
                        let from_text = decode_text(ty, std::str::from_utf8(tx).unwrap()).unwrap();
                        let from_binary = decode(col.type_oid, bx).unwrap();
                        let same = match (&from_text, &from_binary) {
                            (Value::Real(a), Value::Real(b)) => a.to_bits() == b.to_bits(),
                            (a, b) => a == b,
                        };
                        assert!(same, "{} ({ty}): text {from_text:?}, binary {from_binary:?}", col.name);
                        compared += 1;
                    }
                    other => panic!("{}: {other:?}", col.name),
                }
            }
        }
        assert!(compared > 60, "{compared}");
    }

    #[test]
    fn errors_say_what_and_where() {
        let e = parse(&[]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Truncated);
        assert_eq!(e.to_string(), "pgoutput: empty message");
        let e = parse(b"Z").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnknownMessage);
        assert!(e.to_string().contains("unknown ('Z')"), "{e}");
        assert!(parse(&[0xff]).unwrap_err().to_string().contains("0xff"));
        for tag in *b"SEcAbPKrp" {
            let e = parse(&[tag, 0, 0, 0, 1]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
            assert!(e.to_string().contains("proto_version '1'"), "{e}");
        }
        assert!(parse(b"S").unwrap_err().to_string().starts_with("pgoutput Stream Start message"));

        // An Insert whose second column's length runs past the end.
        let mut m = vec![b'I', 0, 0, 0x40, 0x0b, b'N', 0, 2, b't', 0, 0, 0, 1, b'1', b't', 0, 0, 0, 9, b'x'];
        let e = parse(&m).unwrap_err();
        assert_eq!((e.kind(), e.offset()), (ErrorKind::Truncated, 19));
        assert_eq!(
            e.to_string(),
            "pgoutput Insert message: column 2 of the tuple: truncated reading text value: 9 bytes needed, 1 left at byte 19"
        );
        m[18] = 1;
        assert!(parse(&m).is_ok());
        m.push(0);
        let e = parse(&m).unwrap_err();
        assert_eq!((e.kind(), e.offset()), (ErrorKind::TrailingBytes, 20));
        m.pop();
        m[14] = b'x';
        let e = parse(&m).unwrap_err();
        assert_eq!((e.kind(), e.offset()), (ErrorKind::Malformed, 14));
        assert!(e.to_string().contains("expected value kind 'n', 'u', 't' or 'b', got 'x'"), "{e}");
        m[14] = b't';
        m[15] = 0xff;
        let e = parse(&m).unwrap_err();
        assert_eq!((e.kind(), e.offset()), (ErrorKind::Malformed, 15));
        assert!(e.to_string().contains("negative text length"), "{e}");

        let e = parse(b"U\0\0\0\x01X").unwrap_err();
        assert!(e.to_string().contains("'K', 'O' or 'N'"), "{e}");
        let e = parse(b"D\0\0\0\x01N\0\0").unwrap_err();
        assert!(e.to_string().contains("'K' or 'O'"), "{e}");
        let e = parse(b"R\0\0\0\x01public\0t\0x\0\0").unwrap_err();
        assert!(e.to_string().contains("unknown replica identity 'x'") && e.offset() == 14, "{e}");
        let e = parse(b"R\0\0\0\x01public\0t").unwrap_err();
        assert!(e.to_string().contains("relation name: no terminating NUL"), "{e}");
        let e = parse(b"Y\0\0\0\x01\xff\0t\0").unwrap_err();
        assert!(e.to_string().contains("namespace is not UTF-8"), "{e}");
        // A Truncate announcing more oids than there are bytes fails before allocating them.
        let e = parse(b"T\xff\xff\xff\xff\0\0\0\0\x01").unwrap_err();
        assert!(e.to_string().contains("4294967295 relation oids announced, 4 bytes left"), "{e}");
        let e = parse(b"I\0\0\0\x01N\x80\0").unwrap_err();
        assert!(e.to_string().contains("negative column count"), "{e}");
    }

    #[test]
    fn every_truncation_of_every_captured_message_is_an_error() {
        for name in ["text", "binary"] {
            for (what, bytes) in section(name) {
                for n in 0..bytes.len() {
                    let e = parse(&bytes[..n]).expect_err(&what);
                    assert!(matches!(e.kind(), ErrorKind::Truncated | ErrorKind::Malformed), "{what}, {n} bytes: {e}");
                }
            }
        }
    }

    fn leak(s: String) -> &'static str {
        Box::leak(s.into_boxed_str())
    }

    fn leak_bytes(b: Vec<u8>) -> &'static [u8] {
        Box::leak(b.into_boxed_slice())
    }

    fn name() -> impl Strategy<Value = &'static str> {
        "[a-zA-Z_ é😀\"-]{0,12}".prop_map(leak)
    }

    fn tuple() -> impl Strategy<Value = Tuple<'static>> {
        let datum = prop_oneof![
            Just(Datum::Null),
            Just(Datum::Unchanged),
            proptest::collection::vec(any::<u8>(), 0..24).prop_map(|b| Datum::Text(leak_bytes(b))),
            proptest::collection::vec(any::<u8>(), 0..24).prop_map(|b| Datum::Binary(leak_bytes(b))),
        ];
        proptest::collection::vec(datum, 0..10)
    }

    fn old_row() -> impl Strategy<Value = OldRow<'static>> {
        prop_oneof![tuple().prop_map(OldRow::Key), tuple().prop_map(OldRow::Full)]
    }

    fn message() -> impl Strategy<Value = Message<'static>> {
        let lsn = || any::<u64>().prop_map(Lsn);
        let identity = prop_oneof![
            Just(ReplicaIdentity::Default),
            Just(ReplicaIdentity::Nothing),
            Just(ReplicaIdentity::Full),
            Just(ReplicaIdentity::Index)
        ];
        let column = (any::<u8>(), name(), any::<u32>(), any::<i32>()).prop_map(|(flags, name, type_oid, type_modifier)| RelationColumn {
            flags,
            name,
            type_oid,
            type_modifier,
        });
        prop_oneof![
            (lsn(), any::<i64>(), any::<u32>()).prop_map(|(final_lsn, commit_time, xid)| Message::Begin(Begin {
                final_lsn,
                commit_time,
                xid
            })),
            (any::<u8>(), lsn(), lsn(), any::<i64>()).prop_map(|(flags, commit_lsn, end_lsn, commit_time)| Message::Commit(Commit {
                flags,
                commit_lsn,
                end_lsn,
                commit_time
            })),
            (lsn(), name()).prop_map(|(commit_lsn, name)| Message::Origin(Origin { commit_lsn, name })),
            (any::<u32>(), name(), name(), identity, proptest::collection::vec(column, 0..8)).prop_map(
                |(oid, namespace, name, replica_identity, columns)| Message::Relation(Relation {
                    oid,
                    namespace,
                    name,
                    replica_identity,
                    columns
                })
            ),
            (any::<u32>(), name(), name()).prop_map(|(oid, namespace, name)| Message::Type(Type { oid, namespace, name })),
            (any::<u32>(), tuple()).prop_map(|(relation, new)| Message::Insert(Insert { relation, new })),
            (any::<u32>(), proptest::option::of(old_row()), tuple()).prop_map(|(relation, old, new)| Message::Update(Update {
                relation,
                old,
                new
            })),
            (any::<u32>(), old_row()).prop_map(|(relation, old)| Message::Delete(Delete { relation, old })),
            (any::<u8>(), proptest::collection::vec(any::<u32>(), 0..6))
                .prop_map(|(options, relations)| Message::Truncate(Truncate { options, relations })),
            (any::<bool>(), lsn(), name(), proptest::collection::vec(any::<u8>(), 0..40)).prop_map(
                |(transactional, lsn, prefix, content)| {
                    Message::Message(LogicalMessage { transactional, lsn, prefix, content: leak_bytes(content) })
                }
            ),
        ]
    }

    proptest! {
        #[test]
        fn generated_messages_round_trip(m in message()) {
            let bytes = encode(&m);
            prop_assert_eq!(parse(&bytes), Ok(m));
            for n in 0..bytes.len() {
                prop_assert!(parse(&bytes[..n]).is_err());
            }
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn corrupted_captured_messages_never_panic(i in any::<prop::sample::Index>(), at in any::<prop::sample::Index>(), byte: u8, cut in any::<prop::sample::Index>()) {
            let messages = section("text");
            let mut bytes = messages[i.index(messages.len())].1.clone();
            let at = at.index(bytes.len());
            bytes[at] = byte;
            let keep = cut.index(bytes.len() + 1);
            let _ = parse(&bytes);
            let _ = parse(&bytes[..keep]);
        }
    }
}
