// GET /health, the auth matrix (admin / client / none / wrong), unknown routes,
// wrong methods, and the {result, error} envelope on every answer.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, pgDatabase, assertEnvelope, ADMIN, CLIENT } from "./harness.mjs";

let db;
let w;
let configId;

before(async () => {
  db = await pgDatabase();
  await db.query("CREATE TABLE widgets (id bigint PRIMARY KEY, name text)");
  await db.query("INSERT INTO widgets SELECT i, 'w' || i FROM generate_series(1, 20) AS i");
  w = await startWorker({ vars: { PG_URL: db.url } });
});

/** The config the auth tests aim at (created on first use, so /health is tested on its own). */
async function ensureConfig() {
  if (configId === undefined) {
    const cfg = await w.createConfig({
      source: { type: "postgres", url_secret: "PG_URL" },
      source_table: "widgets",
      interval_seconds: 3600,
      enabled: false,
    });
    configId = cfg.id;
  }
  return configId;
}

after(async () => {
  await w?.dispose();
  await db?.close();
});

function validConfigBody(target) {
  return {
    source: { type: "postgres", url_secret: "PG_URL" },
    source_table: "widgets",
    target_table: target,
    interval_seconds: 60,
    enabled: false,
  };
}

/** Every admin route, with a body where one is needed. */
function adminRoutes() {
  return [
    ["GET", "/replication/configs"],
    ["POST", "/replication/configs", validConfigBody("widgets_auth")],
    ["GET", `/replication/configs/${configId}`],
    ["PUT", `/replication/configs/${configId}`, { interval_seconds: 7 }],
    ["DELETE", `/replication/configs/${configId}`],
    ["POST", `/replication/sync/${configId}`],
    ["POST", "/replication/callback"],
    ["GET", "/replication/status"],
    ["GET", `/replication/status/${configId}`],
    ["GET", `/replication/runs?config_id=${configId}`],
    ["GET", "/replication/runs"],
  ];
}

test("GET /health needs no token and reports the crate version", async () => {
  const r = await w.api("GET", "/health", { token: null });
  assertEnvelope(r, 200, "GET /health");
  assert.deepEqual(r.json, { result: { ok: true, version: "0.1.0" }, error: null });
  // a token does not hurt
  const r2 = await w.api("GET", "/health", { token: "client" });
  assertEnvelope(r2, 200, "GET /health with client token");
  assert.deepEqual(r2.json.result, { ok: true, version: "0.1.0" });
});

test("admin routes: no token -> 401, wrong token -> 401, client token -> 403", async () => {
  await ensureConfig();
  const before = await w.api("GET", "/replication/configs");
  assertEnvelope(before, 200);
  const wrongTokens = [
    "wrong",
    ADMIN.slice(0, -1), // a prefix of the real token
    ADMIN + "x", // the real token plus one character
    CLIENT.toUpperCase(),
  ];
  for (const [method, path, body] of adminRoutes()) {
    const what = `${method} ${path}`;
    assertEnvelope(await w.api(method, path, { token: null, body }), 401, `${what} without token`);
    for (const t of wrongTokens) {
      assertEnvelope(await w.api(method, path, { token: t, body }), 401, `${what} with token ${t}`);
    }
    // not a Bearer token at all
    assertEnvelope(
      await w.api(method, path, { token: null, body, headers: { Authorization: `Basic ${ADMIN}` } }),
      401,
      `${what} with Basic auth`,
    );
    assertEnvelope(
      await w.api(method, path, { token: null, body, headers: { Authorization: ADMIN } }),
      401,
      `${what} with a token but no Bearer prefix`,
    );
    assertEnvelope(await w.api(method, path, { token: "client", body }), 403, `${what} with the client token`);
  }
  // nothing happened: the config is still there, unchanged, and never ran
  const after = await w.api("GET", "/replication/configs");
  assertEnvelope(after, 200);
  assert.deepEqual(after.json.result, before.json.result);
  assert.equal(after.json.result.length, 1);
  assert.equal(after.json.result[0].interval_seconds, 3600);
  const runs = await w.api("GET", `/replication/runs?config_id=${configId}`);
  assertEnvelope(runs, 200);
  assert.deepEqual(runs.json.result, []);
});

test("/query and /query/raw: client and admin tokens read, no or wrong token -> 401", async () => {
  for (const token of ["client", "admin"]) {
    const q = await w.api("POST", "/query", { token, body: { sql: "SELECT 1 AS one, 'x' AS two" } });
    assertEnvelope(q, 200, `POST /query as ${token}`);
    assert.deepEqual(q.json.result, [{ one: 1, two: "x" }]);

    const p = await w.api("POST", "/query", { token, body: { sql: "SELECT ? AS a, ? AS b", params: [41, "p"] } });
    assertEnvelope(p, 200, `POST /query with params as ${token}`);
    assert.deepEqual(p.json.result, [{ a: 41, b: "p" }]);

    const raw = await w.api("POST", "/query/raw", { token, body: { sql: "SELECT 1 AS one, 'x' AS two" } });
    assertEnvelope(raw, 200, `POST /query/raw as ${token}`);
    assert.deepEqual(raw.json.result.columns, ["one", "two"]);
    assert.deepEqual(raw.json.result.rows, [[1, "x"]]);
    assert.equal(typeof raw.json.result.meta.rows_read, "number");
    assert.equal(typeof raw.json.result.meta.rows_written, "number");
    assert.equal(raw.json.result.meta.rows_written, 0);

    const rawp = await w.api("POST", "/query/raw", { token, body: { sql: "SELECT ? AS a", params: ["z"] } });
    assertEnvelope(rawp, 200, `POST /query/raw with params as ${token}`);
    assert.deepEqual(rawp.json.result.rows, [["z"]]);
  }
  for (const path of ["/query", "/query/raw"]) {
    assertEnvelope(await w.api("POST", path, { token: null, body: { sql: "SELECT 1" } }), 401, `${path} without token`);
    assertEnvelope(await w.api("POST", path, { token: "nope", body: { sql: "SELECT 1" } }), 401, `${path} wrong token`);
  }
});

test("the admin token reaches every route", async () => {
  await ensureConfig();
  const list = await w.api("GET", "/replication/configs");
  assertEnvelope(list, 200, "GET configs");
  assert.ok(Array.isArray(list.json.result));

  const created = await w.api("POST", "/replication/configs", { body: validConfigBody("widgets_admin") });
  assertEnvelope(created, 201, "POST configs");
  const id = created.json.result.id;
  assert.equal(typeof id, "number");
  assert.notEqual(id, configId);

  const one = await w.api("GET", `/replication/configs/${id}`);
  assertEnvelope(one, 200, "GET config");
  assert.equal(one.json.result.target_table, "widgets_admin");

  const put = await w.api("PUT", `/replication/configs/${id}`, { body: { interval_seconds: 120 } });
  assertEnvelope(put, 200, "PUT config");
  assert.equal(put.json.result.interval_seconds, 120);

  const sync = await w.api("POST", `/replication/sync/${id}`);
  assertEnvelope(sync, 200, "POST sync");
  assert.equal(sync.json.result.status, "ok");
  assert.equal(sync.json.result.rows_upserted, 20);

  const statusAll = await w.api("GET", "/replication/status");
  assertEnvelope(statusAll, 200, "GET status");
  assert.ok(Array.isArray(statusAll.json.result));
  assert.equal(statusAll.json.result.length, 2);

  const status = await w.api("GET", `/replication/status/${id}`);
  assertEnvelope(status, 200, "GET status/:id");
  assert.equal(status.json.result.config_id, id);
  assert.equal(status.json.result.target_row_count, 20);

  const runs = await w.api("GET", `/replication/runs?config_id=${id}`);
  assertEnvelope(runs, 200, "GET runs");
  assert.equal(runs.json.result.length, 1);

  const callback = await w.api("POST", "/replication/callback");
  assertEnvelope(callback, 200, "POST callback");
  assert.ok(Array.isArray(callback.json.result));
  // both configs are disabled: the callback runs nothing
  assert.deepEqual(callback.json.result, []);

  // admin may read the bookkeeping tables and sqlite_master
  const book = await w.query("SELECT count(*) AS n FROM tmp_replication_configs");
  assert.equal(book[0].n, 2);
  const master = await w.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'widgets_admin'");
  assert.deepEqual(master, [{ name: "widgets_admin" }]);
  // the client may read replica tables
  const rows = await w.query("SELECT count(*) AS n FROM widgets_admin", [], "client");
  assert.equal(rows[0].n, 20);

  const del = await w.api("DELETE", `/replication/configs/${id}`);
  assertEnvelope(del, 200, "DELETE config");
  assert.deepEqual(del.json.result, { deleted: true });
  assertEnvelope(await w.api("GET", `/replication/configs/${id}`), 404, "GET deleted config");
  // the replica table stays unless ?drop_table=true
  assert.equal((await w.query("SELECT count(*) AS n FROM widgets_admin"))[0].n, 20);
});

test("unknown routes -> 404, wrong methods -> 405, always the JSON envelope", async () => {
  await ensureConfig();
  for (const [method, path] of [
    ["GET", "/index.html"],
    ["GET", "/nope"],
    ["GET", "/replication"],
    ["GET", "/replication/nope"],
    ["POST", "/query/nope"],
    ["GET", "/replication/configs/1/extra"],
    ["GET", "/health/extra"],
  ]) {
    assertEnvelope(await w.api(method, path), 404, `${method} ${path}`);
  }
  for (const [method, path] of [
    ["POST", "/health"],
    ["DELETE", "/health"],
    ["GET", "/query"],
    ["PUT", "/query"],
    ["GET", "/query/raw"],
    ["PATCH", "/replication/configs"],
    ["DELETE", "/replication/configs"],
    ["POST", `/replication/configs/${configId}`],
    ["GET", `/replication/sync/${configId}`],
    ["GET", "/replication/callback"],
    ["POST", "/replication/status"],
    ["DELETE", "/replication/runs"],
  ]) {
    assertEnvelope(await w.api(method, path), 405, `${method} ${path}`);
  }
  // the first config is untouched by all of this
  const cfg = await w.api("GET", `/replication/configs/${configId}`);
  assertEnvelope(cfg, 200);
  assert.equal(cfg.json.result.interval_seconds, 3600);
});
