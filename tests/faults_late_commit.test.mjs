// Late commits: `updated_at DEFAULT now()` takes the transaction's start time, so a long
// transaction commits rows whose cursor is older than rows other transactions committed in
// the meantime. A sync between the two commits moves the checkpoint past the late rows:
// without `lookback_seconds` they are never copied; with a window longer than the
// transaction they are.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { startWorker, pgDatabase, sleep } from "./harness.mjs";

let db;
let w;

before(async () => {
  db = await pgDatabase();
  await db.query(`CREATE TABLE orders (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now(), v text)`);
  await db.query(`INSERT INTO orders (id, updated_at, v) SELECT i, now() - interval '1 hour', 'old' FROM generate_series(1, 100) i`);
  w = await startWorker({ vars: { PG_URL: db.url } });
});

after(async () => {
  await w?.dispose();
  await db?.close();
});

const SOURCE = { type: "postgres", url_secret: "PG_URL" };
const ids = async (table) => (await w.query(`SELECT CAST(id AS TEXT) AS id FROM ${table} ORDER BY id`)).map((r) => r.id);

test("a transaction committing behind the checkpoint: caught with lookback_seconds, lost without", async () => {
  const config = (target, lookback) =>
    w.createConfig({
      source: SOURCE,
      source_table: "orders",
      target_table: target,
      cursor_column: "updated_at",
      lookback_seconds: lookback,
      interval_seconds: 3600,
      enabled: false,
    });
  // Longer than the late transaction (~3 s), shorter than it, and none.
  const wide = await config("orders_lookback", 30);
  const narrow = await config("orders_narrow", 1);
  const none = await config("orders_none", 0);
  const all = [wide, narrow, none];
  for (const c of all) assert.equal((await w.sync(c.id)).rows_upserted, 100);

  const late = new pg.Client({ connectionString: db.url.replace("?sslmode=disable", "") });
  await late.connect();
  try {
    await late.query("BEGIN");
    // now() is this transaction's start: the row's cursor is fixed here, not at commit.
    await late.query("INSERT INTO orders (id, v) VALUES (1001, 'late commit')");
    await sleep(3000);
    // Another transaction starts and commits later, with a newer cursor value.
    await db.query("INSERT INTO orders (id, v) VALUES (1002, 'early commit')");
    for (const c of all) {
      const r = await w.sync(c.id);
      assert.equal(r.status, "ok");
      assert.ok(r.rows_upserted >= 1, `row 1002 is copied: ${JSON.stringify(r)}`);
    }
    // The checkpoint is now past 1001's cursor value, which is not committed yet.
    const [cp] = (await db.query("SELECT updated_at FROM orders WHERE id = 1002")).rows;
    assert.ok(Math.abs(Date.parse((await w.status(none.id)).cursor) - cp.updated_at.getTime()) <= 1);
    await late.query("COMMIT");
  } finally {
    await late.end();
  }
  const [gap] = (
    await db.query("SELECT extract(epoch FROM (SELECT updated_at FROM orders WHERE id = 1002) - updated_at) AS s FROM orders WHERE id = 1001")
  ).rows;
  assert.ok(gap.s > 1 && gap.s < 30, `the late row is ${gap.s} s behind the checkpoint`);

  for (const c of all) assert.equal((await w.sync(c.id)).status, "ok");
  const source = (await db.query("SELECT id::text AS id FROM orders ORDER BY id")).rows.map((r) => r.id);
  assert.deepEqual(await ids("orders_lookback"), source, "a 30 s lookback catches the late commit");
  assert.ok(!(await ids("orders_none")).includes("1001"), "without lookback the late commit is lost");
  assert.ok(!(await ids("orders_narrow")).includes("1001"), "a lookback shorter than the transaction loses it too");
  const [row] = await w.query("SELECT v FROM orders_lookback WHERE id = 1001");
  assert.equal(row.v, "late commit");

  // Lost for good: later syncs never go back for it; only a reset (a fresh copy) brings it.
  await db.query("INSERT INTO orders (id, v) VALUES (1003, 'after')");
  const r = await w.sync(none.id);
  assert.equal(r.rows_upserted, 1);
  assert.ok(!(await ids("orders_none")).includes("1001"));
  const put = await w.api("PUT", `/replication/configs/${none.id}`, { body: { columns: ["id", "updated_at", "v"] } });
  assert.equal(put.status, 200, put.text);
  await w.syncUntilOk(none.id);
  const fresh = (await db.query("SELECT id::text AS id FROM orders ORDER BY id")).rows.map((r) => r.id);
  assert.deepEqual(await ids("orders_none"), fresh, "a reset recovers it");
  // The lookback re-reads are idempotent: no duplicates, exact values.
  await w.sync(wide.id);
  const rep = await w.query("SELECT count(*) AS n, count(DISTINCT id) AS d FROM orders_lookback");
  assert.deepEqual(rep, [{ n: fresh.length, d: fresh.length }]);
});
