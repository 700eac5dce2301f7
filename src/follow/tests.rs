//! A primary and its read replicas as two in-memory SQLite stores, the replica's RPC a direct
//! call: every kind of change the primary logs must leave the replica equal to it, cell by cell.

use super::*;
use crate::catalog;
use crate::test_support::SqliteStore;
use std::cell::Cell;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
}

fn store() -> SqliteStore {
    let s = SqliteStore::memory();
    catalog::migrate(&s).unwrap();
    s
}

/// A primary with its log on.
fn primary() -> SqliteStore {
    let p = store();
    set_logging(&p, true).unwrap();
    p
}

/// A replica object that has learnt its location.
fn replica(location: &str) -> SqliteStore {
    let r = store();
    remember_location(&r, location).unwrap();
    r
}

/// What `Ledger::commit_batch` does with a batch: the statements, logged, and the bookmark moved.
fn commit(p: &SqliteStore, stmts: Vec<Stmt>) {
    let mut stmts = with_log(p, stmts).unwrap();
    stmts.push(Stmt::new("UPDATE tmp_replication_meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'bookmark'", vec![]));
    p.transaction(&stmts).unwrap();
}

fn sql(s: &str) -> Stmt {
    Stmt::new(s, vec![])
}

/// The replica's RPC to the primary, as a direct call; `max_bytes` overrides what it asks for.
struct Direct<'a> {
    p: &'a SqliteStore,
    max_bytes: Option<u64>,
    /// Runs before each page is answered (to change the primary during a copy).
    before_page: Option<&'a dyn Fn()>,
    calls: Cell<usize>,
    /// Locations taken out of `REPLICA_LOCATIONS`.
    retired: Vec<String>,
}

impl<'a> Direct<'a> {
    fn new(p: &'a SqliteStore) -> Self {
        Direct { p, max_bytes: None, before_page: None, calls: Cell::new(0), retired: Vec::new() }
    }
}

impl Primary for Direct<'_> {
    async fn pull(&self, req: &PullRequest) -> Result<PullAnswer> {
        self.calls.set(self.calls.get() + 1);
        let mut req = req.clone();
        if let Some(m) = self.max_bytes {
            req.max_bytes = m;
        }
        // Through JSON, as over the wire.
        let a = pull(self.p, &req, !self.retired.contains(&req.location), 1_000)?;
        Ok(serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap())
    }
    async fn copy_plan(&self, location: &str) -> Result<CopyPlan> {
        self.calls.set(self.calls.get() + 1);
        copy_plan(self.p, !self.retired.contains(&location.to_string()))
    }
    async fn page(&self, req: &PageRequest) -> Result<Page> {
        self.calls.set(self.calls.get() + 1);
        if let Some(f) = self.before_page {
            f();
        }
        page(self.p, req, !self.retired.contains(&req.location), 1_000)
    }
}

fn catch_up_all(r: &SqliteStore, d: &Direct) {
    for _ in 0..10_000 {
        match block_on(step(r, d)).unwrap() {
            Step::More => {}
            Step::CaughtUp => return,
            Step::Retired => panic!("retired"),
        }
    }
    panic!("the replica never caught up");
}

/// Every data table of a store, every row with its cells typed and exact, in key order.
fn dump(s: &SqliteStore) -> Vec<(String, String, Vec<String>)> {
    data_tables(s)
        .unwrap()
        .into_iter()
        .map(|(name, ddl)| {
            let cols: Vec<String> = s
                .query("SELECT name FROM pragma_table_info(?) ORDER BY cid", &[Value::text(&name)])
                .unwrap()
                .iter()
                .map(|r| r[0].as_str().unwrap().to_string())
                .collect();
            let cells: Vec<String> = cols.iter().map(|c| tagged(c)).collect();
            let rows = s
                .query(&format!("SELECT json_array({}) FROM {} ORDER BY 1", cells.join(", "), q(&name)), &[])
                .unwrap()
                .into_iter()
                .map(|r| r[0].as_str().unwrap().to_string())
                .collect::<Vec<_>>();
            let mut rows = rows;
            rows.sort();
            (name, ddl, rows)
        })
        .collect()
}

fn bookmark(s: &SqliteStore) -> String {
    catalog::bookmark(s).unwrap()
}

fn assert_same(p: &SqliteStore, r: &SqliteStore) {
    assert_eq!(dump(r), dump(p));
    assert_eq!(bookmark(r), bookmark(p));
    assert!(load(r).unwrap().serving());
}

const EDGE_ROWS: &str = r#"[
    [1, 9223372036854775807, 1.0000000000000002, "", null],
    [2, -9223372036854775808, 5e-324, "é🦀\u0000x", {"x": "00ff10"}],
    [3, 9007199254740993, 1.7976931348623157e308, "0042", {"x": ""}],
    [4, 0, -0.1, " spaces ", null]
]"#;

fn create_edge_table(p: &SqliteStore, name: &str) -> Stmt {
    let _ = p;
    sql(&format!("CREATE TABLE {} (\"id\" INTEGER, \"big\" INTEGER, \"r\" REAL, \"s\" TEXT, \"b\", PRIMARY KEY (\"id\"))", q(name)))
}

fn upsert_edge(name: &str, rows: &str) -> Stmt {
    Stmt::new(
        format!(
            "INSERT INTO {} (\"id\", \"big\", \"r\", \"s\", \"b\") SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), \
             json_extract(value, '$[2]'), json_extract(value, '$[3]'), CASE json_type(value, '$[4]') WHEN 'object' THEN \
             unhex(json_extract(value, '$[4].x')) ELSE json_extract(value, '$[4]') END FROM json_each(?1) WHERE true \
             ON CONFLICT (\"id\") DO UPDATE SET \"big\" = excluded.\"big\", \"r\" = excluded.\"r\", \"s\" = excluded.\"s\", \"b\" = excluded.\"b\"",
            q(name)
        ),
        vec![Value::text(rows)],
    )
}

#[test]
fn bookkeeping_statements_stay_on_the_primary_and_data_statements_are_logged() {
    for s in [
        "UPDATE tmp_replication_state SET phase = ? WHERE config_id = ?",
        "INSERT INTO tmp_cdc_spill (seq, json) VALUES (?, ?)",
        "DELETE FROM tmp_cdc_spill",
        "  insert or ignore into tmp_replication_meta (key, value) VALUES ('a', 'b')",
        "INSERT OR REPLACE INTO tmp_replication_slots (slot_key) VALUES (?)",
    ] {
        assert!(is_bookkeeping(s), "{s}");
    }
    for s in [
        "INSERT INTO \"tmp_replication_state\" (x) SELECT 1",
        "INSERT INTO \"t\" (\"tmp_replication_x\") SELECT json_extract(value, '$[0]') FROM json_each(?1)",
        "DELETE FROM \"t\" WHERE (\"id\") IN (SELECT 1)",
        "DROP TABLE IF EXISTS \"tmp_stage_3\"",
        "ALTER TABLE \"tmp_stage_3\" RENAME TO \"t\"",
        "CREATE TABLE \"t\" (\"id\" INTEGER, PRIMARY KEY (\"id\"))",
    ] {
        assert!(!is_bookkeeping(s), "{s}");
    }
}

#[test]
fn parameters_cross_the_wire_exactly() {
    let ps = vec![
        Value::Null,
        Value::Integer(i64::MAX),
        Value::Integer(i64::MIN),
        Value::Real(0.1),
        Value::Real(5e-324),
        Value::Real(-0.0),
        Value::Real(f64::INFINITY),
        Value::text("é🦀\u{0}\"x"),
        Value::Blob(vec![0, 1, 254, 255]),
        Value::Blob(vec![]),
    ];
    let back = decode_params(&encode_params(&ps)).unwrap();
    assert_eq!(format!("{back:?}"), format!("{ps:?}"), "bit for bit, -0.0 included");
    assert!(decode_params("[{\"i\":\"1.5\"}]").is_err());
    assert!(decode_params("[{\"b\":\"abc\"}]").is_err());
    assert!(decode_params("[1]").is_err(), "a bare number would have crossed JS");
}

#[test]
fn a_replica_follows_every_kind_of_change_exactly() {
    let p = primary();
    let r = replica("weur");
    let d = Direct::new(&p);
    catch_up_all(&r, &d);
    assert_same(&p, &r);

    commit(&p, vec![create_edge_table(&p, "t"), upsert_edge("t", EDGE_ROWS)]);
    catch_up_all(&r, &d);
    assert_same(&p, &r);

    // Updates, a delete with bound parameters, a column added and filled.
    commit(&p, vec![upsert_edge("t", r#"[[1, 1, 2.5, "changed", null], [5, 5, 5.5, "new", {"x": "ab"}]]"#)]);
    commit(&p, vec![Stmt::new("DELETE FROM \"t\" WHERE \"id\" = ?1 OR \"s\" = ?2", vec![Value::Integer(2), Value::text("0042")])]);
    commit(
        &p,
        vec![
            sql("ALTER TABLE \"t\" ADD COLUMN \"extra\" TEXT DEFAULT 'd'"),
            sql("UPDATE \"t\" SET \"extra\" = 'x' || \"id\" WHERE \"id\" > 4"),
        ],
    );
    catch_up_all(&r, &d);
    assert_same(&p, &r);

    // A full refresh: staging filled over several batches, then swapped in.
    commit(&p, vec![sql("DROP TABLE IF EXISTS \"tmp_stage_1\""), create_edge_table(&p, "tmp_stage_1")]);
    commit(&p, vec![upsert_edge("tmp_stage_1", r#"[[10, 10, 1.5, "a", null]]"#)]);
    catch_up_all(&r, &d);
    assert_same(&p, &r);
    commit(&p, vec![upsert_edge("tmp_stage_1", r#"[[11, 11, 1.5, "b", null]]"#)]);
    commit(&p, vec![sql("DROP TABLE \"t\""), sql("ALTER TABLE \"tmp_stage_1\" RENAME TO \"t\"")]);
    catch_up_all(&r, &d);
    assert_same(&p, &r);
    assert_eq!(dump(&r).iter().map(|t| t.0.as_str()).collect::<Vec<_>>(), vec!["t"]);

    // A table dropped with its config; a batch that is bookkeeping only still moves the position.
    commit(&p, vec![sql("DROP TABLE IF EXISTS \"t\"")]);
    commit(&p, vec![sql("UPDATE tmp_replication_meta SET value = value WHERE key = 'instance_id'")]);
    catch_up_all(&r, &d);
    assert_same(&p, &r);
    assert!(dump(&r).is_empty());
}

#[test]
fn a_cdc_transaction_read_from_the_spill_reaches_the_replica_with_its_rows() {
    let p = primary();
    let r = replica("apac");
    let d = Direct::new(&p);
    commit(&p, vec![create_edge_table(&p, "t")]);
    catch_up_all(&r, &d);
    // As `cdc::TxnWriter::finish` builds a spilled transaction.
    p.execute("INSERT INTO tmp_cdc_spill (seq, json) VALUES (1, ?)", &[Value::text(EDGE_ROWS)]).unwrap();
    let spilled = upsert_edge("t", "").sql.replace("json_each(?1)", SPILL_READ);
    commit(&p, vec![Stmt::new(spilled, vec![Value::Integer(1)]), sql("DELETE FROM tmp_cdc_spill")]);
    assert_eq!(dump(&p)[0].2.len(), 4);
    catch_up_all(&r, &d);
    assert_same(&p, &r);
}

#[test]
fn a_new_replica_copies_what_the_primary_holds_then_follows() {
    let p = store();
    // Data from before read replicas were configured: not in any log.
    p.transaction(&[create_edge_table(&p, "a"), upsert_edge("a", EDGE_ROWS), create_edge_table(&p, "b")]).unwrap();
    let many: Vec<String> = (0..(PAGE_ROWS * 2 + 7)).map(|i| format!("[{i}, {i}, 0.5, \"r{i}\", null]")).collect();
    p.execute(&upsert_edge("b", "").sql, &[Value::text(format!("[{}]", many.join(",")))]).unwrap();
    p.execute("UPDATE tmp_replication_meta SET value = '41' WHERE key = 'bookmark'", &[]).unwrap();
    set_logging(&p, true).unwrap();
    let r = replica("weur");
    let d = Direct::new(&p);
    catch_up_all(&r, &d);
    assert_same(&p, &r);
    assert_eq!(bookmark(&r), crate::bookmark::format(41));
    commit(&p, vec![upsert_edge("a", r#"[[9, 9, 9.5, "after", null]]"#)]);
    catch_up_all(&r, &d);
    assert_same(&p, &r);
}

#[test]
fn a_copy_overtaken_by_a_swap_starts_over_and_converges() {
    let p = primary();
    let big: Vec<String> = (0..(PAGE_ROWS * 3)).map(|i| format!("[{i}, {i}, 0.25, \"v{i}\", null]")).collect();
    commit(&p, vec![create_edge_table(&p, "t"), upsert_edge("t", &format!("[{}]", big.join(",")))]);
    commit(&p, vec![sql("DROP TABLE IF EXISTS \"tmp_stage_1\""), create_edge_table(&p, "tmp_stage_1")]);
    commit(&p, vec![upsert_edge("tmp_stage_1", r#"[[1, 1, 1.0, "staged", null]]"#)]);
    let pages = Cell::new(0);
    let swap = || {
        pages.set(pages.get() + 1);
        if pages.get() == 2 {
            // The full refresh finishes while the replica is copying `t`.
            commit(&p, vec![upsert_edge("tmp_stage_1", r#"[[2, 2, 2.0, "staged", null]]"#)]);
            commit(&p, vec![sql("DROP TABLE \"t\""), sql("ALTER TABLE \"tmp_stage_1\" RENAME TO \"t\"")]);
        }
    };
    let r = replica("weur");
    let d = Direct { before_page: Some(&swap), ..Direct::new(&p) };
    catch_up_all(&r, &d);
    assert!(pages.get() > 2, "the copy started over");
    assert_same(&p, &r);
    assert_eq!(dump(&r)[0].2.len(), 2);
}

#[test]
fn pulls_carry_whole_entries_up_to_their_size_bound() {
    let p = primary();
    let r = replica("weur");
    let d = Direct::new(&p);
    catch_up_all(&r, &d);
    commit(&p, vec![create_edge_table(&p, "t")]);
    for i in 0..20 {
        // Two statements per entry: a replica never holds one without the other.
        commit(
            &p,
            vec![
                upsert_edge("t", &format!("[[{i}, {i}, 0.5, \"{}\", null]]", "x".repeat(500))),
                upsert_edge("t", &format!("[[{}, 0, 0.5, \"pair\", null]]", 1000 + i)),
            ],
        );
    }
    let d = Direct { max_bytes: Some(1), ..d };
    let mut seen = Vec::new();
    loop {
        let step = block_on(super::step(&r, &d)).unwrap();
        let n = r.query("SELECT count(*) FROM \"t\"", &[]).unwrap()[0][0].as_i64().unwrap();
        assert_eq!(n % 2, 0, "an entry applied whole");
        seen.push(n);
        if step == Step::CaughtUp {
            break;
        }
    }
    assert!(seen.len() >= 20, "one entry per pull at this bound: {seen:?}");
    assert_same(&p, &r);
}

#[test]
fn a_replica_behind_the_retention_bound_re_copies_and_converges() {
    let p = primary();
    let locations = vec!["weur".to_string(), "apac".to_string()];
    let (fast, slow) = (replica("weur"), replica("apac"));
    let d = Direct::new(&p);
    commit(&p, vec![create_edge_table(&p, "t"), upsert_edge("t", EDGE_ROWS)]);
    catch_up_all(&fast, &d);
    catch_up_all(&slow, &d);
    for i in 0..50 {
        commit(&p, vec![upsert_edge("t", &format!("[[{}, {i}, 0.5, \"{}\", null]]", 100 + i, "y".repeat(200)))]);
        catch_up_all(&fast, &d);
        trim(&p, &locations, 2_000).unwrap();
    }
    let kept: i64 = p.query("SELECT coalesce(sum(bytes), 0) FROM tmp_replication_log", &[]).unwrap()[0][0].as_i64().unwrap();
    assert!(kept <= 2_000, "the log keeps to its bound: {kept}");
    // The slow replica's next entry is gone: it re-copies.
    catch_up_all(&slow, &d);
    assert_same(&p, &slow);
    assert_same(&p, &fast);
    // Entries every replica holds go.
    trim(&p, &locations, u64::MAX).unwrap();
    let left: i64 = p.query("SELECT count(*) FROM tmp_replication_log", &[]).unwrap()[0][0].as_i64().unwrap();
    assert_eq!(left, 0);
}

#[test]
fn a_replica_of_another_primary_or_a_reset_one_re_copies() {
    let p = primary();
    let r = replica("weur");
    let d = Direct::new(&p);
    commit(&p, vec![create_edge_table(&p, "t"), upsert_edge("t", EDGE_ROWS)]);
    catch_up_all(&r, &d);
    // The primary's storage is replaced: another instance, its position back at 1.
    let p2 = primary();
    commit(&p2, vec![create_edge_table(&p2, "u"), upsert_edge("u", r#"[[7, 7, 7.5, "other", null]]"#)]);
    let d2 = Direct::new(&p2);
    catch_up_all(&r, &d2);
    assert_same(&p2, &r);
}

#[test]
fn statuses_say_what_the_primary_knows_of_each_replica() {
    let p = primary();
    let locations = vec!["weur".to_string(), "apac".to_string()];
    let r = replica("weur");
    let d = Direct::new(&p);
    commit(&p, vec![create_edge_table(&p, "t")]);
    catch_up_all(&r, &d);
    let s = statuses(&p, &locations, 5_000).unwrap();
    assert_eq!(s[0].location, "weur");
    assert_eq!(s[0].bookmark.as_deref(), Some(bookmark(&p).as_str()));
    assert_eq!(s[0].lag_ms, Some(0));
    assert_eq!(s[0].last_pull_at.as_deref(), Some("1970-01-01T00:00:01.000Z"));
    assert_eq!(
        s[1],
        ReplicaStatus { location: "apac".into(), bookmark: None, lag_ms: None, last_pull_at: None, last_error: None, tables: None }
    );
    commit(&p, vec![upsert_edge("t", r#"[[1, 1, 1.0, "a", null]]"#)]);
    let s = statuses(&p, &locations, i64::MAX / 2).unwrap();
    assert!(s[0].lag_ms.unwrap() > 0, "behind by one entry");
    // Behind entries that were trimmed (it will re-copy): still behind, never 0.
    p.execute("DELETE FROM tmp_replication_log", &[]).unwrap();
    let s = statuses(&p, &locations, 5_000).unwrap();
    assert_eq!(s[0].lag_ms, Some(4_000), "since its last pull");
}

#[test]
fn turning_replicas_off_forgets_the_log() {
    let p = primary();
    commit(&p, vec![create_edge_table(&p, "t")]);
    assert_eq!(p.query("SELECT count(*) FROM tmp_replication_log", &[]).unwrap()[0][0].as_i64(), Some(1));
    set_logging(&p, false).unwrap();
    assert_eq!(p.query("SELECT count(*) FROM tmp_replication_log", &[]).unwrap()[0][0].as_i64(), Some(0));
    commit(&p, vec![upsert_edge("t", EDGE_ROWS)]);
    assert_eq!(p.query("SELECT count(*) FROM tmp_replication_log", &[]).unwrap()[0][0].as_i64(), Some(0), "not logged");
}

#[test]
fn a_replica_taken_out_of_the_list_drops_its_copy_and_stops() {
    let p = primary();
    let r = replica("weur");
    commit(&p, vec![create_edge_table(&p, "t"), upsert_edge("t", EDGE_ROWS)]);
    catch_up_all(&r, &Direct::new(&p));
    assert!(!dump(&r).is_empty());
    let gone = Direct { retired: vec!["weur".into()], ..Direct::new(&p) };
    assert_eq!(block_on(step(&r, &gone)).unwrap(), Step::Retired);
    assert!(dump(&r).is_empty(), "its tables are gone");
    assert!(!load(&r).unwrap().serving());
    assert_eq!(block_on(catch_up(&r, &gone, || 0, 1_000)).unwrap(), Step::Retired, "and it stays retired");
    // Listed again: a fresh copy.
    catch_up_all(&r, &Direct::new(&p));
    assert_same(&p, &r);
}
