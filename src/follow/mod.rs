//! Regional read replicas: how a read replica object follows the primary object.
//!
//! The primary keeps a **change log** (`tmp_replication_log`) while `REPLICA_LOCATIONS` is set:
//! every transaction that changes a replica table (a batch, a swap, schema drift, a table
//! dropped with its config, a cdc transaction, reconciliation deletes) also writes its data
//! statements, as executed, under its bookmark position (`seq`), in the same transaction. A
//! read replica pulls the entries after its position and runs them, each pull in one
//! transaction with the new position, so it holds exactly the states the primary held, in
//! the same order, and never half of one of its transactions. The origin sees one reader:
//! the primary.
//!
//! The log is trimmed once every listed replica has applied an entry, and beyond
//! `REPLICA_LOG_MAX_BYTES` whatever a replica still needs: such a replica (and a new one, or one
//! whose primary was reset) **re-copies**: it copies the primary's tables page by page as of a
//! position `h0`, then replays the log from `h0`. Replaying upserts and deletes over rows copied
//! later is harmless (each entry carries whole rows or keys); a copy that a schema change
//! (DROP, ALTER) overtook starts over, as its pages may no longer match the log.
//!
//! Everything here is runtime-free: the primary's side is plain functions over a `Store`, the
//! replica's side an async driver over a `Primary` (the Durable Object RPC in `worker`, a
//! direct call in tests).

pub mod route;

use crate::error::{Error, Result};
use crate::ident::quote_double as q;
use crate::store::{Stmt, Store};
use crate::value::Value;
use serde::{Deserialize, Serialize};

/// The default bound on the primary's change log, in bytes of statement text and parameters.
pub const DEFAULT_LOG_MAX_BYTES: u64 = 256 << 20;
/// What one pull answer carries at most (whole entries: one larger entry goes alone).
pub const PULL_MAX_BYTES: u64 = 4 << 20;
/// Rows per page of a re-copy.
pub const PAGE_ROWS: i64 = 2000;

/// The bookkeeping tables of read replicas (schema version 8, `catalog::MIGRATIONS`).
pub const MIGRATION: &[&str] = &[
    // The primary's change log: one row per data statement of a logged transaction. `p1` holds
    // the one text parameter most statements have (a batch's JSON) as it is; `params` the
    // others, encoded (`encode_params`). `ddl`: the statement drops or alters a table.
    "CREATE TABLE IF NOT EXISTS tmp_replication_log (
        seq INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        at_ms INTEGER NOT NULL,
        sql TEXT NOT NULL,
        params TEXT,
        p1 TEXT,
        bytes INTEGER NOT NULL,
        ddl INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (seq, idx))",
    // The primary's view of its read replicas, from their pulls.
    "CREATE TABLE IF NOT EXISTS tmp_replication_followers (
        location TEXT PRIMARY KEY,
        position INTEGER,
        last_pull_at_ms INTEGER,
        last_error TEXT,
        tables INTEGER)",
    // A read replica's own state (one row).
    "CREATE TABLE IF NOT EXISTS tmp_replication_follow (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        location TEXT,
        epoch TEXT,
        phase TEXT NOT NULL DEFAULT 'empty',
        position INTEGER,
        copy TEXT,
        last_pull_at_ms INTEGER,
        last_error TEXT)",
    "INSERT OR IGNORE INTO tmp_replication_follow (id) VALUES (1)",
    // Whether the primary logs (REPLICA_LOCATIONS set), and the highest position whose entries
    // are gone (trimmed, or never written): a replica behind it must re-copy.
    "INSERT OR IGNORE INTO tmp_replication_meta (key, value) VALUES ('replica_log', '0')",
    "INSERT OR IGNORE INTO tmp_replication_meta (key, value) VALUES ('log_floor', '0')",
];

// ---- the primary: writing the log ----

/// Whether `sql` writes the bookkeeping (which stays on the primary) rather than a replica
/// table. Bookkeeping statements name their table unquoted (`catalog`, `cdc`); replica tables
/// are always quoted (`ident::quote_double`), so a user table can never look like one.
pub fn is_bookkeeping(sql: &str) -> bool {
    const VERBS: &[&str] = &["UPDATE ", "INSERT INTO ", "INSERT OR IGNORE INTO ", "INSERT OR REPLACE INTO ", "DELETE FROM "];
    let s = sql.trim_start();
    VERBS.iter().any(|v| {
        s.get(..v.len()).is_some_and(|head| head.eq_ignore_ascii_case(v))
            && (s[v.len()..].starts_with("tmp_replication_") || s[v.len()..].starts_with("tmp_cdc_"))
    })
}

/// Whether the primary keeps a change log now.
pub fn logging(store: &dyn Store) -> Result<bool> {
    let rows = store.query("SELECT value FROM tmp_replication_meta WHERE key = 'replica_log'", &[])?;
    Ok(rows.first().and_then(|r| r[0].as_str()).is_some_and(|v| v == "1"))
}

/// Turns the change log on (read replicas are configured) or off (they are not: the log and
/// what the primary knew of its replicas go). Turning it on starts the log at the current
/// position: every replica re-copies once.
pub fn set_logging(store: &dyn Store, on: bool) -> Result<()> {
    if logging(store)? == on {
        return Ok(());
    }
    if on {
        store.transaction(&[
            Stmt::new("UPDATE tmp_replication_meta SET value = '1' WHERE key = 'replica_log'", vec![]),
            Stmt::new(
                "UPDATE tmp_replication_meta SET value = (SELECT value FROM tmp_replication_meta WHERE key = 'bookmark') WHERE key = 'log_floor'",
                vec![],
            ),
        ])
    } else {
        store.transaction(&[
            Stmt::new("UPDATE tmp_replication_meta SET value = '0' WHERE key = 'replica_log'", vec![]),
            Stmt::new("DELETE FROM tmp_replication_log", vec![]),
            Stmt::new("DELETE FROM tmp_replication_followers", vec![]),
        ])
    }
}

/// Replicas that pulled before but are no longer listed: nudged once more, they learn to retire.
pub fn unlisted_followers(store: &dyn Store, locations: &[String]) -> Result<Vec<String>> {
    let listed = serde_json::to_string(locations).expect("serializes");
    Ok(store
        .query(
            "SELECT location FROM tmp_replication_followers WHERE location NOT IN (SELECT value FROM json_each(?)) ORDER BY location",
            &[Value::text(&listed)],
        )?
        .into_iter()
        .filter_map(|r| r[0].as_str().map(str::to_string))
        .collect())
}

/// The position the read replicas were last nudged at.
pub fn nudged(store: &dyn Store) -> Result<i64> {
    meta_int(store, "nudged")
}

pub fn set_nudged(store: &dyn Store, seq: i64) -> Result<()> {
    store.execute(
        "INSERT INTO tmp_replication_meta (key, value) VALUES ('nudged', ?1) ON CONFLICT (key) DO UPDATE SET value = ?1",
        &[Value::text(seq.to_string())],
    )
}

/// Where a spilled cdc statement reads its JSON (see `cdc::TxnWriter::spill`).
const SPILL_READ: &str = "json_each((SELECT json FROM tmp_cdc_spill WHERE seq = ?1))";

/// `stmts` (one transaction that moves the bookmark to `seq`) with, after each data statement,
/// the statement that logs it, when the primary logs. Each log row is written right after its
/// statement, so that one reading the cdc spill logs the JSON while it is still there.
pub fn with_log(store: &dyn Store, stmts: Vec<Stmt>) -> Result<Vec<Stmt>> {
    if !logging(store)? {
        return Ok(stmts);
    }
    let seq = crate::catalog::bookmark_position(store)? + 1;
    let mut out = Vec::with_capacity(stmts.len() * 2);
    let mut idx = 0;
    for s in stmts {
        let log = (!is_bookkeeping(&s.sql)).then(|| {
            idx += 1;
            log_stmt(seq, idx, &s)
        });
        out.push(s);
        out.extend(log);
    }
    Ok(out)
}

const NOW_MS: &str = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";

fn log_stmt(seq: i64, idx: i64, s: &Stmt) -> Stmt {
    let ddl = {
        let head = s.sql.trim_start().get(..6).unwrap_or("").to_ascii_uppercase();
        i64::from(head == "DROP T" || head == "ALTER ")
    };
    // A spilled statement: log it as it was before spilling, with the JSON it reads.
    if s.sql.contains(SPILL_READ) {
        let sql = s.sql.replace(SPILL_READ, "json_each(?1)");
        return Stmt::new(
            format!(
                "INSERT INTO tmp_replication_log (seq, idx, at_ms, sql, p1, bytes, ddl)
                 SELECT ?1, ?2, {NOW_MS}, ?3, json, length(json) + length(?3), ?4 FROM tmp_cdc_spill WHERE seq = ?5"
            ),
            vec![Value::Integer(seq), Value::Integer(idx), Value::text(sql), Value::Integer(ddl), s.params[0].clone()],
        );
    }
    // A copy's batch is bound as JSONB (`batch::JsonbBatch`); the log keeps it as the JSON text
    // SQLite renders of it, which the replica's `json_each` reads the same, and which `p1`
    // carries to replicas as it carries every other batch.
    let (params, p1, p1_sql, p1_len) = match s.params.as_slice() {
        [Value::Text(t)] => (Value::Null, Value::text(t.clone()), "?5", t.len()),
        [Value::Blob(b)] if s.sql.contains("json_each(?1)") => (Value::Null, Value::Blob(b.clone()), "json(?5)", b.len()),
        [] => (Value::Null, Value::Null, "?5", 0),
        ps => (Value::text(encode_params(ps)), Value::Null, "?5", 0),
    };
    let bytes = s.sql.len() + params.as_str().map_or(0, str::len) + p1_len;
    Stmt::new(
        format!(
            "INSERT INTO tmp_replication_log (seq, idx, at_ms, sql, params, p1, bytes, ddl) VALUES (?1, ?2, {NOW_MS}, ?3, ?4, {p1_sql}, ?6, ?7)"
        ),
        vec![
            Value::Integer(seq),
            Value::Integer(idx),
            Value::text(s.sql.clone()),
            params,
            p1,
            Value::Integer(bytes as i64),
            Value::Integer(ddl),
        ],
    )
}

/// Parameters as JSON that keeps every value exact: integers and reals as text, blobs as hex.
pub fn encode_params(ps: &[Value]) -> String {
    let items: Vec<serde_json::Value> = ps
        .iter()
        .map(|v| match v {
            Value::Null => serde_json::Value::Null,
            Value::Integer(i) => serde_json::json!({ "i": i.to_string() }),
            // Rust prints the shortest text that parses back to the same double.
            Value::Real(r) => serde_json::json!({ "r": r.to_string() }),
            Value::Text(t) => serde_json::Value::String(t.clone()),
            Value::Blob(b) => serde_json::json!({ "b": hex(b) }),
        })
        .collect();
    serde_json::Value::Array(items).to_string()
}

pub fn decode_params(text: &str) -> Result<Vec<Value>> {
    let bad = || Error::internal(format!("a change log entry's parameters are unreadable: {text:.200}"));
    let items: Vec<serde_json::Value> = serde_json::from_str(text).map_err(|_| bad())?;
    items
        .into_iter()
        .map(|v| match v {
            serde_json::Value::Null => Ok(Value::Null),
            serde_json::Value::String(s) => Ok(Value::Text(s)),
            serde_json::Value::Object(o) => match o.iter().next() {
                Some((k, serde_json::Value::String(s))) if k == "i" => s.parse().map(Value::Integer).map_err(|_| bad()),
                Some((k, serde_json::Value::String(s))) if k == "r" => s.parse().map(Value::Real).map_err(|_| bad()),
                Some((k, serde_json::Value::String(s))) if k == "b" => unhex(s).map(Value::Blob).ok_or_else(bad),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

// ---- the wire: what a replica asks the primary and what it answers ----

/// The primary's identity and log generation: a replica that followed another (a primary
/// whose storage was reset) re-copies.
fn epoch(store: &dyn Store) -> Result<String> {
    crate::catalog::instance_id(store)
}

fn meta_int(store: &dyn Store, key: &str) -> Result<i64> {
    let rows = store.query("SELECT CAST(value AS INTEGER) FROM tmp_replication_meta WHERE key = ?", &[Value::text(key)])?;
    Ok(rows.first().and_then(|r| r[0].as_i64()).unwrap_or(0))
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PullRequest {
    pub location: String,
    pub epoch: Option<String>,
    /// The replica's position: it wants the entries after it.
    pub after: i64,
    pub max_bytes: u64,
    /// What the replica reports of itself, for `GET /replication/replicas`.
    pub tables: i64,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WireStmt {
    pub sql: String,
    /// `p1` of the log: the statement's one text parameter.
    pub p1: Option<String>,
    /// The other parameters, as `encode_params` wrote them.
    pub params: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub seq: i64,
    pub stmts: Vec<WireStmt>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PullAnswer {
    pub epoch: String,
    /// The entries after the replica's position, in order; with `upto`, the position the
    /// replica holds once it applied them (the primary's position when they are all it has).
    pub entries: Vec<Entry>,
    pub upto: i64,
    /// The replica cannot continue from its position (a new primary, or entries it needs were
    /// trimmed): it must re-copy.
    pub recopy: bool,
    /// The replica's location is no longer in `REPLICA_LOCATIONS`: it drops its copy and stops.
    #[serde(default)]
    pub retired: bool,
}

/// One table of a re-copy: its DDL and indexes as the primary has them, and its columns.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CopyTable {
    pub name: String,
    pub sql: String,
    pub indexes: Vec<String>,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CopyPlan {
    pub epoch: String,
    /// The position the tables are copied as of: the replica replays the log from here.
    pub h0: i64,
    pub tables: Vec<CopyTable>,
    #[serde(default)]
    pub retired: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PageRequest {
    pub location: String,
    pub epoch: String,
    pub h0: i64,
    pub table: String,
    pub columns: Vec<String>,
    /// The last rowid copied, as text (rowids reach 2^63); `None` before the first page.
    pub after_rowid: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Page {
    /// The copy cannot go on (a schema change since `h0`, or the log no longer reaches back to it).
    pub restart: bool,
    /// `[[rowid, cell, ...], ...]`, cells tagged as `page_sql` writes them.
    pub rows: String,
    pub count: i64,
    pub last_rowid: Option<String>,
    #[serde(default)]
    pub retired: bool,
}

// ---- the primary: answering replicas ----

/// Entries after `req.after`, up to `req.max_bytes` (whole entries, at least one), and the
/// position they bring the replica to. Records the replica's report. `listed`: the replica's
/// location is in `REPLICA_LOCATIONS` (else it is told to retire).
pub fn pull(store: &dyn Store, req: &PullRequest, listed: bool, now_ms: i64) -> Result<PullAnswer> {
    let epoch = epoch(store)?;
    let head = crate::catalog::bookmark_position(store)?;
    if !listed {
        return Ok(PullAnswer { epoch, entries: Vec::new(), upto: head, recopy: false, retired: true });
    }
    let floor = meta_int(store, "log_floor")?;
    record_follower(store, req, now_ms)?;
    if !logging(store)? || req.epoch.as_deref() != Some(epoch.as_str()) || req.after < floor || req.after > head {
        return Ok(PullAnswer { epoch, entries: Vec::new(), upto: head, recopy: true, retired: false });
    }
    let sizes = store.query(
        "SELECT seq, sum(bytes) FROM tmp_replication_log WHERE seq > ? GROUP BY seq ORDER BY seq LIMIT 10000",
        &[Value::Integer(req.after)],
    )?;
    let mut last = None;
    let mut total = 0u64;
    let mut truncated = false;
    for r in &sizes {
        let (seq, bytes) = (r[0].as_i64().unwrap_or(0), r[1].as_i64().unwrap_or(0).max(0) as u64);
        if last.is_some() && total + bytes > req.max_bytes {
            truncated = true;
            break;
        }
        total += bytes;
        last = Some(seq);
    }
    if sizes.len() == 10000 {
        truncated = true;
    }
    let Some(last) = last else {
        return Ok(PullAnswer { epoch, entries: Vec::new(), upto: head, recopy: false, retired: false });
    };
    let rows = store.query(
        "SELECT seq, sql, p1, params FROM tmp_replication_log WHERE seq > ? AND seq <= ? ORDER BY seq, idx",
        &[Value::Integer(req.after), Value::Integer(last)],
    )?;
    let mut entries: Vec<Entry> = Vec::new();
    for r in rows {
        let seq = r[0].as_i64().unwrap_or(0);
        let text = |v: &Value| v.as_str().map(str::to_string);
        let st = WireStmt { sql: text(&r[1]).unwrap_or_default(), p1: text(&r[2]), params: text(&r[3]) };
        match entries.last_mut() {
            Some(e) if e.seq == seq => e.stmts.push(st),
            _ => entries.push(Entry { seq, stmts: vec![st] }),
        }
    }
    Ok(PullAnswer { epoch, entries, upto: if truncated { last } else { head }, recopy: false, retired: false })
}

fn record_follower(store: &dyn Store, req: &PullRequest, now_ms: i64) -> Result<()> {
    store.execute(
        "INSERT INTO tmp_replication_followers (location, position, last_pull_at_ms, last_error, tables) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (location) DO UPDATE SET position = ?2, last_pull_at_ms = ?3, last_error = ?4, tables = ?5",
        &[
            Value::text(&req.location),
            Value::Integer(req.after),
            Value::Integer(now_ms),
            req.last_error.as_deref().map_or(Value::Null, Value::text),
            Value::Integer(req.tables),
        ],
    )
}

/// The tables a replica holds: every table but the bookkeeping and SQLite's and Cloudflare's own.
const DATA_TABLES: &str = "SELECT name, sql FROM sqlite_master WHERE type = 'table'
    AND name NOT LIKE 'tmp\\_replication\\_%' ESCAPE '\\' AND name NOT LIKE 'tmp\\_cdc\\_%' ESCAPE '\\'
    AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\'
    AND name <> 'tmp_edge_replica_cancel_reads'
    ORDER BY name";

fn data_tables(store: &dyn Store) -> Result<Vec<(String, String)>> {
    Ok(store
        .query(DATA_TABLES, &[])?
        .into_iter()
        .map(|r| (r[0].as_str().unwrap_or_default().to_string(), r[1].as_str().unwrap_or_default().to_string()))
        .collect())
}

/// How many replicated tables (not staging ones) a store holds.
pub fn table_count(store: &dyn Store) -> Result<i64> {
    Ok(data_tables(store)?.iter().filter(|(n, _)| !n.starts_with("tmp_")).count() as i64)
}

/// What a re-copy copies, as of now (nothing for a replica that is not `listed`: it retires).
pub fn copy_plan(store: &dyn Store, listed: bool) -> Result<CopyPlan> {
    let mut tables = Vec::new();
    if !listed {
        return Ok(CopyPlan { epoch: epoch(store)?, h0: 0, tables, retired: true });
    }
    for (name, sql) in data_tables(store)? {
        let indexes = store
            .query(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL ORDER BY name",
                &[Value::text(&name)],
            )?
            .into_iter()
            .filter_map(|r| r[0].as_str().map(str::to_string))
            .collect();
        let columns = store
            .query("SELECT name FROM pragma_table_info(?) ORDER BY cid", &[Value::text(&name)])?
            .into_iter()
            .filter_map(|r| r[0].as_str().map(str::to_string))
            .collect();
        tables.push(CopyTable { name, sql, indexes, columns });
    }
    Ok(CopyPlan { epoch: epoch(store)?, h0: crate::catalog::bookmark_position(store)?, tables, retired: false })
}

/// One cell as JSON that keeps its type and every digit: text as a one-element array (as it
/// is, NUL characters included), else tagged text: `i` integer, `r` real (17 significant
/// digits: the double exactly), `b` blob (hex); NULL stays null.
fn tagged(col: &str) -> String {
    let c = q(col);
    format!(
        "CASE typeof({c}) WHEN 'integer' THEN 'i' || {c} WHEN 'real' THEN 'r' || printf('%!.17g', {c}) \
         WHEN 'text' THEN json_array({c}) WHEN 'blob' THEN 'b' || hex({c}) END"
    )
}

/// The statement that reads one page of `table` after a rowid (`?1`, as text: rowids reach
/// 2^63; NULL for the first page), as one JSON text.
pub fn page_sql(table: &str, columns: &[String]) -> String {
    let cells: Vec<String> = columns.iter().map(|c| tagged(c)).collect();
    format!(
        "SELECT count(*), CAST(max(r) AS TEXT), '[' || coalesce(group_concat(j, ','), '') || ']' FROM \
         (SELECT rowid AS r, json_array(rowid, {}) AS j FROM {} WHERE ?1 IS NULL OR rowid > CAST(?1 AS INTEGER) ORDER BY rowid LIMIT ?2)",
        cells.join(", "),
        q(table)
    )
}

/// The statement that writes a page `page_sql` read (`?1`) into the same table of a replica.
pub fn apply_page_sql(table: &str, columns: &[String]) -> String {
    let names: Vec<String> = columns.iter().map(|c| q(c)).collect();
    let cells: Vec<String> = (1..=columns.len())
        .map(|i| {
            let x = format!("json_extract(value, '$[{i}]')");
            format!(
                "CASE json_type(value, '$[{i}]') WHEN 'array' THEN json_extract(value, '$[{i}][0]') WHEN 'text' THEN \
                 CASE substr({x}, 1, 1) WHEN 'i' THEN CAST(substr({x}, 2) AS INTEGER) WHEN 'r' THEN CAST(substr({x}, 2) AS REAL) \
                 WHEN 'b' THEN unhex(substr({x}, 2)) END END"
            )
        })
        .collect();
    format!(
        "INSERT OR REPLACE INTO {} (rowid, {}) SELECT json_extract(value, '$[0]'), {} FROM json_each(?1)",
        q(table),
        names.join(", "),
        cells.join(", ")
    )
}

/// One page of a re-copy, or `restart` when the copy can no longer be completed consistently.
pub fn page(store: &dyn Store, req: &PageRequest, listed: bool, now_ms: i64) -> Result<Page> {
    let restart = Page { restart: true, rows: "[]".into(), count: 0, last_rowid: req.after_rowid.clone(), retired: !listed };
    if !listed {
        return Ok(restart);
    }
    if req.epoch != epoch(store)? || req.h0 < meta_int(store, "log_floor")? || !logging(store)? {
        return Ok(restart);
    }
    let overtaken = store.query("SELECT 1 FROM tmp_replication_log WHERE seq > ? AND ddl = 1 LIMIT 1", &[Value::Integer(req.h0)])?;
    if !overtaken.is_empty() {
        return Ok(restart);
    }
    // The replica's position stays at h0 while it copies: the log is kept from there.
    store.execute(
        "INSERT INTO tmp_replication_followers (location, position, last_pull_at_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (location) DO UPDATE SET position = ?2, last_pull_at_ms = ?3",
        &[Value::text(&req.location), Value::Integer(req.h0), Value::Integer(now_ms)],
    )?;
    let after = req.after_rowid.as_deref().map_or(Value::Null, Value::text);
    let rows = store.query(&page_sql(&req.table, &req.columns), &[after, Value::Integer(PAGE_ROWS)])?;
    let r = rows.first().ok_or_else(|| Error::internal("a page read returned no row"))?;
    let count = r[0].as_i64().unwrap_or(0);
    Ok(Page {
        restart: false,
        rows: r[2].as_str().unwrap_or("[]").to_string(),
        count,
        last_rowid: if count > 0 { r[1].as_str().map(str::to_string) } else { req.after_rowid.clone() },
        retired: false,
    })
}

/// Drops the log entries every listed replica has applied, then the oldest beyond
/// `max_bytes` (a replica that needed them re-copies). Forgets replicas no longer listed.
pub fn trim(store: &dyn Store, locations: &[String], max_bytes: u64) -> Result<()> {
    if !logging(store)? {
        return Ok(());
    }
    let listed = serde_json::to_string(locations).expect("serializes");
    store
        .execute("DELETE FROM tmp_replication_followers WHERE location NOT IN (SELECT value FROM json_each(?))", &[Value::text(&listed)])?;
    let rows = store.query("SELECT count(*), min(position) FROM tmp_replication_followers WHERE position IS NOT NULL", &[])?;
    let (n, min) = rows.first().map_or((0, None), |r| (r[0].as_i64().unwrap_or(0), r[1].as_i64()));
    let mut floor = meta_int(store, "log_floor")?;
    if n as usize == locations.len() {
        if let Some(min) = min {
            floor = floor.max(min);
        }
    }
    let over = store.query(
        "SELECT seq FROM (SELECT seq, sum(bytes) OVER (ORDER BY seq DESC, idx DESC) AS tail FROM tmp_replication_log)
         WHERE tail > CAST(? AS INTEGER) ORDER BY seq DESC LIMIT 1",
        &[Value::text(max_bytes.min(i64::MAX as u64).to_string())],
    )?;
    if let Some(seq) = over.first().and_then(|r| r[0].as_i64()) {
        floor = floor.max(seq);
    }
    store.transaction(&[
        Stmt::new("DELETE FROM tmp_replication_log WHERE seq <= ?", vec![Value::Integer(floor)]),
        Stmt::new("UPDATE tmp_replication_meta SET value = ? WHERE key = 'log_floor'", vec![Value::text(floor.to_string())]),
    ])
}

/// One entry of `GET /replication/replicas`, from what the primary knows of its replicas
/// (their last pull): it answers even while a replica is unreachable.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReplicaStatus {
    pub location: String,
    pub bookmark: Option<String>,
    pub lag_ms: Option<i64>,
    pub last_pull_at: Option<String>,
    pub last_error: Option<String>,
    pub tables: Option<i64>,
}

/// Every listed replica's status. `lag_ms`: 0 when it holds the primary's position, else how
/// long ago the primary committed the oldest change it does not hold (at least 1: a replica
/// that is behind never reads as caught up); null before its first pull.
pub fn statuses(store: &dyn Store, locations: &[String], now_ms: i64) -> Result<Vec<ReplicaStatus>> {
    let head = crate::catalog::bookmark_position(store)?;
    let mut out = Vec::new();
    for loc in locations {
        let rows = store.query(
            "SELECT position, last_pull_at_ms, last_error, tables FROM tmp_replication_followers WHERE location = ?",
            &[Value::text(loc)],
        )?;
        let Some(r) = rows.first() else {
            out.push(ReplicaStatus {
                location: loc.clone(),
                bookmark: None,
                lag_ms: None,
                last_pull_at: None,
                last_error: None,
                tables: None,
            });
            continue;
        };
        let position = r[0].as_i64();
        let lag_ms = match position {
            None => None,
            Some(p) if p >= head => Some(0),
            Some(p) => {
                // The oldest change it lacks; when those entries were trimmed (it re-copies), the
                // oldest one left is younger than them, and without any, its last pull is.
                let oldest = store.query("SELECT min(at_ms) FROM tmp_replication_log WHERE seq > ?", &[Value::Integer(p)])?;
                let since = oldest.first().and_then(|o| o[0].as_i64()).or(r[1].as_i64()).unwrap_or(now_ms);
                Some((now_ms - since).max(1))
            }
        };
        out.push(ReplicaStatus {
            location: loc.clone(),
            bookmark: position.map(crate::bookmark::format),
            lag_ms,
            last_pull_at: r[1].as_i64().map(crate::time::format_epoch_ms),
            last_error: r[2].as_str().map(str::to_string),
            tables: r[3].as_i64(),
        });
    }
    Ok(out)
}

// ---- the replica ----

/// The replica's state, read by name.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FollowState {
    pub location: Option<String>,
    pub epoch: Option<String>,
    /// `empty` (nothing copied yet), `copy` (a re-copy under way), `follow` (replaying the log).
    pub phase: String,
    pub position: Option<i64>,
    pub copy: Option<String>,
    pub last_pull_at_ms: Option<i64>,
    pub last_error: Option<String>,
}

impl FollowState {
    /// Whether reads may be answered here: the replica holds a whole state of the primary.
    pub fn serving(&self) -> bool {
        self.phase == "follow" && self.position.is_some()
    }
}

pub fn load(store: &dyn Store) -> Result<FollowState> {
    let rows = store.query(
        "SELECT json_object('location', location, 'epoch', epoch, 'phase', phase, 'position', position, 'copy', copy,
                'last_pull_at_ms', last_pull_at_ms, 'last_error', last_error) FROM tmp_replication_follow WHERE id = 1",
        &[],
    )?;
    let text = rows.first().and_then(|r| r[0].as_str()).ok_or_else(|| Error::internal("the read replica's state is missing"))?;
    serde_json::from_str(text).map_err(|e| Error::internal(format!("the read replica's state is unreadable: {e}")))
}

/// Records which location this object serves (the Worker says so with each request).
pub fn remember_location(store: &dyn Store, location: &str) -> Result<()> {
    store.execute("UPDATE tmp_replication_follow SET location = ?1 WHERE id = 1 AND location IS NOT ?1", &[Value::text(location)])
}

/// Whether this object is a read replica (it has served as one).
pub fn is_replica(store: &dyn Store) -> Result<bool> {
    Ok(load(store)?.location.is_some())
}

/// Progress of a re-copy, kept with the replica's state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct CopyProgress {
    plan: CopyPlan,
    /// The table being copied (index into `plan.tables`) and the last rowid copied from it.
    table: usize,
    after_rowid: Option<String>,
}

/// The replica's way to the primary (Durable Object RPC in production).
#[allow(async_fn_in_trait)]
pub trait Primary {
    async fn pull(&self, req: &PullRequest) -> Result<PullAnswer>;
    async fn copy_plan(&self, location: &str) -> Result<CopyPlan>;
    async fn page(&self, req: &PageRequest) -> Result<Page>;
}

/// What one `step` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The replica holds everything the primary had when it answered.
    CaughtUp,
    /// It moved on and there is more to do.
    More,
    /// Its location is no longer listed: it dropped its copy and pulls no more.
    Retired,
}

/// One exchange with the primary, applied in one transaction with the state it reaches.
pub async fn step<P: Primary>(store: &dyn Store, primary: &P) -> Result<Step> {
    let st = load(store)?;
    let location = st.location.clone().ok_or_else(|| Error::internal("a read replica was asked to pull before knowing its location"))?;
    let result = match st.phase.as_str() {
        "follow" => follow_step(store, primary, &st, &location).await,
        "copy" => copy_step(store, primary, &st, &location).await,
        _ => begin_copy(store, primary, &location).await,
    };
    if let Err(e) = &result {
        store.execute("UPDATE tmp_replication_follow SET last_error = ? WHERE id = 1", &[Value::text(e.message())])?;
    }
    result
}

/// Pulls until caught up, for at most `budget_ms` by `now_ms`.
pub async fn catch_up<P: Primary>(store: &dyn Store, primary: &P, now_ms: impl Fn() -> i64, budget_ms: i64) -> Result<Step> {
    let until = now_ms() + budget_ms;
    loop {
        match step(store, primary).await? {
            Step::More => {}
            done => return Ok(done),
        }
        if now_ms() >= until {
            return Ok(Step::More);
        }
    }
}

async fn follow_step<P: Primary>(store: &dyn Store, primary: &P, st: &FollowState, location: &str) -> Result<Step> {
    let position = st.position.unwrap_or(0);
    let req = PullRequest {
        location: location.to_string(),
        epoch: st.epoch.clone(),
        after: position,
        max_bytes: PULL_MAX_BYTES,
        tables: table_count(store)?,
        last_error: st.last_error.clone(),
    };
    let answer = primary.pull(&req).await?;
    if answer.retired {
        return retire(store);
    }
    if answer.recopy {
        store.execute("UPDATE tmp_replication_follow SET phase = 'empty', copy = NULL WHERE id = 1", &[])?;
        return Ok(Step::More);
    }
    let mut stmts = Vec::new();
    for e in &answer.entries {
        for s in &e.stmts {
            stmts.push(wire_to_stmt(s)?);
        }
    }
    let upto = answer.upto.max(position);
    stmts.extend(position_stmts(upto));
    store.transaction(&stmts)?;
    Ok(if upto == position || answer.entries.is_empty() { Step::CaughtUp } else { Step::More })
}

fn wire_to_stmt(s: &WireStmt) -> Result<Stmt> {
    let params = match (&s.p1, &s.params) {
        (Some(p1), _) => vec![Value::text(p1.clone())],
        (None, Some(p)) => decode_params(p)?,
        (None, None) => Vec::new(),
    };
    Ok(Stmt::new(s.sql.clone(), params))
}

/// The replica's position (and its bookmark, which reads answer with) moved to `seq`.
fn position_stmts(seq: i64) -> Vec<Stmt> {
    vec![
        Stmt::new(
            format!("UPDATE tmp_replication_follow SET position = ?1, last_error = NULL, last_pull_at_ms = {NOW_MS} WHERE id = 1"),
            vec![Value::Integer(seq)],
        ),
        Stmt::new("UPDATE tmp_replication_meta SET value = ? WHERE key = 'bookmark'", vec![Value::text(seq.to_string())]),
    ]
}

/// Drops the replica's tables and state: its location was taken out of `REPLICA_LOCATIONS`.
/// Listed again, it copies afresh.
fn retire(store: &dyn Store) -> Result<Step> {
    let mut stmts: Vec<Stmt> = data_tables(store)?.iter().map(|(n, _)| Stmt::new(format!("DROP TABLE {}", q(n)), vec![])).collect();
    stmts.push(Stmt::new(
        "UPDATE tmp_replication_follow SET phase = 'empty', position = NULL, copy = NULL, epoch = NULL WHERE id = 1",
        vec![],
    ));
    stmts.push(Stmt::new("UPDATE tmp_replication_meta SET value = '0' WHERE key = 'bookmark'", vec![]));
    store.transaction(&stmts)?;
    Ok(Step::Retired)
}

async fn begin_copy<P: Primary>(store: &dyn Store, primary: &P, location: &str) -> Result<Step> {
    let plan = primary.copy_plan(location).await?;
    if plan.retired {
        return retire(store);
    }
    // Out with whatever the replica held; in with the primary's tables, empty.
    let mut stmts: Vec<Stmt> = data_tables(store)?.iter().map(|(n, _)| Stmt::new(format!("DROP TABLE {}", q(n)), vec![])).collect();
    for t in &plan.tables {
        stmts.push(Stmt::new(t.sql.clone(), vec![]));
        stmts.extend(t.indexes.iter().map(|i| Stmt::new(i.clone(), vec![])));
    }
    let progress = CopyProgress { plan: plan.clone(), table: 0, after_rowid: None };
    stmts.push(Stmt::new(
        "UPDATE tmp_replication_follow SET phase = 'copy', epoch = ?, copy = ?, last_error = NULL WHERE id = 1",
        vec![Value::text(&plan.epoch), Value::text(serde_json::to_string(&progress).expect("serializes"))],
    ));
    store.transaction(&stmts)?;
    Ok(Step::More)
}

async fn copy_step<P: Primary>(store: &dyn Store, primary: &P, st: &FollowState, location: &str) -> Result<Step> {
    let mut progress: CopyProgress = st
        .copy
        .as_deref()
        .and_then(|c| serde_json::from_str(c).ok())
        .ok_or_else(|| Error::internal("the read replica's copy progress is unreadable"))?;
    let Some(table) = progress.plan.tables.get(progress.table).cloned() else {
        // Every table copied: from here on the log.
        let mut stmts = position_stmts(progress.plan.h0);
        stmts.push(Stmt::new("UPDATE tmp_replication_follow SET phase = 'follow', copy = NULL WHERE id = 1", vec![]));
        store.transaction(&stmts)?;
        return Ok(Step::More);
    };
    let req = PageRequest {
        location: location.to_string(),
        epoch: progress.plan.epoch.clone(),
        h0: progress.plan.h0,
        table: table.name.clone(),
        columns: table.columns.clone(),
        after_rowid: progress.after_rowid.clone(),
    };
    let page = primary.page(&req).await?;
    if page.retired {
        return retire(store);
    }
    if page.restart {
        store.execute("UPDATE tmp_replication_follow SET phase = 'empty', copy = NULL WHERE id = 1", &[])?;
        return Ok(Step::More);
    }
    let mut stmts = Vec::new();
    if page.count > 0 {
        stmts.push(Stmt::new(apply_page_sql(&table.name, &table.columns), vec![Value::text(page.rows)]));
    }
    if page.count < PAGE_ROWS {
        progress.table += 1;
        progress.after_rowid = None;
    } else {
        progress.after_rowid = page.last_rowid;
    }
    stmts.push(Stmt::new(
        "UPDATE tmp_replication_follow SET copy = ? WHERE id = 1",
        vec![Value::text(serde_json::to_string(&progress).expect("serializes"))],
    ));
    store.transaction(&stmts)?;
    Ok(Step::More)
}

#[cfg(test)]
mod tests;
