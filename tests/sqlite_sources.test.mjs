// SQLite-family sources end to end:
// - d1 through a D1 binding of the worker: a local D1 database (Miniflare) seeded here with
//   values JavaScript cannot hold (64-bit integers), mixed storage classes, blobs, infinities;
//   full and incremental syncs, a table without a primary key (keyed by rowid), errors.
// - starbase: a second edge-replica instance (A) replicates a PostgreSQL table; instance B
//   replicates A's copy through A's POST /query/raw, with A's admin token, with its client
//   token (key learnt from pragma_table_info, or given), and with a wrong token.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Miniflare } from "miniflare";
import { startWorker, pgDatabase, assertEnvelope, ADMIN, CLIENT, BUILD_JS } from "./harness.mjs";

/** The built worker with a local D1 database bound as SRC_DB (the harness has no D1 option). */
async function startWithD1() {
  const dir = mkdtempSync(path.join(tmpdir(), "edge-replica-d1-"));
  const mf = new Miniflare({
    modules: true,
    scriptPath: BUILD_JS,
    modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"], fallthrough: true }],
    compatibilityDate: "2025-09-01",
    durableObjects: { REPLICA: { className: "Replica", useSQLite: true } },
    d1Databases: { SRC_DB: "src-db" },
    bindings: { ADMIN_AUTHORIZATION_TOKEN: ADMIN, CLIENT_AUTHORIZATION_TOKEN: CLIENT },
    durableObjectsPersist: dir,
    d1Persist: dir,
    host: "127.0.0.1",
    port: 0,
  });
  const url = (await mf.ready).toString().replace(/\/$/, "");
  const w = {
    url,
    d1: await mf.getD1Database("SRC_DB"),
    async api(method, urlPath, { token = ADMIN, body } = {}) {
      const headers = { Authorization: `Bearer ${token}` };
      if (body !== undefined) headers["Content-Type"] = "application/json";
      const res = await fetch(url + urlPath, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      const text = await res.text();
      let json;
      try {
        json = JSON.parse(text);
      } catch {}
      return { status: res.status, json, text, headers: res.headers };
    },
    async query(sql, params = []) {
      const r = await this.api("POST", "/query", { body: { sql, params } });
      assert.equal(r.status, 200, `${sql} -> ${r.text}`);
      return r.json.result;
    },
    async createConfig(body) {
      const r = await this.api("POST", "/replication/configs", { body });
      assert.equal(r.status, 201, `create -> ${r.text}`);
      return r.json.result;
    },
    async sync(id, status = 200) {
      const r = await this.api("POST", `/replication/sync/${id}`);
      assert.equal(r.status, status, `sync ${id} -> ${r.text}`);
      return r.json;
    },
    async dispose() {
      await mf.dispose();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return w;
}

// Rows formatted the same way on both sides: integers and blobs as text (exact), reals as
// JSON numbers (a double survives JSON exactly; infinities, which JSON lacks, as text), and
// every storage class named.
const EXACT = (cols) =>
  cols
    .map(
      (c) => `CASE typeof("${c}") WHEN 'integer' THEN CAST("${c}" AS TEXT) WHEN 'blob' THEN hex("${c}")
                WHEN 'real' THEN CASE WHEN abs("${c}") = 9e999 THEN CAST("${c}" AS TEXT) ELSE "${c}" END ELSE "${c}" END AS "${c}",
              typeof("${c}") AS "t_${c}"`,
    )
    .join(", ");

const D1_COLUMNS = ["id", "big", "r", "t", "b", "anyv", "n", "updated_at"];

let d1w;

async function d1Rows(table, cols = D1_COLUMNS, order = "id") {
  const r = await d1w.d1.prepare(`SELECT ${EXACT(cols)} FROM "${table}" ORDER BY ${order}`).all();
  return r.results;
}

async function replicaRows(w, table, cols, order = "id") {
  const out = [];
  for (let off = 0; ; off += 1000) {
    const rows = await w.query(`SELECT ${EXACT(cols)} FROM "${table}" ORDER BY ${order} LIMIT 1000 OFFSET ?`, [off]);
    out.push(...rows);
    if (rows.length < 1000) return out;
  }
}

describeD1();

function describeD1() {
  before(async () => {
    d1w = await startWithD1();
    const db = d1w.d1;
    // 2 000 generated rows plus hand-made ones with values JavaScript numbers cannot hold.
    await db.batch([
      db.prepare(`CREATE TABLE items (id INTEGER PRIMARY KEY, big INTEGER NOT NULL, r REAL, t TEXT, b BLOB, anyv,
                                      n NUMERIC, updated_at INTEGER NOT NULL)`),
      db.prepare(`WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 2000)
        INSERT INTO items SELECT
          CASE WHEN i % 10 = 0 THEN 9223372036854775807 - i WHEN i % 10 = 5 THEN -i ELSE i END,
          CASE i % 4 WHEN 0 THEN 9007199254740993 + i WHEN 1 THEN -9223372036854775808 + i WHEN 2 THEN i ELSE 0 END,
          CASE WHEN i % 13 = 0 THEN NULL ELSE i / 7.0 END,
          CASE i % 6 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN 'héllo 😀 ' || i WHEN 3 THEN 'i' || i WHEN 4 THEN 'line' || char(10) || i
                     ELSE 'quote '' " \\ ' || i END,
          CASE WHEN i % 9 = 0 THEN NULL WHEN i % 9 = 1 THEN X'' ELSE randomblob(i % 5) END,
          CASE i % 5 WHEN 0 THEN i WHEN 1 THEN i + 0.5 WHEN 2 THEN 'text ' || i WHEN 3 THEN X'00FF' ELSE NULL END,
          CASE WHEN i % 3 = 0 THEN '12.50' ELSE i END,
          1000 + i
        FROM s`),
      db.prepare(`INSERT INTO items VALUES
          (3000000000000000001, 9223372036854775807, 9e999, 'inf', X'DEADBEEF', 9223372036854775807, 'abc', 5000),
          (3000000000000000002, -9223372036854775808, -9e999, 'minus inf', NULL, -9e999, NULL, 5000),
          (3000000000000000003, 1, 5.0, 'five', NULL, 5.0, 5.0, 5001)`),
      db.prepare(`CREATE TABLE notes (body TEXT, n INTEGER)`),
      db.prepare(`INSERT INTO notes VALUES ('a', 1), ('b', 9007199254740993), ('c', NULL)`),
    ]);
  });

  after(async () => {
    await d1w?.dispose();
  });

  test("d1 binding: a full copy is exact, storage classes and 64-bit integers included", async () => {
    const cfg = await d1w.createConfig({ source: { type: "d1", binding: "SRC_DB" }, source_table: "items", interval_seconds: 3600, enabled: false, batch_size: 333 });
    const run = (await d1w.sync(cfg.id)).result;
    assert.equal(run.status, "ok", JSON.stringify(run));
    assert.equal(run.rows_upserted, 2003);
    assert.ok(run.batches >= 7);
    const want = await d1Rows("items");
    const got = await replicaRows(d1w, "items", D1_COLUMNS);
    assert.equal(got.length, 2003);
    assert.deepEqual(got, want);
    // The replica declares the source's affinities (NUMERIC as INTEGER, none as none).
    const ddl = (await d1w.query("SELECT sql FROM sqlite_master WHERE name = 'items'"))[0].sql;
    assert.match(ddl, /"id" INTEGER, "big" INTEGER, "r" REAL, "t" TEXT, "b" BLOB, "anyv", "n" INTEGER/);
    const special = await d1w.query(
      `SELECT CAST(big AS TEXT) AS big, r < -1e308 AS neg, typeof(r) AS tr, typeof(anyv) AS ta FROM items WHERE id = 3000000000000000002`,
    );
    assert.deepEqual(special, [{ big: "-9223372036854775808", neg: 1, tr: "real", ta: "real" }]);
  });

  test("d1 binding: incremental by an integer cursor picks up new and changed rows", async () => {
    const cfg = await d1w.createConfig({
      source: { type: "d1", binding: "SRC_DB" },
      source_table: "items",
      target_table: "items_inc",
      cursor_column: "updated_at",
      interval_seconds: 3600, enabled: false,
      batch_size: 500,
    });
    let run = (await d1w.sync(cfg.id)).result;
    assert.equal(run.status, "ok");
    assert.equal(run.rows_upserted, 2003);
    assert.equal(run.cursor, "5001");
    await d1w.d1.batch([
      d1w.d1.prepare(`UPDATE items SET t = 'changed', big = 9223372036854775806, updated_at = 6000 WHERE id IN (1, 2, 3)`),
      d1w.d1.prepare(`INSERT INTO items VALUES (3000000000000000004, 42, 0.25, 'new', X'01', 'x', 1, 6000)`),
    ]);
    run = (await d1w.sync(cfg.id)).result;
    assert.equal(run.status, "ok");
    assert.equal(run.rows_upserted, 4);
    assert.equal(run.cursor, "6000");
    assert.deepEqual(await replicaRows(d1w, "items_inc", D1_COLUMNS), await d1Rows("items"));
  });

  test("d1 binding: a table without a primary key is keyed by its rowid", async () => {
    const cfg = await d1w.createConfig({ source: { type: "d1", binding: "SRC_DB" }, source_table: "notes", interval_seconds: 3600, enabled: false });
    const run = (await d1w.sync(cfg.id)).result;
    assert.equal(run.status, "ok", JSON.stringify(run));
    const rows = await d1w.query(`SELECT rowid AS k, body, CAST(n AS TEXT) AS n FROM notes ORDER BY rowid`);
    assert.deepEqual(rows, [
      { k: 1, body: "a", n: "1" },
      { k: 2, body: "b", n: "9007199254740993" },
      { k: 3, body: "c", n: null },
    ]);
  });

  test("d1 binding: errors name the source and change nothing", async () => {
    const bad = await d1w.api("POST", "/replication/configs", {
      body: { source: { type: "d1", binding: "NOPE" }, source_table: "items", interval_seconds: 60 },
    });
    assertEnvelope(bad, 400);
    assert.match(bad.json.error, /source\.binding/);
    const cfg = await d1w.createConfig({ source: { type: "d1", binding: "SRC_DB" }, source_table: "missing", interval_seconds: 3600, enabled: false });
    const r = await d1w.sync(cfg.id, 502);
    assert.equal(r.result.status, "error");
    assert.match(r.error, /^source d1 via binding SRC_DB: table "missing" does not exist/);
    const t = await d1w.query(`SELECT count(*) AS n FROM sqlite_master WHERE name = 'missing'`);
    assert.deepEqual(t, [{ n: 0 }]);
  });
}

// ---------------------------------------------------------------------------------------------
// starbase: edge-replica B reads edge-replica A through /query/raw.

let pgdb;
let a;
let b;
const PG_COLUMNS = ["id", "big", "name", "ratio", "price", "payload", "updated_at"];

async function pgSeed() {
  await pgdb.query(`CREATE TABLE items (id bigint PRIMARY KEY, big bigint, name text, ratio double precision, price numeric(20,3),
                                         payload bytea, updated_at timestamptz NOT NULL)`);
  await pgdb.query(`INSERT INTO items SELECT
      CASE WHEN i % 10 = 0 THEN 9223372036854775807 - i ELSE i END,
      CASE WHEN i % 3 = 0 THEN -9223372036854775808 + i WHEN i % 3 = 1 THEN 9007199254740993 + i ELSE NULL END,
      CASE i % 4 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN 'x😀 ' || i ELSE 'i' || i END,
      CASE WHEN i % 7 = 0 THEN NULL ELSE i / 3.0::float8 END,
      CASE WHEN i % 5 = 0 THEN NULL ELSE i * 1.125 END,
      CASE WHEN i % 6 = 0 THEN NULL ELSE decode(md5(i::text), 'hex') END,
      timestamptz '2026-01-01 00:00:00+00' + i * interval '1 second'
    FROM generate_series(1, 1500) AS i`);
}

async function aRows(w, table) {
  return replicaRows(w, table, PG_COLUMNS);
}

test("starbase: setup (instance A replicates PostgreSQL)", async () => {
  pgdb = await pgDatabase();
  await pgSeed();
  a = await startWorker({ vars: { PG_URL: pgdb.url } });
  const cfg = await a.createConfig({ source: { type: "postgres", url_secret: "PG_URL" }, source_table: "items", interval_seconds: 3600, enabled: false });
  await a.syncUntilOk(cfg.id);
  b = await startWorker({ vars: { A_ADMIN: ADMIN, A_CLIENT: CLIENT, A_WRONG: "not-the-token-7d1e" } });
});

after(async () => {
  await b?.dispose();
  await a?.dispose();
  await pgdb?.close();
});

test("starbase: B copies A's table exactly with A's admin token, then incrementally", async () => {
  const cfg = await b.createConfig({
    source: { type: "starbase", url: a.url, token_secret: "A_ADMIN" },
    source_table: "items",
    cursor_column: "updated_at",
    interval_seconds: 3600, enabled: false,
    batch_size: 400,
  });
  const runs = await b.syncUntilOk(cfg.id);
  assert.equal(runs.reduce((n, r) => n + r.rows_upserted, 0), 1500);
  assert.deepEqual(await aRows(b, "items"), await aRows(a, "items"));
  // B declares what A declares (A's own affinities, found through pragma_table_info).
  const ddl = (await b.query("SELECT sql FROM sqlite_master WHERE name = 'items'"))[0].sql;
  assert.match(ddl, /"id" INTEGER, "big" INTEGER, "name" TEXT, "ratio" REAL, "price" TEXT, "payload" BLOB, "updated_at" TEXT/);

  await pgdb.query(`UPDATE items SET name = 'changed', updated_at = '2030-01-01Z' WHERE id <= 3`);
  await pgdb.query(`INSERT INTO items VALUES (9223372036854775806, -1, 'new', 0.1, 1.5, '\\x00ff', '2030-01-02Z')`);
  const acfg = (await a.api("GET", "/replication/configs")).json.result[0];
  await a.syncUntilOk(acfg.id);
  const run = await b.sync(cfg.id);
  assert.equal(run.status, "ok");
  assert.equal(run.rows_upserted, 4);
  assert.equal(run.cursor, "2030-01-02T00:00:00.000000Z");
  assert.deepEqual(await aRows(b, "items"), await aRows(a, "items"));
});

test("starbase: with A's client token the key is learnt or given, and values stay exact", async () => {
  const noKey = await b.createConfig({
    source: { type: "starbase", url: a.url, token_secret: "A_CLIENT" },
    source_table: "items",
    target_table: "items_client_nokey",
    interval_seconds: 3600, enabled: false,
  });
  // A answers pragma_table_info for its replicated tables to the client token too.
  await b.syncUntilOk(noKey.id);
  assert.deepEqual(await aRows(b, "items_client_nokey"), await aRows(a, "items"));

  const cfg = await b.createConfig({
    source: { type: "starbase", url: a.url, token_secret: "A_CLIENT" },
    source_table: "items",
    target_table: "items_client",
    primary_key: ["id"],
    interval_seconds: 3600, enabled: false,
  });
  await b.syncUntilOk(cfg.id);
  assert.deepEqual(await aRows(b, "items_client"), await aRows(a, "items"));
});

test("starbase: a wrong token is a clear 502 that does not show the token", async () => {
  const cfg = await b.createConfig({
    source: { type: "starbase", url: a.url, token_secret: "A_WRONG" },
    source_table: "items",
    target_table: "items_wrong",
    interval_seconds: 3600, enabled: false,
  });
  const r = await b.api("POST", `/replication/sync/${cfg.id}`);
  assertEnvelope(r, 502);
  assert.ok(r.json.error.startsWith(`source starbase at ${a.url}: HTTP 401`), r.json.error);
  assert.ok(!r.json.error.includes("not-the-token-7d1e"), r.json.error);
  const missing = await b.api("POST", "/replication/configs", {
    body: { source: { type: "starbase", url: a.url, token_secret: "NOT_SET" }, source_table: "items", target_table: "x", interval_seconds: 60 },
  });
  assertEnvelope(missing, 400);
  assert.match(missing.json.error, /token_secret/);
});
