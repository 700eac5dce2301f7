// A source that stops answering in the middle of a run: its table locked at the origin by a
// transaction that does not end (a migration, say). The run must not wait forever: it fails
// before its lock expires, with an error that says why, and backs off; the alarm goes on
// syncing the healthy config; when the lock is released the stuck config recovers alone.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { startWorker, pgDatabase, waitFor } from "./harness.mjs";
import { runsOf } from "./faults_support.mjs";

// The engine's lock lasts the budget plus 30 s; a run must be over before then.
const BUDGET_MS = 1000;
const LOCK_MS = BUDGET_MS + 30_000;
let db;
let w;
let locker;

before(async () => {
  db = await pgDatabase();
  await db.query(`CREATE TABLE ticks (id bigint PRIMARY KEY, v text)`);
  await db.query(`CREATE TABLE locked (id bigint PRIMARY KEY, v text)`);
  await db.query(`INSERT INTO locked SELECT i, 'l' || i FROM generate_series(1, 1000) i`);
  w = await startWorker({ vars: { PG_URL: db.url, SYNC_TIME_BUDGET_MS: String(BUDGET_MS) } });
});

after(async () => {
  await locker?.end().catch(() => {});
  await w?.dispose();
  await db?.close();
});

const SOURCE = { type: "postgres", url_secret: "PG_URL" };

test("a run whose source stops answering fails before its lock expires; the others keep syncing", async () => {
  const healthy = await w.createConfig({ source: SOURCE, source_table: "ticks", cursor_column: "id", interval_seconds: 1 });
  await waitFor(async () => (await w.status(healthy.id)).state === "idle", { message: "the healthy config's first sync" });

  locker = new pg.Client({ connectionString: db.url });
  await locker.connect();
  await locker.query("BEGIN");
  await locker.query("LOCK TABLE locked IN ACCESS EXCLUSIVE MODE");
  const stuck = await w.createConfig({ source: SOURCE, source_table: "locked", interval_seconds: 1 });
  const created = Date.now();

  // Rows keep arriving at the healthy source; each must reach the replica on its own, at the
  // latest once the stuck run has given up.
  let n = 0;
  const latencies = [];
  const st = await waitFor(
    async () => {
      n++;
      await db.query("INSERT INTO ticks VALUES ($1, $2)", [n, `t${n}`]);
      const t0 = Date.now();
      await waitFor(async () => (await w.query("SELECT count(*) AS n FROM ticks"))[0].n === n, {
        timeoutMs: LOCK_MS + 5000,
        intervalMs: 100,
        message: `healthy row ${n}`,
      });
      latencies.push(Date.now() - t0);
      const s = await w.status(stuck.id);
      return s.consecutive_failures >= 2 ? s : null;
    },
    { timeoutMs: 3 * LOCK_MS, intervalMs: 200, message: "two failed runs of the stuck config" },
  );
  assert.equal(st.state, "error");
  assert.match(st.last_error, /no answer before the run's time limit/);
  assert.match(st.last_error, /url_secret PG_URL/);
  const runs = (await runsOf(w, stuck.id)).reverse();
  for (const r of runs.slice(0, 2)) {
    assert.equal(r.status, "error");
    assert.ok(r.duration_ms < LOCK_MS, `the run ended before its lock expired: ${JSON.stringify(r)}`);
  }
  assert.ok(Date.parse(runs[0].started_at) - created < 5000, "the stuck config's first run started at once");
  // The alarm runs due configs one after another, so a stuck run holds the healthy config
  // back until it gives up, never longer.
  assert.ok(Math.max(...latencies) < LOCK_MS, `the healthy config synced again once the stuck run gave up: ${latencies}`);
  // While the alarm waits on the stuck source, the object still serves everything else.
  await waitFor(async () => (await w.status(stuck.id)).state === "running", { message: "the stuck config's next attempt" });
  await db.query("INSERT INTO ticks VALUES ($1, 'manual')", [++n]);
  const t0 = Date.now();
  const manual = await w.api("POST", `/replication/sync/${healthy.id}`);
  assert.equal(manual.status, 200, `a manual sync is not held back by the stuck alarm run: ${manual.text}`);
  assert.equal(manual.json.result.rows_upserted, 1);
  assert.ok(Date.now() - t0 < 5000);

  await locker.query("ROLLBACK");
  await locker.end();
  locker = null;
  const ok = await waitFor(
    async () => {
      const s = await w.status(stuck.id);
      return s.state === "idle" && s.consecutive_failures === 0 ? s : null;
    },
    { timeoutMs: 60_000, message: "the stuck config to recover once the lock is gone" },
  );
  assert.equal(ok.target_row_count, 1000);
  for (const c of [healthy, stuck]) {
    const r = await w.api("PUT", `/replication/configs/${c.id}`, { body: { enabled: false } });
    assert.equal(r.status, 200, r.text);
  }
});
