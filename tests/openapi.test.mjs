// GET /openapi.json: served without a token, verbatim from docs/openapi.json; every documented
// (path, method) is answered by a route; other methods are 405 with an Allow header; and real
// answers (successes and errors) match the document's response schemas.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, pgDatabase, assertEnvelope } from "./harness.mjs";
import { DOC_TEXT, doc, HTTP_METHODS, deref, requestSchema, validate, assertDocumented } from "./openapi_schema.mjs";

let db;
let w;
let cfg; // the config the {id} routes aim at

before(async () => {
  db = await pgDatabase();
  await db.query("CREATE TABLE widgets (id bigint PRIMARY KEY, name text, updated_at timestamptz NOT NULL DEFAULT now())");
  await db.query("INSERT INTO widgets (id, name) SELECT i, 'w' || i FROM generate_series(1, 20) AS i");
  w = await startWorker({ vars: { PG_URL: db.url, DEAD_PG: "postgres://postgres@127.0.0.1:1/nothing?sslmode=disable" } });
  cfg = await w.createConfig({
    source: { type: "postgres", url_secret: "PG_URL" },
    source_table: "widgets",
    interval_seconds: 3600,
    enabled: false,
  });
});

after(async () => {
  await w?.dispose();
  await db?.close();
});

// ---------------------------------------------------------------------------
// The document

/** Every documented operation: {path, method (upper case), op}. */
function operations() {
  const out = [];
  for (const [p, item] of Object.entries(doc.paths)) {
    for (const [k, op] of Object.entries(item)) {
      if (HTTP_METHODS.includes(k)) out.push({ path: p, method: k.toUpperCase(), op });
    }
  }
  return out;
}

function documentedMethods(p) {
  return Object.keys(doc.paths[p])
    .filter((k) => HTTP_METHODS.includes(k))
    .map((k) => k.toUpperCase());
}

const substitute = (p, id) => p.replace("{id}", String(id));

// ---------------------------------------------------------------------------

test("the schema checker catches what it should", () => {
  const status = doc.components.schemas.Status;
  const good = {
    config_id: 1, target_table: "t", state: "idle", mode: "full", enabled: true, last_sync_at: "2026-01-02T03:04:05.123Z",
    last_success_at: null, next_sync_at: null, last_error: null, consecutive_failures: 0, cursor: null, rows_synced: 0,
    total_rows_synced: 0, target_row_count: null, null_cursor_rows: null,
  };
  assert.deepEqual(validate(status, good), []);
  assert.notDeepEqual(validate(status, { ...good, extra: 1 }), [], "an undocumented field");
  const { cursor, ...missing } = good;
  assert.notDeepEqual(validate(status, missing), [], "a missing field");
  assert.notDeepEqual(validate(status, { ...good, state: "sleeping" }), [], "a value outside the enum");
  assert.notDeepEqual(validate(status, { ...good, rows_synced: 1.5 }), [], "not an integer");
  assert.notDeepEqual(validate(status, { ...good, last_sync_at: "yesterday" }), [], "not a date-time");
  const src = doc.components.schemas.Source;
  assert.deepEqual(validate(src, { type: "postgres", url_secret: "PG_URL" }), []);
  assert.notDeepEqual(validate(src, { type: "postgres", url_secret: "PG_URL", hyperdrive: "H" }), [], "both of a oneOf");
  assert.notDeepEqual(validate(src, { type: "oracle" }), [], "no variant");
});

test("the document's request examples match their schemas", () => {
  let n = 0;
  for (const { path: p, method } of operations()) {
    const media = deref(doc.paths[p][method.toLowerCase()].requestBody)?.content?.["application/json"];
    for (const [name, ex] of Object.entries(media?.examples ?? {})) {
      assert.deepEqual(validate(media.schema, ex.value), [], `${method} ${p} example ${name}`);
      n++;
    }
  }
  assert.ok(n >= 4, `${n} examples`);
});

test("GET /openapi.json needs no token and serves docs/openapi.json as it is", async () => {
  for (const token of [null, "wrong-token", "client", "admin"]) {
    const r = await w.api("GET", "/openapi.json", { token });
    assert.equal(r.status, 200, `token ${token}: ${r.text.slice(0, 300)}`);
    assert.match(r.headers.get("content-type") ?? "", /^application\/json/i);
    assert.equal(r.text, DOC_TEXT, "served verbatim");
    assert.ok(r.json.openapi.startsWith("3.1"), `openapi ${r.json.openapi}`);
    assertDocumented(r, "/openapi.json", "GET");
  }
  const health = await w.api("GET", "/health", { token: null });
  assert.equal(health.json.result.version, doc.info.version, "info.version is the crate version");
});

test("every documented (path, method) is answered by its route, as documented", async () => {
  const ops = operations();
  assert.ok(ops.length >= 14, `${ops.length} operations`);
  // Create first, sync before the reads (so the run and status are not empty), delete last.
  const rank = ({ path: p, method }) =>
    method === "POST" && p === "/replication/configs" ? 0 : p === "/replication/sync/{id}" ? 1 : method === "DELETE" ? 9 : 5;
  ops.sort((a, b) => rank(a) - rank(b));
  const bodies = {
    "POST /replication/configs": {
      source: { type: "postgres", url_secret: "PG_URL" },
      source_table: "widgets",
      target_table: "widgets_sweep",
      interval_seconds: 3600,
      enabled: false,
    },
    "PUT /replication/configs/{id}": { interval_seconds: 120 },
    "POST /query": { sql: "SELECT 1 AS one, 'x' AS two, NULL AS n, x'00ff' AS b, 1.5 AS r", params: [] },
    "POST /query/raw": { sql: "SELECT id, name FROM widgets WHERE id <= ? ORDER BY id", params: [3] },
  };
  const seen = [];
  for (const { path: p, method } of ops) {
    const key = `${method} ${p}`;
    const body = bodies[key];
    const schema = requestSchema(p, method);
    if (schema) {
      assert.ok(body, `${key}: the test has a body for it`);
      assert.deepEqual(validate(schema, body), [], `${key}: the request body matches the documented schema`);
    }
    const r = await w.api(method, substitute(p, cfg.id), { body, token: "admin" });
    assert.notEqual(r.status, 405, `${key}: ${r.text}`);
    assert.ok(!(r.status === 404 && /^no route/.test(r.json?.error ?? "")), `${key}: no route: ${r.text}`);
    assert.ok(r.status >= 200 && r.status < 300, `${key}: a valid request succeeds: HTTP ${r.status} ${r.text.slice(0, 300)}`);
    assertDocumented(r, p, method, key);
    seen.push(key);
  }
  assert.equal(seen.length, ops.length);
});

test("a method the path does not accept is 405 with an Allow header naming the documented ones", async () => {
  assert.ok(doc.components.responses.MethodNotAllowed.headers.Allow, "the 405 answer documents Allow");
  const schema = deref(doc.components.responses.MethodNotAllowed).content["application/json"].schema;
  let n = 0;
  for (const p of Object.keys(doc.paths)) {
    const allowed = documentedMethods(p);
    for (const method of ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]) {
      if (allowed.includes(method)) continue;
      const r = await w.api(method, substitute(p, cfg.id), { token: "admin" });
      assertEnvelope(r, 405, `${method} ${p}`);
      const allow = (r.headers.get("allow") ?? "").split(",").map((m) => m.trim()).filter(Boolean);
      assert.deepEqual([...allow].sort(), [...allowed].sort(), `${method} ${p}: Allow: ${r.headers.get("allow")}`);
      assert.deepEqual(validate(schema, r.json), [], `${method} ${p}`);
      n++;
    }
  }
  assert.ok(n >= 40, `${n} wrong methods tried`);
});

test("errors and successes match the documented schemas", async () => {
  // health
  assertDocumented(await w.api("GET", "/health", { token: null }), "/health", "GET");

  // 201 with every field set
  const created = await w.api("POST", "/replication/configs", {
    body: {
      source: { type: "postgres", url_secret: "PG_URL" },
      source_table: "public.widgets",
      target_table: "widgets_full",
      columns: ["id", "name", "updated_at"],
      mode: "incremental",
      cursor_column: "updated_at",
      primary_key: ["id"],
      interval_seconds: 31536000,
      enabled: false,
      batch_size: 7,
      lookback_seconds: 5,
    },
  });
  assertEnvelope(created, 201, "create");
  assertDocumented(created, "/replication/configs", "POST", "create with every field");
  const id = created.json.result.id;

  // a sync that copies in several batches, then its run and status
  const run = await w.api("POST", `/replication/sync/${id}`);
  assertEnvelope(run, 200, "sync");
  assertDocumented(run, "/replication/sync/{id}", "POST");
  assert.equal(run.json.result.rows_upserted, 20);
  assertDocumented(await w.api("GET", `/replication/runs?config_id=${id}&limit=5`), "/replication/runs", "GET");
  const statuses = await w.api("GET", "/replication/status");
  assertEnvelope(statuses, 200, "status list");
  assertDocumented(statuses, "/replication/status", "GET");
  assert.ok(statuses.json.result.some((s) => s.config_id === id && s.target_row_count === 20));

  // 502: the source is unreachable; the run record is the result
  const dead = await w.createConfig({
    source: { type: "postgres", url_secret: "DEAD_PG" },
    source_table: "widgets",
    target_table: "widgets_dead",
    interval_seconds: 60,
    enabled: false,
  });
  const failed = await w.api("POST", `/replication/sync/${dead.id}`);
  assert.equal(failed.status, 502, failed.text);
  assertDocumented(failed, "/replication/sync/{id}", "POST", "a failed sync");
  assert.equal(failed.json.result.status, "error");
  assertDocumented(await w.api("GET", `/replication/status/${dead.id}`), "/replication/status/{id}", "GET", "status after a failure");

  // 400, 401, 403, 404, 409, 413
  const bad = await w.api("POST", "/replication/configs", { body: { source_table: "widgets", interval_seconds: 0 } });
  assertEnvelope(bad, 400, "bad interval");
  assertDocumented(bad, "/replication/configs", "POST", "400");
  assertDocumented(await w.api("GET", "/replication/configs/abc"), "/replication/configs/{id}", "GET", "400 id");
  assertDocumented(await w.api("GET", "/replication/runs?limit=0"), "/replication/runs", "GET", "400 limit");
  assertDocumented(await w.api("POST", "/query", { body: { sql: "DELETE FROM widgets_full" } }), "/query", "POST", "400 write");
  const unauth = await w.api("GET", "/replication/status", { token: null });
  assertEnvelope(unauth, 401, "no token");
  assertDocumented(unauth, "/replication/status", "GET", "401");
  assertDocumented(await w.api("POST", "/query/raw", { token: "nope", body: { sql: "SELECT 1" } }), "/query/raw", "POST", "401 query");
  assertDocumented(await w.api("GET", "/replication/configs", { token: "client" }), "/replication/configs", "GET", "403");
  assertDocumented(
    await w.api("POST", "/query", { token: "client", body: { sql: "SELECT * FROM tmp_replication_configs" } }),
    "/query",
    "POST",
    "403 internal table",
  );
  assertDocumented(await w.api("DELETE", "/replication/configs/999999"), "/replication/configs/{id}", "DELETE", "404");
  const dup = await w.api("PUT", `/replication/configs/${dead.id}`, { body: { target_table: "widgets_full" } });
  assertEnvelope(dup, 409, "duplicate target");
  assertDocumented(dup, "/replication/configs/{id}", "PUT", "409");
  const big = await w.api("POST", "/query", { rawBody: JSON.stringify({ sql: "SELECT 1", pad: "x".repeat(1024 * 1024) }) });
  assertEnvelope(big, 413, "too large");
  assertDocumented(big, "/query", "POST", "413");

  // drop_table
  const del = await w.api("DELETE", `/replication/configs/${id}?drop_table=true`);
  assertDocumented(del, "/replication/configs/{id}", "DELETE", "delete with drop_table");
  assertEnvelope(del, 200);
  assertDocumented(await w.api("DELETE", `/replication/configs/${dead.id}?drop_table=maybe`), "/replication/configs/{id}", "DELETE", "400 drop_table");
});
