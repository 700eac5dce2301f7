//! The thin adapter between the Workers runtime and the runtime-free crate: the entry
//! Worker (auth, body limit, forwarding), the `Replica` Durable Object, and the IO that
//! sources need (sockets, Hyperdrive, env).

mod bounded;
mod deadline;
mod env;
mod js;
mod microtasks;
mod open_mysql;
mod open_postgres;
mod open_sqlite;
mod replicas;
mod socket;
mod sources;
#[cfg(feature = "split-bench")]
mod split_bench;
mod sql_ffi;

use crate::api::{self, ApiRequest, ApiResponse, Host, MAX_BODY_BYTES};
use crate::auth::{self, Role};
use crate::catalog::LiveRuns;
use crate::config::{Bindings, Config};
use crate::engine::{Clock, Limits};
use crate::error::{Error, Result};
use crate::follow::{self, route::ReadTarget};
use crate::store::Store;
use worker::{durable_object, event, Context, DurableObject, Env, Headers, Method, Request, RequestInit, Response, State};

const ROLE_HEADER: &str = "x-edge-replica-role";

fn respond(r: ApiResponse) -> worker::Result<Response> {
    let headers = Headers::new();
    // JSON unless the response names its own type (the dashboard's files, `/metrics`).
    headers.set("content-type", "application/json; charset=utf-8")?;
    headers.set("x-content-type-options", "nosniff")?;
    for (name, value) in &r.headers {
        headers.set(name, value)?;
    }
    Ok(Response::ok(r.body)?.with_status(r.status).with_headers(headers))
}

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
    microtasks::schedule_futures_with_promises();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    #[cfg(feature = "split-bench")]
    if req.path() == "/__split/fetch" {
        return match split_bench::fetcher(req, &env).await {
            Ok(s) => Response::ok(s),
            Err(e) => Response::error(e.to_string(), 500),
        };
    }
    match forward(req, &env).await {
        Ok(r) => Ok(r),
        Err(e) => respond(ApiResponse::error(&e)),
    }
}

async fn forward(mut req: Request, env: &Env) -> Result<Response> {
    let internal = |e: worker::Error| Error::internal(e.to_string());
    let headers = req.headers();
    let declared = headers.get("content-length").ok().flatten().and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        // Read the upload to its end (discarding it) before answering: a client still sending
        // when the response comes sees a reset connection instead of the 413.
        if let Ok(mut body) = req.stream() {
            while let Some(Ok(_)) = futures_util::StreamExt::next(&mut body).await {}
        }
        return Err(Error::too_large(format!("request body is larger than {MAX_BODY_BYTES} bytes")));
    }
    let path = req.path();
    // Calls between objects only: nobody outside reaches them.
    if path.starts_with("/internal/") {
        return Err(Error::not_found(format!("no route for {path}")));
    }
    let role = auth::role_for(
        headers.get("authorization").ok().flatten().as_deref(),
        env::string(env, "ADMIN_AUTHORIZATION_TOKEN").as_deref(),
        env::string(env, "CLIENT_AUTHORIZATION_TOKEN").as_deref(),
    );
    // The replica headers the API reads, as sent; every other header stays here.
    let mut forwarded: Vec<(&str, String)> =
        api::REQUEST_HEADERS.iter().filter_map(|name| headers.get(name).ok().flatten().map(|v| (*name, v))).collect();
    // Reads go to the read replica the caller names or the nearest one (REPLICA_LOCATIONS);
    // a request without a valid token goes to the primary, which answers 401 before anything.
    let target = if role.is_some() && req.method() == Method::Post && (path == "/query" || path == "/query/raw") {
        let locations = follow::route::parse_locations(env::string(env, "REPLICA_LOCATIONS").as_deref())?;
        let place = req.cf().map(|cf| follow::route::CallerPlace {
            continent: cf.continent(),
            country: cf.country(),
            longitude: cf.coordinates().map(|(_, lon)| lon),
        });
        let named = headers.get(api::LOCATION_HEADER).ok().flatten();
        follow::route::read_target(&locations, named.as_deref(), &place.unwrap_or_default())?
    } else {
        ReadTarget::Primary
    };
    if let ReadTarget::Replica(location) = &target {
        forwarded.retain(|(name, _)| *name != api::LOCATION_HEADER);
        forwarded.push((replicas::SERVE_AS_HEADER, location.clone()));
    }
    let body = match req.method() {
        Method::Get | Method::Head => Vec::new(),
        _ => read_capped(&mut req).await?,
    };
    // Only this Worker can reach the object, so the role it forwards is the one it checked;
    // a role header sent by the caller is replaced, never trusted.
    let fwd = Headers::new();
    if let Some(r) = role {
        fwd.set(ROLE_HEADER, r.as_str()).map_err(internal)?;
    }
    for (name, value) in forwarded {
        fwd.set(name, &value).map_err(internal)?;
    }
    let method = req.method();
    let url = req.url().map_err(internal)?;
    let build = |headers: &Headers| -> Result<Request> {
        let mut init = RequestInit::new();
        init.with_method(method.clone()).with_headers(headers.clone());
        if !body.is_empty() {
            init.with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
        }
        Request::new_with_init(url.as_str(), &init).map_err(internal)
    };
    let ReadTarget::Replica(location) = &target else {
        return replicas::primary_stub(env)?.fetch_with_request(build(&fwd)?).await.map_err(internal);
    };
    match replicas::replica_stub(env, location)?.fetch_with_request(build(&fwd)?).await {
        Ok(r) => Ok(r),
        // The replica's object cannot be reached (its location is down, or it is being reset):
        // the primary answers, as it does for a replica that cannot reach a bookmark in time.
        Err(_) => {
            fwd.delete(replicas::SERVE_AS_HEADER).map_err(internal)?;
            fwd.set(api::LOCATION_HEADER, "primary").map_err(internal)?;
            replicas::primary_stub(env)?.fetch_with_request(build(&fwd)?).await.map_err(internal)
        }
    }
}

/// The body, read chunk by chunk and kept only up to the limit: an upload without a
/// Content-Length (chunked) would otherwise be held whole in memory before its size is known,
/// and a few hundred megabytes exceed the isolate's memory, whoever sends them. The rest of an
/// oversized upload is read and dropped, so that the client receives the 413.
async fn read_capped(req: &mut Request) -> Result<Vec<u8>> {
    let Ok(mut stream) = req.stream() else {
        return Ok(Vec::new());
    };
    let mut body = Vec::new();
    let mut too_large = false;
    while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
        let chunk = chunk.map_err(|e| Error::bad_request(format!("could not read the request body: {e}")))?;
        if too_large || body.len() + chunk.len() > MAX_BODY_BYTES {
            too_large = true;
            body = Vec::new();
        } else {
            body.extend_from_slice(&chunk);
        }
    }
    if too_large {
        return Err(Error::too_large(format!("request body is larger than {MAX_BODY_BYTES} bytes")));
    }
    Ok(body)
}

#[durable_object]
pub struct Replica {
    state: State,
    env: Env,
    /// The runs this instance is executing: its own, never another object's.
    live_runs: LiveRuns,
    /// A read replica's pull is under way (reads wait for it rather than start another).
    pulling: std::cell::Cell<bool>,
}

struct JsClock;
impl Clock for JsClock {
    fn now_ms(&self) -> i64 {
        deadline::now_ms()
    }
}

struct DoHost<'a> {
    replica: &'a Replica,
    store: sql_ffi::DoStore,
}

impl Host for DoHost<'_> {
    type Src = bounded::Bounded<sources::AnySource>;
    fn store(&self) -> &dyn Store {
        &self.store
    }
    fn clock(&self) -> &dyn Clock {
        &JsClock
    }
    fn bindings(&self) -> &dyn Bindings {
        &self.replica.env
    }
    fn live_runs(&self) -> &LiveRuns {
        &self.replica.live_runs
    }
    fn limits(&self) -> Limits {
        let mut l = Limits::default();
        // Tests shorten the budget to force partial runs; production keeps the default.
        if let Some(ms) = env::string(&self.replica.env, "SYNC_TIME_BUDGET_MS").and_then(|v| v.parse().ok()) {
            l.budget_ms = ms;
        }
        l
    }
    async fn open_source(&self, cfg: &Config) -> Result<Self::Src> {
        // The run took its lock just before opening its source.
        let started = JsClock.now_ms();
        let src = sources::open(&self.replica.env, cfg).await?;
        Ok(bounded::Bounded::new(src, started, self.limits().budget_ms))
    }
    async fn nudge_replicas(&self, locations: &[String]) {
        replicas::nudge(&self.replica.env, locations).await
    }
    async fn set_alarm(&self, at_ms: Option<i64>) -> Result<()> {
        let storage = self.replica.state.storage();
        let r = match at_ms {
            Some(at) => storage.set_alarm((at - JsClock.now_ms()).max(0)).await,
            None => storage.delete_alarm().await,
        };
        r.map_err(|e| Error::internal(e.to_string()))
    }
}

impl Replica {
    fn host(&self) -> Result<DoHost<'_>> {
        Ok(DoHost { replica: self, store: sql_ffi::DoStore::new(&self.state)? })
    }

    /// This object serves reads at `location`: it remembers so (its alarm then pulls), and
    /// with `pull_now` (a nudge) arms the alarm for a pull now.
    fn as_replica(&self, host: &DoHost<'_>, location: &str, pull_now: bool) -> Result<()> {
        catalog_ready(host)?;
        follow::remember_location(host.store(), location)?;
        if pull_now && !self.pulling.get() {
            let storage = self.state.storage();
            wasm_bindgen_futures::spawn_local(async move {
                let _ = storage.set_alarm(0).await;
            });
        }
        Ok(())
    }
}

fn catalog_ready(host: &DoHost<'_>) -> Result<()> {
    crate::catalog::migrate(host.store())
}

impl DurableObject for Replica {
    fn new(state: State, env: Env) -> Self {
        Replica { state, env, live_runs: LiveRuns::default(), pulling: std::cell::Cell::new(false) }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let host = match self.host() {
            Ok(h) => h,
            Err(e) => return respond(ApiResponse::error(&e)),
        };
        let url = req.url()?;
        #[cfg(feature = "split-bench")]
        if url.path().starts_with("/__split/") {
            return split_bench::object(&host.store, url.path(), req).await;
        }
        let role = req.headers().get(ROLE_HEADER)?.as_deref().and_then(Role::parse);
        let body = match req.method() {
            Method::Get | Method::Head => Vec::new(),
            _ => req.bytes().await.unwrap_or_default(),
        };
        let headers =
            api::REQUEST_HEADERS.iter().filter_map(|name| req.headers().get(name).ok().flatten().map(|v| (name.to_string(), v))).collect();
        let serve_as = req.headers().get(replicas::SERVE_AS_HEADER)?;
        let api_req = ApiRequest {
            method: req.method().to_string(),
            path: url.path().to_string(),
            query: url.query().unwrap_or("").to_string(),
            role,
            headers,
            body,
        };
        let answer = match (api_req.path.strip_prefix("/internal/replica/"), serve_as) {
            // A nudge from the primary: pull soon (the alarm), answer now.
            (Some("nudge"), Some(location)) => {
                self.as_replica(&host, &location, true).and(Ok(ApiResponse::ok(200, serde_json::json!(true))))
            }
            // A replica's call to the primary.
            (Some(_), None) => catalog_ready(&host)
                .and_then(|_| api::replica_locations(&self.env))
                .and_then(|locations| replicas::answer_replica(host.store(), &locations, &api_req.path, &api_req.body))
                .map(|body| ApiResponse { status: 200, body, headers: Vec::new() }),
            (Some(_), Some(_)) => Err(Error::not_found(format!("no route for {}", api_req.path))),
            (None, Some(location)) => match self.as_replica(&host, &location, false) {
                Ok(()) => replicas::read(&host, &self.env, &self.pulling, api_req).await,
                Err(e) => Err(e),
            },
            (None, None) => Ok(api::handle(&host, api_req).await),
        };
        respond(answer.unwrap_or_else(|e| ApiResponse::error(&e)))
    }

    async fn alarm(&self) -> worker::Result<Response> {
        if let Ok(host) = self.host() {
            if catalog_ready(&host).is_ok() && follow::is_replica(host.store()).unwrap_or(false) {
                replicas::on_alarm(&host, &self.env, &self.pulling).await;
            } else {
                api::on_alarm(&host).await;
            }
        }
        Response::ok("alarm handled")
    }
}
