//! The HTTP contract (docs/API.md) as a pure function of a request and a `Host`.
//!
//! The Durable Object adapter turns a `worker::Request` into an `ApiRequest`, and the
//! `Host` gives access to storage, time, bindings and sources; the routing, validation and
//! responses here are therefore testable without workerd.

use crate::auth::Role;
use crate::catalog::{self, LiveRuns, RunRecord, State, SyncState};
use crate::config::{self, Bindings, Config, Mode, SourceSpec, SourceType};
use crate::dashboard;
use crate::engine::{self, Clock, Limits, RunContext, RunOptions};
use crate::error::{Error, Result};
use crate::follow;
use crate::metrics;
use crate::query_guard::{self, ClientPolicy, GuardError, Reader};
use crate::replica_sql;
use crate::source::{FeedOp, Source};
use crate::store::{ReadCaps, RowShape, Store};
use crate::time::format_epoch_ms;
use serde_json::{json, Value as Json};

pub const MAX_BODY_BYTES: usize = 1 << 20;

pub struct ApiRequest {
    pub method: String,
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    /// `None` when no valid token was presented.
    pub role: Option<Role>,
    /// The request headers the API reads (`x-replica-bookmark`, `x-replica-location`), as
    /// (lower-case name, value).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ApiRequest {
    /// The value of header `name` (lower case), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// The request headers `handle` reads; the entry Worker forwards these to the object.
pub const REQUEST_HEADERS: &[&str] = &[BOOKMARK_HEADER, LOCATION_HEADER];
const BOOKMARK_HEADER: &str = "x-replica-bookmark";
pub const LOCATION_HEADER: &str = "x-replica-location";

/// Client-token read limits when their Worker variables are unset (the contract's defaults).
const DEFAULT_MAX_ROWS: u64 = 100_000;
const DEFAULT_MAX_BYTES: u64 = 16 << 20;

#[derive(Debug)]
pub struct ApiResponse {
    pub status: u16,
    pub body: String,
    /// Further headers (e.g. `allow` on a 405), as (lower-case name, value). The content type
    /// is JSON unless a `content-type` here says otherwise (the dashboard, `/metrics`).
    pub headers: Vec<(&'static str, String)>,
}

impl ApiResponse {
    pub fn ok(status: u16, result: Json) -> Self {
        ApiResponse { status, body: json!({ "result": result, "error": null }).to_string(), headers: Vec::new() }
    }
    pub fn error(e: &Error) -> Self {
        ApiResponse { status: e.status(), body: json!({ "result": null, "error": e.message() }).to_string(), headers: Vec::new() }
    }
    /// A 200 that is not JSON: `headers` must include its `content-type`.
    fn other(body: String, headers: Vec<(&'static str, String)>) -> Self {
        ApiResponse { status: 200, body, headers }
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
    /// Tells the read replicas at `locations` that the primary has new changes for them.
    async fn nudge_replicas(&self, locations: &[String]) {
        let _ = locations;
    }
}

enum Route {
    Health,
    OpenApi,
    Dashboard(dashboard::Asset),
    Metrics,
    Configs,
    Config(i64),
    Sync(i64),
    Callback,
    Statuses,
    Status(i64),
    Runs,
    Replicas,
    Query { raw: bool },
}

/// Which token a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// None (a token does not hurt).
    Public,
    /// The admin or the client token.
    Reader,
    /// The admin token.
    Admin,
}

/// One route the router answers. `path` is a pattern in OpenAPI's spelling, where `{id}`
/// stands for a config id segment.
#[derive(Debug)]
pub struct RouteSpec {
    pub path: &'static str,
    pub methods: &'static [&'static str],
    pub access: Access,
    /// Builds the route from the id segment's value (0 where the pattern has none).
    make: fn(i64) -> Route,
}

/// Every route, the one list that `route` matches against; docs/openapi.json documents
/// exactly these paths and methods (a test in `openapi` checks both directions).
pub const ROUTES: &[RouteSpec] = &[
    RouteSpec { path: "/health", methods: &["GET"], access: Access::Public, make: |_| Route::Health },
    RouteSpec { path: "/openapi.json", methods: &["GET"], access: Access::Public, make: |_| Route::OpenApi },
    // The dashboard's page and files load without a token; the page asks for one and sends it
    // only to the admin routes below, as a bearer header.
    RouteSpec { path: "/", methods: &["GET"], access: Access::Public, make: |_| Route::Dashboard(dashboard::Asset::Page) },
    RouteSpec { path: "/dashboard.js", methods: &["GET"], access: Access::Public, make: |_| Route::Dashboard(dashboard::Asset::Script) },
    RouteSpec { path: "/dashboard.css", methods: &["GET"], access: Access::Public, make: |_| Route::Dashboard(dashboard::Asset::Style) },
    RouteSpec { path: "/metrics", methods: &["GET"], access: Access::Admin, make: |_| Route::Metrics },
    RouteSpec { path: "/replication/configs", methods: &["GET", "POST"], access: Access::Admin, make: |_| Route::Configs },
    RouteSpec { path: "/replication/configs/{id}", methods: &["GET", "PUT", "DELETE"], access: Access::Admin, make: Route::Config },
    RouteSpec { path: "/replication/sync/{id}", methods: &["POST"], access: Access::Admin, make: Route::Sync },
    RouteSpec { path: "/replication/callback", methods: &["POST"], access: Access::Admin, make: |_| Route::Callback },
    RouteSpec { path: "/replication/status", methods: &["GET"], access: Access::Admin, make: |_| Route::Statuses },
    RouteSpec { path: "/replication/status/{id}", methods: &["GET"], access: Access::Admin, make: Route::Status },
    RouteSpec { path: "/replication/runs", methods: &["GET"], access: Access::Admin, make: |_| Route::Runs },
    RouteSpec { path: "/replication/replicas", methods: &["GET"], access: Access::Admin, make: |_| Route::Replicas },
    RouteSpec { path: "/query", methods: &["POST"], access: Access::Reader, make: |_| Route::Query { raw: false } },
    RouteSpec { path: "/query/raw", methods: &["POST"], access: Access::Reader, make: |_| Route::Query { raw: true } },
];

fn parse_id(s: &str) -> Result<i64> {
    match s.parse::<i64>() {
        // Ids count up from 1 and never get near 2^53; a larger one names nothing, and the
        // Durable Object could not bind it exactly (JS numbers) to look it up.
        Ok(i) if i > crate::store::MAX_SAFE_INTEGER && s.bytes().all(|b| b.is_ascii_digit()) => Err(not_found(i)),
        Ok(i) if i > 0 && s.bytes().all(|b| b.is_ascii_digit()) => Ok(i),
        _ => Err(Error::bad_request(format!("id must be a positive integer, got {s:?}"))),
    }
}

/// The segments of a path after its leading `/`, ignoring trailing slashes (`/` has none).
fn segments(path: &str) -> Vec<&str> {
    path.trim_end_matches('/').split('/').skip(1).collect()
}

/// Matches the path against `ROUTES`; returns the route and its spec (the methods it allows).
fn route(path: &str) -> Result<(Route, &'static RouteSpec)> {
    let parts = segments(path);
    for spec in ROUTES {
        let pattern = segments(spec.path);
        if pattern.len() != parts.len() || !pattern.iter().zip(&parts).all(|(p, s)| *p == "{id}" || p == s) {
            continue;
        }
        let id = match pattern.iter().zip(&parts).find(|(p, _)| **p == "{id}") {
            Some((_, s)) => parse_id(s)?,
            None => 0,
        };
        return Ok(((spec.make)(id), spec));
    }
    Err(Error::not_found(format!("no route for {path}")))
}

pub async fn handle<H: Host>(host: &H, req: ApiRequest) -> ApiResponse {
    match dispatch(host, req).await {
        Ok(r) => r,
        Err(e) => ApiResponse::error(&e),
    }
}

async fn dispatch<H: Host>(host: &H, req: ApiRequest) -> Result<ApiResponse> {
    let public = ROUTES.iter().any(|r| r.access == Access::Public && segments(r.path) == segments(&req.path));
    if !public && req.role.is_none() {
        return Err(Error::unauthorized("missing or invalid bearer token (Authorization: Bearer <token>)"));
    }
    let (route, spec) = route(&req.path)?;
    if !spec.methods.contains(&req.method.as_str()) {
        let allowed = spec.methods.join(", ");
        let e = Error::method_not_allowed(format!("{} does not allow {}; allowed: {allowed}", req.path, req.method));
        // RFC 9110: a 405 names the methods the route accepts.
        return Ok(ApiResponse { headers: vec![("allow", allowed)], ..ApiResponse::error(&e) });
    }
    if req.body.len() > MAX_BODY_BYTES {
        return Err(Error::too_large(format!("request body is larger than {MAX_BODY_BYTES} bytes")));
    }
    if spec.access == Access::Admin && req.role != Some(Role::Admin) {
        return Err(Error::forbidden("this route needs the admin token"));
    }
    let store = host.store();
    catalog::migrate(store)?;
    follow_settings(host)?;
    let m = req.method.as_str();
    match route {
        Route::Health => Ok(ApiResponse::ok(200, json!({ "ok": true, "version": crate::VERSION }))),
        // The document itself, not an envelope: OpenAPI tools read it as it is.
        Route::OpenApi => Ok(ApiResponse { status: 200, body: crate::openapi::OPENAPI_JSON.to_string(), headers: Vec::new() }),
        Route::Dashboard(asset) => Ok(ApiResponse::other(asset.body().to_string(), dashboard::headers(asset))),
        Route::Metrics => {
            let statuses = all_statuses(host)?;
            let durations = catalog::last_run_durations(store)?;
            let mut text = metrics::render(&statuses, |id| durations.get(&id).copied().flatten())
                .map_err(|e| Error::internal(format!("status is unreadable for metrics: {e}")))?;
            let locations = replica_locations(host.bindings())?;
            if !locations.is_empty() {
                metrics::render_replicas(&mut text, &follow::statuses(store, &locations, host.clock().now_ms())?);
            }
            Ok(ApiResponse::other(text, vec![("content-type", metrics::CONTENT_TYPE.to_string())]))
        }
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
                    let left_behind = if cfg.mode == Mode::Cdc { cdc_teardown(host, &cfg).await? } else { Vec::new() };
                    catalog::delete_config(store, &cfg, drop)?;
                    reschedule(host).await;
                    if left_behind.is_empty() {
                        Ok(ApiResponse::ok(200, json!({ "deleted": true })))
                    } else {
                        Ok(ApiResponse::ok(200, json!({ "deleted": true, "left_behind": left_behind })))
                    }
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
                Some(msg) => {
                    Ok(ApiResponse { status: 502, body: json!({ "result": body, "error": msg }).to_string(), headers: Vec::new() })
                }
                None => Ok(ApiResponse::ok(200, body)),
            }
        }
        Route::Callback => {
            let records = run_due(host).await?;
            Ok(ApiResponse::ok(200, serde_json::to_value(records).expect("serializes")))
        }
        Route::Statuses => Ok(ApiResponse::ok(200, Json::Array(all_statuses(host)?))),
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
        Route::Replicas => {
            let locations = replica_locations(host.bindings())?;
            let list = follow::statuses(store, &locations, host.clock().now_ms())?;
            Ok(ApiResponse::ok(200, serde_json::to_value(list).expect("serializes")))
        }
        Route::Query { raw } => {
            // Read in the same synchronous turn as the query: no write lands in between, so
            // the rows are exactly those of this position.
            let bookmark = catalog::bookmark(store)?;
            let served_by = follow::load(store)?.location.unwrap_or_else(|| "primary".to_string());
            let mut r = query(host, &req, raw, &bookmark).unwrap_or_else(|e| ApiResponse::error(&e));
            r.headers.push(("x-replica-bookmark", bookmark));
            r.headers.push(("x-replica-served-by", served_by));
            Ok(r)
        }
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
    let mut cfg = config::validate(body, None, host.bindings(), &now, id)?;
    let kind = source_type(host, &cfg)?;
    crate::cdc::fill_defaults(&mut cfg, &catalog::instance_id(store)?, kind);
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
    let mut cfg = config::validate(body, Some(&old), host.bindings(), &format_epoch_ms(now_ms), old.id)?;
    // A publication named after its slot (the default) follows the slot to a new name.
    if cfg.slot_name != old.slot_name && cfg.publication.is_some() && cfg.publication == old.slot_name {
        cfg.publication = None;
    }
    let kind = source_type(host, &cfg)?;
    crate::cdc::fill_defaults(&mut cfg, &catalog::instance_id(store)?, kind);
    if let Some(other) = catalog::target_in_use(store, &cfg.target_table, cfg.id)? {
        return Err(Error::conflict(format!("target_table {:?} is already used by config {other}", cfg.target_table)));
    }
    catalog::update_config(store, &cfg, config::needs_reset(&old, &cfg), now_ms)?;
    // A cdc config that moved to another slot (or left cdc) lets go of its old one, which
    // would otherwise keep the origin's WAL: as a delete would, best effort.
    if old.mode == Mode::Cdc && (cfg.mode != Mode::Cdc || crate::cdc::slot_key(&old) != crate::cdc::slot_key(&cfg)) {
        let _ = cdc_teardown(host, &old).await;
    }
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
    follow_settings(host)?;
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

/// `REPLICA_LOCATIONS` as a list of location hints (empty: no read replicas).
pub fn replica_locations(b: &dyn Bindings) -> Result<Vec<String>> {
    follow::route::parse_locations(b.var("REPLICA_LOCATIONS").as_deref())
}

/// The primary keeps its change log while read replicas are configured. (A read replica's
/// object runs none of the routes that call this for itself: its reads skip it.)
fn follow_settings<H: Host>(host: &H) -> Result<()> {
    let store = host.store();
    if follow::is_replica(store)? {
        return Ok(());
    }
    // A REPLICA_LOCATIONS that is not a list of hints fails the reads and the replicas list
    // (naming it); the rest of the API keeps working.
    match replica_locations(host.bindings()) {
        Ok(locations) => follow::set_logging(store, !locations.is_empty()),
        Err(_) => Ok(()),
    }
}

/// After anything that may have changed replica tables: the log trimmed, and the read
/// replicas nudged when the primary's position moved since they were last nudged.
async fn notify_replicas<H: Host>(host: &H) {
    let store = host.store();
    let Ok(locations) = replica_locations(host.bindings()) else { return };
    if locations.is_empty() || !follow::logging(store).unwrap_or(false) {
        return;
    }
    let max_bytes =
        positive_var(host.bindings(), "REPLICA_LOG_MAX_BYTES", follow::DEFAULT_LOG_MAX_BYTES).unwrap_or(follow::DEFAULT_LOG_MAX_BYTES);
    let _ = follow::trim(store, &locations, max_bytes);
    let Ok(head) = catalog::bookmark_position(store) else { return };
    if follow::nudged(store).ok() == Some(head) {
        return;
    }
    host.nudge_replicas(&locations).await;
    let _ = follow::set_nudged(store, head);
}

/// Arms the alarm for the earliest due time among enabled configs, and tells the read
/// replicas about what changed.
pub async fn reschedule<H: Host>(host: &H) {
    notify_replicas(host).await;
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

/// The status of every config, as `GET /replication/status` (and `/metrics`) report it.
fn all_statuses<H: Host>(host: &H) -> Result<Vec<Json>> {
    let store = host.store();
    let configs = catalog::load_configs(store)?;
    let states = catalog::load_states(store)?;
    let now = host.clock().now_ms();
    configs.iter().map(|c| status_json(store, host.live_runs(), c, states.iter().find(|s| s.config_id == c.id), now)).collect()
}

fn status_json(store: &dyn Store, live: &LiveRuns, cfg: &Config, state: Option<&SyncState>, now: i64) -> Result<Json> {
    let st = State::of(cfg.enabled, state, state.is_some_and(|s| live.holds_lock(s, now)));
    let target_row_count = if catalog::table_exists(store, &cfg.target_table)? {
        store.query(&replica_sql::count_rows(&cfg.target_table), &[])?.first().and_then(|r| r[0].as_i64())
    } else {
        None
    };
    let next = if cfg.enabled { Some(state.and_then(|s| s.next_sync_at).unwrap_or(now)) } else { None };
    // A cdc config's data is as fresh as the slot it shares with the other configs on it.
    let slot = if cfg.mode == Mode::Cdc { catalog::load_slot(store, &crate::cdc::slot_key(cfg))? } else { None };
    let data_as_of = match &slot {
        Some(s) => s.data_as_of.as_deref().and_then(crate::time::parse_timestamp_micros).map(|us| us / 1000),
        None => state.and_then(|s| s.data_as_of_ms),
    };
    let mut out = json!({
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
        "data_as_of": data_as_of.map(format_epoch_ms),
        "lag_seconds": data_as_of.map(|t| (now - t).max(0) as f64 / 1000.0),
        "last_reconcile_at": state.and_then(|s| s.last_reconcile_at.clone()),
    });
    if cfg.mode == Mode::Cdc && cfg.server_id.is_some() {
        out["cursor"] = json!(slot.as_ref().and_then(|s| s.confirmed_lsn.clone()));
        out["cdc"] = json!({
            "server_id": cfg.server_id,
            "binlog_position": slot.as_ref().and_then(|s| s.confirmed_lsn.clone()),
            "binlog_lag_bytes": slot.as_ref().and_then(|s| s.slot_lag_bytes),
        });
    } else if cfg.mode == Mode::Cdc {
        out["cursor"] = json!(slot.as_ref().and_then(|s| s.confirmed_lsn.clone()));
        out["cdc"] = json!({
            "slot_name": cfg.slot_name,
            "publication": cfg.publication,
            "confirmed_lsn": slot.as_ref().and_then(|s| s.confirmed_lsn.clone()),
            "slot_lag_bytes": slot.as_ref().and_then(|s| s.slot_lag_bytes),
            "wal_status": slot.as_ref().and_then(|s| s.wal_status.clone()),
        });
    }
    Ok(out)
}

/// Takes a deleted cdc config's table out of the replica's publication, and drops the slot
/// (and the publication, if the replica made it) with the last config that reads it. What
/// cannot be removed (the origin is down) is named, and the config is deleted all the same.
async fn cdc_teardown<H: Host>(host: &H, cfg: &Config) -> Result<Vec<String>> {
    let store = host.store();
    let key = crate::cdc::slot_key(cfg);
    let Some(slot) = catalog::load_slot(store, &key)? else { return Ok(Vec::new()) };
    let others = catalog::load_configs(store)?.iter().any(|c| c.id != cfg.id && c.mode == Mode::Cdc && crate::cdc::slot_key(c) == key);
    if cfg.server_id.is_some() {
        // A binlog reader leaves nothing at the origin: only its position here goes.
        if !others {
            catalog::delete_slot(store, &key)?;
        }
        return Ok(Vec::new());
    }
    let own = slot.own_publication == 1;
    let mut wanted: Vec<String> = Vec::new();
    if own && others {
        wanted.push(format!("table {} in publication {}", cfg.source_table, slot.publication));
    }
    if !others {
        wanted.push(format!("replication slot {}", slot.slot_name));
        if own {
            wanted.push(format!("publication {}", slot.publication));
        }
    }
    let mut left: Vec<String> = Vec::new();
    let mut src = match host.open_source(cfg).await {
        Ok(s) => s,
        Err(e) => {
            if !others {
                catalog::delete_slot(store, &key)?;
            }
            return Ok(wanted.into_iter().map(|w| format!("{w} (the origin could not be reached: {})", e.message())).collect());
        }
    };
    if own && others {
        let table = engine::resolve_table(cfg, SourceType::Postgres)?;
        if let Err(e) = src.feed(FeedOp::Unpublish { publication: &slot.publication, table: &table }).await {
            left.push(format!("{} ({})", wanted[0], e.message()));
        }
    }
    if !others {
        if let Err(e) = src.feed(FeedOp::DropSlot { slot: &slot.slot_name }).await {
            left.push(format!("replication slot {} ({})", slot.slot_name, e.message()));
        }
        if own {
            if let Err(e) = src.feed(FeedOp::DropPublication { publication: &slot.publication }).await {
                left.push(format!("publication {} ({})", slot.publication, e.message()));
            }
        }
        catalog::delete_slot(store, &key)?;
    }
    Ok(left)
}

/// `X-Replica-Location` and `X-Replica-Bookmark` on the object that answers the read. The
/// entry Worker routed the read by its location already (`follow::route`), and a read replica
/// waited for the bookmark before answering (`worker::replicas`); here they are checked again
/// for what reaches the object directly: a location that names nothing is 400, and a
/// bookmark that is not one is 400. The primary holds every change up to its own position, so
/// it is at least as new as any bookmark it gave.
fn check_replica_headers(host_bindings: &dyn Bindings, req: &ApiRequest) -> Result<()> {
    if req.header(LOCATION_HEADER).is_some() {
        let locations = replica_locations(host_bindings)?;
        follow::route::read_target(&locations, req.header(LOCATION_HEADER), &follow::route::CallerPlace::default())?;
    }
    if let Some(v) = req.header(BOOKMARK_HEADER) {
        if crate::bookmark::parse(v.trim()).is_none() {
            return Err(Error::bad_request(format!(
                "X-Replica-Bookmark must be a bookmark this replica returned (20 digits, as in an X-Replica-Bookmark answer \
                 header), got {v:?}"
            )));
        }
    }
    Ok(())
}

/// A positive integer Worker variable, or `default` when it is unset or empty. A value that
/// is not one is a deployment mistake, answered 500 naming the variable, never guessed at.
pub fn positive_var(b: &dyn Bindings, name: &str, default: u64) -> Result<u64> {
    match b.var(name) {
        Some(v) if !v.trim().is_empty() => match v.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(Error::internal(format!("the Worker variable {name} must be a positive integer, got {v:?}"))),
        },
        _ => Ok(default),
    }
}

/// What a client token may read: the guard's policy and the result caps, from the Worker's
/// variables (README, "Limits on reads").
fn client_limits(b: &dyn Bindings, shape: RowShape) -> Result<(ClientPolicy, ReadCaps)> {
    let allow_recursive = match b.var("ALLOW_RECURSIVE_QUERIES").as_deref().map(str::trim) {
        None | Some("") => false,
        Some(v) => parse_bool("ALLOW_RECURSIVE_QUERIES", v)
            .map_err(|_| Error::internal(format!("the Worker variable ALLOW_RECURSIVE_QUERIES must be true or false, got {v:?}")))?,
    };
    let caps = ReadCaps {
        max_rows: Some(positive_var(b, "QUERY_MAX_ROWS", DEFAULT_MAX_ROWS)?),
        max_bytes: Some(positive_var(b, "QUERY_MAX_BYTES", DEFAULT_MAX_BYTES)?),
        shape,
    };
    Ok((ClientPolicy { allow_recursive }, caps))
}

fn query<H: Host>(host: &H, req: &ApiRequest, raw: bool, bookmark: &str) -> Result<ApiResponse> {
    check_replica_headers(host.bindings(), req)?;
    let v: Json = serde_json::from_slice(&req.body).map_err(|e| Error::bad_request(format!("request body is not valid JSON: {e}")))?;
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
    let shape = if raw { RowShape::Arrays } else { RowShape::Objects };
    let (reader, policy, caps) = match req.role {
        Some(Role::Admin) => (Reader::Admin, ClientPolicy::PERMISSIVE, ReadCaps { shape, ..ReadCaps::NONE }),
        _ => {
            let (policy, caps) = client_limits(host.bindings(), shape)?;
            (Reader::Client, policy, caps)
        }
    };
    query_guard::check_read(sql, reader, &params, policy).map_err(|e| match e {
        GuardError::Invalid(m) => Error::bad_request(m),
        GuardError::Forbidden(m) => Error::forbidden(m),
    })?;
    let out = host.store().query_json(sql, &params, &caps)?;
    // The rows go out as the store wrote them, the very text the byte cap measured: never
    // parsed into values here, which would take many times their size in memory. (Keys in
    // the order `ApiResponse::ok` writes them, sorted, as these routes have always answered.)
    let body = if raw {
        let meta = json!({ "bookmark": bookmark, "rows_read": out.rows_read, "rows_written": out.rows_written });
        let columns = serde_json::to_string(&out.columns).expect("strings serialize");
        format!(r#"{{"error":null,"result":{{"columns":{columns},"meta":{meta},"rows":{}}}}}"#, out.rows_json)
    } else {
        format!(r#"{{"error":null,"result":{}}}"#, out.rows_json)
    };
    Ok(ApiResponse { status: 200, body, headers: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(path: &str) -> u16 {
        route(path).err().map_or(200, |e| e.status())
    }

    #[test]
    fn every_route_pattern_matches_its_own_spec() {
        for spec in ROUTES {
            for path in [spec.path.replace("{id}", "7"), format!("{}/", spec.path.replace("{id}", "7"))] {
                let (_, found) = route(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                assert_eq!(found.path, spec.path, "{path}");
            }
        }
        assert!(matches!(route("/replication/configs/42"), Ok((Route::Config(42), _))));
        assert!(matches!(route("/query/raw"), Ok((Route::Query { raw: true }, _))));
    }

    #[test]
    fn ids_and_unknown_paths_keep_their_answers() {
        for p in [
            "/replication/configs/abc",
            "/replication/configs/0",
            "/replication/sync/-1",
            "/replication/status/1.5",
            "/replication/configs/{id}",
        ] {
            assert_eq!(status(p), 400, "{p}");
        }
        for p in ["/nope", "/replication", "/replication/configs/1/extra", "/health/extra", "//health", "/query/nope"] {
            assert_eq!(status(p), 404, "{p}");
            assert!(route(p).err().unwrap().message().starts_with("no route for"), "{p}");
        }
        assert_eq!(status("/replication/configs/9007199254740993"), 404);
        // The dashboard answers at the root, however written.
        for p in ["/", "", "//"] {
            assert!(matches!(route(p), Ok((Route::Dashboard(dashboard::Asset::Page), _))), "{p}");
        }
        assert_eq!(status("/health//"), 200);
    }
}
