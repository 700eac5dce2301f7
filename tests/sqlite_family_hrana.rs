//! The Hrana codec against the shapes of the Hrana 3 specification (libsql docs/HRANA_3_SPEC.md)
//! and what sqld sends, and the client's handling of batons, `base_url`, the v2 fallback and
//! errors, driven by a scripted in-process HTTP fake (not a real server).

use edge_replica::source::sqlite_family::hrana::*;
use edge_replica::source::sqlite_family::{HttpClient, HttpResponse};
use edge_replica::value::Value;
use serde_json::{json, Value as Json};
use std::cell::RefCell;
use std::collections::VecDeque;

const TOKEN: &str = "eyJhbGciOiJFZERTQSJ9.secret-part";

fn execute(sql: &str) -> StreamRequest {
    StreamRequest::Execute(Stmt::new(sql, vec![]))
}

#[test]
fn requests_match_the_specification() {
    let stmt = Stmt::new(
        "SELECT ?1, ?2, ?3, ?4, ?5",
        vec![Value::Null, Value::Integer(i64::MIN), Value::Real(0.1), Value::text("é\"x"), Value::Blob(vec![0, 1, 2, 3, 255])],
    );
    let body = encode_pipeline(None, &[StreamRequest::Execute(stmt), StreamRequest::Close]).unwrap();
    let v: Json = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v,
        json!({"baton": null, "requests": [
            {"type": "execute", "stmt": {"sql": "SELECT ?1, ?2, ?3, ?4, ?5", "want_rows": true, "args": [
                {"type": "null"},
                {"type": "integer", "value": "-9223372036854775808"},
                {"type": "float", "value": 0.1},
                {"type": "text", "value": "é\"x"},
                {"type": "blob", "base64": "AAECA/8"}
            ]}},
            {"type": "close"}
        ]})
    );
    // The float goes out as the shortest text that reads back to the same double.
    assert!(body.contains(r#""value":0.1}"#), "{body}");

    let steps = vec![
        BatchStep { condition: None, stmt: Stmt::new("BEGIN", vec![]) },
        BatchStep { condition: Some(BatchCond::Ok(0)), stmt: Stmt::new("SELECT 1", vec![]) },
        BatchStep {
            condition: Some(BatchCond::And(vec![
                BatchCond::Not(Box::new(BatchCond::Error(1))),
                BatchCond::Or(vec![BatchCond::IsAutocommit]),
            ])),
            stmt: Stmt::new("COMMIT", vec![]),
        },
    ];
    let v: Json = serde_json::from_str(&encode_pipeline(Some("b1"), &[StreamRequest::Batch(steps)]).unwrap()).unwrap();
    assert_eq!(v["baton"], "b1");
    let s = &v["requests"][0]["batch"]["steps"];
    assert!(s[0].get("condition").is_none());
    assert_eq!(s[1]["condition"], json!({"type": "ok", "step": 0}));
    assert_eq!(
        s[2]["condition"],
        json!({"type": "and", "conds": [{"type": "not", "cond": {"type": "error", "step": 1}}, {"type": "or", "conds": [{"type": "is_autocommit"}]}]})
    );
    assert!(encode_value(&Value::Real(f64::INFINITY)).is_err());
}

/// An answer as sqld writes it, with the fields this client does not use (which must be ignored).
const SQLD_ANSWER: &str = r#"{
  "baton": "YmF0b24=.sig", "base_url": null,
  "results": [
    {"type": "ok", "response": {"type": "execute", "result": {
      "cols": [{"name": "i", "decltype": "INTEGER"}, {"name": "f", "decltype": null}, {"name": "t"}, {"name": null, "decltype": "BLOB"}, {"name": "n", "decltype": null}],
      "rows": [
        [{"type": "integer", "value": "9223372036854775807"}, {"type": "float", "value": 1.7976931348623157e308}, {"type": "text", "value": "ok"},
         {"type": "blob", "base64": "aGVsbG8"}, {"type": "null"}],
        [{"type": "integer", "value": "9007199254740993"}, {"type": "float", "value": 5e-324}, {"type": "text", "value": ""},
         {"type": "blob", "base64": "aGVsbG8="}, {"type": "float", "value": null}]
      ],
      "affected_row_count": 0, "last_insert_rowid": null, "replication_index": "42",
      "rows_read": 2, "rows_written": 0, "query_duration_ms": 0.25, "future_field": {"x": 1}
    }}},
    {"type": "error", "error": {"message": "SQLite error: no such table: nope"}},
    {"type": "ok", "response": {"type": "close"}}
  ]
}"#;

#[test]
fn responses_decode_exactly() {
    let reqs = [execute("SELECT ..."), execute("SELECT * FROM nope"), StreamRequest::Close];
    let r = decode_pipeline(SQLD_ANSWER, &reqs).unwrap();
    assert_eq!(r.baton.as_deref(), Some("YmF0b24=.sig"));
    assert_eq!(r.base_url, None);
    let StreamResult::Ok(StreamResponse::Execute(res)) = &r.results[0] else { panic!("{:?}", r.results[0]) };
    assert_eq!(res.cols[0], Col { name: Some("i".into()), decltype: Some("INTEGER".into()) });
    assert_eq!(res.cols[2].decltype, None);
    assert_eq!(res.cols[3].name, None);
    assert_eq!(res.rows[0][0], Value::Integer(i64::MAX));
    assert_eq!(res.rows[0][1], Value::Real(f64::MAX));
    assert_eq!(res.rows[0][3], Value::Blob(b"hello".to_vec()));
    assert_eq!(res.rows[1][0], Value::Integer(9_007_199_254_740_993));
    assert_eq!(res.rows[1][1], Value::Real(5e-324));
    assert_eq!(res.rows[1][3], Value::Blob(b"hello".to_vec()));
    // An infinity, which JSON cannot hold: kept as NaN for the source to resolve, never as NULL.
    assert!(matches!(res.rows[1][4], Value::Real(f) if f.is_nan()));
    assert_eq!(res.rows[0][4], Value::Null);
    assert_eq!(r.results[1], StreamResult::Error(HranaError { message: "SQLite error: no such table: nope".into(), code: None }));
    assert_eq!(r.results[2], StreamResult::Ok(StreamResponse::Close));

    let batch = r#"{"baton": null, "base_url": null, "results": [{"type": "ok", "response": {"type": "batch", "result": {
        "step_results": [{"cols": [], "rows": [], "affected_row_count": 0, "last_insert_rowid": "12"}, null],
        "step_errors": [null, {"message": "boom", "code": "SQLITE_ERROR"}]}}}]}"#;
    let r = decode_pipeline(batch, &[StreamRequest::Batch(vec![])]).unwrap();
    let StreamResult::Ok(StreamResponse::Batch(b)) = &r.results[0] else { panic!() };
    assert_eq!(b.step_results[0].as_ref().unwrap().last_insert_rowid, Some(12));
    assert_eq!(b.step_errors[1].as_ref().unwrap().to_string(), "boom (SQLITE_ERROR)");
}

#[test]
fn unknown_or_inconsistent_answers_fail_loudly() {
    let ok = |result: Json| {
        json!({"baton": null, "base_url": null, "results": [{"type": "ok", "response": {"type": "execute", "result": result}}]}).to_string()
    };
    let result =
        |rows: Json| json!({"cols": [{"name": "a", "decltype": null}], "rows": rows, "affected_row_count": 0, "last_insert_rowid": null});
    let req = [execute("SELECT a")];
    let cases: Vec<(String, &str)> = vec![
        (ok(result(json!([[{"type": "bigint", "value": "1"}]]))), "unknown value type \"bigint\""),
        (ok(result(json!([[{"type": "integer", "value": 1}]]))), "integer value is not a string"),
        (ok(result(json!([[{"type": "integer", "value": "9223372036854775808"}]]))), "not a 64-bit integer"),
        (ok(result(json!([[{"type": "blob", "base64": "a$"}]]))), "base64"),
        (ok(result(json!([[{"type": "text"}]]))), "has no `value`"),
        (ok(result(json!([[{"type": "null"}, {"type": "null"}]]))), "row 0 has 2 values for 1 columns"),
        (ok(json!({"rows": []})), "has no `cols`"),
        (json!({"baton": null, "results": []}).to_string(), "0 results for 1 requests"),
        (
            json!({"baton": null, "results": [{"type": "ok", "response": {"type": "close"}}]}).to_string(),
            "a \"close\" response answers a \"execute\" request",
        ),
        (json!({"baton": null, "results": [{"type": "maybe"}]}).to_string(), "unknown stream result type"),
        (json!({"baton": 5, "results": [{"type": "error", "error": {"message": "x"}}]}).to_string(), "`baton`"),
        ("<html>".into(), "not JSON"),
    ];
    for (body, needle) in cases {
        let e = decode_pipeline(&body, &req).unwrap_err();
        assert!(e.contains(needle), "{body}: {e:?} lacks {needle:?}");
    }
}

/// (url, headers, body) of one request.
type Logged = (String, Vec<(String, String)>, Json);
/// An answer to script: (status, body) or a transport failure.
type Answer = Result<(u16, Json), String>;

/// Answers scripted responses in order and records each request.
struct Scripted {
    answers: RefCell<VecDeque<Result<HttpResponse, String>>>,
    log: RefCell<Vec<Logged>>,
}

impl Scripted {
    fn new(answers: Vec<Answer>) -> Self {
        let answers = answers
            .into_iter()
            .map(|a| {
                a.map(|(status, body)| HttpResponse {
                    status,
                    body: if let Json::String(s) = &body { s.clone() } else { body.to_string() },
                })
            })
            .collect();
        Scripted { answers: RefCell::new(answers), log: RefCell::new(vec![]) }
    }
}

impl HttpClient for Scripted {
    async fn post(&self, url: &str, headers: &[(&str, &str)], body: String) -> Result<HttpResponse, String> {
        let h = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.log.borrow_mut().push((url.to_string(), h, serde_json::from_str(&body).unwrap()));
        self.answers.borrow_mut().pop_front().expect("no more scripted answers")
    }
}

fn exec_ok(baton: Option<&str>, base_url: Option<&str>, value: &str) -> Json {
    json!({"baton": baton, "base_url": base_url, "results": [{"type": "ok", "response": {"type": "execute", "result": {
        "cols": [{"name": "v", "decltype": null}], "rows": [[{"type": "text", "value": value}]], "affected_row_count": 0, "last_insert_rowid": null}}}]})
}

fn client(s: Scripted, token: Option<&str>) -> HranaClient<Scripted> {
    HranaClient::new(s, "https://db.example.com/", token.map(str::to_string), "libsql at https://db.example.com".into())
}

#[tokio::test]
async fn batons_and_base_url_are_followed() {
    let s = Scripted::new(vec![
        Ok((200, exec_ok(Some("b1"), Some("https://replica-7.example.com"), "one"))),
        Ok((200, exec_ok(Some("b2"), None, "two"))),
        Ok((200, json!({"baton": null, "base_url": null, "results": [{"type": "ok", "response": {"type": "close"}}]}))),
        Ok((200, exec_ok(Some("b3"), None, "three"))),
    ]);
    let mut c = client(s, Some(TOKEN));
    let r = c.execute(Stmt::new("SELECT 'one'", vec![])).await.unwrap();
    assert_eq!(r.rows, [[Value::text("one")]]);
    assert_eq!(c.baton(), Some("b1"));
    c.execute(Stmt::new("SELECT 'two'", vec![])).await.unwrap();
    c.close().await.unwrap();
    assert_eq!(c.baton(), None);
    c.close().await.unwrap(); // no stream: nothing sent
    c.execute(Stmt::new("SELECT 'three'", vec![])).await.unwrap();
    let log = c_log(&c);
    assert_eq!(log.len(), 4);
    assert_eq!(log[0].0, "https://db.example.com/v3/pipeline");
    assert_eq!(log[0].2["baton"], Json::Null);
    assert!(log[0].1.contains(&("authorization".into(), format!("Bearer {TOKEN}"))));
    // The stream moved to base_url and carried its baton; a null base_url keeps the last one.
    assert_eq!((log[1].0.as_str(), &log[1].2["baton"]), ("https://replica-7.example.com/v3/pipeline", &json!("b1")));
    assert_eq!((log[2].0.as_str(), &log[2].2["baton"]), ("https://replica-7.example.com/v3/pipeline", &json!("b2")));
    assert_eq!(log[2].2["requests"], json!([{"type": "close"}]));
    // After the close a new stream starts at the database's own URL.
    assert_eq!((log[3].0.as_str(), &log[3].2["baton"]), ("https://db.example.com/v3/pipeline", &Json::Null));
}

fn c_log(c: &HranaClient<Scripted>) -> Vec<Logged> {
    c.http().log.borrow().clone()
}

#[tokio::test]
async fn falls_back_to_v2_on_404() {
    let with_close = |v: &str| {
        let mut a = exec_ok(None, None, v);
        a["results"].as_array_mut().unwrap().push(json!({"type": "ok", "response": {"type": "close"}}));
        a
    };
    let s = Scripted::new(vec![Ok((404, json!("Not Found"))), Ok((200, with_close("v2"))), Ok((200, with_close("again")))]);
    let mut c = client(s, None);
    let r = c.execute_and_close(Stmt::new("SELECT 1", vec![])).await.unwrap();
    assert_eq!(r.rows, [[Value::text("v2")]]);
    assert_eq!(c.version(), "v2");
    c.execute_and_close(Stmt::new("SELECT 2", vec![])).await.unwrap();
    let log = c_log(&c);
    let urls: Vec<&str> = log.iter().map(|l| l.0.as_str()).collect();
    assert_eq!(urls, ["https://db.example.com/v3/pipeline", "https://db.example.com/v2/pipeline", "https://db.example.com/v2/pipeline"]);
    assert!(log.iter().all(|l| !l.1.iter().any(|(k, _)| k == "authorization")), "no token, no header");

    let s = Scripted::new(vec![Ok((404, json!("Not Found"))), Ok((404, json!("Not Found")))]);
    let e = client(s, None).execute(Stmt::new("SELECT 1", vec![])).await.unwrap_err();
    assert!(e.message().contains("HTTP 404 from https://db.example.com/v2/pipeline"), "{}", e.message());
}

#[tokio::test]
async fn errors_are_clear_and_never_show_the_token() {
    let cases: Vec<(Answer, &str)> = vec![
        (
            Ok((401, json!({"error": format!("Unauthorized: invalid token {TOKEN}")}))),
            "HTTP 401 from https://db.example.com/v3/pipeline: Unauthorized: invalid token <redacted>; check the token",
        ),
        (
            Ok((400, json!({"message": "bad baton", "code": "STREAM_EXPIRED"}))),
            "HTTP 400 from https://db.example.com/v3/pipeline: bad baton (STREAM_EXPIRED)",
        ),
        (
            Ok((502, json!("<html><body>Bad gateway</body></html>"))),
            "HTTP 502 from https://db.example.com/v3/pipeline: <html><body>Bad gateway",
        ),
        (Err("connection refused".into()), "request to https://db.example.com/v3/pipeline failed: connection refused"),
        (
            Ok((
                200,
                json!({"baton": null, "results": [{"type": "error", "error": {"message": "SQLite error: no such table: t", "code": "SQLITE_UNKNOWN"}}]}),
            )),
            "SQLite error: no such table: t (SQLITE_UNKNOWN)",
        ),
        (
            Ok((
                200,
                json!({"baton": null, "results": [{"type": "ok", "response": {"type": "execute", "result": {"cols": [], "rows": [[{"type": "null"}]]}}}]}),
            )),
            "not a Hrana pipeline response I understand: result 0: row 0 has 1 values for 0 columns",
        ),
        (
            Ok((
                200,
                json!({"baton": "b", "base_url": "ftp://x", "results": [{"type": "ok", "response": {"type": "execute", "result": {"cols": [], "rows": []}}}]}),
            )),
            "base_url",
        ),
    ];
    for (answer, needle) in cases {
        let mut c = client(Scripted::new(vec![answer]), Some(TOKEN));
        let e = c.execute(Stmt::new("SELECT 1", vec![])).await.unwrap_err();
        assert_eq!(e.status(), 502);
        assert!(e.message().starts_with("source libsql at https://db.example.com: "), "{}", e.message());
        assert!(e.message().contains(needle), "{} lacks {needle}", e.message());
        assert!(!e.message().contains("secret-part"), "{}", e.message());
        assert_eq!(c.baton(), None, "a failed request leaves no stream behind");
    }
}
