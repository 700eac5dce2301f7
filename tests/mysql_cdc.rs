//! The MySQL source's change feed (`Source::feed`, the binlog) against the MariaDB with a row
//! binlog on 127.0.0.1:3307 (`bash scripts/mariadb_binlog.sh`): whole transactions in order,
//! across binlog rotations, ended by XID, by a QUERY COMMIT (a non-transactional table) or by
//! an XA PREPARE; TRUNCATE and DDL; reads that resume from any committed position and stop at
//! the position or the number of changes asked; a purged position, and missing grants, named.
//!
//! MySQL 8 is not in the package registries here: its event shapes (GTID, rows v2, binary JSON,
//! XA_PREPARE) are decoded from hand-built bytes in src/source/mysql/binlog/tests.rs.

use edge_replica::source::mysql::cdc::{at_or_after, Dialer};
use edge_replica::source::mysql::client::{Conn, Timer};
use edge_replica::source::mysql::{connect, parse_url, ConnectOptions, MysqlSource};
use edge_replica::source::{Change, Datum, FeedAnswer, FeedOp, Source, TableName};
use edge_replica::value::Value;
use futures_util::FutureExt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use tokio::net::TcpStream;

fn port() -> u16 {
    std::env::var("EDGE_REPLICA_BINLOG_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(3307)
}

struct TokioTimer;
impl Timer for TokioTimer {
    fn sleep(&self, ms: u64) -> Pin<Box<dyn Future<Output = ()>>> {
        Box::pin(tokio::time::sleep(std::time::Duration::from_millis(ms)))
    }
}

type NoTls = fn(TcpStream) -> std::future::Ready<Result<TcpStream, String>>;

fn options(user: &str, password: &str, db: Option<&str>) -> ConnectOptions {
    let mut o = parse_url(&format!("mysql://{user}:{password}@127.0.0.1:{}?ssl-mode=disable", port())).expect("test URL parses");
    o.credentials.database = db.map(str::to_string);
    o.timeout_ms = 20_000;
    o
}

async fn dial(o: ConnectOptions) -> edge_replica::error::Result<Conn<TcpStream>> {
    let stream = TcpStream::connect((o.host.as_str(), o.port))
        .await
        .unwrap_or_else(|e| panic!("no MariaDB with a row binlog on 127.0.0.1:{}: run `bash scripts/mariadb_binlog.sh` ({e})", port()));
    connect::<_, NoTls, _>(stream, Box::new(TokioTimer), &o, None)
        .await
        .map_err(|e| edge_replica::error::Error::at_origin("test", e.to_string()))
}

async fn source(user: &str, password: &str, db: &str) -> MysqlSource<TcpStream> {
    let o = options(user, password, Some(db));
    let conn = dial(o.clone()).await.expect("connect");
    let dialer: Dialer<TcpStream> = Box::new(move || Box::pin(dial(o.clone())));
    MysqlSource::new(conn, "mysql binlog test".into(), Some(db.to_string())).with_dialer(dialer)
}

async fn admin() -> Conn<TcpStream> {
    dial(options("root", "", None)).await.expect("connect as root")
}

fn random_suffix() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64);
    format!("{:012x}", h.finish() & 0xFFFF_FFFF_FFFF)
}

/// Runs `body` with a fresh database, dropped afterwards whatever happened.
async fn with_db<F, Fut>(body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut root = admin().await;
    let name = format!("er_cdc_{}", random_suffix());
    root.execute_simple(&format!("CREATE DATABASE {name} CHARACTER SET utf8mb4")).await.unwrap();
    let outcome = AssertUnwindSafe(body(name.clone())).catch_unwind().await;
    root.execute_simple(&format!("DROP DATABASE {name}")).await.unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

const SLOT: &str = "binlog reader (server_id 3000000001)";

async fn position(src: &mut MysqlSource<TcpStream>) -> String {
    match src.feed(FeedOp::CurrentPosition).await.unwrap() {
        FeedAnswer::Position(p) => p,
        other => panic!("no position: {other:?}"),
    }
}

fn show(d: &Datum<'_>) -> String {
    match d {
        Datum::Value(Value::Integer(i)) => i.to_string(),
        Datum::Value(Value::Text(t)) => format!("'{t}'"),
        Datum::Value(Value::Null) | Datum::Null => "NULL".into(),
        other => format!("{other:?}"),
    }
}

/// One read, as lines: `BEGIN`, `COMMIT`, `INSERT 1 [...]`, ...; and the commit positions.
async fn read(src: &mut MysqlSource<TcpStream>, from: &str, upto: &str, max: i32) -> (Vec<String>, Vec<String>) {
    let mut lines = Vec::new();
    let mut commits = Vec::new();
    let mut sink = |c: Change<'_>| {
        let row = |r: &[Datum<'_>]| r.iter().map(show).collect::<Vec<_>>().join(",");
        match c {
            Change::Begin { lsn } => {
                assert!(commits.last().is_none_or(|l: &String| at_or_after(&lsn, l)), "a transaction begins after the last commit");
                lines.push("BEGIN".into());
            }
            Change::Commit { lsn } => {
                lines.push("COMMIT".into());
                commits.push(lsn);
            }
            Change::Relation { id, columns } => lines.push(format!("REL {id} {}", columns.join(","))),
            Change::Insert { rel, new } => lines.push(format!("INSERT {rel} {}", row(&new))),
            Change::Update { rel, key, new } => lines.push(format!("UPDATE {rel} {} -> {}", row(&key.unwrap()), row(&new))),
            Change::Delete { rel, key } => lines.push(format!("DELETE {rel} {}", row(&key))),
            Change::Truncate { rels } => lines.push(format!("TRUNCATE {rels:?}")),
        }
        Ok(())
    };
    src.feed(FeedOp::Read { slot: SLOT, from, publication: "", upto, max, sink: &mut sink }).await.unwrap();
    (lines, commits)
}

/// Only the lines that change data, and the transaction boundaries around them.
fn data(lines: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in lines {
        if l.starts_with("REL") {
            continue;
        }
        // An empty transaction (another database's, or a DDL of another table) says nothing.
        if l == "COMMIT" && out.last().map(String::as_str) == Some("BEGIN") {
            out.pop();
            continue;
        }
        out.push(l.clone());
    }
    out
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[tokio::test]
async fn transactions_arrive_whole_across_rotations_and_reads_resume_from_any_commit() {
    with_db(|db| async move {
        let mut sql = dial(options("root", "", Some(&db))).await.unwrap();
        sql.execute_simple("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10)) ENGINE=InnoDB").await.unwrap();
        sql.execute_simple("CREATE TABLE side (id INT PRIMARY KEY, v VARCHAR(10)) ENGINE=Aria").await.unwrap();
        sql.execute_simple("CREATE TABLE other (id INT PRIMARY KEY)").await.unwrap();
        let mut src = source("root", "", &db).await;
        let tables = [TableName { schema: None, name: "t".into() }, TableName { schema: Some(db.clone()), name: "side".into() }];
        assert_eq!(src.feed(FeedOp::Check { tables: &tables }).await.unwrap(), FeedAnswer::Ids(vec![1, 2]));
        let start = match src.feed(FeedOp::CreateSlot { slot: SLOT }).await.unwrap() {
            FeedAnswer::Position(p) => p,
            other => panic!("{other:?}"),
        };
        for stmt in [
            "INSERT INTO t VALUES (1, 'a'), (2, 'b')",
            "FLUSH BINARY LOGS",
            "BEGIN; UPDATE t SET v = 'B' WHERE id = 2; UPDATE t SET id = 3 WHERE id = 1; INSERT INTO other VALUES (1); DELETE FROM t WHERE id = 2; COMMIT",
            // Aria is not transactional: its statement ends with a QUERY COMMIT, not an XID.
            "INSERT INTO side VALUES (7, 'x')",
            "FLUSH BINARY LOGS",
            "XA START 'x1'; INSERT INTO t VALUES (10, 'xa'); XA END 'x1'; XA PREPARE 'x1'; XA COMMIT 'x1'",
            // Savepoints inside a transaction neither end it nor keep what was rolled back.
            "BEGIN; INSERT INTO t VALUES (20, 's'); SAVEPOINT s1; INSERT INTO t VALUES (21, 'gone'); ROLLBACK TO SAVEPOINT s1; INSERT INTO t VALUES (22, 's'); COMMIT",
            "TRUNCATE TABLE t",
            "ALTER TABLE t ADD COLUMN w INT",
            "INSERT INTO t VALUES (4, 'd', 40)",
        ] {
            // One statement at a time (the client sends no multi-statements); one session, so
            // BEGIN ... COMMIT is one transaction.
            for part in stmt.split("; ") {
                sql.execute_simple(part).await.unwrap_or_else(|e| panic!("{part}: {e}"));
            }
        }
        let end = position(&mut src).await;
        let (lines, commits) = read(&mut src, &start, &end, 1_000_000).await;
        assert_eq!(
            data(&lines),
            s(&[
                "BEGIN",
                "INSERT 1 1,'a'",
                "INSERT 1 2,'b'",
                "COMMIT",
                "BEGIN",
                "UPDATE 1 2,'b' -> 2,'B'",
                "UPDATE 1 1,'a' -> 3,'a'",
                "DELETE 1 2,'B'",
                "COMMIT",
                "BEGIN",
                "INSERT 2 7,'x'",
                "COMMIT",
                "BEGIN",
                "INSERT 1 10,'xa'",
                "COMMIT",
                "BEGIN",
                "INSERT 1 20,'s'",
                "INSERT 1 22,'s'",
                "COMMIT",
                "BEGIN",
                "TRUNCATE [1]",
                "COMMIT",
                "BEGIN",
                "INSERT 1 4,'d',40",
                "COMMIT",
            ]),
            "{lines:#?}"
        );
        assert!(lines.contains(&"REL 1 id,v,w".to_string()), "after ADD COLUMN the relation has the new column: {lines:#?}");
        assert_eq!(commits.last(), Some(&end), "the last commit ends where the binlog ended");
        let file_no = |p: &str| p.split(':').next().unwrap().rsplit('.').next().unwrap().parse::<u64>().unwrap();
        assert!(file_no(&end) >= file_no(&start) + 2, "the read crossed two rotations: {start} .. {end}");

        // Resuming from any commit gives exactly what followed it.
        let commit_lines: Vec<usize> = lines.iter().enumerate().filter(|(_, l)| *l == "COMMIT").map(|(i, _)| i).collect();
        for (k, from) in commits.iter().enumerate() {
            let (again, _) = read(&mut src, from, &end, 1_000_000).await;
            let rest = data(&lines[commit_lines[k] + 1..]);
            assert_eq!(data(&again), rest, "a read from commit {k} ({from})");
        }
        // A read stops at `upto` and after about `max` changes, at a transaction boundary.
        let (first, c1) = read(&mut src, &start, &commits[0], 1_000_000).await;
        assert_eq!(data(&first), s(&["BEGIN", "INSERT 1 1,'a'", "INSERT 1 2,'b'", "COMMIT"]));
        assert_eq!(c1, vec![commits[0].clone()]);
        let (one, _) = read(&mut src, &start, &end, 1).await;
        assert_eq!(data(&one), s(&["BEGIN", "INSERT 1 1,'a'", "INSERT 1 2,'b'", "COMMIT"]), "a transaction is never cut");
        let (none, _) = read(&mut src, &end, &end, 1_000_000).await;
        assert_eq!(none, Vec::<String>::new(), "nothing after the end");
    })
    .await;
}

#[tokio::test]
async fn a_purged_position_fails_naming_it() {
    with_db(|db| async move {
        let mut src = source("root", "", &db).await;
        src.feed(FeedOp::Check { tables: &[] }).await.unwrap();
        let end = position(&mut src).await;
        let gone = format!("{}.000000:4", end.split(':').next().unwrap().rsplit_once('.').unwrap().0);
        let e = src.feed(FeedOp::Slot { slot: SLOT, position: Some(&gone) }).await.unwrap_err();
        assert!(e.message().contains("purged") && e.message().contains(&gone), "{}", e.message());
        let mut sink = |_: Change<'_>| Ok(());
        let e =
            src.feed(FeedOp::Read { slot: SLOT, from: &gone, publication: "", upto: &end, max: 10, sink: &mut sink }).await.unwrap_err();
        assert!(e.message().contains("no longer at the origin") && e.message().contains("Reset"), "{}", e.message());
        // The origin's own server id (1 on the test server) is refused, naming it.
        let own = "binlog reader (server_id 1)";
        let e = src.feed(FeedOp::Read { slot: own, from: &end, publication: "", upto: &end, max: 10, sink: &mut sink }).await.unwrap_err();
        assert!(e.message().contains("server_id 1 is the origin's own"), "{}", e.message());
        // Where the replica is now: known, with the bytes after it.
        match src.feed(FeedOp::Slot { slot: SLOT, position: Some(&end) }).await.unwrap() {
            // Other tests write to this server meanwhile: the lag is what they wrote since.
            FeedAnswer::Slot(Some(info)) => {
                assert_eq!(info.confirmed_lsn.as_deref(), Some(end.as_str()));
                assert!(info.lag_bytes.is_some_and(|b| (0..10_000_000).contains(&b)), "{info:?}");
            }
            other => panic!("{other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn a_login_without_replication_grants_is_told_which() {
    with_db(|db| async move {
        let mut root = admin().await;
        let user = format!("er_cdcu_{}", random_suffix());
        root.execute_simple(&format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'pw-1'")).await.unwrap();
        root.execute_simple(&format!("GRANT ALL ON {db}.* TO '{user}'@'%'")).await.unwrap();
        let outcome = AssertUnwindSafe(async {
            let mut src = source(&user, "pw-1", &db).await;
            let e = src.feed(FeedOp::Check { tables: &[] }).await.unwrap_err();
            assert!(e.message().contains("REPLICATION SLAVE and REPLICATION CLIENT"), "{}", e.message());
            root.execute_simple(&format!("GRANT REPLICATION SLAVE ON *.* TO '{user}'@'%'")).await.unwrap();
            let mut src = source(&user, "pw-1", &db).await;
            let e = src.feed(FeedOp::Check { tables: &[] }).await.unwrap_err();
            assert!(e.message().contains("lacks REPLICATION CLIENT on"), "{}", e.message());
            root.execute_simple(&format!("GRANT REPLICATION CLIENT ON *.* TO '{user}'@'%'")).await.unwrap();
            let mut src = source(&user, "pw-1", &db).await;
            let missing = [TableName { schema: None, name: "nope".into() }];
            let e = src.feed(FeedOp::Check { tables: &missing }).await.unwrap_err();
            assert!(e.message().contains("cannot read table `nope`"), "{}", e.message());
            assert_eq!(src.feed(FeedOp::Check { tables: &[] }).await.unwrap(), FeedAnswer::Ids(vec![]));
        })
        .catch_unwind()
        .await;
        root.execute_simple(&format!("DROP USER '{user}'@'%'")).await.unwrap();
        if let Err(p) = outcome {
            std::panic::resume_unwind(p);
        }
    })
    .await;
}

#[tokio::test]
async fn a_text_column_after_a_geometry_column_keeps_its_character_set() {
    // The charset metadata counts GEOMETRY among the character columns: a decoder that does
    // not gives the next text column the geometry's binary charset (its value became a blob).
    with_db(|db| async move {
        let mut sql = dial(options("root", "", Some(&db))).await.unwrap();
        sql.execute_simple(
            "CREATE TABLE g (id INT PRIMARY KEY, bin VARBINARY(4), lat VARCHAR(5) CHARACTER SET latin1, geo GEOMETRY, \
             after_geo VARCHAR(20), bl BLOB, last_txt TEXT)",
        )
        .await
        .unwrap();
        let mut src = source("root", "", &db).await;
        let tables = [TableName { schema: None, name: "g".into() }];
        src.feed(FeedOp::Check { tables: &tables }).await.unwrap();
        let start = position(&mut src).await;
        sql.execute_simple("INSERT INTO g VALUES (1, x'00', 'é', ST_GeomFromText('POINT(1 2)'), 'text ✓', x'FF', 'more')").await.unwrap();
        let end = position(&mut src).await;
        let (lines, _) = read(&mut src, &start, &end, 1000).await;
        let insert = lines.iter().find(|l| l.starts_with("INSERT")).expect("the insert");
        assert!(insert.ends_with(",'text ✓',Value(Blob([255])),'more'"), "{insert}");
        assert!(insert.contains(",'é',"), "{insert}");
    })
    .await;
}
