//! The sync engine: one run of one config, from wherever its checkpoint says, until the
//! source is exhausted or the time budget is spent.
//!
//! A run reads top to bottom: `run` begins it in the ledger, opens the source and finishes
//! it; `sync` plans (introspects the table), then runs one phase: a copy (first copy, reset,
//! schema drift, every full-mode run) that ends with a swap, or an incremental pass. Both
//! phases page through the source with `page_through`. An incremental config whose run has
//! caught up may then reconcile deletes (`reconcile`, driving `crate::reconcile::Pass`):
//! when asked to, when a pass is under way, or when `reconcile_seconds` have passed.
//!
//! Guarantees, and where they come from:
//! - Nothing lost: pages follow the keyset `(cursor, key...)` with a strict `>` on the whole
//!   tuple, so rows sharing a cursor value across page boundaries are all visited.
//! - Nothing doubled: writes are upserts by primary key.
//! - Crash safety: each batch commits in one transaction together with the checkpoint that
//!   follows it (`Ledger::commit_batch`); a run that dies resumes from the last committed batch.
//! - Readers never see half a table: a copy fills a staging table, swapped in by one
//!   transaction (drop + rename).

use crate::catalog::{self, Checkpoint, Ledger, LiveRuns, Phase, Position, ReconcileState, Run, RunRecord, SyncState, Tally};
use crate::config::{Config, Mode, SourceType};
use crate::error::{Error, Result};
use crate::ident;
use crate::reconcile::{Need, Pass, Progress, Tuning};
use crate::replica_sql as rsql;
use crate::source::{Column, KeyRange, PageRequest, Source, TableName, TableSchema};
use crate::store::{Stmt, Store};
use crate::time::{format_timestamp_micros, parse_timestamp_micros};
use crate::value::Value;
use futures_util::future::{maybe_done, poll_fn, MaybeDone};
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

pub trait Clock {
    fn now_ms(&self) -> i64;
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock time a run may take before it stops at a batch boundary as `partial`.
    pub budget_ms: i64,
    pub default_batch_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // Well under the platform's 30 s CPU limit per invocation, with room for the last batch.
        // 2,000-row batches measured faster than 5,000 on a 1M-row copy (105k vs 97k rows/s)
        // and keep reads waiting behind a batch under 50 ms at the 99th percentile.
        Limits { budget_ms: 20_000, default_batch_size: 2_000 }
    }
}

/// A lock outlives its run's budget by this much, so that a live run, which may overrun its
/// budget by one batch, always finishes before its lock expires.
pub const LOCK_GRACE_MS: i64 = 30_000;

/// What every run needs from the object that executes it.
pub struct RunContext<'a> {
    pub store: &'a dyn Store,
    pub clock: &'a dyn Clock,
    /// The runs the executing object instance has under way.
    pub live: &'a LiveRuns,
    pub limits: Limits,
}

/// What one run is asked to do beyond syncing.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Reconcile deletes in this run (`?reconcile=true`), whether or not `reconcile_seconds` says so.
    pub reconcile: bool,
    pub tuning: Tuning,
}

/// Runs `cfg` once. `Err` only when the run could not start (busy: already running; not
/// found); every failure after that is a run record with status `error`.
pub async fn run<S, F>(ctx: &RunContext<'_>, cfg: &Config, open: F) -> Result<RunRecord>
where
    S: Source,
    F: Future<Output = Result<S>>,
{
    run_with(ctx, cfg, open, RunOptions::default()).await
}

/// `run`, with options.
pub async fn run_with<S, F>(ctx: &RunContext<'_>, cfg: &Config, open: F, opts: RunOptions) -> Result<RunRecord>
where
    S: Source,
    F: Future<Output = Result<S>>,
{
    let ledger = Ledger::new(ctx.store, ctx.live);
    let now = ctx.clock.now_ms();
    let run = ledger.begin(cfg, now, now + ctx.limits.budget_ms + LOCK_GRACE_MS)?;
    let mut tally = Tally { cursor: run.prior.cursor.clone(), ..Tally::default() };
    let outcome = async {
        let mut src = open.await?;
        let mut sync = Sync { ctx, ledger: &ledger, run: &run, cfg, src: &mut src, tally: &mut tally, opts };
        sync.sync().await
    }
    .await;
    match outcome {
        // Another run holds what this one needs (a cdc config's shared slot): like a second
        // run of the same config, it did not start. No record, no failure counted.
        Err(e) if e.is_busy() => {
            ledger.abandon(run)?;
            Err(e)
        }
        outcome => ledger.finish(run, cfg.interval_seconds, ctx.clock.now_ms(), &outcome, &tally),
    }
}

mod stream;

/// What a run resolved about the table: which columns, which key, in which order.
struct Plan {
    table: TableName,
    columns: Vec<Column>,
    primary_key: Vec<String>,
    /// Indices into `columns`: the keyset (cursor first for incremental, then the key).
    order: Vec<usize>,
    cursor_index: Option<usize>,
    fingerprint: String,
    batch_size: usize,
}

pub fn resolve_table(cfg: &Config, kind: SourceType) -> Result<TableName> {
    let q = ident::parse_qualified(&cfg.source_table, kind.quoting()).map_err(Error::bad_request)?;
    Ok(TableName { schema: q.schema.as_ref().map(|s| kind.resolve(s)), name: kind.resolve(&q.name) })
}

fn resolve_name(kind: SourceType, raw: &str) -> Result<String> {
    let id = ident::parse_ident(raw, kind.quoting()).map_err(Error::bad_request)?;
    Ok(kind.resolve(&id))
}

impl Plan {
    fn new(cfg: &Config, kind: SourceType, table: TableName, schema: TableSchema, origin: &str, limits: Limits) -> Result<Plan> {
        let missing = |c: &str| Error::at_origin(origin, format!("column {c:?} does not exist in table {table}"));
        let columns: Vec<Column> = match &cfg.columns {
            None => schema.columns.clone(),
            Some(names) => names
                .iter()
                .map(|n| {
                    let name = resolve_name(kind, n)?;
                    schema.columns.iter().find(|c| c.name == name).cloned().ok_or_else(|| missing(&name))
                })
                .collect::<Result<_>>()?,
        };
        let primary_key: Vec<String> = match &cfg.primary_key {
            Some(pk) => pk.iter().map(|n| resolve_name(kind, n)).collect::<Result<_>>()?,
            None => schema.primary_key.clone(),
        };
        if primary_key.is_empty() {
            return Err(Error::at_origin(
                origin,
                format!("table {table} has no primary key; set `primary_key` in the config to the columns that identify a row"),
            ));
        }
        let index_of = |name: &str| columns.iter().position(|c| c.name == name);
        let mut order = Vec::new();
        let cursor_index = match (cfg.mode, &cfg.cursor_column) {
            (Mode::Incremental, Some(c)) => {
                let name = resolve_name(kind, c)?;
                let i = index_of(&name).ok_or_else(|| missing(&name))?;
                order.push(i);
                Some(i)
            }
            _ => None,
        };
        for k in &primary_key {
            let i = index_of(k).ok_or_else(|| missing(k))?;
            if Some(i) != cursor_index {
                order.push(i);
            }
        }
        let fingerprint = serde_json::json!({
            "mode": cfg.mode,
            "order": order.iter().map(|&i| &columns[i].name).collect::<Vec<_>>(),
            "columns": columns.iter().map(|c| (&c.name, c.affinity)).collect::<Vec<_>>(),
            "primary_key": primary_key,
        })
        .to_string();
        let batch_size = cfg.batch_size.map_or(limits.default_batch_size, |b| b as usize).max(1);
        Ok(Plan { table, columns, primary_key, order, cursor_index, fingerprint, batch_size })
    }

    /// The page after `after` (or from `from`, inclusive, which takes precedence).
    fn page<'p>(&'p self, after: Option<&'p Checkpoint>, from: Option<&'p Value>) -> PageRequest<'p> {
        PageRequest {
            table: &self.table,
            columns: &self.columns,
            order: &self.order,
            after: if from.is_some() { None } else { after.map(Checkpoint::keyset) },
            from,
            limit: self.batch_size,
        }
    }

    fn position(&self, phase: Phase, checkpoint: Option<Checkpoint>, cursor: Option<String>) -> Position {
        Position { phase, checkpoint, cursor, fingerprint: self.fingerprint.clone() }
    }
}

/// For a run that reached the end of the source: the time at which the replica holds every
/// change the source had committed (status `data_as_of`, `lag_seconds`). The one definition;
///
/// - Incremental configs page in cursor order (their first copy too). A change committed
///   before this run began has a cursor value that the run reads (after its checkpoint) or that
///   an earlier run already read, as long as cursor values follow commit order (see README,
///   "What lag means"): the start of this run.
/// - A full copy pages in key order: a row copied by an earlier run of the same copy may have
///   changed before this run began, so the copy is only as new as the start of its first run
///   (`pass_started_ms`; unknown for a copy begun before this was recorded: no claim then).
/// - cdc: a run that caught up applied every change committed before the slot position it
///   read after it began: the start of the run (stored with the slot, shared by its configs).
pub fn data_as_of(mode: Mode, run_started_ms: i64, pass_started_ms: Option<i64>) -> Option<i64> {
    match mode {
        Mode::Incremental | Mode::Cdc => Some(run_started_ms),
        Mode::Full => pass_started_ms,
    }
}

/// Where this run starts, decided from the stored state and the plan.
enum Start {
    /// No usable copy or checkpoint: copy the table afresh into a new staging table.
    FreshCopy,
    /// A copy was under way: continue filling the staging table after the checkpoint.
    ResumeCopy(Checkpoint),
    /// The target is complete: page forward from the checkpoint.
    Incremental(Option<Checkpoint>),
}

/// One run in progress: its context, its ledger entry, its source, and what it did so far.
struct Sync<'r, S> {
    ctx: &'r RunContext<'r>,
    ledger: &'r Ledger<'r>,
    run: &'r Run,
    cfg: &'r Config,
    src: &'r mut S,
    tally: &'r mut Tally,
    opts: RunOptions,
}

impl<S: Source> Sync<'_, S> {
    /// Plan, then copy (and swap) or page forward. `Ok(true)` when the source is exhausted.
    async fn sync(&mut self) -> Result<bool> {
        let kind = self.src.source_type();
        let table = resolve_table(self.cfg, kind)?;
        let schema = self.src.table_schema(&table).await?;
        let plan = Plan::new(self.cfg, kind, table, schema, &self.src.describe_origin(), self.ctx.limits)?;
        let state = self.ledger.current(self.run)?;
        if self.cfg.mode == Mode::Cdc {
            return self.cdc(&plan, &state).await;
        }
        let from = self.start(&state, &plan)?;
        let pass_started_ms = match from {
            Start::FreshCopy => Some(self.run.started_ms),
            _ => state.pass_started_ms,
        };
        let complete = match from {
            Start::FreshCopy => {
                self.fresh_staging(&plan)?;
                self.copy(&plan, None).await?
            }
            Start::ResumeCopy(checkpoint) => self.copy(&plan, Some(checkpoint)).await?,
            Start::Incremental(checkpoint) => self.incremental(&plan, checkpoint).await?,
        };
        if complete {
            self.tally.data_as_of_ms = data_as_of(self.cfg.mode, self.run.started_ms, pass_started_ms);
            if let Some(ci) = plan.cursor_index.filter(|&i| plan.columns[i].nullable) {
                self.tally.null_cursor_rows = Some(self.src.count_nulls(&plan.table, &plan.columns[ci]).await? as i64);
            }
            if self.reconcile_due(&plan)? {
                return self.reconcile(&plan).await;
            }
        }
        Ok(complete)
    }

    /// An empty staging table for a copy that starts over, committed with its position.
    fn fresh_staging(&mut self, plan: &Plan) -> Result<()> {
        let staging = rsql::staging_table(self.cfg.id);
        let fresh = vec![
            Stmt::new(rsql::drop_table(&staging), vec![]),
            Stmt::new(rsql::create_table(&staging, &plan.columns, &plan.primary_key), vec![]),
            crate::catalog::mark_pass_start(self.run),
        ];
        self.ledger.commit_batch(self.run, fresh, &plan.position(Phase::Copy, None, None))
    }

    /// Whether a run that has caught up also reconciles deletes: asked to, or a pass is under
    /// way, or `reconcile_seconds` have passed since the last one finished (or none ever did).
    fn reconcile_due(&self, plan: &Plan) -> Result<bool> {
        if self.cfg.mode != Mode::Incremental {
            return Ok(false);
        }
        let state = self.ledger.current(self.run)?;
        if self.opts.reconcile || state.reconcile.is_some_and(|r| r.fingerprint == plan.fingerprint) {
            return Ok(true);
        }
        let Some(every) = self.cfg.reconcile_seconds else { return Ok(false) };
        let last = state.last_reconcile_at.as_deref().and_then(parse_timestamp_micros).map(|us| us / 1000);
        Ok(last.is_none_or(|ms| self.ctx.clock.now_ms() - ms >= every * 1000))
    }

    /// Deletes the replica rows whose keys the origin no longer has (`crate::reconcile`), from
    /// where a stopped pass left off, until the pass is done (`Ok(true)`) or the time budget is
    /// spent (`Ok(false)`, with the progress stored). Deletes commit in batches with the
    /// progress they reach, through the same ledger call as rows. Like a copy, which writes at
    /// least one page per run, a run moves the pass on by at least one checked range even when
    /// the sync has spent the budget: otherwise a sync slower than the budget would keep the
    /// pass from ever starting.
    async fn reconcile(&mut self, plan: &Plan) -> Result<bool> {
        let clock = self.ctx.clock;
        let deadline = self.run.started_ms + self.ctx.limits.budget_ms;
        let state = self.ledger.current(self.run)?;
        let under_way = state.reconcile.clone().filter(|r| r.fingerprint == plan.fingerprint);
        let key: Vec<Column> = plan
            .primary_key
            .iter()
            .map(|k| {
                plan.columns
                    .iter()
                    .find(|c| &c.name == k)
                    .cloned()
                    .ok_or_else(|| Error::internal(format!("key column {k:?} is not planned")))
            })
            .collect::<Result<_>>()?;
        let replica = rsql::ReplicaKeys::new(&self.cfg.target_table, &plan.primary_key, &plan.columns).ok_or_else(|| {
            Error::at_origin(&self.src.describe_origin(), "cannot reconcile deletes: the table has columns named rowid, _rowid_ and oid")
        })?;
        let mut pass = match under_way {
            Some(r) => Pass::resume(self.opts.tuning, r.progress),
            None => Pass::new(self.opts.tuning),
        };
        // Reconciling moves no cursor: every commit keeps the position the sync reached.
        let position = plan.position(Phase::Incremental, state.checkpoint.clone(), state.cursor.clone());
        let save = |p: Progress| ReconcileState { fingerprint: plan.fingerprint.clone(), progress: p };
        let config_id = self.cfg.id;
        self.tally.reconciled = true;
        loop {
            let need = pass.need();
            if matches!(need, Need::Count { .. } | Need::Absent(_)) && clock.now_ms() >= deadline && pass.progressed() {
                let stmt = catalog::reconcile_stmt(config_id, Some(&save(pass.progress())));
                self.ledger.commit_batch(self.run, vec![stmt], &position)?;
                return Ok(false);
            }
            let t0 = clock.now_ms();
            match need {
                Need::Window { after, step, max } => {
                    let hops = self.replica_keys(&replica, replica.hops(after.as_deref(), step, max))?;
                    let tail = if hops.len() < max {
                        let (sql, params) = replica.count_after(hops.last().or(after.as_ref()).map(Vec::as_slice));
                        let rows = self.ctx.store.query(&sql, &params)?.first().and_then(|r| r[0].as_i64()).unwrap_or(0);
                        let last = self.replica_keys(&replica, (replica.last_key(), Vec::new()))?.pop();
                        last.filter(|_| rows > 0).map(|k| (k, rows as u64))
                    } else {
                        None
                    };
                    pass.on_window(hops, tail);
                    self.tally.write_ms += clock.now_ms() - t0;
                }
                Need::Split(splits) => {
                    let mut bounds: Vec<Vec<Vec<Value>>> = vec![Vec::new(); splits.len()];
                    // A range open below (the pass's first) walks on its own; the others in one
                    // statement per step size (ranges of a window's size share one).
                    let mut steps: Vec<u64> = splits.iter().filter(|s| s.range.lo.is_some()).map(|s| s.step).collect();
                    steps.sort_unstable();
                    steps.dedup();
                    for (i, s) in splits.iter().enumerate().filter(|(_, s)| s.range.lo.is_none()) {
                        bounds[i] = self.replica_keys(&replica, replica.hops(None, s.step, s.max))?;
                    }
                    for step in steps {
                        let which: Vec<usize> =
                            (0..splits.len()).filter(|&i| splits[i].step == step && splits[i].range.lo.is_some()).collect();
                        let asked: Vec<(&[Value], usize)> =
                            which.iter().map(|&i| (splits[i].range.lo.as_deref().unwrap_or_default(), splits[i].max)).collect();
                        for (k, key) in self.replica_keys_each(&replica, replica.hops_after_each(&asked, step))? {
                            bounds[which[k]].push(key);
                        }
                    }
                    pass.on_splits(bounds);
                    self.tally.write_ms += clock.now_ms() - t0;
                }
                Need::Keys(ranges) => {
                    let mut keys: Vec<Vec<Vec<Value>>> = vec![Vec::new(); ranges.len()];
                    for (i, r) in ranges.iter().enumerate().filter(|(_, r)| r.lo.is_none()) {
                        keys[i] = self.replica_keys(&replica, replica.keys_in(r))?;
                    }
                    let which: Vec<usize> = (0..ranges.len()).filter(|&i| ranges[i].lo.is_some()).collect();
                    let asked: Vec<&KeyRange> = which.iter().map(|&i| &ranges[i]).collect();
                    for (k, key) in self.replica_keys_each(&replica, replica.keys_in_each(&asked))? {
                        keys[which[k]].push(key);
                    }
                    pass.on_keys(keys);
                    self.tally.write_ms += clock.now_ms() - t0;
                }
                Need::Count { ranges, rows } => {
                    let differing = self.src.count_key_ranges(&plan.table, &key, &ranges, &rows).await?;
                    pass.on_counts(&differing);
                    self.tally.source_ms += clock.now_ms() - t0;
                }
                Need::Absent(keys) => {
                    let absent = self.src.absent_keys(&plan.table, &key, &keys).await?;
                    pass.on_absent(&absent);
                    self.tally.source_ms += clock.now_ms() - t0;
                }
                Need::Commit { delete, progress } => {
                    let n = delete.len() as i64;
                    let mut stmts: Vec<Stmt> = replica.delete_each(&delete);
                    stmts.push(catalog::reconcile_stmt(config_id, Some(&save(progress))));
                    self.ledger.commit_batch(self.run, stmts, &position)?;
                    self.tally.deleted += n;
                    if n > 0 {
                        self.tally.batches += 1;
                    }
                    self.tally.write_ms += clock.now_ms() - t0;
                }
                Need::Done => {
                    let at = crate::time::format_epoch_ms(clock.now_ms());
                    self.ledger.commit_batch(self.run, vec![catalog::reconcile_done_stmt(config_id, &at)], &position)?;
                    return Ok(true);
                }
            }
        }
    }

    /// `(index, key)` rows read by one of `ReplicaKeys`' statements for many ranges.
    fn replica_keys_each(&self, replica: &rsql::ReplicaKeys, stmts: Vec<rsql::EachStmt>) -> Result<rsql::RangeKeys> {
        let bad = |e: String| Error::internal(format!("replica table {:?}: {e}", self.cfg.target_table));
        let mut out = Vec::new();
        for st in stmts {
            let json = self.ctx.store.query(&st.json, &st.params)?;
            let text = json.first().and_then(|r| r.first()).and_then(Value::as_str).ok_or_else(|| bad("no JSON list of keys".into()))?;
            if let Some(keys) = rsql::decode_each_json(text).map_err(bad)? {
                out.extend(keys);
                continue;
            }
            for mut row in self.ctx.store.query(&st.rows, &st.params)? {
                if row.is_empty() {
                    return Err(bad("an empty row".into()));
                }
                let i =
                    row.remove(0).as_i64().and_then(|i| usize::try_from(i).ok()).ok_or_else(|| bad("a row without its range".into()))?;
                out.push((i, replica.decode(row).map_err(bad)?));
            }
        }
        Ok(out)
    }

    /// Replica keys read by one of `ReplicaKeys`' statements.
    fn replica_keys(&self, replica: &rsql::ReplicaKeys, (sql, params): (String, Vec<Value>)) -> Result<Vec<Vec<Value>>> {
        self.ctx
            .store
            .query(&sql, &params)?
            .into_iter()
            .map(|r| replica.decode(r).map_err(|e| Error::internal(format!("replica table {:?}: {e}", self.cfg.target_table))))
            .collect()
    }

    fn start(&self, state: &SyncState, plan: &Plan) -> Result<Start> {
        let same_plan = state.schema.as_deref() == Some(plan.fingerprint.as_str());
        Ok(match (state.phase, &state.checkpoint) {
            _ if !same_plan => Start::FreshCopy,
            (Phase::Done | Phase::CatchUp | Phase::Streaming, _) => Start::FreshCopy,
            (Phase::Copy, None) => Start::FreshCopy,
            (Phase::Copy, Some(cp)) => Start::ResumeCopy(cp.clone()),
            (Phase::Incremental, cp) => {
                if self.cfg.mode == Mode::Full || !catalog::table_exists(self.ctx.store, &self.cfg.target_table)? {
                    Start::FreshCopy
                } else {
                    Start::Incremental(cp.clone())
                }
            }
        })
    }

    /// Fills the staging table from `after` to the end of the source, then swaps it in.
    async fn copy(&mut self, plan: &Plan, after: Option<Checkpoint>) -> Result<bool> {
        let staging = rsql::staging_table(self.cfg.id);
        let Some(checkpoint) = self.page_through(plan, &staging, Phase::Copy, after, None).await? else {
            return Ok(false);
        };
        self.tally.deleted = self.swap_in(plan, &staging, checkpoint)?;
        Ok(true)
    }

    /// Upserts what the source changed since `checkpoint`, `lookback_seconds` behind it.
    async fn incremental(&mut self, plan: &Plan, checkpoint: Option<Checkpoint>) -> Result<bool> {
        let from = match (&checkpoint, self.cfg.lookback_seconds) {
            (Some(cp), lb) if lb > 0 => cp.keyset().first().and_then(|c| lookback_from(c, lb)),
            _ => None,
        };
        let target = self.cfg.target_table.clone();
        Ok(self.page_through(plan, &target, Phase::Incremental, checkpoint, from).await?.is_some())
    }

    /// Pages through the source in keyset order from `after` (or from `from`, inclusive),
    /// upserting each page into `table` with its checkpoint. Returns the last checkpoint once
    /// the source is exhausted, `None` when the budget ran out first.
    async fn page_through(
        &mut self,
        plan: &Plan,
        table: &str,
        phase: Phase,
        mut checkpoint: Option<Checkpoint>,
        from: Option<Value>,
    ) -> Result<Option<Option<Checkpoint>>> {
        let clock = self.ctx.clock;
        let deadline = self.run.started_ms + self.ctx.limits.budget_ms;
        let upsert = rsql::upsert_batch(table, &plan.columns, &plan.primary_key);
        let origin = self.src.describe_origin();
        let t0 = clock.now_ms();
        let max = rsql::MAX_BATCH_JSON_BYTES;
        let mut page = self.src.fetch_batch(&plan.page(checkpoint.as_ref(), from.as_ref()), max).await?;
        self.tally.source_ms += clock.now_ms() - t0;
        loop {
            let exhausted = page.rows < plan.batch_size;
            if let Some(last) = &page.last {
                checkpoint = Some(Checkpoint::Keyset(plan.order.iter().map(|&i| last[i].clone()).collect()));
                if let Some(ci) = plan.cursor_index {
                    self.tally.cursor = last[ci].display_text();
                }
            }

            // Ask for the next page before writing this one: the source executes and streams it
            // into the socket's buffers while SQLite writes, instead of both waiting in turn.
            let more = !exhausted && clock.now_ms() < deadline;
            let next_after = checkpoint.clone();
            let next_page = plan.page(next_after.as_ref(), None);
            let mut pending = if more { Some(Box::pin(maybe_done(self.src.fetch_batch(&next_page, max)))) } else { None };
            if let Some(p) = pending.as_mut() {
                start(p).await;
            }

            let t1 = clock.now_ms();
            if let Some(c) = page.misplaced.and_then(|i| plan.columns.get(i)) {
                return Err(Error::at_origin(
                    &origin,
                    format!("column {:?} returned binary data, but its type {:?} is not binary", c.name, c.source_type),
                ));
            }
            if page.rows > 0 {
                let stmts: Vec<Stmt> =
                    std::mem::take(&mut page.batches).into_iter().map(|b| Stmt::new(upsert.as_str(), vec![Value::Blob(b)])).collect();
                let position = plan.position(phase, checkpoint.clone(), self.tally.cursor.clone());
                self.ledger.commit_batch(self.run, stmts, &position)?;
                self.tally.rows += page.rows as i64;
                self.tally.batches += 1;
            } else {
                // Nothing to write, but the run must still stop if its config changed.
                self.ledger.current(self.run)?;
            }
            drop(page);
            self.tally.write_ms += clock.now_ms() - t1;

            let Some(mut pending) = pending else {
                return Ok(exhausted.then_some(checkpoint));
            };
            let t2 = clock.now_ms();
            pending.as_mut().await;
            page = pending.as_mut().take_output().expect("a finished future has its output")?;
            self.tally.source_ms += clock.now_ms() - t2;
        }
    }

    /// Replaces the target with the finished staging table in one transaction; returns how
    /// many rows of the old target are gone from the new one.
    fn swap_in(&mut self, plan: &Plan, staging: &str, checkpoint: Option<Checkpoint>) -> Result<i64> {
        let store = self.ctx.store;
        let target = &self.cfg.target_table;
        let deleted = if catalog::table_exists(store, target)? {
            // The old table may have another shape (schema drift): then it has no comparable key.
            store
                .query(&rsql::count_missing(target, staging, &plan.primary_key), &[])
                .ok()
                .and_then(|r| r.first().and_then(|r| r[0].as_i64()))
                .unwrap_or(0)
        } else {
            0
        };
        let position = match self.cfg.mode {
            Mode::Incremental => plan.position(Phase::Incremental, checkpoint, self.tally.cursor.clone()),
            Mode::Full => plan.position(Phase::Done, None, self.tally.cursor.clone()),
            Mode::Cdc => plan.position(Phase::Streaming, checkpoint, self.tally.cursor.clone()),
        };
        // A reconciliation pass under way belonged to the table being replaced.
        let swap = vec![
            Stmt::new(rsql::drop_table(target), vec![]),
            Stmt::new(rsql::rename_table(staging, target), vec![]),
            catalog::reconcile_stmt(self.cfg.id, None),
        ];
        self.ledger.commit_batch(self.run, swap, &position)?;
        Ok(deleted)
    }
}

/// Polls `f` once, so that it sends its request, then yields once so that the connection's
/// IO task (a separate task on the same thread) can put the request on the wire.
async fn start<F: Future>(f: &mut Pin<Box<MaybeDone<F>>>) {
    poll_fn(|cx| {
        let _ = f.as_mut().poll(cx);
        Poll::Ready(())
    })
    .await;
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
}

/// The inclusive lower bound `lookback_seconds` behind a timestamp (or date) cursor value,
/// written in the cursor's own shape: same separator, same fraction and zone suffix. Text
/// cursors (SQLite-family sources) compare as text, so `2026-01-02T…` would sort after every
/// `2026-01-02 …` of that day; and since whole seconds are subtracted, the wall-clock part is
/// shifted and the suffix (fraction, `Z`, `+02:00`) kept verbatim.
fn lookback_from(cursor: &Value, lookback_seconds: i64) -> Option<Value> {
    let s = cursor.as_str()?;
    if s.len() == 10 {
        // A date: step back whole days, enough to cover the window.
        let us = parse_timestamp_micros(s)? - (lookback_seconds + 86_399) / 86_400 * 86_400_000_000;
        return Some(Value::text(&format_timestamp_micros(us, false)[..10]));
    }
    let (wall, suffix) = (s.get(..19)?, &s[19..]);
    let sep = *wall.as_bytes().get(10)?;
    let us = parse_timestamp_micros(wall)? - lookback_seconds * 1_000_000;
    let mut shifted = format_timestamp_micros(us, false)[..19].to_string();
    shifted.replace_range(10..11, if sep == b' ' { " " } else { "T" });
    // The suffix must be a fraction and/or zone; anything else is not a timestamp we know.
    parse_timestamp_micros(&format!("{}{}", &shifted, suffix))?;
    Some(Value::text(shifted + suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookback_keeps_the_cursor_style() {
        assert_eq!(lookback_from(&Value::text("2026-01-02T03:04:05.000000Z"), 10), Some(Value::text("2026-01-02T03:03:55.000000Z")));
        assert_eq!(lookback_from(&Value::text("2026-01-02T00:00:05.5"), 10), Some(Value::text("2026-01-01T23:59:55.5")));
        assert_eq!(lookback_from(&Value::text("2026-01-02"), 86_400), Some(Value::text("2026-01-01")));
        assert_eq!(lookback_from(&Value::text("2026-01-02"), 60), Some(Value::text("2026-01-01")));
        // SQLite-style text keeps its space and its (absent) fraction, so it sorts with its peers.
        assert_eq!(lookback_from(&Value::text("2026-01-02 00:00:05"), 10), Some(Value::text("2026-01-01 23:59:55")));
        assert_eq!(lookback_from(&Value::text("2026-01-02 10:00:00.5+02:00"), 3600), Some(Value::text("2026-01-02 09:00:00.5+02:00")));
        assert_eq!(lookback_from(&Value::text("2026-01-02 10:00:00 junk"), 10), None);
        assert_eq!(lookback_from(&Value::Integer(5), 10), None);
    }
}
