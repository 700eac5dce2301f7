//! What the sync engine needs from an origin database, and nothing about how it is reached.
//!
//! Each origin lives in its own module; the IO (sockets, fetch) is handed in by the worker
//! adapter, so every source here also runs natively in tests against real servers.

pub mod dialect;
pub mod mysql;
pub mod postgres;
pub mod sqlite_family;
pub mod url;

use crate::config::SourceType;
use crate::error::Result;
use crate::value::Value;

/// How a column is stored in the replica: decides the declared SQLite type (and so its affinity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Affinity {
    Integer,
    Real,
    Text,
    Blob,
    /// Values of mixed storage classes (unsigned 64-bit above i64::MAX as text, SQLite-family
    /// columns): declared with no type, so SQLite converts nothing.
    Any,
}

impl Affinity {
    pub fn declared_type(self) -> &'static str {
        match self {
            Affinity::Integer => "INTEGER",
            Affinity::Real => "REAL",
            Affinity::Text => "TEXT",
            Affinity::Blob => "BLOB",
            Affinity::Any => "",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Column {
    /// The real name at the origin (case as stored in its catalog).
    pub name: String,
    /// The origin's type name as its catalog spells it (`numeric(12,2)`, `timestamp with time zone`).
    pub source_type: String,
    pub affinity: Affinity,
    pub nullable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    pub columns: Vec<Column>,
    /// Primary-key column names in key order; empty when the origin has none.
    pub primary_key: Vec<String>,
}

/// A table at the origin, names already resolved (folded or quoted-as-given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    pub schema: Option<String>,
    pub name: String,
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// One page of a keyset scan: rows ordered by `columns[order[..]]` strictly after `after`
/// (or, with no `after`, at or after `from` on the first order column, or from the start).
#[derive(Debug, Clone)]
pub struct PageRequest<'a> {
    pub table: &'a TableName,
    pub columns: &'a [Column],
    /// Indices into `columns`: the keyset, most significant first (cursor column, then key).
    pub order: &'a [usize],
    pub after: Option<&'a [Value]>,
    pub from: Option<&'a Value>,
    pub limit: usize,
}

/// Primary keys above `lo` (from the first key when `None`) up to and including `hi`, in the
/// replica's order: the unit delete reconciliation counts (see `crate::reconcile`).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRange {
    pub lo: Option<Vec<Value>>,
    pub hi: Vec<Value>,
}

/// An origin database. Methods take `&mut self` because a connection is a single conversation.
#[allow(async_fn_in_trait)]
pub trait Source {
    /// Names the origin in messages (`postgres via url_secret PG_URL`), never with credentials.
    fn describe_origin(&self) -> String;
    /// The origin's kind, which decides how the config's identifiers are quoted and folded.
    fn source_type(&self) -> SourceType;
    /// Columns (in table order) and primary key of `table`; a clear error if it does not exist.
    async fn table_schema(&mut self, table: &TableName) -> Result<TableSchema>;
    /// Rows of one page, each with one value per requested column, in keyset order.
    async fn fetch_page(&mut self, page: &PageRequest<'_>) -> Result<Vec<Vec<Value>>>;
    /// How many rows have NULL in `column` (they cannot be reached by a keyset on it).
    async fn count_nulls(&mut self, table: &TableName, column: &Column) -> Result<u64>;
    /// Counts the rows of each key range (`key`: the primary-key columns; keys compared in the
    /// replica's order, see `dialect::Dialect::range_column`) and returns `(index, count)` for the
    /// ranges whose count is not `rows[index]`, the replica's. Many ranges per round trip.
    async fn count_key_ranges(&mut self, table: &TableName, key: &[Column], ranges: &[KeyRange], rows: &[u64])
        -> Result<Vec<(usize, u64)>>;
    /// The indices of the `keys` that have no row, by the origin's own equality (its collation).
    async fn absent_keys(&mut self, table: &TableName, key: &[Column], keys: &[Vec<Value>]) -> Result<Vec<usize>>;
}
