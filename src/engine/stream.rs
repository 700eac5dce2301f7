//! The cdc phase: a replication slot read over plain SQL, its changes applied to every table
//! of the configs that share it, one origin transaction (or a batch of whole ones) per replica
//! transaction, with the slot's position committed alongside.
//!
//! A config's life: `Copy` fills a staging table as a full copy does (the slot already exists,
//! so nothing committed meanwhile is lost); `CatchUp` applies the slot's changes to the
//! staging table up to a position read when the copy ended; the staging table is then
//! swapped in (`Streaming`), so readers never see a row older than they saw before. Changes
//! replayed over rows the copy already saw converge: upserts and deletes are idempotent.
//!
//! One slot serves every cdc config of an origin, so the origin decodes its WAL once. A run
//! of any of them takes the slot's lock, reads the slot and applies what it carries for all of
//! them: to a config's target while it streams, to its staging table while it copies or
//! catches up; a config whose copy has not started yet needs none of it (its copy reads
//! later data). Each config keeps its own schedule, lock and run records; the slot's position
//! and lag are shared.

use super::{Plan, Sync};
use crate::catalog::{self, Checkpoint, Phase, SlotState, SyncState};
use crate::cdc::{Sink, TxnWriter};
use crate::config::{Config, Mode};
use crate::error::{Error, Result};
use crate::replica_sql as rsql;
use crate::source::{Change, Datum, FeedAnswer, FeedOp, Source, TextDecoder};
use crate::value::Value;
use std::collections::HashMap;

/// JSON a transaction may hold in memory before its statements move to the spill table.
const SPILL_BYTES: usize = 2 * rsql::MAX_BATCH_JSON_BYTES;

/// How one relation of the feed maps onto a sink: for each relation column, the sink column
/// it fills (or none, for a column the config does not replicate).
struct RelMap {
    sink: usize,
    columns: Vec<Option<usize>>,
}

impl<S: Source> Sync<'_, S> {
    pub(super) async fn cdc(&mut self, plan: &Plan, state: &SyncState) -> Result<bool> {
        let cfg = self.cfg;
        let Some((slot_name, publication)) = crate::cdc::reader_names(cfg) else {
            return Err(Error::internal("a cdc config without its slot and publication names (or server id)"));
        };
        let key = crate::cdc::slot_key(cfg);
        let store = self.ctx.store;
        catalog::add_slot(store, &key, &slot_name, &publication, false)?;
        let now = self.ctx.clock.now_ms();
        self.ledger.lock_slot(self.run, &key, now, now + self.ctx.limits.budget_ms + super::LOCK_GRACE_MS)?;
        let outcome = self.cdc_locked(plan, state, &key).await;
        let released = self.ledger.release_slot(self.run, &key);
        let complete = outcome?;
        released?;
        Ok(complete)
    }

    async fn cdc_locked(&mut self, plan: &Plan, state: &SyncState, key: &str) -> Result<bool> {
        let store = self.ctx.store;
        if let Some((c, why)) = plan.columns.iter().find_map(|c| self.src.feed_column_check(c).err().map(|e| (c, e))) {
            return Err(Error::at_origin(
                &self.src.describe_origin(),
                format!("column {:?} cannot be replicated exactly by cdc ({why}); leave it out with `columns`, or use mode \"full\" or \"incremental\"", c.name),
            ));
        }
        let mut slot = catalog::load_slot(store, key)?.ok_or_else(|| Error::internal("the slot row vanished"))?;
        self.prepare_slot(plan, &mut slot).await?;

        // This config's own phase first: its copy, while the slot keeps its changes.
        let same_plan = state.schema.as_deref() == Some(plan.fingerprint.as_str()) || self.widen(self.cfg, state, plan).await?;
        let mut phase = if same_plan { state.phase } else { Phase::Copy };
        if phase == Phase::Copy {
            let resume = if same_plan { state.checkpoint.clone().filter(|c| !c.keyset().is_empty()) } else { None };
            if resume.is_none() {
                self.fresh_staging(plan)?;
            }
            let staging = rsql::staging_table(self.cfg.id);
            if self.page_through(plan, &staging, Phase::Copy, resume, None).await?.is_none() {
                return Ok(false);
            }
            let FeedAnswer::Position(upto) = self.src.feed(FeedOp::CurrentPosition).await? else {
                return Err(Error::internal("the feed answered no position"));
            };
            let position = plan.position(Phase::CatchUp, Some(Checkpoint::Lsn(upto)), None);
            self.ledger.commit_batch(self.run, vec![], &position)?;
            phase = Phase::CatchUp;
        }

        let caught_up = self.stream(&slot).await?;
        if !caught_up {
            return Ok(false);
        }
        let slot = catalog::load_slot(store, key)?.ok_or_else(|| Error::internal("the slot row vanished"))?;
        self.tally.cursor = slot.confirmed_lsn.clone();
        if phase == Phase::CatchUp {
            let state = self.ledger.current(self.run)?;
            let target = match &state.checkpoint {
                Some(Checkpoint::Lsn(l)) => l.clone(),
                _ => return Err(Error::internal("a catch-up without its target position")),
            };
            let at_or_after = self.src.position_order();
            if !slot.confirmed_lsn.as_deref().is_some_and(|c| at_or_after(c, &target)) {
                return Ok(false);
            }
            let staging = rsql::staging_table(self.cfg.id);
            self.tally.deleted += self.swap_in(plan, &staging, None)?;
        }
        Ok(true)
    }

    /// The publication holds this config's table and the slot exists; a slot that existed
    /// and is gone (or lost its WAL) fails the run, naming the slot and the way back.
    async fn prepare_slot(&mut self, plan: &Plan, slot: &mut SlotState) -> Result<()> {
        let origin = self.src.describe_origin();
        let tables = std::slice::from_ref(&plan.table);
        self.src.feed(FeedOp::Check { tables }).await?;
        let info = match self.src.feed(FeedOp::Slot { slot: &slot.slot_name, position: slot.confirmed_lsn.as_deref() }).await? {
            FeedAnswer::Slot(info) => info,
            _ => return Err(Error::internal("the feed answered no slot")),
        };
        let lost = |why: &str| {
            Error::at_origin(
                &origin,
                format!(
                    "replication slot {} {why}: the changes it held since {} are lost. Reset the config (PUT with a new \
                     slot_name, or any resetting change) to copy the table afresh with a new slot",
                    slot.slot_name,
                    slot.confirmed_lsn.as_deref().unwrap_or("its creation")
                ),
            )
        };
        match &info {
            None if slot.created == 1 => return Err(lost("no longer exists at the origin (dropped?)")),
            Some(i) if i.wal_status.as_deref() == Some("lost") => return Err(lost("has lost the WAL it needed (wal_status = lost)")),
            _ => {}
        }
        let may_alter = slot.own_publication == 1 || slot.created == 0;
        let created = match self.src.feed(FeedOp::Publish { publication: &slot.publication, tables, may_alter }).await? {
            FeedAnswer::Created(c) => c,
            _ => false,
        };
        if created {
            self.ctx
                .store
                .execute("UPDATE tmp_replication_slots SET own_publication = 1 WHERE slot_key = ?", &[Value::text(&slot.slot_key)])?;
            slot.own_publication = 1;
        }
        if info.is_none() {
            let made = self.src.feed(FeedOp::CreateSlot { slot: &slot.slot_name }).await;
            let lsn = match made {
                Ok(FeedAnswer::Position(lsn)) => lsn,
                Ok(_) => return Err(Error::internal("the feed answered no slot position")),
                Err(e) => {
                    // Nothing half-made: a publication created for this slot goes with it.
                    if created {
                        let _ = self.src.feed(FeedOp::DropPublication { publication: &slot.publication }).await;
                    }
                    return Err(e);
                }
            };
            self.ctx.store.transaction(&[catalog::slot_position_stmt(&slot.slot_key, &lsn, None)])?;
            slot.created = 1;
            slot.confirmed_lsn = Some(lsn);
        }
        Ok(())
    }

    /// Takes the columns the origin added at the end of a streaming config's table into its
    /// replica table in place (`ALTER TABLE ... ADD COLUMN ... DEFAULT`), when the origin says
    /// which constant its existing rows hold (`Source::added_column_value`): the copy is then
    /// still exact, and changes logged before the column existed (which carry no value for it)
    /// leave the default, as the origin did. Anything else that changes a plan (a column
    /// dropped, retyped or added in the middle, an expression default, a `columns` list)
    /// answers `false`: the config copies afresh. Done for every config of the slot whichever
    /// run finds it, since a config left out of the sinks would miss the changes read meanwhile.
    async fn widen(&mut self, c: &Config, state: &SyncState, plan: &Plan) -> Result<bool> {
        if c.columns.is_some() || state.phase != Phase::Streaming {
            return Ok(false);
        }
        let Some(old) = state.schema.as_deref() else { return Ok(false) };
        let (Ok(was), Ok(now)) =
            (serde_json::from_str::<serde_json::Value>(old), serde_json::from_str::<serde_json::Value>(&plan.fingerprint))
        else {
            return Ok(false);
        };
        if ["mode", "order", "primary_key"].iter().any(|k| was[k] != now[k]) {
            return Ok(false);
        }
        let (Some(before), Some(after)) = (was["columns"].as_array(), now["columns"].as_array()) else { return Ok(false) };
        if after.len() <= before.len() || after[..before.len()] != before[..] || plan.columns.len() != after.len() {
            return Ok(false);
        }
        let mut stmts = Vec::new();
        for column in &plan.columns[before.len()..] {
            let Some(value) = self.src.added_column_value(&plan.table, column).await? else { return Ok(false) };
            let Some(sql) = rsql::add_column(&c.target_table, column, &value) else { return Ok(false) };
            stmts.push(crate::store::Stmt::new(sql, vec![]));
        }
        catalog::widen_table(self.ctx.store, c.id, stmts, old, &plan.fingerprint)?;
        Ok(true)
    }

    /// The sinks of every config on the slot, by relation id; configs whose copy has not
    /// started, or whose plan changed (their next run copies afresh), get none.
    async fn sinks(&mut self, slot: &SlotState) -> Result<(Vec<Sink>, HashMap<u32, usize>)> {
        let store = self.ctx.store;
        let configs: Vec<Config> =
            catalog::load_configs(store)?.into_iter().filter(|c| c.mode == Mode::Cdc && crate::cdc::slot_key(c) == slot.slot_key).collect();
        let kind = self.src.source_type();
        let origin = self.src.describe_origin();
        let mut sinks = Vec::new();
        let mut tables = Vec::new();
        for c in configs {
            let Some(state) = catalog::load_state(store, c.id)? else { continue };
            let table = super::resolve_table(&c, kind)?;
            let schema = self.src.table_schema(&table).await?;
            let plan = Plan::new(&c, kind, table.clone(), schema, &origin, self.ctx.limits)?;
            if state.schema.as_deref() != Some(plan.fingerprint.as_str()) && !self.widen(&c, &state, &plan).await? {
                continue;
            }
            let staging = rsql::staging_table(c.id);
            let write_to = match state.phase {
                Phase::Streaming => c.target_table.clone(),
                Phase::CatchUp => staging,
                Phase::Copy if catalog::table_exists(store, &staging)? => staging,
                _ => continue,
            };
            sinks.push(Sink { config_id: c.id, table: write_to, columns: plan.columns, primary_key: plan.primary_key });
            tables.push(table);
        }
        let ids = match self.src.feed(FeedOp::Check { tables: &tables }).await? {
            FeedAnswer::Ids(ids) => ids,
            _ => return Err(Error::internal("the feed answered no relation ids")),
        };
        Ok((sinks, ids.into_iter().enumerate().map(|(i, id)| (id, i)).collect()))
    }

    /// Applies the slot's changes up to the position the origin has now. `Ok(true)` when it
    /// got there within the run's budget.
    async fn stream(&mut self, slot: &SlotState) -> Result<bool> {
        let (sinks, by_id) = self.sinks(slot).await?;
        let decode: Option<TextDecoder> = self.src.text_decoder();
        let at_or_after = self.src.position_order();
        let FeedAnswer::Position(upto) = self.src.feed(FeedOp::CurrentPosition).await? else {
            return Err(Error::internal("the feed answered no position"));
        };
        let origin = self.src.describe_origin();
        let deadline = self.run.started_ms + self.ctx.limits.budget_ms;
        let batch_rows = self.ctx.limits.default_batch_size.max(1) as i64;
        let clock = self.ctx.clock;
        let state = self.ledger.current(self.run)?;
        let position = catalog::Position {
            phase: state.phase,
            checkpoint: state.checkpoint.clone(),
            cursor: state.cursor.clone(),
            fingerprint: state.schema.clone().unwrap_or_default(),
        };
        let mut confirmed = slot.confirmed_lsn.clone().unwrap_or_else(|| "0/0".into());
        // What a run that died left in the spill table belongs to no transaction now.
        self.ctx.store.execute("DELETE FROM tmp_cdc_spill", &[])?;
        let mut spill_seq = 0i64;
        loop {
            if clock.now_ms() >= deadline {
                return Ok(false);
            }
            let mut rels: HashMap<u32, RelMap> = HashMap::new();
            let confirmed_at_read = confirmed.clone();
            // One writer for a batch of whole transactions: they commit to the replica together,
            // so consecutive single-row changes of many small transactions share statements.
            let mut txn = TxnWriter::default();
            // The transaction being read was committed to the replica by an earlier run that
            // died before it confirmed the slot: its changes are skipped.
            let mut skipping = false;
            let mut changes = 0u64;
            let mut last_commit: Option<String> = None;
            let (ledger, run, store, tally) = (self.ledger, self.run, self.ctx.store, &mut *self.tally);
            let started_at = crate::time::format_epoch_ms(self.run.started_ms);
            let commit = |writer: TxnWriter, lsn: &str, tally: &mut catalog::Tally| -> Result<()> {
                let (mut stmts, up, del) = writer.finish(&sinks);
                tally.rows += up;
                tally.deleted += del;
                stmts.push(catalog::slot_position_stmt(&slot.slot_key, lsn, None));
                ledger.commit_batch(run, stmts, &position)?;
                tally.batches += 1;
                Ok(())
            };
            let mut sink = |change: Change<'_>| -> Result<()> {
                changes += 1;
                let row_of = |m: &RelMap, datums: &[Datum<'_>]| -> Result<Vec<Option<Value>>> {
                    let s = &sinks[m.sink];
                    // A column the relation does not carry (a change from before the column was
                    // added, replayed over a copy that has it) keeps the replica's value.
                    let mut row: Vec<Option<Value>> = vec![None; s.columns.len()];
                    for (d, target) in datums.iter().zip(&m.columns) {
                        let Some(i) = *target else { continue };
                        row[i] = match d {
                            Datum::Null => Some(Value::Null),
                            Datum::Unchanged => None,
                            Datum::Value(v) => Some(v.clone()),
                            Datum::Text(t) => Some(
                                decode.ok_or_else(|| Error::internal("a change feed sent text and has no text decoder"))?(&s.columns[i], t)
                                    .map_err(|e| Error::at_origin(&origin, format!("column {:?} of a change: {e}", s.columns[i].name)))?,
                            ),
                        };
                    }
                    Ok(row)
                };
                let key_of = |m: &RelMap, row: &[Option<Value>]| -> Vec<Value> {
                    let s = &sinks[m.sink];
                    s.primary_key
                        .iter()
                        .filter_map(|k| s.columns.iter().position(|c| &c.name == k))
                        .map(|i| row[i].clone().unwrap_or(Value::Null))
                        .collect()
                };
                match change {
                    Change::Relation { id, columns } => {
                        if let Some(&si) = by_id.get(&id) {
                            let s = &sinks[si];
                            let map = columns.iter().map(|n| s.columns.iter().position(|c| &c.name == n)).collect();
                            rels.insert(id, RelMap { sink: si, columns: map });
                        }
                    }
                    Change::Begin { lsn } => skipping = !at_or_after(&lsn, &confirmed),
                    _ if skipping && !matches!(change, Change::Commit { .. }) => {}
                    Change::Insert { rel, new } => {
                        if let Some(m) = rels.get(&rel) {
                            txn.upsert(&sinks, m.sink, row_of(m, &new)?, None);
                        }
                    }
                    Change::Update { rel, key, new } => {
                        if let Some(m) = rels.get(&rel) {
                            let old = match key {
                                Some(k) => Some(key_of(m, &row_of(m, &k)?)),
                                None => None,
                            };
                            txn.upsert(&sinks, m.sink, row_of(m, &new)?, old);
                        }
                    }
                    Change::Delete { rel, key } => {
                        if let Some(m) = rels.get(&rel) {
                            let k = key_of(m, &row_of(m, &key)?);
                            txn.delete(&sinks, m.sink, k);
                        }
                    }
                    Change::Truncate { rels: ids } => {
                        for id in ids {
                            if let Some(&si) = by_id.get(&id) {
                                let n = store.query(&rsql::count_rows(&sinks[si].table), &[])?;
                                let n = n.first().and_then(|r| r[0].as_i64()).unwrap_or(0);
                                txn.truncate(&sinks, si, n);
                            }
                        }
                    }
                    Change::Commit { lsn } => {
                        if std::mem::take(&mut skipping) || at_or_after(&confirmed, &lsn) {
                            return Ok(());
                        }
                        last_commit = Some(lsn.clone());
                        // A full batch (or a big transaction) commits at a transaction's end.
                        let held = txn.upserted + txn.deleted;
                        if held >= batch_rows || txn.held_bytes() >= 4 * rsql::MAX_BATCH_JSON_BYTES {
                            commit(std::mem::take(&mut txn), &lsn, tally)?;
                            confirmed = lsn;
                        }
                        return Ok(());
                    }
                }
                // A transaction bigger than a batch moves its statements out of memory as it goes.
                if txn.held_bytes() >= SPILL_BYTES {
                    txn.spill(store, &mut spill_seq)?;
                }
                Ok(())
            };
            let t0 = clock.now_ms();
            // Each peek decodes from the slot's restart point again: fewer, larger peeks cost the
            // origin less. Changes stream through, committed a batch at a time.
            let max = i32::try_from(batch_rows * 10).unwrap_or(i32::MAX);
            self.src
                .feed(FeedOp::Read {
                    slot: &slot.slot_name,
                    from: &confirmed_at_read,
                    publication: &slot.publication,
                    upto: &upto,
                    max,
                    sink: &mut sink,
                })
                .await?;
            self.tally.source_ms += clock.now_ms() - t0;
            let t1 = clock.now_ms();
            if let Some(lsn) = last_commit {
                if !at_or_after(&confirmed, &lsn) {
                    commit(std::mem::take(&mut txn), &lsn, self.tally)?;
                    confirmed = lsn;
                }
            }
            self.tally.write_ms += clock.now_ms() - t1;
            if changes == 0 {
                // Caught up: nothing committed before `upto` is left, so the slot may move
                // there even when none of it was ours (a quiet table must not pin WAL).
                if !at_or_after(&confirmed, &upto) {
                    commit(TxnWriter::default(), &upto, self.tally)?;
                    confirmed = upto.clone();
                }
                self.ctx.store.transaction(&[catalog::slot_position_stmt(&slot.slot_key, &confirmed, Some(&started_at))])?;
                self.src.feed(FeedOp::Advance { slot: &slot.slot_name, to: &confirmed }).await?;
                self.src.feed(FeedOp::Keepalive).await?;
                let slot_op = FeedOp::Slot { slot: &slot.slot_name, position: Some(&confirmed) };
                if let FeedAnswer::Slot(Some(info)) = self.src.feed(slot_op).await? {
                    catalog::observe_slot(self.ctx.store, &slot.slot_key, info.lag_bytes, info.wal_status.as_deref())?;
                }
                return Ok(true);
            }
            self.src.feed(FeedOp::Advance { slot: &slot.slot_name, to: &confirmed }).await?;
        }
    }
}
