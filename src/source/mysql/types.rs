//! MySQL and MariaDB types: the affinity each maps to, the exact decoding of binary-protocol
//! values, and how a `Value` binds back as a keyset parameter that the server compares exactly.
//!
//! | MySQL / MariaDB | affinity | value in the replica |
//! |---|---|---|
//! | `TINYINT`, `SMALLINT`, `MEDIUMINT`, `INT`, `BIGINT` (signed), and all but `BIGINT` unsigned | INTEGER | the integer (all 64 bits: `-9223372036854775808` included) |
//! | `BIGINT UNSIGNED` | none (any) | INTEGER up to 9223372036854775807; above that TEXT of its decimal digits (`18446744073709551615`); the column is declared without a type so SQLite keeps both exactly |
//! | `TINYINT(1)` / `BOOLEAN` | INTEGER | its integer, 0/1 for booleans (any other stored value, e.g. 5, is kept) |
//! | `BIT(1)`..`BIT(63)` | INTEGER | the bits as an unsigned integer (`b'101'` → 5) |
//! | `BIT(64)` | none (any) | as `BIGINT UNSIGNED` |
//! | `YEAR` | INTEGER | 2026 (`0000` → 0) |
//! | `DECIMAL(M,D)` / `NUMERIC` | TEXT | MySQL's digits, with all `D` decimals: `12.50`, `-0.000000000000000000000000000001` |
//! | `FLOAT` | REAL | the shortest decimal that reads back to the same 4-byte float, as a double: `0.1` stays `0.1` (not `0.10000000149011612`); lossless: the float is that double rounded to 4 bytes |
//! | `DOUBLE` / `REAL` | REAL | the double, exactly |
//! | `DATE` | TEXT | `2026-01-02` |
//! | `DATETIME(n)` | TEXT | `2026-01-02T03:04:05` plus exactly `n` fraction digits, as MySQL prints them (`DATETIME(6)`: `.123456`, `DATETIME(3)`: `.123`), so one column's texts all sort chronologically |
//! | `TIMESTAMP(n)` | TEXT | UTC (the session runs with `time_zone = '+00:00'`) with `Z`: `2026-01-02T03:04:05.123456Z`, `n` digits as for `DATETIME` |
//! | `TIME(n)` | TEXT | `[-]HH:MM:SS` plus `n` digits, hours beyond 24 kept: `-838:59:59`, `838:59:59.000000` |
//! | zero dates (`0000-00-00`, `2026-00-00`, `0000-00-00 00:00:00`) | TEXT | kept as the text MySQL has, `0000-00-00T00:00:00`(`Z`): never NULL, so NULL stays distinct and such rows still page by their cursor |
//! | `CHAR`, `VARCHAR`, `TEXT` types (any character set, sent as utf8mb4) | TEXT | the text (emoji kept); `CHAR` without its trailing spaces, as MySQL returns it |
//! | `ENUM`, `SET` | TEXT | the label(s): `b`, `a,c`; `''` for the invalid-value entry |
//! | `JSON` (MySQL; in MariaDB an alias of `LONGTEXT`) | TEXT | the JSON text as the server sends it (numbers of any size kept) |
//! | `BINARY`, `VARBINARY`, `BLOB` types, text columns with the `binary` character set | BLOB | the bytes (`BINARY(n)` with its `\0` padding) |
//! | `GEOMETRY` and spatial types | BLOB | MySQL's internal form: 4-byte SRID + WKB |
//! | MariaDB `UUID`, `INET4`, `INET6`, other types | TEXT | the text the server sends |
//!
//! NULL stays NULL and `''` stays `''`.
//!
//! Binlog row values (change data capture) reach the same values through `BinlogColumns`:
//! tests/mysql_binlog.rs compares them with a full copy cell by cell.

use super::binlog::{json_to_text, RawValue, Row, TableColumn, TableMap};
use super::codec::{flag, ty, Cell, ColumnDef, BINARY_CHARSET};
use crate::batch::Cells;
use crate::ident::quote_backtick;
use crate::source::{Affinity, Column};
use crate::time::civil_from_days;
use crate::time::push_padded;
use crate::value::{hex, Value};

/// What a column is, from its `COLUMN_TYPE` (`bigint(20) unsigned`, `enum('a','b')`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Fits i64 whatever its value.
    Int,
    /// `BIGINT UNSIGNED` and `BIT(64)`: up to 2^64-1.
    BigUnsigned,
    Bit,
    Float,
    Double,
    /// Precision and scale, for the cast that makes a bound key compare as a decimal.
    Decimal(u32, u32),
    Date,
    DateTime,
    Timestamp,
    Time,
    Enum(Vec<String>),
    Set(Vec<String>),
    Text,
    Binary,
}

impl Kind {
    pub(crate) fn of(column_type: &str) -> Kind {
        let t = column_type.trim().to_ascii_lowercase();
        let base_end = t.find(['(', ' ']).unwrap_or(t.len());
        let base = &t[..base_end];
        let unsigned = t.split_whitespace().any(|w| w == "unsigned");
        let args = || -> Vec<u32> {
            let inner = t.get(base_end..).and_then(|r| r.strip_prefix('(')).and_then(|r| r.split(')').next()).unwrap_or("");
            inner.split(',').filter_map(|n| n.trim().parse().ok()).collect()
        };
        match base {
            "bigint" | "int8" if unsigned => Kind::BigUnsigned,
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "bool" | "boolean" | "int1" | "int2" | "int3"
            | "int4" | "int8" | "middleint" | "year" => Kind::Int,
            "bit" => {
                let n = args().first().copied().unwrap_or(1);
                if n >= 64 {
                    Kind::BigUnsigned
                } else {
                    Kind::Bit
                }
            }
            "float" | "float4" => Kind::Float,
            "double" | "real" | "float8" => Kind::Double,
            "decimal" | "numeric" | "dec" | "fixed" => {
                let a = args();
                Kind::Decimal(a.first().copied().unwrap_or(10), a.get(1).copied().unwrap_or(0))
            }
            "date" => Kind::Date,
            "datetime" => Kind::DateTime,
            "timestamp" => Kind::Timestamp,
            "time" => Kind::Time,
            // Labels keep their case: parse the original text, not the lower-cased copy.
            "enum" => Kind::Enum(labels(column_type)),
            "set" => Kind::Set(labels(column_type)),
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "geometry" | "point" | "linestring" | "polygon"
            | "multipoint" | "multilinestring" | "multipolygon" | "geometrycollection" | "geomcollection" => Kind::Binary,
            _ => Kind::Text,
        }
    }

    pub(crate) fn affinity(&self) -> Affinity {
        match self {
            Kind::Int | Kind::Bit => Affinity::Integer,
            // Integers up to i64::MAX and decimal text above it, side by side.
            Kind::BigUnsigned => Affinity::Any,
            Kind::Float | Kind::Double => Affinity::Real,
            Kind::Binary => Affinity::Blob,
            _ => Affinity::Text,
        }
    }
}

/// The labels of `enum('a','b''c')` / `set(...)`, unescaped as information_schema escapes them.
fn labels(column_type: &str) -> Vec<String> {
    let Some(start) = column_type.find('(') else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut chars = column_type[start + 1..].chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            if c == ')' {
                break;
            }
            continue;
        }
        let mut label = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    label.push('\'');
                }
                '\'' => break,
                '\\' => match chars.next() {
                    Some('0') => label.push('\0'),
                    Some('n') => label.push('\n'),
                    Some('r') => label.push('\r'),
                    Some('t') => label.push('\t'),
                    Some('Z') => label.push('\u{1a}'),
                    Some(other) => label.push(other),
                    None => {}
                },
                c => label.push(c),
            }
        }
        out.push(label);
    }
    out
}

fn unsigned_value(u: u64) -> Value {
    match i64::try_from(u) {
        Ok(i) => Value::Integer(i),
        Err(_) => Value::Text(u.to_string()),
    }
}

/// The shortest decimal that identifies the float, read as a double.
pub(crate) fn float_value(f: f32) -> f64 {
    format!("{f:e}").parse().unwrap_or(f64::from(f))
}

fn utf8(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "text that is not valid UTF-8 (utf8mb4)".to_string())
}

/// `n` fraction digits of `micro` (a column's fsp; more than 6 means "not fixed": 6 when
/// there is a fraction).
fn push_fraction(s: &mut String, micro: u32, fsp: u8) {
    let digits = match fsp {
        0..=6 => fsp as usize,
        _ if micro != 0 => 6,
        _ => 0,
    };
    if digits > 0 {
        s.push('.');
        if micro < 1_000_000 {
            push_padded(s, u64::from(micro / 10u32.pow(6 - digits as u32)), digits);
        } else {
            // Not a microsecond count; as `{:06}` printed it.
            s.push_str(&micro.to_string()[..digits]);
        }
    }
}

/// One decoded value of column `c`.
pub(crate) fn decode(cell: Cell<'_>, c: &ColumnDef) -> Result<Value, String> {
    Ok(match cell {
        Cell::Null => Value::Null,
        Cell::Int(i) => Value::Integer(i),
        Cell::UInt(u) => unsigned_value(u),
        Cell::Float(f) => Value::Real(float_value(f)),
        Cell::Double(f) => Value::Real(f),
        Cell::DateTime { .. } => {
            let mut s = String::with_capacity(27);
            push_datetime(&mut s, cell, c);
            Value::Text(s)
        }
        Cell::Time { negative, days, hour, minute, second, micro } => {
            let hours = u64::from(days) * 24 + u64::from(hour);
            let mut s = format!("{}{hours:02}:{minute:02}:{second:02}", if negative { "-" } else { "" });
            push_fraction(&mut s, micro, c.decimals);
            Value::Text(s)
        }
        Cell::Bytes(b) => match c.ty {
            ty::DECIMAL | ty::NEWDECIMAL | ty::JSON => Value::Text(utf8(b)?),
            ty::BIT => {
                if b.len() > 8 {
                    return Err(format!("BIT value of {} bytes", b.len()));
                }
                unsigned_value(b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
            }
            ty::GEOMETRY => Value::Blob(b.to_vec()),
            _ if c.flags & (flag::ENUM | flag::SET) != 0 || matches!(c.ty, ty::ENUM | ty::SET) => Value::Text(utf8(b)?),
            _ if c.charset == BINARY_CHARSET => Value::Blob(b.to_vec()),
            _ => Value::Text(utf8(b)?),
        },
    })
}

/// A `Cell::DateTime` as `decode` stores it: date, and for the types with a time the time,
/// `c.decimals` fraction digits and, for TIMESTAMP, `Z`.
fn push_datetime(s: &mut String, cell: Cell<'_>, c: &ColumnDef) {
    let Cell::DateTime { year, month, day, hour, minute, second, micro } = cell else {
        return;
    };
    push_padded(s, year.into(), 4);
    s.push('-');
    push_padded(s, month.into(), 2);
    s.push('-');
    push_padded(s, day.into(), 2);
    if !matches!(c.ty, ty::DATE | ty::NEWDATE) {
        s.push('T');
        push_padded(s, hour.into(), 2);
        s.push(':');
        push_padded(s, minute.into(), 2);
        s.push(':');
        push_padded(s, second.into(), 2);
        push_fraction(s, micro, c.decimals);
        if matches!(c.ty, ty::TIMESTAMP | ty::TIMESTAMP2) {
            s.push('Z');
        }
    }
}

/// Writes one cell of column `c` into a batch text as the cell that `decode` followed by
/// `Value::write_json_cell` writes, without the `Value`: the copy's direct path
/// (`MysqlSource::fetch_batch`). Rare cells (TIME, BIT, spatial) go through `decode`; the
/// property test below holds the two equal.
pub(crate) fn encode(cell: Cell<'_>, c: &ColumnDef, out: &mut impl Cells) -> Result<(), String> {
    match cell {
        Cell::Null => out.null(),
        Cell::Int(i) => out.integer(i),
        Cell::UInt(u) => match i64::try_from(u) {
            Ok(i) => out.integer(i),
            Err(_) => out.plain_text(|s| s.push_str(itoa::Buffer::new().format(u))),
        },
        Cell::Float(f) => out.real(float_value(f)),
        Cell::Double(f) => out.real(f),
        Cell::DateTime { .. } => out.plain_text(|s| push_datetime(s, cell, c)),
        Cell::Bytes(b) => match c.ty {
            ty::DECIMAL | ty::NEWDECIMAL | ty::JSON => out.text(str_of(b)?),
            ty::BIT | ty::GEOMETRY => out.value(&decode(cell, c)?),
            _ if c.flags & (flag::ENUM | flag::SET) != 0 || matches!(c.ty, ty::ENUM | ty::SET) => out.text(str_of(b)?),
            _ if c.charset == BINARY_CHARSET => out.blob(b),
            _ => out.text(str_of(b)?),
        },
        Cell::Time { .. } => out.value(&decode(cell, c)?),
    }
    Ok(())
}

fn str_of(b: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(b).map_err(|_| "text that is not valid UTF-8 (utf8mb4)".to_string())
}

/// How the binlog's row values of one table become exactly the values a copy of it stores
/// (`decode` above, through the server's binary protocol): made from a TABLE_MAP and the
/// table's columns as `table_schema` reports them (all of them, in table order).
///
/// The binlog has values as stored, not as a result set sends them, so this redoes what the
/// server would: character sets to UTF-8 (utf8mb4, utf8mb3, ascii, latin1), BINARY(n) padded
/// back to n bytes, ENUM/SET numbers to labels, TIMESTAMP seconds to UTC text, MySQL's binary
/// JSON to its text, MariaDB's UUID and INET4 to their text. Signedness, character sets and
/// labels come from the table map's metadata (`binlog_row_metadata = FULL`) and otherwise
/// from the column types; without metadata only utf8/ascii/binary columns convert.
#[derive(Debug, Clone)]
pub struct BinlogColumns {
    plans: Vec<Plan>,
}

#[derive(Debug, Clone)]
struct Plan {
    name: String,
    kind: Kind,
    /// The logged type (`TableColumn::ty`).
    ty: u8,
    unsigned: bool,
    /// Whether the binlog decoder already applied `unsigned` (the map said so).
    unsigned_logged: bool,
    charset: Charset,
    fsp: u8,
    /// BINARY(n): pad stripped trailing NULs back to n bytes.
    pad_to: Option<usize>,
    labels: Vec<String>,
    /// MariaDB's UUID, INET4, INET6: binary in the binlog, text in a copy.
    special: Option<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Charset {
    Utf8,
    Latin1,
    Binary,
    Other(u16),
}

/// The character set of a collation id (MySQL's and MariaDB's numbering; MariaDB's NO PAD
/// collations are 1024 + the id of their PAD SPACE sibling).
fn charset_of(collation: u16) -> Charset {
    let id = if (1024..2048).contains(&collation) { collation - 1024 } else { collation };
    match id {
        63 => Charset::Binary,
        // utf8mb4, utf8mb3 (utf8), ascii: all UTF-8 byte for byte.
        45 | 46 | 224..=247 | 255..=323 | 608..=610 | 33 | 76 | 83 | 192..=215 | 223 | 576..=578 | 11 | 65 => Charset::Utf8,
        5 | 8 | 15 | 31 | 47 | 48 | 49 | 94 => Charset::Latin1,
        _ => Charset::Other(collation),
    }
}

/// MySQL's latin1 is Windows-1252 with the five unassigned bytes as C1 controls.
const LATIN1_80: [u16; 32] = [
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090,
    0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
];

fn charset_text(b: &[u8], cs: Charset) -> Result<String, String> {
    match cs {
        Charset::Utf8 => utf8(b),
        Charset::Latin1 => Ok(b
            .iter()
            .map(|&x| match x {
                0x80..=0x9F => char::from_u32(u32::from(LATIN1_80[usize::from(x - 0x80)])).unwrap_or('\u{FFFD}'),
                x => char::from(x),
            })
            .collect()),
        Charset::Binary => Err("binary bytes where text was expected".into()),
        Charset::Other(id) => Err(format!(
            "text in the character set of collation {id}, which cdc does not convert (utf8mb4, utf8mb3, ascii, latin1 and binary do)"
        )),
    }
}

impl BinlogColumns {
    pub fn new(map: &TableMap, columns: &[Column]) -> Result<Self, String> {
        let table = format!("{}.{}", quote_backtick(&map.database), quote_backtick(&map.table));
        if let Some(why) = &map.unsupported {
            return Err(format!("the binlog's rows of {table} cannot be decoded: {why}"));
        }
        if map.columns.len() != columns.len() {
            return Err(format!(
                "the binlog's table map of {table} has {} columns, the table has {}: its definition changed",
                map.columns.len(),
                columns.len()
            ));
        }
        let mut plans = Vec::with_capacity(columns.len());
        for (i, (tc, c)) in map.columns.iter().zip(columns).enumerate() {
            if let Some(n) = tc.name.as_deref().filter(|n| *n != c.name) {
                return Err(format!(
                    "the binlog's table map of {table} names column {} {}, the table has {}: its definition changed",
                    i + 1,
                    quote_backtick(n),
                    quote_backtick(&c.name)
                ));
            }
            plans.push(Plan::new(tc, c)?);
        }
        Ok(BinlogColumns { plans })
    }

    /// The copy's value of column `i` for a binlog value.
    pub fn value(&self, i: usize, raw: &RawValue<'_>) -> Result<Value, String> {
        let p = self.plans.get(i).ok_or_else(|| format!("no column {i}"))?;
        p.convert(raw).map_err(|e| format!("column {}: {e}", quote_backtick(&p.name)))
    }

    /// A whole row image: `None` where the image does not hold the column.
    pub fn row(&self, row: &Row<'_>) -> Result<Vec<Option<Value>>, String> {
        row.iter().enumerate().map(|(i, v)| v.as_ref().map(|v| self.value(i, v)).transpose()).collect()
    }
}

impl Plan {
    fn new(tc: &TableColumn, c: &Column) -> Result<Plan, String> {
        let kind = Kind::of(&c.source_type);
        let lower = c.source_type.to_ascii_lowercase();
        let special = ["uuid", "inet4", "inet6"].into_iter().find(|t| lower.trim() == *t);
        let charset = match tc.collation {
            Some(id) => charset_of(id),
            None if kind == Kind::Binary || special.is_some() => Charset::Binary,
            None => Charset::Utf8,
        };
        let labels = match (&tc.labels, &kind) {
            (Some(l), _) => l.iter().map(|b| charset_text(b, charset)).collect::<Result<Vec<_>, _>>()?,
            (None, Kind::Enum(l) | Kind::Set(l)) => l.clone(),
            _ => Vec::new(),
        };
        let pad_to = (tc.ty == ty::STRING && charset == Charset::Binary).then(|| tc.string_len());
        Ok(Plan {
            name: c.name.clone(),
            ty: tc.ty,
            unsigned: tc.unsigned.unwrap_or_else(|| lower.contains("unsigned")),
            unsigned_logged: tc.unsigned.is_some(),
            charset,
            fsp: tc.fsp(),
            pad_to,
            labels,
            special,
            kind,
        })
    }

    fn convert(&self, raw: &RawValue<'_>) -> Result<Value, String> {
        Ok(match *raw {
            RawValue::Null => Value::Null,
            RawValue::Int(i) if self.unsigned && !self.unsigned_logged => {
                let bits = match self.ty {
                    ty::TINY => 8,
                    ty::SHORT => 16,
                    ty::INT24 => 24,
                    ty::LONG => 32,
                    _ => 64,
                };
                unsigned_value(if bits == 64 { i as u64 } else { (i as u64) & ((1u64 << bits) - 1) })
            }
            RawValue::Int(i) => Value::Integer(i),
            RawValue::UInt(u) => unsigned_value(u),
            RawValue::Float(f) => Value::Real(float_value(f)),
            RawValue::Double(f) => Value::Real(f),
            RawValue::Decimal(ref s) => Value::Text(s.clone()),
            RawValue::Year(y) => Value::Integer(y.into()),
            RawValue::Date { year, month, day } => Value::Text(format!("{year:04}-{month:02}-{day:02}")),
            RawValue::DateTime { year, month, day, hour, minute, second, micro } => {
                let mut s = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}");
                push_fraction(&mut s, micro, self.fsp);
                Value::Text(s)
            }
            RawValue::Timestamp { seconds, micro } => {
                let mut s = if seconds == 0 && micro == 0 {
                    "0000-00-00T00:00:00".to_string()
                } else {
                    let (days, secs) = (i64::from(seconds) / 86_400, seconds % 86_400);
                    let (y, m, d) = civil_from_days(days);
                    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
                };
                push_fraction(&mut s, micro, self.fsp);
                s.push('Z');
                Value::Text(s)
            }
            RawValue::Time { negative, hours, minute, second, micro } => {
                let mut s = format!("{}{hours:02}:{minute:02}:{second:02}", if negative { "-" } else { "" });
                push_fraction(&mut s, micro, self.fsp);
                Value::Text(s)
            }
            RawValue::Bytes(b) if self.pad_to.is_some_and(|n| b.len() < n) => {
                let mut v = b.to_vec();
                v.resize(self.pad_to.unwrap_or(0), 0);
                self.bytes(&v)?
            }
            RawValue::Bytes(b) => self.bytes(b)?,
            RawValue::Json(b) => Value::Text(json_to_text(b).map_err(|e| e.detail)?),
            RawValue::Enum(0) => Value::text(""),
            RawValue::Enum(i) => match self.labels.get(usize::from(i) - 1) {
                Some(l) => Value::Text(l.clone()),
                None => return Err(format!("ENUM value {i} of {} labels", self.labels.len())),
            },
            RawValue::Set(bits) => {
                let mut s = String::new();
                for i in 0..64 {
                    if bits & (1u64 << i) == 0 {
                        continue;
                    }
                    let l = self.labels.get(i).ok_or_else(|| format!("SET bit {i} of {} labels", self.labels.len()))?;
                    if !s.is_empty() {
                        s.push(',');
                    }
                    s.push_str(l);
                }
                Value::Text(s)
            }
            RawValue::Bit(v) => unsigned_value(v),
        })
    }
}

impl Plan {
    fn bytes(&self, b: &[u8]) -> Result<Value, String> {
        Ok(match self.special {
            Some(t) => Value::Text(special_text(t, b)?),
            None if self.kind == Kind::Binary || self.charset == Charset::Binary => Value::Blob(b.to_vec()),
            None => Value::Text(charset_text(b, self.charset)?),
        })
    }
}

/// MariaDB's UUID (16 bytes, in the binlog in the text's order: the index-friendly swap of
/// time-based UUIDs is only how the table stores them), INET4 (4 bytes), INET6 (16 bytes) as
/// the server prints them.
fn special_text(t: &str, b: &[u8]) -> Result<String, String> {
    match (t, b.len()) {
        ("uuid", 16) => {
            let h = hex(b).to_ascii_lowercase();
            Ok(format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]))
        }
        ("inet4", 4) => Ok(format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3])),
        ("inet6", 16) => {
            let a: [u8; 16] = b.try_into().expect("16 bytes");
            Ok(std::net::Ipv6Addr::from(a).to_string())
        }
        _ => Err(format!("a {t} value of {} bytes", b.len())),
    }
}

/// The expression a keyset parameter is compared through, so that it compares exactly:
/// MySQL compares an integer or decimal column with a string as DOUBLE (wrong above 2^53 and
/// for long decimals), and a string parameter is parsed in the connection's character set.
/// Whether key ranges compare the column by the bytes of its text (UTF-8), as the replica orders
/// that text: character types (whatever their collation: `_ci` collations ignore case, PAD SPACE
/// ones trailing spaces, and even `utf8mb4_bin` pads), decimals, ENUM and SET (stored as their
/// labels in the replica, but ordered by index here) and TIME (`-01:00:00` sorts as text). The
/// other types order as their replica values do: numbers, dates and datetimes (fixed-width
/// text), binary strings (bytes). `BIGINT UNSIGNED` above 2^63-1 is text in the replica and
/// sorts as text there, so a range across 10^19 may count other rows on each side, which can
/// only leave a delete for a later pass.
pub(crate) fn compares_as_bytes(column: &Column) -> bool {
    matches!(Kind::of(&column.source_type), Kind::Text | Kind::Enum(_) | Kind::Set(_) | Kind::Decimal(..) | Kind::Time)
}

pub(crate) fn param_expr(column: &Column, placeholder: &str) -> String {
    match Kind::of(&column.source_type) {
        // Integer(i) binds as a signed 64-bit value; digits above i64::MAX as text, cast exactly.
        Kind::BigUnsigned => format!("CAST({placeholder} AS UNSIGNED)"),
        // A value read from the column fits its own precision and scale exactly.
        Kind::Decimal(m, d) if (1..=65).contains(&m) && d <= 38 && d <= m => format!("CAST({placeholder} AS DECIMAL({m},{d}))"),
        Kind::Decimal(..) => format!("CAST({placeholder} AS DECIMAL(65,30))"),
        // Bytes travel as hex: no character set conversion can touch them.
        Kind::Binary => format!("UNHEX({placeholder})"),
        _ => placeholder.to_string(),
    }
}

/// `v` (as read from `column`) in the form `param_expr` expects and the server compares in
/// the column's own order: ENUM and SET sort by their numeric value, so they bind as it.
pub(crate) fn param_value(v: &Value, column: &Column) -> Value {
    let kind = Kind::of(&column.source_type);
    match (v, kind) {
        (Value::Null, _) => Value::Null,
        // The key came from a 4-byte float: compare with that float, not with the decimal we
        // printed it as (0.1 as a double is not the float 0.1, and `f > 0.1` would be true
        // for the row it came from).
        (Value::Real(f), Kind::Float) => Value::Real(f64::from(*f as f32)),
        (Value::Text(s), Kind::Date | Kind::DateTime | Kind::Timestamp | Kind::Time) => {
            Value::Text(s.strip_suffix('Z').unwrap_or(s).replacen('T', " ", 1))
        }
        (Value::Text(s), Kind::Enum(labels)) => match labels.iter().position(|l| l == s) {
            Some(i) => Value::Integer(i as i64 + 1),
            None if s.is_empty() => Value::Integer(0),
            None => v.clone(),
        },
        (Value::Text(s), Kind::Set(labels)) => {
            let mut mask = 0i64;
            for part in s.split(',').filter(|p| !p.is_empty()) {
                match labels.iter().position(|l| l == part) {
                    Some(i) if i < 64 => mask |= 1i64.wrapping_shl(i as u32),
                    _ => return v.clone(),
                }
            }
            Value::Integer(mask)
        }
        (Value::Blob(b), Kind::Binary) => Value::Text(hex(b)),
        _ => v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchText, JsonbBatch};

    /// One row of one cell through the copy's direct path (`encode`).
    fn direct_cell<C: Cells>(cell: Cell<'_>, c: &ColumnDef, mut out: C) -> Result<C, String> {
        out.begin_row();
        encode(cell, c, &mut out)?;
        out.end_row();
        Ok(out)
    }

    fn def(t: u8, flags: u16, charset: u16, decimals: u8) -> ColumnDef {
        ColumnDef { schema: String::new(), table: String::new(), name: "c".into(), charset, length: 0, ty: t, flags, decimals }
    }

    fn col(t: &str) -> Column {
        Column { name: "c".into(), source_type: t.into(), affinity: Kind::of(t).affinity(), nullable: false }
    }

    #[test]
    fn kinds_and_affinities() {
        for (t, a) in [
            ("bigint(20) unsigned", Affinity::Any),
            ("bigint unsigned zerofill", Affinity::Any),
            ("bigint(20)", Affinity::Integer),
            ("int(10) unsigned", Affinity::Integer),
            ("tinyint(1)", Affinity::Integer),
            ("year(4)", Affinity::Integer),
            ("bit(1)", Affinity::Integer),
            ("bit(63)", Affinity::Integer),
            ("bit(64)", Affinity::Any),
            ("float", Affinity::Real),
            ("double", Affinity::Real),
            ("decimal(65,30)", Affinity::Text),
            ("datetime(6)", Affinity::Text),
            ("timestamp", Affinity::Text),
            ("time(3)", Affinity::Text),
            ("longtext", Affinity::Text),
            ("json", Affinity::Text),
            ("enum('a','b')", Affinity::Text),
            ("varbinary(10)", Affinity::Blob),
            ("longblob", Affinity::Blob),
            ("point", Affinity::Blob),
            ("uuid", Affinity::Text),
        ] {
            assert_eq!(Kind::of(t).affinity(), a, "{t}");
        }
        assert_eq!(Kind::of("decimal(65,30) unsigned"), Kind::Decimal(65, 30));
        assert_eq!(Kind::of("DECIMAL"), Kind::Decimal(10, 0));
    }

    #[test]
    fn enum_labels_unescape() {
        assert_eq!(
            Kind::of(r"enum('a','b''c','x,y','d\\e','Up')"),
            Kind::Enum(vec!["a".into(), "b'c".into(), "x,y".into(), r"d\e".into(), "Up".into()])
        );
        assert_eq!(Kind::of("set('p','q')"), Kind::Set(vec!["p".into(), "q".into()]));
    }

    #[test]
    fn decodes_every_cell_kind() {
        let d = |cell, c: &ColumnDef| decode(cell, c).unwrap();
        assert_eq!(d(Cell::Int(-128), &def(ty::TINY, 0, 63, 0)), Value::Integer(-128));
        assert_eq!(d(Cell::UInt(u64::MAX), &def(ty::LONGLONG, flag::UNSIGNED, 63, 0)), Value::text("18446744073709551615"));
        assert_eq!(d(Cell::UInt(i64::MAX as u64), &def(ty::LONGLONG, flag::UNSIGNED, 63, 0)), Value::Integer(i64::MAX));
        assert_eq!(d(Cell::Float(0.1), &def(ty::FLOAT, 0, 63, 31)), Value::Real(0.1));
        assert_eq!(d(Cell::Float(16777217.0), &def(ty::FLOAT, 0, 63, 31)), Value::Real(16777216.0));
        assert_eq!(d(Cell::Float(-1.5e30), &def(ty::FLOAT, 0, 63, 31)), Value::Real(-1.5e30));
        assert_eq!(d(Cell::Double(0.1), &def(ty::DOUBLE, 0, 63, 31)), Value::Real(0.1));
        assert_eq!(d(Cell::Bytes(b"-12.50"), &def(ty::NEWDECIMAL, 0, 63, 2)), Value::text("-12.50"));
        assert_eq!(d(Cell::Bytes(&[0x01, 0x05]), &def(ty::BIT, flag::UNSIGNED, 63, 0)), Value::Integer(261));
        assert_eq!(d(Cell::Bytes(&[0xFF; 8]), &def(ty::BIT, flag::UNSIGNED, 63, 0)), Value::text("18446744073709551615"));
        assert_eq!(d(Cell::Bytes("😀".as_bytes()), &def(ty::VAR_STRING, 0, 45, 0)), Value::text("😀"));
        assert_eq!(d(Cell::Bytes(b""), &def(ty::VAR_STRING, 0, 45, 0)), Value::text(""));
        assert_eq!(d(Cell::Bytes(b"a\0b"), &def(ty::BLOB, flag::BINARY, 63, 0)), Value::Blob(b"a\0b".to_vec()));
        assert_eq!(d(Cell::Bytes(b"x,y"), &def(ty::STRING, flag::SET, 45, 0)), Value::text("x,y"));
        assert_eq!(d(Cell::Bytes(br#"{"a":1e400}"#), &def(ty::JSON, flag::BINARY, 63, 0)), Value::text(r#"{"a":1e400}"#));
        assert_eq!(d(Cell::Bytes(&[1, 2]), &def(ty::GEOMETRY, flag::BINARY, 63, 0)), Value::Blob(vec![1, 2]));
        assert_eq!(d(Cell::Null, &def(ty::LONG, 0, 63, 0)), Value::Null);
        let dt = Cell::DateTime { year: 2026, month: 1, day: 2, hour: 3, minute: 4, second: 5, micro: 120_000 };
        assert_eq!(d(dt, &def(ty::DATETIME, 0, 63, 6)), Value::text("2026-01-02T03:04:05.120000"));
        assert_eq!(d(dt, &def(ty::DATETIME, 0, 63, 2)), Value::text("2026-01-02T03:04:05.12"));
        assert_eq!(d(dt, &def(ty::TIMESTAMP, 0, 63, 3)), Value::text("2026-01-02T03:04:05.120Z"));
        assert_eq!(d(dt, &def(ty::DATE, 0, 63, 0)), Value::text("2026-01-02"));
        let zero = Cell::DateTime { year: 0, month: 0, day: 0, hour: 0, minute: 0, second: 0, micro: 0 };
        assert_eq!(d(zero, &def(ty::DATETIME, 0, 63, 0)), Value::text("0000-00-00T00:00:00"));
        assert_eq!(d(zero, &def(ty::DATE, 0, 63, 0)), Value::text("0000-00-00"));
        let t = Cell::Time { negative: true, days: 34, hour: 22, minute: 59, second: 59, micro: 0 };
        assert_eq!(d(t, &def(ty::TIME, 0, 63, 0)), Value::text("-838:59:59"));
        let t = Cell::Time { negative: false, days: 0, hour: 1, minute: 2, second: 3, micro: 4 };
        assert_eq!(d(t, &def(ty::TIME, 0, 63, 6)), Value::text("01:02:03.000004"));
        assert!(decode(Cell::Bytes(&[0xff]), &def(ty::VAR_STRING, 0, 45, 0)).is_err());
    }

    use proptest::prelude::*;

    fn cell_strategy() -> impl Strategy<Value = (u8, Vec<u8>, u64, f64, [u16; 7], bool)> {
        (
            0u8..8,
            prop_oneof![
                "(?s).{0,10}".prop_map(|s| s.into_bytes()),
                "[\"\\\n\u{1}é😀a-z0-9.,{}:-]{0,10}".prop_map(|s| s.into_bytes()),
                proptest::collection::vec(any::<u8>(), 0..10),
            ],
            prop_oneof![any::<u64>(), Just(i64::MAX as u64), Just(i64::MAX as u64 + 1), Just(u64::MAX), Just(0)],
            prop_oneof![any::<f64>(), Just(f64::NAN), Just(f64::INFINITY), Just(-0.0), Just(0.1), Just(5e-324)],
            [0u16..10_000, 0u16..13, 0u16..32, 0u16..24, 0u16..60, 0u16..60, 0u16..7],
            any::<bool>(),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        /// The copy's direct path writes, for every cell kind and column type, the cell that
        /// `decode` and the value's JSON write, or fails with the same words.
        #[test]
        fn direct_cells_equal_value_cells(
            args in cell_strategy(),
            micro in prop_oneof![0u32..1_000_000, Just(999_999u32), Just(120_000u32), any::<u32>()],
            t in proptest::sample::select(vec![ty::DECIMAL, ty::NEWDECIMAL, ty::JSON, ty::BIT, ty::GEOMETRY, ty::ENUM, ty::SET,
                ty::STRING, ty::VAR_STRING, ty::BLOB, ty::DATE, ty::NEWDATE, ty::DATETIME, ty::TIMESTAMP, ty::TIMESTAMP2, ty::TIME,
                ty::LONGLONG, ty::FLOAT, ty::DOUBLE]),
            flags in proptest::sample::select(vec![0, flag::UNSIGNED, flag::BINARY, flag::ENUM, flag::SET]),
            charset in proptest::sample::select(vec![45u16, 63, 33, 8]),
            decimals in prop_oneof![0u8..7, Just(31u8), Just(39u8)],
        ) {
            let (kind, bytes, u, f, [year, month, day, hour, minute, second, _], neg) = args;
            let c = def(t, flags, charset, decimals);
            let (y, mo, d, h, mi, se) = (year, month as u8, day as u8, hour as u8, minute as u8, second as u8);
            let cell = match kind {
                0 => Cell::Null,
                1 => Cell::Int(u as i64),
                2 => Cell::UInt(u),
                3 => Cell::Float(f as f32),
                4 => Cell::Double(f),
                5 => Cell::Bytes(&bytes),
                6 => Cell::DateTime { year: y, month: mo, day: d, hour: h, minute: mi, second: se, micro },
                _ => Cell::Time { negative: neg, days: u as u32 % 40, hour: h, minute: mi, second: se, micro },
            };
            let a = direct_cell(cell, &c, BatchText::untyped(usize::MAX)).map(BatchText::finish);
            let b = decode(cell, &c).map(|v| crate::replica_sql::encode_rows(&[vec![v]], usize::MAX));
            proptest::prop_assert_eq!(a, b);
            // The same in the JSONB a copy binds.
            let a = direct_cell(cell, &c, JsonbBatch::untyped(usize::MAX)).map(JsonbBatch::finish);
            let b = decode(cell, &c).map(|v| crate::replica_sql::jsonb_rows(&[vec![v]], usize::MAX));
            proptest::prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn float_text_is_lossless() {
        for f in [0.1f32, 1.0 / 3.0, f32::MAX, f32::MIN_POSITIVE, 1e-45, 16777217.0, -0.0] {
            assert_eq!(float_value(f) as f32, f);
        }
    }

    #[test]
    fn keyset_params_compare_exactly() {
        let c = col("bigint(20) unsigned");
        assert_eq!(param_expr(&c, "?"), "CAST(? AS UNSIGNED)");
        assert_eq!(param_value(&Value::text("18446744073709551615"), &c), Value::text("18446744073709551615"));
        assert_eq!(param_expr(&col("decimal(65,30)"), "?"), "CAST(? AS DECIMAL(65,30))");
        assert_eq!(param_expr(&col("decimal(12,2)"), "?"), "CAST(? AS DECIMAL(12,2))");
        assert_eq!(param_expr(&col("int(11)"), "?"), "?");
        let b = col("varbinary(8)");
        assert_eq!(param_expr(&b, "?"), "UNHEX(?)");
        assert_eq!(param_value(&Value::Blob(vec![0, 0xAB]), &b), Value::text("00AB"));
        assert_eq!(param_value(&Value::text("2026-01-02T03:04:05.5Z"), &col("timestamp(1)")), Value::text("2026-01-02 03:04:05.5"));
        assert_eq!(param_value(&Value::text("-838:59:59"), &col("time")), Value::text("-838:59:59"));
        let e = col("enum('b','a')");
        assert_eq!(param_value(&Value::text("a"), &e), Value::Integer(2));
        assert_eq!(param_value(&Value::text(""), &e), Value::Integer(0));
        assert_eq!(param_value(&Value::text("q,p"), &col("set('p','q')")), Value::Integer(3));
        assert_eq!(param_value(&Value::Real(0.1), &col("float")), Value::Real(f64::from(0.1f32)));
        assert_eq!(param_value(&Value::Real(0.1), &col("double")), Value::Real(0.1));
        assert_eq!(param_value(&Value::Null, &e), Value::Null);
    }
}
