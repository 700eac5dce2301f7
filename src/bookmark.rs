//! Bookmarks: the position of the replica's applied writes, as `X-Replica-Bookmark`,
//! `meta.bookmark` and a run record's `bookmark` show it.
//!
//! The position is a counter in the bookkeeping that every committed change of a replica table
//! bumps in the same transaction (`catalog::BUMP_BOOKMARK`): a batch, a swap, a table dropped
//! with its config. A bookmark is that counter as fixed-width decimal text, so that bookmarks
//! sort as text in the order the changes were applied, as the contract asks (and as D1's do).
//! Clients treat them as opaque.

/// Digits in a bookmark: enough for any `i64` counter, so text order is numeric order.
const WIDTH: usize = 20;

/// The bookmark of position `seq` (≥ 0).
pub fn format(seq: i64) -> String {
    format!("{:0WIDTH$}", seq.max(0))
}

/// The position a bookmark names, or `None` when the text is not a bookmark this replica
/// could have given (exactly 20 ASCII digits).
pub fn parse(text: &str) -> Option<i64> {
    if text.len() != WIDTH || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_order_is_the_order_of_positions() {
        let positions = [0, 1, 2, 9, 10, 11, 99, 100, 12_345, 9_007_199_254_740_991, i64::MAX];
        let texts: Vec<String> = positions.iter().map(|&p| format(p)).collect();
        for pair in texts.windows(2) {
            assert!(pair[0] < pair[1], "{} < {}", pair[0], pair[1]);
        }
        assert!(texts.iter().all(|t| t.len() == WIDTH));
        assert_eq!(format(0), "00000000000000000000");
        assert_eq!(format(42), "00000000000000000042");
        assert_eq!(format(i64::MAX), "09223372036854775807");
        // Every pair, not only neighbours: the order of texts is the order of numbers.
        for (a, ta) in positions.iter().zip(&texts) {
            for (b, tb) in positions.iter().zip(&texts) {
                assert_eq!(a.cmp(b), ta.cmp(tb), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn parse_takes_back_exactly_what_format_gives() {
        for p in [0, 1, 42, 1_000_000, i64::MAX] {
            assert_eq!(parse(&format(p)), Some(p));
        }
        for bad in [
            "",
            "42",
            "0000000000000000042",
            "000000000000000000042",
            "0000000000000000004a",
            " 0000000000000000042",
            "-0000000000000000042",
            "+0000000000000000042",
            "99999999999999999999",
            "０００００００００００００００００４２",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
