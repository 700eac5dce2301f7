//! The one deadline helper: every wait on something outside the object (a socket, a fetch, a
//! D1 binding) goes through `within`, so no source operation can hang a run.

use futures_util::future::{select, Either};
use std::future::Future;
use std::time::Duration;
use worker::Delay;

/// Connecting includes DNS, TCP, TLS and auth (and for MySQL the session set-up); an origin
/// that takes longer is treated as down.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// `f`'s output, or `None` when `limit` passed first (then `f` is dropped).
pub async fn within<T>(limit: Duration, f: impl Future<Output = T>) -> Option<T> {
    match select(Box::pin(f), Box::pin(Delay::from(limit))).await {
        Either::Left((r, _)) => Some(r),
        Either::Right(_) => None,
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}
