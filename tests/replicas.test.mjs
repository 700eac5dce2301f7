// Regional read replicas (REPLICA_LOCATIONS): three replica objects follow the primary. After
// each primary run, every replica, read with X-Replica-Location and the run's bookmark, equals
// the origin cell by cell: inserts and updates, a full refresh with deletes, schema drift, a
// table dropped with its config, from PostgreSQL and MariaDB. Read-your-sync without sleeping;
// GET /replication/replicas and the lag metric; a replica killed mid-apply comes back exact; a
// replica behind the log's retention bound re-copies and converges.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, mysqlDatabase, waitFor } from "./harness.mjs";
import {
  itemsDatabase,
  itemsInsert,
  assertItemsEqual,
  MY_ITEMS_DDL,
  myItemsInsert,
  assertMyItemsEqual,
  killWorkerd,
} from "./faults_support.mjs";
import { assertDocumented, assertDocumentedHeaders } from "./openapi_schema.mjs";

const LOCATIONS = ["weur", "apac", "enam"];
const PG = { type: "postgres", url_secret: "PG_URL" };
const MY = { type: "mysql", url_secret: "MY_URL" };

let db;
let my;
let w;

before(async () => {
  db = await itemsDatabase(3000);
  my = await mysqlDatabase();
  await my.query(MY_ITEMS_DDL);
  await my.query(myItemsInsert(1, 2000));
  w = await startWorker({ vars: { PG_URL: db.url, MY_URL: my.url, REPLICA_LOCATIONS: LOCATIONS.join(",") } });
});

after(async () => {
  await w?.dispose();
  await db?.close();
  await my?.close();
});

/** A view of the worker whose reads go to one object and wait for `bookmark` there. */
function at(worker, location, bookmark) {
  return {
    async query(sql, params = []) {
      const headers = { "X-Replica-Location": location };
      if (bookmark) headers["X-Replica-Bookmark"] = bookmark;
      const r = await worker.api("POST", "/query", { body: { sql, params }, headers });
      assert.equal(r.status, 200, `${location}: ${sql} -> ${r.status} ${r.text}`);
      assert.equal(r.headers.get("x-replica-served-by"), location, "answered by that object itself, not forwarded");
      if (bookmark) {
        assert.ok(r.headers.get("x-replica-bookmark") >= bookmark, `${location} answered from ${r.headers.get("x-replica-bookmark")} < ${bookmark}`);
      }
      return r.json.result;
    },
  };
}

async function everyReplica(bookmark, check) {
  for (const loc of LOCATIONS) await check(at(w, loc, bookmark), loc);
}

/** The replica object's own answer (not forwarded to the primary): its bookmark header. */
async function replicaBookmark(location) {
  const r = await w.api("POST", "/query", { body: { sql: "SELECT 1" }, headers: { "X-Replica-Location": location } });
  assert.equal(r.status, 200, r.text);
  return r.headers.get("x-replica-bookmark");
}

let pgItems;
let pgFull;
let myItems;

test("inserts and updates from PostgreSQL and MariaDB reach every replica exactly", async () => {
  pgItems = await w.createConfig({ source: PG, source_table: "items", target_table: "pg_items", cursor_column: "updated_at", batch_size: 700, interval_seconds: 3600, enabled: false });
  myItems = await w.createConfig({ source: MY, source_table: "items", target_table: "my_items", cursor_column: "updated_at", batch_size: 500, interval_seconds: 3600, enabled: false });
  let last;
  for (const run of await w.syncUntilOk(pgItems.id)) last = run;
  for (const run of await w.syncUntilOk(myItems.id)) last = run;
  assert.match(last.bookmark, /^\d{20}$/);
  await everyReplica(last.bookmark, async (r) => {
    await assertItemsEqual(r, db, "pg_items");
    await assertMyItemsEqual(r, my, "my_items");
  });

  await db.query(`UPDATE items SET name = 'upd ' || id || ' é', updated_at = now() WHERE id % 97 = 0`);
  await db.query(itemsInsert(3001, 3400, "2027-01-01T00:00:00Z"));
  await my.query(`UPDATE items SET name = CONCAT('upd ', id), updated_at = NOW(6) WHERE id % 89 = 0`);
  await my.query(myItemsInsert(2001, 2300, "2027-01-01 00:00:00"));
  await w.syncUntilOk(pgItems.id);
  const runs = await w.syncUntilOk(myItems.id);
  await everyReplica(runs.at(-1).bookmark, async (r) => {
    await assertItemsEqual(r, db, "pg_items");
    await assertMyItemsEqual(r, my, "my_items");
  });
});

test("read-your-sync: the run's bookmark sent with the next read returns the synced rows on every replica", async () => {
  for (let i = 0; i < 3; i++) {
    const id = 5000 + i;
    await db.query(itemsInsert(id, id, "2028-01-01T00:00:00Z"));
    const [run] = await w.syncUntilOk(pgItems.id);
    // No sleep: each replica waits for (or pulls) the bookmark before answering.
    await everyReplica(run.bookmark, async (r, loc) => {
      const rows = await r.query("SELECT CAST(id AS TEXT) AS id FROM pg_items WHERE id = ?", [id]);
      assert.deepEqual(rows, [{ id: String(id) }], `${loc} sees row ${id}`);
    });
  }
});

test("a full refresh with deletes, and schema drift, reach every replica", async () => {
  pgFull = await w.createConfig({ source: PG, source_table: "items", target_table: "pg_full", mode: "full", batch_size: 1000, interval_seconds: 3600, enabled: false });
  await w.syncUntilOk(pgFull.id);
  await db.query("DELETE FROM items WHERE id % 10 = 3");
  await db.query("ALTER TABLE items ADD COLUMN note text DEFAULT 'drift ✓'");
  const runs = await w.syncUntilOk(pgFull.id);
  assert.ok(runs.at(-1).rows_deleted > 0, JSON.stringify(runs.at(-1)));
  const origin = (await db.query("SELECT id::text AS id, note FROM items ORDER BY id")).rows;
  await everyReplica(runs.at(-1).bookmark, async (r, loc) => {
    const rows = await r.query("SELECT CAST(id AS TEXT) AS id, note FROM pg_full ORDER BY id");
    assert.deepEqual(rows, origin, `${loc}: the refreshed table, deleted rows gone, the new column filled`);
  });
});

test("a table dropped with its config is dropped on every replica", async () => {
  const r = await w.api("DELETE", `/replication/configs/${pgFull.id}?drop_table=true`);
  assert.equal(r.status, 200, r.text);
  const head = (await w.api("POST", "/query", { body: { sql: "SELECT 1" }, headers: { "X-Replica-Location": "primary" } })).headers.get(
    "x-replica-bookmark",
  );
  await everyReplica(head, async (rep, loc) => {
    const t = await rep.query("SELECT count(*) AS n FROM sqlite_master WHERE name = 'pg_full'");
    assert.deepEqual(t, [{ n: 0 }], `${loc} dropped pg_full`);
  });
});

test("GET /replication/replicas and the lag metric describe every replica", async () => {
  const head = (await w.api("POST", "/query", { body: { sql: "SELECT 1" }, headers: { "X-Replica-Location": "primary" } })).headers.get(
    "x-replica-bookmark",
  );
  for (const loc of LOCATIONS) assert.ok((await replicaBookmark(loc)) <= head);
  // The replicas catch up on their own (nudged after each change): no bookmark sent here.
  const list = await waitFor(
    async () => {
      const r = await w.api("GET", "/replication/replicas");
      assert.equal(r.status, 200, r.text);
      return r.json.result.every((x) => x.bookmark === head && x.lag_ms === 0) ? r.json.result : null;
    },
    { timeoutMs: 30_000, message: "every replica at the primary's bookmark" },
  );
  assert.deepEqual(
    list.map((x) => x.location),
    LOCATIONS,
  );
  for (const x of list) {
    assert.equal(x.tables, 2, `${x.location}: pg_items and my_items`);
    assert.equal(x.last_error, null);
    assert.ok(Date.parse(x.last_pull_at) > Date.now() - 120_000, x.last_pull_at);
  }
  const m = await w.api("GET", "/metrics");
  for (const loc of LOCATIONS) assert.match(m.text, new RegExp(`edge_replica_replica_lag_seconds\\{location="${loc}"\\} 0\\b`));
  // The routing refuses what names no replica, and reads without a header go to a replica.
  const bad = await w.api("POST", "/query", { body: { sql: "SELECT 1" }, headers: { "X-Replica-Location": "oc" } });
  assert.equal(bad.status, 400);
  assert.match(bad.json.error, /oc/);
  // Client limits hold on a replica, and a refused read leaves it serving.
  const rec = await w.api("POST", "/query", {
    token: "client",
    body: { sql: "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c" },
    headers: { "X-Replica-Location": "apac" },
  });
  assert.equal(rec.status, 400, rec.text);
  assert.match(rec.json.error, /recursive/i);
  const after = await w.api("POST", "/query", { token: "client", body: { sql: "SELECT count(*) AS n FROM pg_items" }, headers: { "X-Replica-Location": "apac" } });
  assert.equal(after.status, 200, after.text);
  assert.equal(after.headers.get("x-replica-served-by"), "apac");
  const internal = await w.api("POST", "/internal/replica/pull", { body: {} });
  assert.equal(internal.status, 404, "calls between objects are not reachable from outside");
});

test("the replicas list and a replica's answers match docs/openapi.json", async () => {
  const list = await w.api("GET", "/replication/replicas");
  assert.deepEqual(
    list.json.result.map((x) => x.location),
    LOCATIONS,
  );
  assertDocumented(list, "/replication/replicas", "GET", "the replicas list");
  for (const loc of LOCATIONS) {
    const reads = [
      ["/query", { sql: "SELECT CAST(id AS TEXT) AS id, name, qty FROM pg_items ORDER BY id LIMIT 3" }],
      ["/query/raw", { sql: "SELECT id, name FROM my_items WHERE id <= ? ORDER BY id", params: [3] }],
    ];
    for (const [p, body] of reads) {
      const r = await w.api("POST", p, { body, headers: { "X-Replica-Location": loc } });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers.get("x-replica-served-by"), loc, `${p} answered by ${loc}`);
      assertDocumented(r, p, "POST", `${p} on ${loc}`);
      assertDocumentedHeaders(r, p, "POST", `${p} on ${loc}`);
    }
  }
  const primary = await w.api("POST", "/query/raw", { body: { sql: "SELECT 1 AS one" }, headers: { "X-Replica-Location": "primary" } });
  assert.equal(primary.headers.get("x-replica-served-by"), "primary");
  assertDocumentedHeaders(primary, "/query/raw", "POST", "the primary");
  const refused = await w.api("POST", "/query", { body: { sql: "DELETE FROM pg_items" }, headers: { "X-Replica-Location": "apac" } });
  assertDocumented(refused, "/query", "POST", "a write refused on a replica");
  assert.equal(refused.headers.get("x-replica-served-by"), "apac");
  // Without a token a read is 401, whatever it names, before it is routed.
  for (const v of ["oc", "mars", "apac"]) {
    const r = await w.api("POST", "/query", { token: null, body: { sql: "SELECT 1" }, headers: { "X-Replica-Location": v } });
    assert.equal(r.status, 401, `${v}: ${r.text}`);
    assertDocumented(r, "/query", "POST", `no token, X-Replica-Location: ${v}`);
  }
});

test("a replica killed while applying a large batch comes back exact", async () => {
  await db.query(itemsInsert(100001, 250000, "2029-01-01T00:00:00Z"));
  const before = await replicaBookmark("weur");
  const syncing = w.syncUntilOk(pgItems.id).catch((e) => e);
  // Kill workerd once the replica has applied part of the new batches, not all.
  await waitFor(async () => (await replicaBookmark("weur")) > before, { intervalMs: 10, message: "weur pulling" });
  await killWorkerd(w);
  await syncing;
  const runs = await w.syncUntilOk(pgItems.id);
  const bookmark = runs.at(-1).bookmark;
  await everyReplica(bookmark, async (r) => {
    await assertItemsEqual(r, db, "pg_items");
  });
});

test("a replica behind the log's retention bound re-copies and converges", async () => {
  const db2 = await itemsDatabase(500);
  // A log of one byte keeps nothing: every replica is behind it at every change.
  const w2 = await startWorker({ vars: { PG_URL: db2.url, REPLICA_LOCATIONS: "weur", REPLICA_LOG_MAX_BYTES: "1" } });
  try {
    // Before its first pull the primary knows nothing of the replica but its location.
    const fresh = await w2.api("GET", "/replication/replicas");
    assert.deepEqual(fresh.json.result, [{ location: "weur", bookmark: null, lag_ms: null, last_pull_at: null, last_error: null, tables: null }]);
    assertDocumented(fresh, "/replication/replicas", "GET", "a replica before its first pull");
    const c = await w2.createConfig({ source: PG, source_table: "items", cursor_column: "updated_at", batch_size: 200, interval_seconds: 3600, enabled: false });
    let runs = await w2.syncUntilOk(c.id);
    await assertItemsEqual(at(w2, "weur", runs.at(-1).bookmark), db2, "items");
    await db2.query(itemsInsert(501, 900, "2030-01-01T00:00:00Z"));
    await db2.query("UPDATE items SET qty = -1, updated_at = now() WHERE id < 50");
    runs = await w2.syncUntilOk(c.id);
    await assertItemsEqual(at(w2, "weur", runs.at(-1).bookmark), db2, "items");
    const [state] = await at(w2, "weur").query("SELECT phase FROM tmp_replication_follow");
    assert.equal(state.phase, "follow");
    const left = await w2.query("SELECT count(*) AS n FROM tmp_replication_log");
    assert.deepEqual(left, [{ n: 0 }], "the primary kept nothing beyond its bound");
  } finally {
    await w2.dispose();
    await db2.close();
  }
});
