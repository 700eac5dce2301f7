//! The replica's SQLite as the engine sees it. The Durable Object implements it over
//! `ctx.storage.sql` (worker::adapter), tests over rusqlite; the engine cannot tell them apart.

use crate::error::Result;
use crate::value::Value;

/// A statement with its parameters. Parameters are text, blobs, NULL, reals, or integers
/// within ±2^53: the Durable Object binds numbers as doubles, so exact data never travels
/// as a parameter number (see `replica_sql::upsert_batch`).
#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    pub sql: String,
    pub params: Vec<Value>,
}

impl Stmt {
    pub fn new(sql: impl Into<String>, params: Vec<Value>) -> Self {
        Stmt { sql: sql.into(), params }
    }
}

/// Rows of a read-only user query, already in their JSON response form.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryOutput {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<serde_json::Value>>,
    pub rows_read: u64,
    pub rows_written: u64,
}

pub trait Store {
    /// Runs one statement; returns its rows. Integers may come back as `Value::Real` when they
    /// crossed JS: read exact values as `CAST(x AS TEXT)`.
    fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>>;
    fn execute(&self, sql: &str, params: &[Value]) -> Result<()> {
        self.query(sql, params).map(|_| ())
    }
    /// Runs all statements atomically: all of them commit, or none.
    fn transaction(&self, stmts: &[Stmt]) -> Result<()>;
    /// A user's read query, answered in the JSON shape of `/query/raw`.
    fn query_json(&self, sql: &str, params: &[serde_json::Value]) -> Result<QueryOutput>;
}

/// The largest integer a JS number holds exactly.
pub const MAX_SAFE_INTEGER: i64 = 9_007_199_254_740_991;
