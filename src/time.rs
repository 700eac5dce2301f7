//! Civil-calendar arithmetic for ISO-8601 text, without a date crate: the few functions the
//! replica needs, exact for every date in the proleptic Gregorian calendar.

/// (year, month, day) of the day `days` after 1970-01-01 (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of a civil date (inverse of `civil_from_days`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// `YYYY-MM-DDTHH:MM:SS.ffffff` in one append, for a year in 0..=9999, `secs` of the day
/// (below 86,400) and `micros` below 1,000,000: the common case of every timestamp cell of a
/// copy, where seven `push_padded` calls showed in the worker's profiles.
pub fn push_datetime_micros(out: &mut String, year: u32, month: u32, day: u32, secs: u32, micros: u32) {
    let mut b = *b"0000-00-00T00:00:00.000000";
    // Two stores, not `copy_from_slice`: the wasm build (opt-level "s") calls a function for it.
    let mut two = |at: usize, v: u32| {
        let v = (v % 100) as usize * 2;
        b[at] = PAIRS[v];
        b[at + 1] = PAIRS[v + 1];
    };
    two(0, year / 100);
    two(2, year);
    two(5, month);
    two(8, day);
    two(11, secs / 3600);
    two(14, secs / 60 % 60);
    two(17, secs % 60);
    two(20, micros / 10_000);
    two(22, micros / 100);
    two(24, micros);
    // ASCII digits and separators: always UTF-8.
    out.push_str(std::str::from_utf8(&b).unwrap_or_default());
}

/// Appends `v` in decimal, zero-padded to `width` digits. Timestamps are formatted per cell
/// of every synced row, where `format!`'s machinery showed up in profiles; two digits per
/// division halves the divisions again.
pub fn push_padded(out: &mut String, v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    let mut n = v;
    while n >= 10 {
        let r = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[r..r + 2]);
    }
    if n > 0 || i == buf.len() {
        i -= 1;
        buf[i] = b'0' + n as u8;
    }
    let start = i.min(buf.len() - width.min(buf.len()));
    out.extend(buf[start..].iter().map(|&b| char::from(b)));
}

/// ISO-8601 year: four digits, a sign beyond 0000..9999 (ISO 8601 expanded representation).
pub fn format_year(y: i64) -> String {
    if (0..=9999).contains(&y) {
        format!("{y:04}")
    } else if y > 9999 {
        format!("+{y}")
    } else {
        format!("-{:04}", -y)
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffff` (+ `Z` when `utc`) for microseconds since the Unix epoch.
pub fn format_timestamp_micros(us: i64, utc: bool) -> String {
    let days = us.div_euclid(86_400_000_000);
    let rem = us.rem_euclid(86_400_000_000);
    let (y, m, d) = civil_from_days(days);
    let secs = rem / 1_000_000;
    let frac = rem % 1_000_000;
    format!(
        "{}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}{}",
        format_year(y),
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        if utc { "Z" } else { "" }
    )
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for bookkeeping timestamps (`created_at`, `last_sync_at`).
pub fn format_epoch_ms(ms: i64) -> String {
    let s = format_timestamp_micros(ms * 1000, true);
    // Bookkeeping times are milliseconds; drop the three always-zero digits.
    format!("{}Z", &s[..s.len() - 4])
}

/// Parses `YYYY-MM-DD[T| ]HH:MM:SS[.f{1,9}][Z|+HH[:MM]|-HH[:MM]]` (or a bare date) into
/// microseconds since the epoch; `None` for anything else. Used for lookback arithmetic on
/// timestamp cursors, which the sources hand over in this form.
pub fn parse_timestamp_micros(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if t.bytes().all(|c| c.is_ascii_digit()) && !t.is_empty() {
            t.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)? as u32, num(8..10)? as u32);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut us = days_from_civil(y, mo, d) * 86_400_000_000;
    if b.len() == 10 {
        return Some(us);
    }
    if !(b[10] == b'T' || b[10] == b' ') || b.len() < 19 || b[13] != b':' || b[16] != b':' {
        return None;
    }
    us += (num(11..13)? * 3600 + num(14..16)? * 60 + num(17..19)?) * 1_000_000;
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &s[start..i];
        if digits.is_empty() {
            return None;
        }
        let mut frac: i64 = digits.chars().take(6).collect::<String>().parse().ok()?;
        for _ in digits.len().min(6)..6 {
            frac *= 10;
        }
        us += frac;
    }
    match &s[i..] {
        "" | "Z" => Some(us),
        tz => {
            let sign = match tz.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let t = tz[1..].replace(':', "");
            if t.len() != 2 && t.len() != 4 || !t.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let h: i64 = t[..2].parse().ok()?;
            let m: i64 = if t.len() == 4 { t[2..].parse().ok()? } else { 0 };
            Some(us - sign * (h * 3600 + m * 60) * 1_000_000)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(10_957), (2000, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-25_508), (1900, 3, 1));
        assert_eq!(civil_from_days(-719_162), (1, 1, 1));
        assert_eq!(civil_from_days(2_932_896), (9999, 12, 31));
    }

    #[test]
    fn padded() {
        let mut s = String::new();
        for (v, w) in [(0, 2), (7, 2), (12, 2), (123, 2), (5, 6), (0, 0), (u64::MAX, 4)] {
            push_padded(&mut s, v, w);
            s.push(',');
        }
        assert_eq!(s, "00,07,12,123,000005,0,18446744073709551615,");
    }

    #[test]
    fn formats() {
        assert_eq!(format_timestamp_micros(1_767_323_045_123_456, true), "2026-01-02T03:04:05.123456Z");
        assert_eq!(format_timestamp_micros(-1, false), "1969-12-31T23:59:59.999999");
        assert_eq!(format_epoch_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_year(-44), "-0044");
        assert_eq!(format_year(12345), "+12345");
    }

    #[test]
    fn parses() {
        let t = 1_767_323_045_123_456;
        assert_eq!(parse_timestamp_micros("2026-01-02T03:04:05.123456Z"), Some(t));
        assert_eq!(parse_timestamp_micros("2026-01-02 03:04:05.123456"), Some(t));
        assert_eq!(parse_timestamp_micros("2026-01-02 05:04:05.123456+02"), Some(t));
        assert_eq!(parse_timestamp_micros("2026-01-02T03:04:05.1234569Z"), Some(t));
        assert_eq!(parse_timestamp_micros("2026-01-02"), Some(t - 11_045_123_456));
        for bad in ["", "2026-13-01", "x026-01-01", "2026-01-02T03:04", "2026-01-02T03:04:05.Z", "2026-01-02T03:04:05+1"] {
            assert_eq!(parse_timestamp_micros(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn days_round_trip(d in -1_000_000i64..3_000_000) {
            let (y, m, dd) = civil_from_days(d);
            prop_assert_eq!(days_from_civil(y, m, dd), d);
        }

        #[test]
        fn padded_matches_format(v in any::<u64>(), w in 0usize..=20) {
            let mut s = String::new();
            push_padded(&mut s, v, w);
            prop_assert_eq!(s, format!("{v:0w$}"));
        }

        #[test]
        fn timestamp_round_trip(us in 0i64..253_402_300_799_999_999) {
            let s = format_timestamp_micros(us, true);
            prop_assert_eq!(parse_timestamp_micros(&s), Some(us));
        }
    }
}
