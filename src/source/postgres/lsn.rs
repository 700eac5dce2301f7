//! A position in PostgreSQL's write-ahead log, as `pg_lsn` spells it: two upper-case hex
//! numbers, the high and low 32 bits, without leading zeros (`0/16B3748`).
//!
//! CDC keeps it as the run cursor (`"cursor": "0/16B3748"`), passes it back to
//! `pg_replication_slot_advance` and compares it with commit LSNs to skip what was applied,
//! so the text form is the stored form and the ordering is the numeric one.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// `InvalidXLogRecPtr`: what pgoutput sends for a position it does not know.
    pub const INVALID: Lsn = Lsn(0);

    /// Bytes of WAL from `earlier` to `self` (0 when `earlier` is ahead).
    pub fn bytes_since(self, earlier: Lsn) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// Whether LSN `a` is at or after `b`, ordered as numbers, not as text (`1/0` is after
/// `0/FFFFFFFF`). Unreadable positions are never "after".
pub fn at_or_after(a: &str, b: &str) -> bool {
    matches!((a.parse::<Lsn>(), b.parse::<Lsn>()), (Ok(x), Ok(y)) if x >= y)
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseLsnError(String);

impl fmt::Display for ParseLsnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid LSN {:?}: expected two hex numbers of 1 to 8 digits as in \"0/16B3748\"", self.0)
    }
}

impl std::error::Error for ParseLsnError {}

/// Accepts what `pg_lsn_in` accepts: `X/Y`, each 1..=8 hex digits of either case.
impl FromStr for Lsn {
    type Err = ParseLsnError;
    fn from_str(s: &str) -> Result<Lsn, ParseLsnError> {
        let bad = || ParseLsnError(s.chars().take(40).collect());
        let (hi, lo) = s.split_once('/').ok_or_else(bad)?;
        let half = |h: &str| -> Result<u64, ParseLsnError> {
            if h.is_empty() || h.len() > 8 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            u64::from_str_radix(h, 16).map_err(|_| bad())
        };
        Ok(Lsn((half(hi)? << 32) | half(lo)?))
    }
}

impl serde::Serialize for Lsn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Lsn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Lsn, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_order_by_number_not_text() {
        assert!(at_or_after("1/0", "0/FFFFFFFF"));
        assert!(!at_or_after("0/9", "0/10"));
        assert!(at_or_after("0/10", "0/10"));
        assert!(!at_or_after("x", "0/0"));
    }
    use proptest::prelude::*;

    #[test]
    fn postgres_text_form() {
        assert_eq!(Lsn(0x16B3748).to_string(), "0/16B3748");
        assert_eq!(Lsn(0).to_string(), "0/0");
        assert_eq!(Lsn(u64::MAX).to_string(), "FFFFFFFF/FFFFFFFF");
        assert_eq!(Lsn(0x1_0000_0000).to_string(), "1/0");
        assert_eq!("0/16B3748".parse(), Ok(Lsn(0x16B3748)));
        assert_eq!("16/b374d848".parse(), Ok(Lsn(0x16_B374_D848)));
        assert_eq!("00000000/00000001".parse(), Ok(Lsn(1)));
    }

    #[test]
    fn refuses_what_pg_lsn_refuses() {
        for bad in ["", "/", "0/", "/0", "0", "0/0/0", "123456789/0", "0/123456789", "0/-1", "+0/1", " 0/1", "0/1 ", "g/0", "0x1/0"] {
            let e = bad.parse::<Lsn>().unwrap_err();
            assert!(e.to_string().contains("invalid LSN") && e.to_string().contains("0/16B3748"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn serde_as_text() {
        assert_eq!(serde_json::to_string(&Lsn(0x16B3748)).unwrap(), "\"0/16B3748\"");
        assert_eq!(serde_json::from_str::<Lsn>("\"A/1\"").unwrap(), Lsn(0xA_0000_0001));
        let e = serde_json::from_str::<Lsn>("\"A-1\"").unwrap_err().to_string();
        assert!(e.contains("invalid LSN"), "{e}");
        assert!(serde_json::from_str::<Lsn>("17").is_err());
    }

    #[test]
    fn distance() {
        assert_eq!(Lsn(0x1_0000_0010).bytes_since(Lsn(0xFFFF_FFF0)), 0x20);
        assert_eq!(Lsn(1).bytes_since(Lsn(2)), 0);
    }

    proptest! {
        #[test]
        fn round_trips(v: u64) {
            let s = Lsn(v).to_string();
            prop_assert_eq!(s.parse::<Lsn>(), Ok(Lsn(v)));
            prop_assert_eq!(s.to_ascii_uppercase(), s.clone());
            let (hi, lo) = s.split_once('/').unwrap();
            prop_assert!(hi == "0" || !hi.starts_with('0'));
            prop_assert!(lo == "0" || !lo.starts_with('0'));
            prop_assert_eq!(s.to_ascii_lowercase().parse::<Lsn>(), Ok(Lsn(v)));
        }

        #[test]
        fn orders_as_numbers(a: u64, b: u64) {
            let (la, lb) = (Lsn(a), Lsn(b));
            prop_assert_eq!(la.cmp(&lb), a.cmp(&b));
            let (pa, pb): (Lsn, Lsn) = (la.to_string().parse().unwrap(), lb.to_string().parse().unwrap());
            prop_assert_eq!(pa.cmp(&pb), a.cmp(&b));
        }
    }
}
