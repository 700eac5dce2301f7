//! Test doubles for the runtime-free crate, written once for the unit tests in `src/` and the
//! integration tests in `tests/` (which enable the `test-support` feature):
//! - `SqliteStore`, a `Store` over rusqlite. It refuses what the Durable Object cannot do
//!   exactly (integer parameters beyond ±2^53), so tests catch code that would round values.
//! - `TestClock`, a clock the test moves.
//! - `TestEnv`, the Worker's environment as validation sees it.
//! - `TestObject`, one replica object: its store and its live runs, and a `RunContext` over them.
//! - `postgres_client`, a client of the test PostgreSQL server.

use crate::catalog::LiveRuns;
use crate::config::{Bindings, SourceType};
use crate::engine::{Clock, Limits, RunContext};
use crate::error::{Error, Result};
use crate::store::{QueryOutput, ReadCaps, RowShape, Stmt, Store, MAX_SAFE_INTEGER};
use crate::value::Value;
use rusqlite::types::{ToSqlOutput, Value as Sql, ValueRef};
use rusqlite::Connection;
use std::cell::Cell;

/// A clock that stands still until the test moves it.
#[derive(Debug)]
pub struct TestClock(pub Cell<i64>);

impl TestClock {
    pub fn at(ms: i64) -> Self {
        TestClock(Cell::new(ms))
    }
    pub fn advance(&self, ms: i64) {
        self.0.set(self.0.get() + ms);
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.get()
    }
}

/// The Worker's bindings as validation sees them: the listed secrets (or every name, with
/// `any_secret`), Hyperdrive and D1 bindings, and the instance's default database type.
#[derive(Debug, Default)]
pub struct TestEnv {
    pub secrets: Vec<&'static str>,
    pub any_secret: bool,
    pub hyperdrives: Vec<&'static str>,
    pub d1: Vec<&'static str>,
    pub default: Option<SourceType>,
    /// Plain variables (`QUERY_MAX_ROWS`, ...).
    pub vars: Vec<(&'static str, &'static str)>,
}

impl Bindings for TestEnv {
    fn has_secret(&self, n: &str) -> bool {
        self.any_secret || self.secrets.contains(&n)
    }
    fn has_hyperdrive(&self, n: &str) -> bool {
        self.hyperdrives.contains(&n)
    }
    fn has_d1(&self, n: &str) -> bool {
        self.d1.contains(&n)
    }
    fn default_source_type(&self) -> Option<SourceType> {
        self.default
    }
    fn var(&self, name: &str) -> Option<String> {
        self.vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
    }
}

/// The hex lines of one `[section]` of a captured-bytes fixture (`tests/fixtures/pgoutput.txt`,
/// `mysql_binlog.txt`), each with the `# comment` last seen above it.
pub fn fixture_section(fixture: &str, name: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let (mut inside, mut what) = (false, String::new());
    for line in fixture.lines() {
        if let Some(s) = line.strip_prefix('[') {
            inside = s.trim_end_matches(']') == name;
        } else if let Some(c) = line.strip_prefix("# ") {
            what = c.to_string();
        } else if inside && !line.is_empty() {
            out.push((what.clone(), crate::value::unhex(line).expect("hex")));
        }
    }
    assert!(!out.is_empty(), "no section {name}");
    out
}

/// One replica object: its SQLite and the runs it has under way.
pub struct TestObject {
    pub store: SqliteStore,
    pub live: LiveRuns,
}

impl TestObject {
    pub fn new() -> Self {
        TestObject { store: SqliteStore::memory(), live: LiveRuns::default() }
    }
    pub fn ctx<'a>(&'a self, clock: &'a dyn Clock, limits: Limits) -> RunContext<'a> {
        RunContext { store: &self.store, clock, live: &self.live, limits }
    }
}

impl Default for TestObject {
    fn default() -> Self {
        Self::new()
    }
}

pub struct SqliteStore {
    pub conn: Connection,
}

impl SqliteStore {
    pub fn memory() -> Self {
        SqliteStore { conn: Connection::open_in_memory().expect("in-memory sqlite") }
    }
}

fn to_sql(v: &Value) -> ToSqlOutput<'_> {
    match v {
        Value::Null => ToSqlOutput::Owned(Sql::Null),
        Value::Integer(i) => {
            assert!(i.abs() <= MAX_SAFE_INTEGER, "integer parameter {i} would be rounded by DO SQLite");
            ToSqlOutput::Owned(Sql::Integer(*i))
        }
        Value::Real(f) => ToSqlOutput::Owned(Sql::Real(*f)),
        Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
    }
}

fn from_sql(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

fn err(e: rusqlite::Error) -> Error {
    Error::internal(format!("replica SQLite: {e}"))
}

fn run(conn: &Connection, sql: &str, params: &[Value]) -> rusqlite::Result<Vec<Vec<Value>>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let n = stmt.column_count();
    let ps: Vec<ToSqlOutput<'_>> = params.iter().map(to_sql).collect();
    let mut rows = stmt.query(rusqlite::params_from_iter(ps.iter()))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push((0..n).map(|i| from_sql(r.get_ref(i).expect("column"))).collect());
    }
    Ok(out)
}

impl Store for SqliteStore {
    fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>> {
        run(&self.conn, sql, params).map_err(err)
    }

    fn transaction(&self, stmts: &[Stmt]) -> Result<()> {
        let tx = self.conn.unchecked_transaction().map_err(err)?;
        for s in stmts {
            run(&tx, &s.sql, &s.params).map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    fn query_json(&self, sql: &str, params: &[serde_json::Value], caps: &ReadCaps) -> Result<QueryOutput> {
        let vals: Vec<Value> = params
            .iter()
            .map(|p| match p {
                serde_json::Value::Null => Value::Null,
                serde_json::Value::Bool(b) => Value::Integer(*b as i64),
                serde_json::Value::Number(n) => n.as_i64().map_or_else(|| Value::Real(n.as_f64().unwrap_or(f64::NAN)), Value::Integer),
                serde_json::Value::String(s) => Value::text(s),
                _ => Value::Null,
            })
            .collect();
        let failed = |e: rusqlite::Error| Error::bad_request(format!("query failed: {e}"));
        // A fresh statement (not the cache), dropped on every way out: nothing stays open.
        let mut stmt = self.conn.prepare(sql).map_err(failed)?;
        let columns: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
        let ps: Vec<ToSqlOutput<'_>> = vals.iter().map(to_sql).collect();
        let mut rows = stmt.query(rusqlite::params_from_iter(ps.iter())).map_err(failed)?;
        let mut parts: Vec<String> = Vec::new();
        let mut bytes = 2u64;
        while let Some(r) = rows.next().map_err(failed)? {
            if caps.max_rows.is_some_and(|max| parts.len() as u64 >= max) {
                return Err(caps.too_many_rows());
            }
            let row: Vec<serde_json::Value> = (0..columns.len())
                .map(|i| match from_sql(r.get_ref(i).expect("column")) {
                    Value::Null => serde_json::Value::Null,
                    Value::Integer(i) => i.into(),
                    Value::Real(f) => serde_json::json!(f),
                    Value::Text(s) => s.into(),
                    Value::Blob(b) => b.into(),
                })
                .collect();
            // The same count as the Durable Object's: the UTF-8 JSON of the row array.
            let text = match caps.shape {
                RowShape::Arrays => serde_json::to_string(&row),
                RowShape::Objects => {
                    serde_json::to_string(&columns.iter().cloned().zip(row).collect::<serde_json::Map<String, serde_json::Value>>())
                }
            }
            .expect("JSON values serialize");
            bytes += text.len() as u64 + u64::from(!parts.is_empty());
            if caps.max_bytes.is_some_and(|max| bytes > max) {
                return Err(caps.too_many_bytes());
            }
            parts.push(text);
        }
        let rows_read = parts.len() as u64;
        Ok(QueryOutput { columns, rows_json: format!("[{}]", parts.join(",")), rows_read, rows_written: 0 })
    }
}

/// `keys` sorted as the replica sorts them: by SQLite, in a table of untyped columns (every
/// value keeps its storage class; text by its bytes).
pub fn replica_order(keys: &[Vec<Value>]) -> Vec<Vec<Value>> {
    let width = keys.first().map_or(1, Vec::len);
    let conn = Connection::open_in_memory().expect("in-memory sqlite");
    let cols: Vec<String> = (0..width).map(|i| format!("c{i}")).collect();
    conn.execute_batch(&format!("CREATE TABLE k ({})", cols.join(", "))).expect("create");
    let phs: Vec<String> = (1..=width).map(|i| format!("?{i}")).collect();
    let insert = format!("INSERT INTO k VALUES ({})", phs.join(", "));
    for k in keys {
        let ps: Vec<ToSqlOutput<'_>> = k
            .iter()
            .map(|v| match v {
                Value::Integer(i) => ToSqlOutput::Owned(Sql::Integer(*i)),
                v => to_sql(v),
            })
            .collect();
        conn.execute(&insert, rusqlite::params_from_iter(ps.iter())).expect("insert");
    }
    run(&conn, &format!("SELECT * FROM k ORDER BY {}", cols.join(", ")), &[]).expect("select")
}

/// Checks a source's range counts against keys it holds, sorted as the replica sorts them:
/// ranges of `step` keys (the first open below), each counted exactly; with the replica's
/// counts none comes back, with other counts every one does, with its own.
pub async fn check_key_ranges<S: crate::source::Source>(
    src: &mut S,
    table: &crate::source::TableName,
    key: &[crate::source::Column],
    sorted: &[Vec<Value>],
    step: usize,
) {
    use crate::source::KeyRange;
    let mut ranges = Vec::new();
    let mut rows = Vec::new();
    let mut lo: Option<Vec<Value>> = None;
    for chunk in sorted.chunks(step) {
        let hi = chunk.last().expect("a chunk has keys").clone();
        ranges.push(KeyRange { lo: lo.replace(hi.clone()), hi });
        rows.push(chunk.len() as u64);
    }
    let got = src.count_key_ranges(table, key, &ranges, &rows).await.expect("count_key_ranges");
    assert_eq!(got, Vec::<(usize, u64)>::new(), "ranges of {step} keys of {table}: {ranges:?}");
    let off: Vec<u64> = rows.iter().map(|r| r + 1).collect();
    let got = src.count_key_ranges(table, key, &ranges, &off).await.expect("count_key_ranges");
    assert_eq!(got, rows.iter().copied().enumerate().collect::<Vec<_>>(), "ranges of {step} keys of {table}");
}

/// A client of database `db` on the test PostgreSQL server (127.0.0.1:5432, no TLS); its
/// connection runs as a task of the caller's tokio runtime.
pub async fn postgres_client(db: &str) -> tokio_postgres::Client {
    let (mut config, host, port) =
        crate::source::postgres::parse_url("postgres://postgres@127.0.0.1:5432/test?sslmode=disable").expect("test URL parses");
    config.dbname(db);
    let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await.expect("PostgreSQL at 127.0.0.1:5432");
    let (client, conn) = config.connect_raw(stream, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica_sql::{create_table, encode_rows, upsert_batch};
    use crate::source::{Affinity, Column};

    fn col(n: &str, a: Affinity) -> Column {
        Column { name: n.into(), source_type: String::new(), affinity: a, nullable: true }
    }

    /// The batch JSON path keeps every value exact in real SQLite, including what a JS number cannot hold.
    #[test]
    fn batch_upsert_is_exact() {
        let s = SqliteStore::memory();
        let cols = [
            col("id", Affinity::Integer),
            col("r", Affinity::Real),
            col("t", Affinity::Text),
            col("b", Affinity::Blob),
            col("u", Affinity::Any),
        ];
        s.execute(&create_table("t", &cols, &["id".into()]), &[]).unwrap();
        let rows = vec![
            vec![
                Value::Integer(i64::MAX),
                Value::Real(0.1),
                Value::text(""),
                Value::Blob(vec![0, 1, 255]),
                Value::text("18446744073709551615"),
            ],
            vec![Value::Integer(i64::MIN), Value::Real(f64::INFINITY), Value::Null, Value::Blob(vec![]), Value::Integer(5)],
            vec![Value::Integer(9_007_199_254_740_993), Value::Real(-1e308), Value::text("é😀\"\n"), Value::Null, Value::Real(1.0)],
        ];
        for json in encode_rows(&rows, 1 << 20) {
            s.execute(&upsert_batch("t", &cols, &["id".into()]), &[Value::Text(json)]).unwrap();
        }
        let got = s.query("SELECT id, r, t, b, u, typeof(u) FROM t ORDER BY id", &[]).unwrap();
        assert_eq!(got[0][0], Value::Integer(i64::MIN));
        assert_eq!(got[0][1], Value::Real(f64::INFINITY));
        assert_eq!(got[0][3], Value::Blob(vec![]));
        assert_eq!(got[0][5], Value::text("integer"));
        assert_eq!(got[1][0], Value::Integer(9_007_199_254_740_993));
        assert_eq!(got[1][2], Value::text("é😀\"\n"));
        assert_eq!(got[1][5], Value::text("real"));
        assert_eq!(got[2][0], Value::Integer(i64::MAX));
        assert_eq!(got[2][1], Value::Real(0.1));
        assert_eq!(got[2][2], Value::text(""));
        assert_eq!(got[2][3], Value::Blob(vec![0, 1, 255]));
        assert_eq!(got[2][4], Value::text("18446744073709551615"));
        // Upserting again changes values in place and adds no rows.
        let again = vec![vec![Value::Integer(i64::MAX), Value::Real(2.5), Value::text("x"), Value::Null, Value::Null]];
        s.execute(&upsert_batch("t", &cols, &["id".into()]), &[Value::Text(encode_rows(&again, 1 << 20).remove(0))]).unwrap();
        let n = s.query("SELECT count(*), sum(r = 2.5) FROM t", &[]).unwrap();
        assert_eq!(n[0], vec![Value::Integer(3), Value::Integer(1)]);
    }
}
