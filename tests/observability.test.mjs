// Observability without a browser: `lag_seconds`/`data_as_of` in status for full and incremental
// configs (a full copy spread over several runs, a slow origin transaction), GET /metrics read by a
// strict parser of the Prometheus text format and compared with status, and the security headers
// of the dashboard's files (no CORS, no cookies). tests/dashboard.test.mjs drives the page itself.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { startWorker, pgDatabase, assertEnvelope, sleep, ADMIN } from "./harness.mjs";
import { parsePrometheusText, FORMAT_EXAMPLE } from "./prometheus.mjs";

const SOURCE = { type: "postgres", url_secret: "PG_URL" };
let db;
let w;

before(async () => {
  db = await pgDatabase();
  await db.query("CREATE TABLE items (id bigint PRIMARY KEY, v text, updated_at timestamptz NOT NULL DEFAULT clock_timestamp())");
  await db.query("INSERT INTO items (id, v) SELECT i, 'v' || i FROM generate_series(1, 50) AS i");
  await db.query("CREATE TABLE big (id bigint PRIMARY KEY, v text)");
  await db.query("INSERT INTO big SELECT i, repeat('x', 200) FROM generate_series(1, 60000) AS i");
  // A budget small enough that copying `big` (12 MB) takes several runs, with room to spare
  // as the copy gets faster: at 300 ms, a faster read path copied it in one.
  w = await startWorker({
    vars: { PG_URL: db.url, DEAD_PG: "postgres://postgres@127.0.0.1:1/nothing?sslmode=disable", SYNC_TIME_BUDGET_MS: "100" },
  });
});

after(async () => {
  await w?.dispose();
  await db?.close();
});

const ms = (iso) => Date.parse(iso);

async function runsOf(id) {
  const r = await w.api("GET", `/replication/runs?config_id=${id}&limit=1000`);
  assertEnvelope(r, 200);
  return r.json.result; // newest first
}

/** lag_seconds is now minus data_as_of, give or take the time the request took. */
function assertLag(st, beforeMs, afterMs, label) {
  assert.equal(typeof st.lag_seconds, "number", `${label}: ${JSON.stringify(st)}`);
  const asOf = ms(st.data_as_of);
  assert.ok(st.lag_seconds >= (beforeMs - asOf) / 1000 - 0.001, `${label}: lag ${st.lag_seconds} vs ${beforeMs - asOf} ms`);
  assert.ok(st.lag_seconds <= (afterMs - asOf) / 1000 + 0.001, `${label}: lag ${st.lag_seconds} vs ${afterMs - asOf} ms`);
}

async function statusWithLag(id, label) {
  const t0 = Date.now();
  const st = await w.status(id);
  assertLag(st, t0, Date.now(), label);
  return st;
}

// ---------------------------------------------------------------------------------------------

test("status: lag_seconds and data_as_of are null before the first complete run, then the run's start", async () => {
  const cfg = await w.createConfig({ source: SOURCE, source_table: "items", target_table: "items_full", interval_seconds: 3600, enabled: false });
  let st = await w.status(cfg.id);
  assert.equal(st.data_as_of, null);
  assert.equal(st.lag_seconds, null);

  const run = await w.sync(cfg.id);
  assert.equal(run.status, "ok");
  st = await statusWithLag(cfg.id, "full after one run");
  assert.equal(st.data_as_of, run.started_at, "a full copy in one run: as of its start");

  await sleep(1100);
  const later = await w.status(cfg.id);
  assert.ok(later.lag_seconds >= 1.1 && later.lag_seconds > st.lag_seconds, `lag grows between runs: ${later.lag_seconds}`);
  assert.equal(later.data_as_of, st.data_as_of);

  // The next complete run moves it (a new copy, as of that run's start).
  const run2 = await w.sync(cfg.id);
  st = await statusWithLag(cfg.id, "full after a second run");
  assert.equal(st.data_as_of, run2.started_at);

  // A reset forgets it: the old copy is not the new config's.
  assertEnvelope(await w.api("PUT", `/replication/configs/${cfg.id}`, { body: { columns: ["id", "v"] } }), 200);
  st = await w.status(cfg.id);
  assert.deepEqual([st.data_as_of, st.lag_seconds], [null, null]);
});

test("status: a full copy spread over partial runs is as old as its first run; a failed run moves nothing", async () => {
  const cfg = await w.createConfig({ source: SOURCE, source_table: "big", target_table: "big_full", batch_size: 500, interval_seconds: 3600, enabled: false });
  const runs = await w.syncUntilOk(cfg.id);
  assert.ok(runs.length >= 2, `the 100 ms budget spreads the copy: ${runs.map((r) => r.status)}`);
  const st = await statusWithLag(cfg.id, "multi-run full copy");
  assert.equal(st.data_as_of, runs[0].started_at, "the copy's first run, not its last");
  assert.equal(st.target_row_count, 60000);

  const inc = await w.createConfig({
    source: SOURCE, source_table: "big", target_table: "big_inc", cursor_column: "id", batch_size: 500, interval_seconds: 3600, enabled: false,
  });
  const incRuns = await w.syncUntilOk(inc.id);
  assert.ok(incRuns.length >= 2, `${incRuns.map((r) => r.status)}`);
  const ist = await statusWithLag(inc.id, "multi-run incremental copy");
  assert.equal(ist.data_as_of, incRuns.at(-1).started_at, "pages in cursor order: the last run's start");

  const failing = await w.createConfig({ source: { type: "postgres", url_secret: "DEAD_PG" }, source_table: "big", target_table: "big_dead", interval_seconds: 3600, enabled: false });
  await w.sync(failing.id, 502);
  const fst = await w.status(failing.id);
  assert.deepEqual([fst.data_as_of, fst.lag_seconds, fst.consecutive_failures], [null, null, 1]);
});

test("status: an incremental config and a slow origin transaction (what data_as_of promises)", async () => {
  await db.query("CREATE TABLE orders (id bigint PRIMARY KEY, v text, updated_at timestamptz NOT NULL DEFAULT now())");
  await db.query("INSERT INTO orders (id, v) VALUES (1, 'a'), (2, 'b')");
  const mk = (target, lookback) =>
    w.createConfig({ source: SOURCE, source_table: "orders", target_table: target, cursor_column: "updated_at", lookback_seconds: lookback, interval_seconds: 3600, enabled: false });
  const plain = await mk("orders_plain", 0);
  const covered = await mk("orders_lookback", 30);
  for (const c of [plain, covered]) assert.equal((await w.sync(c.id)).status, "ok");

  // A transaction opens (its rows' updated_at = now() is its start), and stays open while a
  // later row commits and both configs sync.
  const slow = new pg.Client({ connectionString: db.url.replace("?sslmode=disable", "") });
  await slow.connect();
  try {
    await slow.query("BEGIN");
    await slow.query("INSERT INTO orders (id, v) VALUES (3, 'slow')");
    await sleep(50);
    await db.query("INSERT INTO orders (id, v) VALUES (4, 'quick')");
    const t1 = {};
    for (const c of [plain, covered]) {
      const run = await w.sync(c.id);
      assert.equal(run.status, "ok");
      const st = await statusWithLag(c.id, `${c.target_table} while the transaction is open`);
      assert.equal(st.data_as_of, run.started_at, "incremental: the start of the run that reached the end");
      t1[c.id] = st.data_as_of;
      const ids = (await w.query(`SELECT id FROM ${c.target_table} ORDER BY id`)).map((r) => r.id);
      // Row 3 was not committed at data_as_of: holding it is not promised, and it is not there.
      assert.deepEqual(ids, [1, 2, 4], c.target_table);
    }
    await slow.query("COMMIT");
    const committedAt = Date.now();

    // Both runs start after the commit, so both claim to hold row 3. Only the lookback, which
    // re-reads the window behind the checkpoint, makes that true: row 3's cursor (its
    // transaction's start) is older than row 4's, which the first run already passed.
    const results = {};
    for (const c of [plain, covered]) {
      const run = await w.sync(c.id);
      const st = await statusWithLag(c.id, `${c.target_table} after the commit`);
      assert.equal(st.data_as_of, run.started_at);
      assert.ok(ms(st.data_as_of) >= committedAt - 5 && ms(st.data_as_of) > ms(t1[c.id]));
      results[c.target_table] = (await w.query(`SELECT id FROM ${c.target_table} ORDER BY id`)).map((r) => r.id);
    }
    assert.deepEqual(results.orders_lookback, [1, 2, 3, 4], "a lookback longer than the transaction keeps the promise");
    assert.deepEqual(results.orders_plain, [1, 2, 4], "without one the row is behind the checkpoint: README, \"What lag means\"");
  } finally {
    await slow.end();
  }
});

// ---------------------------------------------------------------------------------------------

test("the strict parser reads the format's documented example and refuses what the format does not allow", () => {
  const { families } = parsePrometheusText(FORMAT_EXAMPLE);
  const reqs = families.get("http_requests_total");
  assert.equal(reqs.type, "counter");
  assert.equal(reqs.help, "The total number of HTTP requests.");
  assert.deepEqual(reqs.samples[1], { name: "http_requests_total", labels: { method: "post", code: "400" }, value: 3, timestamp: 1395066363000 });
  const msdos = families.get("msdos_file_access_time_seconds").samples[0];
  assert.deepEqual(msdos.labels, { path: "C:\\DIR\\FILE.TXT", error: 'Cannot find file:\n"FILE.TXT"' });
  assert.equal(msdos.value, 1.458255915e9);
  assert.equal(families.get("metric_without_timestamp_and_labels").samples[0].value, 12.47);
  const weird = families.get("something_weird").samples[0];
  assert.deepEqual([weird.value, weird.timestamp], [Infinity, -3982045]);
  assert.equal(families.get("http_request_duration_seconds").samples.length, 8);
  assert.equal(families.get("rpc_duration_seconds").samples.at(-2).value, 1.7560473e7);

  for (const [bad, why] of [
    ["a 1", "no final line feed"],
    ['a{l="x\\y"} 1\n', "an unknown escape"],
    ['a{l="x} 1\n', "an unterminated value"],
    ['a{l="x",l="y"} 1\n', "a label twice"],
    ["a{1l=\"x\"} 1\n", "a bad label name"],
    ["1a 1\n", "a bad metric name"],
    ["a one\n", "a bad value"],
    ["a 1 2 3\n", "too many tokens"],
    ["a 1 1.5\n", "a fractional timestamp"],
    ["a 1\na 2\n", "a series twice"],
    ["a 1\nb 1\na{x=\"y\"} 1\n", "a family in two groups"],
    ["# TYPE a gauge\n# TYPE a gauge\na 1\n", "TYPE twice"],
    ["a 1\n# TYPE a gauge\n", "TYPE after samples"],
    ["# TYPE a number\na 1\n", "an unknown type"],
    ["# HELP a x\n# HELP a y\na 1\n", "HELP twice"],
    ["# TYPE a counter\na -1\n", "a negative counter"],
    ["a 1\r\n", "a carriage return"],
  ]) {
    assert.throws(() => parsePrometheusText(bad), undefined, why);
  }
});

test("GET /metrics: the text format, one series per config, the values of status, unknown ones left out", async () => {
  // A target whose name needs every escape of the format (and markup).
  await db.query(`CREATE TABLE "odd" (id bigint PRIMARY KEY)`);
  await db.query(`INSERT INTO "odd" VALUES (1), (2), (3)`);
  const oddName = 'we\\ird "odd"\n<script>alert(1)</script>';
  const odd = await w.createConfig({ source: SOURCE, source_table: "odd", target_table: `"${oddName.replaceAll('"', '""')}"`, interval_seconds: 3600, enabled: false });
  assert.equal(odd.target_table, oddName);
  await w.sync(odd.id);
  const never = await w.createConfig({ source: SOURCE, source_table: "odd", target_table: "odd_never", interval_seconds: 3600, enabled: false });

  const t0 = Date.now();
  const r = await w.api("GET", "/metrics");
  const t1 = Date.now();
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  const { families } = parsePrometheusText(r.text);
  const statuses = (await w.api("GET", "/replication/status")).json.result;
  const runs = new Map();
  for (const s of statuses) runs.set(s.config_id, (await runsOf(s.config_id)).find((x) => x.status !== "running"));

  const expected = {
    edge_replica_rows_synced_total: "counter",
    edge_replica_lag_seconds: "gauge",
    edge_replica_consecutive_failures: "gauge",
    edge_replica_last_success_timestamp_seconds: "gauge",
    edge_replica_last_run_duration_seconds: "gauge",
    edge_replica_target_rows: "gauge",
  };
  assert.deepEqual(Object.fromEntries([...families].map(([n, f]) => [n, f.type])), expected, "exactly these families, typed");
  for (const [name, f] of families) {
    assert.ok(f.help && f.help.length > 10, `${name} has HELP`);
    for (const s of f.samples) {
      assert.equal(s.name, name);
      assert.deepEqual(Object.keys(s.labels).sort(), ["config_id", "target_table"], name);
      assert.equal(s.timestamp, null);
    }
  }
  assert.ok(!families.has("edge_replica_replica_lag_seconds"), "no read replicas yet, no series");

  const series = (name, id) => families.get(name).samples.find((s) => s.labels.config_id === String(id));
  for (const st of statuses) {
    const label = `config ${st.config_id}`;
    for (const name of Object.keys(expected)) {
      const s = series(name, st.config_id);
      if (s) assert.equal(s.labels.target_table, st.target_table, `${label}: ${name} target_table label (unescaped)`);
    }
    assert.equal(series("edge_replica_rows_synced_total", st.config_id).value, st.total_rows_synced, label);
    assert.equal(series("edge_replica_consecutive_failures", st.config_id).value, st.consecutive_failures, label);
    const rows = series("edge_replica_target_rows", st.config_id);
    if (st.target_row_count === null) assert.equal(rows, undefined, `${label}: no table, no series`);
    else assert.equal(rows.value, st.target_row_count, label);
    const success = series("edge_replica_last_success_timestamp_seconds", st.config_id);
    if (st.last_success_at === null) assert.equal(success, undefined, `${label}: never succeeded, no series`);
    else assert.equal(success.value, ms(st.last_success_at) / 1000, label);
    const lag = series("edge_replica_lag_seconds", st.config_id);
    if (st.data_as_of === null) {
      assert.equal(lag, undefined, `${label}: no complete run, no lag series`);
    } else {
      // Scraped between t0 and t1: now minus the same data_as_of that status reports.
      assert.ok(lag.value >= (t0 - ms(st.data_as_of)) / 1000 - 0.001 && lag.value <= (t1 - ms(st.data_as_of)) / 1000 + 0.001, `${label}: lag ${lag.value}`);
    }
    const duration = series("edge_replica_last_run_duration_seconds", st.config_id);
    const last = runs.get(st.config_id);
    if (!last || last.duration_ms === null) assert.equal(duration, undefined, `${label}: no finished run, no duration series`);
    else assert.equal(duration.value, last.duration_ms / 1000, label);
  }
  // The odd name went through the escapes and came back whole; the never-synced config has only
  // the series whose values are known.
  assert.equal(series("edge_replica_target_rows", odd.id).value, 3);
  assert.ok(r.text.includes('target_table="we\\\\ird \\"odd\\"\\n<script>alert(1)</script>"'), "escaped on the wire");
  const neverSeries = [...families.values()].flatMap((f) => f.samples).filter((s) => s.labels.config_id === String(never.id)).map((s) => s.name).sort();
  assert.deepEqual(neverSeries, ["edge_replica_consecutive_failures", "edge_replica_rows_synced_total"]);
  // a failing config: its failures count, and no success
  const dead = statuses.find((s) => s.target_table === "big_dead");
  assert.equal(series("edge_replica_consecutive_failures", dead.config_id).value, 1);
  assert.equal(series("edge_replica_last_success_timestamp_seconds", dead.config_id), undefined);
  assert.ok(series("edge_replica_last_run_duration_seconds", dead.config_id).value >= 0, "a failed run has a duration too");
});

test("GET /metrics needs the admin token; its errors are the JSON envelope", async () => {
  assertEnvelope(await w.api("GET", "/metrics", { token: null }), 401, "no token");
  assertEnvelope(await w.api("GET", "/metrics", { token: "wrong" }), 401, "wrong token");
  assertEnvelope(await w.api("GET", "/metrics", { token: "client" }), 403, "client token");
  const post = await w.api("POST", "/metrics", { body: {} });
  assertEnvelope(post, 405, "POST");
  assert.equal(post.headers.get("allow"), "GET");
});

// ---------------------------------------------------------------------------------------------

test("the dashboard's files: no token, their types, a strict policy, nosniff, no framing, no cookies", async () => {
  for (const [p, type] of [
    ["/", "text/html; charset=utf-8"],
    ["/dashboard.js", "text/javascript; charset=utf-8"],
    ["/dashboard.css", "text/css; charset=utf-8"],
  ]) {
    for (const token of [null, "admin"]) {
      const r = await w.api("GET", p, { token });
      assert.equal(r.status, 200, `${p}: ${r.text.slice(0, 200)}`);
      assert.equal(r.headers.get("content-type"), type, p);
      const csp = r.headers.get("content-security-policy") ?? "";
      for (const d of ["default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'", "object-src 'none'"]) {
        assert.ok(csp.split(";").map((x) => x.trim()).includes(d), `${p}: ${d} in ${csp}`);
      }
      assert.doesNotMatch(csp, /unsafe|\*|https?:|data:/, `${p}: nothing loosens the policy`);
      assert.equal(r.headers.get("x-content-type-options"), "nosniff", p);
      assert.equal(r.headers.get("x-frame-options"), "DENY", p);
      assert.equal(r.headers.get("set-cookie"), null, `${p}: no cookie`);
      assert.equal(r.headers.get("access-control-allow-origin"), null, p);
    }
  }
  const page = (await w.api("GET", "/", { token: null })).text;
  assert.match(page, /<label for="token">Admin token<\/label>/);
  assert.match(page, /<input type="password" id="token"/);
  assert.doesNotMatch(page, /<script(?![^>]*\bsrc=)/, "no inline script");
  // The JSON answers say nosniff too, and the page's other methods are 405 in the envelope.
  assert.equal((await w.api("GET", "/health")).headers.get("x-content-type-options"), "nosniff");
  const post = await w.api("POST", "/", { token: null, body: { token: ADMIN } });
  assertEnvelope(post, 405, "POST /");
});

test("the admin API accepts no cookie and answers no cross-origin request", async () => {
  const origin = "https://evil.example";
  for (const p of ["/replication/status", "/replication/configs", "/metrics", "/query"]) {
    const pre = await w.api("OPTIONS", p, {
      token: null,
      headers: { Origin: origin, "Access-Control-Request-Method": p === "/query" ? "POST" : "GET", "Access-Control-Request-Headers": "authorization, content-type" },
    });
    assert.equal(pre.headers.get("access-control-allow-origin"), null, `preflight ${p}: ${pre.status}`);
    assert.equal(pre.headers.get("access-control-allow-headers"), null, `preflight ${p}`);
    assert.equal(pre.headers.get("access-control-allow-credentials"), null, `preflight ${p}`);
    assert.ok(pre.status >= 400, `preflight ${p} is not a success: ${pre.status}`);
  }
  const withOrigin = await w.api("GET", "/replication/status", { headers: { Origin: origin } });
  assertEnvelope(withOrigin, 200);
  assert.equal(withOrigin.headers.get("access-control-allow-origin"), null, "a cross-origin page cannot read the answer");
  for (const cookie of [`token=${ADMIN}`, `Authorization=Bearer ${ADMIN}`, `authorization=${ADMIN}; session=${ADMIN}`]) {
    assertEnvelope(await w.api("GET", "/replication/status", { token: null, headers: { Cookie: cookie } }), 401, `cookie ${cookie.slice(0, 14)}…`);
    assertEnvelope(await w.api("GET", "/metrics", { token: null, headers: { Cookie: cookie } }), 401, "metrics by cookie");
  }
});
