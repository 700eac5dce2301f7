//! A bench-only prototype of the split copy (README, "Performance"), compiled only with the
//! `split-bench` feature (`bench/split.mjs` builds it into `build-split/`; the worker that
//! `scripts/build.sh` builds has none of this).
//!
//! `POST /__split/fetch` runs in the entry Worker, a stateless invocation: it reads a
//! PostgreSQL table (the `PG_URL` secret) in keyset pages with `Source::fetch_batch`, and hands
//! each page's batches to another instance's object at `target` (`POST /__split/write`),
//! reading the next page while the object writes, with up to `depth` pages in flight. `POST /__split/write` runs in the object:
//! one transaction with the batches' upsert and the page's checkpoint, as `commit_batch` does.
//!
//! What it omits, so that its figures are an upper bound for the design: the run lock and its
//! fencing (a late write from a dead fetcher is not refused here, and pages in flight may
//! commit out of order, leaving an earlier checkpoint last), run records, the resume of
//! a new fetcher from the object's checkpoint, the staging table's swap, and Durable Object
//! RPC (the batches travel in an HTTP body through the target's entry Worker, which copies them
//! once more than RPC would).

use super::open_postgres;
use super::sql_ffi::DoStore;
use crate::config::Connection;
use crate::error::{Error, Result};
use crate::replica_sql as rsql;
use crate::source::{Column, PageRequest, Source, TableName};
use crate::store::{Stmt, Store};
use crate::value::Value;
use futures_util::future::{maybe_done, FutureExt, MaybeDone};
use futures_util::stream::{FuturesOrdered, StreamExt};
use worker::{Env, Fetch, Headers, Method, Request, RequestInit, Response};

const CHECKPOINTS: &str = "CREATE TABLE IF NOT EXISTS _split_checkpoint (k INTEGER PRIMARY KEY, v TEXT)";

fn bad(e: impl std::fmt::Display) -> Error {
    Error::internal(e.to_string())
}

async fn post(url: String, headers: Vec<(&'static str, String)>, body: Vec<u8>) -> Result<()> {
    let h = Headers::new();
    for (k, v) in &headers {
        h.set(k, v).map_err(bad)?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_headers(h).with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
    let req = Request::new_with_init(&url, &init).map_err(bad)?;
    let mut resp = Fetch::Request(req).send().await.map_err(bad)?;
    if resp.status_code() != 200 {
        return Err(Error::internal(format!("{url}: {} {}", resp.status_code(), resp.text().await.unwrap_or_default())));
    }
    Ok(())
}

/// The fetcher: `{"table": "items", "target": "http://127.0.0.1:PORT", "batch": 2000}`.
pub async fn fetcher(mut req: Request, env: &Env) -> Result<String> {
    let spec: serde_json::Value = req.json().await.map_err(bad)?;
    let table = TableName { schema: None, name: spec["table"].as_str().unwrap_or("items").to_string() };
    let target = spec["target"].as_str().ok_or_else(|| Error::bad_request("no target"))?.to_string();
    let batch = spec["batch"].as_u64().unwrap_or(2000) as usize;
    let auth = spec["authorization"].as_str().unwrap_or("").to_string();
    let t0 = js_sys::Date::now();
    let mut src = open_postgres::open(env, &Connection::UrlSecret("PG_URL".into())).await?;
    let schema = src.table_schema(&table).await?;
    let columns: Vec<Column> = schema.columns.clone();
    let order: Vec<usize> = schema.primary_key.iter().filter_map(|k| columns.iter().position(|c| &c.name == k)).collect();
    let target_table = format!("{}_split", table.name);
    let upsert = rsql::upsert_batch(&target_table, &columns, &schema.primary_key);
    let init = format!("{};{CHECKPOINTS}", rsql::create_table(&target_table, &columns, &schema.primary_key));
    post(format!("{target}/__split/init"), vec![("authorization", auth.clone())], init.into_bytes()).await?;

    let first = PageRequest { table: &table, columns: &columns, order: &order, after: None, from: None, limit: batch };
    let mut current = src.fetch_batch(&first, rsql::MAX_BATCH_JSON_BYTES).await?;
    let mut rows = 0usize;
    let mut pages = 0usize;
    // Where the fetcher's time went: waiting for room among the writes in flight (the page
    // read goes on meanwhile), and waiting for the next page after handing this one over.
    let (mut write_ms, mut read_ms) = (0.0, 0.0);
    let depth = spec["depth"].as_u64().unwrap_or(4).max(1) as usize;
    let mut inflight = FuturesOrdered::new();
    loop {
        let exhausted = current.rows < batch;
        let checkpoint: Option<Vec<Value>> = current.last.as_ref().map(|l| order.iter().map(|&i| l[i].clone()).collect());
        // The next page is read while the object writes this one, as the in-object copy does.
        let next_page = PageRequest { after: checkpoint.as_deref(), ..first.clone() };
        let mut next = if exhausted { None } else { Some(Box::pin(maybe_done(src.fetch_batch(&next_page, rsql::MAX_BATCH_JSON_BYTES)))) };
        if let Some(n) = next.as_mut() {
            let _ = futures_util::poll!(n.as_mut());
        }
        let cp = serde_json::to_string(&checkpoint).map_err(bad)?;
        let tw = js_sys::Date::now();
        for text in std::mem::take(&mut current.batches) {
            // Up to `depth` pages in flight: each answer waits for the object's commit to be
            // durable, and waiting for one at a time would serialize those waits.
            while inflight.len() >= depth {
                loop {
                    match &mut next {
                        Some(n) if !matches!(n.as_ref().get_ref(), MaybeDone::Done(_)) => {
                            futures_util::select_biased! {
                                r = inflight.select_next_some() => { r?; break; }
                                _ = n.as_mut().fuse() => {}
                            }
                        }
                        _ => {
                            if let Some(r) = inflight.next().await {
                                r?;
                            }
                            break;
                        }
                    }
                }
            }
            // In the query string: the target's entry Worker forwards only the API's own headers.
            let mut url = worker::Url::parse(&format!("{target}/__split/write")).map_err(bad)?;
            url.query_pairs_mut().append_pair("sql", &upsert).append_pair("checkpoint", &cp);
            inflight.push_back(post(url.to_string(), vec![("authorization", auth.clone())], text));
        }
        rows += current.rows;
        pages += 1;
        let tr = js_sys::Date::now();
        write_ms += tr - tw;
        let Some(mut n) = next else { break };
        // The page read and the writes in flight go on together.
        while !matches!(n.as_ref().get_ref(), MaybeDone::Done(_)) {
            if inflight.is_empty() {
                n.as_mut().await;
                break;
            }
            futures_util::select_biased! {
                r = inflight.select_next_some() => r?,
                _ = n.as_mut().fuse() => {}
            }
        }
        read_ms += js_sys::Date::now() - tr;
        current = n.as_mut().take_output().expect("a finished future has its output")?;
    }
    let tw = js_sys::Date::now();
    while let Some(r) = inflight.next().await {
        r?;
    }
    write_ms += js_sys::Date::now() - tw;
    Ok(format!(
        r#"{{"rows":{rows},"pages":{pages},"ms":{},"write_wait_ms":{write_ms},"read_wait_ms":{read_ms}}}"#,
        js_sys::Date::now() - t0
    ))
}

/// The object's side: `init` creates the target and the checkpoint table; `write` commits one
/// batch with its checkpoint.
pub async fn object(store: &DoStore, path: &str, mut req: Request) -> worker::Result<Response> {
    let body = req.bytes().await?;
    let r = match path {
        "/__split/init" => {
            String::from_utf8_lossy(&body).split(';').try_for_each(|sql| store.transaction(&[Stmt::new(sql.to_string(), vec![])]))
        }
        _ => {
            let url = req.url()?;
            let arg = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned()).unwrap_or_default();
            let (sql, cp) = (arg("sql"), arg("checkpoint"));
            store.transaction(&[
                Stmt::new(sql, vec![Value::Blob(body)]),
                Stmt::new("INSERT OR REPLACE INTO _split_checkpoint (k, v) VALUES (1, ?1)".to_string(), vec![Value::Text(cp)]),
            ])
        }
    };
    match r {
        Ok(()) => Response::ok("ok"),
        Err(e) => Response::error(e.to_string(), 500),
    }
}
