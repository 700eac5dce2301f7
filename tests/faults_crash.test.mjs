// Crash mid-sync: workerd is SIGKILLed at three moments of a first copy, of an incremental
// catch-up and of a full refresh of a 300,000-row table; Miniflare restarts it on the same
// persist directory and only the alarm drives the sync on. After each phase the replica
// equals the source exactly (count, key set, every value, no duplicates), and each killed
// run was resumed from its checkpoint soon after the restart (no lock left behind).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, assertEnvelope, waitFor } from "./harness.mjs";
import {
  assertItemsEqual,
  assertKillsHitRuns,
  copyProgress,
  itemsInsert,
  killAt,
  runsOf,
  waitIdle,
  itemsDatabase,
} from "./faults_support.mjs";

const ROWS = 300_000;
const BATCH = 500;
// Small enough that the copies also cross `partial` boundaries, so kills land both inside
// a run and between runs.
const BUDGET_MS = 4000;

let db;
let w;

before(async () => {
  db = await itemsDatabase(ROWS);
  w = await startWorker({ vars: { PG_URL: db.url, SYNC_TIME_BUDGET_MS: String(BUDGET_MS) } });
});

after(async () => {
  await w?.dispose();
  await db?.close();
});

const SOURCE = { type: "postgres", url_secret: "PG_URL" };
let inc;
let full;

test("first copy: killed three times, finished by the alarm, exact", async (t) => {
  full = await w.createConfig({
    source: SOURCE,
    source_table: "items",
    target_table: "items_full",
    mode: "full",
    batch_size: BATCH,
    interval_seconds: 2,
    enabled: false,
  });
  inc = await w.createConfig({
    source: SOURCE,
    source_table: "items",
    cursor_column: "updated_at",
    batch_size: BATCH,
    interval_seconds: 2,
  });
  const created = Date.now();
  const progress = () => copyProgress(w, inc.id, created);
  const kills = [];
  for (const [threshold, label] of [
    [ROWS * 0.1, "copy 10%"],
    [ROWS * 0.5, "copy 50%"],
    [ROWS * 0.85, "copy 85%"],
  ]) {
    kills.push(await killAt(w, inc.id, progress, threshold, label, BUDGET_MS));
  }
  assertKillsHitRuns(t, kills);
  await waitIdle(w, inc.id, "first copy");
  await assertItemsEqual(w, db, "items");
  const runs = await runsOf(w, inc.id);
  // The killed runs are closed as interrupted, and the copy was resumed, not restarted:
  // the runs after the last crash copied far less than the whole table.
  const interrupted = runs.filter((r) => r.status === "error");
  assert.ok(interrupted.length >= 1, JSON.stringify(runs.slice(0, 5)));
  for (const r of interrupted) assert.match(r.error, /interrupted/);
  const lastKill = Date.parse(kills.at(-1).resumed.started_at);
  const after = runs.filter((r) => Date.parse(r.started_at) >= lastKill && r.status !== "error");
  const copiedAfter = after.reduce((s, r) => s + r.rows_upserted, 0);
  assert.ok(copiedAfter < ROWS * 0.5, `resumed from the checkpoint: ${copiedAfter} rows copied after the last crash`);
  // The alarm syncs every 2 s, so its newest run may be under way as the runs are listed. Runs
  // take the lock one after another: a run still marked running with a later run after it was
  // left so by a kill.
  const leftRunning = runs.filter((r) => r.status === "running" && runs.some((o) => Date.parse(o.started_at) > Date.parse(r.started_at)));
  assert.deepEqual(leftRunning, [], "no run is left running");
});

test("incremental catch-up: killed three times, finished by the alarm, exact", async (t) => {
  // Inserts (cursor values in May) and updates that move half the rows to June, in one
  // transaction: committed apart, a sync in between could pass the inserts' cursor values
  // before they commit (see the late-commit test).
  await db.query(
    `BEGIN;
     ${itemsInsert(ROWS + 1, ROWS + 100_000, "2026-05-01T00:00:00Z")};
     UPDATE items SET qty = coalesce(qty, 0) + 1, name = 'updated ' || id,
       updated_at = '2026-06-01T00:00:00Z'::timestamptz + id * interval '1 millisecond' WHERE id % 2 = 0 AND id <= ${ROWS};
     COMMIT`,
  );
  // Progress, as a share of the 250,000 changed rows, from the status cursor: the keyset
  // walks through the inserts (May, 100,000 rows) and then the updates (June, 150,000).
  const may = Date.parse("2026-05-01T00:05:00Z");
  const june = Date.parse("2026-06-01T00:00:00Z");
  const progress = async () => {
    const c = (await w.status(inc.id)).cursor;
    const t = c ? Date.parse(c) : 0;
    if (t < may) return 0;
    if (t < june) return (0.4 * (t - may)) / 100_000;
    return 0.4 + (0.6 * (t - june)) / 300_000;
  };
  const kills = [];
  for (const [threshold, label] of [
    [0.1, "incremental early"],
    [0.6, "incremental middle"],
    [0.95, "incremental late"],
  ]) {
    kills.push(await killAt(w, inc.id, progress, threshold, label, BUDGET_MS));
  }
  assertKillsHitRuns(t, kills);
  await waitFor(async () => (await w.status(inc.id)).cursor?.startsWith("2026-06-01T00:05:00"), {
    timeoutMs: 180_000,
    message: "the incremental catch-up to reach the last update",
  });
  await waitIdle(w, inc.id, "incremental");
  await assertItemsEqual(w, db, "items");
});

test("full refresh with deletes: killed three times, swapped in exactly", async (t) => {
  // Only the full config from here on: the incremental one cannot see deletes.
  assertEnvelope(await w.api("PUT", `/replication/configs/${inc.id}`, { body: { enabled: false } }), 200);
  // An hour's interval: the first copy, then nothing until the source has changed.
  assertEnvelope(
    await w.api("PUT", `/replication/configs/${full.id}`, { body: { enabled: true, interval_seconds: 3600 } }),
    200,
  );
  await waitIdle(w, full.id, "full mode's first copy");
  await assertItemsEqual(w, db, "items_full");

  await db.query("DELETE FROM items WHERE id % 10 = 3");
  await db.query("UPDATE items SET price = price + 1, payload = payload || '{\"v\": 2}' WHERE id % 3 = 0");
  const expected = Number((await db.query("SELECT count(*)::int AS n FROM items")).rows[0].n);
  // A shorter interval takes effect at once: every refresh from here on reads the changed source.
  const changed = Date.now();
  assertEnvelope(await w.api("PUT", `/replication/configs/${full.id}`, { body: { interval_seconds: 2 } }), 200);
  const progress = () => copyProgress(w, full.id, changed);
  const kills = [];
  for (const [threshold, label] of [
    [expected * 0.2, "refresh 20%"],
    [expected * 0.55, "refresh 55%"],
    [expected * 0.9, "refresh 90%"],
  ]) {
    kills.push(await killAt(w, full.id, progress, threshold, label, BUDGET_MS));
  }
  assertKillsHitRuns(t, kills);
  // Readers keep the old table until the refresh is swapped in.
  await waitFor(
    async () => {
      const s = await w.status(full.id);
      return Date.parse(s.last_success_at) > changed && s.target_row_count === expected ? s : null;
    },
    { timeoutMs: 180_000, intervalMs: 250, message: "the refresh to be swapped in" },
  );
  // The config keeps refreshing every 2 s; the source is quiet, so every refresh is equal.
  await assertItemsEqual(w, db, "items_full");
  const runs = await runsOf(w, full.id);
  const deleted = runs
    .filter((r) => r.status === "ok" && Date.parse(r.started_at) >= changed)
    .reduce((s, r) => s + r.rows_deleted, 0);
  assert.equal(deleted, ROWS + 100_000 - expected, "rows_deleted counts the rows gone from the source");
  assertEnvelope(await w.api("PUT", `/replication/configs/${full.id}`, { body: { enabled: false } }), 200);
});
