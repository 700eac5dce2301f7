//! The replica's bookkeeping: configs, per-config sync state, run history, and the run
//! ledger through which every run begins, commits its batches and finishes.
//!
//! Every number stored here is far below 2^53, so it survives JS; exact values (cursors,
//! checkpoints) are stored as JSON text. Rows are read by name: each read selects one
//! `json_object` per row, which serde turns into the typed struct, so no column list has to
//! stay in step with positions. The tables carry a schema version and migrate in place.

use crate::config::{Config, Mode};
use crate::error::{Error, Result};
use crate::schedule;
use crate::store::{Stmt, Store};
use crate::value::Value;
use serde::{Deserialize, Deserializer, Serialize};
use std::cell::RefCell;
use std::collections::HashSet;

/// The bookkeeping schema, one entry per version. Version 1 is the schema every replica had
/// before versions were recorded: `CREATE ... IF NOT EXISTS`, so a replica deployed with it
/// (and no version recorded) passes through it unchanged.
const MIGRATIONS: &[&[&str]] = &[
    // 1: configs, state, runs.
    &[
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
    ],
    // 2: checkpoints become tagged (`{"keyset": [...]}`), making room for other kinds of
    // position (an LSN, a binlog position) beside the keyset. Text concatenation, so every
    // value inside keeps its exact digits.
    &["UPDATE tmp_replication_state SET checkpoint = '{\"keyset\":' || checkpoint || '}' WHERE checkpoint LIKE '[%'"],
    // 3: change feeds (cdc): one row per replication slot, shared by the configs that read
    // it, and an id for this replica instance, so that its default slot names are its own.
    &[
        "CREATE TABLE IF NOT EXISTS tmp_replication_slots (
        slot_key TEXT PRIMARY KEY,
        slot_name TEXT NOT NULL,
        publication TEXT NOT NULL,
        own_publication INTEGER NOT NULL DEFAULT 0,
        created INTEGER NOT NULL DEFAULT 0,
        confirmed_lsn TEXT,
        data_as_of TEXT,
        slot_lag_bytes INTEGER,
        wal_status TEXT,
        lock_run_id INTEGER,
        lock_until INTEGER)",
        "INSERT OR IGNORE INTO tmp_replication_meta (key, value) VALUES ('instance_id', lower(hex(randomblob(8))))",
    ],
    // 4: `data_as_of` (status, metrics): when the replica last held every change the source had
    // committed, and when the copy under way began (a full copy spread over several runs is
    // as old as its first run). A replica that already completed runs gets, conservatively,
    // the start of the first run after the one before its last complete run: a config that
    // was reset since (back in phase `copy`) gets none.
    &[
        "ALTER TABLE tmp_replication_state ADD COLUMN data_as_of_ms INTEGER",
        "ALTER TABLE tmp_replication_state ADD COLUMN pass_started_ms INTEGER",
        "UPDATE tmp_replication_state AS s SET data_as_of_ms = (
            SELECT min(r.started_ms) FROM tmp_replication_runs r
            WHERE r.config_id = s.config_id
              AND r.run_id <= (SELECT max(run_id) FROM tmp_replication_runs WHERE config_id = s.config_id AND status = 'ok')
              AND r.run_id > coalesce((SELECT max(o.run_id) FROM tmp_replication_runs o WHERE o.config_id = s.config_id
                  AND o.status = 'ok'
                  AND o.run_id < (SELECT max(run_id) FROM tmp_replication_runs WHERE config_id = s.config_id AND status = 'ok')), 0))
         WHERE s.phase <> 'copy'",
    ],
    // 5: where a cdc stream keeps a big origin transaction's statements until its commit
    // makes them visible in one replica transaction.
    &["CREATE TABLE IF NOT EXISTS tmp_cdc_spill (seq INTEGER PRIMARY KEY, json TEXT NOT NULL)"],
    // 6: delete reconciliation: a pass under way (its progress, JSON), when the last one
    // finished, and whether a run reconciled.
    &[
        "ALTER TABLE tmp_replication_state ADD COLUMN reconcile TEXT",
        "ALTER TABLE tmp_replication_state ADD COLUMN last_reconcile_at TEXT",
        "ALTER TABLE tmp_replication_runs ADD COLUMN reconciled INTEGER NOT NULL DEFAULT 0",
    ],
    // 7: bookmarks (`bookmark.rs`): the position of the replica's applied writes, bumped with
    // every change of a replica table, and each finished run's position after it. Runs
    // recorded before keep a NULL bookmark: their position is unknown.
    &[
        "INSERT OR IGNORE INTO tmp_replication_meta (key, value) VALUES ('bookmark', '0')",
        "ALTER TABLE tmp_replication_runs ADD COLUMN bookmark TEXT",
    ],
    // 8: regional read replicas (`follow`): the primary's change log and what it knows of its
    // replicas; a replica's own state.
    crate::follow::MIGRATION,
];

/// The version `migrate` brings the bookkeeping tables to.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

const META_DDL: &str = "CREATE TABLE IF NOT EXISTS tmp_replication_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)";

/// Brings the bookkeeping tables to `SCHEMA_VERSION`, each version in its own transaction
/// together with its record, so that a crash between two leaves a consistent, resumable state.
pub fn migrate(store: &dyn Store) -> Result<()> {
    store.execute(META_DDL, &[])?;
    let rows = store.query("SELECT CAST(value AS INTEGER) FROM tmp_replication_meta WHERE key = 'schema_version'", &[])?;
    let current = rows.first().and_then(|r| r[0].as_i64()).unwrap_or(0);
    if current > SCHEMA_VERSION {
        return Err(Error::internal(format!(
            "the replica's bookkeeping tables are at schema version {current}, newer than this build's {SCHEMA_VERSION}: deploy the newer build"
        )));
    }
    for (i, steps) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i as i64 + 1;
        let mut stmts: Vec<Stmt> = steps.iter().map(|s| Stmt::new(*s, vec![])).collect();
        stmts.push(Stmt::new(
            "INSERT INTO tmp_replication_meta (key, value) VALUES ('schema_version', ?1) ON CONFLICT (key) DO UPDATE SET value = ?1",
            vec![Value::text(version.to_string())],
        ));
        store.transaction(&stmts)?;
    }
    Ok(())
}

/// `SELECT json_object('a', a, 'b', b, ...) FROM <from>`: one JSON text per row, read by name.
fn select_json(fields: &[&str], from: &str) -> String {
    let pairs: Vec<String> = fields.iter().map(|f| format!("'{f}', {f}")).collect();
    format!("SELECT json_object({}) FROM {from}", pairs.join(", "))
}

fn rows_as<T: for<'de> Deserialize<'de>>(store: &dyn Store, sql: &str, params: &[Value], what: &str) -> Result<Vec<T>> {
    store
        .query(sql, params)?
        .into_iter()
        .map(|r| {
            let text = r.first().and_then(Value::as_str).ok_or_else(|| Error::internal(format!("{what}: not a JSON row")))?;
            serde_json::from_str(text).map_err(|e| Error::internal(format!("{what} is unreadable: {e}")).with_cause(e))
        })
        .collect()
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
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
             schema = NULL, cursor = NULL, next_sync_at = NULL, null_cursor_rows = NULL,
             data_as_of_ms = NULL, pass_started_ms = NULL, reconcile = NULL WHERE config_id = ?",
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

/// Moves the bookmark one position on; committed in the same transaction as every change of a
/// replica table (`Ledger::commit_batch`, `delete_config` with `drop_table`), so that a reader
/// that sees the change sees the new position, and never the reverse.
const BUMP_BOOKMARK: &str = "UPDATE tmp_replication_meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'bookmark'";

/// The replica's bookmark now (see `bookmark.rs`).
pub fn bookmark(store: &dyn Store) -> Result<String> {
    Ok(crate::bookmark::format(bookmark_position(store)?))
}

/// The position the bookmark names.
pub fn bookmark_position(store: &dyn Store) -> Result<i64> {
    let rows = store.query("SELECT CAST(value AS INTEGER) FROM tmp_replication_meta WHERE key = 'bookmark'", &[])?;
    Ok(rows.first().map_or(0, |r| int(&r[0])))
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
        stmts.push(Stmt::new(BUMP_BOOKMARK, vec![]));
        // Read replicas drop it too.
        stmts = crate::follow::with_log(store, stmts)?;
    }
    store.transaction(&stmts)
}

// ---- state ----

/// Where a config's sync stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Filling the staging table; swapped in when the copy reaches the end of the source.
    Copy,
    /// The target is complete; incremental configs page forward from the checkpoint.
    Incremental,
    /// A full-mode copy finished; the next run starts a new one.
    Done,
    /// cdc: the copy is complete in the staging table, which the change feed brings up to the
    /// position in the checkpoint before it is swapped in.
    CatchUp,
    /// cdc: the target is live and the change feed writes it.
    Streaming,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Copy => "copy",
            Phase::Incremental => "incremental",
            Phase::Done => "done",
            Phase::CatchUp => "catchup",
            Phase::Streaming => "streaming",
        }
    }
}

/// The position a run resumes from, committed with the batch it follows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Checkpoint {
    /// The keyset (cursor, then key) of the last row written.
    Keyset(Vec<Value>),
    /// A change feed position (a PostgreSQL LSN, `0/16B3748`).
    Lsn(String),
}

impl Checkpoint {
    pub fn keyset(&self) -> &[Value] {
        match self {
            Checkpoint::Keyset(k) => k,
            Checkpoint::Lsn(_) => &[],
        }
    }
    fn to_text(&self) -> String {
        serde_json::to_string(self).expect("checkpoints serialize")
    }
}

/// How a run ended, or that it is still under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Ok,
    /// Stopped at the time budget with more to copy; the next run resumes.
    Partial,
    Error,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Ok => "ok",
            RunStatus::Partial => "partial",
            RunStatus::Error => "error",
        }
    }
}

/// A config's state as status shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    NeverSynced,
    Idle,
    Running,
    Backfilling,
    Error,
    Disabled,
}

impl State {
    /// `running`: a live run holds the config's lock.
    pub fn of(enabled: bool, sync: Option<&SyncState>, running: bool) -> State {
        if running {
            State::Running
        } else if !enabled {
            State::Disabled
        } else {
            match sync.and_then(|s| s.last_status) {
                None | Some(RunStatus::Running) => State::NeverSynced,
                Some(RunStatus::Error) => State::Error,
                Some(RunStatus::Partial) => State::Backfilling,
                Some(RunStatus::Ok) => State::Idle,
            }
        }
    }
}

/// One row of `tmp_replication_state`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncState {
    pub config_id: i64,
    /// Bumped by every reset: a run whose generation is gone must not write.
    pub generation: i64,
    pub phase: Phase,
    #[serde(deserialize_with = "checkpoint_text")]
    pub checkpoint: Option<Checkpoint>,
    /// The fingerprint of the plan the checkpoint belongs to (columns, key, order).
    pub schema: Option<String>,
    pub cursor: Option<String>,
    pub last_status: Option<RunStatus>,
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
    /// Epoch ms at which the replica held every change the source had committed (see
    /// `engine::data_as_of`); `None` before the first complete run and after a reset.
    pub data_as_of_ms: Option<i64>,
    /// Epoch ms at which the copy under way (or the last one) began.
    pub pass_started_ms: Option<i64>,
    /// A reconciliation pass under way: where it stands.
    #[serde(deserialize_with = "reconcile_text")]
    pub reconcile: Option<ReconcileState>,
    /// When the last reconciliation pass finished (ISO-8601 UTC).
    pub last_reconcile_at: Option<String>,
}

/// A reconciliation pass that a run stopped before its end, stored to be resumed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconcileState {
    /// The plan it was made under: keys of another shape mean nothing to it.
    pub fingerprint: String,
    pub progress: crate::reconcile::Progress,
}

const STATE_FIELDS: &[&str] = &[
    "config_id",
    "generation",
    "phase",
    "checkpoint",
    "schema",
    "cursor",
    "last_status",
    "last_sync_at",
    "last_success_at",
    "next_sync_at",
    "last_error",
    "consecutive_failures",
    "rows_synced",
    "total_rows_synced",
    "null_cursor_rows",
    "lock_run_id",
    "lock_until",
    "data_as_of_ms",
    "pass_started_ms",
    "reconcile",
    "last_reconcile_at",
];

/// Checkpoints are stored as JSON text. One that cannot be read (which no build writes) counts
/// as none: the run then starts a fresh copy, the one safe way on.
fn checkpoint_text<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Checkpoint>, D::Error> {
    let text: Option<String> = Option::deserialize(d)?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

/// Reconciliation progress is stored as JSON text; text no build wrote counts as none (the
/// pass starts over, which is always safe).
fn reconcile_text<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<ReconcileState>, D::Error> {
    let text: Option<String> = Option::deserialize(d)?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

/// The statement that stores a reconciliation pass's progress (`None`: no pass under way),
/// committed with the deletes it follows (`Ledger::commit_batch`).
pub fn reconcile_stmt(config_id: i64, state: Option<&ReconcileState>) -> Stmt {
    let text = state.map_or(Value::Null, |s| Value::Text(serde_json::to_string(s).expect("progress serializes")));
    Stmt::new("UPDATE tmp_replication_state SET reconcile = ? WHERE config_id = ?", vec![text, Value::Integer(config_id)])
}

/// The statement that closes a finished pass at `at` (ISO-8601).
pub fn reconcile_done_stmt(config_id: i64, at: &str) -> Stmt {
    Stmt::new(
        "UPDATE tmp_replication_state SET reconcile = NULL, last_reconcile_at = ? WHERE config_id = ?",
        vec![Value::text(at), Value::Integer(config_id)],
    )
}

pub fn load_state(store: &dyn Store, config_id: i64) -> Result<Option<SyncState>> {
    let sql = select_json(STATE_FIELDS, "tmp_replication_state WHERE config_id = ?");
    Ok(rows_as(store, &sql, &[Value::Integer(config_id)], "sync state")?.into_iter().next())
}

pub fn load_states(store: &dyn Store) -> Result<Vec<SyncState>> {
    rows_as(store, &select_json(STATE_FIELDS, "tmp_replication_state ORDER BY config_id"), &[], "sync state")
}

// ---- runs ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRecord {
    pub config_id: i64,
    pub run_id: i64,
    pub status: RunStatus,
    pub mode: Mode,
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
    /// A reconciliation pass ran (and counted its deletes in `rows_deleted`).
    #[serde(deserialize_with = "flag")]
    pub reconciled: bool,
    /// The replica's bookmark when the run finished; `None` while it runs (and for runs
    /// recorded before bookmarks existed).
    pub bookmark: Option<String>,
}

/// A boolean stored as SQLite's 0/1.
fn flag<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Int(i64),
    }
    Ok(match Flag::deserialize(d)? {
        Flag::Bool(b) => b,
        Flag::Int(i) => i != 0,
    })
}

const RUN_FIELDS: &[&str] = &[
    "config_id",
    "run_id",
    "status",
    "mode",
    "rows_upserted",
    "rows_deleted",
    "batches",
    "cursor",
    "started_at",
    "finished_at",
    "duration_ms",
    "error",
    "source_ms",
    "write_ms",
    "reconciled",
    "bookmark",
];

pub fn list_runs(store: &dyn Store, config_id: Option<i64>, limit: i64) -> Result<Vec<RunRecord>> {
    match config_id {
        Some(id) => rows_as(
            store,
            &select_json(RUN_FIELDS, "tmp_replication_runs WHERE config_id = ? ORDER BY run_id DESC LIMIT ?"),
            &[Value::Integer(id), Value::Integer(limit)],
            "run record",
        ),
        None => rows_as(
            store,
            &select_json(RUN_FIELDS, "tmp_replication_runs ORDER BY run_id DESC LIMIT ?"),
            &[Value::Integer(limit)],
            "run record",
        ),
    }
}

/// Each config's last finished run's `duration_ms` (null for a run closed as interrupted).
pub fn last_run_durations(store: &dyn Store) -> Result<std::collections::HashMap<i64, Option<i64>>> {
    let rows = store.query(
        "SELECT config_id, duration_ms FROM tmp_replication_runs WHERE run_id IN
           (SELECT max(run_id) FROM tmp_replication_runs WHERE status <> 'running' GROUP BY config_id)",
        &[],
    )?;
    Ok(rows.iter().map(|r| (int(&r[0]), r[1].as_i64())).collect())
}

pub fn table_exists(store: &dyn Store, table: &str) -> Result<bool> {
    let rows = store.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", &[Value::text(table)])?;
    Ok(!rows.is_empty())
}

// ---- change feed slots ----

/// One replication slot (shared by every cdc config that reads it) as the replica tracks it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotState {
    pub slot_key: String,
    pub slot_name: String,
    pub publication: String,
    /// 1 when the replica created the publication (and so may change and drop it).
    pub own_publication: i64,
    /// 1 once the slot was created: from then on a slot missing at the origin is a lost slot.
    pub created: i64,
    /// Every change up to here is committed in the replica.
    pub confirmed_lsn: Option<String>,
    pub data_as_of: Option<String>,
    pub slot_lag_bytes: Option<i64>,
    pub wal_status: Option<String>,
    pub lock_run_id: Option<i64>,
    pub lock_until: Option<i64>,
}

const SLOT_FIELDS: &[&str] = &[
    "slot_key",
    "slot_name",
    "publication",
    "own_publication",
    "created",
    "confirmed_lsn",
    "data_as_of",
    "slot_lag_bytes",
    "wal_status",
    "lock_run_id",
    "lock_until",
];

/// This replica instance's id: default slot and publication names carry it.
pub fn instance_id(store: &dyn Store) -> Result<String> {
    let rows = store.query("SELECT value FROM tmp_replication_meta WHERE key = 'instance_id'", &[])?;
    rows.first().and_then(|r| r[0].as_str().map(str::to_string)).ok_or_else(|| Error::internal("the replica has no instance id"))
}

pub fn load_slot(store: &dyn Store, slot_key: &str) -> Result<Option<SlotState>> {
    let sql = select_json(SLOT_FIELDS, "tmp_replication_slots WHERE slot_key = ?");
    Ok(rows_as(store, &sql, &[Value::text(slot_key)], "slot state")?.into_iter().next())
}

pub fn load_slots(store: &dyn Store) -> Result<Vec<SlotState>> {
    rows_as(store, &select_json(SLOT_FIELDS, "tmp_replication_slots ORDER BY slot_key"), &[], "slot state")
}

/// Records the slot a config reads, if it is new.
pub fn add_slot(store: &dyn Store, slot_key: &str, slot_name: &str, publication: &str, own_publication: bool) -> Result<()> {
    store.execute(
        "INSERT OR IGNORE INTO tmp_replication_slots (slot_key, slot_name, publication, own_publication) VALUES (?, ?, ?, ?)",
        &[Value::text(slot_key), Value::text(slot_name), Value::text(publication), Value::Integer(own_publication as i64)],
    )
}

pub fn delete_slot(store: &dyn Store, slot_key: &str) -> Result<()> {
    store.execute("DELETE FROM tmp_replication_slots WHERE slot_key = ?", &[Value::text(slot_key)])
}

/// A streaming cdc config's table takes the columns its origin added (see `engine::stream`'s
/// widening): `alter` (its `ALTER TABLE ... ADD COLUMN`s) and its plan's fingerprint moving from
/// `from` to `to` commit together, with the bookmark, and are logged for read replicas as any
/// change of a replica table is.
pub fn widen_table(store: &dyn Store, config_id: i64, alter: Vec<Stmt>, from: &str, to: &str) -> Result<()> {
    let mut stmts = alter;
    stmts.push(Stmt::new(
        "UPDATE tmp_replication_state SET schema = ? WHERE config_id = ? AND schema = ? AND phase = 'streaming'",
        vec![Value::text(to), Value::Integer(config_id), Value::text(from)],
    ));
    stmts.push(Stmt::new(BUMP_BOOKMARK, vec![]));
    let stmts = crate::follow::with_log(store, stmts)?;
    store.transaction(&stmts)
}

/// What a committed batch of changes moves the slot to, in the same transaction.
pub fn slot_position_stmt(slot_key: &str, confirmed_lsn: &str, data_as_of: Option<&str>) -> Stmt {
    Stmt::new(
        "UPDATE tmp_replication_slots SET created = 1, confirmed_lsn = ?, data_as_of = coalesce(?, data_as_of) WHERE slot_key = ?",
        vec![Value::text(confirmed_lsn), text_or_null(data_as_of), Value::text(slot_key)],
    )
}

/// What the origin last said about the slot.
pub fn observe_slot(store: &dyn Store, slot_key: &str, lag_bytes: Option<i64>, wal_status: Option<&str>) -> Result<()> {
    store.execute(
        "UPDATE tmp_replication_slots SET slot_lag_bytes = ?, wal_status = ? WHERE slot_key = ?",
        &[lag_bytes.map_or(Value::Null, Value::Integer), text_or_null(wal_status), Value::text(slot_key)],
    )
}

// ---- the run ledger ----

/// The runs this object instance is executing.
///
/// A Durable Object has one live instance and its memory dies with it, so a lock whose run is
/// not listed here was left by an instance that died: it must not hold back the next run
/// (a dead run leaves no lock). The set belongs to the instance, not to the isolate: two
/// objects in one isolate must not see each other's runs as live.
#[derive(Debug, Default)]
pub struct LiveRuns(RefCell<HashSet<i64>>);

impl LiveRuns {
    /// Whether `state`'s lock belongs to a run that is still executing in this instance.
    pub fn holds_lock(&self, state: &SyncState, now_ms: i64) -> bool {
        match (state.lock_until, state.lock_run_id) {
            (Some(until), Some(run_id)) => until > now_ms && self.0.borrow().contains(&run_id),
            _ => false,
        }
    }
}

/// A run that has begun: its lock is taken and its record is open.
#[derive(Debug)]
pub struct Run {
    pub config_id: i64,
    pub run_id: i64,
    pub mode: Mode,
    pub started_ms: i64,
    pub started_at: String,
    /// The state as it was when the run began.
    pub prior: SyncState,
}

/// What a committed batch moves the state to.
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    pub phase: Phase,
    pub checkpoint: Option<Checkpoint>,
    /// The cursor as users read it (`status.cursor`).
    pub cursor: Option<String>,
    /// The plan's fingerprint: a checkpoint is only valid for the plan it was made under.
    pub fingerprint: String,
}

/// What a run did, for its record and the config's state.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub rows: i64,
    pub deleted: i64,
    pub batches: i64,
    pub cursor: Option<String>,
    pub null_cursor_rows: Option<i64>,
    /// Time spent waiting for the source, and writing to the replica: where a run's time went.
    pub source_ms: i64,
    pub write_ms: i64,
    /// Set when the run reached the end of the source: the time at which the replica holds
    /// every change the source had committed (`engine::data_as_of`). Recorded by an `ok` run.
    pub data_as_of_ms: Option<i64>,
    /// A reconciliation pass ran.
    pub reconciled: bool,
}

/// The statement that records that `run` begins a fresh copy (committed with its first step).
pub fn mark_pass_start(run: &Run) -> Stmt {
    Stmt::new(
        "UPDATE tmp_replication_state SET pass_started_ms = ? WHERE config_id = ?",
        vec![Value::Integer(run.started_ms), Value::Integer(run.config_id)],
    )
}

/// The one way a run touches the bookkeeping: `begin`, `commit_batch` (rows and position in
/// one transaction), `finish`.
pub struct Ledger<'a> {
    store: &'a dyn Store,
    live: &'a LiveRuns,
}

impl<'a> Ledger<'a> {
    pub fn new(store: &'a dyn Store, live: &'a LiveRuns) -> Self {
        Ledger { store, live }
    }

    /// Takes the config's lock until `lock_until_ms` and opens its run record. `Err` when the
    /// run cannot start: busy (a live run holds the lock) or not found.
    pub fn begin(&self, cfg: &Config, now_ms: i64, lock_until_ms: i64) -> Result<Run> {
        let prior = load_state(self.store, cfg.id)?.ok_or_else(|| Error::not_found(format!("no replication config with id {}", cfg.id)))?;
        if self.live.holds_lock(&prior, now_ms) {
            let run_id = prior.lock_run_id.unwrap_or_default();
            return Err(Error::busy(format!("a sync of config {} is already running (run {run_id})", cfg.id)));
        }
        let started_at = crate::time::format_epoch_ms(now_ms);
        // Runs left `running` by an instance that died ended when their lock expired.
        self.store.execute(
            "UPDATE tmp_replication_runs SET status = 'error', finished_at = ?,
             error = 'the run was interrupted (its process ended before it finished); the next run resumed from the last checkpoint',
             bookmark = ?
             WHERE config_id = ? AND status = 'running'",
            &[Value::text(&started_at), Value::text(bookmark(self.store)?), Value::Integer(cfg.id)],
        )?;
        let rows = self.store.query(
            "INSERT INTO tmp_replication_runs (config_id, status, mode, started_at, started_ms) VALUES (?, 'running', ?, ?, ?) RETURNING run_id",
            &[Value::Integer(cfg.id), Value::text(cfg.mode.as_str()), Value::text(&started_at), Value::Integer(now_ms)],
        )?;
        let run_id = rows.first().map(|r| int(&r[0])).ok_or_else(|| Error::internal("run insert returned no id"))?;
        self.store.execute(
            "UPDATE tmp_replication_state SET lock_run_id = ?, lock_until = ? WHERE config_id = ?",
            &[Value::Integer(run_id), Value::Integer(lock_until_ms), Value::Integer(cfg.id)],
        )?;
        self.live.0.borrow_mut().insert(run_id);
        Ok(Run { config_id: cfg.id, run_id, mode: cfg.mode, started_ms: now_ms, started_at, prior })
    }

    /// Takes the slot for `run`: one run at a time reads a slot and writes its tables. Busy
    /// when a live run of this instance holds it.
    pub fn lock_slot(&self, run: &Run, slot_key: &str, now_ms: i64, until_ms: i64) -> Result<()> {
        let slot = load_slot(self.store, slot_key)?.ok_or_else(|| Error::internal(format!("no slot {slot_key:?} recorded")))?;
        if let (Some(holder), Some(until)) = (slot.lock_run_id, slot.lock_until) {
            if holder != run.run_id && until > now_ms && self.live.0.borrow().contains(&holder) {
                return Err(Error::busy(format!("replication slot {} is being read by run {holder}", slot.slot_name)));
            }
        }
        self.store.execute(
            "UPDATE tmp_replication_slots SET lock_run_id = ?, lock_until = ? WHERE slot_key = ?",
            &[Value::Integer(run.run_id), Value::Integer(until_ms), Value::text(slot_key)],
        )
    }

    /// Lets go of the slot if `run` holds it.
    pub fn release_slot(&self, run: &Run, slot_key: &str) -> Result<()> {
        self.store.execute(
            "UPDATE tmp_replication_slots SET lock_run_id = NULL, lock_until = NULL WHERE slot_key = ? AND lock_run_id = ?",
            &[Value::text(slot_key), Value::Integer(run.run_id)],
        )
    }

    /// The config's state now, or why the run must stop: the config was reset or deleted
    /// since the run began, so its writes would land in a table or checkpoint that no longer
    /// belongs to it.
    pub fn current(&self, run: &Run) -> Result<SyncState> {
        match load_state(self.store, run.config_id)? {
            Some(s) if s.generation == run.prior.generation => Ok(s),
            Some(_) => Err(Error::superseded("the config was changed during the run; stopped without writing (the next run starts over)")),
            None => Err(Error::superseded("the config was deleted during the run; stopped without writing")),
        }
    }

    /// Writes `stmts` and moves the state to `position`, in one transaction, if the run is
    /// still current. The check and the write have no await between them: nothing else runs
    /// on the object until this returns.
    pub fn commit_batch(&self, run: &Run, stmts: Vec<Stmt>, position: &Position) -> Result<()> {
        self.current(run)?;
        // Read replicas replay the batch's data statements from the change log.
        let mut stmts = crate::follow::with_log(self.store, stmts)?;
        stmts.push(Stmt::new(BUMP_BOOKMARK, vec![]));
        stmts.push(Stmt::new(
            "UPDATE tmp_replication_state SET phase = ?, checkpoint = ?, cursor = ?, schema = ? WHERE config_id = ?",
            vec![
                Value::text(position.phase.as_str()),
                position.checkpoint.as_ref().map_or(Value::Null, |c| Value::Text(c.to_text())),
                text_or_null(position.cursor.as_deref()),
                Value::text(&position.fingerprint),
                Value::Integer(run.config_id),
            ],
        ));
        self.store.transaction(&stmts)
    }

    /// Undoes `begin` for a run that could not go on before it wrote anything (what it needed
    /// is held by another run): its record goes, its lock is released, nothing is counted.
    pub fn abandon(&self, run: Run) -> Result<()> {
        let (config_id, run_id) = (Value::Integer(run.config_id), Value::Integer(run.run_id));
        let done = self.store.transaction(&[
            Stmt::new("DELETE FROM tmp_replication_runs WHERE run_id = ?", vec![run_id.clone()]),
            Stmt::new(
                "UPDATE tmp_replication_state SET lock_run_id = NULL, lock_until = NULL WHERE config_id = ? AND lock_run_id = ?",
                vec![config_id, run_id],
            ),
        ]);
        self.live.0.borrow_mut().remove(&run.run_id);
        done
    }

    /// Closes the run: its record, the config's outcome and next due time, and its lock.
    /// `outcome` is `Ok(true)` when the run reached the end of the source, `Ok(false)` when
    /// its budget ran out first.
    pub fn finish(&self, run: Run, interval_seconds: i64, now_ms: i64, outcome: &Result<bool>, tally: &Tally) -> Result<RunRecord> {
        let (status, error) = match outcome {
            Ok(true) => (RunStatus::Ok, None),
            Ok(false) => (RunStatus::Partial, None),
            Err(e) => (RunStatus::Error, Some(e.message().to_string())),
        };
        let outcome = match status {
            RunStatus::Ok => schedule::RunOutcome::Ok,
            RunStatus::Partial => schedule::RunOutcome::Partial,
            _ => schedule::RunOutcome::Error,
        };
        let next = schedule::next_due_ms(now_ms, interval_seconds, outcome, run.prior.consecutive_failures + 1);
        let record = RunRecord {
            config_id: run.config_id,
            run_id: run.run_id,
            status,
            mode: run.mode,
            rows_upserted: tally.rows,
            rows_deleted: tally.deleted,
            batches: tally.batches,
            cursor: tally.cursor.clone(),
            started_at: run.started_at.clone(),
            finished_at: Some(crate::time::format_epoch_ms(now_ms)),
            duration_ms: Some(now_ms - run.started_ms),
            error,
            source_ms: tally.source_ms,
            write_ms: tally.write_ms,
            reconciled: tally.reconciled,
            // Read, not bumped: the run's batches moved it. (Storage that fails here fails the
            // transaction below too, which reports it; the live run is released either way.)
            bookmark: bookmark(self.store).ok(),
        };
        // If the config was deleted meanwhile these updates match no row: nothing to clean up.
        // If it was reset, its new state is due at once and owes nothing to this run: recording
        // the outcome would count a failure and push the fresh copy out by a backoff.
        let reset = matches!(load_state(self.store, run.config_id), Ok(Some(s)) if s.generation != run.prior.generation);
        let (config_id, run_id) = (Value::Integer(run.config_id), Value::Integer(run.run_id));
        let outcome_stmt = if reset {
            Stmt::new(
                "UPDATE tmp_replication_state SET lock_run_id = NULL, lock_until = NULL WHERE config_id = ? AND lock_run_id = ?",
                vec![config_id, run_id.clone()],
            )
        } else {
            let success = status != RunStatus::Error;
            Stmt::new(
                "UPDATE tmp_replication_state SET
                    last_status = ?1, last_sync_at = ?2,
                    last_success_at = CASE WHEN ?3 THEN ?2 ELSE last_success_at END,
                    consecutive_failures = CASE WHEN ?3 THEN 0 ELSE consecutive_failures + 1 END,
                    last_error = ?5, next_sync_at = ?4, rows_synced = ?6,
                    total_rows_synced = total_rows_synced + ?6,
                    null_cursor_rows = coalesce(?7, null_cursor_rows),
                    lock_run_id = CASE WHEN lock_run_id = ?8 THEN NULL ELSE lock_run_id END,
                    lock_until = CASE WHEN lock_run_id = ?8 THEN NULL ELSE lock_until END,
                    data_as_of_ms = coalesce(?10, data_as_of_ms)
                 WHERE config_id = ?9",
                vec![
                    Value::text(status.as_str()),
                    text_or_null(record.finished_at.as_deref()),
                    Value::Integer(success as i64),
                    Value::Integer(next),
                    text_or_null(record.error.as_deref()),
                    Value::Integer(tally.rows),
                    tally.null_cursor_rows.map_or(Value::Null, Value::Integer),
                    run_id.clone(),
                    config_id,
                    tally.data_as_of_ms.filter(|_| status == RunStatus::Ok).map_or(Value::Null, Value::Integer),
                ],
            )
        };
        let record_stmt = Stmt::new(
            "UPDATE tmp_replication_runs SET status = ?, rows_upserted = ?, rows_deleted = ?, batches = ?, cursor = ?,
             finished_at = ?, duration_ms = ?, error = ?, source_ms = ?, write_ms = ?, reconciled = ?, bookmark = ? WHERE run_id = ?",
            vec![
                Value::text(record.status.as_str()),
                Value::Integer(record.rows_upserted),
                Value::Integer(record.rows_deleted),
                Value::Integer(record.batches),
                text_or_null(record.cursor.as_deref()),
                text_or_null(record.finished_at.as_deref()),
                record.duration_ms.map_or(Value::Null, Value::Integer),
                text_or_null(record.error.as_deref()),
                Value::Integer(record.source_ms),
                Value::Integer(record.write_ms),
                Value::Integer(record.reconciled as i64),
                text_or_null(record.bookmark.as_deref()),
                run_id,
            ],
        );
        let finished = self.store.transaction(&[outcome_stmt, record_stmt]);
        self.live.0.borrow_mut().remove(&run.run_id);
        finished?;
        Ok(record)
    }
}

/// Run statuses compare with their names, as they appear in records and tests.
impl PartialEq<str> for RunStatus {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for RunStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::SqliteStore;

    /// The bookkeeping DDL every replica deployed before schema versions had, verbatim.
    const DEPLOYED_DDL: &[&str] = &[
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

    /// Rows as the deployed build wrote them: an incremental config mid-way (checkpoint with a
    /// key above 2^53), a full config that failed, and their run records.
    const DEPLOYED_ROWS: &[&str] = &[
        r#"INSERT INTO tmp_replication_configs (id, target_table, config) VALUES (1, 'orders', '{"id":1,"source":{"type":"postgres","url_secret":"PG_URL"},"source_table":"public.orders","target_table":"orders","columns":null,"mode":"incremental","cursor_column":"updated_at","primary_key":null,"interval_seconds":60,"enabled":true,"batch_size":null,"lookback_seconds":0,"created_at":"2026-11-20T10:00:00.000Z","updated_at":"2026-11-20T10:00:00.000Z"}')"#,
        r#"INSERT INTO tmp_replication_configs (id, target_table, config) VALUES (2, 'Weird "T"', '{"id":2,"source":{"type":"d1","account_id":"acc","database_id":"db","token_secret":"CF_TOKEN"},"source_table":"\"Weird \"\"T\"\"\"","target_table":"Weird \"T\"","columns":["id","v"],"mode":"full","cursor_column":null,"primary_key":["id"],"interval_seconds":3600,"enabled":false,"batch_size":500,"lookback_seconds":0,"created_at":"2026-11-21T10:00:00.000Z","updated_at":"2026-11-22T10:00:00.000Z"}')"#,
        r#"INSERT INTO tmp_replication_state VALUES (1, 3, 'incremental', '[{"Text":"2026-11-30T12:00:00.123456Z"},{"Integer":9007199254740993}]', '{"mode":"incremental"}', '2026-11-30T12:00:00.123456Z', 'ok', '2026-12-01T00:00:00.000Z', '2026-12-01T00:00:00.000Z', 1764547260000, NULL, 0, 7, 5007, 2, 41, 1764547290000)"#,
        r#"INSERT INTO tmp_replication_state (config_id, phase, last_status, last_error, consecutive_failures) VALUES (2, 'copy', 'error', 'source d1 via REST API (database db): HTTP 401', 4)"#,
        r#"INSERT INTO tmp_replication_runs VALUES (40, 1, 'ok', 'incremental', 7, 0, 1, '2026-11-30T12:00:00.123456Z', '2026-12-01T00:00:00.000Z', 1764547200000, '2026-12-01T00:00:00.050Z', 50, NULL, 20, 10)"#,
        r#"INSERT INTO tmp_replication_runs (config_id, status, mode, started_at, started_ms) VALUES (1, 'running', 'incremental', '2026-12-01T00:01:00.000Z', 1764547260000)"#,
        r#"INSERT INTO tmp_replication_runs VALUES (42, 2, 'error', 'full', 0, 0, 0, NULL, '2026-12-01T00:02:00.000Z', 1764547320000, '2026-12-01T00:02:01.000Z', 1000, 'source d1 via REST API (database db): HTTP 401', 1000, 0)"#,
    ];

    fn deployed() -> SqliteStore {
        let store = SqliteStore::memory();
        for s in DEPLOYED_DDL.iter().chain(DEPLOYED_ROWS) {
            store.execute(s, &[]).unwrap();
        }
        store
    }

    fn version(store: &SqliteStore) -> i64 {
        store.query("SELECT value FROM tmp_replication_meta WHERE key = 'schema_version'", &[]).unwrap()[0][0].as_i64().unwrap()
    }

    #[test]
    fn a_deployed_replica_upgrades_in_place_with_nothing_lost() {
        let store = deployed();
        migrate(&store).unwrap();
        assert_eq!(version(&store), SCHEMA_VERSION);

        let configs = load_configs(&store).unwrap();
        assert_eq!(configs.len(), 2);
        assert_eq!(configs[0].source_table, "public.orders");
        assert_eq!(configs[0].mode, Mode::Incremental);
        assert_eq!(
            serde_json::to_value(&configs[1].source).unwrap(),
            serde_json::json!({"type": "d1", "account_id": "acc", "database_id": "db", "token_secret": "CF_TOKEN"})
        );
        assert_eq!(configs[1].target_table, "Weird \"T\"");
        assert_eq!(configs[1].batch_size, Some(500));
        assert!(!configs[1].enabled);

        let s = load_state(&store, 1).unwrap().unwrap();
        assert_eq!(s.phase, Phase::Incremental);
        assert_eq!(s.generation, 3);
        assert_eq!(
            s.checkpoint,
            Some(Checkpoint::Keyset(vec![Value::text("2026-11-30T12:00:00.123456Z"), Value::Integer(9_007_199_254_740_993)]))
        );
        assert_eq!(s.schema.as_deref(), Some("{\"mode\":\"incremental\"}"));
        assert_eq!(s.cursor.as_deref(), Some("2026-11-30T12:00:00.123456Z"));
        assert_eq!(s.last_status, Some(RunStatus::Ok));
        assert_eq!((s.rows_synced, s.total_rows_synced, s.null_cursor_rows), (7, 5007, Some(2)));
        assert_eq!((s.next_sync_at, s.lock_run_id, s.lock_until), (Some(1_764_547_260_000), Some(41), Some(1_764_547_290_000)));
        let s2 = load_state(&store, 2).unwrap().unwrap();
        assert_eq!((s2.phase, s2.checkpoint.clone(), s2.consecutive_failures), (Phase::Copy, None, 4));
        assert_eq!(State::of(false, Some(&s2), false), State::Disabled);
        assert_eq!(State::of(true, Some(&s2), false), State::Error);

        let runs = list_runs(&store, None, 10).unwrap();
        assert_eq!(runs.iter().map(|r| r.run_id).collect::<Vec<_>>(), [42, 41, 40]);
        assert_eq!((runs[0].status, runs[0].mode, runs[0].duration_ms), (RunStatus::Error, Mode::Full, Some(1000)));
        assert_eq!((runs[1].status, runs[1].finished_at.clone()), (RunStatus::Running, None));
        assert_eq!((runs[2].rows_upserted, runs[2].source_ms, runs[2].write_ms), (7, 20, 10));
    }

    #[test]
    fn an_upgraded_replica_vouches_for_no_more_than_its_history_shows() {
        let store = deployed();
        // Config 3: a full copy that ended ok, then one spread over two partial runs and an ok
        // one; config 4: complete once, then reset (back to copying).
        for s in [
            r#"INSERT INTO tmp_replication_state (config_id, phase, last_status) VALUES (3, 'done', 'ok'), (4, 'copy', 'ok')"#,
            r#"INSERT INTO tmp_replication_runs (run_id, config_id, status, mode, started_at, started_ms) VALUES
                (50, 3, 'ok', 'full', 'x', 100), (51, 3, 'partial', 'full', 'x', 200), (52, 3, 'error', 'full', 'x', 300),
                (53, 3, 'ok', 'full', 'x', 400), (54, 4, 'ok', 'full', 'x', 500)"#,
        ] {
            store.execute(s, &[]).unwrap();
        }
        migrate(&store).unwrap();
        let as_of = |id| load_state(&store, id).unwrap().unwrap().data_as_of_ms;
        // Config 1's last complete run (40) started at 1764547200000; config 2 never completed one.
        assert_eq!(as_of(1), Some(1_764_547_200_000));
        assert_eq!(as_of(2), None);
        assert_eq!(as_of(3), Some(200), "the first run of the copy that the last ok run ended");
        assert_eq!(as_of(4), None, "reset since");
    }

    #[test]
    fn reconciliation_progress_and_flags_read_back() {
        let store = deployed();
        migrate(&store).unwrap();
        // Runs recorded before reconciliation existed did not reconcile.
        assert!(list_runs(&store, None, 10).unwrap().iter().all(|r| !r.reconciled));
        let s = load_state(&store, 1).unwrap().unwrap();
        assert_eq!((s.reconcile, s.last_reconcile_at), (None, None));
        let after = vec![Value::Integer(9_007_199_254_740_993), Value::text("é \"x\""), Value::Blob(vec![0, 255]), Value::Real(0.1)];
        let state = ReconcileState { fingerprint: "fp".into(), progress: crate::reconcile::Progress { after: Some(after) } };
        store.transaction(&[reconcile_stmt(1, Some(&state))]).unwrap();
        assert_eq!(load_state(&store, 1).unwrap().unwrap().reconcile, Some(state));
        store.transaction(&[reconcile_done_stmt(1, "2026-12-02T00:00:00.000Z")]).unwrap();
        let s = load_state(&store, 1).unwrap().unwrap();
        assert_eq!((s.reconcile, s.last_reconcile_at.as_deref()), (None, Some("2026-12-02T00:00:00.000Z")));
        // Progress no build wrote counts as none.
        store.execute("UPDATE tmp_replication_state SET reconcile = 'garbage' WHERE config_id = 1", &[]).unwrap();
        assert_eq!(load_state(&store, 1).unwrap().unwrap().reconcile, None);
    }

    #[test]
    fn migrating_again_changes_nothing_and_a_newer_schema_is_refused() {
        let store = deployed();
        migrate(&store).unwrap();
        let before = load_states(&store).unwrap();
        migrate(&store).unwrap();
        assert_eq!(load_states(&store).unwrap(), before);
        assert_eq!(version(&store), SCHEMA_VERSION);
        // A fresh replica gets the same tables.
        let fresh = SqliteStore::memory();
        migrate(&fresh).unwrap();
        assert_eq!(version(&fresh), SCHEMA_VERSION);
        assert!(load_configs(&fresh).unwrap().is_empty());
        // A replica written by a newer build is not touched by an older one.
        store.execute("UPDATE tmp_replication_meta SET value = '999' WHERE key = 'schema_version'", &[]).unwrap();
        let e = migrate(&store).unwrap_err();
        assert!(e.message().contains("newer than this build"), "{e}");
    }

    #[test]
    fn the_bookmark_moves_with_every_change_of_a_replica_table_and_runs_record_it() {
        let store = deployed();
        migrate(&store).unwrap();
        // An upgraded replica starts at position 0; its old runs have no bookmark.
        assert_eq!(bookmark(&store).unwrap(), crate::bookmark::format(0));
        assert!(list_runs(&store, None, 10).unwrap().iter().all(|r| r.bookmark.is_none()));

        let live = LiveRuns::default();
        let ledger = Ledger::new(&store, &live);
        let cfg = load_config(&store, 1).unwrap().unwrap();
        store.execute("UPDATE tmp_replication_state SET lock_run_id = NULL, lock_until = NULL", &[]).unwrap();
        let run = ledger.begin(&cfg, 2_000_000_000_000, 2_000_000_050_000).unwrap();
        // The run left `running` by a process that died is closed with the position of then.
        let closed = list_runs(&store, Some(1), 10).unwrap().into_iter().find(|r| r.run_id == 41).unwrap();
        assert_eq!(closed.bookmark, Some(crate::bookmark::format(0)));
        let position = Position { phase: Phase::Incremental, checkpoint: None, cursor: None, fingerprint: "fp".into() };
        let mut seen = vec![bookmark(&store).unwrap()];
        for _ in 0..3 {
            ledger.commit_batch(&run, vec![Stmt::new("CREATE TABLE IF NOT EXISTS orders (id INTEGER)", vec![])], &position).unwrap();
            seen.push(bookmark(&store).unwrap());
        }
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "each batch moves it on: {seen:?}");
        // A batch that does not commit does not move it.
        let failing = vec![Stmt::new("INSERT INTO no_such_table VALUES (1)", vec![])];
        assert!(ledger.commit_batch(&run, failing, &position).is_err());
        assert_eq!(&bookmark(&store).unwrap(), seen.last().unwrap());
        let record = ledger.finish(run, 60, 2_000_000_001_000, &Ok(true), &Tally::default()).unwrap();
        assert_eq!(record.bookmark.as_ref(), seen.last(), "the run's bookmark is the position after it");
        assert_eq!(list_runs(&store, Some(1), 1).unwrap()[0].bookmark, record.bookmark, "as stored");

        // Deleting a config moves it only when a table is dropped.
        let before = bookmark(&store).unwrap();
        delete_config(&store, &load_config(&store, 2).unwrap().unwrap(), false).unwrap();
        assert_eq!(bookmark(&store).unwrap(), before);
        delete_config(&store, &cfg, true).unwrap();
        assert!(bookmark(&store).unwrap() > before);
        assert!(!table_exists(&store, "orders").unwrap());
    }

    #[test]
    fn a_committed_position_reads_back_field_by_field() {
        let store = SqliteStore::memory();
        migrate(&store).unwrap();
        store.execute("INSERT INTO tmp_replication_state (config_id) VALUES (7)", &[]).unwrap();
        let live = LiveRuns::default();
        let ledger = Ledger::new(&store, &live);
        let cfg: Config = serde_json::from_value(serde_json::json!({
            "id": 7, "source": null, "source_table": "t", "target_table": "t", "columns": null, "mode": "incremental",
            "cursor_column": "c", "primary_key": null, "interval_seconds": 60, "enabled": true, "batch_size": null,
            "lookback_seconds": 0, "created_at": "x", "updated_at": "x"
        }))
        .unwrap();
        let run = ledger.begin(&cfg, 1_000, 50_000).unwrap();
        assert!(live.holds_lock(&load_state(&store, 7).unwrap().unwrap(), 1_000));
        assert!(ledger.begin(&cfg, 1_001, 50_000).unwrap_err().is_busy());
        let keyset = vec![Value::Integer(i64::MAX), Value::text("é"), Value::Blob(vec![0, 255]), Value::Real(0.1), Value::Null];
        let position = Position {
            phase: Phase::Incremental,
            checkpoint: Some(Checkpoint::Keyset(keyset.clone())),
            cursor: Some("c1".into()),
            fingerprint: "fp".into(),
        };
        ledger.commit_batch(&run, vec![], &position).unwrap();
        let s = load_state(&store, 7).unwrap().unwrap();
        assert_eq!(
            (s.phase, s.checkpoint, s.cursor, s.schema),
            (Phase::Incremental, Some(Checkpoint::Keyset(keyset)), Some("c1".into()), Some("fp".into()))
        );
        let tally = Tally { rows: 3, batches: 1, null_cursor_rows: Some(1), source_ms: 4, write_ms: 5, ..Tally::default() };
        let record = ledger.finish(run, 60, 2_000, &Ok(true), &tally).unwrap();
        assert_eq!(list_runs(&store, Some(7), 1).unwrap(), vec![record.clone()]);
        let s = load_state(&store, 7).unwrap().unwrap();
        assert_eq!((s.last_status, s.rows_synced, s.null_cursor_rows, s.next_sync_at), (Some(RunStatus::Ok), 3, Some(1), Some(62_000)));
        assert_eq!((s.lock_run_id, s.lock_until), (None, None));
        assert!(!live.holds_lock(&s, 2_000));
    }
}
