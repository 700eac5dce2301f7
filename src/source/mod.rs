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

/// One page of rows as the replica's upsert statement reads them (see `Source::fetch_batch`).
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedPage {
    /// JSONB arrays of row arrays (`batch::JsonbBatch`), in keyset order.
    pub batches: Vec<Vec<u8>>,
    pub rows: usize,
    /// Every value of the page's last row, for its checkpoint and cursor.
    pub last: Option<Vec<Value>>,
    /// The first column that carried a blob its replica column does not read as one: a source
    /// contradicting its own schema, which the copy refuses.
    pub misplaced: Option<usize>,
}

impl EncodedPage {
    pub fn from_rows(mut rows: Vec<Vec<Value>>, columns: &[Column], max_bytes: usize) -> Self {
        let mut batch = crate::batch::JsonbBatch::new(columns, max_bytes);
        crate::batch::Cells::rows_of(&mut batch, &rows);
        EncodedPage::finish(batch, rows.pop())
    }

    pub fn finish(batch: crate::batch::JsonbBatch, last: Option<Vec<Value>>) -> Self {
        let (rows, misplaced) = (batch.rows(), batch.misplaced());
        EncodedPage { batches: batch.finish(), rows, last, misplaced }
    }
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
    /// The rows `fetch_page` reads, already written as the replica's batches of at most
    /// `max_bytes` each (`batch::JsonbBatch`), and the last row as values for the checkpoint.
    /// A source that knows its wire format overrides this to write cells without `Value`s;
    /// both ways must write the same batches.
    async fn fetch_batch(&mut self, page: &PageRequest<'_>, max_bytes: usize) -> Result<EncodedPage> {
        let rows = self.fetch_page(page).await?;
        Ok(EncodedPage::from_rows(rows, page.columns, max_bytes))
    }
    /// How many rows have NULL in `column` (they cannot be reached by a keyset on it).
    async fn count_nulls(&mut self, table: &TableName, column: &Column) -> Result<u64>;
    /// Counts the rows of each key range (`key`: the primary-key columns; keys compared in the
    /// replica's order, see `dialect::Dialect::range_column`) and returns `(index, count)` for the
    /// ranges whose count is not `rows[index]`, the replica's. Many ranges per round trip.
    async fn count_key_ranges(&mut self, table: &TableName, key: &[Column], ranges: &[KeyRange], rows: &[u64])
        -> Result<Vec<(usize, u64)>>;
    /// The indices of the `keys` that have no row, by the origin's own equality (its collation).
    async fn absent_keys(&mut self, table: &TableName, key: &[Column], keys: &[Vec<Value>]) -> Result<Vec<usize>>;
    /// The origin's change feed (PostgreSQL logical decoding, the MySQL binlog), for cdc
    /// configs. Origins without one refuse every operation.
    async fn feed(&mut self, op: FeedOp<'_>) -> Result<FeedAnswer> {
        let _ = op;
        Err(crate::error::Error::bad_request(format!(
            "{} has no change feed: mode \"cdc\" needs a postgres or mysql source",
            self.describe_origin()
        )))
    }
    /// How the change feed's text values (`Datum::Text`) become the values a copy stores;
    /// `None` for feeds that send only `Datum::Value`.
    fn text_decoder(&self) -> Option<TextDecoder> {
        None
    }
    /// How the change feed orders its positions (`Change::Begin`/`Commit`, `FeedOp` positions):
    /// PostgreSQL LSNs unless the origin says otherwise.
    fn position_order(&self) -> PositionOrder {
        postgres::lsn::at_or_after
    }
    /// The value every existing row of `table` holds in `column`, a column the origin just
    /// added, when the origin filled it with a constant (its default) without logging a change
    /// per row; `None` when that is not known (an expression default, a generated column, an
    /// implicit default): the table is then copied afresh.
    async fn added_column_value(&mut self, table: &TableName, column: &Column) -> Result<Option<Value>> {
        let _ = (table, column);
        Ok(None)
    }
    /// Why the change feed cannot carry `column`'s values exactly, if it cannot (then a cdc
    /// config must leave the column out).
    fn feed_column_check(&self, column: &Column) -> std::result::Result<(), String> {
        let _ = column;
        Ok(())
    }
}

/// Whether change-feed position `a` is at or after `b`. Unreadable positions are never
/// "after": the change is applied again, which upserts and deletes make harmless.
pub type PositionOrder = fn(&str, &str) -> bool;

/// One column value in a change feed message.
#[derive(Debug, Clone, PartialEq)]
pub enum Datum<'a> {
    Null,
    /// A value the origin did not send because it did not change (a TOASTed value).
    Unchanged,
    /// Text for the source's `text_decoder` (pgoutput).
    Text(&'a str),
    /// A value the source already mapped as its copy does (binlog rows, which arrive binary).
    Value(Value),
}

/// One message of a change feed, in commit order. Relations are named by the id the feed
/// gives them; a `Relation` message precedes the first change of each in every read.
#[derive(Debug, Clone, PartialEq)]
pub enum Change<'a> {
    Relation {
        id: u32,
        columns: Vec<String>,
    },
    /// The start of a transaction; `lsn` is where its commit record is (PostgreSQL's
    /// `final_lsn`), which an earlier transaction's `Commit` end position never exceeds.
    Begin {
        lsn: String,
    },
    Insert {
        rel: u32,
        new: Vec<Datum<'a>>,
    },
    /// `key`: the old key (or whole old row), when the origin sends it (the key changed, or
    /// the table's replica identity is FULL).
    Update {
        rel: u32,
        key: Option<Vec<Datum<'a>>>,
        new: Vec<Datum<'a>>,
    },
    Delete {
        rel: u32,
        key: Vec<Datum<'a>>,
    },
    Truncate {
        rels: Vec<u32>,
    },
    /// The end of a transaction: `lsn` is the position just past its commit.
    Commit {
        lsn: String,
    },
}

/// Turns one text value of a change feed into the value a copy of the column stores.
pub type TextDecoder = fn(&Column, &str) -> std::result::Result<Value, String>;

/// What the origin says about the slot a change feed reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SlotInfo {
    /// Changes up to here are confirmed (`confirmed_flush_lsn`).
    pub confirmed_lsn: Option<String>,
    /// WAL the slot holds back, in bytes.
    pub lag_bytes: Option<i64>,
    /// `reserved`, `extended`, `unreserved` or `lost`.
    pub wal_status: Option<String>,
}

/// One operation on an origin's change feed (see `Source::feed`).
pub enum FeedOp<'a> {
    /// Checks what the feed needs for `tables` (settings, rights, keys); answers the
    /// tables' ids as `Change::Relation` will name them.
    Check {
        tables: &'a [TableName],
    },
    /// Makes sure the publication holds `tables`: creates it when missing, adds the tables it
    /// lacks when `may_alter` (it is the replica's), and otherwise fails naming what is
    /// missing. Answers whether it was created now.
    Publish {
        publication: &'a str,
        tables: &'a [TableName],
        may_alter: bool,
    },
    Unpublish {
        publication: &'a str,
        table: &'a TableName,
    },
    DropPublication {
        publication: &'a str,
    },
    /// What the origin says about the slot; `position`: where the replica is in the feed
    /// (origins without slot objects, the MySQL binlog, judge from it).
    Slot {
        slot: &'a str,
        position: Option<&'a str>,
    },
    CreateSlot {
        slot: &'a str,
    },
    DropSlot {
        slot: &'a str,
    },
    CurrentPosition,
    /// Streams the slot's changes, whole transactions, from `from` (the position the replica
    /// committed; a slot knows its own) up to `upto` and about `max` changes, into `sink`.
    /// The slot does not move.
    Read {
        slot: &'a str,
        from: &'a str,
        publication: &'a str,
        upto: &'a str,
        max: i32,
        sink: &'a mut dyn FnMut(Change<'_>) -> Result<()>,
    },
    /// Confirms the slot up to a position.
    Advance {
        slot: &'a str,
        to: &'a str,
    },
    /// Writes a little WAL, so that a quiet database's slot can move its restart point.
    Keepalive,
}

/// An answer to a `FeedOp`.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedAnswer {
    Done,
    Ids(Vec<u32>),
    Created(bool),
    Slot(Option<SlotInfo>),
    Position(String),
}
