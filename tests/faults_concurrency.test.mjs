// Concurrency: requests that land while the alarm's run of a config is copying. A manual sync
// of the same config is a 409 and leaves the checkpoint alone; a config change that resets it
// stops the old run and the new shape is copied at once; a delete stops the run's writes and
// its table is not recreated.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, assertEnvelope, waitFor, sleep } from "./harness.mjs";
import { assertItemsEqual, runsOf, pollUntil, itemsDatabase } from "./faults_support.mjs";

const ROWS = 100_000;
let db;
let w;

before(async () => {
  db = await itemsDatabase(ROWS);
  w = await startWorker({ vars: { PG_URL: db.url } });
});

after(async () => {
  await w?.dispose();
  await db?.close();
});

const SOURCE = { type: "postgres", url_secret: "PG_URL" };
const tableExists = async (t) =>
  (await w.query("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ?", [t]))[0].n === 1;

async function stagingCount(id) {
  if (!(await tableExists(`tmp_stage_${id}`))) return 0;
  return (await w.query(`SELECT count(*) AS n FROM tmp_stage_${id}`))[0].n;
}

/** Waits until the alarm's run of `id` has copied at least `rows` rows into its staging table. */
async function midCopy(id, rows) {
  return pollUntil(
    async () => {
      const [st, n] = [await w.status(id), await stagingCount(id)];
      return st.state === "running" && n >= rows ? n : null;
    },
    { timeoutMs: 60_000, intervalMs: 10, message: `config ${id} in the middle of its copy` },
  );
}

test("a manual sync during the alarm's run is a 409 and does not disturb it", async () => {
  const cfg = await w.createConfig({
    source: SOURCE,
    source_table: "items",
    cursor_column: "updated_at",
    batch_size: 500,
    interval_seconds: 3600,
  });
  await midCopy(cfg.id, 5_000);
  const runsBefore = await runsOf(w, cfg.id);
  const conflicts = [];
  // Keep asking while the run lasts: every answer is a 409 until it is over.
  for (let i = 0; i < 20; i++) {
    const r = await w.api("POST", `/replication/sync/${cfg.id}`);
    if (r.status !== 409) {
      assertEnvelope(r, 200, "a manual sync after the alarm's run ended");
      break;
    }
    assertEnvelope(r, 409, "manual sync during the alarm's run");
    assert.match(r.json.error, /already running/);
    conflicts.push(r);
    await sleep(20);
  }
  assert.ok(conflicts.length >= 1, "at least one manual sync met the running alarm run");
  // A refused sync leaves no run record and does not touch the running one.
  const during = await runsOf(w, cfg.id);
  assert.ok(during.length <= runsBefore.length + 1, JSON.stringify(during.slice(0, 3)));
  await waitFor(async () => (await w.status(cfg.id)).state === "idle", { timeoutMs: 60_000, message: "the copy to finish" });
  await assertItemsEqual(w, db, "items");
  const runs = await runsOf(w, cfg.id);
  assert.ok(runs.every((r) => r.status === "ok" || r.status === "partial"), JSON.stringify(runs));
  assert.equal(runs.reduce((s, r) => s + r.rows_upserted, 0), ROWS, "every row copied once: the checkpoint was not reset or rewound");
  // The checkpoint is where the copy ended: a sync now copies nothing.
  const again = await w.sync(cfg.id);
  assert.equal(again.status, "ok");
  assert.equal(again.rows_upserted, 0);
  assertEnvelope(await w.api("DELETE", `/replication/configs/${cfg.id}?drop_table=true`), 200);
});

test("a resetting config change during a run: the old run stops, the new shape is copied at once", async () => {
  const cfg = await w.createConfig({
    source: SOURCE,
    source_table: "items",
    target_table: "items_reset",
    cursor_column: "updated_at",
    batch_size: 500,
    interval_seconds: 3600,
  });
  await midCopy(cfg.id, 5_000);
  const changedAt = Date.now();
  const put = await w.api("PUT", `/replication/configs/${cfg.id}`, {
    body: { columns: ["id", "updated_at", "name"] },
  });
  assertEnvelope(put, 200, "resetting PUT during a run");
  // The reset config is due at once (API.md): the alarm copies it again right away, with
  // the new columns, although its interval is an hour.
  const st = await waitFor(
    async () => {
      const s = await w.status(cfg.id);
      return s.last_success_at && Date.parse(s.last_success_at) > changedAt && s.state === "idle" ? s : null;
    },
    { timeoutMs: 60_000, message: "the reset config's new copy" },
  );
  assert.equal(st.consecutive_failures, 0, `a reset is not a failure: ${JSON.stringify(st)}`);
  assert.equal(st.last_error, null);
  assert.ok(Date.parse(st.next_sync_at) > Date.now() + 3000 * 1000, `next sync an interval later: ${st.next_sync_at}`);
  const cols = (await w.query("SELECT name FROM pragma_table_info('items_reset') ORDER BY cid")).map((r) => r.name);
  assert.deepEqual(cols, ["id", "updated_at", "name"]);
  const [c] = await w.query("SELECT count(*) AS n, count(DISTINCT id) AS d FROM items_reset");
  assert.deepEqual(c, { n: ROWS, d: ROWS });
  const src = (await db.query("SELECT md5(string_agg(id || '|' || name, ',' ORDER BY id)) AS h FROM items")).rows[0].h;
  const rows = await w.query("SELECT CAST(id AS TEXT) || '|' || name AS r FROM items_reset ORDER BY id");
  const { createHash } = await import("node:crypto");
  assert.equal(createHash("md5").update(rows.map((r) => r.r).join(",")).digest("hex"), src);
  assert.equal(await tableExists(`tmp_stage_${cfg.id}`), false, "no staging table is left behind");
  const runs = await runsOf(w, cfg.id);
  const stopped = runs.find((r) => r.status === "error");
  assert.ok(stopped, `the run that met the reset is recorded: ${JSON.stringify(runs)}`);
  assert.match(stopped.error, /changed during the run/);
  assertEnvelope(await w.api("DELETE", `/replication/configs/${cfg.id}?drop_table=true`), 200);
});

test("a delete during a copy stops the run; its tables are not recreated", async () => {
  const cfg = await w.createConfig({
    source: SOURCE,
    source_table: "items",
    target_table: "items_deleted",
    cursor_column: "updated_at",
    batch_size: 500,
    interval_seconds: 1,
  });
  await midCopy(cfg.id, 5_000);
  assertEnvelope(await w.api("DELETE", `/replication/configs/${cfg.id}?drop_table=true`), 200);
  for (let i = 0; i < 10; i++) {
    assert.equal(await tableExists("items_deleted"), false, "the dropped target is not recreated");
    assert.equal(await tableExists(`tmp_stage_${cfg.id}`), false, "the staging table is not recreated");
    await sleep(300);
  }
  assertEnvelope(await w.api("GET", `/replication/status/${cfg.id}`), 404);
  const runs = await w.api("GET", `/replication/runs?config_id=${cfg.id}`);
  assertEnvelope(runs, 200);
  assert.deepEqual(runs.json.result, [], "its history went with it");
});

test("a delete during an incremental catch-up stops the writes; the kept table stays as it was", async () => {
  const cfg = await w.createConfig({
    source: SOURCE,
    source_table: "items",
    target_table: "items_kept",
    cursor_column: "updated_at",
    batch_size: 500,
    interval_seconds: 1,
  });
  await waitFor(async () => (await w.status(cfg.id)).state === "idle", { timeoutMs: 60_000, message: "the first copy" });
  await db.query(
    `UPDATE items SET name = 'late ' || id, updated_at = '2026-09-01T00:00:00Z'::timestamptz + id * interval '1 ms'`,
  );
  // In the middle of the catch-up, which writes straight into the target.
  await pollUntil(
    async () => {
      const [r] = await w.query("SELECT count(*) AS n FROM items_kept WHERE name LIKE 'late %'");
      return r.n >= 5_000 && r.n < ROWS ? r.n : null;
    },
    { timeoutMs: 60_000, intervalMs: 10, message: "the catch-up under way" },
  );
  assertEnvelope(await w.api("DELETE", `/replication/configs/${cfg.id}`), 200);
  const snap = async () => (await w.query("SELECT count(*) AS n, sum(name LIKE 'late %') AS late FROM items_kept"))[0];
  const first = await snap();
  assert.equal(first.n, ROWS);
  for (let i = 0; i < 6; i++) {
    await sleep(300);
    assert.deepEqual(await snap(), first, "no write after the delete");
  }
  assert.ok(first.late < ROWS, `the catch-up was cut short (${first.late} rows updated)`);
  assertEnvelope(await w.api("GET", `/replication/status/${cfg.id}`), 404);
});
