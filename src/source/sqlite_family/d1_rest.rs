//! Cloudflare D1 through its REST API: `POST /accounts/{account_id}/d1/database/{database_id}/raw`
//! with an API token (D1 Read), body `{"sql", "params"}` (parameters are strings), answered in
//! Cloudflare's v4 envelope:
//!
//! ```json
//! {"result": [{"results": {"columns": ["a"], "rows": [[1]]}, "success": true, "meta": {}}],
//!  "success": true, "errors": [], "messages": []}
//! ```
//!
//! The API prints integers as JSON numbers, rounded beyond 2^53, so this transport is `Json`:
//! pages select tagged values (see the parent module), which keeps integers exact.

use super::{json_cell, json_param, post_json, redact, snippet, HttpClient, Rows, Transport, TransportError, Wire};
use crate::error::{Error, Result};
use crate::value::Value;
use serde_json::Value as Json;

pub const API_BASE: &str = "https://api.cloudflare.com/client/v4";

/// Account and database ids go into the URL path: only the characters they are made of.
fn check_id(field: &str, id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(Error::bad_request(format!("field `source.{field}` must be a Cloudflare id (letters, digits and '-')")));
    }
    Ok(())
}

pub fn raw_url(api_base: &str, account_id: &str, database_id: &str) -> String {
    format!("{}/accounts/{account_id}/d1/database/{database_id}/raw", api_base.trim_end_matches('/'))
}

pub fn encode_request(sql: &str, params: &[Value]) -> Result<String> {
    let params = params
        .iter()
        .map(|p| match json_param(p)? {
            // The API types parameters as strings; NULL goes as the shape's text instead.
            Json::Null => Err(Error::internal("the D1 REST API takes only string parameters")),
            j => Ok(j),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(serde_json::json!({ "sql": sql, "params": params }).to_string())
}

fn envelope_errors(v: &Json) -> Option<String> {
    let errs = v.get("errors")?.as_array()?;
    let msgs: Vec<String> = errs
        .iter()
        .map(|e| match (e.get("code").and_then(Json::as_i64), e.get("message").and_then(Json::as_str)) {
            (Some(c), Some(m)) => format!("{m} (code {c})"),
            (None, Some(m)) => m.to_string(),
            _ => e.to_string(),
        })
        .collect();
    (!msgs.is_empty()).then(|| msgs.join("; "))
}

/// The rows of a single-statement answer, or what went wrong in the API's own words.
pub fn decode_response(status: u16, body: &str) -> Result<Rows, String> {
    let parsed: Option<Json> = serde_json::from_str(body).ok();
    if !(200..300).contains(&status) {
        let detail = parsed.as_ref().and_then(envelope_errors).unwrap_or_else(|| snippet(body, 200));
        let hint = match status {
            401 | 403 => "; check the API token (it needs D1 Read on that account) and the account id",
            404 => "; check the account and database ids",
            _ => "",
        };
        return Err(format!("HTTP {status} from the D1 API: {detail}{hint}"));
    }
    let v = parsed.ok_or_else(|| format!("the D1 API answered with something that is not JSON: {}", snippet(body, 200)))?;
    if v.get("success") != Some(&Json::Bool(true)) {
        return Err(envelope_errors(&v).unwrap_or_else(|| "the D1 API reported failure without a message".into()));
    }
    let results = v.get("result").and_then(Json::as_array).ok_or("the D1 API answer has no `result` array")?;
    let [one] = results.as_slice() else {
        return Err(format!("the D1 API answered {} results for one statement", results.len()));
    };
    if one.get("success") == Some(&Json::Bool(false)) {
        return Err(envelope_errors(one).unwrap_or_else(|| "the statement failed".into()));
    }
    let res = one.get("results").ok_or("a D1 API result has no `results`")?;
    let columns = res
        .get("columns")
        .and_then(Json::as_array)
        .ok_or("D1 API `results` has no `columns` array")?
        .iter()
        .map(|c| c.as_str().map(str::to_string).ok_or("a D1 API column name is not a string"))
        .collect::<Result<Vec<_>, _>>()?;
    let rows = res
        .get("rows")
        .and_then(Json::as_array)
        .ok_or("D1 API `results` has no `rows` array")?
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let r = r.as_array().ok_or_else(|| format!("row {i} is not an array"))?;
            if r.len() != columns.len() {
                return Err(format!("row {i} has {} values for {} columns", r.len(), columns.len()));
            }
            r.iter().map(json_cell).collect::<Result<Vec<_>, _>>().map_err(|e| format!("row {i}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Rows { columns, rows })
}

pub struct D1RestTransport<H: HttpClient> {
    http: H,
    url: String,
    token: String,
    origin: String,
}

impl<H: HttpClient> D1RestTransport<H> {
    pub fn new(http: H, api_base: &str, account_id: &str, database_id: &str, token: String, origin: String) -> Result<Self> {
        check_id("account_id", account_id)?;
        check_id("database_id", database_id)?;
        Ok(D1RestTransport { http, url: raw_url(api_base, account_id, database_id), token, origin })
    }
    pub fn http(&self) -> &H {
        &self.http
    }
}

impl<H: HttpClient> Transport for D1RestTransport<H> {
    fn wire(&self) -> Wire {
        Wire::Json
    }
    fn source_type(&self) -> crate::config::SourceType {
        crate::config::SourceType::D1
    }
    fn origin(&self) -> &str {
        &self.origin
    }
    async fn query(&mut self, sql: &str, params: &[Value]) -> std::result::Result<Rows, TransportError> {
        let body = encode_request(sql, params)?;
        let resp = post_json(&self.http, &self.url, &self.token, &self.origin, body, "request to the D1 API").await?;
        decode_response(resp.status, &resp.body).map_err(|m| Error::at_origin(&self.origin, redact(&m, Some(&self.token))).into())
    }
}
