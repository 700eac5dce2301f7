// Crash mid-sync with a MySQL/MariaDB source: workerd is SIGKILLed three times during a first
// copy and three times during an incremental catch-up of a 150,000-row table; only the alarm
// drives the sync after each restart, and the replica ends equal to the source (count, key
// set, every value, no duplicates).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, mysqlDatabase } from "./harness.mjs";
import {
  assertKillsHitRuns,
  assertMyItemsEqual,
  copyProgress,
  killAt,
  MY_ITEMS_DDL,
  myItemsInsert,
  runsOf,
  waitIdle,
} from "./faults_support.mjs";

const ROWS = 150_000;
const BUDGET_MS = 4000;
let my;
let w;

before(async () => {
  my = await mysqlDatabase({ prefix: "er_fault" });
  await my.query(MY_ITEMS_DDL);
  await my.query(myItemsInsert(1, ROWS));
  w = await startWorker({ vars: { MY_URL: `${my.url}?ssl-mode=disable`, SYNC_TIME_BUDGET_MS: String(BUDGET_MS) } });
});

after(async () => {
  await w?.dispose();
  await my?.close();
});

let cfg;

test("mysql first copy: killed three times, finished by the alarm, exact", async (t) => {
  cfg = await w.createConfig({
    source: { type: "mysql", url_secret: "MY_URL" },
    source_table: "items",
    cursor_column: "updated_at",
    batch_size: 500,
    interval_seconds: 2,
  });
  const created = Date.now();
  const progress = () => copyProgress(w, cfg.id, created);
  const kills = [];
  for (const [threshold, label] of [
    [ROWS * 0.15, "mysql copy 15%"],
    [ROWS * 0.5, "mysql copy 50%"],
    [ROWS * 0.85, "mysql copy 85%"],
  ]) {
    kills.push(await killAt(w, cfg.id, progress, threshold, label, BUDGET_MS));
  }
  assertKillsHitRuns(t, kills);
  await waitIdle(w, cfg.id, "mysql first copy");
  await assertMyItemsEqual(w, my, "items");
  const runs = await runsOf(w, cfg.id);
  assert.equal(runs.filter((r) => r.status === "running").length, 0);
  const lastKill = Date.parse(kills.at(-1).resumed.started_at);
  const copiedAfter = runs.filter((r) => Date.parse(r.started_at) >= lastKill && r.status !== "error").reduce((s, r) => s + r.rows_upserted, 0);
  assert.ok(copiedAfter < ROWS * 0.5, `resumed from the checkpoint: ${copiedAfter} rows copied after the last crash`);
});

test("mysql incremental catch-up: killed three times, finished by the alarm, exact", async (t) => {
  // One transaction, so no sync can pass the inserts' cursor values before they commit.
  await my.query(
    `START TRANSACTION;
     ${myItemsInsert(ROWS + 1, ROWS + 50_000, "2026-05-01 00:00:00")};
     UPDATE items SET qty = coalesce(qty, 0) + 1, name = CONCAT('updated ', id),
       updated_at = TIMESTAMPADD(MICROSECOND, id * 1000, '2026-06-01 00:00:00') WHERE id % 2 = 0 AND id <= ${ROWS};
     COMMIT`,
  );
  // Progress as a share of the 125,000 changed rows, from the cursor: 50,000 inserts in May,
  // then 75,000 updates in June.
  const may = Date.parse("2026-05-01T00:02:30Z");
  const june = Date.parse("2026-06-01T00:00:00Z");
  const progress = async () => {
    const c = (await w.status(cfg.id)).cursor;
    const ms = c ? Date.parse(`${c}Z`) : 0;
    if (ms < may) return 0;
    if (ms < june) return (0.4 * (ms - may)) / 50_000;
    return 0.4 + (0.6 * (ms - june)) / 150_000;
  };
  const kills = [];
  for (const [threshold, label] of [
    [0.1, "mysql incremental early"],
    [0.6, "mysql incremental middle"],
    [0.95, "mysql incremental late"],
  ]) {
    kills.push(await killAt(w, cfg.id, progress, threshold, label, BUDGET_MS));
  }
  assertKillsHitRuns(t, kills);
  await waitIdle(w, cfg.id, "mysql incremental");
  await assertMyItemsEqual(w, my, "items");
  const r = await w.api("PUT", `/replication/configs/${cfg.id}`, { body: { enabled: false } });
  assert.equal(r.status, 200, r.text);
});
