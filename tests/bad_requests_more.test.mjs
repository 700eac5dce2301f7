// Hostile requests on every route: forged auth, wrong methods, odd paths and ids, bodies that
// are not UTF-8, not JSON, nested thousands deep, in the wrong content type or streamed past
// the size limit, numbers no integer holds, identifiers with quotes, comments and reserved
// names, secrets naming the tokens, and every form of write through /query. Each gets the
// right 4xx in the JSON envelope, and together they change nothing: configs, status, run
// history and every replica table are identical before and after.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { readFileSync } from "node:fs";
import { startWorker, pgDatabase, assertEnvelope, qi, ADMIN, CLIENT } from "./harness.mjs";
import { ownWorkerdPids } from "./faults_support.mjs";

let db;
let w;
let good;
let quoted;

before(async () => {
  db = await pgDatabase();
  await db.query(`CREATE TABLE good (id bigint PRIMARY KEY, v text, updated_at timestamptz NOT NULL DEFAULT now())`);
  await db.query(`INSERT INTO good (id, v) SELECT i, 'g' || i FROM generate_series(1, 10) i`);
  await db.query(`CREATE TABLE "Odd Name" (id int PRIMARY KEY, v text)`);
  await db.query(`INSERT INTO "Odd Name" VALUES (1, 'o')`);
  w = await startWorker({ vars: { PG_URL: db.url } });
  good = await w.createConfig({
    source: { type: "postgres", url_secret: "PG_URL" },
    source_table: "good",
    cursor_column: "updated_at",
    interval_seconds: 3600,
    enabled: false,
  });
  quoted = await w.createConfig({
    source: { type: "postgres", url_secret: "PG_URL" },
    source_table: '"Odd Name"',
    interval_seconds: 3600,
    enabled: false,
  });
  assert.equal(quoted.target_table, "Odd Name");
  for (const c of [good, quoted]) assert.equal((await w.sync(c.id)).status, "ok");
});

after(async () => {
  await w?.dispose();
  await db?.close();
});

/** Everything a bad request must not change. */
async function snapshot() {
  const get = async (path) => {
    const r = await w.api("GET", path);
    assertEnvelope(r, 200, path);
    return r.json.result;
  };
  const master = await w.query("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name");
  const tables = {};
  for (const t of master) {
    if (t.type !== "table" || t.name.startsWith("_cf_") || t.name.startsWith("sqlite_")) continue;
    tables[t.name] = await w.query(`SELECT * FROM ${qi(t.name)} ORDER BY rowid`);
  }
  return {
    configs: await get("/replication/configs"),
    // lag_seconds is now minus data_as_of: it moves with the clock, not with requests.
    status: (await get("/replication/status")).map(({ lag_seconds, ...rest }) => rest),
    runs: await get("/replication/runs?limit=1000"),
    master,
    tables,
  };
}

/** A request exactly as written: no URL normalisation, any bytes, chunked if asked. */
function raw(method, path, { headers = {}, body, chunks } = {}) {
  const u = new URL(w.url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method, path, headers }, (res) => {
      const parts = [];
      res.on("data", (c) => parts.push(c));
      res.on("end", () => {
        const text = Buffer.concat(parts).toString("utf8");
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, text, json, headers: new Headers(res.headers) });
      });
    });
    req.on("error", reject);
    if (chunks) {
      for (const c of chunks) req.write(c);
      req.end();
    } else {
      req.end(body);
    }
  });
}

const bearer = (t) => ({ Authorization: `Bearer ${t}` });
const json = { "Content-Type": "application/json" };
const validBody = () => ({
  source: { type: "postgres", url_secret: "PG_URL" },
  source_table: "good",
  target_table: "other",
  interval_seconds: 60,
  enabled: false,
});
const withField = (k, v) => ({ ...validBody(), [k]: v });
const withSource = (s) => ({ ...validBody(), source: s });
const nested = (n) => "[".repeat(n) + "]".repeat(n);

function cases() {
  const id = good.id;
  const q = (sql, extra = {}) => ({ body: { sql, ...extra } });
  return [
    // [name, method, path, { token, body, rawBody, headers, raw: {...} }, status, error pattern]

    // --- authentication on every route
    ["no token on POST /replication/configs", "POST", "/replication/configs", { token: null, body: validBody() }, 401],
    ["no token on GET /replication/configs/:id", "GET", `/replication/configs/${id}`, { token: null }, 401],
    ["no token on PUT /replication/configs/:id", "PUT", `/replication/configs/${id}`, { token: null, body: { interval_seconds: 1 } }, 401],
    ["no token on DELETE /replication/configs/:id", "DELETE", `/replication/configs/${id}`, { token: null }, 401],
    ["no token on POST /replication/sync/:id", "POST", `/replication/sync/${id}`, { token: null }, 401],
    ["no token on POST /replication/callback", "POST", "/replication/callback", { token: null }, 401],
    ["no token on GET /replication/status", "GET", "/replication/status", { token: null }, 401],
    ["no token on GET /replication/runs", "GET", "/replication/runs", { token: null }, 401],
    ["no token on POST /query", "POST", "/query", { token: null, ...q("SELECT 1") }, 401],
    ["no token on POST /query/raw", "POST", "/query/raw", { token: null, ...q("SELECT 1") }, 401],
    ["wrong token", "GET", "/replication/configs", { token: "not-the-token" }, 401],
    ["admin token plus one character", "GET", "/replication/configs", { token: `${ADMIN}x` }, 401],
    ["admin token minus its last character", "GET", "/replication/configs", { token: ADMIN.slice(0, -1) }, 401],
    ["admin token in Basic auth", "GET", "/replication/configs", { token: null, headers: { Authorization: `Basic ${Buffer.from(`admin:${ADMIN}`).toString("base64")}` } }, 401],
    ["admin token without the Bearer scheme", "GET", "/replication/configs", { token: null, headers: { Authorization: ADMIN } }, 401],
    ["forged role header without a token", "DELETE", `/replication/configs/${id}`, { token: null, headers: { "x-edge-replica-role": "admin" } }, 401],
    ["forged role header with the client token", "DELETE", `/replication/configs/${id}`, { token: "client", headers: { "x-edge-replica-role": "admin" } }, 403],
    ["client token: POST /replication/configs", "POST", "/replication/configs", { token: "client", body: validBody() }, 403],
    ["client token: PUT /replication/configs/:id", "PUT", `/replication/configs/${id}`, { token: "client", body: { interval_seconds: 1 } }, 403],
    ["client token: DELETE /replication/configs/:id", "DELETE", `/replication/configs/${id}?drop_table=true`, { token: "client" }, 403],
    ["client token: POST /replication/sync/:id", "POST", `/replication/sync/${id}`, { token: "client" }, 403],
    ["client token: POST /replication/callback", "POST", "/replication/callback", { token: "client" }, 403],
    ["client token: GET /replication/status/:id", "GET", `/replication/status/${id}`, { token: "client" }, 403],
    ["client token: GET /replication/runs", "GET", `/replication/runs?config_id=${id}`, { token: "client" }, 403],

    // --- methods
    ["PATCH a config", "PATCH", `/replication/configs/${id}`, { body: { interval_seconds: 1 } }, 405],
    ["DELETE the config list", "DELETE", "/replication/configs", {}, 405],
    ["PUT the config list", "PUT", "/replication/configs", { body: validBody() }, 405],
    ["GET a sync", "GET", `/replication/sync/${id}`, {}, 405],
    ["DELETE a sync", "DELETE", `/replication/sync/${id}`, {}, 405],
    ["GET the callback", "GET", "/replication/callback", {}, 405],
    ["POST status", "POST", "/replication/status", { body: {} }, 405],
    ["DELETE status/:id", "DELETE", `/replication/status/${id}`, {}, 405],
    ["POST runs", "POST", "/replication/runs", { body: {} }, 405],
    ["GET /query", "GET", "/query?sql=DELETE%20FROM%20good", {}, 405],
    ["PUT /query/raw", "PUT", "/query/raw", q("SELECT 1"), 405],
    ["POST /health", "POST", "/health", { token: null, body: {} }, 405],
    ["OPTIONS a config", "OPTIONS", `/replication/configs/${id}`, {}, 405],

    // --- paths and ids
    ["unknown route", "GET", "/replication", {}, 404],
    ["route in upper case", "GET", "/REPLICATION/CONFIGS", {}, 404],
    ["a config's sub-path", "GET", `/replication/configs/${id}/extra`, {}, 404],
    ["a query sub-path", "POST", "/query/raw/x", q("SELECT 1"), 404],
    ["id 1e3", "GET", "/replication/configs/1e3", {}, 400],
    ["id 0x1", "GET", "/replication/configs/0x1", {}, 400],
    ["id +1", "GET", "/replication/configs/+1", {}, 400],
    ["id 1.0", "PUT", "/replication/configs/1.0", { body: { interval_seconds: 1 } }, 400],
    ["id past i64", "GET", "/replication/configs/99999999999999999999", {}, 400],
    ["id i64::MAX + 1", "DELETE", "/replication/configs/9223372036854775808", {}, 400],
    ["id i64::MAX is only unknown", "GET", "/replication/status/9223372036854775807", {}, 404],
    ["id 2^53 + 1 is only unknown", "PUT", "/replication/configs/9007199254740993", { body: { interval_seconds: 1 } }, 404],
    ["runs of config 2^53 + 1", "GET", "/replication/runs?config_id=9007199254740993", {}, 404],
    ["sync of config 2^53 + 1", "POST", "/replication/sync/9007199254740993", {}, 404],
    ["id with a NUL", "GET", "/replication/configs/1%00", {}, 400],
    ["id with SQL", "POST", "/replication/sync/1%20OR%201=1", {}, 400],
    ["id with a semicolon", "DELETE", "/replication/configs/1;DROP%20TABLE%20good", {}, 400],
    ["id spelled out", "GET", "/replication/status/one", {}, 400],
    ["negative id", "POST", "/replication/sync/-5", {}, 400],
    // (`/replication/configs/../..` is `/`, the dashboard's page: out of the API, past no token.)
    ["path traversal", "GET", "/replication/configs/../../nope", { raw: true }, 404],
    ["path traversal to a config", "DELETE", `/replication/../replication/configs/${id}/..`, { raw: true }, 405],
    ["encoded path traversal", "GET", "/replication/configs/%2e%2e/%2e%2e/etc/passwd", { raw: true }, 404],
    ["encoded slash in an id", "GET", `/replication/configs/${id}%2F..`, { raw: true }, 400],
    ["runs limit 0", "GET", "/replication/runs?limit=0", {}, 400, /limit/],
    ["runs limit 1001", "GET", "/replication/runs?limit=1001", {}, 400, /limit/],
    ["runs limit -1", "GET", "/replication/runs?limit=-1", {}, 400, /limit/],
    ["runs limit 1e3", "GET", "/replication/runs?limit=1e3", {}, 400, /limit/],
    ["runs limit past u64", "GET", "/replication/runs?limit=99999999999999999999", {}, 400, /limit/],
    ["runs limit with SQL", "GET", "/replication/runs?limit=1%3B%20DELETE%20FROM%20tmp_replication_runs", {}, 400, /limit/],
    ["runs config_id with a quote", "GET", "/replication/runs?config_id=1'%20OR%20'1'='1", {}, 400],
    ["runs config_id 0", "GET", "/replication/runs?config_id=0", {}, 400],
    ["delete with drop_table=maybe", "DELETE", `/replication/configs/${id}?drop_table=maybe`, {}, 400, /drop_table/],
    ["delete with drop_table=1;DROP", "DELETE", `/replication/configs/${id}?drop_table=1%3BDROP`, {}, 400, /drop_table/],

    // --- bodies
    ["config body not UTF-8", "POST", "/replication/configs", { rawBody: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]), headers: json }, 400],
    ["config string not UTF-8", "POST", "/replication/configs", { rawBody: Buffer.concat([Buffer.from('{"source_table":"'), Buffer.from([0xc3, 0x28]), Buffer.from('","interval_seconds":1}')]), headers: json }, 400],
    ["query body not UTF-8", "POST", "/query", { rawBody: Buffer.from([0x7b, 0x22, 0x73, 0x71, 0x6c, 0x22, 0x3a, 0x22, 0xc0, 0xaf, 0x22, 0x7d]), headers: json }, 400],
    ["PUT body not UTF-8", "PUT", `/replication/configs/${id}`, { rawBody: Buffer.from([0xff, 0xff, 0xff]), headers: json }, 400],
    ["JSON with a byte-order mark", "POST", "/replication/configs", { rawBody: "\ufeff" + JSON.stringify(validBody()), headers: json }, 400],
    ["JSON nested 100,000 deep (config)", "POST", "/replication/configs", { rawBody: nested(100_000), headers: json }, 400],
    ["JSON nested 100,000 deep (query)", "POST", "/query", { rawBody: `{"sql":"SELECT 1","params":${nested(100_000)}}`, headers: json }, 400],
    ["source nested 5,000 deep", "POST", "/replication/configs", { rawBody: `{"source":${'{"a":'.repeat(5000)}1${"}".repeat(5000)},"source_table":"good","interval_seconds":1}`, headers: json }, 400],
    ["form-encoded body", "POST", "/replication/configs", { rawBody: "source_table=good&interval_seconds=1", headers: { "Content-Type": "application/x-www-form-urlencoded" } }, 400],
    ["form-encoded write to /query", "POST", "/query", { rawBody: "sql=DELETE+FROM+good", headers: { "Content-Type": "application/x-www-form-urlencoded" } }, 400],
    ["multipart body", "POST", "/query", { rawBody: '--b\r\nContent-Disposition: form-data; name="sql"\r\n\r\nDELETE FROM good\r\n--b--\r\n', headers: { "Content-Type": "multipart/form-data; boundary=b" } }, 400],
    ["XML body", "PUT", `/replication/configs/${id}`, { rawBody: "<config><interval_seconds>1</interval_seconds></config>", headers: { "Content-Type": "application/xml" } }, 400],
    ["text/plain SQL", "POST", "/query/raw", { rawBody: "DROP TABLE good", headers: { "Content-Type": "text/plain" } }, 400],
    ["duplicate sql keys, the last a write", "POST", "/query", { rawBody: '{"sql":"SELECT 1","sql":"DELETE FROM good"}', headers: json }, 400],
    ["a JSON string body", "POST", "/query", { rawBody: '"SELECT 1"', headers: json }, 400],
    ["trailing garbage after the JSON", "POST", "/replication/configs", { rawBody: JSON.stringify(validBody()) + " x", headers: json }, 400],
    ["two JSON documents", "PUT", `/replication/configs/${id}`, { rawBody: '{"interval_seconds":5}{"enabled":true}', headers: json }, 400],
    ["interval_seconds 1e400", "POST", "/replication/configs", { rawBody: JSON.stringify(validBody()).replace('"interval_seconds":60', '"interval_seconds":1e400'), headers: json }, 400, /interval_seconds/],
    ["interval_seconds 99999999999999999999", "POST", "/replication/configs", { rawBody: JSON.stringify(validBody()).replace('"interval_seconds":60', '"interval_seconds":99999999999999999999'), headers: json }, 400, /interval_seconds/],
    ["interval_seconds 1e3", "POST", "/replication/configs", { rawBody: JSON.stringify(validBody()).replace('"interval_seconds":60', '"interval_seconds":1e3'), headers: json }, 400, /interval_seconds/],
    ["interval_seconds a year and a second", "POST", "/replication/configs", { body: withField("interval_seconds", 31_536_001) }, 400, /interval_seconds/],
    ["interval_seconds NaN", "POST", "/replication/configs", { rawBody: JSON.stringify(validBody()).replace('"interval_seconds":60', '"interval_seconds":NaN'), headers: json }, 400],
    ["batch_size i64::MAX", "PUT", `/replication/configs/${id}`, { rawBody: '{"batch_size":9223372036854775807}', headers: json }, 400, /batch_size/],
    ["batch_size -0", "PUT", `/replication/configs/${id}`, { rawBody: '{"batch_size":-0}', headers: json }, 400, /batch_size/],
    ["lookback_seconds past u64", "PUT", `/replication/configs/${id}`, { rawBody: '{"lookback_seconds":184467440737095516160}', headers: json }, 400, /lookback_seconds/],
    ["enabled 1", "PUT", `/replication/configs/${id}`, { body: { enabled: 1 } }, 400, /enabled/],
    ["id in a PUT body", "PUT", `/replication/configs/${id}`, { body: { id: quoted.id } }, 400, /read-only/],
    ["created_at in a body", "POST", "/replication/configs", { body: withField("created_at", "2020-01-01T00:00:00Z") }, 400, /read-only/],
    ["__proto__ field", "POST", "/replication/configs", { rawBody: JSON.stringify(validBody()).replace("{", '{"__proto__":{"admin":true},'), headers: json }, 400, /__proto__/],
    ["query params an object", "POST", "/query", q("SELECT ?", { params: { 0: 1 } }), 400, /params/],
    ["query param an array", "POST", "/query", q("SELECT ?", { params: [[1]] }), 400, /params/],
    ["query param an object", "POST", "/query/raw", q("SELECT ?", { params: [{ sql: "DELETE FROM good" }] }), 400, /params/],
    ["query with an extra field", "POST", "/query", q("SELECT 1", { exec: "DELETE FROM good" }), 400, /exec/],
    ["query sql an array", "POST", "/query", { body: { sql: ["SELECT 1", "DELETE FROM good"] } }, 400, /sql/],
    ["query sql null", "POST", "/query/raw", { body: { sql: null } }, 400, /sql/],

    // --- identifiers, reserved and internal names, secrets
    ["source_table with a comment", "POST", "/replication/configs", { body: withField("source_table", "good/**/") }, 400, /source_table/],
    ["source_table with a line comment and a write", "POST", "/replication/configs", { body: withField("source_table", "good -- \nDELETE FROM good") }, 400, /source_table/],
    ["source_table with a NUL", "POST", "/replication/configs", { body: withField("source_table", "go\u0000od") }, 400, /source_table/],
    ["source_table quoted with a NUL", "POST", "/replication/configs", { body: withField("source_table", '"go\u0000od"') }, 400, /source_table/],
    ["source_table in Cyrillic look-alikes", "POST", "/replication/configs", { body: withField("source_table", "gооd") }, 400, /source_table/],
    ["source_table with a zero-width space", "POST", "/replication/configs", { body: withField("source_table", "good\u200b") }, 400, /source_table/],
    ["source_table 129 characters", "POST", "/replication/configs", { body: withField("source_table", "a".repeat(129)) }, 400, /source_table/],
    ["source_table with a newline", "POST", "/replication/configs", { body: withField("source_table", "good\n") }, 400, /source_table/],
    ["source_table in backquotes for postgres", "POST", "/replication/configs", { body: withField("source_table", "`good`") }, 400, /source_table/],
    ["source_table four parts", "POST", "/replication/configs", { body: withField("source_table", '"a"."b"."c"') }, 400, /source_table/],
    ["target_table quoted tmp_", "POST", "/replication/configs", { body: withField("target_table", '"tmp_stage_1"') }, 400, /target_table/],
    ["target_table TMP_ in capitals", "POST", "/replication/configs", { body: withField("target_table", "TMP_REPLICATION_STATE") }, 400, /target_table/],
    ["target_table _CF_KV", "POST", "/replication/configs", { body: withField("target_table", "_CF_KV") }, 400, /target_table/],
    ["target_table sqlite_master quoted", "POST", "/replication/configs", { body: withField("target_table", '"sqlite_master"') }, 400, /target_table/],
    ["target_table Sqlite_Sequence", "PUT", `/replication/configs/${quoted.id}`, { body: { target_table: "Sqlite_Sequence" } }, 400, /target_table/],
    ["target_table schema-qualified", "POST", "/replication/configs", { body: withField("target_table", "main.good") }, 400, /target_table/],
    ["target_table another config's in capitals", "POST", "/replication/configs", { body: withField("target_table", "GOOD") }, 409, /GOOD|good|target_table/],
    ["target_table another config's, quoted", "POST", "/replication/configs", { body: withField("target_table", '"Odd Name"') }, 409, /Odd Name|target_table/],
    ["PUT target_table onto another config's", "PUT", `/replication/configs/${id}`, { body: { target_table: '"Odd Name"' } }, 409, /Odd Name|target_table/],
    ["default target_table from a reserved source name", "POST", "/replication/configs", { body: { ...withField("source_table", "public.tmp_x"), target_table: undefined } }, 400, /target_table/],
    ["columns with a comment", "POST", "/replication/configs", { body: withField("columns", ["id", "v/**/"]) }, 400, /columns/],
    ["columns with null", "POST", "/replication/configs", { body: withField("columns", ["id", null]) }, 400, /columns/],
    ["columns nested", "POST", "/replication/configs", { body: withField("columns", [["id"]]) }, 400, /columns/],
    ["columns an object", "POST", "/replication/configs", { body: withField("columns", { 0: "id" }) }, 400, /columns/],
    ["primary_key empty name", "POST", "/replication/configs", { body: withField("primary_key", [""]) }, 400, /primary_key/],
    ["primary_key with a quote", "POST", "/replication/configs", { body: withField("primary_key", ['id"']) }, 400, /primary_key/],
    ["cursor_column with a line comment", "PUT", `/replication/configs/${id}`, { body: { cursor_column: "updated_at--" } }, 400, /cursor_column/],
    ["cursor_column with a semicolon", "PUT", `/replication/configs/${id}`, { body: { cursor_column: "updated_at; DELETE FROM good" } }, 400, /cursor_column/],
    ["url_secret naming the admin token (PUT)", "PUT", `/replication/configs/${id}`, { body: { source: { type: "postgres", url_secret: "ADMIN_AUTHORIZATION_TOKEN" } } }, 400, /ADMIN_AUTHORIZATION_TOKEN/],
    ["token_secret naming the client token", "POST", "/replication/configs", { body: withSource({ type: "libsql", url: "https://db.example.com", token_secret: "CLIENT_AUTHORIZATION_TOKEN" }) }, 400, /CLIENT_AUTHORIZATION_TOKEN/],
    ["token_secret naming the admin token (starbase)", "POST", "/replication/configs", { body: withSource({ type: "starbase", url: "https://sb.example.com", token_secret: "ADMIN_AUTHORIZATION_TOKEN" }) }, 400, /ADMIN_AUTHORIZATION_TOKEN/],
    ["d1 token_secret naming the admin token", "POST", "/replication/configs", { body: withSource({ type: "d1", account_id: "a", database_id: "d", token_secret: "ADMIN_AUTHORIZATION_TOKEN" }) }, 400, /ADMIN_AUTHORIZATION_TOKEN/],
    ["hyperdrive naming the admin token", "POST", "/replication/configs", { body: withSource({ type: "postgres", hyperdrive: "ADMIN_AUTHORIZATION_TOKEN" }) }, 400, /hyperdrive/],
    ["url_secret naming a token in lower case", "POST", "/replication/configs", { body: withSource({ type: "postgres", url_secret: "admin_authorization_token" }) }, 400, /url_secret/],
    ["url_secret with a trailing space", "POST", "/replication/configs", { body: withSource({ type: "postgres", url_secret: "ADMIN_AUTHORIZATION_TOKEN " }) }, 400, /url_secret/],
    ["source with both hyperdrive and url_secret", "POST", "/replication/configs", { body: withSource({ type: "postgres", hyperdrive: "HYPERDRIVE", url_secret: "PG_URL" }) }, 400],
    ["source with a password", "POST", "/replication/configs", { body: withSource({ type: "postgres", url: "postgres://u:p@h/db" }) }, 400, /url/],
    ["libsql url with credentials", "POST", "/replication/configs", { body: withSource({ type: "libsql", url: "https://user:pw@db.example.com" }) }, 400, /credentials|url/],
    ["libsql url not http", "POST", "/replication/configs", { body: withSource({ type: "libsql", url: "file:///etc/passwd" }) }, 400, /url/],

    // --- every write through /query, disguised or not, on both routes and with both tokens
    ["INSERT DEFAULT VALUES", "POST", "/query", q("INSERT INTO good DEFAULT VALUES"), 400],
    ["INSERT OR REPLACE", "POST", "/query/raw", q("INSERT OR REPLACE INTO good (id, v) VALUES (1, 'x')"), 400],
    ["upsert", "POST", "/query", q("INSERT INTO good (id, v) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET v = 'y'"), 400],
    ["UPDATE ... FROM", "POST", "/query", q("UPDATE good SET v = o.v FROM good AS o WHERE o.id = good.id"), 400],
    ["UPDATE OR REPLACE", "POST", "/query", { token: "client", ...q("UPDATE OR REPLACE good SET id = 1") }, 400],
    ["DELETE ... RETURNING", "POST", "/query/raw", q("DELETE FROM good RETURNING *"), 400],
    ["write in a CTE", "POST", "/query", q("WITH d AS (DELETE FROM good RETURNING *) SELECT * FROM d"), 400],
    ["write in a subquery", "POST", "/query", q("SELECT * FROM (DELETE FROM good RETURNING id)"), 400],
    ["write in mixed case with comments", "POST", "/query", q("dElEtE/**/fRoM/* x */good"), 400],
    ["write after a semicolon in a comment", "POST", "/query", q("SELECT 1 /* ; */; DELETE FROM good"), 400],
    ["write after a line comment", "POST", "/query", q("SELECT 1 -- ;\n; DELETE FROM good"), 400],
    ["write after END", "POST", "/query", q("SELECT 1 END; DELETE FROM good"), 400],
    ["write behind a form feed", "POST", "/query", q("SELECT 1;\fDROP TABLE good"), 400],
    ["write with a NUL before it", "POST", "/query", q("SELECT 1;\u0000DELETE FROM good"), 400],
    ["EXPLAIN DELETE", "POST", "/query", q("EXPLAIN DELETE FROM good"), 400],
    ["EXPLAIN QUERY PLAN INSERT", "POST", "/query/raw", q("EXPLAIN QUERY PLAN INSERT INTO good (id) VALUES (1)"), 400],
    ["DROP VIEW", "POST", "/query", q("DROP VIEW IF EXISTS v"), 400],
    ["DROP INDEX", "POST", "/query", q("DROP INDEX IF EXISTS i"), 400],
    ["DROP TRIGGER", "POST", "/query", q("DROP TRIGGER IF EXISTS t"), 400],
    ["CREATE VIEW", "POST", "/query", q("CREATE VIEW v AS SELECT * FROM good"), 400],
    ["CREATE TEMP TABLE", "POST", "/query", q("CREATE TEMP TABLE x (a)"), 400],
    ["CREATE VIRTUAL TABLE", "POST", "/query", q("CREATE VIRTUAL TABLE f USING fts5(a)"), 400],
    ["ALTER TABLE RENAME", "POST", "/query", q("ALTER TABLE good RENAME TO bad"), 400],
    ["ALTER TABLE DROP COLUMN", "POST", "/query", q("ALTER TABLE good DROP COLUMN v"), 400],
    ["REINDEX", "POST", "/query", q("REINDEX"), 400],
    ["ANALYZE", "POST", "/query", q("ANALYZE"), 400],
    ["VACUUM INTO", "POST", "/query", q("VACUUM INTO '/tmp/x.db'"), 400],
    ["SAVEPOINT", "POST", "/query", q("SAVEPOINT s"), 400],
    ["RELEASE", "POST", "/query", q("RELEASE s"), 400],
    ["COMMIT", "POST", "/query", q("COMMIT"), 400],
    ["ROLLBACK", "POST", "/query", q("ROLLBACK"), 400],
    ["END", "POST", "/query", q("END"), 400],
    ["ATTACH a memory database", "POST", "/query", q("ATTACH ':memory:' AS m"), 400],
    ["PRAGMA writable_schema", "POST", "/query", q("PRAGMA writable_schema = 1"), 400],
    ["PRAGMA schema-qualified", "POST", "/query", q("PRAGMA main.journal_mode = OFF"), 400],
    ["PRAGMA read as a client", "POST", "/query", { token: "client", ...q("PRAGMA table_info(good)") }, 400],
    ["load_extension", "POST", "/query", q("SELECT load_extension('/tmp/x.so')"), 400],
    ["writefile", "POST", "/query", q("SELECT writefile('/tmp/x', 'y')"), 400],
    ["readfile", "POST", "/query", q("SELECT readfile('/etc/passwd')"), 400],
    ["fts3_tokenizer", "POST", "/query", q("SELECT fts3_tokenizer('simple', x'00')"), 400],
    ["client reads sqlite_schema", "POST", "/query", { token: "client", ...q("SELECT sql FROM sqlite_schema") }, 403],
    ["client reads pragma_table_list", "POST", "/query/raw", { token: "client", ...q("SELECT * FROM pragma_table_list") }, 403],
    ["client reads dbstat", "POST", "/query", { token: "client", ...q("SELECT name FROM dbstat") }, 403],
    ["client reads temp.", "POST", "/query", { token: "client", ...q("SELECT * FROM temp.good") }, 403],
    ["client reads a staging table", "POST", "/query", { token: "client", ...q(`SELECT * FROM tmp_stage_${id}`) }, 403],
    ["client reads _cf_ tables", "POST", "/query", { token: "client", ...q("SELECT * FROM _cf_KV") }, 403],
    ["client reads bookkeeping quoted", "POST", "/query", { token: "client", ...q('SELECT * FROM "TMP_REPLICATION_CONFIGS"') }, 403],
    ["bookkeeping via TABLE (not SQLite syntax)", "POST", "/query", { token: "client", ...q("TABLE tmp_replication_configs") }, 400],
  ];
}

test("at least 40 hostile requests on every route: right 4xx, envelope, nothing changed", async () => {
  const before = await snapshot();
  const all = cases();
  assert.ok(all.length >= 40, `${all.length} cases`);
  const failures = [];
  for (const [name, method, path, opts, status, pattern] of all) {
    let r;
    try {
      if (opts.raw) {
        r = await raw(method, path, { headers: bearer(ADMIN) });
      } else {
        r = await w.api(method, path, opts);
      }
    } catch (e) {
      failures.push(`${name}: request failed: ${e}`);
      continue;
    }
    try {
      if (method === "OPTIONS" || method === "HEAD") {
        assert.equal(r.status, status);
      } else {
        assertEnvelope(r, status, name);
        if (pattern) assert.match(r.json.error, pattern);
      }
    } catch (e) {
      failures.push(`${name} (${method} ${path}): expected ${status}${pattern ? ` matching ${pattern}` : ""}, got ${r.status} ${r.text.slice(0, 300)}`);
    }
  }
  const after = await snapshot();
  assert.deepEqual(failures, [], `${failures.length} of ${all.length} hostile requests were answered wrongly`);
  assert.deepEqual(after, before, "hostile requests changed nothing");
});

test("bodies past 1 MiB are 413 however they arrive; nothing changed", async (t) => {
  const before = await snapshot();
  const big = JSON.stringify({ sql: "SELECT 1", pad: "x".repeat(1024 * 1024) });
  // Streamed without a Content-Length: the limit holds on the bytes, not on the header.
  const chunked = await raw("POST", "/query", {
    headers: { ...bearer(ADMIN), ...json, "Transfer-Encoding": "chunked" },
    chunks: [big.slice(0, 500_000), big.slice(500_000)],
  });
  assertEnvelope(chunked, 413, "chunked body over 1 MiB");
  // Hundreds of megabytes streamed without a length are refused without being held in
  // memory. workerd's resident memory grows by what its garbage collector lets pile up
  // (~100 MB, whatever the upload's size); buffered whole, 300 MB made it grow by ~900 MB, far
  // past the 128 MB a Worker isolate may use.
  const [pid] = ownWorkerdPids();
  const rss = () => Number(readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/)[1]) / 1024;
  const base = rss();
  let peak = base;
  const sampler = setInterval(() => (peak = Math.max(peak, rss())), 5);
  const mb = Buffer.alloc(1 << 20, 0x20);
  let huge;
  try {
    huge = await raw("POST", "/query", {
      headers: { ...bearer(CLIENT), ...json, "Transfer-Encoding": "chunked" },
      chunks: Array.from({ length: 400 }, () => mb),
    });
  } finally {
    clearInterval(sampler);
  }
  assertEnvelope(huge, 413, "a 400 MB chunked upload");
  t.diagnostic(`workerd's resident memory: ${Math.round(base)} MB before, ${Math.round(peak)} MB at most during a 400 MB upload`);
  assert.ok(peak - base < 250, `workerd grew by ${Math.round(peak - base)} MB while refusing a 400 MB upload`);
  // A Content-Length over the limit: refused before the body is read.
  const declared = await w.api("PUT", `/replication/configs/${good.id}`, { rawBody: Buffer.alloc(2 * 1024 * 1024, 0x20) });
  assertEnvelope(declared, 413, "declared length over 1 MiB");
  // Over the limit before the token is even checked: no token, and still no 5xx.
  const anon = await w.api("POST", "/replication/configs", { token: null, rawBody: big, headers: json });
  assert.ok([401, 413].includes(anon.status), `anonymous oversized body: ${anon.status}`);
  assertEnvelope(anon, anon.status);
  // Thousands of params in a large but legal body.
  const params = Array.from({ length: 50_000 }, (_, i) => i);
  const many = await w.api("POST", "/query", { body: { sql: "SELECT ?", params } });
  assert.ok(many.status === 200 || many.status === 400, `many params: ${many.status} ${many.text.slice(0, 200)}`);
  assertEnvelope(many, many.status);
  assert.deepEqual(await snapshot(), before);
});

test("the valid requests behind the hostile ones still work", async () => {
  // A config whose target needs quotes can be updated, and GET's answer can be PUT back.
  const put = await w.api("PUT", `/replication/configs/${quoted.id}`, { body: { interval_seconds: 120 } });
  assertEnvelope(put, 200, "PUT interval on a config whose target needs quotes");
  const got = await w.api("GET", `/replication/configs/${quoted.id}`);
  assertEnvelope(got, 200);
  const { id, created_at, updated_at, ...body } = got.json.result;
  assertEnvelope(await w.api("PUT", `/replication/configs/${quoted.id}`, { body }), 200, "PUT back what GET returned");
  // Reads with quotes, comments and semicolons inside strings are reads.
  const r = await w.query("SELECT ';' AS a, '--' AS b, '/*' AS c, \"v\" FROM \"good\" /* ; */ WHERE id = ? -- ;", [1]);
  assert.deepEqual(r, [{ a: ";", b: "--", c: "/*", v: "g1" }]);
  const c = await w.query("SELECT count(*) AS n FROM \"Odd Name\"", [], "client");
  assert.deepEqual(c, [{ n: 1 }]);
  assertEnvelope(await w.api("GET", "/health", { token: null }), 200);
});
