//! StarbaseDB (or another edge-replica) through `POST {url}/query/raw` with a bearer token:
//! body `{"sql", "params"}`, answer `{"result": {"columns", "rows", "meta"}, "error": null}`.
//!
//! Both serve the internal SQLite of a Durable Object through JavaScript, so this transport is
//! `Json` and pages select tagged values (see the parent module). StarbaseDB rebuilds raw rows
//! from row objects, so columns may come back reordered, and an empty result has no column
//! names; `SqliteSource` copes with both.

use super::{json_cell, json_param, post_json, redact, snippet, HttpClient, Rows, Transport, TransportError, Wire};
use crate::error::{Error, Result};
use crate::value::Value;
use serde_json::Value as Json;

pub fn query_url(base: &str) -> String {
    format!("{}/query/raw", base.trim_end_matches('/'))
}

pub fn encode_request(sql: &str, params: &[Value]) -> Result<String> {
    let params = params.iter().map(json_param).collect::<Result<Vec<_>>>()?;
    Ok(serde_json::json!({ "sql": sql, "params": params }).to_string())
}

/// The rows of an answer, or (message, forbidden) when the origin refused or failed.
pub fn decode_response(status: u16, body: &str) -> Result<Rows, (String, bool)> {
    let parsed: Option<Json> = serde_json::from_str(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error")).and_then(Json::as_str).map(str::to_string);
    if !(200..300).contains(&status) || error.is_some() {
        let detail = error.unwrap_or_else(|| snippet(body, 200));
        let hint = match status {
            401 => "; check the token (source.token_secret)",
            404 => "; is the URL a StarbaseDB or edge-replica instance?",
            _ => "",
        };
        return Err((format!("HTTP {status} from /query/raw: {detail}{hint}"), status == 403));
    }
    let fail = |m: String| (m, false);
    let v = parsed.ok_or_else(|| fail(format!("/query/raw answered with something that is not JSON: {}", snippet(body, 200))))?;
    let result = v.get("result").filter(|r| r.is_object()).ok_or_else(|| fail("the /query/raw answer has no `result` object".into()))?;
    let columns = result
        .get("columns")
        .and_then(Json::as_array)
        .ok_or_else(|| fail("the /query/raw result has no `columns` array".into()))?
        .iter()
        .map(|c| c.as_str().map(str::to_string).ok_or_else(|| fail("a column name is not a string".into())))
        .collect::<Result<Vec<_>, _>>()?;
    let rows = result
        .get("rows")
        .and_then(Json::as_array)
        .ok_or_else(|| fail("the /query/raw result has no `rows` array".into()))?
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let r = r.as_array().ok_or_else(|| fail(format!("row {i} is not an array")))?;
            if r.len() != columns.len() {
                return Err(fail(format!("row {i} has {} values for {} columns", r.len(), columns.len())));
            }
            r.iter().map(json_cell).collect::<Result<Vec<_>, _>>().map_err(|e| fail(format!("row {i}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Rows { columns, rows })
}

pub struct StarbaseTransport<H: HttpClient> {
    http: H,
    url: String,
    token: String,
    origin: String,
}

impl<H: HttpClient> StarbaseTransport<H> {
    pub fn new(http: H, base_url: &str, token: String, origin: String) -> Self {
        StarbaseTransport { http, url: query_url(base_url), token, origin }
    }
    pub fn http(&self) -> &H {
        &self.http
    }
}

impl<H: HttpClient> Transport for StarbaseTransport<H> {
    fn wire(&self) -> Wire {
        Wire::Json
    }
    fn source_type(&self) -> crate::config::SourceType {
        crate::config::SourceType::Starbase
    }
    fn origin(&self) -> &str {
        &self.origin
    }
    async fn query(&mut self, sql: &str, params: &[Value]) -> std::result::Result<Rows, TransportError> {
        let body = encode_request(sql, params)?;
        let resp = post_json(&self.http, &self.url, &self.token, &self.origin, body, &format!("request to {}", self.url)).await?;
        decode_response(resp.status, &resp.body)
            .map_err(|(m, forbidden)| TransportError { error: Error::at_origin(&self.origin, redact(&m, Some(&self.token))), forbidden })
    }
}
