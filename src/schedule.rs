//! When each config is due next. Pure arithmetic on epoch milliseconds.

/// Seconds to wait after the `failures`-th consecutive failure (1-based):
/// `min(interval * 2^(failures-1), max(3600, interval))`, so a failing source is retried
/// ever more rarely but never less often than hourly (or its own interval, if longer).
pub fn backoff_seconds(interval_seconds: i64, failures: i64) -> i64 {
    let cap = interval_seconds.max(3600);
    let shift = (failures.max(1) - 1).min(62) as u32;
    interval_seconds.checked_mul(1i64 << shift).map_or(cap, |d| d.min(cap))
}

/// Due time after a run that ended with `status` at `now_ms`.
pub fn next_due_ms(now_ms: i64, interval_seconds: i64, status: RunOutcome, failures: i64) -> i64 {
    match status {
        RunOutcome::Ok => now_ms + interval_seconds * 1000,
        // The checkpoint is saved; resume right away rather than waiting a whole interval.
        RunOutcome::Partial => now_ms,
        RunOutcome::Error => now_ms + backoff_seconds(interval_seconds, failures) * 1000,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Ok,
    Partial,
    Error,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn doubles_then_caps_at_an_hour() {
        let got: Vec<i64> = (1..=10).map(|n| backoff_seconds(60, n)).collect();
        assert_eq!(got, [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600, 3600]);
        assert_eq!(backoff_seconds(7200, 5), 7200);
        assert_eq!(backoff_seconds(1, 1000), 3600);
    }

    #[test]
    fn next_due() {
        assert_eq!(next_due_ms(1000, 10, RunOutcome::Ok, 0), 11_000);
        assert_eq!(next_due_ms(1000, 10, RunOutcome::Partial, 0), 1000);
        assert_eq!(next_due_ms(1000, 10, RunOutcome::Error, 2), 21_000);
    }

    proptest! {
        #[test]
        fn backoff_is_bounded_and_monotonic(interval in 1i64..1_000_000, n in 1i64..200) {
            let a = backoff_seconds(interval, n);
            let b = backoff_seconds(interval, n + 1);
            prop_assert!(a >= interval.min(3600).min(a));
            prop_assert!(a <= interval.max(3600));
            prop_assert!(b >= a);
        }
    }
}
