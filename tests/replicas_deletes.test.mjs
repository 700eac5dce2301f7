// Deletes reach read replicas: a cdc config's deletes (and a multi-table origin transaction,
// applied whole), and the deletes a reconciliation pass finds, appear on every replica once
// it holds the run's bookmark.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, pgDatabase, PG_LOGICAL_URL } from "./harness.mjs";

const LOCATIONS = ["weur", "apac", "enam"];
const SOURCE = { type: "postgres", url_secret: "PG_URL" };

let db;
let w;

before(async () => {
  db = await pgDatabase({ adminUrl: PG_LOGICAL_URL });
  await db.query(`
    CREATE TABLE parent (id bigint PRIMARY KEY, name text NOT NULL);
    CREATE TABLE child (id bigint PRIMARY KEY, parent_id bigint NOT NULL REFERENCES parent (id) ON DELETE CASCADE, note text);
    CREATE TABLE events (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL, body text);
    INSERT INTO parent SELECT g, 'p' || g FROM generate_series(1, 50) g;
    INSERT INTO child SELECT g, 1 + g % 50, 'n ✓ ' || g FROM generate_series(1, 200) g;
    INSERT INTO events SELECT g, '2026-01-01T00:00:00Z'::timestamptz + g * interval '1 second', 'e' || g FROM generate_series(1, 300) g;`);
  w = await startWorker({ vars: { PG_URL: db.url, REPLICA_LOCATIONS: LOCATIONS.join(",") } });
});

after(async () => {
  await w?.dispose();
  await db?.close();
});

async function readAt(location, bookmark, sql) {
  const r = await w.api("POST", "/query", {
    body: { sql },
    headers: { "X-Replica-Location": location, "X-Replica-Bookmark": bookmark },
  });
  assert.equal(r.status, 200, `${location}: ${r.text}`);
  assert.equal(r.headers.get("x-replica-served-by"), location);
  return r.json.result;
}

async function sameEverywhere(bookmark, table, originSql, replicaSql) {
  const origin = (await db.query(originSql)).rows;
  assert.ok(origin.length > 0);
  for (const loc of LOCATIONS) {
    assert.deepEqual(await readAt(loc, bookmark, replicaSql), origin, `${loc}: ${table} equals the origin`);
  }
}

const PARENTS = ["SELECT id::text AS id, name FROM parent ORDER BY id", "SELECT CAST(id AS TEXT) AS id, name FROM parent ORDER BY id"];
const CHILDREN = [
  "SELECT id::text AS id, parent_id::text AS parent_id, note FROM child ORDER BY id",
  "SELECT CAST(id AS TEXT) AS id, CAST(parent_id AS TEXT) AS parent_id, note FROM child ORDER BY id",
];

async function syncOk(id) {
  for (let i = 0; i < 50; i++) {
    const run = await w.sync(id);
    if (run.status === "ok") return run;
  }
  throw new Error(`config ${id} did not finish`);
}

test("cdc deletes, a cascade across two tables in one origin transaction, reach every replica", async () => {
  const p = await w.createConfig({ source: SOURCE, source_table: "parent", mode: "cdc", interval_seconds: 3600, enabled: false });
  const c = await w.createConfig({ source: SOURCE, source_table: "child", mode: "cdc", interval_seconds: 3600, enabled: false });
  await syncOk(p.id);
  let run = await syncOk(c.id);
  await sameEverywhere(run.bookmark, "child", ...CHILDREN);

  // One origin transaction: parents deleted, their children cascading, a parent renamed.
  await db.query("BEGIN; DELETE FROM parent WHERE id <= 10; UPDATE parent SET name = 'renamed ✓' WHERE id = 20; COMMIT;");
  await db.query("DELETE FROM child WHERE id % 3 = 0");
  run = await syncOk(p.id);
  assert.ok(run.rows_deleted > 0, JSON.stringify(run));
  await sameEverywhere(run.bookmark, "parent", ...PARENTS);
  await sameEverywhere(run.bookmark, "child", ...CHILDREN);
  for (const loc of LOCATIONS) {
    const [n] = await readAt(loc, run.bookmark, "SELECT count(*) AS n FROM child WHERE parent_id <= 10");
    assert.equal(n.n, 0, `${loc}: no orphan child of a deleted parent`);
  }
});

test("deletes found by reconciliation reach every replica", async () => {
  const e = await w.createConfig({ source: SOURCE, source_table: "events", cursor_column: "updated_at", interval_seconds: 3600, enabled: false });
  await syncOk(e.id);
  await db.query("DELETE FROM events WHERE id % 7 = 0");
  const r = await w.api("POST", `/replication/sync/${e.id}?reconcile=true`);
  assert.equal(r.status, 200, r.text);
  assert.ok(r.json.result.rows_deleted > 0, r.text);
  await sameEverywhere(
    r.json.result.bookmark,
    "events",
    "SELECT id::text AS id, body FROM events ORDER BY id",
    "SELECT CAST(id AS TEXT) AS id, body FROM events ORDER BY id",
  );
});
