//! The binlog decoder against a real MariaDB with a row binlog: 127.0.0.1:3307, root without a
//! password, `log_bin`, `binlog_format = ROW`, `binlog_row_image = FULL`,
//! `binlog_row_metadata = FULL`, made by `bash scripts/mariadb_binlog.sh`.
//!
//! Runs inserts, updates (a key change too), deletes and a multi-statement transaction over a
//! table holding every edge value of the MySQL type tests, rotating the binlog in between;
//! after each transaction takes a full copy through `MysqlSource::fetch_page`. Then reads the
//! binlog over a real connection (`COM_BINLOG_DUMP`, non-blocking), decodes every event,
//! applies each transaction's row changes to an in-memory replica and compares it with the
//! copy taken after that transaction, cell by cell, types included; every before image must
//! equal the replica's row.
//!
//! `MYSQL_BINLOG_FIXTURE=write cargo test --test mysql_binlog` also rewrites
//! tests/fixtures/mysql_binlog.txt, the captured bytes the unit tests decode without a server.

use edge_replica::source::mysql::binlog::{
    self, dump_flag, event, Checksum, Decoder, DumpPacket, EventBody, Position, RowChange, RowsKind,
};
use edge_replica::source::mysql::client::{ClientError, Conn, Timer};
use edge_replica::source::mysql::{connect, decode_row, parse_url, BinlogColumns, ConnectOptions, MysqlSource};
use edge_replica::source::{Column, PageRequest, Source, TableName};
use edge_replica::value::Value;
use futures_util::FutureExt;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use tokio::net::TcpStream;

/// The port scripts/mariadb_binlog.sh uses (`EDGE_REPLICA_BINLOG_PORT`, default 3307).
fn port() -> u16 {
    std::env::var("EDGE_REPLICA_BINLOG_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(3307)
}

fn not_running(e: impl std::fmt::Display) -> String {
    format!("no MariaDB with a row binlog on 127.0.0.1:{}: run `bash scripts/mariadb_binlog.sh` first ({e})", port())
}

struct TokioTimer;
impl Timer for TokioTimer {
    fn sleep(&self, ms: u64) -> Pin<Box<dyn Future<Output = ()>>> {
        Box::pin(tokio::time::sleep(std::time::Duration::from_millis(ms)))
    }
}

type NoTls = fn(TcpStream) -> std::future::Ready<Result<TcpStream, String>>;

fn options(db: Option<&str>) -> ConnectOptions {
    let mut o = parse_url(&format!("mysql://root@127.0.0.1:{}?ssl-mode=disable", port())).expect("test URL parses");
    o.credentials.database = db.map(str::to_string);
    o.timeout_ms = 20_000;
    o
}

async fn conn(db: Option<&str>) -> Conn<TcpStream> {
    let o = options(db);
    let stream = TcpStream::connect((o.host.as_str(), o.port)).await.unwrap_or_else(|e| panic!("{}", not_running(e)));
    connect::<_, NoTls, _>(stream, Box::new(TokioTimer), &o, None).await.unwrap_or_else(|e| panic!("{}", not_running(e)))
}

/// Every row of a statement's result, decoded.
async fn query(c: &mut Conn<TcpStream>, sql: &str) -> Vec<Vec<Value>> {
    let stmt = c.prepare(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut rows = Vec::new();
    c.execute(&stmt, &[], |defs, payload| {
        rows.push(decode_row(payload, defs)?);
        Ok(())
    })
    .await
    .unwrap_or_else(|e| panic!("{sql}: {e}"));
    c.close_statement(stmt.id).await.unwrap();
    rows
}

fn text(v: &Value) -> String {
    match v {
        Value::Text(s) => s.clone(),
        Value::Blob(b) => String::from_utf8_lossy(b).into_owned(),
        other => other.display_text().unwrap_or_default(),
    }
}

async fn master_position(c: &mut Conn<TcpStream>) -> Position {
    let rows = query(c, "SHOW MASTER STATUS").await;
    let r = rows.first().expect("SHOW MASTER STATUS has a row: is log_bin on?");
    Position { file: text(&r[0]), pos: r[1].as_i64().unwrap() as u64 }
}

fn random_suffix() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

/// Runs `body` with a fresh database, then drops it whatever happened.
async fn with_db<F, Fut>(body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut admin = conn(None).await;
    let name = format!("er_bl_{}", random_suffix());
    admin.execute_simple(&format!("CREATE DATABASE {name} CHARACTER SET utf8mb4")).await.expect("create database");
    let outcome = AssertUnwindSafe(body(name.clone())).catch_unwind().await;
    admin.execute_simple(&format!("DROP DATABASE {name}")).await.expect("drop database");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// One dump: every packet's payload until EOF (or `limit` packets).
async fn dump(from: &Position, flags: u16, setup: &str, limit: usize) -> Result<Vec<Vec<u8>>, ClientError> {
    let mut c = conn(None).await;
    c.execute_simple(setup).await?;
    let server_id = 1000 + (std::process::id() % 100_000);
    c.binlog_dump(&from.file, from.pos as u32, flags, server_id).await?;
    let mut out = Vec::new();
    while let Some(p) = c.read_binlog_event().await? {
        out.push(p.to_vec());
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

const DUMP_SETUP: &str = "SET @master_binlog_checksum = @@global.binlog_checksum, @mariadb_slave_capability = 4";

const TABLE: &str = "CREATE TABLE all_types (
  id INT PRIMARY KEY,
  u64 BIGINT UNSIGNED, i64 BIGINT, i32 INT, u32 INT UNSIGNED, i24 MEDIUMINT, u24 MEDIUMINT UNSIGNED, i16 SMALLINT,
  u16 SMALLINT UNSIGNED, i8 TINYINT, u8 TINYINT UNSIGNED,
  dec65 DECIMAL(65,30), dec2 DECIMAL(12,2), dec0 DECIMAL(10,0), udec DECIMAL(20,5) UNSIGNED, dec30 DECIMAL(30,30), f FLOAT, d DOUBLE,
  dt DATETIME(6), dt0 DATETIME, dt3 DATETIME(3), ts TIMESTAMP(6) NULL, ts0 TIMESTAMP NULL, ts2 TIMESTAMP(2) NULL,
  tm TIME, tm6 TIME(6), tm1 TIME(1), tm3 TIME(3), dte DATE, y YEAR, neg TINYINT, uy SMALLINT UNSIGNED,
  j JSON, bl BLOB, tb TINYBLOB, mb MEDIUMBLOB, bin BINARY(4), vb VARBINARY(8), b1 BIT(1), b10 BIT(10), b64 BIT(64),
  flag TINYINT(1), bo BOOLEAN,
  e ENUM('small','Medium','large'), s SET('a','b','c'), txt TEXT, vc VARCHAR(20), vcl VARCHAR(300), ch CHAR(5),
  chl CHAR(100), lt LONGTEXT,
  lat VARCHAR(10) CHARACTER SET latin1, latc CHAR(3) CHARACTER SET latin1, elat ENUM('é','b') CHARACTER SET latin1,
  uu UUID, i4 INET4, i6 INET6, g GEOMETRY
)";

const ROW_MAX: &str = "(1,
  18446744073709551615, -9223372036854775808, -2147483648, 4294967295, -8388608, 16777215, -32768, 65535, -128, 255,
  '-12345678901234567890123456789012345.123456789012345678901234567891', 12.3, -9999999999, 999999999999999.99999,
  -0.999999999999999999999999999999, 0.1, 0.1,
  '2026-01-02 03:04:05.123456', '2026-01-02 03:04:05', '2026-01-02 03:04:05.120', '2026-01-02 08:34:05.654321',
  '2026-01-02 05:30:00', '2038-01-19 08:44:07.99',
  '-838:59:59', '838:59:59.000000', '-00:00:00.5', '-12:34:56.789', '2026-01-02', 2026, -5, 65535,
  '{\"big\": 123456789012345678901234567890, \"f\": 1e400, \"s\": \"é\"}', x'00FF00', x'FF', REPEAT(x'AB', 70000),
  x'610062', x'', b'1', b'1000000001', b'1111111111111111111111111111111111111111111111111111111111111111', 1, TRUE,
  'Medium', 'a,c', '😀 emoji 🎉', '', REPEAT('é', 300), 'ab', REPEAT('😀', 100), REPEAT('x', 70000),
  'été €', 'ñ', 'é',
  '123e4567-e89b-12d3-a456-426614174000', '192.0.2.255', '2001:db8::ff00:42:8329', ST_GeomFromText('POINT(1 2)'))";

const ROW_MIN: &str = "(2,
  9223372036854775807, 9223372036854775807, 2147483647, 0, 8388607, 0, 32767, 0, 127, 0,
  '0.000000000000000000000000000001', -0.5, 0, 0.00001, 0.000000000000000000000000000001, -3.4028235e38, 1.7976931348623157e308,
  '0000-00-00 00:00:00', '1000-01-01 00:00:00', '9999-12-31 23:59:59.999', '1970-01-01 05:30:01.000001',
  '2038-01-19 08:44:07', '1970-01-01 05:30:01.01',
  '00:00:00', '-00:00:00.000001', '00:00:00.1', '838:59:58.999', '0000-00-00', 0, 127, 0,
  '[]', '', x'', '',
  x'00000000', x'FF', b'0', b'0', b'0', 0, FALSE,
  '', '', 'line\\nbreak\\ttab ''q'' \\\\', 'NULL', '', '', '', '',
  '', '', '',
  '00000000-0000-0000-0000-000000000000', '0.0.0.0', '::', ST_GeomFromText('LINESTRING(0 0, 1 1)'))";

/// The steps: each is one transaction that changes `all_types` (DDL and the binlog rotation
/// happen between them), followed by a full copy.
const STEPS: &[(&str, &[&str])] = &[
    ("insert the maximum edge values", &[]),
    ("insert the minimum edge values", &[]),
    ("insert a row of NULLs", &["INSERT INTO all_types (id, u64) VALUES (3, 9223372036854775808)"]),
    (
        "insert empty strings next to NULLs",
        &["INSERT INTO all_types (id, txt, vc, ch, bl, vb, bin, j, e, s, lat) VALUES (4, '', '', '', '', '', '', '{}', '', '', NULL)"],
    ),
    (
        "update every column of row 1",
        &["UPDATE all_types a JOIN all_types b ON b.id = 2 SET a.u64 = b.u64, a.i64 = b.i64, a.dec65 = b.dec65, a.dt = b.dt,
            a.ts = b.ts, a.tm = b.tm, a.j = b.j, a.bl = b.bl, a.bin = b.bin, a.b64 = b.b64, a.e = 'large', a.s = 'b,c',
            a.txt = 'changed', a.uu = '550e8400-e29b-41d4-a716-446655440000', a.i6 = '::ffff:192.0.2.1', a.g = NULL,
            a.neg = -128, a.uy = 1, a.f = -0.0, a.dec2 = '-0.00'
          WHERE a.id = 1"],
    ),
    ("delete the row of NULLs", &["DELETE FROM all_types WHERE id = 3"]),
    ("change a key", &["UPDATE all_types SET id = 5 WHERE id = 4"]),
    (
        "one transaction of several statements",
        &[
            "BEGIN",
            "INSERT INTO all_types (id, dt, lat, ts0, ts) VALUES (6, '2026-06-06 06:06:06.000006', 'x', '0000-00-00 00:00:00',
               '0000-00-00 00:00:00'), (7, NULL, NULL, NULL, NULL)",
            "UPDATE all_types SET vc = 'two', tm6 = '-838:59:59.000000' WHERE id IN (2, 6)",
            "DELETE FROM all_types WHERE id IN (1, 7)",
            "COMMIT",
        ],
    ),
];

const SIDE: &[&str] = &[
    "CREATE TABLE side (id INT PRIMARY KEY, v VARCHAR(10)) ENGINE=Aria",
    "INSERT INTO side VALUES (1, 'x'), (2, NULL)",
    "ALTER TABLE side ADD COLUMN w INT",
];

async fn full_copy(src: &mut MysqlSource<TcpStream>, table: &TableName, columns: &[Column]) -> Vec<Vec<Value>> {
    let page = PageRequest { table, columns, order: &[0], after: None, from: None, limit: 10_000 };
    src.fetch_page(&page).await.expect("fetch_page")
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Real(x), Value::Real(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

fn show(v: &Value) -> String {
    let s = format!("{v:?}");
    if s.len() > 120 {
        format!("{}… ({} chars)", &s[..120], s.len())
    } else {
        s
    }
}

fn assert_rows_equal(step: &str, names: &[String], got: &[Vec<Value>], want: &[Vec<Value>]) {
    assert_eq!(got.len(), want.len(), "{step}: {} rows decoded from the binlog, the copy has {}", got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        for (i, (a, b)) in g.iter().zip(w).enumerate() {
            assert!(same(a, b), "{step}: row {} column {}: binlog gives {}, the copy has {}", show(&w[0]), names[i], show(a), show(b));
        }
    }
}

#[tokio::test]
async fn binlog_rows_equal_the_full_copy_cell_by_cell() {
    let mut admin = conn(None).await;
    let settings = query(
        &mut admin,
        "SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata, @@global.binlog_checksum, @@server_id",
    )
    .await;
    let s: Vec<String> = settings[0].iter().map(text).collect();
    assert_eq!(s[..4], ["1", "ROW", "FULL", "FULL"], "{}", not_running(format!("settings {s:?}")));
    let checksum = Checksum::from_setting(&s[4]).expect("binlog_checksum");
    let server_id = s[5].parse::<u32>().unwrap();

    with_db(|db| async move {
        let mut sql = conn(Some(&db)).await;
        sql.execute_simple(TABLE).await.expect("create table");
        // The writer's session is not UTC: TIMESTAMPs still come out in UTC.
        sql.execute_simple("SET time_zone = '+05:30', sql_mode = ''").await.unwrap();
        let start = master_position(&mut sql).await;
        let mut src = MysqlSource::new(conn(Some(&db)).await, "mysql binlog test".into(), Some(db.clone()));
        let table = TableName { schema: None, name: "all_types".into() };
        let schema = src.table_schema(&table).await.unwrap();
        let names: Vec<String> = schema.columns.iter().map(|c| c.name.clone()).collect();

        // Values above 65535 bytes (3- and 4-byte lengths) here; shorter ones in the fixture.
        let big = if writing_fixture() { "300" } else { "70000" };
        let mut copies = Vec::new();
        for (i, (what, statements)) in STEPS.iter().enumerate() {
            match i {
                0 => sql.execute_simple(&format!("INSERT INTO all_types VALUES {}", ROW_MAX.replace("70000", big))).await.unwrap(),
                1 => sql.execute_simple(&format!("INSERT INTO all_types VALUES {ROW_MIN}")).await.unwrap(),
                _ => {
                    for s in *statements {
                        sql.execute_simple(s).await.unwrap_or_else(|e| panic!("{what}: {s}: {e}"));
                    }
                }
            }
            copies.push(full_copy(&mut src, &table, &schema.columns).await);
            if i == 3 {
                // A rotation mid-stream: the dump continues in the next file.
                sql.execute_simple("FLUSH BINARY LOGS").await.unwrap();
                // DDL (QUERY events) and a non-transactional table, whose changes end with a
                // QUERY `COMMIT` instead of an XID.
                for s in SIDE {
                    sql.execute_simple(s).await.unwrap_or_else(|e| panic!("{s}: {e}"));
                }
            }
        }
        let end = master_position(&mut sql).await;
        assert_ne!(start.file, end.file, "FLUSH BINARY LOGS made a new file");

        let packets = dump(&start, dump_flag::NON_BLOCK | dump_flag::SEND_ANNOTATE_ROWS, DUMP_SETUP, usize::MAX).await.expect("dump");
        let mut decoder = Decoder::new(checksum);
        let mut replica: BTreeMap<i64, Vec<Value>> = BTreeMap::new();
        let mut plan: Option<BinlogColumns> = None;
        let mut step = 0;
        let mut changed = false;
        let mut seen: BTreeSet<u8> = BTreeSet::new();
        let mut kinds: BTreeSet<&str> = BTreeSet::new();
        let mut rotations = 0;
        let mut annotations = Vec::new();
        let mut queries = Vec::new();
        for p in &packets {
            let DumpPacket::Event(bytes) = binlog::dump_packet(p).unwrap() else { panic!("not an event") };
            let ev = decoder.decode(bytes).unwrap_or_else(|e| panic!("{e}"));
            seen.insert(ev.header.event_type);
            match &ev.body {
                EventBody::Rotate { next_file, position } if !ev.header.is_artificial() => {
                    rotations += 1;
                    assert_eq!((next_file.as_str(), *position), (end.file.as_str(), 4));
                }
                EventBody::TableMap(m) if m.database == db && m.table == "all_types" => {
                    assert_eq!(m.primary_key, vec![0]);
                    plan = Some(BinlogColumns::new(m, &schema.columns).unwrap_or_else(|e| panic!("{e}")));
                }
                EventBody::AnnotateRows { query } => annotations.push(String::from_utf8_lossy(query).into_owned()),
                EventBody::Query(q) => queries.push(q.query_text()),
                EventBody::Rows(r) if r.table.database == db && r.table.table == "all_types" => {
                    let plan = plan.as_ref().expect("a table map first");
                    assert_eq!(r.version, 1, "MariaDB writes v1 rows events");
                    assert!(r.present.iter().all(|&p| p), "binlog_row_image = FULL");
                    kinds.insert(match r.kind {
                        RowsKind::Write => "write",
                        RowsKind::Update => "update",
                        RowsKind::Delete => "delete",
                    });
                    let full = |row: &binlog::Row<'_>| -> Vec<Value> {
                        plan.row(row).unwrap_or_else(|e| panic!("{e}")).into_iter().map(|v| v.expect("every column")).collect()
                    };
                    let key = |row: &[Value]| row[0].as_i64().unwrap();
                    for change in r.rows().unwrap_or_else(|e| panic!("{e}")) {
                        changed = true;
                        match change {
                            RowChange::Insert(row) => {
                                let row = full(&row);
                                assert!(replica.insert(key(&row), row).is_none(), "insert of an existing key");
                            }
                            RowChange::Update { before, after } => {
                                let (before, after) = (full(&before), full(&after));
                                let old = replica.remove(&key(&before)).expect("update of a missing row");
                                assert_rows_equal("a before image", &names, &[before], &[old]);
                                replica.insert(key(&after), after);
                            }
                            RowChange::Delete(row) => {
                                let row = full(&row);
                                let old = replica.remove(&key(&row)).expect("delete of a missing row");
                                assert_rows_equal("a deleted row", &names, &[row], &[old]);
                            }
                        }
                    }
                }
                EventBody::Xid { .. } if changed => {
                    let got: Vec<Vec<Value>> = replica.values().cloned().collect();
                    assert_rows_equal(STEPS[step].0, &names, &got, &copies[step]);
                    step += 1;
                    changed = false;
                }
                _ => {}
            }
        }
        assert_eq!(step, STEPS.len(), "every step's transaction was found and compared");
        assert_eq!(rotations, 1);
        assert_eq!(kinds.len(), 3);
        assert!(annotations.iter().any(|a| a.contains("DELETE FROM all_types WHERE id = 3")), "{annotations:?}");
        for q in ["CREATE TABLE side", "COMMIT", "ALTER TABLE side ADD COLUMN w INT"] {
            assert!(queries.iter().any(|s| s.starts_with(q)), "no QUERY {q} in {queries:?}");
        }
        for t in [
            event::ROTATE,
            event::FORMAT_DESCRIPTION,
            event::MARIADB_GTID,
            event::GTID_LIST,
            event::BINLOG_CHECKPOINT,
            event::ANNOTATE_ROWS,
            event::TABLE_MAP,
            event::WRITE_ROWS_V1,
            event::UPDATE_ROWS_V1,
            event::DELETE_ROWS_V1,
            event::XID,
            event::QUERY,
        ] {
            assert!(seen.contains(&t), "no {} event in {seen:?}", binlog::event_name(t));
        }
        // Where the decoder stands is where the server is.
        assert_eq!(decoder.position(), Some(&end));
        assert_eq!(decoder.format().unwrap().checksum, checksum);

        // A file the server does not have: an error, not an empty stream.
        let gone = Position { file: "binlog.999999".into(), pos: 4 };
        match dump(&gone, dump_flag::NON_BLOCK, DUMP_SETUP, usize::MAX).await {
            Err(ClientError::Server(e)) => assert_eq!(e.code, 1236, "{e}"),
            other => panic!("a dump of a missing file: {other:?}"),
        }

        let heartbeat = heartbeat_packets(&end).await;

        if writing_fixture() {
            let version = text(&query(&mut sql, "SELECT VERSION()").await[0][0]);
            let none = checksum_none_packets(&mut sql).await;
            let stop = stop_packets(&mut sql).await;
            write_fixture(&version, server_id, &db, &packets, &none, &heartbeat, &stop);
        }
    })
    .await;
}

fn writing_fixture() -> bool {
    std::env::var("MYSQL_BINLOG_FIXTURE").as_deref() == Ok("write")
}

/// A blocking dump from the end with a heartbeat period: the server sends a HEARTBEAT when it
/// has nothing else.
async fn heartbeat_packets(end: &Position) -> Vec<Vec<u8>> {
    let setup = format!("{DUMP_SETUP}, @master_heartbeat_period = 100000000");
    let packets = dump(end, 0, &setup, 4).await.expect("blocking dump");
    let mut d = Decoder::new(Checksum::Crc32);
    let mut beat = false;
    for p in &packets {
        let DumpPacket::Event(b) = binlog::dump_packet(p).unwrap() else { panic!() };
        if let EventBody::Heartbeat { file } = d.decode(b).unwrap_or_else(|e| panic!("{e}")).body {
            assert_eq!(file, end.file);
            beat = true;
        }
    }
    assert!(beat, "no heartbeat in {} packets", packets.len());
    packets
}

/// A file written with `binlog_checksum = NONE` (fixture only: it changes a global setting).
async fn checksum_none_packets(sql: &mut Conn<TcpStream>) -> Vec<Vec<u8>> {
    sql.execute_simple("SET GLOBAL binlog_checksum = NONE").await.unwrap();
    let from = master_position(sql).await;
    sql.execute_simple("INSERT INTO all_types (id, vc) VALUES (100, 'no checksum')").await.unwrap();
    sql.execute_simple("SET GLOBAL binlog_checksum = CRC32").await.unwrap();
    sql.execute_simple("INSERT INTO all_types (id, vc) VALUES (101, 'checksum again')").await.unwrap();
    let from = Position { pos: 4, ..from };
    dump(&from, dump_flag::NON_BLOCK, "SET @master_binlog_checksum = 'NONE', @mariadb_slave_capability = 4", usize::MAX)
        .await
        .expect("dump")
}

/// The STOP event a server shutdown left at the end of an older file, if there is one.
async fn stop_packets(sql: &mut Conn<TcpStream>) -> Vec<Vec<u8>> {
    let files = query(sql, "SHOW BINARY LOGS").await;
    for f in files {
        let from = Position { file: text(&f[0]), pos: 4 };
        let Ok(packets) = dump(&from, dump_flag::NON_BLOCK, DUMP_SETUP, 100_000).await else { continue };
        let mut d = Decoder::new(Checksum::Crc32);
        for p in &packets {
            let DumpPacket::Event(b) = binlog::dump_packet(p).unwrap() else { continue };
            let Ok(ev) = d.decode(b) else { continue };
            if ev.header.event_type == event::STOP {
                // The artificial ROTATE and FORMAT_DESCRIPTION that start the dump, then the STOP.
                return vec![packets[0].clone(), packets[1].clone(), p.clone()];
            }
        }
    }
    Vec::new()
}

fn describe(d: &mut Decoder, db: &str, p: &[u8]) -> String {
    let DumpPacket::Event(b) = binlog::dump_packet(p).unwrap() else { return "EOF".into() };
    let Ok(ev) = d.decode(b) else { return "undecodable".into() };
    let name = binlog::event_name(ev.header.event_type);
    match ev.body {
        EventBody::Query(q) => format!("{name}: {}", q.query_text().replace(db, "er_bl_db").replace('\n', " ")),
        EventBody::TableMap(m) => format!("{name}: {}", m.table),
        EventBody::MariadbGtid { gtid, flags, .. } => format!("{name}: {gtid} flags {flags}"),
        EventBody::Rows(r) => format!("{name}: {} row(s) of {}", r.rows().map_or(0, |v| v.len()), r.table.table),
        EventBody::Rotate { next_file, position } => {
            format!("{name}{}: {next_file}:{position}", if ev.header.is_artificial() { " (artificial)" } else { "" })
        }
        _ => name,
    }
}

fn write_fixture(version: &str, server_id: u32, db: &str, packets: &[Vec<u8>], none: &[Vec<u8>], heartbeat: &[Vec<u8>], stop: &[Vec<u8>]) {
    let mut f = String::new();
    let _ = writeln!(
        f,
        "# Binlog dump packets captured from MariaDB {version} (server_id {server_id}, scripts/mariadb_binlog.sh) by\n\
         # tests/mysql_binlog.rs (MYSQL_BINLOG_FIXTURE=write cargo test --test mysql_binlog): one COM_BINLOG_DUMP\n\
         # packet payload per line as hex (0x00 + event), each after a comment naming it.\n\
         # [dump]: the test's steps from SHOW MASTER STATUS, flags NON_BLOCK | SEND_ANNOTATE_ROWS, checksums CRC32,\n\
         # a FLUSH BINARY LOGS after step 4; the database name is {db}.\n\
         # [checksum_none]: a file written with binlog_checksum = NONE, then the next one with CRC32.\n\
         # [heartbeat]: a blocking dump from the end with @master_heartbeat_period = 0.1 s.\n\
         # [stop]: the start of a dump of a file that a server shutdown ended with STOP.\n\
         # Used by src/source/mysql/binlog/tests.rs."
    );
    for (name, list, checksum) in [
        ("dump", packets, Checksum::Crc32),
        ("checksum_none", none, Checksum::None),
        ("heartbeat", heartbeat, Checksum::Crc32),
        ("stop", stop, Checksum::Crc32),
    ] {
        let _ = writeln!(f, "[{name}]");
        let mut d = Decoder::new(checksum);
        for p in list {
            let _ = writeln!(f, "# {}", describe(&mut d, db, p));
            let _ = writeln!(f, "{}", p.iter().map(|x| format!("{x:02x}")).collect::<String>());
        }
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mysql_binlog.txt");
    if stop.is_empty() {
        // A server that was never shut down has no STOP event: keep the one captured before.
        let old = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(i) = old.find("\n[stop]\n") {
            f.truncate(f.rfind("[stop]\n").expect("the section header"));
            f.push_str(&old[i + 1..]);
        }
    }
    std::fs::write(path, f).expect("write fixture");
}
