//! The PostgreSQL source against a real server (127.0.0.1:5432, user postgres, trust auth).
//!
//! Every test creates its own database `er_src_<random>` from the `test` database and drops it
//! afterwards, also when the test fails.

use edge_replica::ident::{parse_qualified, Quoting};
use edge_replica::replica_sql::jsonb_rows;
use edge_replica::source::postgres::{fold_ident, parse_url, PostgresSource};
use edge_replica::source::{Affinity, Column, PageRequest, Source, TableName};
use edge_replica::value::Value;
use futures_util::FutureExt;
use std::collections::HashSet;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::panic::AssertUnwindSafe;
use tokio_postgres::Client;

async fn connect(db: &str) -> Client {
    edge_replica::test_support::postgres_client(db).await
}

fn random_suffix() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

struct Db {
    name: String,
    /// A connection of its own for setup SQL, separate from the source's.
    sql: Client,
}

impl Db {
    /// A source on a fresh connection; `session` runs on that connection first.
    async fn source(&self, session: &str) -> PostgresSource {
        let c = connect(&self.name).await;
        c.batch_execute(session).await.expect("session setup");
        PostgresSource::new(c, "postgres via url_secret PG_TEST_URL".into())
    }
}

/// Runs `body` in a fresh database made from `setup`, then drops the database whatever happened.
async fn with_db<F, Fut>(setup: &str, body: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    let admin = connect("test").await;
    let name = format!("er_src_{}", random_suffix());
    admin.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create database");
    let outcome = AssertUnwindSafe(async {
        let sql = connect(&name).await;
        sql.batch_execute(setup).await.expect("setup SQL");
        body(Db { name: name.clone(), sql }).await
    })
    .catch_unwind()
    .await;
    admin.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)")).await.expect("drop database");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

fn table(s: &str) -> TableName {
    let q = parse_qualified(s, Quoting::Double).expect("test table name");
    TableName { schema: q.schema.as_ref().map(fold_ident), name: fold_ident(&q.name) }
}

fn col(name: &str, source_type: &str, affinity: Affinity, nullable: bool) -> Column {
    Column { name: name.into(), source_type: source_type.into(), affinity, nullable }
}

fn t(s: &str) -> Value {
    Value::text(s)
}

/// Every row of `tbl` through `fetch_page`, ordered by `order`, `limit` rows at a time.
async fn page_through(src: &mut PostgresSource, tbl: &TableName, columns: &[Column], order: &[usize], limit: usize) -> Vec<Vec<Value>> {
    let mut all: Vec<Vec<Value>> = Vec::new();
    loop {
        let after: Option<Vec<Value>> = all.last().map(|r| order.iter().map(|&i| r[i].clone()).collect());
        let page = PageRequest { table: tbl, columns, order, after: after.as_deref(), from: None, limit };
        let rows = src.fetch_page(&page).await.expect("fetch_page");
        assert!(rows.len() <= limit);
        // The copy's direct path (binary values straight into the batch text) writes what the
        // values encode to, on every page of every table these tests read, split small.
        let direct = src.fetch_batch(&page, 300).await.expect("fetch_batch");
        assert_eq!(direct.batches, jsonb_rows(&rows, 300));
        // Debug text: NaN equals itself there.
        assert_eq!((direct.rows, format!("{:?}", direct.last)), (rows.len(), format!("{:?}", rows.last())));
        let done = rows.len() < limit;
        all.extend(rows);
        assert!(all.len() <= 100_000, "paging does not advance");
        if done {
            return all;
        }
    }
}

const INTROSPECTION: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE DOMAIN price AS numeric(12,2);
CREATE DOMAIN labels AS text[];
CREATE TABLE items (id bigint, gone int, kind text NOT NULL, amount price, note varchar(20),
                    flag boolean NOT NULL DEFAULT false, PRIMARY KEY (kind, id));
ALTER TABLE items DROP COLUMN gone;
ALTER TABLE items ADD COLUMN qty posint, ADD COLUMN tags labels, ADD COLUMN m mood,
                  ADD COLUMN created timestamp(3) with time zone, ADD COLUMN raw bytea, ADD COLUMN r real;
CREATE TABLE log (msg text, at timestamptz);
CREATE SCHEMA "My Schema";
CREATE TABLE "My Schema"."Order Items" ("select" int PRIMARY KEY, "Qty" int NOT NULL, "Mixed Case" text);
INSERT INTO "My Schema"."Order Items" VALUES (2, 20, NULL), (1, 10, 'one'), (3, 30, NULL);
CREATE VIEW items_view AS SELECT id, kind FROM items;
CREATE TABLE events (id int, day date, PRIMARY KEY (day, id)) PARTITION BY RANGE (day);
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE SCHEMA other;
CREATE TABLE other.items (x int);
CREATE SEQUENCE counter;
"#;

#[tokio::test]
async fn introspects_columns_types_and_keys() {
    with_db(INTROSPECTION, |db| async move {
        let mut src = db.source("").await;
        let s = src.table_schema(&table("items")).await.unwrap();
        use Affinity::*;
        assert_eq!(
            s.columns,
            vec![
                col("id", "bigint", Integer, false),
                col("kind", "text", Text, false),
                col("amount", "numeric(12,2)", Text, true),
                col("note", "character varying(20)", Text, true),
                col("flag", "boolean", Integer, false),
                col("qty", "integer", Integer, true),
                col("tags", "text[]", Text, true),
                col("m", "mood", Text, true),
                col("created", "timestamp(3) with time zone", Text, true),
                col("raw", "bytea", Blob, true),
                col("r", "real", Real, true),
            ]
        );
        assert_eq!(s.primary_key, vec!["kind", "id"]);

        // Unquoted names fold to lower case; a schema that is not on the search path is named.
        assert_eq!(src.table_schema(&table("ITEMS")).await.unwrap().columns.len(), 11);
        let other = src.table_schema(&table("other.items")).await.unwrap();
        assert_eq!(other.columns, vec![col("x", "integer", Integer, true)]);
        assert!(other.primary_key.is_empty());

        let log = src.table_schema(&table("log")).await.unwrap();
        assert!(log.primary_key.is_empty());
        assert_eq!(log.columns[1], col("at", "timestamp with time zone", Text, true));

        let quoted = table(r#""My Schema"."Order Items""#);
        let oi = src.table_schema(&quoted).await.unwrap();
        assert_eq!(
            oi.columns,
            vec![col("select", "integer", Integer, false), col("Qty", "integer", Integer, false), col("Mixed Case", "text", Text, true)]
        );
        assert_eq!(oi.primary_key, vec!["select"]);
        let rows = page_through(&mut src, &quoted, &oi.columns, &[0], 2).await;
        assert_eq!(
            rows,
            vec![
                vec![Value::Integer(1), Value::Integer(10), t("one")],
                vec![Value::Integer(2), Value::Integer(20), Value::Null],
                vec![Value::Integer(3), Value::Integer(30), Value::Null],
            ]
        );
        assert_eq!(src.count_nulls(&quoted, &oi.columns[2]).await.unwrap(), 2);

        let view = src.table_schema(&table("items_view")).await.unwrap();
        assert_eq!(view.columns, vec![col("id", "bigint", Integer, true), col("kind", "text", Text, true)]);
        assert!(view.primary_key.is_empty());

        let events = src.table_schema(&table("public.events")).await.unwrap();
        assert_eq!(events.columns, vec![col("id", "integer", Integer, false), col("day", "date", Text, false)]);
        assert_eq!(events.primary_key, vec!["day", "id"]);

        for missing in ["nope", "other.log", r#""My Schema".items"#, r#""Items""#] {
            let e = src.table_schema(&table(missing)).await.unwrap_err();
            assert!(e.is_source(), "{e}");
            assert!(e.message().contains("does not exist"), "{e}");
            assert!(e.message().contains("postgres via url_secret PG_TEST_URL"), "{e}");
        }
        let e = src.table_schema(&table("nope")).await.unwrap_err();
        assert!(e.message().contains("table \"nope\" does not exist"), "{e}");
        let e = src.table_schema(&table(r#""My Schema".items"#)).await.unwrap_err();
        assert!(e.message().contains("\"My Schema\".\"items\""), "{e}");
        let e = src.table_schema(&table("counter")).await.unwrap_err();
        assert!(e.message().contains("not a table"), "{e}");
    })
    .await;
}

const TYPES: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TABLE all_types (
  id int PRIMARY KEY,
  i2 smallint, i4 integer, i8 bigint, o oid,
  num numeric, num2 numeric(12,2), mon money,
  r real, d double precision, b boolean, by bytea,
  tz timestamptz, ts timestamp, dt date, tm time, ttz timetz, iv interval,
  u uuid, e mood, j json, jb jsonb, ia int[], ta text[],
  txt text, ch char(4), vc varchar(5), nm name, ip inet, dom posint, qc "char",
  bits bit(4), pt point, x xml, tsv tsvector, tz3 timestamp(3) with time zone
);
INSERT INTO all_types VALUES (1,
  32767, 2147483647, 9223372036854775807, 4294967295,
  '1234567890123456789012345678901234567890.0123456789', 12.3, '92233720368547758.07',
  0.1, 0.1, true, '\x00ff00',
  '2026-01-02 09:04:05.123456+06', '2026-01-02 03:04:05', '2026-01-02', '24:00:00', '04:05:06.789+05:30',
  '1 year 2 months 3 days 04:05:06.5',
  'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 'happy',
  '{"n": 123456789012345678901234567890, "s": "x"}',
  '{"b": [1, 2.50], "a": 123456789012345678901234567890, "aa": {"x":null}}',
  '{{1,2},{3,4}}', ARRAY['a"b', 'c,d', '', NULL, E'\\'],
  '', 'ab', 'héllo', 'pg_name', '192.168.0.1/24', 5, 'x',
  B'1010', '(1,2)', '<a>1</a>', 'a b:1', '2026-01-02 03:04:05.123+00');
INSERT INTO all_types VALUES (2,
  -32768, -2147483648, -9223372036854775808, 0,
  'NaN', -0.5, '-1.5',
  'NaN', 1e308, false, '',
  'infinity', '-infinity', '-infinity', '13:07:09.00005', '00:00:00-01',
  '-1 day',
  '00000000-0000-0000-0000-000000000000', 'sad', '[]', '{}', '{1,NULL,3}', '{}',
  E'é😀\n', NULL, '', '', '::1', 1, ' ',
  B'0000', '(-1.5,2e-10)', '', '', '2026-01-02 03:04:05+00');
INSERT INTO all_types (id, num, r, d, tz, ts, dt, iv) VALUES
  (3, '-0.000000000000000000010', '-Infinity', 'Infinity', '4714-11-24 00:00:00+00 BC', '0044-03-15 12:00 BC',
      '0044-03-15 BC', '0'),
  (4, 'Infinity', 1e-45, 5e-324, '294276-12-31 23:59:59.999999+00', '10000-01-01 00:00', '10000-01-01',
      '-1 year -2 months 3 days -04:05:06.5'),
  (5, NULL, NULL, '-0', '1999-12-31 23:59:59.999999+00', '1970-01-01', '0001-01-01', '-0.5 seconds');
INSERT INTO all_types (id) VALUES (6);
"#;

#[tokio::test]
async fn decodes_every_type_exactly() {
    with_db(TYPES, |db| async move {
        // A session time zone far from UTC: timestamptz must still come out in UTC.
        let mut src = db.source("SET TimeZone = 'Asia/Kolkata'; SET DateStyle = 'SQL, DMY'; SET IntervalStyle = 'sql_standard'").await;
        let tbl = table("all_types");
        let schema = src.table_schema(&tbl).await.unwrap();
        let rows = page_through(&mut src, &tbl, &schema.columns, &[0], 4).await;
        let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
        let got = |id: usize, name: &str| -> Value {
            let i = names.iter().position(|n| *n == name).unwrap_or_else(|| panic!("no column {name}"));
            rows[id - 1][i].clone()
        };
        let expect_row = |id: usize, expected: &[(&str, Value)]| {
            for (name, want) in expected {
                let v = got(id, name);
                let same = match (&v, want) {
                    (Value::Real(a), Value::Real(b)) => a.to_bits() == b.to_bits(),
                    _ => v == *want,
                };
                assert!(same, "row {id} column {name}: got {v:?}, want {want:?}");
            }
        };
        use Value::{Blob, Integer, Null, Real};
        assert_eq!(rows.len(), 6);
        expect_row(
            1,
            &[
                ("id", Integer(1)),
                ("i2", Integer(32767)),
                ("i4", Integer(2147483647)),
                ("i8", Integer(i64::MAX)),
                ("o", Integer(4294967295)),
                ("num", t("1234567890123456789012345678901234567890.0123456789")),
                ("num2", t("12.30")),
                ("mon", t("92233720368547758.07")),
                ("r", Real(f64::from(0.1f32))),
                ("d", Real(0.1)),
                ("b", Integer(1)),
                ("by", Blob(vec![0, 255, 0])),
                ("tz", t("2026-01-02T03:04:05.123456Z")),
                ("ts", t("2026-01-02T03:04:05.000000")),
                ("dt", t("2026-01-02")),
                ("tm", t("24:00:00.000000")),
                ("ttz", t("04:05:06.789000+05:30")),
                ("iv", t("P1Y2M3DT4H5M6.5S")),
                ("u", t("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")),
                ("e", t("happy")),
                ("j", t(r#"{"n": 123456789012345678901234567890, "s": "x"}"#)),
                ("jb", t(r#"{"a": 123456789012345678901234567890, "b": [1, 2.50], "aa": {"x": null}}"#)),
                ("ia", t("[[1,2],[3,4]]")),
                ("ta", t(r#"["a\"b","c,d","",null,"\\"]"#)),
                ("txt", t("")),
                ("ch", t("ab  ")),
                ("vc", t("héllo")),
                ("nm", t("pg_name")),
                ("ip", t("192.168.0.1/24")),
                ("dom", Integer(5)),
                ("qc", t("x")),
                ("bits", t("1010")),
                ("pt", t("(1,2)")),
                ("x", t("<a>1</a>")),
                ("tsv", t("'a' 'b':1")),
                ("tz3", t("2026-01-02T03:04:05.123000Z")),
            ],
        );
        expect_row(
            2,
            &[
                ("i2", Integer(-32768)),
                ("i4", Integer(-2147483648)),
                ("i8", Integer(i64::MIN)),
                ("o", Integer(0)),
                ("num", t("NaN")),
                ("num2", t("-0.50")),
                ("mon", t("-1.50")),
                ("r", Real(f64::from(f32::NAN))),
                ("d", Real(1e308)),
                ("b", Integer(0)),
                ("by", Blob(vec![])),
                ("tz", t("infinity")),
                ("ts", t("-infinity")),
                ("dt", t("-infinity")),
                ("tm", t("13:07:09.000050")),
                ("ttz", t("00:00:00.000000-01:00")),
                ("iv", t("P-1D")),
                ("u", t("00000000-0000-0000-0000-000000000000")),
                ("e", t("sad")),
                ("j", t("[]")),
                ("jb", t("{}")),
                ("ia", t("[1,null,3]")),
                ("ta", t("[]")),
                ("txt", t("é😀\n")),
                ("ch", Null),
                ("vc", t("")),
                ("ip", t("::1/128")),
                ("qc", t(" ")),
                ("bits", t("0000")),
                ("pt", t("(-1.5,2e-10)")),
                ("x", t("")),
                ("tsv", t("")),
            ],
        );
        expect_row(
            3,
            &[
                ("num", t("-0.000000000000000000010")),
                ("r", Real(f64::NEG_INFINITY)),
                ("d", Real(f64::INFINITY)),
                ("tz", t("-004713-11-24T00:00:00.000000Z")),
                ("ts", t("-000043-03-15T12:00:00.000000")),
                ("dt", t("-000043-03-15")),
                ("iv", t("PT0S")),
                ("txt", Null),
            ],
        );
        expect_row(
            4,
            &[
                ("num", t("Infinity")),
                ("r", Real(f64::from(1e-45f32))),
                ("d", Real(5e-324)),
                ("tz", t("+294276-12-31T23:59:59.999999Z")),
                ("ts", t("+010000-01-01T00:00:00.000000")),
                ("dt", t("+010000-01-01")),
                ("iv", t("P-1Y-2M3DT-4H-5M-6.5S")),
            ],
        );
        expect_row(
            5,
            &[
                ("d", Real(-0.0)),
                ("tz", t("1999-12-31T23:59:59.999999Z")),
                ("ts", t("1970-01-01T00:00:00.000000")),
                ("dt", t("0001-01-01")),
                ("iv", t("PT-0.5S")),
            ],
        );
        // Row 6: NULL everywhere but the key, whatever the type.
        assert!(rows[5][1..].iter().all(|v| *v == Null), "{:?}", rows[5]);
        assert_eq!(rows[5][0], Integer(6));

        // The same text PostgreSQL prints for each of them with IntervalStyle iso_8601.
        db.sql.batch_execute("SET IntervalStyle = iso_8601").await.unwrap();
        let pg: Vec<Option<String>> =
            db.sql.query("SELECT iv::text FROM all_types ORDER BY id", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
        let ours: Vec<Option<String>> = (1..=6).map(|id| got(id, "iv").into_string()).collect();
        assert_eq!(ours, pg);
    })
    .await;
}

const PAGING: &str = r#"
CREATE TABLE ev (id bigint PRIMARY KEY, ts timestamptz(1), v text);
-- 1000 rows share one cursor value, inserted out of key order.
INSERT INTO ev SELECT (g * 7919) % 1000 + 1, '2026-01-01 00:00:00.5+00', 'same' FROM generate_series(0, 999) g;
INSERT INTO ev SELECT 1000 + g, '2026-01-01 00:00:00.5+00'::timestamptz + (g - 15) * interval '1 second', 'spread'
  FROM generate_series(1, 30) g WHERE g <> 15;
INSERT INTO ev SELECT 2000 + g, NULL, 'null cursor' FROM generate_series(1, 5) g;
"#;

#[tokio::test]
async fn keyset_paging_visits_every_row_once() {
    with_db(PAGING, |db| async move {
        let mut src = db.source("SET TimeZone = 'America/New_York'").await;
        let tbl = table("ev");
        let cols = src.table_schema(&tbl).await.unwrap().columns;
        let rows = page_through(&mut src, &tbl, &cols, &[1, 0], 7).await;
        let ids: Vec<i64> = rows.iter().map(|r| r[0].as_i64().unwrap()).collect();
        assert_eq!(ids.len(), 1029);
        let unique: HashSet<i64> = ids.iter().copied().collect();
        assert_eq!(unique.len(), 1029, "a row came twice");
        let want: HashSet<i64> = (1..=1000).chain((1001..=1030).filter(|&i| i != 1015)).collect();
        assert_eq!(unique, want);
        // Keyset order: the ISO text of these years sorts like the timestamps themselves.
        let keys: Vec<(String, i64)> = rows.iter().map(|r| (r[1].as_str().unwrap().to_string(), r[0].as_i64().unwrap())).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "not in keyset order");
        assert_eq!(src.count_nulls(&tbl, &cols[1]).await.unwrap(), 5);

        // Lookback: `from` is an inclusive lower bound on the cursor.
        let from = t("2026-01-01T00:00:00.500000Z");
        let page = PageRequest { table: &tbl, columns: &cols, order: &[1, 0], after: None, from: Some(&from), limit: 5000 };
        let rows = src.fetch_page(&page).await.unwrap();
        assert_eq!(rows.len(), 1000 + 15);
        assert_eq!(rows[0][1], from);
        assert_eq!(rows[0][0], Value::Integer(1));
        assert_eq!(rows[1000][1], t("2026-01-01T00:00:01.500000Z"));
        // A bound finer than the column's precision: rounded to timestamptz(1) it would be 14.5
        // and take the row at 14.5 too.
        let from = t("2026-01-01T00:00:14.54Z");
        let page = PageRequest { table: &tbl, columns: &cols, order: &[1, 0], after: None, from: Some(&from), limit: 5000 };
        let rows = src.fetch_page(&page).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0][0], Value::Integer(1030));
        // The same statement again (from the cache) with other values.
        let from = t("2026-01-01T00:00:13.5Z");
        let page = PageRequest { table: &tbl, columns: &cols, order: &[1, 0], after: None, from: Some(&from), limit: 5000 };
        assert_eq!(src.fetch_page(&page).await.unwrap().len(), 3);
    })
    .await;
}

const KEYS: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE k (id int PRIMARY KEY, i8 bigint, num numeric, num2 numeric(6,1), r real, d double precision,
  b boolean, by bytea, tz timestamptz, tz0 timestamp(0) with time zone, ts timestamp, dt date, tm time,
  ttz timetz, iv interval, ivym interval year to month, u uuid, e mood, txt text, ch char(3), mon money, vc varchar(3));
INSERT INTO k VALUES
 (1, -9223372036854775808, '10', 1.5, 'NaN', 'Infinity', false, '', 'infinity', '2026-01-01 00:00:01', '-infinity', '0044-03-15 BC',
     '00:00', '12:00+05', '1 day', '1 year', '00000000-0000-0000-0000-000000000001', 'happy', '', 'a', '-1.5', ''),
 (2, 9223372036854775807, '9', 1.5, '-Infinity', 0.1, true, '\x00', '-infinity', '2026-01-01 00:00:01', 'infinity', '10000-01-01',
     '24:00', '12:00+05', '-1 day', '1 month', 'ffffffff-ffff-ffff-ffff-ffffffffffff', 'sad', 'a', 'ab', '92233720368547758.07', 'abc'),
 (3, 0, '-0.00000000000000000001', -2.5, 0.1, 1e308, true, '\xff', '4714-11-24 00:00:00+00 BC', '2026-01-01', '0044-03-15 12:00 BC', 'infinity',
     '12:34:56.789012', '12:00-05', 'PT0.000001S', '-1 year', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'ok', 'é', 'ab', '0', 'ab'),
 (4, 0, '123456789012345678901234567890.5', 1.5, 0.1, 5e-324, false, '\x0000', '294276-12-31 23:59:59.999999+00', '2026-01-01', '10000-01-01 00:00', '-infinity',
     '00:00:00.000001', '11:00+04', '1 mon -1 day', '0', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'happy', 'A', 'a', '0.01', 'a'),
 (5, NULL, 'NaN', NULL, '-0', -1e-300, NULL, '\x00ff', '2026-01-02 03:04:05.123456+00', NULL, '2026-01-02 03:04:05.000001', '2026-01-02',
     NULL, NULL, '-0.5 seconds', NULL, NULL, NULL, 'a b', NULL, NULL, NULL),
 (6, 1, 'Infinity', 100.1, 3.4e38, '-0', false, '\x01', '2026-01-02 03:04:05.123457+00', '1999-12-31 23:59:59', '0001-01-01', '0001-01-01',
     '23:59:59.999999', '00:00+00', '1 year 2 months', '-1 month', '12345678-0000-0000-0000-000000000000', 'sad', 'ä', 'abc', '-0.01', 'b');
"#;

/// Pages with a limit of 1 on (column, id): each key value must bind back as exactly itself, or
/// the scan would skip or repeat rows. The expected order is the server's own.
#[tokio::test]
async fn every_key_type_binds_back_exactly() {
    with_db(KEYS, |db| async move {
        let mut src = db.source("SET TimeZone = 'Pacific/Chatham'").await;
        let tbl = table("k");
        let cols = src.table_schema(&tbl).await.unwrap().columns;
        assert!(cols.len() > 20);
        for (i, c) in cols.iter().enumerate().skip(1) {
            let sql = format!("SELECT id FROM k WHERE \"{0}\" IS NOT NULL ORDER BY \"{0}\", id", c.name);
            let want: Vec<i64> = db.sql.query(&sql, &[]).await.unwrap().iter().map(|r| r.get::<_, i32>(0).into()).collect();
            for limit in [1, 2] {
                let rows = page_through(&mut src, &tbl, &cols, &[i, 0], limit).await;
                let got: Vec<i64> = rows.iter().map(|r| r[0].as_i64().unwrap()).collect();
                assert_eq!(got, want, "column {} ({}), limit {limit}", c.name, c.source_type);
            }
            // `from` set to each row's own value must include that row.
            let rows = page_through(&mut src, &tbl, &cols, &[i, 0], 10).await;
            for r in &rows {
                let page = PageRequest { table: &tbl, columns: &cols, order: &[i, 0], after: None, from: Some(&r[i]), limit: 10 };
                let from_rows = src.fetch_page(&page).await.unwrap();
                assert!(from_rows.iter().any(|fr| fr[0] == r[0]), "column {}: from {:?} excludes its own row", c.name, r[i]);
            }
        }
    })
    .await;
}

const ORDERING: &str = r#"
CREATE TABLE amounts (amount numeric PRIMARY KEY, "_v0" text, tags text[]);
INSERT INTO amounts SELECT g, 'x' || g, ARRAY[g::text] FROM generate_series(1, 25) g;
"#;

/// A numeric key is selected as text; the page must still be ordered by its numeric value.
#[tokio::test]
async fn cast_columns_keep_their_own_order() {
    with_db(ORDERING, |db| async move {
        let mut src = db.source("").await;
        let tbl = table("amounts");
        let s = src.table_schema(&tbl).await.unwrap();
        assert_eq!(s.primary_key, vec!["amount"]);
        let rows = page_through(&mut src, &tbl, &s.columns, &[0], 4).await;
        let got: Vec<Value> = rows.iter().map(|r| r[0].clone()).collect();
        let want: Vec<Value> = (1..=25).map(|i| t(&i.to_string())).collect();
        assert_eq!(got, want);
        assert_eq!(rows[9], vec![t("10"), t("x10"), t("[\"10\"]")]);
    })
    .await;
}

#[tokio::test]
async fn origin_errors_name_the_source_and_the_server_reason() {
    with_db("CREATE TABLE t (id int PRIMARY KEY, v text);", |db| async move {
        let mut src = db.source("").await;
        let tbl = table("t");
        let cols = vec![col("id", "integer", Affinity::Integer, false), col("missing", "text", Affinity::Text, true)];
        let page = PageRequest { table: &tbl, columns: &cols, order: &[0], after: None, from: None, limit: 10 };
        let e = src.fetch_page(&page).await.unwrap_err();
        assert_eq!(e.status(), 502);
        assert!(e.message().contains("postgres via url_secret PG_TEST_URL"), "{e}");
        assert!(e.message().contains("42703") && e.message().contains("missing"), "{e}");
        assert_eq!(src.describe_origin(), "postgres via url_secret PG_TEST_URL");

        // A column retyped under a cached statement fails once, then the statement is prepared again.
        db.sql.batch_execute("INSERT INTO t VALUES (1, '1.5')").await.unwrap();
        let cols = src.table_schema(&tbl).await.unwrap().columns;
        let page = PageRequest { table: &tbl, columns: &cols, order: &[0], after: None, from: None, limit: 10 };
        assert_eq!(src.fetch_page(&page).await.unwrap(), vec![vec![Value::Integer(1), t("1.5")]]);
        db.sql.batch_execute("ALTER TABLE t ALTER COLUMN v TYPE double precision USING v::double precision").await.unwrap();
        let e = src.fetch_page(&page).await.unwrap_err();
        assert!(e.message().contains("0A000"), "{e}");
        let cols = src.table_schema(&tbl).await.unwrap().columns;
        assert_eq!(cols[1].affinity, Affinity::Real);
        let page = PageRequest { table: &tbl, columns: &cols, order: &[0], after: None, from: None, limit: 10 };
        assert_eq!(src.fetch_page(&page).await.unwrap(), vec![vec![Value::Integer(1), Value::Real(1.5)]]);

        // A connection that the server ended: an IO-level message, still naming the source.
        let pid: i32 = db
            .sql
            .query_one("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        db.sql.execute("SELECT pg_terminate_backend($1)", &[&pid]).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let e = src.count_nulls(&tbl, &cols[0]).await.unwrap_err();
        assert_eq!(e.status(), 502);
        assert!(e.message().starts_with("source postgres via url_secret PG_TEST_URL: "), "{e}");
    })
    .await;
}

#[tokio::test]
async fn url_with_a_password_connects_and_errors_stay_clean() {
    // Trust auth accepts any password: this checks that a parsed URL with one connects, and that
    // it never reaches an error message.
    let (config, host, port) = parse_url("postgres://postgres:hunter2-secret@127.0.0.1:5432/test?sslmode=disable").unwrap();
    let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await.unwrap();
    let (client, conn) = config.connect_raw(stream, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut src = PostgresSource::new(client, "postgres via url_secret PG_URL".into());
    let e = src.table_schema(&table("definitely_missing_table")).await.unwrap_err();
    assert!(!e.message().contains("hunter2"), "{e}");
    // pg_catalog is on every search path, so a catalog table resolves with no schema given.
    let s = src.table_schema(&table("pg_class")).await.unwrap();
    assert!(s.columns.iter().any(|c| c.name == "relname"));
}

const RECONCILE: &str = r#"
CREATE TABLE nums (id bigint PRIMARY KEY, v text);
INSERT INTO nums SELECT g, 'v' FROM generate_series(1, 2000) g;
INSERT INTO nums VALUES (9007199254740993, 'a'), (9223372036854775807, 'b'), (-9223372036854775808, 'c'), (9007199254740992, 'd');
CREATE TABLE words (k text COLLATE "en-x-icu" PRIMARY KEY);
INSERT INTO words VALUES ('a'), ('B'), ('b'), ('C'), ('a '), ('a!'), ('é'), ('Z'), ('z'), ('e'), (''), ('😀'), ('ab'), ('a' || chr(9)),
  ('q"u\o,te{}'), ('NULL'), (' {x} ');
CREATE TABLE amounts (a numeric PRIMARY KEY);
INSERT INTO amounts VALUES (9), (10.5), (100), (-1), (-10), (0.001), (12345678901234567890.123);
CREATE TABLE pairs (t int, name varchar(20) COLLATE "en-x-icu", day date, PRIMARY KEY (t, name, day));
INSERT INTO pairs SELECT g % 3, chr(65 + g % 5) || CASE WHEN g % 2 = 0 THEN lower(chr(65 + g % 7)) ELSE '' END, date '2026-01-01' + g % 4
  FROM generate_series(1, 200) g ON CONFLICT DO NOTHING;
"#;

/// The keys of `tbl` as the replica holds them, through `fetch_page`.
async fn keys_of(src: &mut PostgresSource, tbl: &str, columns: &[Column]) -> Vec<Vec<Value>> {
    let order: Vec<usize> = (0..columns.len()).collect();
    page_through(src, &table(tbl), columns, &order, 500).await
}

#[tokio::test]
async fn key_ranges_count_as_the_replica_orders_and_keys_are_found_by_the_origins_equality() {
    with_db(RECONCILE, |db| async move {
        let mut src = db.source("").await;
        let int_key = [col("id", "bigint", Affinity::Integer, false)];
        let text_key = [col("k", "text", Affinity::Text, false)];
        let numeric_key = [col("a", "numeric", Affinity::Text, false)];
        let pair_key = [
            col("t", "integer", Affinity::Integer, false),
            col("name", "character varying(20)", Affinity::Text, false),
            col("day", "date", Affinity::Text, false),
        ];
        for (tbl, key, steps) in [
            ("nums", &int_key[..], &[1usize, 7, 500, 5000][..]),
            ("words", &text_key[..], &[1, 2, 3][..]),
            ("amounts", &numeric_key[..], &[1, 2, 3][..]),
            ("pairs", &pair_key[..], &[1, 4, 9][..]),
        ] {
            let keys = edge_replica::test_support::replica_order(&keys_of(&mut src, tbl, key).await);
            for &step in steps {
                edge_replica::test_support::check_key_ranges(&mut src, &table(tbl), key, &keys, step).await;
            }
        }
        // Text in byte order is not the column's order: under en-x-icu 'a' < 'B', in bytes 'B' < 'a'.
        let keys = edge_replica::test_support::replica_order(&keys_of(&mut src, "words", &text_key).await);
        let at = |k: &str| keys.iter().position(|x| x[0] == t(k)).unwrap();
        assert!(at("B") < at("a") && at("Z") < at("a") && at("a") < at("b"));

        // Lookups use the origin's equality: the key, exactly, in its type.
        let found = |keys: &[Value]| keys.iter().map(|k| vec![k.clone()]).collect::<Vec<_>>();
        let nums =
            found(&[Value::Integer(9_007_199_254_740_993), Value::Integer(9_007_199_254_740_994), Value::Integer(5), Value::Integer(2001)]);
        assert_eq!(src.absent_keys(&table("nums"), &int_key, &nums).await.unwrap(), [1, 3]);
        let words = found(&[t("a"), t("A"), t("a "), t("é"), t("e\u{301}"), t("q"), t("q\"u\\o,te{}"), t("NULL"), t(" {x} "), t("null")]);
        assert_eq!(src.absent_keys(&table("words"), &text_key, &words).await.unwrap(), [1, 4, 5, 9]);
        let amounts = found(&[t("10.5"), t("9"), t("8"), t("12345678901234567890.123")]);
        assert_eq!(src.absent_keys(&table("amounts"), &numeric_key, &amounts).await.unwrap(), [2]);
        let pairs = vec![vec![Value::Integer(0), t("Bc"), t("2026-01-03")], vec![Value::Integer(0), t("Bc"), t("2026-01-04")]];
        let present = src
            .fetch_page(&PageRequest { table: &table("pairs"), columns: &pair_key, order: &[0, 1, 2], after: None, from: None, limit: 1 })
            .await
            .unwrap();
        let mut asked = present.clone();
        asked.extend(pairs);
        let absent = src.absent_keys(&table("pairs"), &pair_key, &asked).await.unwrap();
        assert!(!absent.contains(&0), "{absent:?}");
        // A failed statement leaves the connection as it was (its transaction rolled back).
        let e = src.absent_keys(&table("missing"), &int_key, &nums).await.unwrap_err();
        assert!(e.message().contains("does not exist"), "{e}");
        assert_eq!(src.absent_keys(&table("nums"), &int_key, &nums).await.unwrap(), [1, 3]);
        // A large request is split under the parameter limit and still counts every range.
        let all: Vec<Vec<Value>> = (1..=2000).map(|i| vec![Value::Integer(i)]).collect();
        assert_eq!(src.absent_keys(&table("nums"), &int_key, &all).await.unwrap(), Vec::<usize>::new());
    })
    .await;
}
