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

use crate::time::{civil_from_days, push_padded};

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
    match days_since_2000 {
        i32::MAX => "infinity".into(),
        i32::MIN => "-infinity".into(),
        d => {
            let mut s = String::with_capacity(10);
            push_date(&mut s, d.into());
            s
        }
    }
}

/// `us` since 2000-01-01 00:00:00 (UTC for timestamptz, whatever the session's time zone).
pub(crate) fn format_timestamp(us: i64, utc: bool) -> String {
    match us {
        i64::MAX => "infinity".into(),
        i64::MIN => "-infinity".into(),
        us => {
            let mut s = String::with_capacity(27);
            push_date(&mut s, us.div_euclid(US_PER_DAY));
            s.push('T');
            push_clock(&mut s, us.rem_euclid(US_PER_DAY));
            if utc {
                s.push('Z');
            }
            s
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

#[cfg(test)]
mod tests {
    use super::*;
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
}
