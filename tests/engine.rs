//! The engine against real PostgreSQL and real SQLite: the guarantees of `engine`, each
//! forced by the failure that would break it (budget exhaustion, a dying connection, a
//! cancelled run, a concurrent run, a config changed mid-run).

use edge_replica::catalog::{self, LiveRuns};
use edge_replica::config::{Config, SourceType};
use edge_replica::engine::{self, Limits, RunContext};
use edge_replica::error::{Error, Result};
use edge_replica::source::postgres::{parse_url, PostgresSource};
use edge_replica::source::{Column, KeyRange, PageRequest, Source, TableName, TableSchema};
use edge_replica::store::Store;
use edge_replica::test_support::{SqliteStore, TestClock, TestEnv};
use edge_replica::value::Value;

/// Validation sees every secret as present: these tests never open a source through the env.
fn env() -> TestEnv {
    TestEnv { any_secret: true, ..TestEnv::default() }
}

/// The run context of one replica object: its store, the clock and its live runs.
fn ctx<'a>(store: &'a SqliteStore, clock: &'a TestClock, live: &'a LiveRuns, limits: Limits) -> RunContext<'a> {
    RunContext { store, clock, live, limits }
}

async fn client(db: &str) -> tokio_postgres::Client {
    let (config, host, port) = parse_url(&format!("postgres://postgres@127.0.0.1:5432/{db}?sslmode=disable")).unwrap();
    let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await.expect("PostgreSQL at 127.0.0.1:5432");
    let (c, conn) = config.connect_raw(stream, tokio_postgres::NoTls).await.expect("connect");
    tokio::task::spawn_local(async move {
        let _ = conn.await;
    });
    c
}

/// A fresh database, dropped when the test body ends (even when it fails).
struct Db {
    name: String,
}
impl Drop for Db {
    fn drop(&mut self) {
        let name = self.name.clone();
        // A plain thread with its own runtime: Drop cannot await, and the test's runtime may be unwinding.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(tokio::task::LocalSet::new().run_until(async move {
                let c = client("test").await;
                let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
            }));
        })
        .join()
        .unwrap();
    }
}

async fn fresh_db(setup: &str) -> (Db, tokio_postgres::Client) {
    let name = format!("er_engine_{}_{}", std::process::id(), rand_suffix());
    client("test").await.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
    let db = Db { name };
    let c = client(&db.name).await;
    c.batch_execute(setup).await.unwrap();
    (db, c)
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64);
    h.finish() % 1_000_000_000
}

async fn source(db: &Db) -> Result<PostgresSource> {
    Ok(PostgresSource::new(client(&db.name).await, "postgres test".into()))
}

fn config(store: &SqliteStore, body: serde_json::Value) -> Config {
    catalog::migrate(store).unwrap();
    let id = catalog::next_config_id(store).unwrap();
    let cfg = edge_replica::config::validate(body.to_string().as_bytes(), None, &env(), "t0", id).unwrap();
    catalog::insert_config(store, &cfg).unwrap();
    cfg
}

fn pg() -> serde_json::Value {
    serde_json::json!({"type": "postgres", "url_secret": "PG_URL"})
}

fn limits(budget_ms: i64) -> Limits {
    Limits { budget_ms, default_batch_size: 100 }
}

/// Every replica row as text, ordered by key: what "equal to the source" is checked against.
fn replica_rows(store: &SqliteStore, table: &str) -> Vec<Vec<Value>> {
    store.query(&format!("SELECT CAST(id AS TEXT), v, CAST(ts AS TEXT) FROM \"{table}\" ORDER BY id"), &[]).unwrap()
}

async fn source_rows(c: &tokio_postgres::Client) -> Vec<Vec<Value>> {
    c.query("SELECT id::text, v, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM items ORDER BY items.id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let v: Option<String> = r.get(1);
            vec![Value::text(r.get::<_, String>(0)), v.map_or(Value::Null, Value::Text), Value::text(r.get::<_, String>(2))]
        })
        .collect()
}

const ITEMS: &str = "CREATE TABLE items (id bigint PRIMARY KEY, v text, ts timestamptz NOT NULL);
    INSERT INTO items SELECT g, 'v' || g, '2026-01-01T00:00:00Z'::timestamptz + (g / 250) * interval '1 second'
    FROM generate_series(1, 1000) g;";

/// Compares without printing thousands of rows when they differ.
fn assert_same(replica: Vec<Vec<Value>>, source: Vec<Vec<Value>>) {
    assert_eq!(replica.len(), source.len(), "row counts differ");
    if let Some(i) = (0..replica.len()).find(|&i| replica[i] != source[i]) {
        panic!("row {i} differs: replica {:?} source {:?}", replica[i], source[i]);
    }
}

fn run_local<F: std::future::Future<Output = ()>>(f: F) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(tokio::task::LocalSet::new().run_until(f));
}

#[test]
fn partial_runs_resume_until_exact() {
    run_local(async {
        let (db, c) = fresh_db(ITEMS).await;
        let store = SqliteStore::memory();
        let live = LiveRuns::default();
        let cfg = config(
            &store,
            serde_json::json!({"source": pg(), "source_table": "items", "cursor_column": "ts", "interval_seconds": 60, "batch_size": 70}),
        );
        let clock = TestClock::at(1_000_000);
        // A zero budget stops after every batch: each run copies exactly one page.
        let mut statuses = Vec::new();
        for _ in 0..100 {
            let r = engine::run(&ctx(&store, &clock, &live, limits(0)), &cfg, source(&db)).await.unwrap();
            statuses.push(r.status);
            clock.0.set(clock.0.get() + 1);
            if r.status != "partial" {
                break;
            }
        }
        assert_eq!(statuses.iter().filter(|s| *s == "partial").count(), 14, "{statuses:?}");
        assert_eq!(statuses.last().unwrap(), "ok");
        // Until the copy finished, readers had no table: the staging table held the rows.
        assert_same(replica_rows(&store, "items"), source_rows(&c).await);
        // Then changes arrive incrementally, including rows sharing the last cursor value.
        c.batch_execute(
            "UPDATE items SET v = 'changed', ts = '2026-02-01Z' WHERE id % 100 = 0; INSERT INTO items VALUES (5000, 'new', '2026-02-01Z')",
        )
        .await
        .unwrap();
        let r = engine::run(&ctx(&store, &clock, &live, limits(60_000)), &cfg, source(&db)).await.unwrap();
        assert_eq!((r.status.as_str(), r.rows_upserted), ("ok", 11));
        assert_same(replica_rows(&store, "items"), source_rows(&c).await);
    });
}

/// Fails on the n-th page, like a connection lost mid-sync; or, with `stall`, never answers,
/// like a process that stops mid-sync.
struct Flaky {
    inner: PostgresSource,
    pages_left: usize,
    stall: bool,
}
impl Source for Flaky {
    fn describe_origin(&self) -> String {
        self.inner.describe_origin()
    }
    fn source_type(&self) -> SourceType {
        self.inner.source_type()
    }
    async fn table_schema(&mut self, t: &TableName) -> Result<TableSchema> {
        self.inner.table_schema(t).await
    }
    async fn fetch_page(&mut self, p: &PageRequest<'_>) -> Result<Vec<Vec<Value>>> {
        if self.pages_left == 0 {
            if self.stall {
                std::future::pending::<()>().await;
            }
            return Err(Error::at_origin("postgres test", "connection reset by peer"));
        }
        self.pages_left -= 1;
        self.inner.fetch_page(p).await
    }
    async fn count_nulls(&mut self, t: &TableName, c: &Column) -> Result<u64> {
        self.inner.count_nulls(t, c).await
    }
    async fn count_key_ranges(&mut self, t: &TableName, key: &[Column], ranges: &[KeyRange], rows: &[u64]) -> Result<Vec<(usize, u64)>> {
        self.inner.count_key_ranges(t, key, ranges, rows).await
    }
    async fn absent_keys(&mut self, t: &TableName, key: &[Column], keys: &[Vec<Value>]) -> Result<Vec<usize>> {
        self.inner.absent_keys(t, key, keys).await
    }
}

#[test]
fn a_failing_source_keeps_the_checkpoint_and_backs_off() {
    run_local(async {
        let (db, c) = fresh_db(ITEMS).await;
        let store = SqliteStore::memory();
        let live = LiveRuns::default();
        let cfg = config(
            &store,
            serde_json::json!({"source": pg(), "source_table": "items", "cursor_column": "ts", "interval_seconds": 60, "batch_size": 100}),
        );
        let clock = TestClock::at(1_000_000);
        for (n, pages) in [3usize, 2, 4].into_iter().enumerate() {
            let flaky = async { Ok(Flaky { inner: source(&db).await?, pages_left: pages, stall: false }) };
            let r = engine::run(&ctx(&store, &clock, &live, limits(60_000)), &cfg, flaky).await.unwrap();
            assert_eq!(r.status, "error");
            assert!(r.error.as_deref().unwrap().contains("connection reset"), "{r:?}");
            let st = catalog::load_state(&store, cfg.id).unwrap().unwrap();
            assert_eq!(st.consecutive_failures, n as i64 + 1);
            assert_eq!(st.next_sync_at, Some(clock.0.get() + 60_000 * (1 << n)));
            assert!(st.lock_until.is_none(), "a failed run releases its lock");
        }
        // 9 pages were committed across the failures; the next run copies only the rest.
        let r = engine::run(&ctx(&store, &clock, &live, limits(60_000)), &cfg, source(&db)).await.unwrap();
        assert_eq!((r.status.as_str(), r.rows_upserted), ("ok", 100));
        assert_same(replica_rows(&store, "items"), source_rows(&c).await);
        assert_eq!(catalog::load_state(&store, cfg.id).unwrap().unwrap().consecutive_failures, 0);
    });
}

#[test]
fn a_run_cancelled_mid_flight_is_locked_out_then_resumed() {
    run_local(async {
        let (db, c) = fresh_db(ITEMS).await;
        let store = SqliteStore::memory();
        let live = LiveRuns::default();
        let cfg = config(&store, serde_json::json!({"source": pg(), "source_table": "items", "interval_seconds": 60, "batch_size": 100}));
        let clock = TestClock::at(1_000_000);
        // Dropping the future at an await point is what a killed process looks like to storage:
        // some batches committed, the lock and a `running` record left behind.
        {
            let stalling = async { Ok(Flaky { inner: source(&db).await?, pages_left: 2, stall: true }) };
            let run_ctx = ctx(&store, &clock, &live, limits(60_000));
            let fut = Box::pin(engine::run(&run_ctx, &cfg, stalling));
            let cut = tokio::time::timeout(std::time::Duration::from_millis(500), fut).await;
            assert!(cut.is_err(), "the run must still be waiting on its stalled source when dropped");
        }
        let err = engine::run(&ctx(&store, &clock, &live, limits(60_000)), &cfg, source(&db)).await.unwrap_err();
        assert_eq!(err.status(), 409);
        clock.0.set(clock.0.get() + 60_000 + engine::LOCK_GRACE_MS + 1);
        let r = engine::run(&ctx(&store, &clock, &live, limits(60_000)), &cfg, source(&db)).await.unwrap();
        assert_eq!(r.status, "ok");
        assert_same(replica_rows(&store, "items"), source_rows(&c).await);
        let runs = catalog::list_runs(&store, Some(cfg.id), 10).unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[1].status, "error", "the abandoned run is closed as interrupted");
    });
}

#[test]
fn a_config_reset_during_a_run_stops_its_writes() {
    run_local(async {
        let (db, _c) = fresh_db(ITEMS).await;
        let store = SqliteStore::memory();
        let live = LiveRuns::default();
        let cfg = config(&store, serde_json::json!({"source": pg(), "source_table": "items", "interval_seconds": 60, "batch_size": 100}));
        let clock = TestClock::at(1_000_000);
        // The reset lands while the run waits for the source to open.
        let open = async {
            let mut changed = cfg.clone();
            changed.columns = Some(vec!["id".into(), "v".into()]);
            catalog::update_config(&store, &changed, true, 0).unwrap();
            source(&db).await
        };
        let r = engine::run(&ctx(&store, &clock, &live, limits(60_000)), &cfg, open).await.unwrap();
        assert_eq!(r.status, "error");
        assert!(r.error.unwrap().contains("changed during the run"));
        assert_eq!(r.rows_upserted, 0);
        assert!(!catalog::table_exists(&store, "items").unwrap());
    });
}
