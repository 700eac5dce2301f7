// Runs longer than their time budget: with SYNC_TIME_BUDGET_MS=200 a copy takes many runs.
// The alarm alone resumes each `partial` run from its checkpoint until one is `ok`, the
// history shows every partial run, and the result is exact. A full refresh spread over
// partial runs keeps the old table readable until the new one is complete.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, assertEnvelope, waitFor } from "./harness.mjs";
import { assertItemsEqual, runsOf, itemsDatabase } from "./faults_support.mjs";

// Enough rows for several runs on a fast machine too: 60,000 took only three runs on one
// that copies ~300k rows/s, where 150,000 took six or seven.
const ROWS = 210_000; // divisible by 2, 3 and 10: the tests change those fractions of it
const BUDGET_MS = 200;
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

/** Asserts the runs (newest first) are partial runs ended by an ok one, alarm-paced. */
function assertPartialChain(runs, label) {
  const oldestFirst = [...runs].reverse();
  const statuses = oldestFirst.map((r) => r.status);
  assert.equal(statuses.at(-1), "ok", `${label}: ends ok: ${statuses}`);
  assert.ok(statuses.slice(0, -1).every((s) => s === "partial"), `${label}: partial until ok: ${statuses}`);
  assert.ok(statuses.length >= 4, `${label}: a copy of ${ROWS} rows in ${BUDGET_MS} ms runs takes several runs: ${statuses}`);
  for (const r of oldestFirst.slice(0, -1)) {
    // A partial run stops at the first batch boundary after its budget.
    assert.ok(r.duration_ms >= BUDGET_MS, `${label}: partial run ${r.run_id} stopped early: ${JSON.stringify(r)}`);
    assert.ok(r.batches >= 1, `${label}: every partial run made progress: ${JSON.stringify(r)}`);
    assert.equal(r.error, null);
  }
  // Each partial run is resumed at once, not an interval later.
  for (let i = 1; i < oldestFirst.length; i++) {
    const gap = Date.parse(oldestFirst[i].started_at) - Date.parse(oldestFirst[i - 1].finished_at);
    assert.ok(gap < 5000, `${label}: run ${oldestFirst[i].run_id} started ${gap} ms after the previous one ended`);
  }
}

test("the alarm resumes a long first copy through partial runs until ok; exact", async () => {
  const cfg = await w.createConfig({
    source: SOURCE,
    source_table: "items",
    cursor_column: "updated_at",
    batch_size: 250,
    interval_seconds: 3600,
  });
  const states = new Set();
  const st = await waitFor(
    async () => {
      const s = await w.status(cfg.id);
      states.add(s.state);
      return s.state === "idle" ? s : null;
    },
    { timeoutMs: 120_000, intervalMs: 50, message: "the copy to end ok" },
  );
  await assertItemsEqual(w, db, "items");
  const runs = await runsOf(w, cfg.id);
  assertPartialChain(runs, "first copy");
  assert.equal(runs.reduce((s, r) => s + r.rows_upserted, 0), ROWS, "each row copied once across the partial runs");
  assert.equal(st.total_rows_synced, ROWS);
  assert.equal(st.consecutive_failures, 0);
  assert.ok(![...states].includes("error"), `never in error: ${[...states]}`);
  // Partial runs in the history, as the API lists them.
  const listed = await w.api("GET", `/replication/runs?config_id=${cfg.id}&limit=1000`);
  assertEnvelope(listed, 200);
  assert.ok(listed.json.result.filter((r) => r.status === "partial").length >= 3);

  // An incremental catch-up longer than the budget: also resumed by the alarm alone.
  await db.query(
    `UPDATE items SET qty = -id, updated_at = '2026-08-01T00:00:00Z'::timestamptz + id * interval '1 ms' WHERE id % 3 = 0`,
  );
  const lastRun = runs[0].run_id;
  // The newest changed row's cursor, to the second: the highest id divisible by 3, in ms.
  const lastCursor = new Date(Date.parse("2026-08-01T00:00:00Z") + Math.floor(ROWS / 3) * 3).toISOString().slice(0, 19);
  assertEnvelope(await w.api("PUT", `/replication/configs/${cfg.id}`, { body: { interval_seconds: 1 } }), 200);
  await waitFor(
    async () => {
      const s = await w.status(cfg.id);
      return s.state === "idle" && s.cursor?.startsWith(lastCursor) ? s : null;
    },
    { timeoutMs: 120_000, intervalMs: 100, message: "the catch-up to end ok" },
  );
  assertEnvelope(await w.api("PUT", `/replication/configs/${cfg.id}`, { body: { enabled: false } }), 200);
  await assertItemsEqual(w, db, "items");
  const catchUp = (await runsOf(w, cfg.id)).filter((r) => r.run_id > lastRun && r.rows_upserted > 0);
  assert.ok(catchUp.filter((r) => r.status === "partial").length >= 1, `the catch-up took partial runs: ${JSON.stringify(catchUp.map((r) => r.status))}`);
  assert.equal(catchUp.reduce((s, r) => s + r.rows_upserted, 0), ROWS / 3, "each changed row copied once");
});

test("a full refresh spread over partial runs keeps the old table until the swap", async () => {
  const cfg = await w.createConfig({
    source: SOURCE,
    source_table: "items",
    target_table: "items_full",
    mode: "full",
    batch_size: 250,
    interval_seconds: 3600,
  });
  await waitFor(async () => (await w.status(cfg.id)).state === "idle", { timeoutMs: 120_000, message: "the first copy" });
  await assertItemsEqual(w, db, "items_full");
  const firstRuns = (await runsOf(w, cfg.id)).length;

  await db.query("DELETE FROM items WHERE id % 10 = 1");
  await db.query("UPDATE items SET name = 'refreshed ' || id WHERE id % 2 = 0");
  const expected = ROWS - ROWS / 10;
  assertEnvelope(await w.api("PUT", `/replication/configs/${cfg.id}`, { body: { interval_seconds: 1 } }), 200);
  // Until the refresh's last partial run swaps the staging table in, readers see the old rows.
  const counts = new Set();
  await waitFor(
    async () => {
      const [r] = await w.query("SELECT count(*) AS n, sum(name LIKE 'refreshed %') AS changed FROM items_full");
      counts.add(`${r.n}/${r.changed}`);
      return r.n === expected;
    },
    { timeoutMs: 120_000, intervalMs: 20, message: "the refresh to be swapped in" },
  );
  assertEnvelope(await w.api("PUT", `/replication/configs/${cfg.id}`, { body: { enabled: false } }), 200);
  assert.deepEqual(
    [...counts].sort(),
    [`${ROWS}/0`, `${expected}/${ROWS / 2}`].sort(),
    "readers saw the old table or the new one, nothing in between",
  );
  await assertItemsEqual(w, db, "items_full");
  const refresh = (await runsOf(w, cfg.id)).slice(0, -firstRuns);
  const swapped = refresh.findIndex((r) => r.status === "ok");
  assertPartialChain(refresh.slice(swapped), "refresh");
  assert.equal(refresh[swapped].rows_deleted, ROWS / 10);
});
