//! Opening SQLite-family sources with the Worker's IO: `fetch` for the HTTP-based ones
//! (libSQL/Turso, the D1 REST API, StarbaseDB) and a D1 binding of this Worker.

use super::deadline::within;
use super::env;
use super::sources::InstanceDefault;
use crate::config::{D1Access, SourceSpec, SourceType};
use crate::error::{Error, Result};
use crate::source::sqlite_family::d1_rest::{self, D1RestTransport};
use crate::source::sqlite_family::hrana::{self, HranaClient, HranaTransport};
use crate::source::sqlite_family::starbase::StarbaseTransport;
use crate::source::sqlite_family::{json_cell, json_param, HttpClient, HttpResponse, Rows, SqliteSource, Transport, TransportError, Wire};
use crate::source::{Column, KeyRange, PageRequest, Source, TableName, TableSchema};
use crate::value::Value;
use js_sys::Array;
use std::time::Duration;
use wasm_bindgen::prelude::*;
use worker::{Env, Fetch, Headers, Method, Request, RequestInit};

/// One statement's round trip; a page that takes longer means the origin is in trouble, and
/// the run's own time budget (20 s) would be gone anyway.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(25);

fn no_answer<T>() -> std::result::Result<T, String> {
    Err(format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()))
}

#[wasm_bindgen(inline_js = r#"
export async function er_d1_raw(db, sql, params) {
  let stmt = db.prepare(sql);
  if (params.length > 0) stmt = stmt.bind(...params);
  const rows = await stmt.raw({ columnNames: true });
  return JSON.stringify(rows, (k, v) => {
    if (v instanceof ArrayBuffer) return Array.from(new Uint8Array(v));
    if (ArrayBuffer.isView(v)) return Array.from(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    return v;
  });
}
"#)]
extern "C" {
    #[wasm_bindgen(catch)]
    async fn er_d1_raw(db: &JsValue, sql: &str, params: &Array) -> std::result::Result<JsValue, JsValue>;
}

/// `HttpClient` over the Workers `fetch`.
pub struct FetchHttp;

impl HttpClient for FetchHttp {
    async fn post(&self, url: &str, headers: &[(&str, &str)], body: String) -> std::result::Result<HttpResponse, String> {
        let h = Headers::new();
        for (k, v) in headers {
            h.set(k, v).map_err(|e| e.to_string())?;
        }
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_headers(h).with_body(Some(JsValue::from_str(&body)));
        let req = Request::new_with_init(url, &init).map_err(|e| e.to_string())?;
        within(REQUEST_TIMEOUT, async move {
            let mut resp = Fetch::Request(req).send().await.map_err(|e| e.to_string())?;
            let status = resp.status_code();
            let body = resp.text().await.map_err(|e| e.to_string())?;
            Ok(HttpResponse { status, body })
        })
        .await
        .unwrap_or_else(no_answer)
    }
}

/// A D1 database bound to this Worker.
pub struct D1Binding {
    db: JsValue,
    origin: String,
}

impl Transport for D1Binding {
    fn source_type(&self) -> SourceType {
        SourceType::D1
    }
    fn wire(&self) -> Wire {
        // Rows cross into JavaScript, whose numbers round integers beyond 2^53.
        Wire::Json
    }
    fn origin(&self) -> &str {
        &self.origin
    }
    async fn query(&mut self, sql: &str, params: &[Value]) -> std::result::Result<Rows, TransportError> {
        let args = Array::new();
        for p in params {
            let v = match json_param(p)? {
                serde_json::Value::String(s) => JsValue::from_str(&s),
                _ => JsValue::NULL,
            };
            args.push(&v);
        }
        let err = |m: String, forbidden: bool| TransportError { error: Error::at_origin(&self.origin, m), forbidden };
        let text = within(REQUEST_TIMEOUT, async {
            let v = er_d1_raw(&self.db, sql, &args).await.map_err(|e| super::js::error_message(&e))?;
            v.as_string().ok_or_else(|| "D1 returned no JSON text".to_string())
        })
        .await
        .unwrap_or_else(no_answer)
        .map_err(|m| {
            let forbidden = m.contains("not authorized") || m.contains("SQLITE_AUTH");
            err(m, forbidden)
        })?;
        let all: Vec<Vec<serde_json::Value>> =
            serde_json::from_str(&text).map_err(|e| err(format!("D1 returned rows that are not JSON arrays: {e}"), false))?;
        let mut it = all.into_iter();
        let columns = it
            .next()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.as_str().map(str::to_string).ok_or_else(|| err("a D1 column name is not a string".into(), false)))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let rows = it
            .map(|r| r.iter().map(json_cell).collect::<std::result::Result<Vec<_>, _>>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| err(format!("D1 returned {e}"), false))?;
        Ok(Rows { columns, rows })
    }
}

/// Every SQLite-family source, as one `Source`.
pub enum SqliteAny {
    Libsql(SqliteSource<HranaTransport<FetchHttp>>),
    D1(SqliteSource<D1Binding>),
    D1Rest(SqliteSource<D1RestTransport<FetchHttp>>),
    Starbase(SqliteSource<StarbaseTransport<FetchHttp>>),
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            SqliteAny::Libsql($s) => $e,
            SqliteAny::D1($s) => $e,
            SqliteAny::D1Rest($s) => $e,
            SqliteAny::Starbase($s) => $e,
        }
    };
}

impl Source for SqliteAny {
    fn describe_origin(&self) -> String {
        each!(self, s => s.describe_origin())
    }
    fn source_type(&self) -> SourceType {
        each!(self, s => s.source_type())
    }
    async fn table_schema(&mut self, table: &TableName) -> Result<TableSchema> {
        each!(self, s => s.table_schema(table).await)
    }
    async fn fetch_page(&mut self, page: &PageRequest<'_>) -> Result<Vec<Vec<Value>>> {
        each!(self, s => s.fetch_page(page).await)
    }
    async fn count_nulls(&mut self, table: &TableName, column: &Column) -> Result<u64> {
        each!(self, s => s.count_nulls(table, column).await)
    }
    async fn count_key_ranges(
        &mut self,
        table: &TableName,
        key: &[Column],
        ranges: &[KeyRange],
        rows: &[u64],
    ) -> Result<Vec<(usize, u64)>> {
        each!(self, s => s.count_key_ranges(table, key, ranges, rows).await)
    }
    async fn absent_keys(&mut self, table: &TableName, key: &[Column], keys: &[Vec<Value>]) -> Result<Vec<usize>> {
        each!(self, s => s.absent_keys(table, key, keys).await)
    }
}

fn secret(env: &Env, name: &str) -> Result<String> {
    env::string(env, name).filter(|s| !s.is_empty()).ok_or_else(|| Error::bad_request(format!("secret {name:?} is not set")))
}

/// How the instance-default variables are named in messages.
const DEFAULT_VIA: &str = " (instance default, EXTERNAL_DB_* settings)";

/// Opens a SQLite-family source. `default`: the config has no `source`, so the spec came from
/// `default_spec`, and `EXTERNAL_DB_DEFAULT_SCHEMA` names the database of unqualified tables.
pub fn open(env: &Env, spec: &SourceSpec, default: Option<&InstanceDefault>) -> Result<SqliteAny> {
    let via = if default.is_some() { DEFAULT_VIA } else { "" };
    let schema = default.and_then(|d| d.schema.clone());
    Ok(match spec {
        SourceSpec::Libsql { url, token_secret } => {
            let (base, url_token) = hrana::normalize_url(url)?;
            let token = token_secret.as_deref().map(|n| secret(env, n)).transpose()?.or(url_token);
            let client = HranaClient::new(FetchHttp, &base, token, format!("libsql at {base}{via}"));
            SqliteAny::Libsql(SqliteSource::new(HranaTransport::new(client)).with_default_schema(schema))
        }
        SourceSpec::Starbase { url, token_secret } => {
            let base = url.trim_end_matches('/');
            let t = StarbaseTransport::new(FetchHttp, base, secret(env, token_secret)?, format!("starbase at {base}{via}"));
            SqliteAny::Starbase(SqliteSource::new(t).with_default_schema(schema))
        }
        SourceSpec::D1(D1Access::Binding(name)) => {
            let db = js_sys::Reflect::get(env, &JsValue::from_str(name))
                .ok()
                .filter(|v| !v.is_undefined() && !v.is_null())
                .ok_or_else(|| Error::bad_request(format!("D1 binding {name:?} does not exist")))?;
            let t = D1Binding { db, origin: format!("d1 via binding {name}{via}") };
            SqliteAny::D1(SqliteSource::new(t).with_default_schema(schema))
        }
        SourceSpec::D1(D1Access::Rest { account_id, database_id, token_secret }) => {
            let origin = format!("d1 via REST API (database {database_id}){via}");
            let t = D1RestTransport::new(FetchHttp, d1_rest::API_BASE, account_id, database_id, secret(env, token_secret)?, origin)?;
            SqliteAny::D1Rest(SqliteSource::new(t).with_default_schema(schema))
        }
        SourceSpec::Postgres(_) | SourceSpec::Mysql(_) => {
            return Err(Error::internal(format!("{} is not a SQLite-family source", spec.kind().name())))
        }
    })
}

/// The instance default for a SQLite-family `kind`, from StarbaseDB's variables. Tokens stay
/// in their variables: the spec names them, as a config's `token_secret` would. A libSQL URL
/// may use any scheme `hrana::normalize_url` accepts (`libsql://`, as StarbaseDB's settings do).
pub fn default_spec(env: &Env, kind: SourceType) -> Result<SourceSpec> {
    let var = |n: &str| env::string(env, n).filter(|s| !s.is_empty());
    let need = |n: &str| var(n).ok_or_else(|| Error::bad_request(format!("{n} is not set (needed by EXTERNAL_DB_TYPE=sqlite)")));
    let named = |n: &str| var(n).map(|_| n.to_string());
    Ok(match kind {
        SourceType::Libsql => SourceSpec::Libsql { url: need("EXTERNAL_DB_TURSO_URI")?, token_secret: named("EXTERNAL_DB_TURSO_TOKEN") },
        SourceType::Starbase => {
            let url = need("EXTERNAL_DB_STARBASEDB_URI")?;
            if !(url.starts_with("https://") || url.starts_with("http://")) || url.contains('@') || url.contains('?') {
                return Err(Error::bad_request("starbase URL: must be an http:// or https:// URL without credentials or query"));
            }
            need("EXTERNAL_DB_STARBASEDB_TOKEN")?;
            SourceSpec::Starbase { url, token_secret: "EXTERNAL_DB_STARBASEDB_TOKEN".into() }
        }
        SourceType::D1 => {
            let account_id = need("EXTERNAL_DB_CLOUDFLARE_ACCOUNT_ID")?;
            let database_id = need("EXTERNAL_DB_CLOUDFLARE_DATABASE_ID")?;
            need("EXTERNAL_DB_CLOUDFLARE_API_KEY")?;
            SourceSpec::D1(D1Access::Rest { account_id, database_id, token_secret: "EXTERNAL_DB_CLOUDFLARE_API_KEY".into() })
        }
        other => return Err(Error::internal(format!("{} is not a SQLite-family source", other.name()))),
    })
}
