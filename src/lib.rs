//! edge-replica: a Durable Object that keeps tables of external databases in its own SQLite.
//!
//! Everything outside `worker` is free of the Workers runtime and tested natively; `worker`
//! is the thin adapter that binds it to JS (storage, sockets, fetch, alarms).

pub mod api;
pub mod auth;
pub mod batch;
pub mod bookmark;
pub mod catalog;
pub mod cdc;
pub mod config;
pub mod dashboard;
pub mod engine;
pub mod error;
#[cfg(test)]
mod fault_tests;
pub mod follow;
#[cfg(test)]
mod fuzz_tests;
pub mod ident;
pub mod metrics;
pub mod openapi;
pub mod query_guard;
pub mod reconcile;
pub mod replica_sql;
pub mod schedule;
pub mod source;
pub mod store;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;
pub mod time;
pub mod value;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(target_arch = "wasm32")]
mod worker;
