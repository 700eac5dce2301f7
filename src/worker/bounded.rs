//! A run's source operations, each bounded by the run's lock.
//!
//! The engine stops at its time budget only between pages, and a source can stop answering
//! in the middle of one: a table locked by a migration, a network path that drops packets.
//! Unbounded, such a run would hold the alarm handler forever (no other config syncs again)
//! and outlive its lock, so that a second run of the same config could start beside it.
//! Every operation therefore fails once the run's lock is about to expire.

use super::deadline::{now_ms, within};
use crate::config::SourceType;
use crate::engine::LOCK_GRACE_MS;
use crate::error::{Error, Result};
use crate::source::{
    Column, EncodedPage, FeedAnswer, FeedOp, KeyRange, PageRequest, PositionOrder, Source, TableName, TableSchema, TextDecoder,
};
use crate::value::Value;
use std::future::Future;
use std::time::Duration;

/// Room between the last possible source answer and the lock's expiry, for the batch write
/// and the run's bookkeeping.
const MARGIN_MS: i64 = 5_000;

pub struct Bounded<S> {
    inner: S,
    /// Epoch ms by which every source operation of this run must have answered.
    until_ms: i64,
}

impl<S> Bounded<S> {
    /// `started_ms` is when the run began (at or after it took its lock).
    pub fn new(inner: S, started_ms: i64, budget_ms: i64) -> Self {
        Bounded { inner, until_ms: started_ms + budget_ms + LOCK_GRACE_MS - MARGIN_MS }
    }
}

async fn bounded<T>(origin: &str, what: &str, until_ms: i64, f: impl Future<Output = Result<T>>) -> Result<T> {
    let left = until_ms - now_ms();
    let answer = if left > 0 { within(Duration::from_millis(left as u64), f).await } else { None };
    answer.unwrap_or_else(|| {
        Err(Error::at_origin(
            origin,
            format!("{what}: no answer before the run's time limit (is the table locked at the source, or the network path down?)"),
        ))
    })
}

impl<S: Source> Source for Bounded<S> {
    fn describe_origin(&self) -> String {
        self.inner.describe_origin()
    }
    fn source_type(&self) -> SourceType {
        self.inner.source_type()
    }
    async fn table_schema(&mut self, table: &TableName) -> Result<TableSchema> {
        let origin = self.inner.describe_origin();
        bounded(&origin, "reading the table's columns", self.until_ms, self.inner.table_schema(table)).await
    }
    async fn fetch_page(&mut self, page: &PageRequest<'_>) -> Result<Vec<Vec<Value>>> {
        let origin = self.inner.describe_origin();
        bounded(&origin, "reading a page of rows", self.until_ms, self.inner.fetch_page(page)).await
    }
    async fn fetch_batch(&mut self, page: &PageRequest<'_>, max_bytes: usize) -> Result<EncodedPage> {
        let origin = self.inner.describe_origin();
        bounded(&origin, "reading a page of rows", self.until_ms, self.inner.fetch_batch(page, max_bytes)).await
    }
    async fn feed(&mut self, op: FeedOp<'_>) -> Result<FeedAnswer> {
        let origin = self.inner.describe_origin();
        bounded(&origin, "reading the change feed", self.until_ms, self.inner.feed(op)).await
    }
    fn text_decoder(&self) -> Option<TextDecoder> {
        self.inner.text_decoder()
    }
    fn position_order(&self) -> PositionOrder {
        self.inner.position_order()
    }
    fn feed_column_check(&self, column: &Column) -> std::result::Result<(), String> {
        self.inner.feed_column_check(column)
    }
    async fn added_column_value(&mut self, table: &TableName, column: &Column) -> Result<Option<Value>> {
        let origin = self.inner.describe_origin();
        bounded(&origin, "reading an added column's default", self.until_ms, self.inner.added_column_value(table, column)).await
    }
    async fn count_nulls(&mut self, table: &TableName, column: &Column) -> Result<u64> {
        let origin = self.inner.describe_origin();
        bounded(&origin, "counting NULL cursor values", self.until_ms, self.inner.count_nulls(table, column)).await
    }
    async fn count_key_ranges(
        &mut self,
        table: &TableName,
        key: &[Column],
        ranges: &[KeyRange],
        rows: &[u64],
    ) -> Result<Vec<(usize, u64)>> {
        let origin = self.inner.describe_origin();
        bounded(&origin, "counting rows in key ranges", self.until_ms, self.inner.count_key_ranges(table, key, ranges, rows)).await
    }
    async fn absent_keys(&mut self, table: &TableName, key: &[Column], keys: &[Vec<Value>]) -> Result<Vec<usize>> {
        let origin = self.inner.describe_origin();
        bounded(&origin, "looking up keys", self.until_ms, self.inner.absent_keys(table, key, keys)).await
    }
}
