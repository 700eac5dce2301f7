//! The replica store over `ctx.storage.sql`, with every JS crossing in three small functions.
//!
//! Rows cross as one array (or one JSON text for user queries) per statement rather than
//! value by value, and a transaction is one call into `transactionSync`, which workers-rs
//! 0.8 does not bind. User queries are read row by row so that their caps stop them early.

use crate::error::{Error, Result};
use crate::store::{QueryOutput, ReadCaps, RowShape, Stmt, Store, MAX_SAFE_INTEGER};
use crate::value::Value;
use js_sys::{Array, ArrayBuffer, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen(inline_js = r#"
export function er_query(sql, query, params) {
  return sql.exec(query, ...params).raw().toArray();
}

// Blobs as arrays of byte values (D1's convention).
function blobsAsArrays(k, v) {
  return v instanceof ArrayBuffer ? Array.from(new Uint8Array(v)) : v;
}

// The UTF-8 length of a string that JSON.stringify wrote (so without lone surrogates), without
// encoding it.
function utf8Length(s) {
  let n = s.length;
  if (!/[^\x00-\x7f]/.test(s)) return n;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c < 0xdc00) { n += 2; i++; } // a pair: 2 units, 4 bytes
    else n += 2;
  }
  return n;
}

const CANCEL = new Error("edge-replica: cancel open reads");
// Steps a stopped read may take to reach its end (see `stopRead`): about a second.
const DRAIN_STEPS = 1000000;

// A statement left open holds its tables: SQLite refuses to DROP or rename them (a full
// refresh's swap, `drop_table`) until the runtime collects the cursor, and workerd offers no way
// to close one. Rolling back a schema change aborts every statement that reads a table
// (SQLITE_ABORT_ROLLBACK), and the next step then ends it. A statement whose remaining rows come
// from a finished sort (ORDER BY, GROUP BY, window) is not aborted and is read to its end, a
// bounded number of steps; beyond that it is left to the runtime.
function stopRead(storage, sql, rows) {
  try {
    storage.transactionSync(() => {
      sql.exec("CREATE TABLE tmp_edge_replica_cancel_reads (x)");
      throw CANCEL;
    });
  } catch (e) {
    // CANCEL is the expected way out; anything else only means nothing was aborted.
  }
  try {
    for (let i = 0; i < DRAIN_STEPS; i++) if (rows.next().done) return;
  } catch (e) {
    // Aborted: SQLite ended the statement. (Stepping it again would start it over.)
  }
}

// Code point order, which is the UTF-8 byte order serde_json's maps keep their keys in.
function byCodePoints(a, b) {
  const x = [...a], y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

// A user's read, capped while SQLite produces it, returned as the route's row array: arrays
// (`/query/raw`), or with `objects` one object per row (`/query`) with its keys in the order
// and with the dedup of a serde_json map, as this API has always answered (sorted by name, the
// last of equal names wins). Stops at the first row past `maxRows`, or past `maxBytes` of that
// JSON text in UTF-8. Returns [0, columns JSON, rows JSON, rows read, rows written], or [1]
// over the rows cap, [2] over the bytes cap.
export function er_read(storage, sql, query, params, maxRows, maxBytes, objects) {
  const c = sql.exec(query, ...params);
  const columns = c.columnNames;
  let order = null;
  if (objects) {
    const last = new Map();
    columns.forEach((name, i) => last.set(name, i));
    order = [...last.entries()].sort((a, b) => byCodePoints(a[0], b[0])).map(([name, i]) => [JSON.stringify(name) + ":", i]);
  }
  const rows = c.raw();
  const parts = [];
  let bytes = 2;
  for (;;) {
    const r = rows.next();
    if (r.done) break;
    if (parts.length >= maxRows) {
      stopRead(storage, sql, rows);
      return [1];
    }
    let text;
    if (order) {
      text = "{";
      for (let j = 0; j < order.length; j++) {
        text += (j > 0 ? "," : "") + order[j][0] + JSON.stringify(r.value[order[j][1]], blobsAsArrays);
      }
      text += "}";
    } else {
      text = JSON.stringify(r.value, blobsAsArrays);
    }
    bytes += utf8Length(text) + (parts.length > 0 ? 1 : 0);
    if (bytes > maxBytes) {
      stopRead(storage, sql, rows);
      return [2];
    }
    parts.push(text);
  }
  return [0, JSON.stringify(columns), "[" + parts.join(",") + "]", c.rowsRead, c.rowsWritten];
}

// Each statement's cursor is read to its end (a data statement has no rows: one call), which
// ends its query at once. Left alone, workerd keeps a cursor's query until V8 collects the
// cursor: its bindings (a copy's batch), and its cached statement checked out, so that the
// next batch's identical statement was compiled again as a one-off.
export function er_transaction(storage, stmts) {
  storage.transactionSync(() => {
    for (const [q, p] of stmts) {
      const c = storage.sql.exec(q, ...p);
      while (!c.next().done);
    }
  });
}
"#)]
extern "C" {
    #[wasm_bindgen(catch)]
    fn er_query(sql: &JsValue, query: &str, params: &Array) -> std::result::Result<Array, JsValue>;
    #[wasm_bindgen(catch)]
    fn er_read(
        storage: &JsValue,
        sql: &JsValue,
        query: &str,
        params: &Array,
        max_rows: f64,
        max_bytes: f64,
        objects: bool,
    ) -> std::result::Result<Array, JsValue>;
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
    params_with_views(params, &mut |_| None)
}

/// The parameters as JS values; `view` may bind a blob without copying it.
fn params_with_views(params: &[Value], view: &mut impl FnMut(&[u8]) -> Option<Uint8Array>) -> Result<Array> {
    let a = Array::new_with_length(params.len() as u32);
    for (i, p) in params.iter().enumerate() {
        let js = match p {
            Value::Blob(b) => match view(b) {
                Some(v) => v.into(),
                None => to_js(p)?,
            },
            p => to_js(p)?,
        };
        a.set(i as u32, js);
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

/// `[sql, params]` pairs for `er_transaction`; `view` may bind a blob parameter without copying it.
fn statements(stmts: &[Stmt], mut view: impl FnMut(&[u8]) -> Option<Uint8Array>) -> Result<Array> {
    let a = Array::new_with_length(stmts.len() as u32);
    for (i, s) in stmts.iter().enumerate() {
        let params = params_with_views(&s.params, &mut view)?;
        a.set(i as u32, Array::of2(&JsValue::from_str(&s.sql), &params).into());
    }
    Ok(a)
}

/// Blobs of at least this many bytes (a copy's JSONB batches) are bound as views of wasm memory.
const VIEW_MIN_BYTES: usize = 4096;

/// The statements with their large blobs bound as views into wasm memory rather than copied
/// into JavaScript: before JSONB, each batch crossing into JS as a string was 19 of the
/// 34.6 MiB a 200k-row copy allocated in JS. workerd reads a view's bytes while `exec` runs the statement, to its end for the
/// data statements of a transaction. A view is valid until wasm memory grows; nothing from here
/// to the call allocates in it (the list below is sized first; the JS arrays live in JS), and
/// `None` (bind copies) if a view was cut off anyway.
fn statements_with_views(stmts: &[Stmt]) -> Result<Option<Array>> {
    let count = stmts.iter().flat_map(|s| &s.params).filter(|p| matches!(p, Value::Blob(b) if b.len() >= VIEW_MIN_BYTES)).count();
    if count == 0 {
        return Ok(None);
    }
    let mut views: Vec<(Uint8Array, usize)> = Vec::with_capacity(count);
    let a = statements(stmts, |b| {
        if b.len() < VIEW_MIN_BYTES {
            return None;
        }
        // SAFETY: the view is only read by `exec` during `er_transaction`, before anything can
        // grow wasm memory or free `b` (borrowed from `stmts` for the whole call); a detached
        // view is caught below.
        let v = unsafe { Uint8Array::view(b) };
        views.push((v.clone(), b.len()));
        Some(v)
    })?;
    Ok(views.iter().all(|(v, n)| v.byte_length() as usize == *n).then_some(a))
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
        let a = match statements_with_views(stmts)? {
            Some(a) => a,
            None => statements(stmts, |_| None)?,
        };
        er_transaction(&self.storage, &a).map_err(|e| Error::internal(format!("replica SQLite: {}", js_error(e))))
    }

    fn query_json(&self, sql: &str, params: &[serde_json::Value], caps: &ReadCaps) -> Result<QueryOutput> {
        let a = Array::new();
        for p in params {
            a.push(&json_param(p));
        }
        // No bound is an infinite one; a bound past 2^53 is as good as none.
        let bound = |b: Option<u64>| b.map_or(f64::INFINITY, |n| n as f64);
        let objects = caps.shape == RowShape::Objects;
        // The SQL passed the read-only guard; what fails now is the user's query (no such table, bad params).
        let out = er_read(&self.storage, &self.sql, sql, &a, bound(caps.max_rows), bound(caps.max_bytes), objects)
            .map_err(|e| Error::bad_request(format!("query failed: {}", js_error(e))))?;
        match out.get(0).as_f64().map(|n| n as u8) {
            Some(0) => {}
            Some(1) => return Err(caps.too_many_rows()),
            Some(2) => return Err(caps.too_many_bytes()),
            _ => return Err(Error::internal("query result: an unknown outcome")),
        }
        let text = |i: u32| out.get(i).as_string().ok_or_else(|| Error::internal("query result: not text"));
        let columns: Vec<String> = serde_json::from_str(&text(1)?).map_err(|e| Error::internal(format!("query result columns: {e}")))?;
        let count = |i: u32| out.get(i).as_f64().map_or(0, |n| n as u64);
        Ok(QueryOutput { columns, rows_json: text(2)?, rows_read: count(3), rows_written: count(4) })
    }
}
