// The instance default source (configs without `source`), configured with StarbaseDB's own
// variables: EXTERNAL_DB_TYPE=postgresql with EXTERNAL_DB_HOST/PORT/USER/PASS/DATABASE and
// EXTERNAL_DB_DEFAULT_SCHEMA against a fresh local PostgreSQL database; EXTERNAL_DB_TYPE=sqlite
// with EXTERNAL_DB_STARBASEDB_URI/TOKEN against a second edge-replica; and the libSQL
// precedence of EXTERNAL_DB_TURSO_URI.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, pgDatabase, assertEnvelope, ADMIN } from "./harness.mjs";

let db;
let pgw;
let a;
let sq;

after(async () => {
  await sq?.dispose();
  await a?.dispose();
  await pgw?.dispose();
  await db?.close();
});

test("postgresql via EXTERNAL_DB_*: unqualified tables resolve in EXTERNAL_DB_DEFAULT_SCHEMA", async () => {
  db = await pgDatabase();
  await db.query(`CREATE SCHEMA "My App"`);
  await db.query(`CREATE TABLE "My App".items (id bigint PRIMARY KEY, v text)`);
  await db.query(`INSERT INTO "My App".items SELECT i, 'app ' || i FROM generate_series(1, 250) AS i`);
  await db.query(`INSERT INTO "My App".items VALUES (9223372036854775807, 'max')`);
  await db.query(`CREATE TABLE public.items (id bigint PRIMARY KEY, v text)`);
  await db.query(`INSERT INTO public.items VALUES (1, 'public one'), (2, 'public two')`);
  const u = new URL(db.url);
  pgw = await startWorker({
    vars: {
      EXTERNAL_DB_TYPE: "postgresql",
      EXTERNAL_DB_HOST: u.hostname,
      // wrangler.toml [vars] may hold the port as a number, as StarbaseDB's template does.
      EXTERNAL_DB_PORT: Number(u.port || 5432),
      EXTERNAL_DB_USER: decodeURIComponent(u.username || "postgres"),
      EXTERNAL_DB_PASS: decodeURIComponent(u.password || ""),
      EXTERNAL_DB_DATABASE: db.name,
      EXTERNAL_DB_DEFAULT_SCHEMA: "My App",
    },
  });
  const cfg = await pgw.createConfig({ source_table: "items", interval_seconds: 3600, enabled: false });
  assert.equal(cfg.source, null);
  const run = await pgw.sync(cfg.id);
  assert.equal(run.status, "ok", JSON.stringify(run));
  assert.equal(run.rows_upserted, 251);
  const rows = await pgw.query(`SELECT CAST(id AS TEXT) AS id, v FROM items WHERE id IN (1, 250, 9223372036854775807) ORDER BY id`);
  assert.deepEqual(rows, [
    { id: "1", v: "app 1" },
    { id: "250", v: "app 250" },
    { id: "9223372036854775807", v: "max" },
  ]);

  // A qualified name still reaches its own schema.
  const pub = await pgw.createConfig({ source_table: "public.items", target_table: "public_items", interval_seconds: 3600, enabled: false });
  assert.equal((await pgw.sync(pub.id)).rows_upserted, 2);
  assert.deepEqual(await pgw.query(`SELECT id, v FROM public_items ORDER BY id`), [
    { id: 1, v: "public one" },
    { id: 2, v: "public two" },
  ]);

  // Errors name the default source without its password.
  const missing = await pgw.createConfig({ source_table: "nope", interval_seconds: 3600, enabled: false });
  const r = await pgw.api("POST", `/replication/sync/${missing.id}`);
  assertEnvelope(r, 502);
  assert.match(r.json.error, /^source postgres via EXTERNAL_DB_\* settings \(127\.0\.0\.1:5432\/er_test_[0-9a-f]+\): table "nope" does not exist/);
});

test("sqlite via EXTERNAL_DB_STARBASEDB_URI/TOKEN: another edge-replica as the default source", async () => {
  a = await startWorker({ vars: { PG_URL: db.url } });
  const acfg = await a.createConfig({
    source: { type: "postgres", url_secret: "PG_URL" },
    source_table: '"My App".items',
    interval_seconds: 3600,
    enabled: false,
  });
  await a.syncUntilOk(acfg.id);
  sq = await startWorker({
    vars: {
      EXTERNAL_DB_TYPE: "sqlite",
      EXTERNAL_DB_STARBASEDB_URI: a.url,
      EXTERNAL_DB_STARBASEDB_TOKEN: ADMIN,
      // StarbaseDB's default for SQLite origins: the main database.
      EXTERNAL_DB_DEFAULT_SCHEMA: "main",
    },
  });
  const cfg = await sq.createConfig({ source_table: "items", cursor_column: "id", interval_seconds: 3600, enabled: false });
  assert.equal(cfg.mode, "incremental");
  const run = await sq.sync(cfg.id);
  assert.equal(run.status, "ok", JSON.stringify(run));
  assert.equal(run.rows_upserted, 251);
  assert.equal(run.cursor, "9223372036854775807");
  const q = `SELECT CAST(id AS TEXT) AS id, typeof(id) AS t, v FROM items ORDER BY id`;
  assert.deepEqual(await sq.query(q), await a.query(q));

  const missing = await sq.createConfig({ source_table: "nope", interval_seconds: 3600, enabled: false });
  const r = await sq.api("POST", `/replication/sync/${missing.id}`);
  assertEnvelope(r, 502);
  assert.ok(
    r.json.error.startsWith(`source starbase at ${a.url} (instance default, EXTERNAL_DB_* settings): table "main"."nope" does not exist`),
    r.json.error,
  );
  assert.ok(!r.json.error.includes(ADMIN));
});

test("sqlite: EXTERNAL_DB_TURSO_URI wins over the others, as in StarbaseDB", async () => {
  const w = await startWorker({
    vars: {
      EXTERNAL_DB_TYPE: "sqlite",
      // Nothing listens on port 1: the run must fail clearly, naming the libSQL default.
      EXTERNAL_DB_TURSO_URI: "libsql://127.0.0.1:1?tls=0",
      EXTERNAL_DB_TURSO_TOKEN: "turso-token-4b9f",
      EXTERNAL_DB_STARBASEDB_URI: "http://127.0.0.1:1",
      EXTERNAL_DB_STARBASEDB_TOKEN: "x",
    },
  });
  try {
    const cfg = await w.createConfig({ source_table: "items", interval_seconds: 3600, enabled: false });
    const r = await w.api("POST", `/replication/sync/${cfg.id}`);
    assertEnvelope(r, 502);
    assert.ok(
      r.json.error.startsWith("source libsql at http://127.0.0.1:1 (instance default, EXTERNAL_DB_* settings): request to http://127.0.0.1:1/v3/pipeline failed"),
      r.json.error,
    );
    assert.ok(!r.json.error.includes("turso-token-4b9f"));
  } finally {
    await w.dispose();
  }
});
