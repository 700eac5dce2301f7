// Bad requests: each answered with the right 4xx and the envelope, and together
// they leave configs, state, history and replica tables exactly as they were.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, pgDatabase, assertEnvelope, qi } from "./harness.mjs";

let db;
let w;
let good;

before(async () => {
  db = await pgDatabase();
  await db.query(`CREATE TABLE good (id bigint PRIMARY KEY, v text, updated_at timestamptz NOT NULL DEFAULT now())`);
  await db.query(`INSERT INTO good (id, v) SELECT i, 'g' || i FROM generate_series(1, 10) i`);
  w = await startWorker({ vars: { PG_URL: db.url, OTHER_VAR: "postgres://x@127.0.0.1:1/x" } });
  good = await w.createConfig({
    source: { type: "postgres", url_secret: "PG_URL" },
    source_table: "good",
    mode: "incremental",
    cursor_column: "updated_at",
    interval_seconds: 3600,
    enabled: false,
  });
  const run = await w.sync(good.id);
  assert.equal(run.status, "ok");
  assert.equal(run.rows_upserted, 10);
});

after(async () => {
  await w?.dispose();
  await db?.close();
});

/** Everything a bad request must not change. */
async function snapshot() {
  const configs = await w.api("GET", "/replication/configs");
  assertEnvelope(configs, 200);
  const status = await w.api("GET", "/replication/status");
  assertEnvelope(status, 200);
  const runs = await w.api("GET", `/replication/runs?config_id=${good.id}`);
  assertEnvelope(runs, 200);
  const master = await w.query("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name");
  const counts = {};
  for (const t of master) {
    if (t.type !== "table" || t.name.startsWith("_cf_") || t.name.startsWith("sqlite_")) continue;
    counts[t.name] = (await w.query(`SELECT count(*) AS n FROM ${qi(t.name)}`))[0].n;
  }
  const goodRows = await w.query("SELECT CAST(id AS TEXT) AS id, v, updated_at FROM good ORDER BY id");
  // lag_seconds is now minus data_as_of: it moves with the clock, not with requests.
  const state = status.json.result.map(({ lag_seconds, ...rest }) => rest);
  return { configs: configs.json.result, status: state, runs: runs.json.result, master, counts, goodRows };
}

const valid = () => ({
  source: { type: "postgres", url_secret: "PG_URL" },
  source_table: "good",
  target_table: "other",
  interval_seconds: 60,
  enabled: false,
});
const without = (k) => {
  const b = valid();
  delete b[k];
  return b;
};
const withField = (k, v) => ({ ...valid(), [k]: v });
const withSource = (s) => ({ ...valid(), source: s });

function badConfigRequests() {
  const id = () => good.id;
  return [
    // [name, method, path, { body | rawBody | token }, status, error pattern]
    ["malformed JSON", "POST", "/replication/configs", { rawBody: '{"source_table": "good", ' }, 400, /json/i],
    ["not JSON at all", "POST", "/replication/configs", { rawBody: "source_table=good" }, 400, /json/i],
    ["empty body", "POST", "/replication/configs", { rawBody: "" }, 400],
    ["a JSON array", "POST", "/replication/configs", { body: [valid()] }, 400],
    ["JSON null", "POST", "/replication/configs", { rawBody: "null" }, 400],
    ["unknown field", "POST", "/replication/configs", { body: withField("colour", "red") }, 400, /colour/],
    ["unknown source field", "POST", "/replication/configs", { body: withSource({ type: "postgres", url_secret: "PG_URL", password: "x" }) }, 400, /password/],
    ["missing source_table", "POST", "/replication/configs", { body: without("source_table") }, 400, /source_table/],
    ["missing interval_seconds", "POST", "/replication/configs", { body: without("interval_seconds") }, 400, /interval_seconds/],
    ["source_table not a string", "POST", "/replication/configs", { body: withField("source_table", 123) }, 400, /source_table/],
    ["source_table empty", "POST", "/replication/configs", { body: withField("source_table", "") }, 400, /source_table/],
    ["interval_seconds 0", "POST", "/replication/configs", { body: withField("interval_seconds", 0) }, 400, /interval_seconds/],
    ["interval_seconds -1", "POST", "/replication/configs", { body: withField("interval_seconds", -1) }, 400, /interval_seconds/],
    ["interval_seconds 1.5", "POST", "/replication/configs", { body: withField("interval_seconds", 1.5) }, 400, /interval_seconds/],
    ['interval_seconds "10"', "POST", "/replication/configs", { body: withField("interval_seconds", "10") }, 400, /interval_seconds/],
    ["interval_seconds null", "POST", "/replication/configs", { body: withField("interval_seconds", null) }, 400, /interval_seconds/],
    ["batch_size 0", "POST", "/replication/configs", { body: withField("batch_size", 0) }, 400, /batch_size/],
    ["batch_size 50001", "POST", "/replication/configs", { body: withField("batch_size", 50001) }, 400, /batch_size/],
    ["lookback_seconds -1", "POST", "/replication/configs", { body: withField("lookback_seconds", -1) }, 400, /lookback_seconds/],
    ['enabled "yes"', "POST", "/replication/configs", { body: withField("enabled", "yes") }, 400, /enabled/],
    ["mode cdc with a cursor_column", "POST", "/replication/configs", { body: { ...withField("mode", "cdc"), cursor_column: "id" } }, 400, /cdc/],
    ["mode bogus", "POST", "/replication/configs", { body: withField("mode", "bogus") }, 400, /mode/],
    ["incremental without cursor_column", "POST", "/replication/configs", { body: withField("mode", "incremental") }, 400, /cursor_column/],
    ["empty columns", "POST", "/replication/configs", { body: withField("columns", []) }, 400, /columns/],
    ["columns not an array", "POST", "/replication/configs", { body: withField("columns", "id,v") }, 400, /columns/],
    ["primary_key not an array", "POST", "/replication/configs", { body: withField("primary_key", "id") }, 400, /primary_key/],
    ["source_table with ;", "POST", "/replication/configs", { body: withField("source_table", "good; DROP TABLE good") }, 400, /source_table/],
    ["source_table with --", "POST", "/replication/configs", { body: withField("source_table", "good--") }, 400, /source_table/],
    ["source_table with /*", "POST", "/replication/configs", { body: withField("source_table", "good/*x*/") }, 400, /source_table/],
    ["source_table unbalanced quote", "POST", "/replication/configs", { body: withField("source_table", '"good') }, 400, /source_table/],
    ["source_table single quote", "POST", "/replication/configs", { body: withField("source_table", "good' OR '1'='1") }, 400, /source_table/],
    ["source_table three parts", "POST", "/replication/configs", { body: withField("source_table", "a.b.c.d") }, 400, /source_table/],
    ["column with ;", "POST", "/replication/configs", { body: withField("columns", ["id", "v; DROP TABLE good"]) }, 400, /columns/],
    ["cursor_column with )", "POST", "/replication/configs", { body: { ...withField("cursor_column", "updated_at) OR (1=1"), mode: "incremental" } }, 400, /cursor_column/],
    ["primary_key with space", "POST", "/replication/configs", { body: withField("primary_key", ["id", "a b"]) }, 400, /primary_key/],
    ["target_table tmp_x", "POST", "/replication/configs", { body: withField("target_table", "tmp_x") }, 400, /target_table/],
    ["target_table tmp_replication_configs", "POST", "/replication/configs", { body: withField("target_table", "tmp_replication_configs") }, 400, /target_table/],
    ["target_table _cf_x", "POST", "/replication/configs", { body: withField("target_table", "_cf_x") }, 400, /target_table/],
    ["target_table sqlite_x", "POST", "/replication/configs", { body: withField("target_table", "sqlite_x") }, 400, /target_table/],
    ["target_table with schema-like injection", "POST", "/replication/configs", { body: withField("target_table", 'x"; DROP TABLE good; --') }, 400, /target_table/],
    ["duplicate target_table", "POST", "/replication/configs", { body: withField("target_table", "good") }, 409, /good|target_table/],
    ["duplicate default target_table", "POST", "/replication/configs", { body: without("target_table") }, 409, /good|target_table/],
    ["url_secret naming the admin token", "POST", "/replication/configs", { body: withSource({ type: "postgres", url_secret: "ADMIN_AUTHORIZATION_TOKEN" }) }, 400, /url_secret|ADMIN_AUTHORIZATION_TOKEN/],
    ["url_secret naming the client token", "POST", "/replication/configs", { body: withSource({ type: "postgres", url_secret: "CLIENT_AUTHORIZATION_TOKEN" }) }, 400, /url_secret|CLIENT_AUTHORIZATION_TOKEN/],
    ["url_secret not bound", "POST", "/replication/configs", { body: withSource({ type: "postgres", url_secret: "NO_SUCH_SECRET" }) }, 400, /NO_SUCH_SECRET/],
    ["hyperdrive not bound", "POST", "/replication/configs", { body: withSource({ type: "postgres", hyperdrive: "NO_SUCH_BINDING" }) }, 400, /NO_SUCH_BINDING/],
    ["source type unknown", "POST", "/replication/configs", { body: withSource({ type: "oracle", url_secret: "PG_URL" }) }, 400, /oracle|type/],
    ["source without type", "POST", "/replication/configs", { body: withSource({ url_secret: "PG_URL" }) }, 400, /type/],
    ["source a string", "POST", "/replication/configs", { body: withSource("postgres://postgres@127.0.0.1/test") }, 400, /source/],
    ["postgres source with neither hyperdrive nor url_secret", "POST", "/replication/configs", { body: withSource({ type: "postgres" }) }, 400, /hyperdrive|url_secret/],

    ["id abc", "GET", "/replication/configs/abc", {}, 400],
    ["id 0", "GET", "/replication/configs/0", {}, 400],
    ["id -1", "GET", "/replication/configs/-1", {}, 400],
    ["id 1.5", "GET", "/replication/configs/1.5", {}, 400],
    ["unknown id", "GET", "/replication/configs/999999", {}, 404],
    ["PUT unknown id", "PUT", "/replication/configs/999999", { body: { interval_seconds: 5 } }, 404],
    ["PUT id abc", "PUT", "/replication/configs/abc", { body: { interval_seconds: 5 } }, 400],
    ["PUT interval_seconds 0", "PUT", `/replication/configs/${id()}`, { body: { interval_seconds: 0 } }, 400, /interval_seconds/],
    ["PUT unknown field", "PUT", `/replication/configs/${id()}`, { body: { bogus: 1 } }, 400, /bogus/],
    ["PUT malformed JSON", "PUT", `/replication/configs/${id()}`, { rawBody: "{" }, 400],
    ["PUT target_table reserved", "PUT", `/replication/configs/${id()}`, { body: { target_table: "tmp_replication_runs" } }, 400, /target_table/],
    ["PUT mode cdc", "PUT", `/replication/configs/${id()}`, { body: { mode: "cdc" } }, 400, /cdc/],
    ["PUT cursor_column null on an incremental config", "PUT", `/replication/configs/${id()}`, { body: { cursor_column: null } }, 400, /cursor_column/],
    ["DELETE id abc", "DELETE", "/replication/configs/abc", {}, 400],
    ["DELETE unknown id", "DELETE", "/replication/configs/999999", {}, 404],
    ["sync id abc", "POST", "/replication/sync/abc", {}, 400],
    ["sync id 0", "POST", "/replication/sync/0", {}, 400],
    ["sync unknown id", "POST", "/replication/sync/999999", {}, 404],
    ["status id -1", "GET", "/replication/status/-1", {}, 400],
    ["status unknown id", "GET", "/replication/status/999999", {}, 404],
    ["runs config_id abc", "GET", "/replication/runs?config_id=abc", {}, 400],
    ["client token on an admin route with a bad body", "POST", "/replication/configs", { token: "client", body: withField("mode", "cdc") }, 403],
  ];
}

function badQueryRequests() {
  const q = (sql, extra = {}) => ({ body: { sql, ...extra } });
  return [
    ["query malformed JSON", "POST", "/query", { rawBody: '{"sql": ' }, 400],
    ["query without sql", "POST", "/query", { body: { params: [] } }, 400, /sql/],
    ["query sql not a string", "POST", "/query", { body: { sql: 42 } }, 400, /sql/],
    ["query params not an array", "POST", "/query", q("SELECT ?", { params: "x" }), 400, /params/],
    ["query empty sql", "POST", "/query", q(""), 400],
    ["query syntax error", "POST", "/query", q("SELEC 1"), 400],
    ["INSERT", "POST", "/query", q("INSERT INTO good (id, v) VALUES (99, 'x')"), 400],
    ["INSERT ... RETURNING", "POST", "/query", q("INSERT INTO good (id, v) VALUES (99, 'x') RETURNING id"), 400],
    ["REPLACE", "POST", "/query", q("REPLACE INTO good (id, v) VALUES (1, 'x')"), 400],
    ["UPDATE", "POST", "/query", q("UPDATE good SET v = 'x'"), 400],
    ["DELETE", "POST", "/query", q("DELETE FROM good"), 400],
    ["DROP TABLE", "POST", "/query", q("DROP TABLE good"), 400],
    ["DROP bookkeeping", "POST", "/query", q("DROP TABLE tmp_replication_configs"), 400],
    ["CREATE TABLE", "POST", "/query", q("CREATE TABLE x (a)"), 400],
    ["CREATE TABLE AS SELECT", "POST", "/query", q("CREATE TABLE x AS SELECT * FROM good"), 400],
    ["CREATE INDEX", "POST", "/query", q("CREATE INDEX gi ON good (v)"), 400],
    ["CREATE TRIGGER", "POST", "/query", q("CREATE TRIGGER t AFTER INSERT ON good BEGIN DELETE FROM good; END"), 400],
    ["ALTER TABLE", "POST", "/query", q("ALTER TABLE good ADD COLUMN z"), 400],
    ["ATTACH", "POST", "/query", q("ATTACH DATABASE 'x.db' AS x"), 400],
    ["DETACH", "POST", "/query", q("DETACH DATABASE x"), 400],
    ["PRAGMA write", "POST", "/query", q("PRAGMA user_version = 5"), 400],
    ["PRAGMA journal_mode", "POST", "/query", q("PRAGMA journal_mode = DELETE"), 400],
    ["VACUUM", "POST", "/query", q("VACUUM"), 400],
    ["WITH ... DELETE", "POST", "/query", q("WITH d AS (SELECT 1) DELETE FROM good"), 400],
    ["WITH ... INSERT", "POST", "/query", q("WITH d AS (SELECT 100 AS id) INSERT INTO good (id) SELECT id FROM d"), 400],
    ["two statements", "POST", "/query", q("SELECT 1; DELETE FROM good"), 400],
    ["two selects", "POST", "/query", q("SELECT 1; SELECT 2"), 400],
    ["BEGIN", "POST", "/query", q("BEGIN"), 400],
    ["raw DELETE", "POST", "/query/raw", q("DELETE FROM good"), 400],
    ["raw UPDATE as client", "POST", "/query/raw", { token: "client", ...q("UPDATE good SET v = 'x'") }, 400],
    ["raw two statements", "POST", "/query/raw", q("SELECT 1; DROP TABLE good"), 400],
    ["client reads tmp_replication_configs", "POST", "/query", { token: "client", ...q("SELECT * FROM tmp_replication_configs") }, 403],
    ["client reads tmp_replication_state in a subquery", "POST", "/query", { token: "client", ...q("SELECT (SELECT count(*) FROM tmp_replication_state) AS n") }, 403],
    ["client reads tmp_replication_runs in a CTE", "POST", "/query/raw", { token: "client", ...q("WITH r AS (SELECT * FROM tmp_replication_runs) SELECT * FROM r") }, 403],
    ["client reads tmp_ via a join", "POST", "/query", { token: "client", ...q("SELECT g.id FROM good g JOIN tmp_replication_configs c ON 1 = 1") }, 403],
  ];
}

test("at least 25 bad requests: right 4xx, envelope, nothing changed", async () => {
  const before = await snapshot();
  assert.equal(before.configs.length, 1);
  assert.equal(before.counts.good, 10);

  const cases = [...badConfigRequests(), ...badQueryRequests()];
  assert.ok(cases.length >= 25);
  const failures = [];
  for (const [name, method, path, opts, status, pattern] of cases) {
    const r = await w.api(method, path, opts);
    try {
      assertEnvelope(r, status, name);
      if (pattern) assert.match(r.json.error, pattern, `${name}: error should name the field: ${r.json.error}`);
    } catch (e) {
      failures.push(`${name} (${method} ${path}): expected ${status}, got ${r.status} ${r.text.slice(0, 300)}${pattern ? ` [error must match ${pattern}]` : ""}`);
    }
  }
  const after = await snapshot();
  assert.deepEqual(failures, [], `${failures.length} of ${cases.length} bad requests were answered wrongly`);
  assert.deepEqual(after, before, "bad requests changed nothing");
});

test("bodies over 1 MiB -> 413 with the envelope, nothing changed", async () => {
  const before = await snapshot();
  const big = JSON.stringify({ ...valid(), target_table: "big_one", pad: "x".repeat(1024 * 1024 + 10) });
  assertEnvelope(await w.api("POST", "/replication/configs", { rawBody: big, headers: { "Content-Type": "application/json" } }), 413, "config body > 1 MiB");
  const bigQuery = JSON.stringify({ sql: `SELECT '${"y".repeat(1024 * 1024 + 10)}' AS y` });
  assertEnvelope(await w.api("POST", "/query", { rawBody: bigQuery, headers: { "Content-Type": "application/json" } }), 413, "query body > 1 MiB");
  assertEnvelope(
    await w.api("PUT", `/replication/configs/${good.id}`, { rawBody: JSON.stringify({ interval_seconds: 5, pad: "z".repeat(1100000) }) }),
    413,
    "PUT body > 1 MiB",
  );
  // just under the limit is not rejected for its size
  const nearly = JSON.stringify({ sql: "SELECT 1 AS one", params: [], pad: undefined }) + " ".repeat(1024 * 1024 - 100);
  const r = await w.api("POST", "/query", { rawBody: nearly, headers: { "Content-Type": "application/json" } });
  assertEnvelope(r, 200, "query body just under 1 MiB");
  assert.deepEqual(await snapshot(), before);
});

test("the valid body behind the bad ones is accepted (the failures were the bad fields)", async () => {
  const created = await w.api("POST", "/replication/configs", { body: valid() });
  assertEnvelope(created, 201);
  const id = created.json.result.id;
  assertEnvelope(await w.api("DELETE", `/replication/configs/${id}`), 200);
  // and an incremental one with a cursor column, a subset of columns and a key
  const inc = await w.api("POST", "/replication/configs", {
    body: { ...valid(), mode: "incremental", cursor_column: "updated_at", columns: ["id", "v", "updated_at"], primary_key: ["id"], batch_size: 50000, lookback_seconds: 0 },
  });
  assertEnvelope(inc, 201);
  assertEnvelope(await w.api("DELETE", `/replication/configs/${inc.json.result.id}`), 200);
  const viaOther = await w.api("POST", "/replication/configs", { body: withSource({ type: "postgres", url_secret: "OTHER_VAR" }) });
  assertEnvelope(viaOther, 201);
  assertEnvelope(await w.api("DELETE", `/replication/configs/${viaOther.json.result.id}`), 200);
});
