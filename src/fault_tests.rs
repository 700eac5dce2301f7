//! The faults the end-to-end tests (tests/faults_*.test.mjs) force in workerd, reproduced
//! natively against an in-memory source, so that each fix is pinned where it was made:
//! a lock left by a process that died, a reset or delete landing during a run, a config whose
//! source cannot be resolved, enabling a never-synced config, ids beyond 2^53.

use crate::api::{self, ApiRequest, Host};
use crate::auth::Role;
use crate::catalog::{self, LiveRuns, RunStatus};
use crate::config::{Bindings, Config, SourceType};
use crate::engine::{self, Clock, Limits, RunContext};
use crate::error::{Error, Result};
use crate::source::{Affinity, Column, KeyRange, PageRequest, Source, TableName, TableSchema};
use crate::store::Store;
use crate::test_support::{SqliteStore, TestClock, TestEnv};
use crate::value::Value;
use std::cell::{Cell, RefCell};

fn env(default: Option<SourceType>) -> TestEnv {
    TestEnv { secrets: vec!["PG_URL"], default, ..TestEnv::default() }
}

/// The run context of one replica object: its store, the clock and its live runs.
fn ctx<'a>(store: &'a SqliteStore, clock: &'a TestClock, live: &'a LiveRuns) -> RunContext<'a> {
    RunContext { store, clock, live, limits: limits() }
}

/// A table `(id bigint primary key, v text)` of `n` rows, served a page at a time. `hook`
/// runs before every page (to change configs while a run is in flight); after `hang_after`
/// pages the source stops answering, like a locked table.
struct Mem<'a> {
    n: i64,
    hook: Option<&'a dyn Fn()>,
    hang_after: Option<usize>,
    pages: usize,
    /// Ids deleted at the origin.
    gone: std::collections::BTreeSet<i64>,
}

impl<'a> Mem<'a> {
    fn new(n: i64) -> Self {
        Mem { n, hook: None, hang_after: None, pages: 0, gone: Default::default() }
    }
    fn has(&self, id: i64) -> bool {
        (1..=self.n).contains(&id) && !self.gone.contains(&id)
    }
}

impl Source for Mem<'_> {
    fn describe_origin(&self) -> String {
        "memory".into()
    }
    fn source_type(&self) -> SourceType {
        SourceType::Postgres
    }
    async fn table_schema(&mut self, _: &TableName) -> Result<TableSchema> {
        let col = |name: &str, source_type: &str, affinity, nullable| Column {
            name: name.into(),
            source_type: source_type.into(),
            affinity,
            nullable,
        };
        Ok(TableSchema {
            columns: vec![col("id", "bigint", Affinity::Integer, false), col("v", "text", Affinity::Text, true)],
            primary_key: vec!["id".into()],
        })
    }
    async fn fetch_page(&mut self, page: &PageRequest<'_>) -> Result<Vec<Vec<Value>>> {
        if let Some(h) = self.hook {
            h();
        }
        if self.hang_after.is_some_and(|n| self.pages >= n) {
            std::future::pending::<()>().await;
        }
        self.pages += 1;
        let after = page.after.and_then(|a| a[0].as_i64()).unwrap_or(0);
        Ok((after + 1..=self.n)
            .filter(|&i| self.has(i))
            .take(page.limit)
            .map(|i| vec![Value::Integer(i), Value::text(format!("v{i}"))])
            .collect())
    }
    async fn count_nulls(&mut self, _: &TableName, _: &Column) -> Result<u64> {
        Ok(0)
    }
    async fn count_key_ranges(&mut self, _: &TableName, _: &[Column], ranges: &[KeyRange], rows: &[u64]) -> Result<Vec<(usize, u64)>> {
        if let Some(h) = self.hook {
            h();
        }
        let id = |k: &[Value]| k[0].as_i64().expect("integer keys");
        Ok(ranges
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let from = r.lo.as_deref().map_or(1, |lo| id(lo) + 1).max(1);
                (i, (from..=id(&r.hi).min(self.n)).filter(|&k| self.has(k)).count() as u64)
            })
            .filter(|&(i, c)| c != rows[i])
            .collect())
    }
    async fn absent_keys(&mut self, _: &TableName, _: &[Column], keys: &[Vec<Value>]) -> Result<Vec<usize>> {
        Ok(keys.iter().enumerate().filter(|(_, k)| !self.has(k[0].as_i64().expect("integer keys"))).map(|(i, _)| i).collect())
    }
}

fn limits() -> Limits {
    Limits { budget_ms: 20_000, default_batch_size: 10 }
}

fn new_config(store: &SqliteStore, env: &TestEnv, body: serde_json::Value) -> Config {
    catalog::migrate(store).unwrap();
    let id = catalog::next_config_id(store).unwrap();
    let cfg = crate::config::validate(body.to_string().as_bytes(), None, env, "t0", id).unwrap();
    catalog::insert_config(store, &cfg).unwrap();
    cfg
}

fn pg(table: &str, target: &str) -> serde_json::Value {
    serde_json::json!({"source": {"type": "postgres", "url_secret": "PG_URL"}, "source_table": table, "target_table": target, "interval_seconds": 60, "batch_size": 10})
}

fn count(store: &SqliteStore, table: &str) -> i64 {
    store.query(&format!("SELECT count(*) FROM \"{table}\""), &[]).unwrap()[0][0].as_i64().unwrap()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

#[test]
fn a_lock_left_by_a_dead_process_does_not_block_the_next_run() {
    let env = env(None);
    let store = SqliteStore::memory();
    let cfg = new_config(&store, &env, pg("items", "items"));
    let clock = TestClock::at(1_000_000);
    // Another thread stands for the process that died: its run takes the lock, copies three
    // pages, then its source hangs and the thread is gone. The object instance's live runs die
    // with it, as a Durable Object's memory dies with its process.
    let (store, cfg) = std::thread::scope(|s| {
        s.spawn(move || {
            let clock = TestClock::at(1_000_000);
            let dead = LiveRuns::default();
            let src = Mem { hang_after: Some(3), ..Mem::new(100) };
            let run_ctx = ctx(&store, &clock, &dead);
            let run = engine::run(&run_ctx, &cfg, async { Ok(src) });
            block_on(async { tokio::time::timeout(std::time::Duration::from_millis(50), run).await.expect_err("the run hangs") });
            (store, cfg)
        })
        .join()
        .unwrap()
    });
    let live = LiveRuns::default();
    let st = catalog::load_state(&store, cfg.id).unwrap().unwrap();
    assert!(st.lock_until.is_some_and(|u| u > clock.now_ms()), "the dead run's lock is still there, unexpired");
    // Same instant: the lock has not expired, yet its run is not alive here, so this run starts.
    let r = block_on(engine::run(&ctx(&store, &clock, &live), &cfg, async { Ok(Mem::new(100)) })).unwrap();
    assert_eq!(r.status, "ok");
    assert_eq!(count(&store, "items"), 100);
    let runs = catalog::list_runs(&store, Some(cfg.id), 10).unwrap();
    assert_eq!(runs[1].status, "error", "the dead run is closed as interrupted");
    assert!(runs[1].error.as_deref().unwrap().contains("interrupted"));
}

#[test]
fn a_live_run_still_holds_its_lock() {
    let env = env(None);
    let store = SqliteStore::memory();
    let live = LiveRuns::default();
    let cfg = new_config(&store, &env, pg("items", "items"));
    let clock = TestClock::at(1_000_000);
    let second = RefCell::new(None);
    let hook = || {
        if second.borrow().is_none() {
            // A second run is refused before its first await, so one poll decides it.
            let run_ctx = ctx(&store, &clock, &live);
            let run = engine::run(&run_ctx, &cfg, async { Ok(Mem::new(5)) });
            let r = futures_util::FutureExt::now_or_never(run).expect("decided without waiting");
            *second.borrow_mut() = Some(r);
        }
    };
    let src = Mem { hook: Some(&hook), ..Mem::new(30) };
    let first = block_on(engine::run(&ctx(&store, &clock, &live), &cfg, async { Ok(src) })).unwrap();
    assert_eq!(first.status, "ok");
    let e = second.into_inner().unwrap().unwrap_err();
    assert_eq!(e.status(), 409, "a run during a live one is refused: {e:?}");
    assert_eq!(count(&store, "items"), 30);
}

#[test]
fn a_reset_during_a_run_leaves_the_config_due_at_once_and_not_failed() {
    let env = env(None);
    let store = SqliteStore::memory();
    let live = LiveRuns::default();
    let cfg = new_config(&store, &env, pg("items", "items"));
    let clock = TestClock::at(1_000_000);
    let done = Cell::new(false);
    let hook = || {
        if !done.replace(true) {
            let mut changed = cfg.clone();
            changed.columns = Some(vec!["id".into()]);
            catalog::update_config(&store, &changed, true, clock.now_ms()).unwrap();
        }
    };
    let src = Mem { hook: Some(&hook), ..Mem::new(50) };
    let r = block_on(engine::run(&ctx(&store, &clock, &live), &cfg, async { Ok(src) })).unwrap();
    assert_eq!(r.status, "error");
    assert!(r.error.unwrap().contains("changed during the run"));
    let st = catalog::load_state(&store, cfg.id).unwrap().unwrap();
    assert_eq!(st.next_sync_at, None, "a reset config is due at once");
    assert_eq!(st.consecutive_failures, 0, "a reset is not a failure of the source");
    assert_eq!(st.last_error, None);
    assert_eq!((st.lock_run_id, st.lock_until), (None, None), "the lock is released");
}

/// A `Host` over the in-memory pieces; `hook` runs before every page of every run.
struct TestHost<'a> {
    store: &'a SqliteStore,
    clock: TestClock,
    env: TestEnv,
    live: LiveRuns,
    hook: Option<&'a dyn Fn()>,
    alarm: Cell<Option<i64>>,
}

impl<'a> Host for TestHost<'a> {
    type Src = Mem<'a>;
    fn store(&self) -> &dyn Store {
        self.store
    }
    fn clock(&self) -> &dyn Clock {
        &self.clock
    }
    fn bindings(&self) -> &dyn Bindings {
        &self.env
    }
    fn limits(&self) -> Limits {
        limits()
    }
    fn live_runs(&self) -> &LiveRuns {
        &self.live
    }
    async fn open_source(&self, _: &Config) -> Result<Mem<'a>> {
        Ok(Mem { hook: self.hook, ..Mem::new(20) })
    }
    async fn set_alarm(&self, at: Option<i64>) -> Result<()> {
        self.alarm.set(at);
        Ok(())
    }
}

fn host<'a>(store: &'a SqliteStore, default: Option<SourceType>, hook: Option<&'a dyn Fn()>) -> TestHost<'a> {
    TestHost { store, clock: TestClock::at(1_000_000), env: env(default), live: LiveRuns::default(), hook, alarm: Cell::new(None) }
}

#[test]
fn the_alarm_runs_configs_as_stored_now_not_as_listed() {
    let env = env(None);
    let store = SqliteStore::memory();
    let a = new_config(&store, &env, pg("a", "a"));
    let b = new_config(&store, &env, pg("b", "b"));
    let c = new_config(&store, &env, pg("c", "c"));
    let d = new_config(&store, &env, pg("d", "d"));
    // While the first config's run reads its source: b is deleted, c disabled, d retargeted.
    let done = Cell::new(false);
    let hook = || {
        if !done.replace(true) {
            catalog::delete_config(&store, &b, false).unwrap();
            let mut off = c.clone();
            off.enabled = false;
            catalog::update_config(&store, &off, false, 0).unwrap();
            let mut moved = d.clone();
            moved.target_table = "d_moved".into();
            catalog::update_config(&store, &moved, true, 0).unwrap();
        }
    };
    let h = host(&store, None, Some(&hook));
    let records = block_on(api::run_due(&h)).expect("the alarm's pass completes");
    let ran: Vec<i64> = records.iter().map(|r| r.config_id).collect();
    assert_eq!(ran, vec![a.id, d.id], "the deleted and the disabled configs are not run");
    assert!(records.iter().all(|r| r.status == "ok"), "{records:?}");
    assert!(!catalog::table_exists(&store, "b").unwrap());
    assert!(!catalog::table_exists(&store, "c").unwrap());
    assert!(!catalog::table_exists(&store, "d").unwrap(), "the retargeted config's old table is not created");
    assert_eq!(count(&store, "d_moved"), 20);
}

#[test]
fn a_config_whose_source_cannot_be_resolved_fails_as_a_run() {
    let store = SqliteStore::memory();
    // Made while the instance had a default database; it has none any more.
    let orphan = new_config(&store, &env(Some(SourceType::Postgres)), serde_json::json!({"source_table": "o", "interval_seconds": 60}));
    let healthy = new_config(&store, &env(None), pg("h", "h"));
    let h = host(&store, None, None);
    let records = block_on(api::run_due(&h)).expect("the alarm's pass completes");
    assert_eq!(records.len(), 2, "{records:?}");
    let o = records.iter().find(|r| r.config_id == orphan.id).unwrap();
    assert_eq!(o.status, "error");
    assert!(o.error.as_deref().unwrap().contains("no default external database"));
    assert_eq!(records.iter().find(|r| r.config_id == healthy.id).unwrap().status, "ok");
    let st = catalog::load_state(&store, orphan.id).unwrap().unwrap();
    assert_eq!(st.consecutive_failures, 1);
    assert_eq!(st.next_sync_at, Some(h.clock.now_ms() + 60_000), "it backs off like any failure");
}

fn request(method: &str, path: &str, body: &str) -> ApiRequest {
    ApiRequest {
        method: method.into(),
        path: path.into(),
        query: String::new(),
        role: Some(Role::Admin),
        headers: Vec::new(),
        body: body.as_bytes().to_vec(),
    }
}

#[test]
fn enabling_a_never_synced_config_keeps_it_due_at_once() {
    let store = SqliteStore::memory();
    let cfg = new_config(
        &store,
        &env(None),
        serde_json::json!({"source": {"type": "postgres", "url_secret": "PG_URL"},
        "source_table": "t", "interval_seconds": 3600, "enabled": false}),
    );
    let h = host(&store, None, None);
    let r = block_on(api::handle(&h, request("PUT", &format!("/replication/configs/{}", cfg.id), r#"{"enabled": true}"#)));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(catalog::load_state(&store, cfg.id).unwrap().unwrap().next_sync_at, None);
    assert_eq!(h.alarm.get(), Some(h.clock.now_ms()), "the alarm is armed for now");
    // A shorter interval still pulls a scheduled sync closer.
    let r = block_on(api::handle(&h, request("POST", &format!("/replication/sync/{}", cfg.id), "")));
    assert_eq!(r.status, 200, "{}", r.body);
    let later = catalog::load_state(&store, cfg.id).unwrap().unwrap().next_sync_at.unwrap();
    assert_eq!(later, h.clock.now_ms() + 3_600_000);
    block_on(api::handle(&h, request("PUT", &format!("/replication/configs/{}", cfg.id), r#"{"interval_seconds": 5}"#)));
    assert_eq!(catalog::load_state(&store, cfg.id).unwrap().unwrap().next_sync_at, Some(h.clock.now_ms() + 5_000));
}

#[test]
fn ids_beyond_2_pow_53_are_unknown_not_errors() {
    let store = SqliteStore::memory();
    let h = host(&store, None, None);
    for (m, p) in [
        ("GET", "/replication/configs/9007199254740993"),
        ("GET", "/replication/status/9223372036854775807"),
        ("POST", "/replication/sync/9007199254740993"),
        ("DELETE", "/replication/configs/9007199254740993"),
    ] {
        let r = block_on(api::handle(&h, request(m, p, "")));
        assert_eq!(r.status, 404, "{m} {p}: {}", r.body);
    }
    let r = block_on(api::handle(&h, request("GET", "/replication/configs/9223372036854775808", "")));
    assert_eq!(r.status, 400);
}

#[test]
fn an_error_from_the_source_after_the_lock_is_a_run_record() {
    let store = SqliteStore::memory();
    let live = LiveRuns::default();
    let cfg = new_config(&store, &env(None), pg("x", "x"));
    let clock = TestClock::at(5);
    let r = block_on(engine::run::<Mem, _>(&ctx(&store, &clock, &live), &cfg, async { Err(Error::at_origin("memory", "down")) })).unwrap();
    assert_eq!(r.status, "error");
    assert_eq!(catalog::load_state(&store, cfg.id).unwrap().unwrap().lock_until, None);
}

#[test]
fn another_objects_live_run_does_not_make_a_dead_lock_look_live() {
    // Two replica objects in one isolate (a primary and a read replica, say): A is running
    // its config's first run; B holds a lock left by a dead instance, with the same run id.
    let env = env(None);
    let (a, b) = (SqliteStore::memory(), SqliteStore::memory());
    let (live_a, live_b) = (LiveRuns::default(), LiveRuns::default());
    let clock = TestClock::at(1_000_000);
    let cfg_a = new_config(&a, &env, pg("items", "items"));
    let cfg_b = new_config(&b, &env, pg("items", "items"));
    let ctx_a = ctx(&a, &clock, &live_a);
    let hanging = engine::run(&ctx_a, &cfg_a, async { Ok(Mem { hang_after: Some(1), ..Mem::new(100) }) });
    let mut hanging = Box::pin(hanging);
    assert!(futures_util::FutureExt::now_or_never(&mut hanging).is_none(), "A's run is under way");
    let a_run = catalog::load_state(&a, cfg_a.id).unwrap().unwrap().lock_run_id.unwrap();
    b.execute(
        "UPDATE tmp_replication_state SET lock_run_id = ?, lock_until = ? WHERE config_id = ?",
        &[Value::Integer(a_run), Value::Integer(clock.now_ms() + 60_000), Value::Integer(cfg_b.id)],
    )
    .unwrap();
    let r = block_on(engine::run(&ctx(&b, &clock, &live_b), &cfg_b, async { Ok(Mem::new(100)) })).unwrap();
    assert_eq!(r.status, "ok", "B's dead lock holds nothing back");
    // A's own run still holds its lock in A.
    let again = block_on(engine::run(&ctx_a, &cfg_a, async { Ok(Mem::new(100)) }));
    assert!(again.unwrap_err().is_busy());
    drop(hanging);
}

#[test]
fn data_as_of_is_the_start_of_what_a_complete_run_can_vouch_for() {
    let env = env(None);
    let store = SqliteStore::memory();
    let live = LiveRuns::default();
    let clock = TestClock::at(1_000_000);
    // Each page takes 5 s, so a 100-row copy (10 pages) spreads over several 20 s runs.
    let hook = || clock.advance(5_000);
    let state = |id| catalog::load_state(&store, id).unwrap().unwrap();
    let run_until_ok = |cfg: &Config| {
        let mut starts = Vec::new();
        let before = state(cfg.id).data_as_of_ms;
        loop {
            starts.push(clock.now_ms());
            let src = Mem { hook: Some(&hook), ..Mem::new(100) };
            let r = block_on(engine::run(&ctx(&store, &clock, &live), cfg, async { Ok(src) })).unwrap();
            if r.status == "ok" {
                return starts;
            }
            assert_eq!(r.status, "partial");
            // The target is still the previous copy (or none): what held for it still holds.
            assert_eq!(state(cfg.id).data_as_of_ms, before, "no new claim before the source was read to its end");
            clock.advance(1_000);
        }
    };

    // Full: rows copied by an earlier run of the copy may have changed since, so the copy is
    // as old as its first run.
    let full = new_config(&store, &env, pg("items", "items_full"));
    let starts = run_until_ok(&full);
    assert!(starts.len() >= 3, "{starts:?}");
    assert_eq!(state(full.id).data_as_of_ms, Some(starts[0]));
    clock.advance(60_000);
    let again = run_until_ok(&full);
    assert_eq!(state(full.id).data_as_of_ms, Some(again[0]), "each full copy starts a new pass");

    // Incremental: pages follow the cursor, so the last run's start holds (its first copy too).
    let mut body = pg("items", "items_inc");
    body["cursor_column"] = "id".into();
    let inc = new_config(&store, &env, body);
    let starts = run_until_ok(&inc);
    assert!(starts.len() >= 3, "{starts:?}");
    assert_eq!(state(inc.id).data_as_of_ms, Some(*starts.last().unwrap()));
    clock.advance(60_000);
    let again = run_until_ok(&inc);
    assert_eq!(again.len(), 1, "caught up in one run");
    assert_eq!(state(inc.id).data_as_of_ms, Some(again[0]));

    // A failed run leaves it; a reset forgets it (the old copy is not the new config's).
    let before = state(inc.id).data_as_of_ms;
    let failed = block_on(engine::run(&ctx(&store, &clock, &live), &inc, async { Err::<Mem, _>(Error::at_origin("memory", "down")) }));
    assert_eq!(failed.unwrap().status, "error");
    assert_eq!(state(inc.id).data_as_of_ms, before);
    let mut changed = inc.clone();
    changed.columns = Some(vec!["id".into()]);
    catalog::update_config(&store, &changed, true, clock.now_ms()).unwrap();
    assert_eq!((state(inc.id).data_as_of_ms, state(inc.id).pass_started_ms), (None, None));
}

// ---- delete reconciliation ----

fn inc(target: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut body = pg("items", target);
    body["cursor_column"] = "id".into();
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

fn ids(store: &SqliteStore, table: &str) -> Vec<i64> {
    store.query(&format!("SELECT id FROM \"{table}\" ORDER BY id"), &[]).unwrap().iter().map(|r| r[0].as_i64().unwrap()).collect()
}

fn small_tuning() -> crate::reconcile::Tuning {
    crate::reconcile::Tuning { window: 8, step: 16, fanout: 4, leaf: 4, max_ranges: 20, max_keys: 30 }
}

#[test]
fn a_forced_pass_deletes_what_the_origin_lost_and_resumes_across_time_budgets() {
    let env = env(None);
    let store = SqliteStore::memory();
    let live = LiveRuns::default();
    let cfg = new_config(&store, &env, inc("items", serde_json::json!({})));
    let clock = TestClock::at(1_000_000);
    let r = block_on(engine::run(&ctx(&store, &clock, &live), &cfg, async { Ok(Mem::new(3000)) })).unwrap();
    assert_eq!((r.status.as_str(), r.reconciled), ("ok", false), "{r:?}");
    // Deleted at the origin: a run of neighbours, the first and last keys, and a scatter.
    let gone: std::collections::BTreeSet<i64> =
        (1..=3000).filter(|i| i % 97 == 0 || (1200..1240).contains(i) || *i == 1 || *i == 3000).collect();
    // Every origin request moves the clock 3 s on: a 20 s budget ends each run after a few.
    let tick = || clock.advance(3_000);
    let opts = engine::RunOptions { reconcile: true, tuning: small_tuning() };
    let mut runs = Vec::new();
    for i in 0..200 {
        let src = Mem { hook: Some(&tick), gone: gone.clone(), ..Mem::new(3000) };
        // Only the first run is asked to reconcile: the others resume the pass under way.
        let opts = engine::RunOptions { reconcile: i == 0, ..opts };
        let r = block_on(engine::run_with(&ctx(&store, &clock, &live), &cfg, async { Ok(src) }, opts)).unwrap();
        runs.push(r.clone());
        if r.status != "partial" {
            break;
        }
        assert!(catalog::load_state(&store, cfg.id).unwrap().unwrap().reconcile.is_some(), "a stopped pass keeps its place");
    }
    let last = runs.last().unwrap();
    assert_eq!(last.status, "ok", "{runs:?}");
    assert!(runs.len() > 3, "the budget cut the pass into several runs: {}", runs.len());
    assert!(runs.iter().all(|r| r.reconciled));
    assert_eq!(runs.iter().map(|r| r.rows_deleted).sum::<i64>(), gone.len() as i64);
    assert_eq!(ids(&store, "items"), (1..=3000).filter(|i| !gone.contains(i)).collect::<Vec<_>>());
    let st = catalog::load_state(&store, cfg.id).unwrap().unwrap();
    assert_eq!(st.reconcile, None);
    assert_eq!(st.last_reconcile_at.as_deref(), Some(crate::time::format_epoch_ms(clock.now_ms()).as_str()));
    // A pass with nothing to delete counts once per window and deletes nothing.
    let r = block_on(engine::run_with(&ctx(&store, &clock, &live), &cfg, async { Ok(Mem { gone: gone.clone(), ..Mem::new(3000) }) }, opts))
        .unwrap();
    assert_eq!((r.status.as_str(), r.reconciled, r.rows_deleted, r.rows_upserted), ("ok", true, 0, 0));
}

#[test]
fn reconcile_seconds_makes_a_caught_up_run_reconcile_when_due() {
    let env = env(None);
    let store = SqliteStore::memory();
    let live = LiveRuns::default();
    let cfg = new_config(&store, &env, inc("items", serde_json::json!({"reconcile_seconds": 600})));
    let clock = TestClock::at(1_000_000);
    let gone: std::collections::BTreeSet<i64> = [5, 6, 70].into_iter().collect();
    let run = |gone: &std::collections::BTreeSet<i64>| {
        let src = Mem { gone: gone.clone(), ..Mem::new(100) };
        block_on(engine::run(&ctx(&store, &clock, &live), &cfg, async { Ok(src) })).unwrap()
    };
    // The first copy is followed by a first pass (none has run yet), with nothing to delete.
    let r = run(&std::collections::BTreeSet::new());
    assert_eq!((r.status.as_str(), r.reconciled, r.rows_deleted), ("ok", true, 0));
    // Within the interval: no pass, so rows gone at the origin stay.
    clock.advance(599_000);
    let r = run(&gone);
    assert_eq!((r.reconciled, r.rows_deleted), (false, 0));
    assert_eq!(count(&store, "items"), 100);
    // Due again: the pass deletes them, and the next one is another interval away.
    clock.advance(1_000);
    let r = run(&gone);
    assert_eq!((r.status.as_str(), r.reconciled, r.rows_deleted), ("ok", true, 3));
    assert_eq!(count(&store, "items"), 97);
    let r = run(&gone);
    assert!(!r.reconciled);
    let listed = catalog::list_runs(&store, Some(cfg.id), 10).unwrap();
    assert_eq!(listed.iter().map(|r| r.reconciled).collect::<Vec<_>>(), [false, true, false, true]);
}

#[test]
fn a_forced_pass_is_only_for_incremental_configs_and_status_shows_the_last_one() {
    let store = SqliteStore::memory();
    let h = host(&store, None, None);
    let full = new_config(&store, &h.env, pg("items", "full_items"));
    let incr = new_config(&store, &h.env, inc("items", serde_json::json!({})));
    let call = |method: &str, path: &str| {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let req = ApiRequest {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            role: Some(Role::Admin),
            headers: vec![],
            body: vec![],
        };
        let r = block_on(api::handle(&h, req));
        (r.status, serde_json::from_str::<serde_json::Value>(&r.body).unwrap())
    };
    let (status, body) = call("POST", &format!("/replication/sync/{}?reconcile=true", full.id));
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("incremental"), "{body}");
    assert!(catalog::list_runs(&store, Some(full.id), 10).unwrap().is_empty(), "a refused request runs nothing");
    let (status, body) = call("POST", &format!("/replication/sync/{}?reconcile=maybe", incr.id));
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("reconcile"), "{body}");
    let (status, body) = call("POST", &format!("/replication/sync/{}", full.id));
    assert_eq!((status, &body["result"]["reconciled"]), (200, &serde_json::json!(false)), "{body}");
    let (_, body) = call("GET", &format!("/replication/status/{}", incr.id));
    assert_eq!(body["result"]["last_reconcile_at"], serde_json::Value::Null);
    let (status, body) = call("POST", &format!("/replication/sync/{}?reconcile=true", incr.id));
    assert_eq!((status, &body["result"]["reconciled"]), (200, &serde_json::json!(true)), "{body}");
    let (_, body) = call("GET", &format!("/replication/status/{}", incr.id));
    assert_eq!(body["result"]["last_reconcile_at"], serde_json::json!(crate::time::format_epoch_ms(1_000_000)));
}

#[test]
fn a_sync_that_spends_the_budget_still_moves_the_pass_on() {
    let env = env(None);
    let store = SqliteStore::memory();
    let live = LiveRuns::default();
    let cfg = new_config(&store, &env, inc("items", serde_json::json!({})));
    let clock = TestClock::at(1_000_000);
    block_on(engine::run(&ctx(&store, &clock, &live), &cfg, async { Ok(Mem::new(2000)) })).unwrap();
    let gone: std::collections::BTreeSet<i64> = (1..=2000).filter(|i| i % 10 == 0).collect();
    // Every page and every origin request takes the whole budget.
    let slow = || clock.advance(25_000);
    let opts = engine::RunOptions { reconcile: true, tuning: small_tuning() };
    let mut runs = Vec::new();
    for i in 0..100 {
        let src = Mem { hook: Some(&slow), gone: gone.clone(), ..Mem::new(2000) };
        let opts = engine::RunOptions { reconcile: i == 0, ..opts };
        let r = block_on(engine::run_with(&ctx(&store, &clock, &live), &cfg, async { Ok(src) }, opts)).unwrap();
        runs.push((r.status, r.reconciled, r.rows_deleted));
        if r.status != "partial" {
            break;
        }
    }
    assert!(runs.len() > 2 && runs.iter().all(|r| r.1), "each run moved the pass on: {runs:?}");
    assert!(runs.iter().filter(|r| r.2 > 0).count() > 2, "deletes in many runs: {runs:?}");
    assert_eq!(runs.last().unwrap().0, RunStatus::Ok);
    assert_eq!(runs.iter().map(|r| r.2).sum::<i64>(), 200);
    assert_eq!(count(&store, "items"), 1800);
}

/// A read as a client (or the admin) sends it, with request headers.
fn read(role: Role, path: &str, body: serde_json::Value, headers: &[(&str, &str)]) -> ApiRequest {
    ApiRequest {
        method: "POST".into(),
        path: path.into(),
        query: String::new(),
        role: Some(role),
        headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        body: body.to_string().into_bytes(),
    }
}

fn bookmark_header(r: &api::ApiResponse) -> Option<&str> {
    r.headers.iter().find(|(n, _)| *n == "x-replica-bookmark").map(|(_, v)| v.as_str())
}

#[test]
fn client_reads_stop_at_their_caps_exactly_and_every_read_carries_the_bookmark() {
    let store = SqliteStore::memory();
    catalog::migrate(&store).unwrap();
    store.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT)", &[]).unwrap();
    store.execute("INSERT INTO t SELECT value, 'x' FROM json_each('[1,2,3,4,5]')", &[]).unwrap();
    let mut h = host(&store, None, None);
    // Rows: 3. Bytes: `[["é…é"]]` is 6 + 2 per é on /query/raw; `[{"s":"é…é"}]` 10 + 2 per é on /query.
    h.env.vars = vec![("QUERY_MAX_ROWS", "3"), ("QUERY_MAX_BYTES", "106")];
    let q = |role, path: &str, sql: &str, params: serde_json::Value| {
        block_on(api::handle(&h, read(role, path, serde_json::json!({"sql": sql, "params": params}), &[])))
    };
    let ok = q(Role::Client, "/query", "SELECT id FROM t ORDER BY id LIMIT 3", serde_json::json!([]));
    assert_eq!(ok.status, 200, "exactly the limit: {}", ok.body);
    let over = q(Role::Client, "/query", "SELECT id FROM t ORDER BY id LIMIT 4", serde_json::json!([]));
    assert_eq!(over.status, 400);
    assert!(over.body.contains("QUERY_MAX_ROWS") && over.body.contains("more than 3 rows"), "{}", over.body);
    assert_eq!(q(Role::Admin, "/query", "SELECT id FROM t", serde_json::json!([])).status, 200, "the admin is not limited");

    let e = |n| serde_json::json!(["é".repeat(n)]);
    let raw_ok = q(Role::Client, "/query/raw", "SELECT ? AS s", e(50));
    assert_eq!(raw_ok.status, 200, "106 bytes: {}", raw_ok.body);
    let v: serde_json::Value = serde_json::from_str(&raw_ok.body).unwrap();
    assert_eq!(serde_json::to_string(&v["result"]["rows"]).unwrap().len(), 106, "the measure is the rows' JSON");
    assert_eq!(q(Role::Client, "/query/raw", "SELECT ? AS s", e(51)).status, 400);
    assert_eq!(q(Role::Client, "/query", "SELECT ? AS s", e(48)).status, 200, "106 bytes");
    let too_big = q(Role::Client, "/query", "SELECT ? AS s", e(49));
    assert_eq!(too_big.status, 400, "108 bytes");
    assert!(too_big.body.contains("QUERY_MAX_BYTES") && too_big.body.contains("106 bytes"), "{}", too_big.body);
    assert_eq!(q(Role::Admin, "/query", "SELECT ? AS s", e(5000)).status, 200);

    // Every read carries the position; the raw route repeats it in meta.
    let b = bookmark_header(&raw_ok).expect("the header");
    assert_eq!(v["result"]["meta"]["bookmark"], b);
    assert_eq!(b, crate::bookmark::format(0));
    assert_eq!(bookmark_header(&over), Some(b), "refusals carry it too");

    // Recursion: refused to the client (400 naming it) unless allowed; the admin may.
    let rec = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3) SELECT x FROM c";
    let refused = q(Role::Client, "/query", rec, serde_json::json!([]));
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("recursive"), "{}", refused.body);
    assert_eq!(q(Role::Admin, "/query", rec, serde_json::json!([])).status, 200);
    h.env.vars.push(("ALLOW_RECURSIVE_QUERIES", "true"));
    let allowed = block_on(api::handle(&h, read(Role::Client, "/query", serde_json::json!({"sql": rec}), &[])));
    assert_eq!(allowed.status, 200, "{}", allowed.body);

    // The replica headers: primary and a bookmark are answered; anything else is 400.
    let sel = serde_json::json!({"sql": "SELECT 1 AS one"});
    let with = |headers: &[(&str, &str)]| block_on(api::handle(&h, read(Role::Client, "/query", sel.clone(), headers))).status;
    assert_eq!(with(&[("x-replica-location", "primary")]), 200);
    assert_eq!(with(&[("x-replica-bookmark", b)]), 200);
    assert_eq!(with(&[("x-replica-bookmark", "00000000000000999999")]), 200, "the primary answers any position");
    for bad in [("x-replica-location", "weur"), ("x-replica-location", "mars"), ("x-replica-location", ""), ("x-replica-bookmark", "42")] {
        assert_eq!(with(&[bad]), 400, "{bad:?}");
    }

    // A variable that is not a number is the deployment's mistake, named.
    h.env.vars = vec![("QUERY_MAX_ROWS", "lots")];
    let r = block_on(api::handle(&h, read(Role::Client, "/query", sel.clone(), &[])));
    assert_eq!(r.status, 500);
    assert!(r.body.contains("QUERY_MAX_ROWS"), "{}", r.body);

    // No read replicas: the list is empty.
    let r = block_on(api::handle(&h, request("GET", "/replication/replicas", "")));
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"error":null,"result":[]}"#));
}
