//! The MySQL/MariaDB binlog as the engine's change feed (`Source::feed`): the client and the
//! sans-io decoder (`binlog`) driven over a second connection, and the events turned into the
//! engine's `Change`s with values already mapped as a copy maps them (`BinlogColumns`).
//!
//! The binlog has no slot at the origin: the replica keeps its position (`file:pos`, the end of
//! the last transaction it committed) and each read dumps from there with
//! `BINLOG_DUMP_NON_BLOCK` on a connection of its own, registered as replica `server_id`. A read
//! stops at a transaction boundary once it reaches the position the engine asked for (`upto`,
//! the origin's position when the stream began), has delivered about `max` changes, or the
//! server says there is nothing more; then the dump connection is dropped. The origin keeps
//! binlog files for `binlog_expire_logs_seconds` (`expire_logs_days`): a position whose file
//! is gone fails the run, naming it.
//!
//! Transactions: a GTID event (MariaDB's, MySQL's or MySQL's anonymous one) or a QUERY `BEGIN`
//! opens one; XID, QUERY `COMMIT` (non-transactional engines), QUERY `ROLLBACK` (what a
//! rolled-back transaction did to non-transactional tables stays done) or an XA `PREPARE`
//! ends it. Every transaction is handed over as `Begin` ... `Commit`, even one that changed
//! no replicated table, so the position moves over it. A DDL statement is its own group:
//! `TRUNCATE` of a replicated table becomes a `Truncate`; any other DDL changes the table's
//! shape, which the engine notices (the config's plan changes) and answers with a fresh copy.
//!
//! A rows event is decoded only for tables the engine registered (`Check`), against the table's
//! current columns. Events logged before a schema change carry the old shape: a table map with
//! fewer columns than the table has now (ADD COLUMN since) is read against the first columns;
//! one that does not fit (columns dropped or changed since) is skipped, as the fresh copy the
//! change brings (the config's plan changed) already holds what it carried.

use super::binlog::{self, dump_flag, gtid_flag, Checksum, Decoder, EventBody, Position, RowChange, TableMap};
use super::client::{ClientError, Conn};
use super::{BinlogColumns, MysqlSource};
use crate::error::{Error, Result};
use crate::ident::quote_backtick;
use crate::source::dialect::Dialect;
use crate::source::{Change, Column, Datum, FeedAnswer, FeedOp, SlotInfo, Source, TableName};
use crate::value::Value;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

/// Opens another connection to the same origin, logged in and set up as the first (the binlog
/// dump takes a connection for itself).
pub type Dialer<S> = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Result<Conn<S>>>>>>;

/// What the feed remembers between operations of one source.
#[derive(Default)]
pub(super) struct FeedState {
    /// The tables registered by the last `Check`, as (database, table); a table's relation id
    /// is its index + 1.
    tables: Vec<(String, String)>,
    checksum: Option<Checksum>,
    /// The origin's own `server_id`, which a reader may not take.
    origin_server_id: Option<u32>,
}

/// MariaDB's GTID flag (10.5+) of the group that commits or rolls back a prepared XA
/// transaction (`FL_PREPARED_XA`, 64, marks the group that prepared it).
const FL_COMPLETED_XA: u8 = 128;
/// MySQL's XA_PREPARE_LOG_EVENT: ends the event group of a prepared XA transaction.
const XA_PREPARE_EVENT: u8 = 38;
/// ER_MASTER_FATAL_ERROR_READING_BINLOG: the file or position is not there (purged).
const ER_FATAL_READING_BINLOG: u16 = 1236;

/// Parses `file:pos`.
pub fn parse_position(p: &str) -> Option<Position> {
    let (file, pos) = p.rsplit_once(':')?;
    Some(Position { file: file.to_string(), pos: pos.parse().ok()? })
}

/// The number a binlog file name ends with (`mysql-bin.000012` → 12).
fn file_number(file: &str) -> Option<u64> {
    file.rsplit_once('.').and_then(|(_, n)| n.parse().ok())
}

/// Whether binlog position `a` is at or after `b`: by file number (files are numbered in
/// order; the digits may outgrow their zero padding), then offset. Unreadable positions, or
/// positions in differently named binlogs, are never "after".
pub fn at_or_after(a: &str, b: &str) -> bool {
    let (Some(x), Some(y)) = (parse_position(a), parse_position(b)) else { return false };
    let base = |f: &str| f.rsplit_once('.').map(|(b, _)| b.to_string());
    match (file_number(&x.file), file_number(&y.file)) {
        (Some(nx), Some(ny)) if base(&x.file) == base(&y.file) => (nx, x.pos) >= (ny, y.pos),
        _ => x.file == y.file && x.pos >= y.pos,
    }
}

/// The server id a reader's slot name carries (`crate::cdc::reader_names`).
fn server_id_of(slot: &str) -> Result<u32> {
    slot.trim_end_matches(')')
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Error::internal(format!("binlog reader {slot:?} names no server id")))
}

/// What a DDL statement does to a replicated table, read from its text.
#[derive(Debug, PartialEq, Eq)]
enum Ddl {
    Truncate(String),
    /// Any other statement that names the table (ALTER, DROP, RENAME, CREATE ... LIKE, ...).
    Other,
    None,
}

/// Strips comments and collapses a statement to its words, for recognising its kind.
fn words(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for d in chars.by_ref() {
                    if prev == '*' && d == '/' {
                        break;
                    }
                    prev = d;
                }
            }
            c if c.is_whitespace() || c == ',' || c == '(' || c == ';' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The table name of a (possibly qualified, possibly backquoted) word, unquoted:
/// (database or `default`, table).
fn split_name(w: &str, default: &str) -> (String, String) {
    let parts: Vec<String> = w.split('.').map(|p| p.trim_matches('`').to_string()).collect();
    match parts.as_slice() {
        [d, t] => (d.clone(), t.clone()),
        _ => (default.to_string(), parts.last().cloned().unwrap_or_default()),
    }
}

fn classify_ddl(sql: &str, schema: &str, tables: &[(String, String)]) -> (Ddl, Option<usize>) {
    let w = words(sql);
    let upper: Vec<String> = w.iter().map(|x| x.to_ascii_uppercase()).collect();
    // TRUNCATE [TABLE] t
    if upper.first().map(String::as_str) == Some("TRUNCATE") {
        let at = if upper.get(1).map(String::as_str) == Some("TABLE") { 2 } else { 1 };
        if let Some(name) = w.get(at) {
            let (d, t) = split_name(name, schema);
            if let Some(i) = tables.iter().position(|(td, tt)| *td == d && *tt == t) {
                return (Ddl::Truncate(t), Some(i));
            }
        }
        return (Ddl::None, None);
    }
    // Any other statement that names a replicated table as a word.
    for word in &w {
        let (d, t) = split_name(word, schema);
        if let Some(i) = tables.iter().position(|(td, tt)| *td == d && *tt == t) {
            return (Ddl::Other, Some(i));
        }
    }
    (Ddl::None, None)
}

/// How the rows of one table map read: its relation id and value mapping, or `None` for a
/// table the engine does not replicate (or a map from before a schema change).
type Plan = Option<(u32, Arc<BinlogColumns>, Vec<String>)>;

impl<S: AsyncRead + AsyncWrite + Unpin> MysqlSource<S> {
    /// A source whose change feed can open the dump connection it needs.
    pub fn with_dialer(mut self, dialer: Dialer<S>) -> Self {
        self.dialer = Some(dialer);
        self
    }

    /// One text (or number, as text) per column of the first row of `sql`.
    async fn first_row_text(&mut self, sql: &str) -> Result<Option<Vec<Option<String>>>> {
        let rows = self.query(sql, &[]).await?;
        Ok(rows.into_iter().next().map(|r| {
            r.iter()
                .map(|v| match v {
                    Value::Null => None,
                    v => Some(super::text(v)),
                })
                .collect()
        }))
    }

    /// Checks what reading the binlog needs, naming the first thing missing: `log_bin`,
    /// `binlog_format = ROW`, `binlog_row_image = FULL`, the grants REPLICATION SLAVE and
    /// REPLICATION CLIENT (MariaDB: BINLOG MONITOR), and SELECT on each table.
    async fn feed_check(&mut self, tables: &[TableName]) -> Result<Vec<u32>> {
        let row = self
            .first_row_text(
                "SELECT @@global.log_bin, @@global.binlog_format, @@global.binlog_row_image, @@global.binlog_checksum, @@global.server_id",
            )
            .await?
            .unwrap_or_default();
        let get = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        if !matches!(get(0).as_str(), "1" | "ON") {
            return Err(
                self.err("log_bin is OFF, and cdc reads the binary log: start the server with log_bin (log-bin = mysql-bin in my.cnf)")
            );
        }
        if !get(1).eq_ignore_ascii_case("ROW") {
            return Err(
                self.err(format!("binlog_format is {:?}, and cdc needs ROW: SET GLOBAL binlog_format = 'ROW' (and in my.cnf)", get(1)))
            );
        }
        if !get(2).eq_ignore_ascii_case("FULL") {
            return Err(self.err(format!(
                "binlog_row_image is {:?}, and cdc needs FULL (whole rows before and after each change): SET GLOBAL binlog_row_image = 'FULL'",
                get(2)
            )));
        }
        self.feed.origin_server_id = get(4).parse().ok();
        self.feed.checksum =
            Some(Checksum::from_setting(&get(3)).ok_or_else(|| self.err(format!("binlog_checksum {:?} is not NONE or CRC32", get(3))))?);
        let privileges = self
            .query(
                "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = CONCAT('''', \
                 SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')",
                &[],
            )
            .await?;
        let has = |p: &str| privileges.iter().any(|r| super::text(&r[0]).eq_ignore_ascii_case(p));
        let mut missing = Vec::new();
        if !has("REPLICATION SLAVE") {
            missing.push("REPLICATION SLAVE");
        }
        if !(has("REPLICATION CLIENT") || has("BINLOG MONITOR") || has("SUPER")) {
            missing.push("REPLICATION CLIENT");
        }
        if !missing.is_empty() {
            return Err(self.err(format!(
                "the login lacks {} on *.*, which reading the binlog needs: GRANT {} ON *.* TO <login>",
                missing.join(" and "),
                missing.join(", ")
            )));
        }
        let db = self.database.clone().unwrap_or_default();
        let mut registered = Vec::with_capacity(tables.len());
        for t in tables {
            let sql = format!("SELECT 1 FROM {} LIMIT 0", super::MyDialect.table_ref(t));
            if let Err(e) = self.query(&sql, &[]).await {
                return Err(self.err(format!(
                    "the login cannot read table {} (it needs SELECT on it for the first copy): {}",
                    super::MyDialect.table_ref(t),
                    e.message()
                )));
            }
            registered.push((t.schema.clone().unwrap_or_else(|| db.clone()), t.name.clone()));
        }
        self.check_charsets_logged(&registered).await?;
        self.feed.tables = registered;
        Ok((1..=tables.len() as u32).collect())
    }

    /// Without `binlog_row_metadata` MINIMAL or FULL (MariaDB's default is NO_LOG; servers
    /// before MySQL 8.0.1 and MariaDB 10.5 log none) the binlog does not say a text column's
    /// character set, and rows are read as UTF-8: right for utf8mb4, utf8mb3, ascii and
    /// binary columns, not for others, which are refused, naming the column.
    async fn check_charsets_logged(&mut self, tables: &[(String, String)]) -> Result<()> {
        let logged = match self.first_row_text("SELECT @@global.binlog_row_metadata").await {
            Ok(row) => row.and_then(|r| r.into_iter().next().flatten()).unwrap_or_default(),
            // The server has no such setting: it logs no metadata.
            Err(_) => String::new(),
        };
        if logged.eq_ignore_ascii_case("MINIMAL") || logged.eq_ignore_ascii_case("FULL") {
            return Ok(());
        }
        for (d, t) in tables {
            let rows = self
                .query(
                    "SELECT COLUMN_NAME, CHARACTER_SET_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? \
                     AND TABLE_NAME = ? AND CHARACTER_SET_NAME NOT IN ('utf8mb4', 'utf8mb3', 'utf8', 'ascii', 'binary') \
                     ORDER BY ORDINAL_POSITION",
                    &[Value::text(d), Value::text(t)],
                )
                .await?;
            if let Some(r) = rows.first() {
                return Err(self.err(format!(
                    "column {} of {}.{} is {}, and the binlog says which character set a column has only with \
                     binlog_row_metadata = MINIMAL or FULL (it is {:?}): SET GLOBAL binlog_row_metadata = 'MINIMAL' (and in \
                     my.cnf)",
                    quote_backtick(&super::text(&r[0])),
                    quote_backtick(d),
                    quote_backtick(t),
                    super::text(&r[1]),
                    if logged.is_empty() { "not available" } else { logged.as_str() }
                )));
            }
        }
        Ok(())
    }

    /// Where the binlog ends now.
    async fn feed_position(&mut self) -> Result<String> {
        let rows = match self.query("SHOW MASTER STATUS", &[]).await {
            Ok(r) => r,
            // MySQL 8.4 renamed it.
            Err(_) => self.query("SHOW BINARY LOG STATUS", &[]).await?,
        };
        let r = rows.first().ok_or_else(|| self.err("SHOW MASTER STATUS is empty: the server does not write a binlog (log_bin)"))?;
        Ok(format!("{}:{}", super::text(&r[0]), super::text(&r[1])))
    }

    /// The binlog files the origin still has, with their sizes.
    async fn binlog_files(&mut self) -> Result<Vec<(String, i64)>> {
        let rows = self.query("SHOW BINARY LOGS", &[]).await?;
        Ok(rows.iter().map(|r| (super::text(&r[0]), r.get(1).and_then(Value::as_i64).unwrap_or(0))).collect())
    }

    fn purged(&self, position: &str, detail: &str) -> Error {
        self.err(format!(
            "the binlog at {position}, where the replica's changes continue, is no longer at the origin ({detail}): it was \
             purged (binlog_expire_logs_seconds / expire_logs_days, or PURGE BINARY LOGS) before the replica read it, so \
             the changes in it are lost. Reset the config (PUT with any resetting change, e.g. a new server_id) to copy the \
             table afresh, and keep binlogs longer than the replica may go unsynced"
        ))
    }

    /// The reader's state at the origin: whether the file of `position` is still there, and
    /// how many binlog bytes follow it. `None` before the reader's first position.
    async fn feed_slot(&mut self, position: Option<&str>) -> Result<Option<SlotInfo>> {
        let Some(position) = position else { return Ok(None) };
        let p = parse_position(position).ok_or_else(|| Error::internal(format!("binlog position {position:?} is not file:pos")))?;
        let files = self.binlog_files().await?;
        let Some(k) = files.iter().position(|(f, _)| *f == p.file) else {
            let first = files.first().map_or_else(|| "none".to_string(), |(f, _)| format!("the oldest is {f}"));
            return Err(self.purged(position, &format!("file {} is not among its binlogs; {first}", p.file)));
        };
        let lag: i64 = files[k].1.saturating_sub(p.pos as i64).max(0) + files[k + 1..].iter().map(|(_, s)| s).sum::<i64>();
        Ok(Some(SlotInfo { confirmed_lsn: Some(position.to_string()), lag_bytes: Some(lag), wal_status: None }))
    }

    /// The value a column the origin just added holds in every existing row, when it is a
    /// constant default (see `Source::added_column_value`), read as a copy reads values: the
    /// column's `DEFAULT()` has the column's own type. Expression defaults (`CURRENT_TIMESTAMP`,
    /// MySQL 8's `DEFAULT (expr)`), generated columns, `ON UPDATE` and the implicit default of
    /// a NOT NULL column without one are not known: `None`.
    pub(super) async fn added_value(&mut self, table: &TableName, column: &Column) -> Result<Option<Value>> {
        let schema = table.schema.clone().map_or(Value::Null, Value::Text);
        let rows = self
            .query(
                "SELECT COLUMN_DEFAULT, EXTRA, IS_NULLABLE, VERSION() FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND COLUMN_NAME = ?",
                &[schema, Value::text(&table.name), Value::text(&column.name)],
            )
            .await?;
        let Some(r) = rows.first() else { return Ok(None) };
        let default = match &r[0] {
            Value::Null => None,
            v => Some(super::text(v)),
        };
        let extra = super::text(&r[1]).to_ascii_uppercase();
        let nullable = super::text(&r[2]).eq_ignore_ascii_case("YES");
        let mariadb = super::text(&r[3]).contains("MariaDB");
        if extra.contains("GENERATED") || extra.contains("ON UPDATE") {
            return Ok(None);
        }
        let constant = match default.as_deref() {
            // MySQL: DEFAULT NULL (or none, on a nullable column); MariaDB: no DEFAULT at all.
            None => return Ok(if nullable { Some(Value::Null) } else { None }),
            Some("NULL") if mariadb => return Ok(if nullable { Some(Value::Null) } else { None }),
            // MariaDB quotes string literals and leaves numbers and expressions bare.
            Some(d) if mariadb => d.starts_with('\'') || d.parse::<f64>().is_ok(),
            // MySQL marks expression defaults DEFAULT_GENERATED (8.0.13+); 5.7 shows
            // CURRENT_TIMESTAMP bare.
            Some(d) => !d.to_ascii_uppercase().starts_with("CURRENT_TIMESTAMP") && !d.contains('('),
        };
        if !constant {
            return Ok(None);
        }
        // Any row's DEFAULT() is the constant; an empty table has no row that holds it.
        let sql = format!("SELECT DEFAULT({}) FROM {} LIMIT 1", quote_backtick(&column.name), super::MyDialect.table_ref(table));
        let rows = self.query(&sql, &[]).await?;
        Ok(Some(rows.into_iter().next().and_then(|r| r.into_iter().next()).unwrap_or(Value::Null)))
    }

    /// Opens the dump connection.
    async fn dial(&mut self) -> Result<Conn<S>> {
        match &self.dialer {
            Some(d) => d().await,
            None => Err(Error::internal("this mysql source cannot open a second connection for the binlog")),
        }
    }

    /// The columns a table map is read against, and the relation the engine maps by name.
    async fn plan_for(&mut self, map: &TableMap, columns: &mut HashMap<usize, Vec<Column>>) -> Result<Plan> {
        let Some(i) = self.feed.tables.iter().position(|(d, t)| *d == map.database && *t == map.table) else { return Ok(None) };
        if let std::collections::hash_map::Entry::Vacant(e) = columns.entry(i) {
            let t = TableName { schema: Some(map.database.clone()), name: map.table.clone() };
            e.insert(self.table_schema(&t).await?.columns);
        }
        let cols = &columns[&i];
        if map.columns.len() > cols.len() {
            return Ok(None);
        }
        let cols = &cols[..map.columns.len()];
        match BinlogColumns::new(map, cols) {
            Ok(b) => Ok(Some((i as u32 + 1, Arc::new(b), cols.iter().map(|c| c.name.clone()).collect()))),
            Err(e) if e.contains("its definition changed") => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Streams whole transactions from `from` into `sink` (see the module comment).
    async fn feed_read(
        &mut self,
        slot: &str,
        from: &str,
        upto: &str,
        max: i32,
        sink: &mut dyn FnMut(Change<'_>) -> Result<()>,
    ) -> Result<()> {
        let server_id = server_id_of(slot)?;
        if self.feed.origin_server_id == Some(server_id) {
            return Err(self.err(format!(
                "server_id {server_id} is the origin's own: give the config another server_id (one no replica of the origin uses)"
            )));
        }
        let start = parse_position(from).ok_or_else(|| Error::internal(format!("binlog position {from:?} is not file:pos")))?;
        let checksum = match self.feed.checksum {
            Some(c) => c,
            None => {
                let row = self.first_row_text("SELECT @@global.binlog_checksum").await?.unwrap_or_default();
                let s = row.into_iter().next().flatten().unwrap_or_default();
                Checksum::from_setting(&s).unwrap_or(Checksum::Crc32)
            }
        };
        let origin = self.origin.clone();
        let mut conn = self.dial().await?;
        let fail = |e: ClientError| Error::at_origin(&origin, format!("binlog dump: {e}"));
        conn.execute_simple(
            "SET @master_binlog_checksum = @@global.binlog_checksum, @source_binlog_checksum = @@global.binlog_checksum, \
             @mariadb_slave_capability = 4",
        )
        .await
        .map_err(fail)?;
        let pos32 = u32::try_from(start.pos).map_err(|_| Error::internal(format!("binlog position {from} beyond 4 GiB")))?;
        conn.binlog_dump(&start.file, pos32, dump_flag::NON_BLOCK, server_id).await.map_err(fail)?;

        let mut decoder = Decoder::new(checksum);
        let mut plans: HashMap<u64, (Arc<TableMap>, Plan)> = HashMap::new();
        let mut columns: HashMap<usize, Vec<Column>> = HashMap::new();
        // The relation each id was last announced with in this read.
        let mut announced: HashMap<u32, Vec<String>> = HashMap::new();
        let mut in_txn = false;
        // The open group is one statement (a DDL) rather than a BEGIN ... COMMIT transaction.
        let mut standalone = false;
        let mut delivered: i64 = 0;
        let max = i64::from(max.max(1));
        loop {
            let packet = match conn.read_binlog_event().await {
                Ok(Some(p)) => p,
                // The server sends whole transactions (it publishes a group only once written):
                // an end inside one means the stream was cut, and its start must be read again.
                Ok(None) if in_txn => {
                    let at = decoder.position().map(|p| p.to_string()).unwrap_or_default();
                    return Err(Error::at_origin(&origin, format!("the binlog dump ended inside a transaction, at {at}")));
                }
                Ok(None) => break,
                Err(ClientError::Server(e)) if e.code == ER_FATAL_READING_BINLOG => return Err(self.purged(from, &e.message)),
                Err(e) => return Err(fail(e)),
            };
            let ev = decoder.decode(&packet[1..]).map_err(|e| Error::at_origin(&origin, format!("at {from} and after: {e}")))?;
            let header = ev.header;
            let here = || decoder.position().map(|p| p.to_string()).unwrap_or_default();
            // Where this event begins: the boundary a transaction that starts here would have.
            let event_start = || {
                let p = decoder.position().cloned().unwrap_or_else(|| start.clone());
                Position { pos: u64::from(header.log_pos).saturating_sub(u64::from(header.event_size)), ..p }.to_string()
            };
            // Between transactions: stop at `upto` or after enough changes.
            let stop_here = |delivered: i64, begins: &str| at_or_after(begins, upto) || delivered >= max;
            match ev.body {
                EventBody::MariadbGtid { flags, .. } => {
                    let begins = event_start();
                    if stop_here(delivered, &begins) {
                        break;
                    }
                    if flags & FL_COMPLETED_XA != 0 {
                        // XA COMMIT / ROLLBACK of a transaction applied at its PREPARE.
                        in_txn = false;
                        continue;
                    }
                    in_txn = true;
                    standalone = flags & gtid_flag::STANDALONE != 0;
                    sink(Change::Begin { lsn: begins })?;
                    delivered += 1;
                }
                EventBody::MysqlGtid { .. } => {
                    let begins = event_start();
                    if stop_here(delivered, &begins) {
                        break;
                    }
                    // One statement (DDL) unless a BEGIN follows.
                    in_txn = true;
                    standalone = true;
                    sink(Change::Begin { lsn: begins })?;
                    delivered += 1;
                }
                EventBody::Query(q) => {
                    let text = q.query_text();
                    let head = words(&text).into_iter().take(2).map(|w| w.to_ascii_uppercase()).collect::<Vec<_>>();
                    let first = head.first().map(String::as_str);
                    let second = head.get(1).map(String::as_str);
                    match (first, second) {
                        (Some("BEGIN"), _) => {
                            if !in_txn {
                                let begins = event_start();
                                if stop_here(delivered, &begins) {
                                    break;
                                }
                                in_txn = true;
                                sink(Change::Begin { lsn: begins })?;
                                delivered += 1;
                            }
                            standalone = false;
                        }
                        // `ROLLBACK TO SAVEPOINT` goes on; a `ROLLBACK` that ends a group only
                        // follows changes to non-transactional tables, which stay done.
                        (Some("COMMIT"), _) | (Some("ROLLBACK"), None) => {
                            if in_txn {
                                sink(Change::Commit { lsn: here() })?;
                                in_txn = false;
                            }
                        }
                        (Some("XA"), x) => match x {
                            // A prepared XA transaction is applied at its PREPARE (MySQL: the
                            // XA_PREPARE event; MariaDB: this query).
                            Some("PREPARE" | "COMMIT" | "ROLLBACK") if in_txn => {
                                sink(Change::Commit { lsn: here() })?;
                                in_txn = false;
                            }
                            _ => {}
                        },
                        _ => {
                            // DDL, or a statement inside a transaction (SAVEPOINT, ROLLBACK TO,
                            // a temporary table). A DDL is a group of its own.
                            let ends_group = standalone || !in_txn;
                            let (ddl, table) = classify_ddl(&text, q.schema, &self.feed.tables);
                            if !in_txn {
                                let begins = event_start();
                                if stop_here(delivered, &begins) {
                                    break;
                                }
                                sink(Change::Begin { lsn: begins })?;
                                delivered += 1;
                            }
                            match (ddl, table) {
                                (Ddl::Truncate(_), Some(i)) => sink(Change::Truncate { rels: vec![i as u32 + 1] })?,
                                (Ddl::Other, Some(i)) => {
                                    // The table's shape changed: later maps are read against it anew.
                                    columns.remove(&i);
                                    plans.clear();
                                }
                                _ => {}
                            }
                            if ends_group {
                                sink(Change::Commit { lsn: here() })?;
                                in_txn = false;
                            }
                        }
                    }
                }
                EventBody::Xid { .. } | EventBody::Unknown { event_type: XA_PREPARE_EVENT, .. } if in_txn => {
                    sink(Change::Commit { lsn: here() })?;
                    in_txn = false;
                }
                EventBody::TableMap(map) => {
                    let fresh = match plans.get(&map.table_id) {
                        Some((old, _)) => **old != *map,
                        None => true,
                    };
                    if fresh {
                        let plan = self.plan_for(&map, &mut columns).await?;
                        plans.insert(map.table_id, (map.clone(), plan));
                    }
                    if let Some((_, Some((id, _, names)))) = plans.get(&map.table_id) {
                        if announced.get(id) != Some(names) {
                            announced.insert(*id, names.clone());
                            sink(Change::Relation { id: *id, columns: names.clone() })?;
                        }
                    }
                }
                EventBody::Rows(rows) => {
                    let Some((_, Some((id, cols, _)))) = plans.get(&rows.table_id) else { continue };
                    let bad =
                        |e: String| Error::at_origin(&origin, format!("a row change of {} at {}: {e}", table_of(&rows.table), here()));
                    let datums = |r: &binlog::Row<'_>| -> Result<Vec<Datum<'static>>> {
                        Ok(cols.row(r).map_err(bad)?.into_iter().map(|v| v.map_or(Datum::Unchanged, Datum::Value)).collect())
                    };
                    for change in rows.rows().map_err(|e| bad(e.to_string()))? {
                        delivered += 1;
                        match change {
                            RowChange::Insert(r) => sink(Change::Insert { rel: *id, new: datums(&r)? })?,
                            RowChange::Update { before, after } => {
                                sink(Change::Update { rel: *id, key: Some(datums(&before)?), new: datums(&after)? })?
                            }
                            RowChange::Delete(r) => sink(Change::Delete { rel: *id, key: datums(&r)? })?,
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// `Source::feed` for MySQL and MariaDB: the binlog.
    pub(super) async fn feed_op(&mut self, op: FeedOp<'_>) -> Result<FeedAnswer> {
        Ok(match op {
            FeedOp::Check { tables } => FeedAnswer::Ids(self.feed_check(tables).await?),
            // Nothing to publish, no slot to make or drop: the binlog holds every table's
            // changes, and the reader's position lives in the replica.
            FeedOp::Publish { .. } => FeedAnswer::Created(false),
            FeedOp::Unpublish { .. } | FeedOp::DropPublication { .. } | FeedOp::DropSlot { .. } => FeedAnswer::Done,
            FeedOp::Slot { position, .. } => FeedAnswer::Slot(self.feed_slot(position).await?),
            FeedOp::CreateSlot { .. } | FeedOp::CurrentPosition => FeedAnswer::Position(self.feed_position().await?),
            FeedOp::Read { slot, from, upto, max, sink, .. } => {
                self.feed_read(slot, from, upto, max, sink).await?;
                FeedAnswer::Done
            }
            // The origin keeps binlogs by age, not by what a reader confirmed.
            FeedOp::Advance { .. } | FeedOp::Keepalive => FeedAnswer::Done,
        })
    }
}

fn table_of(m: &TableMap) -> String {
    format!("{}.{}", quote_backtick(&m.database), quote_backtick(&m.table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_order_by_file_number_then_offset() {
        assert!(at_or_after("mysql-bin.000002:4", "mysql-bin.000001:99999"));
        assert!(at_or_after("mysql-bin.1000000:4", "mysql-bin.999999:5"), "numbers outgrow their padding");
        assert!(!at_or_after("mysql-bin.000001:9", "mysql-bin.000001:10"));
        assert!(at_or_after("mysql-bin.000001:10", "mysql-bin.000001:10"));
        assert!(!at_or_after("other.000009:10", "mysql-bin.000001:10"), "another binlog is never after");
        assert!(!at_or_after("0/16B3748", "mysql-bin.000001:4"));
        assert_eq!(parse_position("a.000001:1234"), Some(Position { file: "a.000001".into(), pos: 1234 }));
    }

    #[test]
    fn ddl_is_recognised_by_the_table_it_names() {
        let t = vec![("db".to_string(), "orders".to_string())];
        assert_eq!(classify_ddl("TRUNCATE TABLE orders", "db", &t), (Ddl::Truncate("orders".into()), Some(0)));
        assert_eq!(classify_ddl("truncate `db`.`orders`", "other", &t), (Ddl::Truncate("orders".into()), Some(0)));
        assert_eq!(classify_ddl("ALTER TABLE orders ADD COLUMN x INT", "db", &t), (Ddl::Other, Some(0)));
        assert_eq!(classify_ddl("/* c */ ALTER TABLE `db`.`orders` DROP x", "", &t), (Ddl::Other, Some(0)));
        assert_eq!(classify_ddl("ALTER TABLE orders2 ADD y INT", "db", &t), (Ddl::None, None));
        assert_eq!(classify_ddl("CREATE TABLE other (id INT)", "db", &t), (Ddl::None, None));
        assert_eq!(classify_ddl("TRUNCATE orders", "elsewhere", &t), (Ddl::None, None));
    }

    #[test]
    fn the_server_id_is_read_back_from_the_reader_name() {
        let cfg_name = "binlog reader (server_id 2147483650)";
        assert_eq!(server_id_of(cfg_name).unwrap(), 2_147_483_650);
        assert!(server_id_of("edge_replica_x").is_err());
    }
}
