//! Turning an origin's decoded changes into replica statements, one origin transaction at a
//! time, without any IO: the engine feeds it changes and commits what `finish` returns.
//!
//! Consecutive changes of one kind to one table become one statement (a JSON batch, as the
//! copy writes), so a transaction of many single-row changes costs a few statements, and the
//! order between inserts, updates and deletes is kept: a key inserted, deleted and inserted
//! again in one transaction ends as the origin has it. Upserts and deletes are idempotent,
//! so replaying changes the replica already has (a copy that saw them, a run that died before
//! confirming them) converges.

use crate::config::Config;
use crate::ident::quote_double as q;
use crate::replica_sql::{self, MAX_BATCH_JSON_BYTES};
use crate::source::Column;
use crate::store::{Stmt, Store};
use crate::value::Value;

/// Which slot a cdc config reads: configs of one origin (the same source) and one slot name
/// (or, for a MySQL binlog reader, one server id) share it.
pub fn slot_key(cfg: &Config) -> String {
    let source = cfg.source.as_ref().map_or_else(|| "default".to_string(), |s| serde_json::to_string(s).expect("specs serialize"));
    match cfg.server_id {
        Some(id) => format!("{source}|server_id:{id}"),
        None => format!("{source}|{}", cfg.slot_name.as_deref().unwrap_or("")),
    }
}

/// The names a cdc config's slot row records: its slot and publication, or for a MySQL binlog
/// reader (which has neither) a name for messages and no publication.
pub fn reader_names(cfg: &Config) -> Option<(String, String)> {
    match (cfg.server_id, &cfg.slot_name, &cfg.publication) {
        (Some(id), _, _) => Some((format!("binlog reader (server_id {id})"), String::new())),
        (None, Some(s), Some(p)) => Some((s.clone(), p.clone())),
        _ => None,
    }
}

/// FNV-1a: a stable, short digest of a config's origin (its source spec) and this instance.
fn origin_digest(instance_id: &str, cfg: &Config) -> (String, u64) {
    let source = cfg.source.as_ref().map_or_else(|| "default".to_string(), |s| serde_json::to_string(s).expect("specs serialize"));
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in source.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let id: String = instance_id.chars().filter(|c| c.is_ascii_alphanumeric()).take(16).collect::<String>().to_ascii_lowercase();
    (id, h)
}

/// The slot and publication name a cdc config gets when it names none: one per replica
/// instance and origin, so two replicas of one origin never share a slot, and every config of
/// an origin shares one (the origin decodes its WAL once, whatever the number of tables).
pub fn default_slot_name(instance_id: &str, cfg: &Config) -> String {
    let (id, h) = origin_digest(instance_id, cfg);
    format!("edge_replica_{id}_{:08x}", h as u32)
}

/// The server id a MySQL cdc config's binlog reader gets when it names none: one per replica
/// instance and origin (so every config of an origin shares one reader, and two replicas of
/// one origin differ), in 2^31..2^32-1, away from the small ids servers are usually given.
pub fn default_server_id(instance_id: &str, cfg: &Config) -> i64 {
    let (_, h) = origin_digest(instance_id, cfg);
    let mut x: u64 = h;
    for b in instance_id.bytes() {
        x = (x ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let low = (x ^ (x >> 32)) as u32 & 0x7FFF_FFFF;
    i64::from(0x8000_0000u32 | low.max(1))
}

/// Fills the slot and publication names (or, for a mysql source, the server id) a cdc config
/// left to the replica.
pub fn fill_defaults(cfg: &mut Config, instance_id: &str, kind: crate::config::SourceType) {
    if cfg.mode == crate::config::Mode::Cdc && kind == crate::config::SourceType::Mysql {
        if cfg.server_id.is_none() {
            cfg.server_id = Some(default_server_id(instance_id, cfg));
        }
        return;
    }
    if cfg.mode == crate::config::Mode::Cdc {
        let name = default_slot_name(instance_id, cfg);
        let slot = cfg.slot_name.get_or_insert(name).clone();
        // One publication per slot: the configs that share a slot share it, and a slot's last
        // config may drop it without pulling it from under another slot.
        cfg.publication.get_or_insert(slot);
    }
}

/// A replicated table as the stream writes it: which replica table, its columns and key.
#[derive(Debug, Clone)]
pub struct Sink {
    pub config_id: i64,
    /// The replica table written now: the target, or the staging table while a copy of the
    /// table is under way (its changes then land there and are swapped in with it).
    pub table: String,
    pub columns: Vec<Column>,
    pub primary_key: Vec<String>,
}

impl Sink {
    fn key_indices(&self) -> Vec<usize> {
        self.primary_key.iter().filter_map(|k| self.columns.iter().position(|c| &c.name == k)).collect()
    }
}

/// Rows held as values before they become one statement's JSON: a big transaction is held as
/// compact JSON text, not as values.
const ROWS_PER_STATEMENT: usize = 2_000;

/// One column value of a change: absent means the origin did not send it (an unchanged
/// TOASTed value), which keeps the replica's value.
pub type Row = Vec<Option<Value>>;

enum Pending {
    /// Rows to upsert; `present[i]` says whether column i is written (the same for all rows).
    Upsert {
        sink: usize,
        present: Vec<bool>,
        rows: Vec<Vec<Value>>,
    },
    Delete {
        sink: usize,
        keys: Vec<Vec<Value>>,
    },
}

/// The statements of one origin transaction, built change by change.
#[derive(Default)]
pub struct TxnWriter {
    stmts: Vec<Stmt>,
    pending: Option<Pending>,
    pub upserted: i64,
    pub deleted: i64,
    bytes: usize,
    /// Statements moved into the replica's spill table while a big transaction was read:
    /// (row in `tmp_cdc_spill`, or 0 for a statement without data; its SQL), in order.
    spilled: Vec<(i64, String)>,
}

/// Where a spilled statement reads its JSON from instead of a parameter.
fn from_spill(sql: &str) -> String {
    sql.replace("json_each(?1)", "json_each((SELECT json FROM tmp_cdc_spill WHERE seq = ?1))")
}

impl TxnWriter {
    /// An insert, or the new row of an update. `old_key`: the key the row had before, when
    /// the origin says it changed (an update of the key deletes the old key).
    pub fn upsert(&mut self, sinks: &[Sink], sink: usize, row: Row, old_key: Option<Vec<Value>>) {
        if let Some(old) = old_key {
            let s = &sinks[sink];
            let new_key: Vec<Option<&Value>> = s.key_indices().iter().map(|&i| row[i].as_ref()).collect();
            if new_key.iter().zip(&old).any(|(n, o)| *n != Some(o)) {
                self.delete(sinks, sink, old);
            }
        }
        let present: Vec<bool> = row.iter().map(Option::is_some).collect();
        let values: Vec<Value> = row.into_iter().flatten().collect();
        match &mut self.pending {
            Some(Pending::Upsert { sink: s, present: p, rows }) if *s == sink && *p == present && rows.len() < ROWS_PER_STATEMENT => {
                rows.push(values)
            }
            _ => {
                self.flush(sinks);
                self.pending = Some(Pending::Upsert { sink, present, rows: vec![values] });
            }
        }
        self.upserted += 1;
    }

    /// A delete by key (values in primary-key order).
    pub fn delete(&mut self, sinks: &[Sink], sink: usize, key: Vec<Value>) {
        match &mut self.pending {
            Some(Pending::Delete { sink: s, keys }) if *s == sink && keys.len() < ROWS_PER_STATEMENT => keys.push(key),
            _ => {
                self.flush(sinks);
                self.pending = Some(Pending::Delete { sink, keys: vec![key] });
            }
        }
        self.deleted += 1;
    }

    /// Empties the table; `rows` is how many it held (counted as deleted).
    pub fn truncate(&mut self, sinks: &[Sink], sink: usize, rows: i64) {
        self.flush(sinks);
        self.stmts.push(Stmt::new(format!("DELETE FROM {}", q(&sinks[sink].table)), vec![]));
        self.deleted += rows;
    }

    /// The bytes of JSON held in memory: the caller decides when to spill.
    pub fn held_bytes(&self) -> usize {
        self.bytes
    }

    /// Moves the statements built so far out of memory, into the replica's spill table (a
    /// bookkeeping table no reader sees), each in its own small write; `finish` then runs
    /// them from there, inside the one transaction that makes the origin's visible. So a
    /// transaction of any size holds one statement's JSON in memory at a time. `next_seq`
    /// numbers the spilled rows of one stream.
    pub fn spill(&mut self, store: &dyn Store, next_seq: &mut i64) -> crate::error::Result<()> {
        let mut writes = Vec::new();
        for st in self.stmts.drain(..) {
            match st.params.into_iter().next() {
                Some(json @ Value::Text(_)) => {
                    *next_seq += 1;
                    writes.push(Stmt::new("INSERT INTO tmp_cdc_spill (seq, json) VALUES (?, ?)", vec![Value::Integer(*next_seq), json]));
                    self.spilled.push((*next_seq, from_spill(&st.sql)));
                }
                _ => self.spilled.push((0, st.sql)),
            }
        }
        self.bytes = 0;
        store.transaction(&writes)
    }

    fn flush(&mut self, sinks: &[Sink]) {
        let (sql, rows) = match self.pending.take() {
            None => return,
            Some(Pending::Upsert { sink, present, rows }) => {
                let s = &sinks[sink];
                let cols: Vec<Column> = s.columns.iter().zip(&present).filter(|(_, p)| **p).map(|(c, _)| c.clone()).collect();
                (replica_sql::upsert_batch(&s.table, &cols, &s.primary_key), rows)
            }
            Some(Pending::Delete { sink, keys }) => {
                let s = &sinks[sink];
                let key_cols: Vec<Column> = s.key_indices().iter().map(|&i| s.columns[i].clone()).collect();
                (replica_sql::delete_batch(&s.table, &key_cols), keys)
            }
        };
        for json in replica_sql::encode_rows(&rows, MAX_BATCH_JSON_BYTES) {
            self.bytes += json.len();
            self.stmts.push(Stmt::new(sql.clone(), vec![Value::Text(json)]));
        }
    }

    /// The transaction's statements, in order.
    pub fn finish(mut self, sinks: &[Sink]) -> (Vec<Stmt>, i64, i64) {
        self.flush(sinks);
        if self.spilled.is_empty() {
            return (self.stmts, self.upserted, self.deleted);
        }
        let mut stmts: Vec<Stmt> = self
            .spilled
            .into_iter()
            .map(|(seq, sql)| if seq == 0 { Stmt::new(sql, vec![]) } else { Stmt::new(sql, vec![Value::Integer(seq)]) })
            .collect();
        stmts.extend(self.stmts);
        stmts.push(Stmt::new("DELETE FROM tmp_cdc_spill", vec![]));
        (stmts, self.upserted, self.deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Affinity;
    use crate::store::Store;
    use crate::test_support::SqliteStore;

    fn sinks() -> Vec<Sink> {
        let col = |n: &str, a| Column { name: n.into(), source_type: String::new(), affinity: a, nullable: true };
        vec![Sink {
            config_id: 1,
            table: "t".into(),
            columns: vec![col("id", Affinity::Integer), col("v", Affinity::Text), col("big", Affinity::Text)],
            primary_key: vec!["id".into()],
        }]
    }

    fn apply(store: &SqliteStore, w: TxnWriter, sinks: &[Sink]) -> (i64, i64) {
        let (stmts, up, del) = w.finish(sinks);
        store.transaction(&stmts).unwrap();
        (up, del)
    }

    fn rows(store: &SqliteStore) -> Vec<Vec<Value>> {
        store.query("SELECT id, v, big FROM t ORDER BY id", &[]).unwrap()
    }

    #[test]
    fn changes_apply_in_order_and_keep_unchanged_values() {
        let s = sinks();
        let store = SqliteStore::memory();
        store.execute(&replica_sql::create_table("t", &s[0].columns, &s[0].primary_key), &[]).unwrap();
        let full = |id: i64, v: &str| vec![Some(Value::Integer(id)), Some(Value::text(v)), Some(Value::text(format!("big{id}")))];
        let mut w = TxnWriter::default();
        for i in 1..=4 {
            w.upsert(&s, 0, full(i, "a"), None);
        }
        // Inserted, deleted and inserted again in one transaction: the last one stands.
        w.delete(&s, 0, vec![Value::Integer(2)]);
        w.upsert(&s, 0, full(2, "again"), None);
        w.delete(&s, 0, vec![Value::Integer(3)]);
        assert_eq!(apply(&store, w, &s), (5, 2));
        let mut w = TxnWriter::default();
        // An update that leaves the TOASTed column out keeps the replica's value.
        w.upsert(&s, 0, vec![Some(Value::Integer(1)), Some(Value::text("b")), None], None);
        // An update that changes the key moves the row.
        w.upsert(&s, 0, full(40, "moved"), Some(vec![Value::Integer(4)]));
        // An update that names its unchanged key deletes nothing.
        w.upsert(&s, 0, full(2, "same key"), Some(vec![Value::Integer(2)]));
        apply(&store, w, &s);
        assert_eq!(
            rows(&store),
            vec![
                vec![Value::Integer(1), Value::text("b"), Value::text("big1")],
                vec![Value::Integer(2), Value::text("same key"), Value::text("big2")],
                vec![Value::Integer(40), Value::text("moved"), Value::text("big40")],
            ]
        );
        let mut w = TxnWriter::default();
        w.truncate(&s, 0, 3);
        w.upsert(&s, 0, full(7, "after"), None);
        assert_eq!(apply(&store, w, &s), (1, 3));
        assert_eq!(rows(&store), vec![vec![Value::Integer(7), Value::text("after"), Value::text("big7")]]);
    }

    #[test]
    fn a_spilled_transaction_applies_as_one() {
        let s = sinks();
        let store = SqliteStore::memory();
        crate::catalog::migrate(&store).unwrap();
        store.execute(&replica_sql::create_table("t", &s[0].columns, &s[0].primary_key), &[]).unwrap();
        let mut w = TxnWriter::default();
        let mut seq = 0;
        for i in 0..5_000 {
            w.upsert(&s, 0, vec![Some(Value::Integer(i)), Some(Value::text("v")), None], None);
            if i % 1_500 == 0 {
                w.flush(&s);
                w.spill(&store, &mut seq).unwrap();
                assert_eq!(w.held_bytes(), 0);
            }
        }
        w.delete(&s, 0, vec![Value::Integer(0)]);
        // Nothing is visible before the commit; the spill table holds the data meanwhile.
        assert_eq!(rows(&store).len(), 0);
        assert!(store.query("SELECT count(*) FROM tmp_cdc_spill", &[]).unwrap()[0][0].as_i64().unwrap() > 0);
        assert_eq!(apply(&store, w, &s), (5_000, 1));
        assert_eq!(rows(&store).len(), 4_999);
        assert_eq!(store.query("SELECT count(*) FROM tmp_cdc_spill", &[]).unwrap()[0][0].as_i64(), Some(0));
    }

    #[test]
    fn keys_beyond_two_to_the_53_are_deleted_exactly() {
        let s = sinks();
        let store = SqliteStore::memory();
        store.execute(&replica_sql::create_table("t", &s[0].columns, &s[0].primary_key), &[]).unwrap();
        let mut w = TxnWriter::default();
        for id in [i64::MAX, i64::MAX - 1, 9_007_199_254_740_993, 9_007_199_254_740_992] {
            w.upsert(&s, 0, vec![Some(Value::Integer(id)), None, None], None);
        }
        w.delete(&s, 0, vec![Value::Integer(i64::MAX - 1)]);
        w.delete(&s, 0, vec![Value::Integer(9_007_199_254_740_993)]);
        apply(&store, w, &s);
        let ids: Vec<Value> = rows(&store).into_iter().map(|r| r[0].clone()).collect();
        assert_eq!(ids, vec![Value::Integer(9_007_199_254_740_992), Value::Integer(i64::MAX)]);
    }
}
