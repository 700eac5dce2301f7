// mode full: a few thousand mixed rows copied exactly, a refresh that deletes and
// updates, schema drift, a table without a primary key, and a Hyperdrive source.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startWorker,
  pgDatabase,
  assertEnvelope,
  pgTimestamptzText,
  pgByteaHex,
} from "./harness.mjs";

let db;
let w;

const ROWS = 3000;

before(async () => {
  db = await pgDatabase();
  await db.query(`
    CREATE TABLE items (
      id bigint PRIMARY KEY,
      name text,
      qty integer,
      price numeric(14,3),
      ratio double precision,
      active boolean,
      created_at timestamptz,
      payload bytea
    )`);
  await db.query(
    `INSERT INTO items
     SELECT
       CASE WHEN i % 10 = 0 THEN 9223372036854775807 - i
            WHEN i % 10 = 5 THEN -i
            ELSE i END,
       CASE i % 7
         WHEN 0 THEN NULL
         WHEN 1 THEN ''
         WHEN 2 THEN 'héllo wörld ' || i
         WHEN 3 THEN '😀 emoji 🎉 ' || i || ' 日本語'
         WHEN 4 THEN 'line' || chr(10) || 'break' || chr(9) || i
         WHEN 5 THEN 'quotes '' " \\ %' || i
         ELSE 'plain ' || i END,
       CASE WHEN i % 13 = 0 THEN NULL ELSE (i % 1000) - 500 END,
       CASE WHEN i % 17 = 0 THEN NULL ELSE round(i * 1.371, 3) END,
       CASE WHEN i % 19 = 0 THEN NULL ELSE i / 7.0::float8 END,
       CASE WHEN i % 11 = 0 THEN NULL ELSE i % 2 = 0 END,
       CASE WHEN i % 23 = 0 THEN NULL
            ELSE timestamptz '2020-01-01 00:00:00+00' + i * interval '1 hour 1.123457 second' END,
       CASE WHEN i % 29 = 0 THEN NULL
            WHEN i % 31 = 0 THEN ''::bytea
            WHEN i % 9 = 0 THEN '\\x000100ff'::bytea
            ELSE decode(md5(i::text), 'hex') END
     FROM generate_series(1, $1::int) AS i`,
    [ROWS],
  );
  w = await startWorker({
    vars: {
      PG_URL: db.url,
      // nothing listens on port 1
      DOWN_PG_URL: "postgres://postgres:s3cretpw@127.0.0.1:1/nowhere?sslmode=disable",
      TLS_PG_URL: db.url.replace("sslmode=disable", "sslmode=require"),
    },
    hyperdrives: { HYPERDRIVE: db.url },
  });
});

after(async () => {
  await w?.dispose();
  await db?.close();
});

const COLUMNS = ["id", "name", "qty", "price", "ratio", "active", "created_at", "payload"];

/** Source rows formatted the way the replica stores them. */
async function sourceRows(table = "items", extra = []) {
  const res = await db.query(`
    SELECT id::text AS id, name, qty::text AS qty, price::text AS price, ratio::text AS ratio,
           CASE WHEN active THEN 1 WHEN NOT active THEN 0 END AS active,
           ${pgTimestamptzText("created_at")} AS created_at,
           ${pgByteaHex("payload")} AS payload
           ${extra.map((c) => `, ${c}`).join("")}
    FROM ${table} ORDER BY id`);
  return res.rows.map((r) => ({ ...r, ratio: r.ratio === null ? null : Number(r.ratio) }));
}

/** Replica rows, read in pages through POST /query. */
async function replicaRows(table = "items", extra = []) {
  const out = [];
  for (let offset = 0; ; offset += 1000) {
    const rows = await w.query(
      `SELECT CAST(id AS TEXT) AS id, typeof(id) AS t_id, name, typeof(name) AS t_name,
              CAST(qty AS TEXT) AS qty, typeof(qty) AS t_qty,
              price, typeof(price) AS t_price, ratio, typeof(ratio) AS t_ratio,
              active, typeof(active) AS t_active, created_at, typeof(created_at) AS t_created_at,
              CASE WHEN payload IS NULL THEN NULL ELSE hex(payload) END AS payload, typeof(payload) AS t_payload
              ${extra.map((c) => `, ${c}`).join("")}
       FROM ${table} ORDER BY id LIMIT 1000 OFFSET ?`,
      [offset],
    );
    out.push(...rows);
    if (rows.length < 1000) return out;
  }
}

function checkTypes(r) {
  const expect = {
    t_id: "integer",
    t_name: r.name === null ? "null" : "text",
    t_qty: r.qty === null ? "null" : "integer",
    t_price: r.price === null ? "null" : "text",
    t_ratio: r.ratio === null ? "null" : "real",
    t_active: r.active === null ? "null" : "integer",
    t_created_at: r.created_at === null ? "null" : "text",
    t_payload: r.payload === null ? "null" : "blob",
  };
  for (const [k, v] of Object.entries(expect)) assert.equal(r[k], v, `${k} of row id=${r.id}: ${JSON.stringify(r)}`);
}

async function assertReplicaMatches(table = "items", extra = []) {
  const src = await sourceRows(table, extra.map((e) => e.source));
  const rep = await replicaRows(table, extra.map((e) => e.replica));
  assert.equal(rep.length, src.length, "row count");
  for (let i = 0; i < src.length; i++) {
    checkTypes(rep[i]);
    const got = Object.fromEntries([...COLUMNS, ...extra.map((e) => e.name)].map((c) => [c, rep[i][c]]));
    assert.deepEqual(got, src[i], `row ${i}`);
  }
  return src.length;
}

let itemsConfig;

test("create a full config: defaults are filled in", async () => {
  itemsConfig = await w.createConfig({
    source: { type: "postgres", url_secret: "PG_URL" },
    source_table: "items",
    mode: "full",
    interval_seconds: 3600,
    enabled: false,
  });
  const c = itemsConfig;
  assert.deepEqual(c.source, { type: "postgres", url_secret: "PG_URL" });
  assert.equal(c.source_table, "items");
  assert.equal(c.target_table, "items");
  assert.equal(c.mode, "full");
  assert.equal(c.columns, null);
  assert.equal(c.primary_key, null);
  assert.ok("cursor_column" in c, "cursor_column is listed");
  assert.equal(c.cursor_column, null);
  assert.equal(c.interval_seconds, 3600);
  assert.equal(c.enabled, false);
  assert.equal(c.batch_size, null);
  assert.equal(c.lookback_seconds, 0);
  assert.match(c.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
  assert.match(c.updated_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
  const got = await w.api("GET", `/replication/configs/${c.id}`);
  assertEnvelope(got, 200);
  assert.deepEqual(got.json.result, c);

  const st = await w.status(c.id);
  assert.equal(st.state, "disabled");
  assert.equal(st.last_success_at, null);
});

test("first full sync copies every row exactly", async () => {
  const run = await w.sync(itemsConfig.id);
  assert.equal(run.status, "ok", JSON.stringify(run));
  assert.equal(run.config_id, itemsConfig.id);
  assert.equal(typeof run.run_id, "number");
  assert.equal(run.mode, "full");
  assert.equal(run.rows_upserted, ROWS);
  assert.equal(run.rows_deleted, 0);
  assert.ok(run.batches >= 1, `batches ${run.batches}`);
  assert.equal(run.error, null);
  assert.equal(typeof run.duration_ms, "number");
  assert.match(run.started_at, /^\d{4}-\d\d-\d\dT/);
  assert.match(run.finished_at, /^\d{4}-\d\d-\d\dT/);

  assert.equal(await assertReplicaMatches(), ROWS);

  const st = await w.status(itemsConfig.id);
  assert.equal(st.config_id, itemsConfig.id);
  assert.equal(st.target_table, "items");
  assert.equal(st.target_row_count, ROWS);
  assert.equal(st.rows_synced, ROWS);
  assert.equal(st.total_rows_synced, ROWS);
  assert.equal(st.consecutive_failures, 0);
  assert.equal(st.last_error, null);
  assert.ok(st.last_success_at, "last_success_at is set");
  assert.ok(st.last_sync_at, "last_sync_at is set");
});

test("a full refresh removes rows deleted at the source and applies updates", async () => {
  const del = await db.query("DELETE FROM items WHERE id % 10 = 3 OR id = -5");
  assert.ok(del.rowCount > 250);
  const upd = await db.query(
    `UPDATE items SET name = 'updated ✓ ' || id, price = price + 1, active = NOT active,
            payload = '\\xdeadbeef'::bytea, created_at = created_at + interval '1 day'
     WHERE id % 10 = 4`,
  );
  assert.ok(upd.rowCount > 250);
  await db.query(`INSERT INTO items (id, name, qty) SELECT 100000 + i, 'new ' || i, i FROM generate_series(1, 50) i`);
  const count = Number((await db.query("SELECT count(*) FROM items")).rows[0].count);

  const run = await w.sync(itemsConfig.id);
  assert.equal(run.status, "ok", JSON.stringify(run));
  assert.equal(run.rows_deleted, del.rowCount);
  assert.equal(run.rows_upserted, count);

  assert.equal(await assertReplicaMatches(), count);
  const st = await w.status(itemsConfig.id);
  assert.equal(st.target_row_count, count);
  assert.equal(st.total_rows_synced, ROWS + count);
  assert.equal(st.state, "disabled"); // a disabled config stays disabled after a manual sync
});

test("schema drift: a column added at the source appears with values for existing rows", async () => {
  await db.query("ALTER TABLE items ADD COLUMN note text DEFAULT 'n/a'");
  await db.query("ALTER TABLE items ADD COLUMN score bigint");
  await db.query("UPDATE items SET note = 'note ' || id, score = id * 2 WHERE id % 3 = 0 AND abs(id) < 4000000000000000000");
  const run = await w.sync(itemsConfig.id);
  assert.equal(run.status, "ok", JSON.stringify(run));
  const count = await assertReplicaMatches("items", [
    { name: "note", source: "note", replica: "note" },
    { name: "score", source: "score::text AS score", replica: "CAST(score AS TEXT) AS score" },
  ]);
  const notes = await w.query("SELECT count(*) AS n FROM items WHERE note = 'n/a'");
  const srcNotes = await db.query("SELECT count(*)::int AS n FROM items WHERE note = 'n/a'");
  assert.equal(notes[0].n, srcNotes.rows[0].n);
  assert.ok(notes[0].n > 0);
  assert.equal((await w.status(itemsConfig.id)).target_row_count, count);
});

test("a table without a primary key fails clearly until primary_key is given", async () => {
  await db.query("CREATE TABLE nopk (a integer, b text)");
  await db.query("INSERT INTO nopk SELECT i, 'b' || i FROM generate_series(1, 100) i");
  const cfg = await w.createConfig({
    source: { type: "postgres", url_secret: "PG_URL" },
    source_table: "nopk",
    interval_seconds: 3600,
    enabled: false,
  });
  const r = await w.api("POST", `/replication/sync/${cfg.id}`);
  assert.ok(r.status >= 400 && r.status < 600, `sync of a table without a primary key: ${r.status} ${r.text}`);
  assertEnvelope(r, r.status);
  assert.match(r.json.error, /primary.?key/i);
  const st = await w.status(cfg.id);
  assert.equal(st.consecutive_failures, 1);
  assert.match(st.last_error ?? "", /primary.?key/i);

  const put = await w.api("PUT", `/replication/configs/${cfg.id}`, { body: { primary_key: ["a"] } });
  assertEnvelope(put, 200);
  assert.deepEqual(put.json.result.primary_key, ["a"]);
  const run = await w.sync(cfg.id);
  assert.equal(run.status, "ok");
  assert.equal(run.rows_upserted, 100);
  const rows = await w.query("SELECT a, b FROM nopk ORDER BY a");
  assert.equal(rows.length, 100);
  assert.deepEqual(rows[99], { a: 100, b: "b100" });
  const st2 = await w.status(cfg.id);
  assert.equal(st2.consecutive_failures, 0);
  assert.equal(st2.last_error, null);
});

test("full sync through a Hyperdrive binding", async () => {
  await db.query("CREATE TABLE hd_items (LIKE items INCLUDING ALL)");
  await db.query("INSERT INTO hd_items SELECT * FROM items WHERE id % 4 = 1");
  const expected = Number((await db.query("SELECT count(*) FROM hd_items")).rows[0].count);
  assert.ok(expected > 100);
  const cfg = await w.createConfig({
    source: { type: "postgres", hyperdrive: "HYPERDRIVE" },
    source_table: "public.hd_items",
    mode: "full",
    interval_seconds: 3600,
    enabled: false,
  });
  assert.equal(cfg.target_table, "hd_items");
  assert.deepEqual(cfg.source, { type: "postgres", hyperdrive: "HYPERDRIVE" });
  const run = await w.sync(cfg.id);
  assert.equal(run.status, "ok", JSON.stringify(run));
  assert.equal(run.rows_upserted, expected);
  await assertReplicaMatches("hd_items", [
    { name: "note", source: "note", replica: "note" },
    { name: "score", source: "score::text AS score", replica: "CAST(score AS TEXT) AS score" },
  ]);
});

test("a source that is down answers 502 with a run record and no secrets", async () => {
  const cfg = await w.createConfig({
    source: { type: "postgres", url_secret: "DOWN_PG_URL" },
    source_table: "items",
    target_table: "items_unreachable",
    interval_seconds: 3600,
    enabled: false,
  });
  const r = await w.api("POST", `/replication/sync/${cfg.id}`);
  assertEnvelope(r, 502, "sync of an unreachable source");
  assert.equal(r.json.result.status, "error");
  assert.equal(r.json.result.config_id, cfg.id);
  assert.equal(typeof r.json.error, "string");
  assert.equal(r.json.result.error, r.json.error);
  assert.doesNotMatch(r.text, /s3cretpw/, "the password does not leak");
  const st = await w.status(cfg.id);
  assert.equal(st.consecutive_failures, 1);
  assert.ok(st.last_error);
  assert.doesNotMatch(st.last_error, /s3cretpw/);
  // the failed run left no table behind and nothing else changed
  const t = await w.query("SELECT name FROM sqlite_master WHERE name = 'items_unreachable'");
  assert.deepEqual(t, []);
});

test("sslmode=require to a server whose certificate cannot be verified fails clearly, without hanging", async () => {
  // The local server's certificate is self-signed; the platform's TLS verifies it, so the
  // upgrade (StartTLS) must fail as a run error, not leave the run waiting forever.
  const cfg = await w.createConfig({
    source: { type: "postgres", url_secret: "TLS_PG_URL" },
    source_table: "items",
    target_table: "items_tls",
    interval_seconds: 3600,
    enabled: false,
  });
  const started = Date.now();
  const r = await w.api("POST", `/replication/sync/${cfg.id}`);
  assertEnvelope(r, 502, "sync over TLS to an unverifiable server");
  assert.equal(r.json.result.status, "error");
  assert.match(r.json.error, /postgres via url_secret TLS_PG_URL/);
  assert.ok(Date.now() - started < 30_000, "answered within the connect timeout");
});

test("a sync of a config that is already running answers 409", async () => {
  await db.query(`CREATE TABLE busy (id bigint PRIMARY KEY, body text)`);
  await db.query(`INSERT INTO busy SELECT i, repeat('x', 200) || i FROM generate_series(1, 40000) i`);
  const cfg = await w.createConfig({
    source: { type: "postgres", url_secret: "PG_URL" },
    source_table: "busy",
    mode: "full",
    batch_size: 500,
    interval_seconds: 3600,
    enabled: false,
  });
  const first = w.api("POST", `/replication/sync/${cfg.id}`);
  // let the first run get going, then ask again while it copies
  await new Promise((r) => setTimeout(r, 50));
  const second = await w.api("POST", `/replication/sync/${cfg.id}`);
  const r1 = await first;
  assertEnvelope(r1, 200, "the first sync");
  assertEnvelope(second, 409, "a second sync while the first runs");
  assert.ok(["ok", "partial"].includes(r1.json.result.status));
  // the lock is gone once the run is over
  const runs = await w.syncUntilOk(cfg.id);
  assert.equal(runs.at(-1).status, "ok");
  assert.equal((await w.query("SELECT count(*) AS n FROM busy"))[0].n, 40000);
});
