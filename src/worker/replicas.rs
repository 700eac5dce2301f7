//! Read replicas over Durable Object calls: the replica's way to the primary (`DoPrimary`),
//! the primary's nudges, and the read path of a replica (wait for a bookmark, else forward).
//!
//! The calls are `fetch`es to the other object's stub on `/internal/replica/...` paths, which
//! only objects send: the entry Worker answers 404 to any `/internal/` path from outside.

use super::deadline::{self, within};
use crate::api::{self, ApiRequest, ApiResponse};
use crate::error::{Error, Result};
use crate::follow::{self, CopyPlan, Page, PageRequest, PullAnswer, PullRequest};
use crate::store::Store;
use serde::de::DeserializeOwned;
use std::time::Duration;
use worker::{Env, Headers, Method, Request, RequestInit, Response, Stub};

/// The primary object's name; every config, sync and alarm lives there.
pub const PRIMARY_NAME: &str = "replica";
/// Set by the entry Worker (and by the primary's nudges) on requests for a read replica: the
/// location it serves. Never taken from a caller: the Worker sets or drops it.
pub const SERVE_AS_HEADER: &str = "x-edge-replica-serve-as";
/// How long a read that names a bookmark waits for the replica to reach it (the contract's 5 s).
const BOOKMARK_WAIT_MS: i64 = 5_000;
/// How long a read without a bookmark helps a replica that is still copying before the
/// primary answers it instead.
const COPY_WAIT_MS: i64 = 1_000;
/// One call to the other object may take this long before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// How often a replica pulls on its own when no nudge came (`REPLICA_PULL_SECONDS`).
pub const DEFAULT_PULL_SECONDS: u64 = 60;
/// A replica's alarm pulls for at most this long, then re-arms at once. Short, so that an
/// alarm never holds the object long: locally (one workerd process) requests wait while an
/// alarm runs, and a long one made them fail.
pub const PULL_BUDGET_MS: i64 = 1_000;

pub fn replica_name(location: &str) -> String {
    format!("read-replica:{location}")
}

pub fn primary_stub(env: &Env) -> Result<Stub> {
    env.durable_object("REPLICA").and_then(|ns| ns.id_from_name(PRIMARY_NAME)?.get_stub()).map_err(|e| Error::internal(e.to_string()))
}

pub fn replica_stub(env: &Env, location: &str) -> Result<Stub> {
    env.durable_object("REPLICA")
        .and_then(|ns| ns.id_from_name(&replica_name(location))?.get_stub_with_location_hint(location))
        .map_err(|e| Error::internal(e.to_string()))
}

fn internal(e: worker::Error) -> Error {
    Error::internal(e.to_string())
}

/// POSTs `body` to another object's internal `path`; the answer's text, or an error naming the call.
async fn call(stub: &Stub, path: &str, headers: &[(&str, &str)], body: String) -> Result<String> {
    let h = Headers::new();
    h.set("content-type", "application/json").map_err(internal)?;
    for (n, v) in headers {
        h.set(n, v).map_err(internal)?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_headers(h).with_body(Some(body.into()));
    let req = Request::new_with_init(&format!("https://edge-replica.internal{path}"), &init).map_err(internal)?;
    let answer = within(CALL_TIMEOUT, async {
        let mut resp = stub.fetch_with_request(req).await.map_err(internal)?;
        let status = resp.status_code();
        let text = resp.text().await.map_err(internal)?;
        if status != 200 {
            return Err(Error::internal(format!("{path} answered {status}: {}", text.chars().take(300).collect::<String>())));
        }
        Ok(text)
    })
    .await;
    answer.unwrap_or_else(|| Err(Error::internal(format!("{path} did not answer within {} s", CALL_TIMEOUT.as_secs()))))
}

fn parse<T: DeserializeOwned>(path: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::internal(format!("{path} answered unreadable JSON: {e}")))
}

/// The replica's way to the primary.
pub struct DoPrimary<'a> {
    pub env: &'a Env,
}

impl DoPrimary<'_> {
    async fn ask<T: DeserializeOwned>(&self, path: &str, body: String) -> Result<T> {
        let text = call(&primary_stub(self.env)?, path, &[], body).await?;
        parse(path, &text)
    }
}

impl follow::Primary for DoPrimary<'_> {
    async fn pull(&self, req: &PullRequest) -> Result<PullAnswer> {
        self.ask("/internal/replica/pull", serde_json::to_string(req).expect("serializes")).await
    }
    async fn copy_plan(&self, location: &str) -> Result<CopyPlan> {
        self.ask("/internal/replica/copy", serde_json::json!({ "location": location }).to_string()).await
    }
    async fn page(&self, req: &PageRequest) -> Result<Page> {
        self.ask("/internal/replica/page", serde_json::to_string(req).expect("serializes")).await
    }
}

#[derive(serde::Deserialize)]
struct CopyRequest {
    location: String,
}

/// The primary's side of the internal calls (`path` under `/internal/replica/`); `locations`
/// are those of `REPLICA_LOCATIONS` (a replica not among them is told to retire).
pub fn answer_replica(store: &dyn Store, locations: &[String], path: &str, body: &[u8]) -> Result<String> {
    let now = deadline::now_ms();
    let bad = |e: serde_json::Error| Error::bad_request(format!("{path}: {e}"));
    let listed = |l: &str| locations.iter().any(|x| x == l);
    match path {
        "/internal/replica/pull" => {
            let req: PullRequest = serde_json::from_slice(body).map_err(bad)?;
            Ok(serde_json::to_string(&follow::pull(store, &req, listed(&req.location), now)?).expect("serializes"))
        }
        "/internal/replica/copy" => {
            let req: CopyRequest = serde_json::from_slice(body).map_err(bad)?;
            Ok(serde_json::to_string(&follow::copy_plan(store, listed(&req.location))?).expect("serializes"))
        }
        "/internal/replica/page" => {
            let req: PageRequest = serde_json::from_slice(body).map_err(bad)?;
            Ok(serde_json::to_string(&follow::page(store, &req, listed(&req.location), now)?).expect("serializes"))
        }
        _ => Err(Error::not_found(format!("no route for {path}"))),
    }
}

/// Tells every replica that the primary moved on: each arms its alarm to pull now. A replica
/// that does not answer within a few seconds pulls on its own schedule instead.
pub async fn nudge(env: &Env, locations: &[String]) {
    let calls = locations.iter().map(|loc| async move {
        let Ok(stub) = replica_stub(env, loc) else { return };
        let _ = within(Duration::from_secs(3), call(&stub, "/internal/replica/nudge", &[(SERVE_AS_HEADER, loc)], String::new())).await;
    });
    futures_util::future::join_all(calls).await;
}

/// A read sent to a replica: answered here once the replica holds a whole state of the
/// primary at least as new as the request's bookmark, pulling meanwhile, for up to 5 s (1 s
/// without a bookmark, for a replica still copying); else answered by the primary.
pub async fn read<H: api::Host>(host: &H, env: &Env, pulling: &std::cell::Cell<bool>, req: ApiRequest) -> Result<ApiResponse> {
    let store = host.store();
    let want = req.header("x-replica-bookmark").and_then(|b| crate::bookmark::parse(b.trim()));
    let until = deadline::now_ms() + if want.is_some() { BOOKMARK_WAIT_MS } else { COPY_WAIT_MS };
    loop {
        let st = follow::load(store)?;
        if st.serving() && want.is_none_or(|w| st.position.unwrap_or(0) >= w) {
            return Ok(api::handle(host, req).await);
        }
        if deadline::now_ms() >= until {
            break;
        }
        if pulling.get() {
            worker::Delay::from(Duration::from_millis(10)).await;
            continue;
        }
        pulling.set(true);
        let stepped = follow::step(store, &DoPrimary { env }).await;
        pulling.set(false);
        if !matches!(stepped, Ok(follow::Step::More | follow::Step::CaughtUp)) {
            break;
        }
    }
    // Keep catching up after this read, whatever answers it.
    let _ = host.set_alarm(Some(deadline::now_ms())).await;
    forward_to_primary(env, req).await
}

async fn forward_to_primary(env: &Env, req: ApiRequest) -> Result<ApiResponse> {
    let h = Headers::new();
    if let Some(role) = req.role {
        h.set(super::ROLE_HEADER, role.as_str()).map_err(internal)?;
    }
    if let Some(b) = req.header("x-replica-bookmark") {
        h.set("x-replica-bookmark", b).map_err(internal)?;
    }
    h.set("x-replica-location", "primary").map_err(internal)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_headers(h);
    if !req.body.is_empty() {
        init.with_body(Some(js_sys::Uint8Array::from(req.body.as_slice()).into()));
    }
    let inner = Request::new_with_init(&format!("https://edge-replica.internal{}", req.path), &init).map_err(internal)?;
    let mut resp: Response = primary_stub(env)?.fetch_with_request(inner).await.map_err(internal)?;
    let status = resp.status_code();
    let mut headers = Vec::new();
    for name in ["x-replica-bookmark", "x-replica-served-by"] {
        if let Some(v) = resp.headers().get(name).ok().flatten() {
            headers.push((name, v));
        }
    }
    let body = resp.text().await.map_err(internal)?;
    Ok(ApiResponse { status, body, headers })
}

/// A replica's alarm: pull for a while, then arm the next pull (at once while behind).
pub async fn on_alarm<H: api::Host>(host: &H, env: &Env, pulling: &std::cell::Cell<bool>) {
    let store = host.store();
    let every_ms =
        api::positive_var(host.bindings(), "REPLICA_PULL_SECONDS", DEFAULT_PULL_SECONDS).unwrap_or(DEFAULT_PULL_SECONDS) as i64 * 1000;
    let next = if pulling.get() {
        deadline::now_ms() + 1_000
    } else {
        pulling.set(true);
        let r = follow::catch_up(store, &DoPrimary { env }, deadline::now_ms, PULL_BUDGET_MS).await;
        pulling.set(false);
        match r {
            // No longer listed: no more pulls (a nudge or a read starts it again if it is listed again).
            Ok(follow::Step::Retired) => return,
            Ok(follow::Step::CaughtUp) => deadline::now_ms() + every_ms,
            Ok(follow::Step::More) => deadline::now_ms(),
            // The primary is unreachable or refused: try again sooner than the schedule.
            Err(_) => deadline::now_ms() + every_ms.min(10_000),
        }
    };
    let _ = host.set_alarm(Some(next)).await;
}
