//! The MySQL source against a real MariaDB (127.0.0.1:3306, root without a password).
//!
//! Every test creates its own database `er_my_<random>` and drops it afterwards, also when the
//! test fails.

use edge_replica::replica_sql::jsonb_rows;
use edge_replica::source::mysql::client::{ClientError, Conn, Timer};
use edge_replica::source::mysql::{connect, parse_url, ConnectOptions, MysqlSource};
use edge_replica::source::{Affinity, Column, PageRequest, Source, TableName};
use edge_replica::value::Value;
use futures_util::FutureExt;
use std::collections::HashSet;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use tokio::net::TcpStream;

const SERVER_URL: &str = "mysql://root@127.0.0.1:3306?ssl-mode=disable";
const ORIGIN: &str = "mysql via url_secret MY_TEST_URL";

struct TokioTimer;
impl Timer for TokioTimer {
    fn sleep(&self, ms: u64) -> Pin<Box<dyn Future<Output = ()>>> {
        Box::pin(tokio::time::sleep(std::time::Duration::from_millis(ms)))
    }
}

type NoTls = fn(TcpStream) -> std::future::Ready<Result<TcpStream, String>>;

async fn open(opts: &ConnectOptions) -> Result<Conn<TcpStream>, ClientError> {
    let stream = TcpStream::connect((opts.host.as_str(), opts.port)).await.expect("MariaDB at 127.0.0.1:3306");
    connect::<_, NoTls, _>(stream, Box::new(TokioTimer), opts, None).await
}

fn options(db: Option<&str>) -> ConnectOptions {
    let mut o = parse_url(SERVER_URL).expect("test URL parses");
    o.credentials.database = db.map(str::to_string);
    o
}

async fn conn(db: Option<&str>) -> Conn<TcpStream> {
    open(&options(db)).await.expect("connect")
}

fn random_suffix() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

struct Db {
    name: String,
    /// A connection of its own for setup SQL, separate from the source's.
    sql: Conn<TcpStream>,
}

impl Db {
    async fn source(&self) -> MysqlSource<TcpStream> {
        MysqlSource::new(conn(Some(&self.name)).await, ORIGIN.into(), Some(self.name.clone()))
    }
    async fn exec(&mut self, statements: &[&str]) {
        for s in statements {
            self.sql.execute_simple(s).await.unwrap_or_else(|e| panic!("{s}: {e}"));
        }
    }
}

/// Runs `body` in a fresh database set up by `setup`, then drops the database whatever happened.
async fn with_db<F, Fut>(setup: &[&str], body: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut admin = conn(None).await;
    let name = format!("er_my_{}", random_suffix());
    admin.execute_simple(&format!("CREATE DATABASE {name} CHARACTER SET utf8mb4")).await.expect("create database");
    let outcome = AssertUnwindSafe(async {
        let mut db = Db { name: name.clone(), sql: conn(Some(&name)).await };
        db.exec(setup).await;
        body(db).await
    })
    .catch_unwind()
    .await;
    admin.execute_simple(&format!("DROP DATABASE {name}")).await.expect("drop database");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

fn table(schema: Option<&str>, name: &str) -> TableName {
    TableName { schema: schema.map(str::to_string), name: name.into() }
}

fn col(name: &str, source_type: &str, affinity: Affinity, nullable: bool) -> Column {
    Column { name: name.into(), source_type: source_type.into(), affinity, nullable }
}

fn t(s: &str) -> Value {
    Value::text(s)
}

/// Every row of `tbl` through `fetch_page`, ordered by `order`, `limit` rows at a time.
async fn page_through(
    src: &mut MysqlSource<TcpStream>,
    tbl: &TableName,
    columns: &[Column],
    order: &[usize],
    limit: usize,
) -> Vec<Vec<Value>> {
    let mut all: Vec<Vec<Value>> = Vec::new();
    loop {
        let after: Option<Vec<Value>> = all.last().map(|r| order.iter().map(|&i| r[i].clone()).collect());
        let page = PageRequest { table: tbl, columns, order, after: after.as_deref(), from: None, limit };
        let rows = src.fetch_page(&page).await.expect("fetch_page");
        assert!(rows.len() <= limit);
        // The copy's direct path (binary cells straight into the batch text) writes what the
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

const INTROSPECTION: &[&str] = &[
    "CREATE TABLE items (id BIGINT UNSIGNED NOT NULL, kind VARCHAR(10) NOT NULL, amount DECIMAL(12,2), flag TINYINT(1) NOT NULL DEFAULT 0,
       created TIMESTAMP(3) NULL, raw VARBINARY(16), r FLOAT, PRIMARY KEY (kind, id))",
    "CREATE TABLE `Order Items` (`select` INT PRIMARY KEY, `Q``ty` INT NOT NULL, `Mixed Case` TEXT)",
    "INSERT INTO `Order Items` VALUES (2, 20, NULL), (1, 10, 'one'), (3, 30, NULL)",
    "CREATE TABLE log (msg TEXT, at DATETIME)",
    "CREATE VIEW items_view AS SELECT id, kind FROM items",
];

#[tokio::test]
async fn introspects_columns_types_and_keys() {
    with_db(INTROSPECTION, |db| async move {
        let mut src = db.source().await;
        let s = src.table_schema(&table(None, "items")).await.unwrap();
        use Affinity::*;
        assert_eq!(
            s.columns,
            vec![
                col("id", "bigint(20) unsigned", Any, false),
                col("kind", "varchar(10)", Text, false),
                col("amount", "decimal(12,2)", Text, true),
                col("flag", "tinyint(1)", Integer, false),
                col("created", "timestamp(3)", Text, true),
                col("raw", "varbinary(16)", Blob, true),
                col("r", "float", Real, true),
            ]
        );
        assert_eq!(s.primary_key, vec!["kind", "id"]);
        // `db.table` names the database explicitly, here the connection's own.
        let q = src.table_schema(&table(Some(&db.name), "items")).await.unwrap();
        assert_eq!(q, s);
        // Another database than the connection's: information_schema knows its tables too.
        let other = src.table_schema(&table(Some("mysql"), "db")).await.unwrap();
        assert!(other.primary_key.len() >= 2, "{other:?}");

        let oi_name = table(None, "Order Items");
        let oi = src.table_schema(&oi_name).await.unwrap();
        assert_eq!(
            oi.columns,
            vec![col("select", "int(11)", Integer, false), col("Q`ty", "int(11)", Integer, false), col("Mixed Case", "text", Text, true)]
        );
        assert_eq!(oi.primary_key, vec!["select"]);
        let rows = page_through(&mut src, &oi_name, &oi.columns, &[0], 2).await;
        assert_eq!(
            rows,
            vec![
                vec![Value::Integer(1), Value::Integer(10), t("one")],
                vec![Value::Integer(2), Value::Integer(20), Value::Null],
                vec![Value::Integer(3), Value::Integer(30), Value::Null],
            ]
        );
        assert_eq!(src.count_nulls(&oi_name, &oi.columns[2]).await.unwrap(), 2);

        assert!(src.table_schema(&table(None, "log")).await.unwrap().primary_key.is_empty());
        let view = src.table_schema(&table(None, "items_view")).await.unwrap();
        assert_eq!(view.columns, vec![col("id", "bigint(20) unsigned", Any, false), col("kind", "varchar(10)", Text, false)]);
        assert!(view.primary_key.is_empty());

        // Names are exact: MariaDB on Linux keeps table names case-sensitive.
        for (schema, name) in [(None, "nope"), (None, "ITEMS"), (Some("mysql"), "items"), (Some("er_my_nope"), "items")] {
            let e = src.table_schema(&table(schema, name)).await.unwrap_err();
            assert!(e.is_source(), "{e}");
            assert_eq!(e.status(), 502);
            assert!(e.message().contains("does not exist"), "{e}");
            assert!(e.message().starts_with(&format!("source {ORIGIN}: ")), "{e}");
        }
        let e = src.table_schema(&table(None, "nope")).await.unwrap_err();
        assert_eq!(e.message(), format!("source {ORIGIN}: table `nope` does not exist in database `{}`", db.name));

        // A page of a table that vanished: the server's own error, code and state.
        let cols = [col("id", "int", Integer, false)];
        let page = PageRequest { table: &table(None, "gone"), columns: &cols, order: &[0], after: None, from: None, limit: 5 };
        let e = src.fetch_page(&page).await.unwrap_err();
        assert_eq!(e.message(), format!("source {ORIGIN}: MySQL error 1146 (42S02): Table '{}.gone' doesn't exist", db.name));
        // ...and the connection is still good after it.
        assert_eq!(src.count_nulls(&oi_name, &oi.columns[0]).await.unwrap(), 0);

        // No database in the URL and none in the name.
        let mut nodb = MysqlSource::new(conn(None).await, ORIGIN.into(), None);
        let e = nodb.table_schema(&table(None, "items")).await.unwrap_err();
        assert!(e.message().contains("names no database"), "{e}");
    })
    .await;
}

const TYPES: &[&str] = &[
    "CREATE TABLE all_types (
      id INT PRIMARY KEY,
      u64 BIGINT UNSIGNED, i64 BIGINT, i32 INT, u32 INT UNSIGNED, i24 MEDIUMINT, i16 SMALLINT, i8 TINYINT, u8 TINYINT UNSIGNED,
      dec65 DECIMAL(65,30), dec2 DECIMAL(12,2), f FLOAT, d DOUBLE,
      dt DATETIME(6), dt0 DATETIME, dt3 DATETIME(3), ts TIMESTAMP(6) NULL, ts0 TIMESTAMP NULL, tm TIME, tm6 TIME(6), dte DATE, y YEAR,
      j JSON, bl BLOB, bin BINARY(4), vb VARBINARY(8), b1 BIT(1), b10 BIT(10), b64 BIT(64), flag TINYINT(1), bo BOOLEAN,
      e ENUM('small','Medium','large'), s SET('a','b','c'), txt TEXT, vc VARCHAR(20), ch CHAR(5), lt LONGTEXT,
      lat VARCHAR(10) CHARACTER SET latin1, uu UUID
    )",
    // The writer's session is not UTC: TIMESTAMPs must still come out in UTC.
    "SET time_zone = '+05:30'",
    "SET sql_mode = ''",
    "INSERT INTO all_types VALUES (1,
      18446744073709551615, -9223372036854775808, -2147483648, 4294967295, -8388608, -32768, -128, 255,
      '-12345678901234567890123456789012345.123456789012345678901234567891', 12.3, 0.1, 0.1,
      '2026-01-02 03:04:05.123456', '2026-01-02 03:04:05', '2026-01-02 03:04:05.120', '2026-01-02 08:34:05.654321', '2026-01-02 05:30:00',
      '-838:59:59', '838:59:59.000000', '2026-01-02', 2026,
      '{\"big\": 123456789012345678901234567890, \"f\": 1e400, \"s\": \"é\"}', x'00FF00', x'610062', x'', b'1', b'1000000001',
      b'1111111111111111111111111111111111111111111111111111111111111111', 1, TRUE,
      'Medium', 'a,c', '😀 emoji 🎉', '', 'ab', REPEAT('x', 70000), 'été', '123e4567-e89b-12d3-a456-426614174000')",
    "INSERT INTO all_types VALUES (2,
      9223372036854775807, 9223372036854775807, 2147483647, 0, 8388607, 32767, 127, 0,
      '0.000000000000000000000000000001', -0.5, -3.4028235e38, 1.7976931348623157e308,
      '0000-00-00 00:00:00', '1000-01-01 00:00:00', '9999-12-31 23:59:59.999', '1970-01-01 05:30:01.000001', '2038-01-19 08:44:07',
      '00:00:00', '-00:00:00.000001', '0000-00-00', 0,
      '[]', '', x'00000000', x'FF', b'0', b'0', b'0', 0, FALSE,
      '', '', 'line\\nbreak\\ttab ''q'' \\\\', 'NULL', '', '', '', '00000000-0000-0000-0000-000000000000')",
    "INSERT INTO all_types (id, u64) VALUES (3, 9223372036854775808)",
];

#[tokio::test]
async fn decodes_every_type_exactly() {
    with_db(TYPES, |db| async move {
        let mut src = db.source().await;
        let tbl = table(None, "all_types");
        let schema = src.table_schema(&tbl).await.unwrap();
        let rows = page_through(&mut src, &tbl, &schema.columns, &[0], 2).await;
        assert_eq!(rows.len(), 3);
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
        expect_row(
            1,
            &[
                ("u64", t("18446744073709551615")),
                ("i64", Integer(i64::MIN)),
                ("i32", Integer(-2147483648)),
                ("u32", Integer(4294967295)),
                ("i24", Integer(-8388608)),
                ("i16", Integer(-32768)),
                ("i8", Integer(-128)),
                ("u8", Integer(255)),
                ("dec65", t("-12345678901234567890123456789012345.123456789012345678901234567891")),
                ("dec2", t("12.30")),
                ("f", Real(0.1)),
                ("d", Real(0.1)),
                ("dt", t("2026-01-02T03:04:05.123456")),
                ("dt0", t("2026-01-02T03:04:05")),
                ("dt3", t("2026-01-02T03:04:05.120")),
                ("ts", t("2026-01-02T03:04:05.654321Z")),
                ("ts0", t("2026-01-02T00:00:00Z")),
                ("tm", t("-838:59:59")),
                ("tm6", t("838:59:59.000000")),
                ("dte", t("2026-01-02")),
                ("y", Integer(2026)),
                ("j", t(r#"{"big": 123456789012345678901234567890, "f": 1e400, "s": "é"}"#)),
                ("bl", Blob(vec![0, 0xFF, 0])),
                ("bin", Blob(vec![b'a', 0, b'b', 0])),
                ("vb", Blob(vec![])),
                ("b1", Integer(1)),
                ("b10", Integer(513)),
                ("b64", t("18446744073709551615")),
                ("flag", Integer(1)),
                ("bo", Integer(1)),
                ("e", t("Medium")),
                ("s", t("a,c")),
                ("txt", t("😀 emoji 🎉")),
                ("vc", t("")),
                ("ch", t("ab")),
                ("lt", t(&"x".repeat(70000))),
                ("lat", t("été")),
                ("uu", t("123e4567-e89b-12d3-a456-426614174000")),
            ],
        );
        expect_row(
            2,
            &[
                ("u64", Integer(i64::MAX)),
                ("i64", Integer(i64::MAX)),
                ("u32", Integer(0)),
                ("dec65", t("0.000000000000000000000000000001")),
                ("dec2", t("-0.50")),
                ("f", Real(-3.4028235e38)),
                ("d", Real(f64::MAX)),
                ("dt", t("0000-00-00T00:00:00.000000")),
                ("dt0", t("1000-01-01T00:00:00")),
                ("dt3", t("9999-12-31T23:59:59.999")),
                ("ts", t("1970-01-01T00:00:01.000001Z")),
                ("ts0", t("2038-01-19T03:14:07Z")),
                ("tm", t("00:00:00")),
                ("tm6", t("-00:00:00.000001")),
                ("dte", t("0000-00-00")),
                ("y", Integer(0)),
                ("j", t("[]")),
                ("bl", Blob(vec![])),
                ("bin", Blob(vec![0; 4])),
                ("vb", Blob(vec![0xFF])),
                ("b1", Integer(0)),
                ("b64", Integer(0)),
                ("flag", Integer(0)),
                ("e", t("")),
                ("s", t("")),
                ("txt", t("line\nbreak\ttab 'q' \\")),
                ("vc", t("NULL")),
                ("ch", t("")),
                ("uu", t("00000000-0000-0000-0000-000000000000")),
            ],
        );
        expect_row(3, &[("u64", t("9223372036854775808"))]);
        // Row 3: NULL everywhere but the key and u64.
        assert!(rows[2][2..].iter().all(|v| *v == Null), "{:?}", rows[2]);
        let affinity = |n: &str| schema.columns.iter().find(|c| c.name == n).unwrap().affinity;
        assert_eq!(affinity("u64"), Affinity::Any);
        assert_eq!(affinity("b64"), Affinity::Any);
        assert_eq!(affinity("b10"), Affinity::Integer);
        assert_eq!(affinity("j"), Affinity::Text);
        assert_eq!(affinity("bin"), Affinity::Blob);
    })
    .await;
}

#[tokio::test]
async fn keyset_pages_visit_every_row_once_across_equal_cursors() {
    let mut setup: Vec<String> = vec![
        "CREATE TABLE ev (id BIGINT PRIMARY KEY, ts DATETIME(6) NOT NULL, v VARCHAR(10), KEY (ts, id))".into(),
        // 1000 rows share one cursor value, inserted out of key order (seq_0_to_999: MariaDB's
        // sequence engine).
        "INSERT INTO ev SELECT (seq * 7919) % 1000 + 1, '2026-01-01 00:00:00.5', 'same' FROM seq_0_to_999".into(),
    ];
    // 30 rows around it, some earlier, some later, and two near 2^53 to catch float compares.
    for g in 0..30i64 {
        setup.push(format!(
            "INSERT INTO ev VALUES ({}, TIMESTAMPADD(SECOND, {}, '2026-01-01 00:00:00.5'), 'spread')",
            1000 + g + 1,
            g - 15
        ));
    }
    setup.push(
        "INSERT INTO ev VALUES (9007199254740993, '2026-01-01 00:00:00.5', 'big'), (9007199254740992, '2026-01-01 00:00:00.5', 'big')"
            .into(),
    );
    let setup: Vec<&str> = setup.iter().map(String::as_str).collect();
    with_db(&setup, |db| async move {
        let mut src = db.source().await;
        let tbl = table(None, "ev");
        let schema = src.table_schema(&tbl).await.unwrap();
        // Cursor first, then the key: what the engine asks for in incremental mode.
        let rows = page_through(&mut src, &tbl, &schema.columns, &[1, 0], 7).await;
        assert_eq!(rows.len(), 1032);
        let ids: HashSet<i64> = rows.iter().map(|r| r[0].as_i64().unwrap()).collect();
        assert_eq!(ids.len(), 1032, "a row was visited twice");
        let mut sorted = rows.clone();
        sorted.sort_by(|a, b| (a[1].as_str(), a[0].as_i64()).cmp(&(b[1].as_str(), b[0].as_i64())));
        assert_eq!(rows, sorted, "keyset order");
        assert!(rows.iter().any(|r| r[0] == Value::Integer(9007199254740993)));

        // `from` (lookback) is inclusive, in our text form with T and Z-less microseconds.
        let from = t("2026-01-01T00:00:10.500000");
        let page = PageRequest { table: &tbl, columns: &schema.columns, order: &[1, 0], after: None, from: Some(&from), limit: 100 };
        let later = src.fetch_page(&page).await.unwrap();
        assert_eq!(later.len(), 5, "{later:?}");
        assert_eq!(later[0][1], t("2026-01-01T00:00:10.500000"));
    })
    .await;
}

#[tokio::test]
async fn keyset_on_unsigned_decimal_enum_float_and_binary_keys() {
    let setup = &[
        "CREATE TABLE u (id BIGINT UNSIGNED PRIMARY KEY, v INT)",
        "INSERT INTO u VALUES (18446744073709551615, 1), (18446744073709551614, 2), (9223372036854775808, 3),
           (9223372036854775807, 4), (9223372036854775809, 5), (0, 6), (18446744073709551613, 7), (9007199254740993, 8)",
        "CREATE TABLE d (k DECIMAL(65,30) PRIMARY KEY)",
        "INSERT INTO d VALUES ('12345678901234567890123456789012345.000000000000000000000000000001'),
           ('12345678901234567890123456789012345.000000000000000000000000000002'),
           ('12345678901234567890123456789012345'), ('-1'), ('0.000000000000000000000000000001'), ('0')",
        "CREATE TABLE e (k ENUM('zulu','alpha','Mike') NOT NULL, n INT NOT NULL, PRIMARY KEY (k, n))",
        "INSERT INTO e VALUES ('alpha', 1), ('zulu', 2), ('Mike', 3), ('zulu', 1), ('alpha', 2)",
        "CREATE TABLE f (k FLOAT NOT NULL, n INT NOT NULL, PRIMARY KEY (k, n))",
        "INSERT INTO f VALUES (0.1, 1), (0.1, 2), (0.2, 1), (-1.5, 1), (3.4e38, 1), (0.30000001192092896, 1)",
        "CREATE TABLE b (k VARBINARY(4) PRIMARY KEY)",
        "INSERT INTO b VALUES (x'FF'), (x'00'), (x'C3'), (x'C3A9'), (x''), (x'80FF'), (x'7F')",
    ];
    with_db(setup, |db| async move {
        let mut src = db.source().await;
        for (name, limit) in [("u", 3), ("d", 2), ("e", 2), ("f", 2), ("b", 3)] {
            let tbl = table(None, name);
            let schema = src.table_schema(&tbl).await.unwrap();
            let order: Vec<usize> = schema.primary_key.iter().map(|k| schema.columns.iter().position(|c| &c.name == k).unwrap()).collect();
            let paged = page_through(&mut src, &tbl, &schema.columns, &order, limit).await;
            let all = page_through(&mut src, &tbl, &schema.columns, &order, 1000).await;
            assert_eq!(paged, all, "table {name}: paging by {limit} differs from one page");
            let distinct: HashSet<String> = paged.iter().map(|r| format!("{r:?}")).collect();
            assert_eq!(distinct.len(), paged.len(), "table {name}: a row twice");
            let count = match name {
                "u" => 8,
                "d" => 6,
                "e" => 5,
                "f" => 6,
                _ => 7,
            };
            assert_eq!(paged.len(), count, "table {name}: {paged:?}");
            if name == "u" {
                let ids: Vec<Value> = paged.iter().map(|r| r[0].clone()).collect();
                assert_eq!(
                    ids,
                    vec![
                        Value::Integer(0),
                        Value::Integer(9007199254740993),
                        Value::Integer(i64::MAX),
                        t("9223372036854775808"),
                        t("9223372036854775809"),
                        t("18446744073709551613"),
                        t("18446744073709551614"),
                        t("18446744073709551615"),
                    ]
                );
            }
            if name == "e" {
                // In the enum's own order, which is not the labels' alphabetical order.
                let keys: Vec<Value> = paged.iter().map(|r| r[0].clone()).collect();
                assert_eq!(keys, ["zulu", "zulu", "alpha", "alpha", "Mike"].map(t).to_vec());
            }
        }
    })
    .await;
}

#[tokio::test]
async fn login_errors_are_clear() {
    let mut o = options(None);
    o.credentials.password = b"definitely-wrong".to_vec();
    let e = open(&o).await.err().expect("wrong password must fail");
    let m = e.to_string();
    assert!(m.starts_with("MySQL error 1045 (28000): Access denied for user 'root'"), "{m}");
    assert!(!m.contains("definitely-wrong"));

    let mut o = options(Some("er_my_no_such_database"));
    o.credentials.password.clear();
    let e = open(&o).await.err().expect("unknown database must fail");
    assert!(e.to_string().contains("1049") && e.to_string().contains("er_my_no_such_database"), "{e}");

    // Something that accepts the connection but never speaks: the greeting read times out.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        drop(s);
    });
    let mut o = options(None);
    o.port = port;
    o.timeout_ms = 300;
    let started = std::time::Instant::now();
    let e = open(&o).await.err().expect("a silent server must fail");
    assert!(e.to_string().contains(&format!("no MySQL greeting from 127.0.0.1:{port}")), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    hold.abort();
}

/// A TCP proxy to MariaDB that forwards the first `budget` bytes the server sends, then
/// either hangs up (`stall == false`) or keeps the connection open and silent.
async fn cutting_proxy(budget: usize, stall: bool) -> (u16, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let server = TcpStream::connect("127.0.0.1:3306").await.unwrap();
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        let up = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut cr, &mut sw).await;
        });
        let mut left = budget;
        let mut buf = vec![0u8; 16 * 1024];
        while left > 0 {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n.min(left),
            };
            if cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
            left -= n;
        }
        if stall {
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        }
        up.abort();
    });
    (port, task)
}

#[tokio::test]
async fn connection_lost_or_stalled_mid_result_fails_fast() {
    let setup =
        &["CREATE TABLE wide (id INT PRIMARY KEY, body VARCHAR(200))", "INSERT INTO wide SELECT seq, REPEAT('x', 200) FROM seq_1_to_20000"];
    with_db(setup, |db| async move {
        let tbl = table(None, "wide");
        let schema = db.source().await.table_schema(&tbl).await.unwrap();
        for stall in [false, true] {
            // Enough for the login and the introspection, not for 20,000 rows of 200 bytes.
            let (port, proxy) = cutting_proxy(300_000, stall).await;
            let mut o = options(Some(&db.name));
            o.port = port;
            o.timeout_ms = 500;
            let mut src = MysqlSource::new(open(&o).await.unwrap(), ORIGIN.into(), Some(db.name.clone()));
            let page = PageRequest { table: &tbl, columns: &schema.columns, order: &[0], after: None, from: None, limit: 20_000 };
            let started = std::time::Instant::now();
            let e = src.fetch_page(&page).await.expect_err("a cut connection must fail the page");
            let m = e.message().to_string();
            assert!(e.is_source() && m.starts_with(&format!("source {ORIGIN}: ")), "{m}");
            let want = if stall { "the server sent nothing for 1 s" } else { "the server closed the connection" };
            assert!(m.contains(want), "stall={stall}: {m}");
            assert!(started.elapsed() < std::time::Duration::from_secs(3), "stall={stall}");
            // The connection is not reused after that.
            let again = src.count_nulls(&tbl, &schema.columns[1]).await.unwrap_err();
            assert!(again.message().contains("failed earlier"), "{again}");
            proxy.abort();
        }
    })
    .await;
}

const RECONCILE: &[&str] = &[
    "CREATE TABLE nums (id BIGINT PRIMARY KEY, v TEXT)",
    "INSERT INTO nums SELECT seq, 'v' FROM seq_1_to_2000",
    "INSERT INTO nums VALUES (9007199254740993, 'a'), (9223372036854775807, 'b'), (-9223372036854775808, 'c'), (9007199254740992, 'd')",
    "CREATE TABLE words (k VARCHAR(20) PRIMARY KEY) COLLATE utf8mb4_general_ci",
    "INSERT INTO words VALUES ('apple'), ('Banana'), ('cherry'), ('b '), ('B2'), (''), ('é'), ('Zed'), ('a!'), ('a\t'), ('😀'), ('ab')",
    "CREATE TABLE latin (k CHAR(10) CHARACTER SET latin1 COLLATE latin1_swedish_ci PRIMARY KEY)",
    "INSERT INTO latin VALUES ('å'), ('z'), ('Ä'), ('a'), ('b ')",
    "CREATE TABLE amounts (a DECIMAL(30,3) PRIMARY KEY)",
    "INSERT INTO amounts VALUES (9), (10.5), (100), (-1), (-10), (0.001), (123456789012345678901.123)",
    "CREATE TABLE pairs (t INT, name VARCHAR(20), day DATE, kind ENUM('x', 'b', 'a'), PRIMARY KEY (t, name, day, kind)) COLLATE utf8mb4_unicode_ci",
    "INSERT IGNORE INTO pairs SELECT seq % 3, CONCAT(CHAR(65 + seq % 5), IF(seq % 2 = 0, LOWER(CHAR(65 + seq % 7)), '')), \
       DATE '2026-01-01' + INTERVAL (seq % 4) DAY, 1 + seq % 3 FROM seq_1_to_200",
    "CREATE TABLE bigs (u BIGINT UNSIGNED PRIMARY KEY)",
    // Above 2^63-1 the replica holds text, sorted as text: these two have as many digits, so
    // sort alike on both sides (9223372036854775808, with one digit fewer, would not).
    "INSERT INTO bigs VALUES (0), (1), (9223372036854775807), (10000000000000000000), (18446744073709551615)",
];

#[tokio::test]
async fn key_ranges_count_as_the_replica_orders_and_keys_are_found_by_the_origins_equality() {
    with_db(RECONCILE, |db| async move {
        let mut src = db.source().await;
        let int_key = [col("id", "bigint(20)", Affinity::Integer, false)];
        let text_key = [col("k", "varchar(20)", Affinity::Text, false)];
        let latin_key = [col("k", "char(10)", Affinity::Text, false)];
        let dec_key = [col("a", "decimal(30,3)", Affinity::Text, false)];
        let pair_key = [
            col("t", "int(11)", Affinity::Integer, false),
            col("name", "varchar(20)", Affinity::Text, false),
            col("day", "date", Affinity::Text, false),
            col("kind", "enum('x','b','a')", Affinity::Text, false),
        ];
        let big_key = [col("u", "bigint(20) unsigned", Affinity::Any, false)];
        for (tbl, key, steps) in [
            ("nums", &int_key[..], &[1usize, 7, 500, 5000][..]),
            ("words", &text_key[..], &[1, 2, 5][..]),
            ("latin", &latin_key[..], &[1, 2][..]),
            ("amounts", &dec_key[..], &[1, 2, 3][..]),
            ("pairs", &pair_key[..], &[1, 4, 9][..]),
            ("bigs", &big_key[..], &[1, 2][..]),
        ] {
            let order: Vec<usize> = (0..key.len()).collect();
            let keys = edge_replica::test_support::replica_order(&page_through(&mut src, &table(None, tbl), key, &order, 500).await);
            for &step in steps {
                edge_replica::test_support::check_key_ranges(&mut src, &table(None, tbl), key, &keys, step).await;
            }
        }
        let found = |keys: &[Value]| keys.iter().map(|k| vec![k.clone()]).collect::<Vec<_>>();
        let nums =
            found(&[Value::Integer(9_007_199_254_740_993), Value::Integer(9_007_199_254_740_994), Value::Integer(5), Value::Integer(2001)]);
        assert_eq!(src.absent_keys(&table(None, "nums"), &int_key, &nums).await.unwrap(), [1, 3]);
        // The origin's equality: case-insensitive and PAD SPACE, so 'APPLE' and 'b' are there.
        let words = found(&[t("APPLE"), t("b"), t("banana   "), t("durian"), t("e"), t("a\t")]);
        assert_eq!(src.absent_keys(&table(None, "words"), &text_key, &words).await.unwrap(), [3]);
        let latin = found(&[t("å"), t("ä"), t("A"), t("b"), t("c")]);
        assert_eq!(src.absent_keys(&table(None, "latin"), &latin_key, &latin).await.unwrap(), [4]);
        let amounts = found(&[t("10.500"), t("9.000"), t("8.000"), t("123456789012345678901.123")]);
        assert_eq!(src.absent_keys(&table(None, "amounts"), &dec_key, &amounts).await.unwrap(), [2]);
        let bigs = found(&[t("18446744073709551615"), t("18446744073709551614"), Value::Integer(9_223_372_036_854_775_807)]);
        assert_eq!(src.absent_keys(&table(None, "bigs"), &big_key, &bigs).await.unwrap(), [1]);
    })
    .await;
}
