//! The replica's bookkeeping tables: configs, per-config sync state, and run history.
//! Every number stored here is far below 2^53, so it survives JS; exact values (cursors,
//! checkpoints) are stored as JSON text.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::{Stmt, Store};
use crate::value::Value;
use serde::Serialize;

pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS tmp_replication_configs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        target_table TEXT NOT NULL UNIQUE,
        config TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tmp_replication_state (
        config_id INTEGER PRIMARY KEY,
        generation INTEGER NOT NULL DEFAULT 0,
        phase TEXT NOT NULL DEFAULT 'copy',
        checkpoint TEXT,
        schema TEXT,
        cursor TEXT,
        last_status TEXT,
        last_sync_at TEXT,
        last_success_at TEXT,
        next_sync_at INTEGER,
        last_error TEXT,
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        rows_synced INTEGER NOT NULL DEFAULT 0,
        total_rows_synced INTEGER NOT NULL DEFAULT 0,
        null_cursor_rows INTEGER,
        lock_run_id INTEGER,
        lock_until INTEGER)",
    "CREATE TABLE IF NOT EXISTS tmp_replication_runs (
        run_id INTEGER PRIMARY KEY AUTOINCREMENT,
        config_id INTEGER NOT NULL,
        status TEXT NOT NULL,
        mode TEXT NOT NULL,
        rows_upserted INTEGER NOT NULL DEFAULT 0,
        rows_deleted INTEGER NOT NULL DEFAULT 0,
        batches INTEGER NOT NULL DEFAULT 0,
        cursor TEXT,
        started_at TEXT NOT NULL,
        started_ms INTEGER NOT NULL,
        finished_at TEXT,
        duration_ms INTEGER,
        error TEXT,
        source_ms INTEGER NOT NULL DEFAULT 0,
        write_ms INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX IF NOT EXISTS tmp_replication_runs_by_config ON tmp_replication_runs (config_id, run_id)",
];

pub fn init(store: &dyn Store) -> Result<()> {
    for s in SCHEMA {
        store.execute(s, &[])?;
    }
    Ok(())
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}
fn opt_int(v: &Value) -> Option<i64> {
    v.as_i64()
}
fn opt_text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}
fn text_or_null(s: Option<&str>) -> Value {
    s.map_or(Value::Null, Value::text)
}

// ---- configs ----

pub fn load_configs(store: &dyn Store) -> Result<Vec<Config>> {
    let rows = store.query("SELECT config FROM tmp_replication_configs ORDER BY id", &[])?;
    rows.into_iter().map(|r| parse_config(&r[0])).collect()
}

pub fn load_config(store: &dyn Store, id: i64) -> Result<Option<Config>> {
    let rows = store.query("SELECT config FROM tmp_replication_configs WHERE id = ?", &[Value::Integer(id)])?;
    rows.first().map(|r| parse_config(&r[0])).transpose()
}

fn parse_config(v: &Value) -> Result<Config> {
    let s = v.as_str().ok_or_else(|| Error::internal("stored config is not text"))?;
    serde_json::from_str(s).map_err(|e| Error::internal(format!("stored config is unreadable: {e}")))
}

pub fn target_in_use(store: &dyn Store, target: &str, except_id: i64) -> Result<Option<i64>> {
    let rows = store.query(
        "SELECT id FROM tmp_replication_configs WHERE lower(target_table) = lower(?) AND id <> ?",
        &[Value::text(target), Value::Integer(except_id)],
    )?;
    Ok(rows.first().map(|r| int(&r[0])))
}

/// The id the next created config gets (ids are never reused: AUTOINCREMENT).
pub fn next_config_id(store: &dyn Store) -> Result<i64> {
    let rows = store.query("SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'tmp_replication_configs'), 0) + 1", &[])?;
    Ok(rows.first().map_or(1, |r| int(&r[0])))
}

pub fn insert_config(store: &dyn Store, c: &Config) -> Result<()> {
    let json = serde_json::to_string(c).expect("config serializes");
    store.transaction(&[
        Stmt::new(
            "INSERT INTO tmp_replication_configs (id, target_table, config) VALUES (?, ?, ?)",
            vec![Value::Integer(c.id), Value::text(&c.target_table), Value::text(json)],
        ),
        Stmt::new("INSERT INTO tmp_replication_state (config_id) VALUES (?)", vec![Value::Integer(c.id)]),
    ])
}

/// Stores `c`; with `reset`, also forgets all progress so the next sync is a fresh full copy.
pub fn update_config(store: &dyn Store, c: &Config, reset: bool, now_ms: i64) -> Result<()> {
    let json = serde_json::to_string(c).expect("config serializes");
    let id = Value::Integer(c.id);
    let mut stmts = vec![Stmt::new(
        "UPDATE tmp_replication_configs SET target_table = ?, config = ? WHERE id = ?",
        vec![Value::text(&c.target_table), Value::text(json), id.clone()],
    )];
    if reset {
        stmts.push(Stmt::new(crate::replica_sql::drop_table(&crate::replica_sql::staging_table(c.id)), vec![]));
        stmts.push(Stmt::new(
            "UPDATE tmp_replication_state SET generation = generation + 1, phase = 'copy', checkpoint = NULL,
             schema = NULL, cursor = NULL, next_sync_at = NULL, null_cursor_rows = NULL WHERE config_id = ?",
            vec![id],
        ));
    } else {
        // A shorter interval takes effect now rather than after the old one runs out. NULL
        // (due at once: new, reset, or never synced) stays NULL: SQLite's min() with a NULL
        // argument is NULL, so enabling a never-synced config does not postpone its first copy.
        stmts.push(Stmt::new(
            "UPDATE tmp_replication_state SET next_sync_at = min(next_sync_at, ?1) WHERE config_id = ?2",
            vec![Value::Integer(now_ms + c.interval_seconds * 1000), id],
        ));
    }
    store.transaction(&stmts)
}

pub fn delete_config(store: &dyn Store, c: &Config, drop_target: bool) -> Result<()> {
    let id = Value::Integer(c.id);
    let mut stmts = vec![
        Stmt::new("DELETE FROM tmp_replication_configs WHERE id = ?", vec![id.clone()]),
        Stmt::new("DELETE FROM tmp_replication_state WHERE config_id = ?", vec![id.clone()]),
        Stmt::new("DELETE FROM tmp_replication_runs WHERE config_id = ?", vec![id]),
        Stmt::new(crate::replica_sql::drop_table(&crate::replica_sql::staging_table(c.id)), vec![]),
    ];
    if drop_target {
        stmts.push(Stmt::new(crate::replica_sql::drop_table(&c.target_table), vec![]));
    }
    store.transaction(&stmts)
}

// ---- state ----

#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub config_id: i64,
    pub generation: i64,
    pub phase: Phase,
    /// JSON array of `Value`s: the keyset position after the last committed batch.
    pub checkpoint: Option<String>,
    pub schema: Option<String>,
    pub cursor: Option<String>,
    pub last_status: Option<String>,
    pub last_sync_at: Option<String>,
    pub last_success_at: Option<String>,
    pub next_sync_at: Option<i64>,
    pub last_error: Option<String>,
    pub consecutive_failures: i64,
    pub rows_synced: i64,
    pub total_rows_synced: i64,
    pub null_cursor_rows: Option<i64>,
    pub lock_run_id: Option<i64>,
    pub lock_until: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Filling the staging table; swapped in when the copy reaches the end of the source.
    Copy,
    /// The target is complete; incremental configs page forward from the checkpoint.
    Incremental,
    /// A full-mode copy finished; the next run starts a new one.
    Done,
}

impl Phase {
    fn parse(s: &str) -> Phase {
        match s {
            "incremental" => Phase::Incremental,
            "done" => Phase::Done,
            _ => Phase::Copy,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Copy => "copy",
            Phase::Incremental => "incremental",
            Phase::Done => "done",
        }
    }
}

const STATE_COLUMNS: &str = "config_id, generation, phase, checkpoint, schema, cursor, last_status, last_sync_at,
    last_success_at, next_sync_at, last_error, consecutive_failures, rows_synced, total_rows_synced,
    null_cursor_rows, lock_run_id, lock_until";

fn state_from_row(r: &[Value]) -> State {
    State {
        config_id: int(&r[0]),
        generation: int(&r[1]),
        phase: Phase::parse(r[2].as_str().unwrap_or("copy")),
        checkpoint: opt_text(&r[3]),
        schema: opt_text(&r[4]),
        cursor: opt_text(&r[5]),
        last_status: opt_text(&r[6]),
        last_sync_at: opt_text(&r[7]),
        last_success_at: opt_text(&r[8]),
        next_sync_at: opt_int(&r[9]),
        last_error: opt_text(&r[10]),
        consecutive_failures: int(&r[11]),
        rows_synced: int(&r[12]),
        total_rows_synced: int(&r[13]),
        null_cursor_rows: opt_int(&r[14]),
        lock_run_id: opt_int(&r[15]),
        lock_until: opt_int(&r[16]),
    }
}

pub fn load_state(store: &dyn Store, config_id: i64) -> Result<Option<State>> {
    let rows =
        store.query(&format!("SELECT {STATE_COLUMNS} FROM tmp_replication_state WHERE config_id = ?"), &[Value::Integer(config_id)])?;
    Ok(rows.first().map(|r| state_from_row(r)))
}

pub fn load_states(store: &dyn Store) -> Result<Vec<State>> {
    let rows = store.query(&format!("SELECT {STATE_COLUMNS} FROM tmp_replication_state ORDER BY config_id"), &[])?;
    Ok(rows.iter().map(|r| state_from_row(r)).collect())
}

/// Progress written in the same transaction as the batch it describes.
pub fn checkpoint_stmt(config_id: i64, phase: Phase, checkpoint: Option<&str>, cursor: Option<&str>, schema: &str) -> Stmt {
    Stmt::new(
        "UPDATE tmp_replication_state SET phase = ?, checkpoint = ?, cursor = ?, schema = ? WHERE config_id = ?",
        vec![Value::text(phase.as_str()), text_or_null(checkpoint), text_or_null(cursor), Value::text(schema), Value::Integer(config_id)],
    )
}

pub fn set_lock(store: &dyn Store, config_id: i64, run_id: i64, until_ms: i64) -> Result<()> {
    store.execute(
        "UPDATE tmp_replication_state SET lock_run_id = ?, lock_until = ? WHERE config_id = ?",
        &[Value::Integer(run_id), Value::Integer(until_ms), Value::Integer(config_id)],
    )
}

/// Outcome bookkeeping at the end of a run; releases the lock if this run still holds it.
#[allow(clippy::too_many_arguments)]
pub fn finish_stmt(
    config_id: i64,
    run_id: i64,
    status: &str,
    now_iso: &str,
    success: bool,
    next_sync_at: i64,
    error: Option<&str>,
    rows: i64,
    null_cursor_rows: Option<i64>,
) -> Stmt {
    Stmt::new(
        "UPDATE tmp_replication_state SET
            last_status = ?1, last_sync_at = ?2,
            last_success_at = CASE WHEN ?3 THEN ?2 ELSE last_success_at END,
            consecutive_failures = CASE WHEN ?3 THEN 0 ELSE consecutive_failures + 1 END,
            last_error = ?5, next_sync_at = ?4, rows_synced = ?6,
            total_rows_synced = total_rows_synced + ?6,
            null_cursor_rows = coalesce(?7, null_cursor_rows),
            lock_run_id = CASE WHEN lock_run_id = ?8 THEN NULL ELSE lock_run_id END,
            lock_until = CASE WHEN lock_run_id = ?8 THEN NULL ELSE lock_until END
         WHERE config_id = ?9",
        vec![
            Value::text(status),
            Value::text(now_iso),
            Value::Integer(success as i64),
            Value::Integer(next_sync_at),
            text_or_null(error),
            Value::Integer(rows),
            null_cursor_rows.map_or(Value::Null, Value::Integer),
            Value::Integer(run_id),
            Value::Integer(config_id),
        ],
    )
}

/// Releases the lock if `run_id` still holds it, leaving the rest of the state alone.
pub fn release_lock_stmt(config_id: i64, run_id: i64) -> Stmt {
    Stmt::new(
        "UPDATE tmp_replication_state SET lock_run_id = NULL, lock_until = NULL WHERE config_id = ? AND lock_run_id = ?",
        vec![Value::Integer(config_id), Value::Integer(run_id)],
    )
}

// ---- runs ----

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub config_id: i64,
    pub run_id: i64,
    pub status: String,
    pub mode: String,
    pub rows_upserted: i64,
    pub rows_deleted: i64,
    pub batches: i64,
    pub cursor: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    /// Milliseconds the run waited on the source, and spent writing the replica.
    pub source_ms: i64,
    pub write_ms: i64,
}

pub fn start_run(store: &dyn Store, config_id: i64, mode: &str, started_at: &str, started_ms: i64) -> Result<i64> {
    let rows = store.query(
        "INSERT INTO tmp_replication_runs (config_id, status, mode, started_at, started_ms) VALUES (?, 'running', ?, ?, ?) RETURNING run_id",
        &[Value::Integer(config_id), Value::text(mode), Value::text(started_at), Value::Integer(started_ms)],
    )?;
    rows.first().map(|r| int(&r[0])).ok_or_else(|| Error::internal("run insert returned no id"))
}

pub fn finish_run_stmt(r: &RunRecord) -> Stmt {
    Stmt::new(
        "UPDATE tmp_replication_runs SET status = ?, rows_upserted = ?, rows_deleted = ?, batches = ?, cursor = ?,
         finished_at = ?, duration_ms = ?, error = ?, source_ms = ?, write_ms = ? WHERE run_id = ?",
        vec![
            Value::text(&r.status),
            Value::Integer(r.rows_upserted),
            Value::Integer(r.rows_deleted),
            Value::Integer(r.batches),
            text_or_null(r.cursor.as_deref()),
            text_or_null(r.finished_at.as_deref()),
            r.duration_ms.map_or(Value::Null, Value::Integer),
            text_or_null(r.error.as_deref()),
            Value::Integer(r.source_ms),
            Value::Integer(r.write_ms),
            Value::Integer(r.run_id),
        ],
    )
}

/// Runs left `running` by a process that died: they ended when their lock expired.
pub fn close_abandoned_runs(store: &dyn Store, config_id: i64, now_iso: &str) -> Result<()> {
    store.execute(
        "UPDATE tmp_replication_runs SET status = 'error', finished_at = ?,
         error = 'the run was interrupted (its process ended before it finished); the next run resumed from the last checkpoint'
         WHERE config_id = ? AND status = 'running'",
        &[Value::text(now_iso), Value::Integer(config_id)],
    )
}

const RUN_COLUMNS: &str =
    "config_id, run_id, status, mode, rows_upserted, rows_deleted, batches, cursor, started_at, finished_at, duration_ms, error, source_ms, write_ms";

fn run_from_row(r: &[Value]) -> RunRecord {
    RunRecord {
        config_id: int(&r[0]),
        run_id: int(&r[1]),
        status: opt_text(&r[2]).unwrap_or_default(),
        mode: opt_text(&r[3]).unwrap_or_default(),
        rows_upserted: int(&r[4]),
        rows_deleted: int(&r[5]),
        batches: int(&r[6]),
        cursor: opt_text(&r[7]),
        started_at: opt_text(&r[8]).unwrap_or_default(),
        finished_at: opt_text(&r[9]),
        duration_ms: opt_int(&r[10]),
        error: opt_text(&r[11]),
        source_ms: int(&r[12]),
        write_ms: int(&r[13]),
    }
}

pub fn list_runs(store: &dyn Store, config_id: Option<i64>, limit: i64) -> Result<Vec<RunRecord>> {
    let rows = match config_id {
        Some(id) => store.query(
            &format!("SELECT {RUN_COLUMNS} FROM tmp_replication_runs WHERE config_id = ? ORDER BY run_id DESC LIMIT ?"),
            &[Value::Integer(id), Value::Integer(limit)],
        )?,
        None => store
            .query(&format!("SELECT {RUN_COLUMNS} FROM tmp_replication_runs ORDER BY run_id DESC LIMIT ?"), &[Value::Integer(limit)])?,
    };
    Ok(rows.iter().map(|r| run_from_row(r)).collect())
}

pub fn table_exists(store: &dyn Store, table: &str) -> Result<bool> {
    let rows = store.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", &[Value::text(table)])?;
    Ok(!rows.is_empty())
}
