//! PostgreSQL types: the affinity each maps to, what a page asks the server to send for it, the
//! exact decoding of the binary wire format, and the text that binds a `Value` back as a key.
//!
//! | PostgreSQL (domains as their base type) | affinity | value in the replica |
//! |---|---|---|
//! | `smallint`, `integer`, `bigint`, `oid` | INTEGER | the integer (all 64 bits) |
//! | `real`, `double precision` | REAL | the float (`real` widened exactly); NaN/±Infinity as is |
//! | `boolean` | INTEGER | 0 / 1 |
//! | `bytea` | BLOB | the bytes |
//! | `numeric`/`decimal` | TEXT | PostgreSQL's digits (`numeric::text`, `NaN`, `Infinity`) |
//! | `money` | TEXT | `money::numeric::text`: digits, no currency symbol or grouping |
//! | `timestamp with time zone` | TEXT | `2026-01-02T03:04:05.123456Z`, UTC, always 6 fraction digits |
//! | `timestamp without time zone` | TEXT | `2026-01-02T03:04:05.123456` |
//! | `date` | TEXT | `2026-01-02` |
//! | `time` | TEXT | `03:04:05.123456` (`24:00:00.000000` kept) |
//! | `time with time zone` | TEXT | `03:04:05.123456+05:30` (offset seconds appended when not zero) |
//! | `interval` | TEXT | ISO-8601 duration as PostgreSQL's `iso_8601` style prints it: `P1Y2M3DT4H5M6.5S`, `PT0S`, `P-1Y-2M3DT-4H` |
//! | `uuid` | TEXT | lower-case `8-4-4-4-12` |
//! | `json`, `jsonb` | TEXT | the JSON text as PostgreSQL prints it (numbers of any size kept) |
//! | arrays of any type, domains over arrays | TEXT | `array_to_json(col)::text`: a JSON array (nested for more dimensions) |
//! | text types, `"char"`, enums, `inet`/`cidr`/`macaddr`, `xml`, `bit`, geometric, `tsvector`, anything else | TEXT | `col::text` |
//!
//! `character(n)` keeps the padding PostgreSQL stores and returns. Dates and timestamps:
//! `infinity` / `-infinity` stay those words. Years 0000..=9999 have four digits (0000 is
//! 1 BC, as in ISO 8601); other years use the ISO 8601 expanded form with a sign and six
//! digits, which JavaScript's `Date` also reads: 44 BC is `-000043-03-15`, and
//! `+010000-01-01T00:00:00.000000Z` follows 9999. Such text does not sort chronologically
//! against four-digit years; PostgreSQL itself does, and keys are compared there.
//!
//! CDC reads the same values as text (pgoutput sends each type's output function's text):
//! `decode_text` maps that text to exactly the value above, in a session set up with
//! `SESSION_SETTINGS`, and `text_decodable` names the types it cannot map exactly.

use crate::batch::Cells;
use crate::source::{Affinity, Column};
use crate::value::{format_real, Value};
use std::fmt::Write;
use tokio_postgres::types::{FromSql, Type};

/// What a column is, as far as moving its values goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Integer,
    Float,
    Bool,
    Bytea,
    /// Text on the wire (text, varchar, bpchar, name).
    Str,
    Date,
    Timestamp,
    Time,
    TimeTz,
    Interval,
    Uuid,
    Json,
    /// Sent as `::text` (numeric keeps every digit; unknown types have no decoder here).
    CastText,
    Money,
    Array,
}

impl Kind {
    pub(crate) fn of(source_type: &str) -> Kind {
        if source_type.ends_with("[]") {
            return Kind::Array;
        }
        // A quote means a user-defined name (format_type quotes only those), so never a builtin.
        if source_type.contains('"') {
            return Kind::CastText;
        }
        let base = without_typmod(source_type);
        match base.as_str() {
            "smallint" | "integer" | "bigint" | "oid" => Kind::Integer,
            "real" | "double precision" => Kind::Float,
            "boolean" => Kind::Bool,
            "bytea" => Kind::Bytea,
            "text" | "character varying" | "character" | "bpchar" | "name" => Kind::Str,
            "date" => Kind::Date,
            "timestamp with time zone" | "timestamp without time zone" => Kind::Timestamp,
            "time without time zone" => Kind::Time,
            "time with time zone" => Kind::TimeTz,
            "uuid" => Kind::Uuid,
            "json" | "jsonb" => Kind::Json,
            "money" => Kind::Money,
            b if b == "interval" || b.starts_with("interval ") => Kind::Interval,
            _ => Kind::CastText,
        }
    }

    pub(crate) fn affinity(self) -> Affinity {
        match self {
            Kind::Integer | Kind::Bool => Affinity::Integer,
            Kind::Float => Affinity::Real,
            Kind::Bytea => Affinity::Blob,
            _ => Affinity::Text,
        }
    }

    /// Whether the server sends the column as it is (binary, decoded by `decode`).
    pub(crate) fn is_native(self) -> bool {
        !matches!(self, Kind::CastText | Kind::Money | Kind::Array)
    }
}

/// How key ranges of a column are compared so that they hold the same keys as in the replica
/// (SQLite: numbers by value, text by its bytes); see `PgDialect::range_column`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeOrder {
    /// The type's own order is the replica's: numbers, booleans (0/1), bytea (bytes), uuid
    /// (lower-case hex text sorts as the bytes do), dates, timestamps and times (fixed-width
    /// text sorts chronologically; years outside 0000..=9999 and time zones/intervals do not
    /// quite, which can only leave a delete for a later pass). The primary-key index serves it.
    Native,
    /// Text types: their own collation may not be byte order (`en_US`: 'B' < 'a' is false), so
    /// compared `COLLATE "C"`, which is byte order for UTF-8.
    Collate,
    /// Types whose replica value is their text (numeric, enums, inet, json, ...): that text,
    /// `COLLATE "C"`.
    Text,
}

impl Kind {
    pub(crate) fn range_order(self) -> RangeOrder {
        match self {
            Kind::Str => RangeOrder::Collate,
            Kind::Json | Kind::CastText | Kind::Money | Kind::Array => RangeOrder::Text,
            _ => RangeOrder::Native,
        }
    }
}

/// `numeric(12,2)` → `numeric`, `timestamp(3) with time zone` → `timestamp with time zone`.
fn without_typmod(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    let mut depth = 0u32;
    for c in t.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The type a key parameter is cast to: the column's type without the modifiers that would
/// round or truncate a bound (`numeric(12,2)`, `timestamp(0)`, `interval year to month`,
/// `varchar(10)`), so that a lookback bound compares exactly.
pub(crate) fn param_type(source_type: &str) -> String {
    let (elem, suffix) = match source_type.strip_suffix("[]") {
        Some(e) => (e, "[]"),
        None => (source_type, ""),
    };
    if elem.contains('"') {
        return source_type.to_string();
    }
    let base = without_typmod(elem);
    let unconstrained = match base.as_str() {
        "numeric"
        | "timestamp with time zone"
        | "timestamp without time zone"
        | "time with time zone"
        | "time without time zone"
        | "character varying"
        | "bit varying" => base,
        // Without a length these two mean length 1.
        "character" => "bpchar".to_string(),
        "bit" => "bit varying".to_string(),
        b if b == "interval" || b.starts_with("interval ") => "interval".to_string(),
        _ => elem.to_string(),
    };
    format!("{unconstrained}{suffix}")
}

/// The selected expression for `column`, without an alias.
pub(crate) fn value_expr(column: &Column, quoted: &str) -> String {
    match Kind::of(&column.source_type) {
        k if k.is_native() => quoted.to_string(),
        Kind::Money => format!("{quoted}::pg_catalog.numeric::pg_catalog.text"),
        Kind::Array => format!("pg_catalog.array_to_json({quoted})::pg_catalog.text"),
        _ => format!("{quoted}::pg_catalog.text"),
    }
}

/// The text that PostgreSQL parses back, as the column's type, to the value `v` came from.
pub(crate) fn param_text(v: &Value, column: &Column) -> Option<String> {
    let kind = Kind::of(&column.source_type);
    Some(match v {
        Value::Null => return None,
        Value::Integer(i) if kind == Kind::Bool => (if *i != 0 { "true" } else { "false" }).to_string(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) if f.is_nan() => "NaN".to_string(),
        Value::Real(f) if f.is_infinite() => (if *f > 0.0 { "Infinity" } else { "-Infinity" }).to_string(),
        Value::Real(f) => format_real(*f),
        Value::Text(s) if matches!(kind, Kind::Date | Kind::Timestamp) => datetime_input(s),
        Value::Text(s) => s.clone(),
        Value::Blob(b) => {
            let mut s = String::with_capacity(2 + b.len() * 2);
            s.push_str("\\x");
            for byte in b {
                let _ = write!(s, "{byte:02x}");
            }
            s
        }
    })
}

/// Our date/timestamp text in the form PostgreSQL reads: it knows `BC` but not signed or
/// six-digit years.
fn datetime_input(s: &str) -> String {
    let (sign, digits_from) = match s.as_bytes().first() {
        Some(b'+') => (1i64, 1),
        Some(b'-') if s != "-infinity" => (-1, 1),
        _ if s.starts_with("0000-") => (1, 0),
        _ => return s.to_string(),
    };
    let rest = &s[digits_from..];
    let end = rest.find('-').unwrap_or(rest.len());
    let Ok(y) = rest[..end].parse::<i64>() else {
        return s.to_string();
    };
    let year = sign * y;
    if year <= 0 {
        format!("{:04}{} BC", 1 - year, &rest[end..])
    } else {
        format!("{year:04}{}", &rest[end..])
    }
}

/// One decoded cell. Accepts every type so that an unexpected one is reported by `decode`
/// with its name rather than as a generic "wrong type".
pub(crate) struct Cell(pub Value);

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        decode(ty.oid(), raw).map(Cell).map_err(|e| format!("{} value: {e}", ty.name()).into())
    }
    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Cell(Value::Null))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// One cell's wire bytes (`None` for NULL), for `encode`.
pub(crate) struct Raw<'a>(pub Option<&'a [u8]>);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(Some(raw)))
    }
    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(None))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

// Type OIDs are fixed in PostgreSQL's catalog (pg_type.dat) for builtins.
const BOOL: u32 = 16;
const BYTEA: u32 = 17;
const NAME: u32 = 19;
const INT8: u32 = 20;
const INT2: u32 = 21;
const INT4: u32 = 23;
const TEXT: u32 = 25;
const OID: u32 = 26;
const JSON: u32 = 114;
const FLOAT4: u32 = 700;
const FLOAT8: u32 = 701;
const UNKNOWN: u32 = 705;
const BPCHAR: u32 = 1042;
const VARCHAR: u32 = 1043;
const DATE: u32 = 1082;
const TIME: u32 = 1083;
const TIMESTAMP: u32 = 1114;
const TIMESTAMPTZ: u32 = 1184;
const INTERVAL: u32 = 1186;
const TIMETZ: u32 = 1266;
const UUID: u32 = 2950;
const JSONB: u32 = 3802;

fn fixed<const N: usize>(raw: &[u8]) -> Result<[u8; N], String> {
    raw.try_into().map_err(|_| format!("expected {N} bytes, got {}", raw.len()))
}

fn utf8(raw: &[u8]) -> Result<String, String> {
    String::from_utf8(raw.to_vec()).map_err(|_| "invalid UTF-8".to_string())
}

/// One value of binary wire type `oid` (domains arrive as their base type).
pub(crate) fn decode(oid: u32, raw: &[u8]) -> Result<Value, String> {
    Ok(match oid {
        INT2 => Value::Integer(i16::from_be_bytes(fixed(raw)?).into()),
        INT4 => Value::Integer(i32::from_be_bytes(fixed(raw)?).into()),
        INT8 => Value::Integer(i64::from_be_bytes(fixed(raw)?)),
        OID => Value::Integer(u32::from_be_bytes(fixed(raw)?).into()),
        FLOAT4 => Value::Real(f32::from_be_bytes(fixed(raw)?).into()),
        FLOAT8 => Value::Real(f64::from_be_bytes(fixed(raw)?)),
        BOOL => Value::Integer((fixed::<1>(raw)?[0] != 0).into()),
        BYTEA => Value::Blob(raw.to_vec()),
        TEXT | VARCHAR | BPCHAR | NAME | UNKNOWN | JSON => Value::Text(utf8(raw)?),
        JSONB => match raw.split_first() {
            Some((1, text)) => Value::Text(utf8(text)?),
            _ => return Err("unknown jsonb binary version".into()),
        },
        DATE => Value::Text(format_date(i32::from_be_bytes(fixed(raw)?))),
        TIMESTAMP => Value::Text(format_timestamp(i64::from_be_bytes(fixed(raw)?), false)),
        TIMESTAMPTZ => Value::Text(format_timestamp(i64::from_be_bytes(fixed(raw)?), true)),
        TIME => Value::Text(format_time(i64::from_be_bytes(fixed(raw)?))),
        TIMETZ => {
            let b: [u8; 12] = fixed(raw)?;
            let us = i64::from_be_bytes(b[..8].try_into().unwrap_or_default());
            let zone = i32::from_be_bytes(b[8..].try_into().unwrap_or_default());
            Value::Text(format_timetz(us, zone))
        }
        INTERVAL => {
            let b: [u8; 16] = fixed(raw)?;
            let us = i64::from_be_bytes(b[..8].try_into().unwrap_or_default());
            let days = i32::from_be_bytes(b[8..12].try_into().unwrap_or_default());
            let months = i32::from_be_bytes(b[12..].try_into().unwrap_or_default());
            Value::Text(format_interval(us, days, months))
        }
        UUID => Value::Text(format_uuid(&fixed(raw)?)),
        other => return Err(format!("no decoder for type oid {other} (it should have been cast to text)")),
    })
}

/// Writes one non-NULL value of binary wire type `oid` into a batch text as the cell that
/// `decode` followed by `Value::write_json_cell` writes, without the `Value`: the copy's
/// direct path (`PostgresSource::fetch_batch`). Types that print rarely (intervals, times
/// with a zone, UUIDs) go through `decode`; the property tests below hold the two equal.
pub(crate) fn encode(oid: u32, raw: &[u8], out: &mut impl Cells) -> Result<(), String> {
    match oid {
        INT2 => out.integer(i16::from_be_bytes(fixed(raw)?).into()),
        INT4 => out.integer(i32::from_be_bytes(fixed(raw)?).into()),
        INT8 => out.integer(i64::from_be_bytes(fixed(raw)?)),
        OID => out.integer(u32::from_be_bytes(fixed(raw)?).into()),
        FLOAT4 => out.real(f32::from_be_bytes(fixed(raw)?).into()),
        FLOAT8 => out.real(f64::from_be_bytes(fixed(raw)?)),
        BOOL => out.integer((fixed::<1>(raw)?[0] != 0).into()),
        BYTEA => out.blob(raw),
        TEXT | VARCHAR | BPCHAR | NAME | UNKNOWN | JSON => out.text(str_of(raw)?),
        JSONB => match raw.split_first() {
            Some((1, text)) => out.text(str_of(text)?),
            _ => return Err("unknown jsonb binary version".into()),
        },
        DATE => {
            let d = i32::from_be_bytes(fixed(raw)?);
            out.plain_text(|s| push_date_value(s, d));
        }
        TIMESTAMP | TIMESTAMPTZ => {
            let us = i64::from_be_bytes(fixed(raw)?);
            out.plain_text(|s| push_timestamp(s, us, oid == TIMESTAMPTZ));
        }
        TIME => {
            let us = i64::from_be_bytes(fixed(raw)?);
            out.plain_text(|s| push_clock(s, us));
        }
        _ => out.value(&decode(oid, raw)?),
    }
    Ok(())
}

fn str_of(raw: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(raw).map_err(|_| "invalid UTF-8".to_string())
}

use crate::time::{civil_from_days, push_datetime_micros, push_padded};

const US_PER_SEC: i64 = 1_000_000;
const US_PER_DAY: i64 = 86_400 * US_PER_SEC;
/// Days from 1970-01-01 to PostgreSQL's epoch 2000-01-01.
const PG_EPOCH_DAYS: i64 = 10_957;

fn push_date(out: &mut String, days_since_2000: i64) {
    let (y, m, d) = civil_from_days(days_since_2000 + PG_EPOCH_DAYS);
    if (0..=9999).contains(&y) {
        push_padded(out, y as u64, 4);
    } else {
        out.push(if y < 0 { '-' } else { '+' });
        push_padded(out, y.unsigned_abs(), 6);
    }
    out.push('-');
    push_padded(out, u64::from(m), 2);
    out.push('-');
    push_padded(out, u64::from(d), 2);
}

fn push_clock(out: &mut String, us: i64) {
    let secs = (us / US_PER_SEC) as u64;
    push_padded(out, secs / 3600, 2);
    out.push(':');
    push_padded(out, secs / 60 % 60, 2);
    out.push(':');
    push_padded(out, secs % 60, 2);
    out.push('.');
    push_padded(out, (us % US_PER_SEC) as u64, 6);
}

pub(crate) fn format_date(days_since_2000: i32) -> String {
    let mut s = String::with_capacity(10);
    push_date_value(&mut s, days_since_2000);
    s
}

fn push_date_value(out: &mut String, days_since_2000: i32) {
    match days_since_2000 {
        i32::MAX => out.push_str("infinity"),
        i32::MIN => out.push_str("-infinity"),
        d => push_date(out, d.into()),
    }
}

/// `us` since 2000-01-01 00:00:00 (UTC for timestamptz, whatever the session's time zone).
pub(crate) fn format_timestamp(us: i64, utc: bool) -> String {
    let mut s = String::with_capacity(27);
    push_timestamp(&mut s, us, utc);
    s
}

fn push_timestamp(out: &mut String, us: i64, utc: bool) {
    match us {
        i64::MAX => out.push_str("infinity"),
        i64::MIN => out.push_str("-infinity"),
        us => {
            let (days, rem) = (us.div_euclid(US_PER_DAY), us.rem_euclid(US_PER_DAY));
            let (y, m, d) = civil_from_days(days + PG_EPOCH_DAYS);
            if (0..=9999).contains(&y) {
                push_datetime_micros(out, y as u32, m, d, (rem / US_PER_SEC) as u32, (rem % US_PER_SEC) as u32);
            } else {
                push_date(out, days);
                out.push('T');
                push_clock(out, rem);
            }
            if utc {
                out.push('Z');
            }
        }
    }
}

pub(crate) fn format_time(us: i64) -> String {
    let mut s = String::with_capacity(15);
    push_clock(&mut s, us);
    s
}

/// `zone_west` is PostgreSQL's offset in seconds *west* of Greenwich (UTC+05:30 is -19800).
pub(crate) fn format_timetz(us: i64, zone_west: i32) -> String {
    let mut s = format_time(us);
    let east = -i64::from(zone_west);
    let a = east.abs();
    let _ = write!(s, "{}{:02}:{:02}", if east < 0 { '-' } else { '+' }, a / 3600, a / 60 % 60);
    if a % 60 != 0 {
        let _ = write!(s, ":{:02}", a % 60);
    }
    s
}

/// ISO-8601 duration exactly as PostgreSQL prints it with `IntervalStyle = iso_8601`: each
/// part keeps its own sign, zero parts are left out, the seconds fraction loses trailing zeros.
pub(crate) fn format_interval(us: i64, days: i32, months: i32) -> String {
    if us == 0 && days == 0 && months == 0 {
        return "PT0S".into();
    }
    let mut s = String::from("P");
    let part = |s: &mut String, v: i64, unit: char| {
        if v != 0 {
            let _ = write!(s, "{v}{unit}");
        }
    };
    part(&mut s, i64::from(months / 12), 'Y');
    part(&mut s, i64::from(months % 12), 'M');
    part(&mut s, days.into(), 'D');
    if us != 0 {
        s.push('T');
        let hours = us / 3_600_000_000;
        let minutes = us % 3_600_000_000 / 60_000_000;
        let sec_us = us % 60_000_000;
        part(&mut s, hours, 'H');
        part(&mut s, minutes, 'M');
        if sec_us != 0 {
            if sec_us < 0 {
                s.push('-');
            }
            let a = sec_us.unsigned_abs();
            let _ = write!(s, "{}", a / 1_000_000);
            let frac = a % 1_000_000;
            if frac != 0 {
                let f = format!("{frac:06}");
                s.push('.');
                s.push_str(f.trim_end_matches('0'));
            }
            s.push('S');
        }
    }
    s
}

pub(crate) fn format_uuid(b: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{byte:02x}");
    }
    s
}

// ---- Text values (CDC) ---------------------------------------------------------------------
//
// pgoutput sends each value as its type's output function prints it in the decoding session.
// `decode_text` turns that text into exactly the `Value` a full copy stores: natively decoded
// kinds are parsed and printed again with the `format_*` helpers above (so a session that
// breaks the contract below fails loudly instead of storing other text), `col::text` kinds
// are the text itself (except where the cast and the output function differ), and arrays are
// rewritten from PostgreSQL's array literal into `array_to_json`'s JSON.

/// What the session that peeks the slot must run first. The text values pgoutput sends, and
/// `array_to_json` in the full copy, depend on these; `decode_text` assumes them, and array
/// values (element types whose text depends on the session: `timestamptz`, `interval`,
/// `money`, `bytea`, floats) equal the full copy's only when the full copy's session runs
/// them too.
pub const SESSION_SETTINGS: &[&str] = &[
    "SET TimeZone = 'UTC'",
    "SET DateStyle = 'ISO, YMD'",
    "SET IntervalStyle = 'iso_8601'",
    "SET extra_float_digits = 3",
    "SET bytea_output = 'hex'",
    "SET lc_monetary = 'C'",
];

/// The value a full copy stores for a non-NULL value of a column of `source_type` (as
/// `table_schema` names it, domains resolved) that PostgreSQL printed as `text` in a session
/// set up with `SESSION_SETTINGS`. Errors say which type and what text did not fit.
pub fn decode_text(source_type: &str, text: &str) -> Result<Value, String> {
    let bad = |why: &str| format!("{source_type} value {:?}: {why}", clip(text));
    let base = without_typmod(source_type);
    Ok(match Kind::of(source_type) {
        Kind::Integer => Value::Integer(text.parse::<i64>().map_err(|_| bad("not an integer"))?),
        Kind::Float => Value::Real(parse_float(text, base == "real").ok_or_else(|| bad("not a float"))?),
        Kind::Bool => match text {
            "t" => Value::Integer(1),
            "f" => Value::Integer(0),
            _ => return Err(bad("not t or f")),
        },
        Kind::Bytea => Value::Blob(text.strip_prefix("\\x").and_then(hex_bytes).ok_or_else(|| bad("not hex (bytea_output = 'hex')"))?),
        Kind::Str | Kind::Json => Value::Text(text.to_string()),
        Kind::Date => Value::Text(parse_date(text).ok_or_else(|| bad("not an ISO date (DateStyle = 'ISO, YMD')"))?),
        Kind::Timestamp => {
            let tz = base == "timestamp with time zone";
            Value::Text(parse_timestamp(text, tz).ok_or_else(|| bad("not an ISO timestamp (DateStyle = 'ISO, YMD')"))?)
        }
        Kind::Time => Value::Text(format_time(parse_time(text.as_bytes()).ok_or_else(|| bad("not a time"))?)),
        Kind::TimeTz => {
            let (clock, zone) = text.split_at(text.rfind(['+', '-']).ok_or_else(|| bad("no zone offset"))?);
            let us = parse_time(clock.as_bytes()).ok_or_else(|| bad("not a time"))?;
            let east = parse_offset(zone.as_bytes()).ok_or_else(|| bad("bad zone offset"))?;
            Value::Text(format_timetz(us, -east))
        }
        Kind::Interval => {
            let (us, days, months) = parse_interval(text).ok_or_else(|| bad("not an ISO 8601 interval (IntervalStyle = 'iso_8601')"))?;
            Value::Text(format_interval(us, days, months))
        }
        Kind::Uuid => Value::Text(format_uuid(&parse_uuid(text).ok_or_else(|| bad("not a uuid"))?)),
        Kind::Money => Value::Text(money_numeric(text).ok_or_else(|| bad("not money as lc_monetary = 'C' prints it"))?),
        Kind::Array => {
            let elem = array_element(source_type)?;
            Value::Text(array_json(text, &elem).map_err(|e| bad(&e))?)
        }
        Kind::CastText => Value::Text(cast_text(source_type, &base, text)?),
    })
}

/// Whether `decode_text` gives exactly the full copy's value for every value of
/// `source_type`; the error names the type and why not. Types not known here are assumed to
/// print the same text through their output function as through `::text`: true of enums,
/// composites and every builtin but the ones refused or converted below, false of a type
/// with its own cast function to text (`pg_cast.castmethod = 'f'`, e.g. PostGIS `geometry`),
/// which the caller must look up in the catalog.
pub fn text_decodable(source_type: &str) -> Result<(), String> {
    match Kind::of(source_type) {
        Kind::Array => array_element(source_type).map(|_| ()),
        Kind::CastText => {
            let base = without_typmod(source_type);
            match cast_refusal(&base) {
                Some(why) => Err(format!("{source_type}: {why}")),
                None => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

fn cast_refusal(base: &str) -> Option<&'static str> {
    match base {
        "xml" => Some("xml::text keeps the XML declaration as stored; the output function pgoutput uses rewrites or drops it"),
        _ => None,
    }
}

/// `col::text` from the output function's text.
fn cast_text(source_type: &str, base: &str, text: &str) -> Result<String, String> {
    if let Some(why) = cast_refusal(base) {
        return Err(format!("{source_type}: {why}"));
    }
    Ok(match base {
        // text(inet) always shows the netmask; inet_out leaves out a full one.
        "inet" if !text.contains('/') => format!("{text}/{}", if text.contains(':') { 128 } else { 32 }),
        // charout prints a non-ASCII byte as \ooo, text("char") gives the byte itself.
        "\"char\"" if text.len() == 4 && text.starts_with('\\') => {
            return Err(format!("{source_type} value {text:?}: a non-ASCII byte, not valid UTF-8 as text"));
        }
        _ => text.to_string(),
    })
}

fn clip(s: &str) -> &str {
    match s.char_indices().nth(60) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn parse_float(text: &str, real: bool) -> Option<f64> {
    match text {
        "NaN" => return Some(f64::NAN),
        "Infinity" => return Some(f64::INFINITY),
        "-Infinity" => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    // Only digits, sign, point and exponent: Rust would also read "inf" or "nan".
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E')) {
        return None;
    }
    // A real is printed as the shortest text that reads back to the same float4: read it as
    // one, then widen exactly, as the binary decoder does.
    if real {
        text.parse::<f32>().ok().map(f64::from)
    } else {
        text.parse::<f64>().ok()
    }
}

fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    let nibble = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    b.chunks(2).map(|p| Some((nibble(p[0])? << 4) | nibble(p[1])?)).collect()
}

/// Digits only, at least `min` of them.
fn digits(s: &[u8], min: usize) -> Option<u64> {
    if s.len() < min || s.len() > 18 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &d| acc.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

/// `YYYY-MM-DD` (four or more year digits) and an optional ` BC`: days since 2000-01-01.
fn parse_ymd(s: &[u8], bc: bool) -> Option<i64> {
    let dash = s.len().checked_sub(6)?;
    if s[dash] != b'-' || s[dash + 3] != b'-' {
        return None;
    }
    let year = i64::try_from(digits(&s[..dash], 4)?).ok()?;
    let (m, d) = (digits(&s[dash + 1..dash + 3], 2)?, digits(&s[dash + 4..], 2)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || year == 0 {
        return None;
    }
    // ISO 8601 counts 1 BC as year 0.
    let year = if bc { 1 - year } else { year };
    Some(crate::time::days_from_civil(year, m as u32, d as u32) - PG_EPOCH_DAYS)
}

fn strip_bc(s: &str) -> (&str, bool) {
    match s.strip_suffix(" BC") {
        Some(rest) => (rest, true),
        None => (s, false),
    }
}

fn parse_date(text: &str) -> Option<String> {
    match text {
        "infinity" => return Some(format_date(i32::MAX)),
        "-infinity" => return Some(format_date(i32::MIN)),
        _ => {}
    }
    let (ymd, bc) = strip_bc(text);
    let days = i32::try_from(parse_ymd(ymd.as_bytes(), bc)?).ok()?;
    // The two ends are the infinities' encodings, never a real date.
    (days != i32::MAX && days != i32::MIN).then(|| format_date(days))
}

/// `HH:MM:SS` with an optional fraction of up to six digits: microseconds.
fn parse_time(s: &[u8]) -> Option<i64> {
    if s.len() < 8 || s[2] != b':' || s[5] != b':' {
        return None;
    }
    let (h, m, sec) = (digits(&s[..2], 2)?, digits(&s[3..5], 2)?, digits(&s[6..8], 2)?);
    let frac = match &s[8..] {
        [] => 0,
        [b'.', f @ ..] if (1..=6).contains(&f.len()) => digits(f, 1)? * 10u64.pow(6 - f.len() as u32),
        _ => return None,
    };
    if m > 59 || sec > 60 || h > 24 {
        return None;
    }
    i64::try_from(((h * 60 + m) * 60 + sec) * 1_000_000 + frac).ok()
}

/// `+HH`, `+HH:MM` or `+HH:MM:SS` (east of Greenwich): seconds east.
fn parse_offset(s: &[u8]) -> Option<i32> {
    let sign = match s.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let parts: Vec<&[u8]> = s[1..].split(|&b| b == b':').collect();
    if parts.len() > 3 || parts.iter().any(|p| p.len() != 2) {
        return None;
    }
    let mut secs = 0u64;
    for (i, p) in parts.iter().enumerate() {
        secs += digits(p, 2)? * [3600, 60, 1][i];
    }
    Some(sign * i32::try_from(secs).ok()?)
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM[:SS]]][ BC]` as `format_timestamp` prints it.
fn parse_timestamp(text: &str, tz: bool) -> Option<String> {
    match text {
        "infinity" => return Some(format_timestamp(i64::MAX, tz)),
        "-infinity" => return Some(format_timestamp(i64::MIN, tz)),
        _ => {}
    }
    let (rest, bc) = strip_bc(text);
    let (date, time) = rest.split_once(' ')?;
    let (clock, east) = if tz {
        let at = time.rfind(['+', '-'])?;
        (&time[..at], i64::from(parse_offset(&time.as_bytes()[at..])?))
    } else {
        (time, 0)
    };
    let days = parse_ymd(date.as_bytes(), bc)?;
    let us = days.checked_mul(US_PER_DAY)?.checked_add(parse_time(clock.as_bytes())?)?.checked_sub(east * US_PER_SEC)?;
    (us != i64::MAX && us != i64::MIN).then(|| format_timestamp(us, tz))
}

/// PostgreSQL's `iso_8601` interval text (`P1Y2M3DT4H5M6.5S`, `PT-0.5S`, `PT0S`): (µs, days, months).
fn parse_interval(text: &str) -> Option<(i64, i32, i32)> {
    let body = text.strip_prefix('P')?;
    let (date, time) = match body.split_once('T') {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return None,
        None => (body, None),
    };
    let (mut months, mut days, mut us) = (0i64, 0i64, 0i64);
    // Each part is a signed integer and a unit letter, in this order, each at most once.
    let parts = |s: &str, units: &[u8]| -> Option<Vec<(u8, String)>> {
        let mut out: Vec<(u8, String)> = Vec::new();
        let mut num = String::new();
        for c in s.chars() {
            if c.is_ascii_digit() || c == '-' || c == '.' {
                num.push(c);
            } else {
                let u = u8::try_from(c).ok()?;
                let after = out.last().map_or(0, |(p, _)| units.iter().position(|x| x == p).unwrap_or(0) + 1);
                if num.is_empty() || !units[after..].contains(&u) {
                    return None;
                }
                out.push((u, std::mem::take(&mut num)));
            }
        }
        num.is_empty().then_some(out)
    };
    let int = |s: &str| -> Option<i64> {
        let (neg, d) = match s.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, s),
        };
        let v = i64::try_from(digits(d.as_bytes(), 1)?).ok()?;
        Some(if neg { -v } else { v })
    };
    for (unit, n) in parts(date, b"YMD")? {
        match unit {
            b'Y' => months += int(&n)?.checked_mul(12)?,
            b'M' => months += int(&n)?,
            _ => days = int(&n)?,
        }
    }
    for (unit, n) in parts(time.unwrap_or(""), b"HMS")? {
        match unit {
            b'H' => us = us.checked_add(int(&n)?.checked_mul(3_600_000_000)?)?,
            b'M' => us = us.checked_add(int(&n)?.checked_mul(60_000_000)?)?,
            _ => {
                let (neg, abs) = match n.strip_prefix('-') {
                    Some(a) => (true, a),
                    None => (false, n.as_str()),
                };
                let (whole, frac) = abs.split_once('.').unwrap_or((abs, ""));
                if frac.len() > 6 || frac.contains('.') {
                    return None;
                }
                let frac_us = if frac.is_empty() { 0 } else { digits(frac.as_bytes(), 1)? * 10u64.pow(6 - frac.len() as u32) };
                let s = i64::try_from(digits(whole.as_bytes(), 1)?.checked_mul(1_000_000)?.checked_add(frac_us)?).ok()?;
                us = us.checked_add(if neg { -s } else { s })?;
            }
        }
    }
    Some((us, i32::try_from(days).ok()?, i32::try_from(months).ok()?))
}

fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let b = text.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let hex: String = text.chars().filter(|&c| c != '-').collect();
    hex_bytes(&hex)?.try_into().ok()
}

/// cash_out's text with lc_monetary C (`-$1,234.50`) as `money::numeric::text` gives it (`-1234.50`).
fn money_numeric(text: &str) -> Option<String> {
    let (neg, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let amount: String = rest.strip_prefix('$')?.chars().filter(|&c| c != ',').collect();
    let (whole, frac) = amount.split_once('.')?;
    if whole.is_empty() || frac.len() != 2 || !whole.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!("{}{whole}.{frac}", if neg { "-" } else { "" }))
}

/// How `array_to_json` renders an element (PostgreSQL's `json_categorize_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonElem {
    /// int2/4/8, float4/8, numeric: the text when it is a JSON number, else a JSON string.
    Number,
    Bool,
    /// ISO text with a `T` between date and time (XSD style).
    Timestamp,
    /// The same, with the offset always as `+HH:MM`.
    TimestampTz,
    /// json, jsonb: the text itself.
    Json,
    /// Everything else: the output function's text as a JSON string.
    String,
}

struct ArrayElement {
    render: JsonElem,
    delimiter: u8,
}

/// The element type of an array type, and how `array_to_json` prints it. Only builtin types
/// known to print the same text in the array literal and in `array_to_json`: a user type
/// (enum, domain, composite, extension type) cannot be told apart by its name, and domains
/// and composites render differently.
fn array_element(source_type: &str) -> Result<ArrayElement, String> {
    let elem = source_type.strip_suffix("[]").unwrap_or(source_type);
    let base = without_typmod(elem);
    let render = match base.as_str() {
        "smallint" | "integer" | "bigint" | "real" | "double precision" | "numeric" => JsonElem::Number,
        "boolean" => JsonElem::Bool,
        "timestamp without time zone" => JsonElem::Timestamp,
        "timestamp with time zone" => JsonElem::TimestampTz,
        "json" | "jsonb" => JsonElem::Json,
        "text"
        | "character varying"
        | "character"
        | "bpchar"
        | "name"
        | "\"char\""
        | "uuid"
        | "date"
        | "time without time zone"
        | "time with time zone"
        | "interval"
        | "bytea"
        | "money"
        | "oid"
        | "inet"
        | "cidr"
        | "macaddr"
        | "macaddr8"
        | "bit"
        | "bit varying"
        | "point"
        | "line"
        | "lseg"
        | "box"
        | "path"
        | "polygon"
        | "circle"
        | "tsvector"
        | "tsquery"
        | "int4range"
        | "int8range"
        | "numrange"
        | "daterange"
        | "tsrange"
        | "tstzrange"
        | "pg_lsn" => JsonElem::String,
        _ => {
            return Err(format!(
                "{source_type}: arrays of {elem} cannot be decoded from logical decoding's text exactly as array_to_json renders them \
                 (only arrays of builtin scalar types are)"
            ));
        }
    };
    // box is the one builtin whose array delimiter is not a comma (its text has commas).
    Ok(ArrayElement { render, delimiter: if base == "box" { b';' } else { b',' } })
}

/// PostgreSQL's array literal (`array_out`) as `array_to_json(col)::text`: bounds decoration
/// (`[0:1]=`) dropped, `{}` nesting as `[]`, elements rendered by type, no spaces.
fn array_json(text: &str, elem: &ArrayElement) -> Result<String, String> {
    let mut p = ArrayText { s: text.as_bytes(), pos: 0, elem, out: String::with_capacity(text.len() + 2) };
    if p.s.first() == Some(&b'[') {
        let eq = text.find('=').ok_or("bounds decoration without '='")?;
        let dims = &text[..eq];
        let ok = dims.strip_prefix('[').and_then(|d| d.strip_suffix(']')).is_some_and(|d| {
            d.split("][").all(|b| {
                b.split_once(':').is_some_and(|(lo, hi)| [lo, hi].iter().all(|n| n.trim_start_matches('-').parse::<u32>().is_ok()))
            })
        });
        if !ok {
            return Err(format!("bad bounds decoration {dims:?}"));
        }
        p.pos = eq + 1;
    }
    p.array()?;
    if p.pos != p.s.len() {
        return Err(format!("text after the array at byte {}", p.pos));
    }
    Ok(p.out)
}

struct ArrayText<'a> {
    s: &'a [u8],
    pos: usize,
    elem: &'a ArrayElement,
    out: String,
}

impl ArrayText<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.peek() != Some(c) {
            return Err(format!("expected {:?} at byte {}", char::from(c), self.pos));
        }
        self.pos += 1;
        Ok(())
    }

    /// `{` items `}`; items are all sub-arrays or all elements (array_out never mixes them).
    fn array(&mut self) -> Result<(), String> {
        self.expect(b'{')?;
        self.out.push('[');
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.out.push(']');
            return Ok(());
        }
        let nested = self.peek() == Some(b'{');
        loop {
            if nested {
                self.array()?;
            } else {
                self.element()?;
            }
            match self.peek() {
                Some(b'}') => break,
                Some(d) if d == self.elem.delimiter => {
                    self.pos += 1;
                    self.out.push(',');
                }
                _ => return Err(format!("expected a delimiter or '}}' at byte {}", self.pos)),
            }
        }
        self.pos += 1;
        self.out.push(']');
        Ok(())
    }

    fn element(&mut self) -> Result<(), String> {
        let start = self.pos;
        let text: std::borrow::Cow<'_, str> = if self.peek() == Some(b'"') {
            self.pos += 1;
            let mut v = Vec::new();
            loop {
                match self.peek() {
                    None => return Err(format!("unterminated quoted element from byte {start}")),
                    Some(b'"') => break,
                    Some(b'\\') => {
                        v.push(*self.s.get(self.pos + 1).ok_or("a backslash at the end")?);
                        self.pos += 2;
                    }
                    Some(b) => {
                        v.push(b);
                        self.pos += 1;
                    }
                }
            }
            self.pos += 1;
            String::from_utf8(v).map_err(|_| "invalid UTF-8".to_string())?.into()
        } else {
            while self.peek().is_some_and(|b| b != self.elem.delimiter && b != b'}' && b != b'{' && b != b'"') {
                self.pos += 1;
            }
            let raw = std::str::from_utf8(&self.s[start..self.pos]).map_err(|_| "invalid UTF-8".to_string())?;
            if raw.is_empty() {
                return Err(format!("empty element at byte {start}"));
            }
            // array_out quotes every element that reads as NULL, so an unquoted one is NULL.
            if raw.eq_ignore_ascii_case("NULL") {
                self.out.push_str("null");
                return Ok(());
            }
            raw.into()
        };
        render_element(&text, self.elem.render, &mut self.out)
    }
}

fn render_element(text: &str, render: JsonElem, out: &mut String) -> Result<(), String> {
    match render {
        JsonElem::Number if is_json_number(text) => out.push_str(text),
        JsonElem::Bool => out.push_str(match text {
            "t" => "true",
            "f" => "false",
            _ => return Err(format!("boolean element {text:?}")),
        }),
        JsonElem::Json => out.push_str(text),
        JsonElem::Timestamp | JsonElem::TimestampTz if text.ends_with("infinity") => pg_json_string(text, out),
        JsonElem::Timestamp => pg_json_string(&text.replacen(' ', "T", 1), out),
        JsonElem::TimestampTz => {
            pg_json_string(&xsd_offset(&text.replacen(' ', "T", 1)).ok_or_else(|| format!("timestamptz element {text:?}"))?, out)
        }
        JsonElem::Number | JsonElem::String => pg_json_string(text, out),
    }
    Ok(())
}

/// `...+HH` → `...+HH:00`: EncodeTimezone in XSD style always shows the minutes.
fn xsd_offset(t: &str) -> Option<String> {
    let (rest, bc) = strip_bc(t);
    let at = rest.rfind(['+', '-'])?;
    let mut s = rest.to_string();
    if rest.len() - at == 3 {
        s.push_str(":00");
    }
    if bc {
        s.push_str(" BC");
    }
    Some(s)
}

/// PostgreSQL's `IsValidJsonNumber`: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn is_json_number(s: &str) -> bool {
    let b = s.strip_prefix('-').unwrap_or(s).as_bytes();
    let mut i = 0;
    let run = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    match b.first() {
        Some(b'0') => i = 1,
        Some(b'1'..=b'9') => {
            run(&mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !run(&mut i) {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !run(&mut i) {
            return false;
        }
    }
    i == b.len()
}

/// PostgreSQL's `escape_json`: `\b \f \n \r \t \" \\`, other control bytes as `\u00xx`.
fn pg_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchText, JsonbBatch};
    use proptest::prelude::*;

    /// Days from 1970-01-01 by walking whole years and months: slow, obviously right.
    fn naive_days(y: i64, m: u32, d: u32) -> i64 {
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let mut days = 0i64;
        if y >= 1970 {
            for yy in 1970..y {
                days += if leap(yy) { 366 } else { 365 };
            }
        } else {
            for yy in y..1970 {
                days -= if leap(yy) { 366 } else { 365 };
            }
        }
        let month_len = [31, if leap(y) { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        days += month_len[..(m - 1) as usize].iter().sum::<i64>();
        days + i64::from(d) - 1
    }

    fn date_at(y: i64, m: u32, d: u32) -> String {
        format_date((naive_days(y, m, d) - PG_EPOCH_DAYS) as i32)
    }

    /// A cell through the copy's direct path (`encode`), or through `decode` and the value's
    /// own JSON: the two must write the same text, or fail with the same words.
    fn direct(oid: u32, raw: &[u8]) -> Result<String, String> {
        let mut t = BatchText::untyped(usize::MAX);
        t.begin_row();
        encode(oid, raw, &mut t)?;
        t.end_row();
        Ok(t.finish().remove(0))
    }

    fn via_value(oid: u32, raw: &[u8]) -> Result<String, String> {
        let v = decode(oid, raw)?;
        let mut t = BatchText::untyped(usize::MAX);
        t.rows_of(&[vec![v]]);
        Ok(t.finish().remove(0))
    }

    const ALL_OIDS: &[u32] = &[
        BOOL,
        BYTEA,
        NAME,
        INT8,
        INT2,
        INT4,
        TEXT,
        OID,
        JSON,
        FLOAT4,
        FLOAT8,
        UNKNOWN,
        BPCHAR,
        VARCHAR,
        DATE,
        TIME,
        TIMESTAMP,
        TIMESTAMPTZ,
        INTERVAL,
        TIMETZ,
        UUID,
        JSONB,
        1700,
        0,
    ];

    /// Each type's edge values in its wire format (and some of other lengths, for the errors).
    fn edge_raw() -> impl Strategy<Value = Vec<u8>> {
        let ints = [0i64, 1, -1, i64::MIN, i64::MAX, 1 << 53, (1 << 53) + 1, -(1 << 53) - 1, i32::MIN.into(), i32::MAX.into()];
        let floats = [0.0, -0.0, 1.5, 0.1, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, f64::MIN_POSITIVE, 5e-324, f64::MAX, 1e16, 123.0];
        let days = [0i32, 1, -1, i32::MAX, i32::MIN, -730_120, -2_451_545, 2_914_000, -10_957];
        let us = [0i64, -1, i64::MAX, i64::MIN, US_PER_DAY - 1, US_PER_DAY, 9_223_371_331_200_000_000, -211_813_488_000_000_000];
        prop_oneof![
            proptest::sample::select(ints.to_vec()).prop_map(|i| i.to_be_bytes().to_vec()),
            proptest::sample::select(ints.to_vec()).prop_map(|i| (i as i32).to_be_bytes().to_vec()),
            proptest::sample::select(ints.to_vec()).prop_map(|i| (i as i16).to_be_bytes().to_vec()),
            any::<i64>().prop_map(|i| i.to_be_bytes().to_vec()),
            proptest::sample::select(floats.to_vec()).prop_map(|f| f.to_be_bytes().to_vec()),
            proptest::sample::select(floats.to_vec()).prop_map(|f| (f as f32).to_be_bytes().to_vec()),
            any::<f64>().prop_map(|f| f.to_be_bytes().to_vec()),
            any::<f32>().prop_map(|f| f.to_be_bytes().to_vec()),
            proptest::sample::select(days.to_vec()).prop_map(|d| d.to_be_bytes().to_vec()),
            any::<i32>().prop_map(|d| d.to_be_bytes().to_vec()),
            proptest::sample::select(us.to_vec()).prop_map(|u| u.to_be_bytes().to_vec()),
            (proptest::sample::select(us.to_vec()), any::<i32>(), any::<i32>())
                .prop_map(|(u, d, m)| { [u.to_be_bytes().as_slice(), &d.to_be_bytes(), &m.to_be_bytes()].concat() }),
            (any::<i64>(), -57_600i32..=57_600).prop_map(|(u, z)| [u.to_be_bytes().as_slice(), &z.to_be_bytes()].concat()),
            "(?s).{0,12}".prop_map(|s| s.into_bytes()),
            "(?s).{0,12}".prop_map(|s| [&[1u8][..], s.as_bytes()].concat()),
            "[\"\\\n\t\u{1}\u{7f}é😀\u{2028}a]{0,8}".prop_map(|s| s.into_bytes()),
            proptest::collection::vec(any::<u8>(), 0..20),
            Just(vec![0xff, 0xfe]),
            Just(vec![1, 0xc3]),
            Just(vec![]),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        /// The copy's direct path writes, for every wire type and every edge value, exactly the
        /// cell that the `Value` path writes (or fails the same way).
        #[test]
        fn direct_cells_equal_value_cells(oid in proptest::sample::select(ALL_OIDS.to_vec()), raw in edge_raw()) {
            prop_assert_eq!(direct(oid, &raw), via_value(oid, &raw));
        }
    }

    proptest! {
        /// Whole rows with NULLs, split into texts by a small limit, read the same both ways.
        #[test]
        fn direct_rows_equal_encoded_rows(
            rows in proptest::collection::vec(
                proptest::collection::vec((proptest::sample::select(ALL_OIDS[..22].to_vec()), proptest::option::of(edge_raw())), 1..5),
                0..8),
            max in 1usize..300,
        ) {
            let decoded: Result<Vec<Vec<Value>>, String> = rows
                .iter()
                .map(|r| r.iter().map(|(oid, raw)| raw.as_ref().map_or(Ok(Value::Null), |raw| decode(*oid, raw))).collect())
                .collect();
            type RawRow = Vec<(u32, Option<Vec<u8>>)>;
            fn write<C: Cells>(rows: &[RawRow], t: &mut C) -> Result<(), String> {
                rows.iter().try_for_each(|r| {
                    t.begin_row();
                    for (oid, raw) in r {
                        match raw {
                            Some(raw) => encode(*oid, raw, t)?,
                            None => t.null(),
                        }
                    }
                    t.end_row();
                    Ok(())
                })
            }
            let (mut t, mut b) = (BatchText::untyped(max), JsonbBatch::untyped(max));
            let (written, written_b) = (write(&rows, &mut t), write(&rows, &mut b));
            match decoded {
                Ok(values) => {
                    prop_assert_eq!(written, Ok(()));
                    prop_assert_eq!(written_b, Ok(()));
                    prop_assert_eq!(t.rows(), values.len());
                    prop_assert_eq!(b.rows(), values.len());
                    prop_assert_eq!(t.finish(), crate::replica_sql::encode_rows(&values, max));
                    prop_assert_eq!(b.finish(), crate::replica_sql::jsonb_rows(&values, max));
                }
                Err(e) => {
                    prop_assert_eq!(written, Err(e.clone()));
                    prop_assert_eq!(written_b, Err(e));
                }
            }
        }
    }

    #[test]
    fn known_dates() {
        assert_eq!(format_date(0), "2000-01-01");
        assert_eq!(format_date(-10_957), "1970-01-01");
        assert_eq!(format_date(59), "2000-02-29");
        assert_eq!(format_date(60), "2000-03-01");
        assert_eq!(date_at(1900, 2, 28), "1900-02-28");
        assert_eq!(format_date((naive_days(1900, 2, 28) + 1 - PG_EPOCH_DAYS) as i32), "1900-03-01");
        assert_eq!(date_at(9999, 12, 31), "9999-12-31");
        assert_eq!(date_at(1, 1, 1), "0001-01-01");
        // 0001-01-01 is day -730119 from 2000-01-01 (PostgreSQL: '0001-01-01'::date - '2000-01-01').
        assert_eq!(format_date(-730_119), "0001-01-01");
        assert_eq!(format_date(-730_120), "0000-12-31");
        assert_eq!(date_at(-43, 3, 15), "-000043-03-15");
        assert_eq!(date_at(10_000, 1, 1), "+010000-01-01");
        assert_eq!(format_date(i32::MAX), "infinity");
        assert_eq!(format_date(i32::MIN), "-infinity");
    }

    proptest! {
        #[test]
        fn civil_matches_naive_count(y in -5000i64..12000, m in 1u32..=12, d in 1u32..=28) {
            prop_assert_eq!(civil_from_days(naive_days(y, m, d)), (y, m, d));
        }

        #[test]
        fn consecutive_days_are_consecutive(days in -3_000_000i64..3_000_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(naive_days(y, m, d), days);
        }
    }

    proptest! {
        /// The one-append timestamp equals the date and the clock written part by part.
        #[test]
        fn timestamps_in_one_append_equal_the_parts(us in -211_813_488_000_000_000i64..=9_223_371_331_199_999_999) {
            let mut parts = String::new();
            push_date(&mut parts, us.div_euclid(US_PER_DAY));
            parts.push('T');
            push_clock(&mut parts, us.rem_euclid(US_PER_DAY));
            prop_assert_eq!(format_timestamp(us, false), parts);
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(format_timestamp(0, true), "2000-01-01T00:00:00.000000Z");
        assert_eq!(format_timestamp(0, false), "2000-01-01T00:00:00.000000");
        assert_eq!(format_timestamp(-1, true), "1999-12-31T23:59:59.999999Z");
        // 2026-01-02 03:04:05.123456 UTC
        let us = (naive_days(2026, 1, 2) - PG_EPOCH_DAYS) * US_PER_DAY + (3 * 3600 + 4 * 60 + 5) * US_PER_SEC + 123_456;
        assert_eq!(format_timestamp(us, true), "2026-01-02T03:04:05.123456Z");
        assert_eq!(format_timestamp(i64::MAX, true), "infinity");
        assert_eq!(format_timestamp(i64::MIN, false), "-infinity");
        // PostgreSQL's lower limit, 4714-11-24 00:00:00 BC (= year -4713).
        let low = (naive_days(-4713, 11, 24) - PG_EPOCH_DAYS) * US_PER_DAY;
        assert_eq!(format_timestamp(low, true), "-004713-11-24T00:00:00.000000Z");
        let high = (naive_days(294_276, 12, 31) - PG_EPOCH_DAYS + 1) * US_PER_DAY - 1;
        assert_eq!(format_timestamp(high, false), "+294276-12-31T23:59:59.999999");
    }

    #[test]
    fn times_and_intervals() {
        assert_eq!(format_time(0), "00:00:00.000000");
        assert_eq!(format_time(US_PER_DAY), "24:00:00.000000");
        assert_eq!(format_time(13 * 3_600_000_000 + 7 * 60_000_000 + 9_000_050), "13:07:09.000050");
        assert_eq!(format_timetz(4 * 3_600_000_000, -19_800), "04:00:00.000000+05:30");
        assert_eq!(format_timetz(0, 3600), "00:00:00.000000-01:00");
        assert_eq!(format_timetz(0, -(5 * 3600 + 30 * 60 + 15)), "00:00:00.000000+05:30:15");
        assert_eq!(format_interval(0, 0, 0), "PT0S");
        let hms = (4 * 3600 + 5 * 60 + 6) * US_PER_SEC + 500_000;
        assert_eq!(format_interval(hms, 3, 14), "P1Y2M3DT4H5M6.5S");
        assert_eq!(format_interval(-hms, 3, -14), "P-1Y-2M3DT-4H-5M-6.5S");
        assert_eq!(format_interval(0, -1, 0), "P-1D");
        assert_eq!(format_interval(-500_000, 0, 0), "PT-0.5S");
        assert_eq!(format_interval(-US_PER_SEC, 0, 1), "P1MT-1S");
        assert_eq!(format_interval(3 * 3_600_000_000, -1, 0), "P-1DT3H");
        assert_eq!(format_interval(0, 0, i32::MIN), "P-178956970Y-8M");
        assert_eq!(format_interval(1, 0, 0), "PT0.000001S");
        assert_eq!(format_interval(i64::MAX, 0, 0), "PT2562047788H54.775807S");
    }

    #[test]
    fn decodes_hand_written_wire_values() {
        assert_eq!(decode(INT2, &[0x80, 0x00]), Ok(Value::Integer(-32768)));
        assert_eq!(decode(INT4, &[0xff, 0xff, 0xff, 0xfe]), Ok(Value::Integer(-2)));
        assert_eq!(decode(INT8, &[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), Ok(Value::Integer(i64::MAX)));
        assert_eq!(decode(INT8, &[0x80, 0, 0, 0, 0, 0, 0, 0]), Ok(Value::Integer(i64::MIN)));
        assert_eq!(decode(OID, &[0xff, 0xff, 0xff, 0xff]), Ok(Value::Integer(4_294_967_295)));
        assert_eq!(decode(FLOAT4, &0.1f32.to_be_bytes()), Ok(Value::Real(f64::from(0.1f32))));
        assert_eq!(decode(FLOAT8, &0.1f64.to_be_bytes()), Ok(Value::Real(0.1)));
        assert!(matches!(decode(FLOAT4, &f32::NAN.to_be_bytes()), Ok(Value::Real(f)) if f.is_nan()));
        assert_eq!(decode(FLOAT8, &f64::NEG_INFINITY.to_be_bytes()), Ok(Value::Real(f64::NEG_INFINITY)));
        assert_eq!(decode(BOOL, &[1]), Ok(Value::Integer(1)));
        assert_eq!(decode(BOOL, &[0]), Ok(Value::Integer(0)));
        assert_eq!(decode(BYTEA, &[0, 255]), Ok(Value::Blob(vec![0, 255])));
        assert_eq!(decode(BYTEA, &[]), Ok(Value::Blob(vec![])));
        assert_eq!(decode(TEXT, b""), Ok(Value::text("")));
        assert_eq!(decode(VARCHAR, "é\"'".as_bytes()), Ok(Value::text("é\"'")));
        assert_eq!(decode(BPCHAR, b"ab  "), Ok(Value::text("ab  ")));
        assert_eq!(decode(JSON, b"{\"a\": 1}"), Ok(Value::text("{\"a\": 1}")));
        assert_eq!(decode(JSONB, b"\x01{\"a\": 1}"), Ok(Value::text("{\"a\": 1}")));
        assert!(decode(JSONB, b"\x02{}").is_err());
        assert_eq!(decode(DATE, &0i32.to_be_bytes()), Ok(Value::text("2000-01-01")));
        assert_eq!(decode(DATE, &i32::MAX.to_be_bytes()), Ok(Value::text("infinity")));
        assert_eq!(decode(TIMESTAMPTZ, &1i64.to_be_bytes()), Ok(Value::text("2000-01-01T00:00:00.000001Z")));
        assert_eq!(decode(TIMESTAMP, &i64::MIN.to_be_bytes()), Ok(Value::text("-infinity")));
        assert_eq!(decode(TIME, &1_000_000i64.to_be_bytes()), Ok(Value::text("00:00:01.000000")));
        let mut timetz = 3_600_000_000i64.to_be_bytes().to_vec();
        timetz.extend((-7200i32).to_be_bytes());
        assert_eq!(decode(TIMETZ, &timetz), Ok(Value::text("01:00:00.000000+02:00")));
        let mut iv = 6_500_000i64.to_be_bytes().to_vec();
        iv.extend(3i32.to_be_bytes());
        iv.extend(14i32.to_be_bytes());
        assert_eq!(decode(INTERVAL, &iv), Ok(Value::text("P1Y2M3DT6.5S")));
        let u = [0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0, 1, 2, 3, 4, 5, 6, 0xff];
        assert_eq!(decode(UUID, &u), Ok(Value::text("12345678-9abc-def0-0001-0203040506ff")));
        assert!(decode(INT4, &[0, 0]).is_err());
        assert!(decode(TEXT, &[0xff]).is_err());
        assert!(decode(1700, b"12").unwrap_err().contains("1700"));
    }

    #[test]
    fn cell_reads_null_and_any_type() {
        assert!(<Cell as FromSql>::accepts(&Type::POINT));
        assert_eq!(<Cell as FromSql>::from_sql_nullable(&Type::INT4, None).unwrap().0, Value::Null);
        assert_eq!(<Cell as FromSql>::from_sql_nullable(&Type::TEXT, Some(b"")).unwrap().0, Value::text(""));
        let err = <Cell as FromSql>::from_sql(&Type::NUMERIC, &[0, 0]).err().unwrap().to_string();
        assert!(err.contains("numeric"), "{err}");
    }

    fn col(t: &str) -> Column {
        Column { name: "c".into(), source_type: t.into(), affinity: Kind::of(t).affinity(), nullable: true }
    }

    #[test]
    fn kinds_and_affinities() {
        let cases = [
            ("smallint", Kind::Integer, Affinity::Integer),
            ("bigint", Kind::Integer, Affinity::Integer),
            ("oid", Kind::Integer, Affinity::Integer),
            ("real", Kind::Float, Affinity::Real),
            ("double precision", Kind::Float, Affinity::Real),
            ("boolean", Kind::Bool, Affinity::Integer),
            ("bytea", Kind::Bytea, Affinity::Blob),
            ("numeric(40,0)", Kind::CastText, Affinity::Text),
            ("numeric", Kind::CastText, Affinity::Text),
            ("money", Kind::Money, Affinity::Text),
            ("character varying(10)", Kind::Str, Affinity::Text),
            ("character(3)", Kind::Str, Affinity::Text),
            ("timestamp(3) with time zone", Kind::Timestamp, Affinity::Text),
            ("timestamp without time zone", Kind::Timestamp, Affinity::Text),
            ("time(2) without time zone", Kind::Time, Affinity::Text),
            ("time with time zone", Kind::TimeTz, Affinity::Text),
            ("interval year to month", Kind::Interval, Affinity::Text),
            ("interval(3)", Kind::Interval, Affinity::Text),
            ("uuid", Kind::Uuid, Affinity::Text),
            ("jsonb", Kind::Json, Affinity::Text),
            ("integer[]", Kind::Array, Affinity::Text),
            ("\"My Schema\".mood", Kind::CastText, Affinity::Text),
            ("\"integer\"", Kind::CastText, Affinity::Text),
            ("mood", Kind::CastText, Affinity::Text),
            ("inet", Kind::CastText, Affinity::Text),
            ("\"char\"", Kind::CastText, Affinity::Text),
        ];
        for (t, k, a) in cases {
            assert_eq!((Kind::of(t), Kind::of(t).affinity()), (k, a), "{t}");
        }
    }

    #[test]
    fn select_expressions() {
        assert_eq!(value_expr(&col("bigint"), "\"x\""), "\"x\"");
        assert_eq!(value_expr(&col("numeric(10,2)"), "\"x\""), "\"x\"::pg_catalog.text");
        assert_eq!(value_expr(&col("money"), "\"x\""), "\"x\"::pg_catalog.numeric::pg_catalog.text");
        assert_eq!(value_expr(&col("text[]"), "\"x\""), "pg_catalog.array_to_json(\"x\")::pg_catalog.text");
        assert_eq!(value_expr(&col("mood"), "\"x\""), "\"x\"::pg_catalog.text");
    }

    #[test]
    fn param_types_drop_rounding_modifiers() {
        assert_eq!(param_type("numeric(12,2)"), "numeric");
        assert_eq!(param_type("timestamp(0) with time zone"), "timestamp with time zone");
        assert_eq!(param_type("interval year to month"), "interval");
        assert_eq!(param_type("character varying(3)"), "character varying");
        assert_eq!(param_type("character(3)"), "bpchar");
        assert_eq!(param_type("bit(3)"), "bit varying");
        assert_eq!(param_type("integer"), "integer");
        assert_eq!(param_type("numeric(5,1)[]"), "numeric[]");
        assert_eq!(param_type("\"My Schema\".\"T(1)\""), "\"My Schema\".\"T(1)\"");
    }

    #[test]
    fn parameters_as_text() {
        assert_eq!(param_text(&Value::Null, &col("bigint")), None);
        assert_eq!(param_text(&Value::Integer(i64::MIN), &col("bigint")).unwrap(), "-9223372036854775808");
        assert_eq!(param_text(&Value::Integer(1), &col("boolean")).unwrap(), "true");
        assert_eq!(param_text(&Value::Integer(0), &col("boolean")).unwrap(), "false");
        assert_eq!(param_text(&Value::Real(0.1), &col("double precision")).unwrap(), "0.1");
        assert_eq!(param_text(&Value::Real(1e308), &col("double precision")).unwrap(), "1e308");
        assert_eq!(param_text(&Value::Real(f64::NAN), &col("real")).unwrap(), "NaN");
        assert_eq!(param_text(&Value::Real(f64::NEG_INFINITY), &col("real")).unwrap(), "-Infinity");
        assert_eq!(param_text(&Value::Blob(vec![0, 0xab]), &col("bytea")).unwrap(), "\\x00ab");
        assert_eq!(param_text(&Value::Blob(vec![]), &col("bytea")).unwrap(), "\\x");
        assert_eq!(param_text(&Value::text("12.30"), &col("numeric")).unwrap(), "12.30");
        assert_eq!(param_text(&Value::text("-000043-03-15"), &col("date")).unwrap(), "0044-03-15 BC");
        assert_eq!(param_text(&Value::text("0000-12-31"), &col("date")).unwrap(), "0001-12-31 BC");
        let ts = col("timestamp with time zone");
        assert_eq!(param_text(&Value::text("+010000-01-01T00:00:00.000000Z"), &ts).unwrap(), "10000-01-01T00:00:00.000000Z");
        assert_eq!(param_text(&Value::text("-004713-11-24T00:00:00.000000Z"), &ts).unwrap(), "4714-11-24T00:00:00.000000Z BC");
        assert_eq!(param_text(&Value::text("2026-01-02T03:04:05.123456Z"), &ts).unwrap(), "2026-01-02T03:04:05.123456Z");
        assert_eq!(param_text(&Value::text("-infinity"), &ts).unwrap(), "-infinity");
        assert_eq!(param_text(&Value::text("-1"), &col("text")).unwrap(), "-1");
    }

    fn txt(source_type: &str, text: &str) -> Value {
        decode_text(source_type, text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn text_numbers_bools_bytes() {
        assert_eq!(txt("bigint", "-9223372036854775808"), Value::Integer(i64::MIN));
        assert_eq!(txt("smallint", "32767"), Value::Integer(32767));
        assert_eq!(txt("oid", "4294967295"), Value::Integer(4_294_967_295));
        assert_eq!(txt("double precision", "0.1"), Value::Real(0.1));
        assert_eq!(txt("double precision", "5e-324"), Value::Real(5e-324));
        assert_eq!(txt("double precision", "1e+308"), Value::Real(1e308));
        assert_eq!(txt("double precision", "-Infinity"), Value::Real(f64::NEG_INFINITY));
        assert!(matches!(txt("real", "NaN"), Value::Real(f) if f.is_nan()));
        // A real is read as a float4 and widened, as the binary decoder does.
        assert_eq!(txt("real", "0.1"), Value::Real(f64::from(0.1f32)));
        assert_eq!(txt("real", "3.4028235e+38"), Value::Real(f64::from(f32::MAX)));
        assert_eq!(txt("real", "1e-45"), Value::Real(f64::from(1e-45f32)));
        let Value::Real(z) = txt("double precision", "-0") else { panic!() };
        assert_eq!(z.to_bits(), (-0.0f64).to_bits());
        assert_eq!(txt("boolean", "t"), Value::Integer(1));
        assert_eq!(txt("boolean", "f"), Value::Integer(0));
        assert_eq!(txt("bytea", "\\x00ff00"), Value::Blob(vec![0, 255, 0]));
        assert_eq!(txt("bytea", "\\x"), Value::Blob(vec![]));
        assert_eq!(txt("numeric(12,2)", "-0.50"), Value::text("-0.50"));
        assert_eq!(txt("numeric", "NaN"), Value::text("NaN"));
        assert_eq!(txt("money", "-$92,233,720,368,547,758.08"), Value::text("-92233720368547758.08"));
        assert_eq!(txt("money", "$0.00"), Value::text("0.00"));
        assert_eq!(txt("money", "-$0.05"), Value::text("-0.05"));
        assert_eq!(txt("money", "$1,234.50"), Value::text("1234.50"));
    }

    #[test]
    fn text_strings_and_cast_text() {
        assert_eq!(txt("text", ""), Value::text(""));
        assert_eq!(txt("character(4)", "ab  "), Value::text("ab  "));
        assert_eq!(txt("character varying(40)", "é😀\n"), Value::text("é😀\n"));
        assert_eq!(txt("jsonb", "{\"a\": 1}"), Value::text("{\"a\": 1}"));
        assert_eq!(txt("uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), Value::text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
        assert_eq!(txt("mood", "très content"), Value::text("très content"));
        // inet::text always shows the netmask; the output function leaves out a full one.
        assert_eq!(txt("inet", "::1"), Value::text("::1/128"));
        assert_eq!(txt("inet", "10.0.0.1"), Value::text("10.0.0.1/32"));
        assert_eq!(txt("inet", "192.168.0.1/24"), Value::text("192.168.0.1/24"));
        assert_eq!(txt("cidr", "10.0.0.0/8"), Value::text("10.0.0.0/8"));
        assert_eq!(txt("\"char\"", " "), Value::text(" "));
        assert!(decode_text("\"char\"", "\\351").unwrap_err().contains("non-ASCII"));
        assert!(decode_text("xml", "<a/>").unwrap_err().contains("XML declaration"));
    }

    #[test]
    fn text_dates_and_times() {
        assert_eq!(txt("date", "2026-01-02"), Value::text("2026-01-02"));
        assert_eq!(txt("date", "0044-03-15 BC"), Value::text("-000043-03-15"));
        assert_eq!(txt("date", "0001-12-31 BC"), Value::text("0000-12-31"));
        assert_eq!(txt("date", "10000-01-01"), Value::text("+010000-01-01"));
        assert_eq!(txt("date", "-infinity"), Value::text("-infinity"));
        let tz = "timestamp with time zone";
        assert_eq!(txt(tz, "2026-01-02 03:04:05.123456+00"), Value::text("2026-01-02T03:04:05.123456Z"));
        assert_eq!(txt(tz, "2026-01-02 03:04:05.12+00"), Value::text("2026-01-02T03:04:05.120000Z"));
        assert_eq!(txt(tz, "2026-01-02 03:04:05+00"), Value::text("2026-01-02T03:04:05.000000Z"));
        // Another zone is converted (a session outside the contract still gets UTC).
        assert_eq!(txt(tz, "2026-01-02 09:04:05.5+06"), Value::text("2026-01-02T03:04:05.500000Z"));
        assert_eq!(txt(tz, "2026-01-01 20:00:00-05:30:15"), Value::text("2026-01-02T01:30:15.000000Z"));
        assert_eq!(txt(tz, "4714-11-24 00:00:00+00 BC"), Value::text("-004713-11-24T00:00:00.000000Z"));
        assert_eq!(txt(tz, "294276-12-31 23:59:59.999999+00"), Value::text("+294276-12-31T23:59:59.999999Z"));
        assert_eq!(txt(tz, "infinity"), Value::text("infinity"));
        assert_eq!(txt("timestamp(3) with time zone", "2026-01-02 03:04:05.123+00"), Value::text("2026-01-02T03:04:05.123000Z"));
        let ts = "timestamp without time zone";
        assert_eq!(txt(ts, "0044-03-15 12:00:00 BC"), Value::text("-000043-03-15T12:00:00.000000"));
        assert_eq!(txt(ts, "10000-01-01 00:00:00"), Value::text("+010000-01-01T00:00:00.000000"));
        assert_eq!(txt(ts, "-infinity"), Value::text("-infinity"));
        assert_eq!(txt("time without time zone", "24:00:00"), Value::text("24:00:00.000000"));
        assert_eq!(txt("time(2) without time zone", "13:07:09.00005"), Value::text("13:07:09.000050"));
        assert_eq!(txt("time with time zone", "04:05:06.789+05:30"), Value::text("04:05:06.789000+05:30"));
        assert_eq!(txt("time with time zone", "00:00:00-01"), Value::text("00:00:00.000000-01:00"));
        assert_eq!(txt("time with time zone", "12:00:00+05:30:15"), Value::text("12:00:00.000000+05:30:15"));
        assert_eq!(txt("interval", "P1Y2M3DT4H5M6.5S"), Value::text("P1Y2M3DT4H5M6.5S"));
        assert_eq!(txt("interval", "P-1Y-2M3DT-4H-5M-6.5S"), Value::text("P-1Y-2M3DT-4H-5M-6.5S"));
        assert_eq!(txt("interval year to month", "P1Y"), Value::text("P1Y"));
        assert_eq!(txt("interval", "PT0S"), Value::text("PT0S"));
        assert_eq!(txt("interval", "PT-0.5S"), Value::text("PT-0.5S"));
        assert_eq!(txt("interval", "P-178956970Y-8M"), Value::text("P-178956970Y-8M"));
    }

    #[test]
    fn text_arrays_as_array_to_json() {
        assert_eq!(txt("integer[]", "{}"), Value::text("[]"));
        assert_eq!(txt("integer[]", "{1,NULL,3}"), Value::text("[1,null,3]"));
        assert_eq!(txt("integer[]", "{{1,2},{3,4}}"), Value::text("[[1,2],[3,4]]"));
        assert_eq!(txt("integer[]", "[0:1]={7,8}"), Value::text("[7,8]"));
        assert_eq!(txt("integer[]", "[-2:-1][3:4]={{1,2},{3,4}}"), Value::text("[[1,2],[3,4]]"));
        assert_eq!(txt("integer[]", "{{{1}},{{2}}}"), Value::text("[[[1]],[[2]]]"));
        assert_eq!(txt("double precision[]", "{NaN,Infinity,-0,1e+308}"), Value::text(r#"["NaN","Infinity",-0,1e+308]"#));
        assert_eq!(txt("numeric(5,1)[]", "{1.5,-Infinity}"), Value::text(r#"[1.5,"-Infinity"]"#));
        assert_eq!(txt("boolean[]", "{t,f,NULL}"), Value::text("[true,false,null]"));
        assert_eq!(
            txt(
                "text[]",
                r#"{"a\"b","c,d","",NULL,"\\","NULL"," sp ","{x}","bell\b\f","é😀"}"#.replace("\\b\\f", "bell\u{8}\u{c}\u{1}").as_str()
            ),
            Value::text("[\"a\\\"b\",\"c,d\",\"\",null,\"\\\\\",\"NULL\",\" sp \",\"{x}\",\"bellbell\\b\\f\\u0001\",\"é😀\"]")
        );
        assert_eq!(txt("text[]", r#"{{"a b",NULL},{c,d}}"#), Value::text(r#"[["a b",null],["c","d"]]"#));
        assert_eq!(txt("json[]", r#"{"{\"n\": 1}","[1, 2.50]",null,"\"s\""}"#), Value::text(r#"[{"n": 1},[1, 2.50],null,"s"]"#));
        assert_eq!(txt("oid[]", "{0,4294967295}"), Value::text(r#"["0","4294967295"]"#));
        assert_eq!(txt("date[]", r#"{2026-01-02,"0044-03-15 BC",infinity}"#), Value::text(r#"["2026-01-02","0044-03-15 BC","infinity"]"#));
        assert_eq!(
            txt("timestamp without time zone[]", r#"{"2026-01-02 03:04:05.1","0044-03-15 12:00:00 BC",-infinity}"#),
            Value::text(r#"["2026-01-02T03:04:05.1","0044-03-15T12:00:00 BC","-infinity"]"#)
        );
        assert_eq!(
            txt("timestamp with time zone[]", r#"{"2026-01-02 03:04:05+00","4714-11-24 00:00:00+00 BC","2026-01-02 03:04:05+05:30"}"#),
            Value::text(r#"["2026-01-02T03:04:05+00:00","4714-11-24T00:00:00+00:00 BC","2026-01-02T03:04:05+05:30"]"#)
        );
        assert_eq!(txt("box[]", "{(1,1),(0,0);(3,3),(2,2)}"), Value::text(r#"["(1,1),(0,0)","(3,3),(2,2)"]"#));
        assert_eq!(txt("money[]", r#"{-$1.50,"$1,234.00"}"#), Value::text(r#"["-$1.50","$1,234.00"]"#));
        assert_eq!(txt("bytea[]", r#"{"\\x00ff","\\x"}"#), Value::text(r#"["\\x00ff","\\x"]"#));
        for bad in ["", "{", "{1", "{1,}", "{1}x", "[1:2={1,2}", "[a:b]={1}", "{\"a}", "{{1},2}", "{1,{2}}"] {
            let e = decode_text("integer[]", bad).unwrap_err();
            assert!(e.starts_with("integer[] value"), "{bad:?}: {e}");
        }
        assert!(decode_text("boolean[]", "{x}").is_err());
    }

    #[test]
    fn text_errors_name_the_type_and_value() {
        for (t, bad) in [
            ("bigint", "1.5"),
            ("bigint", "9223372036854775808"),
            ("double precision", "inf"),
            ("double precision", "0x1p3"),
            ("boolean", "true"),
            ("bytea", "\\000"),
            ("bytea", "\\x0"),
            ("date", "01/02/2026"),
            ("date", "2026-13-01"),
            ("date", "0000-01-01"),
            ("timestamp with time zone", "2026-01-02 03:04:05"),
            ("timestamp without time zone", "2026-01-02T03:04:05"),
            ("time without time zone", "3:04:05"),
            ("time without time zone", "03:04:05.1234567"),
            ("time with time zone", "03:04:05"),
            ("interval", "1 year"),
            ("interval", "P1M1Y"),
            ("interval", "PT"),
            ("interval", "P1.5Y"),
            ("uuid", "a0eebc999c0b4ef8bb6d6bb9bd380a11"),
            ("money", "1.50"),
            ("money", "$1.5"),
        ] {
            let e = decode_text(t, bad).expect_err(bad);
            assert!(e.starts_with(&format!("{t} value {bad:?}")), "{e}");
        }
    }

    #[test]
    fn arrays_of_user_types_are_refused_by_name() {
        for t in ["mood[]", "posint[]", "\"My Schema\".mood[]", "xml[]", "record[]", "hstore[]"] {
            let e = text_decodable(t).unwrap_err();
            assert!(e.starts_with(t) && e.contains("arrays of"), "{e}");
            assert_eq!(decode_text(t, "{}").unwrap_err(), e);
        }
        assert!(text_decodable("xml").unwrap_err().contains("declaration"));
        for t in [
            "integer[]",
            "character varying(5)[]",
            "timestamp(3) with time zone[]",
            "\"char\"[]",
            "bit(4)[]",
            "mood",
            "numeric",
            "inet",
            "interval",
        ] {
            assert_eq!(text_decodable(t), Ok(()), "{t}");
        }
        assert_eq!(SESSION_SETTINGS.len(), 6);
    }

    /// `us` since 2000 as PostgreSQL prints a timestamp with DateStyle ISO (and TimeZone UTC).
    fn pg_timestamp_text(us: i64, tz: bool) -> String {
        let days = us.div_euclid(US_PER_DAY) + PG_EPOCH_DAYS;
        let clock = us.rem_euclid(US_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        let mut s = format!("{:04}-{m:02}-{d:02} {}", if y <= 0 { 1 - y } else { y }, format_time(clock));
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
        if tz {
            s.push_str("+00");
        }
        if y <= 0 {
            s.push_str(" BC");
        }
        s
    }

    /// array_out's quoting of one element.
    fn pg_array_element(v: &Option<String>) -> String {
        let Some(s) = v else { return "NULL".into() };
        let quote = s.is_empty()
            || s.eq_ignore_ascii_case("NULL")
            || s.chars().any(|c| matches!(c, '"' | '\\' | '{' | '}' | ',' | ' ' | '\t' | '\n' | '\r' | '\u{b}' | '\u{c}'));
        if !quote {
            return s.clone();
        }
        let mut out = String::from('"');
        for c in s.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
        out
    }

    proptest! {
        #[test]
        fn intervals_round_trip(us: i64, days: i32, months: i32) {
            let text = format_interval(us, days, months);
            prop_assert_eq!(parse_interval(&text), Some((us, days, months)));
        }

        #[test]
        fn timestamps_read_as_the_binary_decoder_prints(us in -211_813_488_000_000_000i64..9_223_371_331_200_000_000, tz: bool) {
            let text = pg_timestamp_text(us, tz);
            let source_type = if tz { "timestamp with time zone" } else { "timestamp without time zone" };
            prop_assert_eq!(decode_text(source_type, &text), Ok(Value::Text(format_timestamp(us, tz))), "{}", text);
            let date = text.split(' ').next().unwrap().to_string() + if text.ends_with(" BC") { " BC" } else { "" };
            prop_assert_eq!(decode_text("date", &date), Ok(Value::Text(format_date((us.div_euclid(US_PER_DAY)) as i32))));
        }

        #[test]
        fn times_round_trip(us in 0i64..=US_PER_DAY, zone in -57_599i32..=57_599) {
            let t = format_time(us);
            let pg = t.trim_end_matches('0').trim_end_matches('.').to_string();
            prop_assert_eq!(decode_text("time without time zone", &pg), Ok(Value::Text(t)));
            let tt = format_timetz(us, zone);
            let pg = format!("{}{}", pg, &tt[15..]);
            prop_assert_eq!(decode_text("time with time zone", &pg), Ok(Value::Text(tt)));
        }

        #[test]
        fn floats_round_trip(bits: u64, bits4: u32) {
            let f = f64::from_bits(bits);
            let g = f32::from_bits(bits4);
            if !f.is_nan() && f.is_finite() {
                let Ok(Value::Real(back)) = decode_text("double precision", &format!("{f:e}")) else { panic!("{f:e}") };
                prop_assert_eq!(back.to_bits(), f.to_bits());
            }
            if !g.is_nan() && g.is_finite() {
                let Ok(Value::Real(back)) = decode_text("real", &format!("{g:e}")) else { panic!("{g:e}") };
                prop_assert_eq!(back.to_bits(), f64::from(g).to_bits());
            }
        }

        #[test]
        fn text_arrays_as_json(
            rows in proptest::collection::vec(
                proptest::collection::vec(proptest::option::of("[a-z\"\\\\{}, \t\n\u{1}é😀]{0,6}|NULL|null"), 1..4usize), 1..4usize),
            nested: bool,
            lower in -3i32..3,
        ) {
            // Every sub-array has the same length, as PostgreSQL requires.
            let width = rows[0].len();
            let rows: Vec<Vec<Option<String>>> = rows.into_iter().map(|mut r| { r.resize(width, None); r }).collect();
            let rows = if nested { rows } else { rows[..1].to_vec() };
            let lit = |r: &Vec<Option<String>>| format!("{{{}}}", r.iter().map(pg_array_element).collect::<Vec<_>>().join(","));
            let json = |r: &Vec<Option<String>>| {
                let cells: Vec<String> = r.iter().map(|v| match v {
                    None => "null".to_string(),
                    Some(s) => { let mut o = String::new(); pg_json_string(s, &mut o); o }
                }).collect();
                format!("[{}]", cells.join(","))
            };
            let (mut text, want) = if nested {
                (format!("{{{}}}", rows.iter().map(lit).collect::<Vec<_>>().join(",")), format!("[{}]", rows.iter().map(json).collect::<Vec<_>>().join(",")))
            } else {
                (lit(&rows[0]), json(&rows[0]))
            };
            if lower != 1 {
                let dims = if nested { format!("[{lower}:{}][1:{width}]", lower + rows.len() as i32 - 1) } else { format!("[{lower}:{}]", lower + width as i32 - 1) };
                text = format!("{dims}={text}");
            }
            prop_assert_eq!(decode_text("text[]", &text), Ok(Value::Text(want)), "{}", text);
        }
    }
}
