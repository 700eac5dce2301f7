//! The replica store over `ctx.storage.sql`, with every JS crossing in three small functions.
//!
//! Rows cross as one array (or one JSON text for user queries) per statement rather than
//! value by value, and a transaction is one call into `transactionSync`, which workers-rs
//! 0.8 does not bind.

use crate::error::{Error, Result};
use crate::store::{QueryOutput, Stmt, Store, MAX_SAFE_INTEGER};
use crate::value::Value;
use js_sys::{Array, ArrayBuffer, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen(inline_js = r#"
export function er_query(sql, query, params) {
  return sql.exec(query, ...params).raw().toArray();
}
export function er_query_json(sql, query, params) {
  const c = sql.exec(query, ...params);
  const rows = c.raw().toArray();
  const out = { columns: c.columnNames, rows, rows_read: c.rowsRead, rows_written: c.rowsWritten };
  return JSON.stringify(out, (k, v) => (v instanceof ArrayBuffer ? Array.from(new Uint8Array(v)) : v));
}
export function er_transaction(storage, stmts) {
  storage.transactionSync(() => {
    for (const [q, p] of stmts) storage.sql.exec(q, ...p);
  });
}
"#)]
extern "C" {
    #[wasm_bindgen(catch)]
    fn er_query(sql: &JsValue, query: &str, params: &Array) -> std::result::Result<Array, JsValue>;
    #[wasm_bindgen(catch)]
    fn er_query_json(sql: &JsValue, query: &str, params: &Array) -> std::result::Result<String, JsValue>;
    #[wasm_bindgen(catch)]
    fn er_transaction(storage: &JsValue, stmts: &Array) -> std::result::Result<(), JsValue>;
}

pub struct DoStore {
    storage: JsValue,
    sql: JsValue,
}

fn js_error(e: JsValue) -> String {
    super::js::error_message(&e)
}

fn to_js(v: &Value) -> Result<JsValue> {
    Ok(match v {
        Value::Null => JsValue::NULL,
        Value::Integer(i) if i.abs() <= MAX_SAFE_INTEGER => JsValue::from_f64(*i as f64),
        // A bug, not user input: exact integers travel inside JSON text, never as numbers.
        Value::Integer(i) => return Err(Error::internal(format!("integer parameter {i} would lose precision as a JS number"))),
        Value::Real(f) => JsValue::from_f64(*f),
        Value::Text(s) => JsValue::from_str(s),
        Value::Blob(b) => Uint8Array::from(b.as_slice()).buffer().into(),
    })
}

fn params_array(params: &[Value]) -> Result<Array> {
    let a = Array::new_with_length(params.len() as u32);
    for (i, p) in params.iter().enumerate() {
        a.set(i as u32, to_js(p)?);
    }
    Ok(a)
}

fn from_js(v: JsValue) -> Value {
    if v.is_null() || v.is_undefined() {
        Value::Null
    } else if let Some(f) = v.as_f64() {
        Value::Real(f)
    } else if let Some(s) = v.as_string() {
        Value::Text(s)
    } else if let Some(b) = v.dyn_ref::<ArrayBuffer>() {
        Value::Blob(Uint8Array::new(b).to_vec())
    } else {
        Value::Null
    }
}

/// JSON request params to JS: booleans bind as 1/0 (a JS boolean would bind as the text
/// 'true'), and integers beyond 2^53 as their decimal text, which SQLite compares with an
/// INTEGER column numerically.
fn json_param(v: &serde_json::Value) -> JsValue {
    use serde_json::Value as J;
    match v {
        J::Null => JsValue::NULL,
        J::Bool(b) => JsValue::from_f64(if *b { 1.0 } else { 0.0 }),
        J::Number(n) => match n.as_i64() {
            Some(i) if i.abs() <= MAX_SAFE_INTEGER => JsValue::from_f64(i as f64),
            Some(_) => JsValue::from_str(&n.to_string()),
            None if n.as_u64().is_some() => JsValue::from_str(&n.to_string()),
            None => JsValue::from_f64(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => JsValue::from_str(s),
        _ => JsValue::NULL,
    }
}

impl DoStore {
    pub fn new(state: &worker::State) -> Result<Self> {
        let storage: JsValue = state.storage().as_raw().into();
        let sql = js_sys::Reflect::get(&storage, &JsValue::from_str("sql")).map_err(|e| Error::internal(js_error(e)))?;
        Ok(DoStore { storage, sql })
    }
}

impl Store for DoStore {
    fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>> {
        let rows =
            er_query(&self.sql, sql, &params_array(params)?).map_err(|e| Error::internal(format!("replica SQLite: {}", js_error(e))))?;
        Ok(rows.iter().map(|r| r.unchecked_into::<Array>().iter().map(from_js).collect()).collect())
    }

    fn transaction(&self, stmts: &[Stmt]) -> Result<()> {
        let a = Array::new_with_length(stmts.len() as u32);
        for (i, s) in stmts.iter().enumerate() {
            let params: JsValue = params_array(&s.params)?.into();
            let pair = Array::of2(&JsValue::from_str(&s.sql), &params);
            a.set(i as u32, pair.into());
        }
        er_transaction(&self.storage, &a).map_err(|e| Error::internal(format!("replica SQLite: {}", js_error(e))))
    }

    fn query_json(&self, sql: &str, params: &[serde_json::Value]) -> Result<QueryOutput> {
        let a = Array::new();
        for p in params {
            a.push(&json_param(p));
        }
        // The SQL passed the read-only guard; what fails now is the user's query (no such table, bad params).
        let text = er_query_json(&self.sql, sql, &a).map_err(|e| Error::bad_request(format!("query failed: {}", js_error(e))))?;
        #[derive(serde::Deserialize)]
        struct Out {
            columns: Vec<String>,
            rows: Vec<Vec<serde_json::Value>>,
            rows_read: u64,
            rows_written: u64,
        }
        let o: Out = serde_json::from_str(&text).map_err(|e| Error::internal(format!("query result: {e}")))?;
        Ok(QueryOutput { columns: o.columns, rows: o.rows, rows_read: o.rows_read, rows_written: o.rows_written })
    }
}
