//! Hrana over HTTP, the remote protocol of libSQL servers (sqld, Turso): JSON pipelines on
//! `POST {url}/v3/pipeline`, falling back to `/v2/pipeline` when a server has no version 3.
//!
//! Written by hand rather than with the `libsql-hrana` crate: that crate's JSON types are
//! internally tagged serde enums, which cannot read numbers when serde_json's
//! `arbitrary_precision` is on (this crate needs it for exact JSON elsewhere, and Cargo
//! features are global), and its `Error` requires the `code` that the specification makes
//! optional. The decoder here follows the specification (libsql docs/HRANA_3_SPEC.md) and is
//! strict about what it must understand: an unknown value or response type, a result that
//! does not answer the request it belongs to, or a row of the wrong width is an error that
//! says so, never a guess. Unknown fields are ignored, as the specification requires.
//!
//! Values are exact: integers are decimal strings (all 64 bits), floats JSON numbers (read
//! with correct rounding), blobs base64 with or without padding. A float the server could not
//! write in JSON (±Infinity, which sqld's serde sends as `null`) decodes as NaN, a value SQLite
//! never holds; `SqliteSource` restores its sign from a column it selects for that purpose.

use super::{redact, snippet, HttpClient, Rows, Transport, TransportError, Wire};
use crate::error::{Error, Result};
use crate::value::Value;
use serde_json::{json, Map, Value as Json};

#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    pub sql: String,
    pub args: Vec<Value>,
    pub want_rows: bool,
}

impl Stmt {
    pub fn new(sql: impl Into<String>, args: Vec<Value>) -> Self {
        Stmt { sql: sql.into(), args, want_rows: true }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum BatchCond {
    Ok(u32),
    Error(u32),
    Not(Box<BatchCond>),
    And(Vec<BatchCond>),
    Or(Vec<BatchCond>),
    IsAutocommit,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BatchStep {
    pub condition: Option<BatchCond>,
    pub stmt: Stmt,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StreamRequest {
    Execute(Stmt),
    Batch(Vec<BatchStep>),
    Close,
}

impl StreamRequest {
    fn type_name(&self) -> &'static str {
        match self {
            StreamRequest::Execute(_) => "execute",
            StreamRequest::Batch(_) => "batch",
            StreamRequest::Close => "close",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Col {
    pub name: Option<String>,
    pub decltype: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StmtResult {
    pub cols: Vec<Col>,
    pub rows: Vec<Vec<Value>>,
    pub affected_row_count: u64,
    pub last_insert_rowid: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HranaError {
    pub message: String,
    pub code: Option<String>,
}

impl std::fmt::Display for HranaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.code {
            Some(c) => write!(f, "{} ({c})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BatchResult {
    pub step_results: Vec<Option<StmtResult>>,
    pub step_errors: Vec<Option<HranaError>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StreamResponse {
    Execute(StmtResult),
    Batch(BatchResult),
    Close,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StreamResult {
    Ok(StreamResponse),
    Error(HranaError),
}

#[derive(Debug, Clone, PartialEq)]
pub struct PipelineResponse {
    pub baton: Option<String>,
    pub base_url: Option<String>,
    pub results: Vec<StreamResult>,
}

// ---------------------------------------------------------------------------------------------
// Encoding

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 without padding, as sqld itself writes blobs.
pub fn encode_base64(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = (chunk[0] as u32) << 16 | (*chunk.get(1).unwrap_or(&0) as u32) << 8 | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..=chunk.len() {
            s.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    s
}

/// Standard base64, padding optional (the specification lets servers omit it).
pub fn decode_base64(s: &str) -> Result<Vec<u8>, String> {
    let body = s.strip_suffix("==").or_else(|| s.strip_suffix('=')).unwrap_or(s);
    if body.len() % 4 == 1 || (body.len() != s.len() && !s.len().is_multiple_of(4)) {
        return Err("base64 of impossible length".into());
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in body.bytes() {
        let v = B64.iter().position(|&b| b == c).ok_or_else(|| format!("{:?} is not a base64 character", c as char))? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

pub fn encode_value(v: &Value) -> Result<Json, String> {
    Ok(match v {
        Value::Null => json!({"type": "null"}),
        Value::Integer(i) => json!({"type": "integer", "value": i.to_string()}),
        Value::Real(f) if !f.is_finite() => return Err(format!("the float {f} cannot be sent in Hrana's JSON")),
        Value::Real(f) => json!({"type": "float", "value": f}),
        Value::Text(s) => json!({"type": "text", "value": s}),
        Value::Blob(b) => json!({"type": "blob", "base64": encode_base64(b)}),
    })
}

fn encode_stmt(s: &Stmt) -> Result<Json, String> {
    let args = s.args.iter().map(encode_value).collect::<Result<Vec<_>, _>>()?;
    Ok(json!({"sql": s.sql, "args": args, "want_rows": s.want_rows}))
}

fn encode_cond(c: &BatchCond) -> Json {
    match c {
        BatchCond::Ok(step) => json!({"type": "ok", "step": step}),
        BatchCond::Error(step) => json!({"type": "error", "step": step}),
        BatchCond::Not(c) => json!({"type": "not", "cond": encode_cond(c)}),
        BatchCond::And(cs) => json!({"type": "and", "conds": cs.iter().map(encode_cond).collect::<Vec<_>>()}),
        BatchCond::Or(cs) => json!({"type": "or", "conds": cs.iter().map(encode_cond).collect::<Vec<_>>()}),
        BatchCond::IsAutocommit => json!({"type": "is_autocommit"}),
    }
}

/// The body of `POST v3/pipeline`.
pub fn encode_pipeline(baton: Option<&str>, requests: &[StreamRequest]) -> Result<String, String> {
    let mut reqs = Vec::with_capacity(requests.len());
    for r in requests {
        reqs.push(match r {
            StreamRequest::Execute(s) => json!({"type": "execute", "stmt": encode_stmt(s)?}),
            StreamRequest::Batch(steps) => {
                let mut out = Vec::with_capacity(steps.len());
                for st in steps {
                    let mut m = Map::new();
                    if let Some(c) = &st.condition {
                        m.insert("condition".into(), encode_cond(c));
                    }
                    m.insert("stmt".into(), encode_stmt(&st.stmt)?);
                    out.push(Json::Object(m));
                }
                json!({"type": "batch", "batch": {"steps": out}})
            }
            StreamRequest::Close => json!({"type": "close"}),
        });
    }
    Ok(json!({"baton": baton, "requests": reqs}).to_string())
}

// ---------------------------------------------------------------------------------------------
// Decoding

fn obj<'a>(v: &'a Json, what: &str) -> Result<&'a Map<String, Json>, String> {
    v.as_object().ok_or_else(|| format!("{what} is not an object"))
}

fn field<'a>(m: &'a Map<String, Json>, f: &str, what: &str) -> Result<&'a Json, String> {
    m.get(f).ok_or_else(|| format!("{what} has no `{f}`"))
}

fn opt_string(m: &Map<String, Json>, f: &str, what: &str) -> Result<Option<String>, String> {
    match m.get(f) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("`{f}` of {what} is not a string")),
    }
}

fn type_of<'a>(m: &'a Map<String, Json>, what: &str) -> Result<&'a str, String> {
    field(m, "type", what)?.as_str().ok_or_else(|| format!("`type` of {what} is not a string"))
}

pub fn decode_value(v: &Json) -> Result<Value, String> {
    let m = obj(v, "a value")?;
    let t = type_of(m, "a value")?;
    let value = || field(m, "value", &format!("a {t} value"));
    Ok(match t {
        "null" => Value::Null,
        "integer" => {
            let s = value()?.as_str().ok_or("an integer value is not a string (Hrana sends integers as decimal text)")?;
            Value::Integer(s.parse().map_err(|_| format!("integer value {s:?} is not a 64-bit integer"))?)
        }
        "float" => match value()? {
            Json::Number(n) => Value::Real(n.as_f64().ok_or_else(|| format!("float value {n} is out of range"))?),
            Json::Null => Value::Real(f64::NAN),
            _ => return Err("a float value is not a number".into()),
        },
        "text" => Value::Text(value()?.as_str().ok_or("a text value is not a string")?.to_string()),
        "blob" => {
            let s = field(m, "base64", "a blob value")?.as_str().ok_or("`base64` of a blob value is not a string")?;
            Value::Blob(decode_base64(s)?)
        }
        other => return Err(format!("unknown value type {other:?}")),
    })
}

fn decode_error(v: &Json) -> Result<HranaError, String> {
    let m = obj(v, "an error")?;
    let message = field(m, "message", "an error")?.as_str().ok_or("`message` of an error is not a string")?.to_string();
    Ok(HranaError { message, code: opt_string(m, "code", "an error")? })
}

fn as_u64(v: &Json, what: &str) -> Result<u64, String> {
    v.as_u64().ok_or_else(|| format!("{what} is not a non-negative integer"))
}

pub fn decode_stmt_result(v: &Json) -> Result<StmtResult, String> {
    let m = obj(v, "a statement result")?;
    let cols = field(m, "cols", "a statement result")?
        .as_array()
        .ok_or("`cols` is not an array")?
        .iter()
        .map(|c| {
            let c = obj(c, "a column")?;
            Ok(Col { name: opt_string(c, "name", "a column")?, decltype: opt_string(c, "decltype", "a column")? })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let rows = field(m, "rows", "a statement result")?
        .as_array()
        .ok_or("`rows` is not an array")?
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let r = r.as_array().ok_or_else(|| format!("row {i} is not an array"))?;
            if r.len() != cols.len() {
                return Err(format!("row {i} has {} values for {} columns", r.len(), cols.len()));
            }
            r.iter().map(decode_value).collect::<Result<Vec<_>, _>>().map_err(|e| format!("row {i}: {e}"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let affected_row_count = match m.get("affected_row_count") {
        None | Some(Json::Null) => 0,
        Some(n) => as_u64(n, "`affected_row_count`")?,
    };
    let last_insert_rowid = match opt_string(m, "last_insert_rowid", "a statement result")? {
        None => None,
        Some(s) => Some(s.parse().map_err(|_| format!("`last_insert_rowid` {s:?} is not a 64-bit integer"))?),
    };
    Ok(StmtResult { cols, rows, affected_row_count, last_insert_rowid })
}

fn decode_batch_result(v: &Json) -> Result<BatchResult, String> {
    let m = obj(v, "a batch result")?;
    let list = |f: &str| -> Result<&Vec<Json>, String> {
        field(m, f, "a batch result")?.as_array().ok_or_else(|| format!("`{f}` is not an array"))
    };
    let step_results = list("step_results")?
        .iter()
        .map(|r| if r.is_null() { Ok(None) } else { decode_stmt_result(r).map(Some) })
        .collect::<Result<Vec<_>, _>>()?;
    let step_errors = list("step_errors")?
        .iter()
        .map(|e| if e.is_null() { Ok(None) } else { decode_error(e).map(Some) })
        .collect::<Result<Vec<_>, _>>()?;
    if step_results.len() != step_errors.len() {
        return Err("`step_results` and `step_errors` differ in length".into());
    }
    Ok(BatchResult { step_results, step_errors })
}

fn decode_result(v: &Json, request: &StreamRequest) -> Result<StreamResult, String> {
    let m = obj(v, "a stream result")?;
    match type_of(m, "a stream result")? {
        "ok" => {
            let resp = obj(field(m, "response", "an ok result")?, "a response")?;
            let t = type_of(resp, "a response")?;
            if t != request.type_name() {
                return Err(format!("a {t:?} response answers a {:?} request", request.type_name()));
            }
            Ok(StreamResult::Ok(match t {
                "execute" => StreamResponse::Execute(decode_stmt_result(field(resp, "result", "an execute response")?)?),
                "batch" => StreamResponse::Batch(decode_batch_result(field(resp, "result", "a batch response")?)?),
                _ => StreamResponse::Close,
            }))
        }
        "error" => Ok(StreamResult::Error(decode_error(field(m, "error", "an error result")?)?)),
        other => Err(format!("unknown stream result type {other:?}")),
    }
}

/// The answer to a pipeline of `requests`: one result per request, each of the right type.
pub fn decode_pipeline(body: &str, requests: &[StreamRequest]) -> Result<PipelineResponse, String> {
    let v: Json = serde_json::from_str(body).map_err(|e| format!("not JSON ({e})"))?;
    let m = obj(&v, "the pipeline response")?;
    let results = field(m, "results", "the pipeline response")?.as_array().ok_or("`results` is not an array")?;
    if results.len() != requests.len() {
        return Err(format!("{} results for {} requests", results.len(), requests.len()));
    }
    let results = results
        .iter()
        .zip(requests)
        .enumerate()
        .map(|(i, (r, q))| decode_result(r, q).map_err(|e| format!("result {i}: {e}")))
        .collect::<Result<_, _>>()?;
    Ok(PipelineResponse {
        baton: opt_string(m, "baton", "the pipeline response")?,
        base_url: opt_string(m, "base_url", "the pipeline response")?,
        results,
    })
}

// ---------------------------------------------------------------------------------------------
// URLs

/// The HTTP base URL of a libSQL database and a token found in its query string.
///
/// Accepts what Turso and the libSQL clients print: `libsql://` (HTTPS), `wss://`/`ws://`
/// (the same host over HTTP(S)), `https://`, `http://`, and the client query parameters
/// `tls=0` (plain HTTP) and `authToken`. Messages never quote the URL's query.
pub fn normalize_url(url: &str) -> Result<(String, Option<String>)> {
    let bad = |why: &str| Error::bad_request(format!("libsql URL: {why}"));
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("must start with libsql://, https:// or http://"))?;
    let mut http = match scheme.to_ascii_lowercase().as_str() {
        "libsql" | "https" | "wss" => "https",
        "http" | "ws" => "http",
        _ => return Err(bad("must start with libsql://, https:// or http://")),
    };
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let rest = rest.split('#').next().unwrap_or_default().trim_end_matches('/');
    if rest.is_empty() || rest.starts_with('/') {
        return Err(bad("has no host"));
    }
    if rest.contains('@') {
        return Err(bad("must not carry credentials; put the token in a secret"));
    }
    let mut token = None;
    for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "tls" if v == "0" => http = "http",
            "tls" if v == "1" => http = "https",
            "authToken" if !v.is_empty() => token = Some(v.to_string()),
            _ => return Err(bad(&format!("unsupported query parameter {k:?} (supported: tls, authToken)"))),
        }
    }
    Ok((format!("{http}://{rest}"), token))
}

// ---------------------------------------------------------------------------------------------
// Client

/// A Hrana-over-HTTP client for one database: it follows the stream's baton and `base_url`
/// from answer to answer, as the specification asks, and remembers a fallback to version 2.
pub struct HranaClient<H: HttpClient> {
    http: H,
    url: String,
    token: Option<String>,
    origin: String,
    version: &'static str,
    baton: Option<String>,
    base_url: Option<String>,
}

impl<H: HttpClient> HranaClient<H> {
    /// `url` is an HTTP(S) base URL (see `normalize_url`); `origin` names the database in errors.
    pub fn new(http: H, url: &str, token: Option<String>, origin: String) -> Self {
        HranaClient {
            http,
            url: url.trim_end_matches('/').to_string(),
            token: token.filter(|t| !t.is_empty()),
            origin,
            version: "v3",
            baton: None,
            base_url: None,
        }
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }
    pub fn http(&self) -> &H {
        &self.http
    }
    /// The open stream's baton, if any.
    pub fn baton(&self) -> Option<&str> {
        self.baton.as_deref()
    }
    /// `v3` or, after a server answered 404 to it, `v2`.
    pub fn version(&self) -> &'static str {
        self.version
    }

    fn err(&self, m: impl std::fmt::Display) -> Error {
        Error::at_origin(&self.origin, redact(&m.to_string(), self.token.as_deref()))
    }

    fn forget_stream(&mut self) {
        self.baton = None;
        self.base_url = None;
    }

    /// Runs `requests` on the current stream (a new one when none is open).
    pub async fn pipeline(&mut self, requests: &[StreamRequest]) -> Result<Vec<StreamResult>> {
        let body = encode_pipeline(self.baton.as_deref(), requests).map_err(|e| self.err(e))?;
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        loop {
            let base = self.base_url.as_deref().unwrap_or(&self.url).trim_end_matches('/');
            let url = format!("{base}/{}/pipeline", self.version);
            let resp = match self.http.post(&url, &headers, body.clone()).await {
                Ok(r) => r,
                Err(e) => {
                    self.forget_stream();
                    return Err(self.err(format!("request to {}/{}/pipeline failed: {e}", self.url, self.version)));
                }
            };
            // A server without version 3 has no such route; only a new stream may switch.
            if resp.status == 404 && self.version == "v3" && self.baton.is_none() {
                self.version = "v2";
                continue;
            }
            if !(200..300).contains(&resp.status) {
                self.forget_stream();
                return Err(self.http_error(resp.status, &resp.body));
            }
            let decoded = match decode_pipeline(&resp.body, requests) {
                Ok(d) => d,
                Err(e) => {
                    self.forget_stream();
                    return Err(self.err(format!("the server's answer is not a Hrana pipeline response I understand: {e}")));
                }
            };
            self.baton = decoded.baton;
            if self.baton.is_none() {
                self.base_url = None;
            } else if let Some(b) = decoded.base_url {
                if !(b.starts_with("https://") || b.starts_with("http://")) {
                    self.forget_stream();
                    return Err(self.err("the server sent a base_url that is not an http(s) URL"));
                }
                self.base_url = Some(b);
            }
            return Ok(decoded.results);
        }
    }

    fn http_error(&self, status: u16, body: &str) -> Error {
        // The specification asks clients to try the body as a Hrana error, and to cope with
        // anything else (HTML from a proxy, plain text).
        let detail = serde_json::from_str::<Json>(body)
            .ok()
            .and_then(|v| {
                decode_error(&v).ok().map(|e| e.to_string()).or_else(|| v.get("error").and_then(Json::as_str).map(str::to_string))
            })
            .unwrap_or_else(|| snippet(body, 200));
        let hint = match status {
            401 | 403 => "; check the token (source.token_secret)",
            404 => "; is the URL a libSQL server (sqld, Turso)?",
            _ => "",
        };
        let detail = if detail.is_empty() { String::new() } else { format!(": {detail}") };
        self.err(format!("HTTP {status} from {}/{}/pipeline{detail}{hint}", self.url, self.version))
    }

    fn single(&self, results: Vec<StreamResult>) -> Result<StreamResponse> {
        match results.into_iter().next() {
            Some(StreamResult::Ok(r)) => Ok(r),
            Some(StreamResult::Error(e)) => Err(self.err(e)),
            None => Err(self.err("no result")),
        }
    }

    /// One statement on the current stream, which stays open.
    pub async fn execute(&mut self, stmt: Stmt) -> Result<StmtResult> {
        let results = self.pipeline(&[StreamRequest::Execute(stmt)]).await?;
        match self.single(results)? {
            StreamResponse::Execute(r) => Ok(r),
            _ => Err(self.err("unexpected response type")),
        }
    }

    /// A batch on the current stream; step errors are in the result, not an `Err`.
    pub async fn batch(&mut self, steps: Vec<BatchStep>) -> Result<BatchResult> {
        let results = self.pipeline(&[StreamRequest::Batch(steps)]).await?;
        match self.single(results)? {
            StreamResponse::Batch(r) => Ok(r),
            _ => Err(self.err("unexpected response type")),
        }
    }

    /// Closes the current stream, if one is open.
    pub async fn close(&mut self) -> Result<()> {
        if self.baton.is_none() {
            return Ok(());
        }
        let results = self.pipeline(&[StreamRequest::Close]).await?;
        self.single(results).map(|_| ())
    }

    /// One statement and the close of its stream in a single round trip: nothing stays open
    /// on the server, so neither an idle gap between pages nor a run that dies leaves a stream
    /// to expire there.
    pub async fn execute_and_close(&mut self, stmt: Stmt) -> Result<StmtResult> {
        let results = self.pipeline(&[StreamRequest::Execute(stmt), StreamRequest::Close]).await?;
        match self.single(results)? {
            StreamResponse::Execute(r) => Ok(r),
            _ => Err(self.err("unexpected response type")),
        }
    }
}

/// libSQL as a `Transport`: each statement is its own stream.
pub struct HranaTransport<H: HttpClient> {
    client: HranaClient<H>,
}

impl<H: HttpClient> HranaTransport<H> {
    pub fn new(client: HranaClient<H>) -> Self {
        HranaTransport { client }
    }
    pub fn client(&self) -> &HranaClient<H> {
        &self.client
    }
}

impl<H: HttpClient> Transport for HranaTransport<H> {
    fn wire(&self) -> Wire {
        Wire::Typed
    }
    fn source_type(&self) -> crate::config::SourceType {
        crate::config::SourceType::Libsql
    }
    fn origin(&self) -> &str {
        self.client.origin()
    }
    async fn query(&mut self, sql: &str, params: &[Value]) -> std::result::Result<Rows, TransportError> {
        let r = self.client.execute_and_close(Stmt::new(sql, params.to_vec())).await?;
        Ok(Rows { columns: r.cols.into_iter().map(|c| c.name.unwrap_or_default()).collect(), rows: r.rows })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip_with_and_without_padding() {
        for n in 0..40 {
            let b: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            let s = encode_base64(&b);
            assert!(!s.contains('='));
            assert_eq!(decode_base64(&s).unwrap(), b);
            let padded = format!("{s}{}", "=".repeat((4 - s.len() % 4) % 4));
            assert_eq!(decode_base64(&padded).unwrap(), b, "{padded}");
        }
        assert_eq!(encode_base64(b"hello"), "aGVsbG8");
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        for bad in ["a", "aGVsbG8===", "aGV$", "aGVsbG8 ", "a="] {
            assert!(decode_base64(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls() {
        assert_eq!(normalize_url("libsql://db-org.turso.io").unwrap(), ("https://db-org.turso.io".into(), None));
        assert_eq!(normalize_url("http://127.0.0.1:8080/").unwrap(), ("http://127.0.0.1:8080".into(), None));
        assert_eq!(normalize_url("ws://h:1").unwrap().0, "http://h:1");
        assert_eq!(normalize_url("libsql://h?tls=0").unwrap().0, "http://h");
        assert_eq!(normalize_url("libsql://h?authToken=s3cret").unwrap(), ("https://h".into(), Some("s3cret".into())));
        for bad in ["h.turso.io", "ftp://h", "libsql://", "https://u:p@h", "libsql://h?secret=s3cret"] {
            let e = normalize_url(bad).unwrap_err();
            assert_eq!(e.status(), 400);
            assert!(!e.message().contains("s3cret"));
        }
    }
}
