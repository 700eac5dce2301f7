//! edge-replica: a Durable Object that keeps tables of external databases in its own SQLite.
//!
//! Everything outside `worker` is free of the Workers runtime and tested natively; `worker`
//! is the thin adapter that binds it to JS (storage, sockets, fetch, alarms).

pub mod config;
pub mod error;
pub mod ident;
pub mod schedule;
pub mod source;
pub mod time;
pub mod value;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
