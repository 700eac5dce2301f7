//! The SQLite-family source over each transport, against a real SQLite (rusqlite) standing in
//! for the origin behind an in-process fake HTTP server:
//! - StarbaseDB / edge-replica `POST /query/raw` and the D1 REST API, which answer through
//!   JavaScript numbers (integers as doubles, blobs as byte arrays): the `Json` wire;
//! - a minimal sqld answering Hrana 3 pipelines: the `Typed` wire.
//!
//! These fakes test the protocol code and the SQL the source sends against real SQLite; they
//! are not the real servers (the end-to-end tests use a real D1 binding and a real second
//! edge-replica).

use edge_replica::source::sqlite_family::d1_rest::D1RestTransport;
use edge_replica::source::sqlite_family::hrana::{HranaClient, HranaTransport};
use edge_replica::source::sqlite_family::starbase::StarbaseTransport;
use edge_replica::source::sqlite_family::{HttpClient, HttpResponse, SqliteSource, Transport};
use edge_replica::source::{Affinity, Column, PageRequest, Source, TableName};
use edge_replica::value::Value;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::Connection;
use serde_json::{json, Value as Json};
use std::cell::RefCell;
use std::rc::Rc;

const TOKEN: &str = "tok-s3cr3t-0123456789";

/// Doubles that SQLite's own text conversions get wrong (measured with SQLite 3.50):
/// they must travel as binary doubles or exact arithmetic, never as decimal text.
const HARD_REALS: [f64; 4] = [1.1910593176322935e-240, 4.4251604027143375e284, 7.597954524892738e-84, -3.238696681491661e-139];

const SETUP: &str = "
CREATE TABLE items (id INTEGER PRIMARY KEY, big INTEGER NOT NULL, r REAL, t TEXT, b BLOB, anyv, n NUMERIC(10,2), ts DATETIME);
CREATE TABLE nokey (a TEXT, b INTEGER);
CREATE TABLE shadow (rowid TEXT, x INTEGER);
CREATE TABLE composite (k1 TEXT, k2 INTEGER, v TEXT, PRIMARY KEY (k2, k1)) WITHOUT ROWID;
CREATE VIEW items_view AS SELECT id, t FROM items;
CREATE TABLE \"We\"\"ird\" (\"i d\" INTEGER PRIMARY KEY, \"v\"\"q\" TEXT);
INSERT INTO \"We\"\"ird\" VALUES (1, 'one'), (2, 'two');
INSERT INTO nokey VALUES ('x', 1), ('y', 2), ('z', 3);
INSERT INTO shadow VALUES ('a', 1), ('b', 2);
INSERT INTO composite VALUES ('b', 1, 'p'), ('a', 1, 'q'), ('a', 2, 'r');
";

fn seed(conn: &Connection) {
    conn.execute_batch(SETUP).unwrap();
    let mut reals: Vec<f64> = vec![0.1, -2.5, 5e-324, f64::MAX, f64::INFINITY, f64::NEG_INFINITY, 1e300, 0.0, 5.0];
    reals.extend(HARD_REALS);
    let bigs = [i64::MAX, i64::MIN, 9_007_199_254_740_993, -9_007_199_254_740_993, 0, 1];
    let texts = ["", "i123", "tag-like t", "héllo 😀", "line\nbreak\t\"q\" \\", "x00", "rInf"];
    let anys: Vec<SqlValue> = vec![
        SqlValue::Integer(9_007_199_254_740_993),
        SqlValue::Real(5.0),
        SqlValue::Text("5".into()),
        SqlValue::Blob(vec![0, 1, 255]),
        SqlValue::Null,
        SqlValue::Real(HARD_REALS[0]),
        SqlValue::Integer(-3),
        SqlValue::Text("".into()),
        SqlValue::Blob(vec![]),
        SqlValue::Real(f64::INFINITY),
    ];
    let mut stmt = conn.prepare("INSERT INTO items VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)").unwrap();
    for i in 0..60i64 {
        let id = if i % 7 == 3 {
            i64::MIN + i
        } else if i % 11 == 5 {
            i64::MAX - i
        } else {
            i * 3 - 40
        };
        let r = if i % 9 == 4 { SqlValue::Null } else { SqlValue::Real(reals[i as usize % reals.len()]) };
        let t = if i % 8 == 2 { SqlValue::Null } else { SqlValue::Text(texts[i as usize % texts.len()].into()) };
        let b = if i % 5 == 1 { SqlValue::Null } else { SqlValue::Blob((0..(i % 4) as u8).map(|k| k.wrapping_mul(77)).collect()) };
        let n = if i % 3 == 0 { SqlValue::Text("12.50".into()) } else { SqlValue::Text(format!("{}", i * 2)) };
        stmt.execute(rusqlite::params![
            id,
            bigs[i as usize % bigs.len()],
            r,
            t,
            b,
            anys[i as usize % anys.len()].clone(),
            n,
            format!("2026-01-{:02} 10:00:{:02}", 1 + i % 28, i % 60)
        ])
        .unwrap();
    }
}

fn from_sql(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8(t.to_vec()).unwrap()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

fn to_sql(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Integer(i) => SqlValue::Integer(*i),
        Value::Real(f) => SqlValue::Real(*f),
        Value::Text(s) => SqlValue::Text(s.clone()),
        Value::Blob(b) => SqlValue::Blob(b.clone()),
    }
}

/// Runs one statement as the origin would; (columns, rows) or SQLite's message.
fn run(conn: &Connection, sql: &str, params: &[Value]) -> Result<(Vec<String>, Vec<Vec<Value>>), String> {
    let mut stmt = conn.prepare(sql).map_err(|e| e.to_string())?;
    let cols: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
    let n = cols.len();
    let params: Vec<SqlValue> = params.iter().map(to_sql).collect();
    let mut rows = stmt.query(rusqlite::params_from_iter(params)).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(|e| e.to_string())? {
        out.push((0..n).map(|i| from_sql(r.get_ref(i).unwrap())).collect());
    }
    Ok((cols, out))
}

/// A JavaScript number as `JSON.stringify` writes it (integers beyond 2^53 already rounded).
fn js_number(f: f64) -> Json {
    if !f.is_finite() {
        return Json::Null;
    }
    if f.fract() == 0.0 && f.abs() < 1e21 {
        return serde_json::from_str(&format!("{f:.0}")).unwrap();
    }
    serde_json::from_str(&format!("{f:?}")).unwrap()
}

/// A cell as it leaves a Durable Object or D1 through JavaScript.
fn js_cell(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Integer(i) => js_number(*i as f64),
        Value::Real(f) => js_number(*f),
        Value::Text(s) => Json::String(s.clone()),
        Value::Blob(b) => json!(b),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Flavor {
    Starbase,
    D1Rest,
}

/// A fake `/query/raw` or D1 REST endpoint over `conn`; records every request.
struct JsServer {
    conn: Rc<Connection>,
    flavor: Flavor,
    /// SQL that answers 403 (a client token reading `pragma_table_info`).
    forbid: Option<&'static str>,
    /// Echo the bearer token in error messages, like a careless proxy.
    echo_token: bool,
    log: RefCell<Vec<(String, Json)>>,
}

impl HttpClient for JsServer {
    async fn post(&self, url: &str, headers: &[(&str, &str)], body: String) -> Result<HttpResponse, String> {
        let auth = headers.iter().find(|(k, _)| *k == "authorization").map(|(_, v)| v.to_string()).unwrap_or_default();
        assert_eq!(auth, format!("Bearer {TOKEN}"));
        assert!(headers.contains(&("content-type", "application/json")));
        let req: Json = serde_json::from_str(&body).unwrap();
        self.log.borrow_mut().push((url.to_string(), req.clone()));
        let sql = req["sql"].as_str().unwrap();
        let params: Vec<Value> = req["params"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| match p {
                Json::String(s) => Value::Text(s.clone()),
                Json::Null if self.flavor == Flavor::Starbase => Value::Null,
                other => panic!("a parameter that is not a string: {other}"),
            })
            .collect();
        if self.forbid.is_some_and(|f| sql.contains(f)) {
            return Ok(HttpResponse {
                status: 403,
                body: json!({"result": null, "error": "pragma_table_info is not readable with a client token"}).to_string(),
            });
        }
        let answer = run(&self.conn, sql, &params);
        let body = match (self.flavor, answer) {
            (Flavor::Starbase, Ok((cols, rows))) => {
                let rows: Vec<Vec<Json>> = rows.iter().map(|r| r.iter().map(js_cell).collect()).collect();
                json!({"result": {"columns": cols, "rows": rows, "meta": {"rows_read": rows.len(), "rows_written": 0}}, "error": null})
            }
            (Flavor::Starbase, Err(e)) => {
                let e = if self.echo_token { format!("{e} (token {TOKEN})") } else { e };
                return Ok(HttpResponse { status: 400, body: json!({"result": null, "error": format!("query failed: {e}")}).to_string() });
            }
            (Flavor::D1Rest, Ok((cols, rows))) => {
                let rows: Vec<Vec<Json>> = rows.iter().map(|r| r.iter().map(js_cell).collect()).collect();
                json!({"result": [{"results": {"columns": cols, "rows": rows}, "success": true, "meta": {"duration": 0.1, "rows_read": 1}}],
                       "errors": [], "messages": [], "success": true})
            }
            (Flavor::D1Rest, Err(e)) => {
                return Ok(HttpResponse {
                    status: 400,
                    body: json!({"result": [], "errors": [{"code": 7500, "message": format!("{e}: SQLITE_ERROR")}], "messages": [], "success": false}).to_string(),
                })
            }
        };
        Ok(HttpResponse { status: 200, body: body.to_string() })
    }
}

// ---------------------------------------------------------------------------------------------
// A minimal sqld: Hrana 3 JSON pipelines over the same SQLite.

fn b64(b: &[u8], pad: bool) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        let chars = [n >> 18, n >> 12, n >> 6, n].map(|x| A[(x & 63) as usize] as char);
        for (i, ch) in chars.iter().enumerate() {
            if i <= c.len() {
                s.push(*ch);
            } else if pad {
                s.push('=');
            }
        }
    }
    s
}

fn hrana_value(v: &Value, pad: bool) -> Json {
    match v {
        Value::Null => json!({"type": "null"}),
        Value::Integer(i) => json!({"type": "integer", "value": i.to_string()}),
        Value::Real(f) => json!({"type": "float", "value": js_number(*f)}),
        Value::Text(s) => json!({"type": "text", "value": s}),
        Value::Blob(b) => json!({"type": "blob", "base64": b64(b, pad)}),
    }
}

fn from_hrana(v: &Json) -> Value {
    match v["type"].as_str().unwrap() {
        "null" => Value::Null,
        "integer" => Value::Integer(v["value"].as_str().unwrap().parse().unwrap()),
        "float" => Value::Real(v["value"].as_f64().unwrap()),
        "text" => Value::text(v["value"].as_str().unwrap()),
        "blob" => Value::Blob(edge_replica::source::sqlite_family::hrana::decode_base64(v["base64"].as_str().unwrap()).unwrap()),
        other => panic!("the fake sqld does not take {other} arguments"),
    }
}

struct Sqld {
    conn: Rc<Connection>,
    streams: RefCell<Vec<String>>,
    next: RefCell<u32>,
    /// Answer version 3 with 404 (a server that only speaks Hrana 2).
    only_v2: bool,
    pad_base64: bool,
    log: RefCell<Vec<String>>,
}

impl HttpClient for Sqld {
    async fn post(&self, url: &str, _headers: &[(&str, &str)], body: String) -> Result<HttpResponse, String> {
        self.log.borrow_mut().push(url.to_string());
        if self.only_v2 && url.ends_with("/v3/pipeline") {
            return Ok(HttpResponse { status: 404, body: "Not Found".into() });
        }
        let req: Json = serde_json::from_str(&body).unwrap();
        let mut open = match req["baton"].as_str() {
            Some(b) => {
                let mut s = self.streams.borrow_mut();
                let i = s.iter().position(|x| x == b).expect("a baton the server issued");
                s.remove(i);
                true
            }
            None => true,
        };
        let mut results = Vec::new();
        for r in req["requests"].as_array().unwrap() {
            match r["type"].as_str().unwrap() {
                "execute" => {
                    let stmt = &r["stmt"];
                    let args: Vec<Value> = stmt["args"].as_array().map(|a| a.iter().map(from_hrana).collect()).unwrap_or_default();
                    results.push(match run(&self.conn, stmt["sql"].as_str().unwrap(), &args) {
                        Ok((cols, rows)) => json!({"type": "ok", "response": {"type": "execute", "result": {
                            "cols": cols.iter().map(|c| json!({"name": c, "decltype": null})).collect::<Vec<_>>(),
                            "rows": rows.iter().map(|r| r.iter().map(|v| hrana_value(v, self.pad_base64)).collect::<Vec<_>>()).collect::<Vec<_>>(),
                            "affected_row_count": 0, "last_insert_rowid": null, "replication_index": "7", "rows_read": 1
                        }}}),
                        Err(e) => json!({"type": "error", "error": {"message": format!("SQLite error: {e}"), "code": "SQLITE_ERROR"}}),
                    });
                }
                "close" => {
                    open = false;
                    results.push(json!({"type": "ok", "response": {"type": "close"}}));
                }
                other => results.push(json!({"type": "error", "error": {"message": format!("unsupported request {other}")}})),
            }
        }
        let baton = if open {
            *self.next.borrow_mut() += 1;
            let b = format!("baton-{}", self.next.borrow());
            self.streams.borrow_mut().push(b.clone());
            Json::String(b)
        } else {
            Json::Null
        };
        Ok(HttpResponse { status: 200, body: json!({"baton": baton, "base_url": null, "results": results}).to_string() })
    }
}

// ---------------------------------------------------------------------------------------------

fn conn() -> Rc<Connection> {
    let c = Connection::open_in_memory().unwrap();
    seed(&c);
    Rc::new(c)
}

fn starbase(conn: &Rc<Connection>) -> SqliteSource<StarbaseTransport<JsServer>> {
    let server = JsServer { conn: conn.clone(), flavor: Flavor::Starbase, forbid: None, echo_token: false, log: RefCell::new(vec![]) };
    SqliteSource::new(StarbaseTransport::new(server, "http://a.test/", TOKEN.into(), "starbase at http://a.test".into()))
}

fn d1_rest(conn: &Rc<Connection>) -> SqliteSource<D1RestTransport<JsServer>> {
    let server = JsServer { conn: conn.clone(), flavor: Flavor::D1Rest, forbid: None, echo_token: false, log: RefCell::new(vec![]) };
    let t =
        D1RestTransport::new(server, "https://api.test/client/v4", "acc0123", "db-4567", TOKEN.into(), "d1 via REST API".into()).unwrap();
    SqliteSource::new(t)
}

fn sqld(conn: &Rc<Connection>, only_v2: bool) -> SqliteSource<HranaTransport<Sqld>> {
    let server = Sqld {
        conn: conn.clone(),
        streams: RefCell::new(vec![]),
        next: RefCell::new(0),
        only_v2,
        pad_base64: only_v2,
        log: RefCell::new(vec![]),
    };
    SqliteSource::new(HranaTransport::new(HranaClient::new(
        server,
        "http://sqld.test",
        Some(TOKEN.into()),
        "libsql at http://sqld.test".into(),
    )))
}

fn table(name: &str) -> TableName {
    TableName { schema: None, name: name.into() }
}

/// What the engine does: pages in keyset order until one comes back short.
async fn scan<S: Source>(
    src: &mut S,
    t: &TableName,
    columns: &[Column],
    order: &[usize],
    limit: usize,
    from: Option<Value>,
) -> Vec<Vec<Value>> {
    let mut out: Vec<Vec<Value>> = Vec::new();
    let mut after: Option<Vec<Value>> = None;
    let mut from = from;
    loop {
        let page = PageRequest {
            table: t,
            columns,
            order,
            after: if from.is_some() { None } else { after.as_deref() },
            from: from.as_ref(),
            limit,
        };
        let rows = src.fetch_page(&page).await.unwrap();
        from = None;
        let n = rows.len();
        if let Some(last) = rows.last() {
            after = Some(order.iter().map(|&i| last[i].clone()).collect());
        }
        out.extend(rows);
        if n < limit {
            return out;
        }
    }
}

/// Same bits for reals (so -0.0, infinities and the hard doubles are told apart exactly).
fn same(a: &[Vec<Value>], b: &[Vec<Value>]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.len() == y.len()
                && x.iter().zip(y).all(|(p, q)| match (p, q) {
                    (Value::Real(f), Value::Real(g)) => f.to_bits() == g.to_bits() || (*f == 0.0 && *g == 0.0),
                    _ => p == q,
                })
        })
}

async fn exercise<S: Source>(src: &mut S, conn: &Connection) {
    let t = table("items");
    let schema = src.table_schema(&t).await.unwrap();
    let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "big", "r", "t", "b", "anyv", "n", "ts"]);
    let aff: Vec<Affinity> = schema.columns.iter().map(|c| c.affinity).collect();
    use Affinity::*;
    assert_eq!(aff, [Integer, Integer, Real, Text, Blob, Any, Integer, Integer]);
    assert_eq!(schema.columns[5].source_type, "");
    assert_eq!(schema.columns[6].source_type, "NUMERIC(10,2)");
    assert!(!schema.columns[1].nullable && schema.columns[2].nullable);
    assert_eq!(schema.primary_key, ["id"]);
    let cols = schema.columns;

    // Full copy by key, small pages: every value exact, storage class kept.
    let got = scan(src, &t, &cols, &[0], 7, None).await;
    let (_, want) = run(conn, "SELECT * FROM items ORDER BY id", &[]).unwrap();
    assert_eq!(want.len(), 60);
    assert!(same(&got, &want), "full scan differs:\n got {got:?}\nwant {want:?}");

    // Keyset on a column of mixed storage classes (cursor) then the key: every class is a key value.
    let got = scan(src, &t, &cols, &[5, 0], 4, None).await;
    let (_, want) = run(conn, "SELECT * FROM items WHERE anyv IS NOT NULL ORDER BY anyv, id", &[]).unwrap();
    assert!(same(&got, &want), "mixed keyset differs:\n got {got:?}\nwant {want:?}");

    // Reals as keys, the hard ones and infinities included; and an inclusive lower bound.
    let got = scan(src, &t, &cols, &[2, 0], 3, None).await;
    let (_, want) = run(conn, "SELECT * FROM items WHERE r IS NOT NULL ORDER BY r, id", &[]).unwrap();
    assert!(same(&got, &want), "real keyset differs");
    for bound in [Value::Real(HARD_REALS[0]), Value::Real(f64::NEG_INFINITY), Value::Real(0.1), Value::Real(f64::INFINITY)] {
        let got = scan(src, &t, &cols, &[2, 0], 5, Some(bound.clone())).await;
        let (_, want) = run(conn, "SELECT * FROM items WHERE r >= ?1 ORDER BY r, id", std::slice::from_ref(&bound)).unwrap();
        assert!(!want.is_empty());
        assert!(same(&got, &want), "from {bound:?} differs");
    }
    // Text and blob keys.
    let got = scan(src, &t, &cols, &[3, 0], 4, None).await;
    let (_, want) = run(conn, "SELECT * FROM items WHERE t IS NOT NULL ORDER BY t, id", &[]).unwrap();
    assert!(same(&got, &want), "text keyset differs");
    let got = scan(src, &t, &cols, &[4, 0], 4, None).await;
    let (_, want) = run(conn, "SELECT * FROM items WHERE b IS NOT NULL ORDER BY b, id", &[]).unwrap();
    assert!(same(&got, &want), "blob keyset differs");
    // Big integers as keys, and a subset of columns.
    let sub = vec![cols[1].clone(), cols[0].clone()];
    let got = scan(src, &t, &sub, &[0, 1], 5, Some(Value::Integer(9_007_199_254_740_993))).await;
    let (_, want) = run(conn, "SELECT big, id FROM items WHERE big >= 9007199254740993 ORDER BY big, id", &[]).unwrap();
    assert!(same(&got, &want), "big keyset differs: {got:?}");

    assert_eq!(src.count_nulls(&t, &cols[2]).await.unwrap(), 7);
    assert_eq!(src.count_nulls(&t, &cols[1]).await.unwrap(), 0);

    // Tables without a declared key: the rowid, under a name no column has.
    let s = src.table_schema(&table("nokey")).await.unwrap();
    assert_eq!(s.primary_key, ["rowid"]);
    let last = s.columns.last().unwrap();
    assert_eq!((last.name.as_str(), last.affinity, last.nullable), ("rowid", Affinity::Integer, false));
    let got = scan(src, &table("nokey"), &s.columns, &[2], 2, None).await;
    assert_eq!(
        got,
        [
            [Value::text("x"), Value::Integer(1), Value::Integer(1)],
            [Value::text("y"), Value::Integer(2), Value::Integer(2)],
            [Value::text("z"), Value::Integer(3), Value::Integer(3)]
        ]
    );
    let s = src.table_schema(&table("shadow")).await.unwrap();
    assert_eq!(s.primary_key, ["_rowid_"]);
    let got = scan(src, &table("shadow"), &s.columns, &[2], 10, None).await;
    assert_eq!(got[1], [Value::text("b"), Value::Integer(2), Value::Integer(2)]);
    // WITHOUT ROWID: the declared key, in key order (k2 first).
    let s = src.table_schema(&table("composite")).await.unwrap();
    assert_eq!(s.primary_key, ["k2", "k1"]);
    let got = scan(src, &table("composite"), &s.columns, &[1, 0], 1, None).await;
    assert_eq!(got.iter().map(|r| r[2].clone()).collect::<Vec<_>>(), [Value::text("q"), Value::text("p"), Value::text("r")]);
    // A view has no key to find: the engine then asks the user for one.
    let s = src.table_schema(&table("items_view")).await.unwrap();
    assert!(s.primary_key.is_empty());
    assert_eq!(s.columns.len(), 2);
    // Names that need quoting, and an explicit database.
    let w = TableName { schema: Some("main".into()), name: "We\"ird".into() };
    let s = src.table_schema(&w).await.unwrap();
    assert_eq!(s.primary_key, ["i d"]);
    let got = scan(src, &w, &s.columns, &[0], 1, None).await;
    assert_eq!(got[1], [Value::Integer(2), Value::text("two")]);

    let e = src.table_schema(&table("missing")).await.unwrap_err();
    assert_eq!(e.status(), 502);
    assert!(e.message().contains("\"missing\" does not exist"), "{}", e.message());
    let e = src.count_nulls(&table("missing"), &cols[0]).await.unwrap_err();
    assert!(e.message().contains("no such table"), "{}", e.message());
}

#[tokio::test]
async fn starbase_transport_is_exact() {
    let c = conn();
    let mut src = starbase(&c);
    exercise(&mut src, &c).await;
    let e = src.table_schema(&table("missing")).await.unwrap_err();
    assert!(e.message().starts_with("source starbase at http://a.test: "), "{}", e.message());
}

#[tokio::test]
async fn d1_rest_transport_is_exact() {
    let c = conn();
    let mut src = d1_rest(&c);
    exercise(&mut src, &c).await;
    let e = src
        .count_nulls(&table("missing"), &Column { name: "a".into(), source_type: String::new(), affinity: Affinity::Any, nullable: true })
        .await
        .unwrap_err();
    assert!(e.message().contains("no such table: missing: SQLITE_ERROR (code 7500)"), "{}", e.message());
}

#[tokio::test]
async fn hrana_transport_is_exact() {
    let c = conn();
    exercise(&mut sqld(&c, false), &c).await;
    // A Hrana 2 server: the client falls back once and stays there.
    let mut src = sqld(&c, true);
    exercise(&mut src, &c).await;
}

#[tokio::test]
async fn hrana_streams_are_closed_and_v2_fallback_sticks() {
    let c = conn();
    let server = Sqld {
        conn: c.clone(),
        streams: RefCell::new(vec![]),
        next: RefCell::new(0),
        only_v2: true,
        pad_base64: true,
        log: RefCell::new(vec![]),
    };
    let mut t = HranaTransport::new(HranaClient::new(server, "http://sqld.test/", None, "libsql at http://sqld.test".into()));
    t.query("SELECT 1", &[]).await.unwrap();
    t.query("SELECT 2", &[]).await.unwrap();
    assert_eq!(t.client().version(), "v2");
    assert_eq!(t.client().baton(), None, "each statement closes its stream");
}

#[tokio::test]
async fn default_schema_qualifies_unqualified_tables() {
    let c = conn();
    c.execute_batch("ATTACH DATABASE ':memory:' AS other; CREATE TABLE other.items (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO other.items VALUES (1, 'elsewhere');")
        .unwrap();
    let mut src = starbase(&c).with_default_schema(Some("other".into()));
    let s = src.table_schema(&table("items")).await.unwrap();
    assert_eq!(s.columns.len(), 2);
    let got = scan(&mut src, &table("items"), &s.columns, &[0], 10, None).await;
    assert_eq!(got, [[Value::Integer(1), Value::text("elsewhere")]]);
    // A qualified name still wins.
    let s = src.table_schema(&TableName { schema: Some("main".into()), name: "items".into() }).await.unwrap();
    assert_eq!(s.columns.len(), 8);
}

#[tokio::test]
async fn refused_introspection_falls_back_to_column_names() {
    let c = conn();
    let server = JsServer {
        conn: c.clone(),
        flavor: Flavor::Starbase,
        forbid: Some("pragma_table_info"),
        echo_token: false,
        log: RefCell::new(vec![]),
    };
    let mut src = SqliteSource::new(StarbaseTransport::new(server, "http://a.test", TOKEN.into(), "starbase at http://a.test".into()));
    let s = src.table_schema(&table("items")).await.unwrap();
    assert!(s.primary_key.is_empty(), "without pragma rights there is no key to find: the config must name it");
    assert_eq!(s.columns.len(), 8);
    assert!(s.columns.iter().all(|c| c.affinity == Affinity::Any && c.nullable));
    // The values stay exact all the same.
    let got = scan(&mut src, &table("items"), &s.columns, &[0], 9, None).await;
    let (_, want) = run(&c, "SELECT * FROM items ORDER BY id", &[]).unwrap();
    assert!(same(&got, &want));
}

#[tokio::test]
async fn errors_never_carry_the_token() {
    let c = conn();
    let server = JsServer { conn: c.clone(), flavor: Flavor::Starbase, forbid: None, echo_token: true, log: RefCell::new(vec![]) };
    let mut src = SqliteSource::new(StarbaseTransport::new(server, "http://a.test", TOKEN.into(), "starbase at http://a.test".into()));
    let e = src
        .count_nulls(&table("missing"), &Column { name: "a".into(), source_type: String::new(), affinity: Affinity::Any, nullable: true })
        .await
        .unwrap_err();
    assert!(e.message().contains("no such table") && e.message().contains("<redacted>"), "{}", e.message());
    assert!(!e.message().contains(TOKEN));
}

#[tokio::test]
async fn requests_are_built_as_documented() {
    let c = conn();
    let mut src = d1_rest(&c);
    let t = table("items");
    let cols = src.table_schema(&t).await.unwrap().columns;
    let after = [Value::Integer(5)];
    src.fetch_page(&PageRequest { table: &t, columns: &cols, order: &[0], after: Some(&after), from: None, limit: 2 }).await.unwrap();
    let log = &src.transport_log();
    let (url, body) = log.last().unwrap();
    assert_eq!(url, "https://api.test/client/v4/accounts/acc0123/d1/database/db-4567/raw");
    assert_eq!(body["params"], json!(["5"]));
    assert!(body["sql"].as_str().unwrap().contains("WHERE \"id\" > CAST(?1 AS INTEGER) ORDER BY \"id\" LIMIT 2"));
    assert_eq!(body.as_object().unwrap().len(), 2, "only sql and params: {body}");
    assert!(D1RestTransport::new(
        JsServer { conn: c.clone(), flavor: Flavor::D1Rest, forbid: None, echo_token: false, log: RefCell::new(vec![]) },
        "https://x",
        "a/../b",
        "d",
        "t".into(),
        "o".into()
    )
    .is_err());

    let mut src = starbase(&c);
    src.table_schema(&t).await.unwrap();
    let (url, body) = src.transport_log().last().unwrap().clone();
    assert_eq!(url, "http://a.test/query/raw");
    assert_eq!(body, json!({"sql": "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1)", "params": ["items"]}));
}

/// Access to the fake server's request log through the source.
trait Logged {
    fn transport_log(&self) -> Vec<(String, Json)>;
}
impl<T: Transport + HasServer> Logged for SqliteSource<T> {
    fn transport_log(&self) -> Vec<(String, Json)> {
        self.transport().server().log.borrow().clone()
    }
}
trait HasServer {
    fn server(&self) -> &JsServer;
}
impl HasServer for StarbaseTransport<JsServer> {
    fn server(&self) -> &JsServer {
        self.http()
    }
}
impl HasServer for D1RestTransport<JsServer> {
    fn server(&self) -> &JsServer {
        self.http()
    }
}

/// Range counts and key lookups over one transport: integer keys beyond 2^53, a composite key,
/// an untyped key with every storage class, and a NOCASE key (ranges in bytes, lookups by the
/// column's own collation).
async fn reconcile_lookups<S: Source>(src: &mut S, conn: &Connection) {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS mixed (k PRIMARY KEY, v);
         INSERT OR IGNORE INTO mixed VALUES (1, 'a'), (2.5, 'b'), ('x', 'c'), ('X', 'd'), (X'00FF', 'e'), (9007199254740993, 'f'),
           (-9e999, 'g'), (9e999, 'h'), ('', 'i'), (X'', 'j'), (-1, 'k'), (0.1, 'l');
         CREATE TABLE IF NOT EXISTS folded (k TEXT COLLATE NOCASE PRIMARY KEY);
         INSERT OR IGNORE INTO folded VALUES ('a'), ('B'), ('c'), ('é'), ('Z');",
    )
    .unwrap();
    let any = |n: &str| Column { name: n.into(), source_type: String::new(), affinity: Affinity::Any, nullable: true };
    for (tbl, key) in [("items", vec!["id"]), ("composite", vec!["k2", "k1"]), ("mixed", vec!["k"]), ("folded", vec!["k"])] {
        let cols: Vec<Column> = key.iter().map(|k| any(k)).collect();
        let (_, rows) = run(conn, &format!("SELECT {} FROM {tbl}", key.join(", ")), &[]).unwrap();
        let sorted = edge_replica::test_support::replica_order(&rows);
        for step in [1, 2, 3] {
            edge_replica::test_support::check_key_ranges(src, &table(tbl), &cols, &sorted, step).await;
        }
        assert_eq!(src.absent_keys(&table(tbl), &cols, &sorted).await.unwrap(), Vec::<usize>::new(), "{tbl}");
    }
    let k = [any("k")];
    let asked = vec![
        vec![Value::Integer(9_007_199_254_740_993)],
        vec![Value::Integer(9_007_199_254_740_992)],
        vec![Value::Real(2.5)],
        vec![Value::text("2.5")],
        vec![Value::Blob(vec![0, 255])],
        vec![Value::Real(f64::NEG_INFINITY)],
        vec![Value::Null],
    ];
    assert_eq!(src.absent_keys(&table("mixed"), &k, &asked).await.unwrap(), [1, 3], "a NULL key is never reported absent");
    let asked: Vec<Vec<Value>> = ["A", "b", "É", "d"].iter().map(|s| vec![Value::text(*s)]).collect();
    assert_eq!(src.absent_keys(&table("folded"), &k, &asked).await.unwrap(), [2, 3], "NOCASE folds ASCII only");
}

#[tokio::test]
async fn reconcile_lookups_are_exact_over_every_transport() {
    let c = conn();
    reconcile_lookups(&mut starbase(&c), &c).await;
    reconcile_lookups(&mut d1_rest(&c), &c).await;
    reconcile_lookups(&mut sqld(&c, false), &c).await;
}
