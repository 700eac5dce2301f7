//! The HTTP contract (shared/API.md) as a pure function of a request and a `Host`.
//!
//! The Durable Object adapter turns a `worker::Request` into an `ApiRequest`, and the
//! `Host` gives access to storage, time, bindings and sources; the routing, validation and
//! responses here are therefore testable without workerd.

use crate::auth::Role;
use crate::catalog::{self, LiveRuns, RunRecord, State, SyncState};
use crate::config::{self, Bindings, Config, Mode, SourceSpec, SourceType};
use crate::engine::{self, Clock, Limits, RunContext, RunOptions};
use crate::error::{Error, Result};
use crate::query_guard::{self, GuardError, Reader};
use crate::replica_sql;
use crate::source::Source;
use crate::store::Store;
use crate::time::format_epoch_ms;
use serde_json::{json, Map, Value as Json};

pub const MAX_BODY_BYTES: usize = 1 << 20;

pub struct ApiRequest {
    pub method: String,
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    /// `None` when no valid token was presented.
    pub role: Option<Role>,
    pub body: Vec<u8>,
}

#[derive(Debug)]
pub struct ApiResponse {
    pub status: u16,
    pub body: String,
}

impl ApiResponse {
    fn ok(status: u16, result: Json) -> Self {
        ApiResponse { status, body: json!({ "result": result, "error": null }).to_string() }
    }
    pub fn error(e: &Error) -> Self {
        ApiResponse { status: e.status(), body: json!({ "result": null, "error": e.message() }).to_string() }
    }
}

#[allow(async_fn_in_trait)]
pub trait Host {
    type Src: Source;
    fn store(&self) -> &dyn Store;
    fn clock(&self) -> &dyn Clock;
    fn bindings(&self) -> &dyn Bindings;
    fn limits(&self) -> Limits;
    /// The runs this object instance is executing (see `LiveRuns`).
    fn live_runs(&self) -> &LiveRuns;
    /// Connects to the config's source (or the instance's default database).
    async fn open_source(&self, cfg: &Config) -> Result<Self::Src>;
    /// Arms the alarm for `at_ms` (epoch ms), or clears it.
    async fn set_alarm(&self, at_ms: Option<i64>) -> Result<()>;
}

enum Route {
    Health,
    Configs,
    Config(i64),
    Sync(i64),
    Callback,
    Statuses,
    Status(i64),
    Runs,
    Query { raw: bool },
}

fn parse_id(s: &str) -> Result<i64> {
    match s.parse::<i64>() {
        // Ids count up from 1 and never get near 2^53; a larger one names nothing, and the
        // Durable Object could not bind it exactly (JS numbers) to look it up.
        Ok(i) if i > crate::store::MAX_SAFE_INTEGER && s.bytes().all(|b| b.is_ascii_digit()) => Err(not_found(i)),
        Ok(i) if i > 0 && s.bytes().all(|b| b.is_ascii_digit()) => Ok(i),
        _ => Err(Error::bad_request(format!("id must be a positive integer, got {s:?}"))),
    }
}

/// Matches the path; returns the route and the methods it allows.
fn route(path: &str) -> Result<(Route, &'static [&'static str])> {
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    Ok(match parts.as_slice() {
        ["health"] => (Route::Health, &["GET"]),
        ["replication", "configs"] => (Route::Configs, &["GET", "POST"]),
        ["replication", "configs", id] => (Route::Config(parse_id(id)?), &["GET", "PUT", "DELETE"]),
        ["replication", "sync", id] => (Route::Sync(parse_id(id)?), &["POST"]),
        ["replication", "callback"] => (Route::Callback, &["POST"]),
        ["replication", "status"] => (Route::Statuses, &["GET"]),
        ["replication", "status", id] => (Route::Status(parse_id(id)?), &["GET"]),
        ["replication", "runs"] => (Route::Runs, &["GET"]),
        ["query"] => (Route::Query { raw: false }, &["POST"]),
        ["query", "raw"] => (Route::Query { raw: true }, &["POST"]),
        _ => return Err(Error::not_found(format!("no route for {path}"))),
    })
}

pub async fn handle<H: Host>(host: &H, req: ApiRequest) -> ApiResponse {
    match dispatch(host, req).await {
        Ok(r) => r,
        Err(e) => ApiResponse::error(&e),
    }
}

async fn dispatch<H: Host>(host: &H, req: ApiRequest) -> Result<ApiResponse> {
    let is_health = req.path.trim_end_matches('/') == "/health";
    if !is_health && req.role.is_none() {
        return Err(Error::unauthorized("missing or invalid bearer token (Authorization: Bearer <token>)"));
    }
    let (route, methods) = route(&req.path)?;
    if !methods.contains(&req.method.as_str()) {
        return Err(Error::method_not_allowed(format!("{} does not allow {}; allowed: {}", req.path, req.method, methods.join(", "))));
    }
    if req.body.len() > MAX_BODY_BYTES {
        return Err(Error::too_large(format!("request body is larger than {MAX_BODY_BYTES} bytes")));
    }
    let admin_only = !matches!(route, Route::Health | Route::Query { .. });
    if admin_only && req.role != Some(Role::Admin) {
        return Err(Error::forbidden("this route needs the admin token"));
    }
    let store = host.store();
    catalog::migrate(store)?;
    let m = req.method.as_str();
    match route {
        Route::Health => Ok(ApiResponse::ok(200, json!({ "ok": true, "version": crate::VERSION }))),
        Route::Configs if m == "GET" => {
            let configs = catalog::load_configs(store)?;
            Ok(ApiResponse::ok(200, serde_json::to_value(configs).expect("serializes")))
        }
        Route::Configs => create_config(host, &req.body).await,
        Route::Config(id) => {
            let cfg = catalog::load_config(store, id)?.ok_or_else(|| not_found(id))?;
            match m {
                "GET" => Ok(ApiResponse::ok(200, serde_json::to_value(cfg).expect("serializes"))),
                "PUT" => update_config(host, cfg, &req.body).await,
                _ => {
                    let drop = query_param(&req.query, "drop_table").map(|v| parse_bool("drop_table", &v)).transpose()?.unwrap_or(false);
                    catalog::delete_config(store, &cfg, drop)?;
                    reschedule(host).await;
                    Ok(ApiResponse::ok(200, json!({ "deleted": true })))
                }
            }
        }
        Route::Sync(id) => {
            let reconcile = query_param(&req.query, "reconcile").map(|v| parse_bool("reconcile", &v)).transpose()?.unwrap_or(false);
            let cfg = catalog::load_config(store, id)?.ok_or_else(|| not_found(id))?;
            if reconcile && cfg.mode != Mode::Incremental {
                return Err(Error::bad_request(format!(
                    "reconcile=true is only for incremental configs; config {id} is in mode {:?}, whose every run already removes deleted rows",
                    cfg.mode.as_str()
                )));
            }
            let record = run_one(host, &cfg, RunOptions { reconcile, ..RunOptions::default() }).await;
            reschedule(host).await;
            let record = record?;
            let body = serde_json::to_value(&record).expect("serializes");
            match &record.error {
                // The run record is the result either way; a failed run is the origin's failure.
                Some(msg) => Ok(ApiResponse { status: 502, body: json!({ "result": body, "error": msg }).to_string() }),
                None => Ok(ApiResponse::ok(200, body)),
            }
        }
        Route::Callback => {
            let records = run_due(host).await?;
            Ok(ApiResponse::ok(200, serde_json::to_value(records).expect("serializes")))
        }
        Route::Statuses => {
            let configs = catalog::load_configs(store)?;
            let states = catalog::load_states(store)?;
            let now = host.clock().now_ms();
            let out: Vec<Json> = configs
                .iter()
                .map(|c| status_json(store, host.live_runs(), c, states.iter().find(|s| s.config_id == c.id), now))
                .collect::<Result<_>>()?;
            Ok(ApiResponse::ok(200, Json::Array(out)))
        }
        Route::Status(id) => {
            let cfg = catalog::load_config(store, id)?.ok_or_else(|| not_found(id))?;
            let state = catalog::load_state(store, id)?;
            Ok(ApiResponse::ok(200, status_json(store, host.live_runs(), &cfg, state.as_ref(), host.clock().now_ms())?))
        }
        Route::Runs => {
            let config_id = query_param(&req.query, "config_id").map(|v| parse_id(&v)).transpose()?;
            let limit = match query_param(&req.query, "limit") {
                None => 50,
                Some(v) => match v.parse::<i64>() {
                    Ok(n) if (1..=1000).contains(&n) => n,
                    _ => return Err(Error::bad_request(format!("limit must be an integer from 1 to 1000, got {v:?}"))),
                },
            };
            let runs = catalog::list_runs(store, config_id, limit)?;
            Ok(ApiResponse::ok(200, serde_json::to_value(runs).expect("serializes")))
        }
        Route::Query { raw } => query(store, req.role.unwrap_or(Role::Client), &req.body, raw),
    }
}

fn not_found(id: i64) -> Error {
    Error::not_found(format!("no replication config with id {id}"))
}

fn parse_bool(name: &str, v: &str) -> Result<bool> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(Error::bad_request(format!("{name} must be true or false, got {v:?}"))),
    }
}

/// Value of `name` in an `a=b&c=d` query string, percent-decoded.
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').filter_map(|kv| kv.split_once('=').or(Some((kv, "")))).find(|(k, _)| *k == name).map(|(_, v)| percent_decode(v))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(v) => {
                    out.push(v);
                    i += 3;
                    continue;
                }
                None => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn create_config<H: Host>(host: &H, body: &[u8]) -> Result<ApiResponse> {
    let store = host.store();
    let now = format_epoch_ms(host.clock().now_ms());
    let id = catalog::next_config_id(store)?;
    let cfg = config::validate(body, None, host.bindings(), &now, id)?;
    if let Some(other) = catalog::target_in_use(store, &cfg.target_table, 0)? {
        return Err(Error::conflict(format!("target_table {:?} is already used by config {other}", cfg.target_table)));
    }
    catalog::insert_config(store, &cfg)?;
    reschedule(host).await;
    Ok(ApiResponse::ok(201, serde_json::to_value(cfg).expect("serializes")))
}

async fn update_config<H: Host>(host: &H, old: Config, body: &[u8]) -> Result<ApiResponse> {
    let store = host.store();
    let now_ms = host.clock().now_ms();
    let cfg = config::validate(body, Some(&old), host.bindings(), &format_epoch_ms(now_ms), old.id)?;
    if let Some(other) = catalog::target_in_use(store, &cfg.target_table, cfg.id)? {
        return Err(Error::conflict(format!("target_table {:?} is already used by config {other}", cfg.target_table)));
    }
    catalog::update_config(store, &cfg, config::needs_reset(&old, &cfg), now_ms)?;
    reschedule(host).await;
    Ok(ApiResponse::ok(200, serde_json::to_value(cfg).expect("serializes")))
}

pub fn source_type<H: Host>(host: &H, cfg: &Config) -> Result<SourceType> {
    cfg.source
        .as_ref()
        .map(SourceSpec::kind)
        .or_else(|| host.bindings().default_source_type())
        .ok_or_else(|| Error::bad_request("the config has no source and this instance has no default external database"))
}

async fn run_one<H: Host>(host: &H, cfg: &Config, opts: RunOptions) -> Result<RunRecord> {
    let ctx = RunContext { store: host.store(), clock: host.clock(), live: host.live_runs(), limits: host.limits() };
    // Without a source type (the instance's default database was removed from the settings
    // after the config was made) opening fails, and the run records that failure and backs
    // off; an `Err` here would end the alarm's pass before the configs after this one.
    let open = async {
        source_type(host, cfg)?;
        host.open_source(cfg).await
    };
    engine::run_with(&ctx, cfg, open, opts).await
}

/// Runs every enabled config that is due, most overdue first, within one time budget;
/// what does not fit stays due and the alarm comes back for it at once.
pub async fn run_due<H: Host>(host: &H) -> Result<Vec<RunRecord>> {
    let store = host.store();
    catalog::migrate(store)?;
    let start = host.clock().now_ms();
    let configs = catalog::load_configs(store)?;
    let states = catalog::load_states(store)?;
    let mut due: Vec<(i64, &Config)> = configs
        .iter()
        .filter(|c| c.enabled)
        .filter_map(|c| {
            let next = states.iter().find(|s| s.config_id == c.id).and_then(|s| s.next_sync_at).unwrap_or(0);
            (next <= start).then_some((next, c))
        })
        .collect();
    due.sort_by_key(|(n, c)| (*n, c.id));
    let mut records = Vec::new();
    for (_, listed) in due {
        if host.clock().now_ms() - start >= host.limits().budget_ms {
            break;
        }
        // Earlier runs awaited their sources, and meanwhile this config may have been
        // deleted, disabled, reset or retargeted: run what is stored now, never the old copy.
        let Some(cfg) = catalog::load_config(store, listed.id)? else { continue };
        if !cfg.enabled {
            continue;
        }
        match run_one(host, &cfg, RunOptions::default()).await {
            Ok(r) => records.push(r),
            // Already running (a manual sync): that run reschedules it.
            Err(e) if e.is_busy() => {}
            Err(e) => return Err(e),
        }
    }
    reschedule(host).await;
    Ok(records)
}

/// The alarm's entry point: never fails, and always leaves an alarm armed while any config is enabled.
pub async fn on_alarm<H: Host>(host: &H) {
    if run_due(host).await.is_err() {
        // Storage itself failed: try again in a minute rather than never.
        let _ = host.set_alarm(Some(host.clock().now_ms() + 60_000)).await;
    }
}

/// Arms the alarm for the earliest due time among enabled configs.
pub async fn reschedule<H: Host>(host: &H) {
    let next = next_alarm(host.store(), host.live_runs(), host.clock().now_ms());
    match next {
        Ok(at) => {
            let _ = host.set_alarm(at).await;
        }
        Err(_) => {
            let _ = host.set_alarm(Some(host.clock().now_ms() + 60_000)).await;
        }
    }
}

fn next_alarm(store: &dyn Store, live: &LiveRuns, now: i64) -> Result<Option<i64>> {
    let configs = catalog::load_configs(store)?;
    let states = catalog::load_states(store)?;
    Ok(configs
        .iter()
        .filter(|c| c.enabled)
        .map(|c| {
            let s = states.iter().find(|s| s.config_id == c.id);
            // A running config's own run reschedules it; make sure the alarm checks back
            // when its lock expires in case that run dies with its process. A lock left by a
            // process that already died holds nothing back.
            let next = s.and_then(|s| s.next_sync_at).unwrap_or(now);
            match s.filter(|s| live.holds_lock(s, now)).and_then(|s| s.lock_until) {
                Some(until) => next.max(until),
                None => next,
            }
        })
        .min())
}

fn status_json(store: &dyn Store, live: &LiveRuns, cfg: &Config, state: Option<&SyncState>, now: i64) -> Result<Json> {
    let st = State::of(cfg.enabled, state, state.is_some_and(|s| live.holds_lock(s, now)));
    let target_row_count = if catalog::table_exists(store, &cfg.target_table)? {
        store.query(&replica_sql::count_rows(&cfg.target_table), &[])?.first().and_then(|r| r[0].as_i64())
    } else {
        None
    };
    let next = if cfg.enabled { Some(state.and_then(|s| s.next_sync_at).unwrap_or(now)) } else { None };
    Ok(json!({
        "config_id": cfg.id,
        "target_table": cfg.target_table,
        "state": st,
        "mode": cfg.mode,
        "enabled": cfg.enabled,
        "last_sync_at": state.and_then(|s| s.last_sync_at.clone()),
        "last_success_at": state.and_then(|s| s.last_success_at.clone()),
        "next_sync_at": next.map(format_epoch_ms),
        "last_error": state.and_then(|s| s.last_error.clone()),
        "consecutive_failures": state.map_or(0, |s| s.consecutive_failures),
        "cursor": state.and_then(|s| s.cursor.clone()),
        "rows_synced": state.map_or(0, |s| s.rows_synced),
        "total_rows_synced": state.map_or(0, |s| s.total_rows_synced),
        "target_row_count": target_row_count,
        "null_cursor_rows": state.and_then(|s| s.null_cursor_rows),
        "last_reconcile_at": state.and_then(|s| s.last_reconcile_at.clone()),
    }))
}

fn query(store: &dyn Store, role: Role, body: &[u8], raw: bool) -> Result<ApiResponse> {
    let v: Json = serde_json::from_slice(body).map_err(|e| Error::bad_request(format!("request body is not valid JSON: {e}")))?;
    let Json::Object(m) = v else {
        return Err(Error::bad_request("request body must be a JSON object with `sql` and optional `params`"));
    };
    if let Some(k) = m.keys().find(|k| *k != "sql" && *k != "params") {
        return Err(Error::bad_request(format!("unknown field `{k}`; allowed: sql, params")));
    }
    let sql = match m.get("sql") {
        Some(Json::String(s)) => s.as_str(),
        Some(_) => return Err(Error::bad_request("field `sql` must be a string")),
        None => return Err(Error::bad_request("field `sql` is required")),
    };
    let params: Vec<Json> = match m.get("params") {
        None | Some(Json::Null) => vec![],
        Some(Json::Array(a)) => {
            if let Some((i, _)) = a.iter().enumerate().find(|(_, p)| matches!(p, Json::Array(_) | Json::Object(_))) {
                return Err(Error::bad_request(format!("params[{i}] must be a string, number, boolean or null")));
            }
            a.clone()
        }
        Some(_) => return Err(Error::bad_request("field `params` must be an array")),
    };
    let reader = if role == Role::Admin { Reader::Admin } else { Reader::Client };
    query_guard::check_read_only(sql, reader).map_err(|e| match e {
        GuardError::Invalid(m) => Error::bad_request(m),
        GuardError::Forbidden(m) => Error::forbidden(m),
    })?;
    let out = store.query_json(sql, &params)?;
    if raw {
        return Ok(ApiResponse::ok(
            200,
            json!({ "columns": out.columns, "rows": out.rows, "meta": { "rows_read": out.rows_read, "rows_written": out.rows_written } }),
        ));
    }
    let rows: Vec<Json> =
        out.rows.into_iter().map(|r| Json::Object(out.columns.iter().cloned().zip(r).collect::<Map<String, Json>>())).collect();
    Ok(ApiResponse::ok(200, Json::Array(rows)))
}
