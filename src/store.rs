//! The replica's SQLite as the engine sees it. The Durable Object implements it over
//! `ctx.storage.sql` (worker::adapter), tests over rusqlite; the engine cannot tell them apart.

use crate::error::{Error, Result};
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
    /// The rows as one JSON array in the shape the caps asked for: arrays (`[[1,"a"]]`, as
    /// `/query/raw` returns them) or objects (`[{"id":1,"s":"a"}]`, keys as in a serde_json
    /// map: sorted, the last of equal names kept, as `/query` returns them).
    pub rows_json: String,
    pub rows_read: u64,
    pub rows_written: u64,
}

/// How the rows of a user query will be returned: as arrays (`/query/raw`) or as objects
/// keyed by column name (`/query`), whose JSON repeats every name in every row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowShape {
    Arrays,
    Objects,
}

/// Bounds on a user's read, checked while SQLite produces the rows: the store stops reading
/// at the first row past either bound. `None` is no bound (the admin token).
///
/// `max_bytes` bounds the UTF-8 length of the result's row array as the route returns it:
/// `[[1,"a"]]` is 9 bytes on `/query/raw`, `[{"id":1,"s":"a"}]` 18 on `/query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadCaps {
    pub max_rows: Option<u64>,
    pub max_bytes: Option<u64>,
    pub shape: RowShape,
}

impl ReadCaps {
    pub const NONE: ReadCaps = ReadCaps { max_rows: None, max_bytes: None, shape: RowShape::Arrays };

    /// The answer when the result has more rows than `max_rows`.
    pub fn too_many_rows(&self) -> Error {
        Error::bad_request(format!(
            "the result has more than {} rows, the limit QUERY_MAX_ROWS sets for client-token reads: \
             narrow the query (WHERE, LIMIT) or page through the rows",
            self.max_rows.unwrap_or(u64::MAX)
        ))
    }

    /// The answer when the result's JSON is larger than `max_bytes`.
    pub fn too_many_bytes(&self) -> Error {
        Error::bad_request(format!(
            "the result is larger than {} bytes of JSON, the limit QUERY_MAX_BYTES sets for client-token reads: \
             select fewer columns or rows, or page through them",
            self.max_bytes.unwrap_or(u64::MAX)
        ))
    }
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
    /// A user's read query, answered in the JSON shape of `/query/raw`; a result past `caps`
    /// is `ReadCaps::too_many_rows` / `too_many_bytes`, found without reading the rest of it,
    /// and leaves no statement open that would hold a table (a later swap must be able to drop it).
    fn query_json(&self, sql: &str, params: &[serde_json::Value], caps: &ReadCaps) -> Result<QueryOutput>;
}

/// The largest integer a JS number holds exactly.
pub const MAX_SAFE_INTEGER: i64 = 9_007_199_254_740_991;
