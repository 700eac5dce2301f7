// The alarm syncs on its own; configs, state and replica tables survive a restart
// of workerd and the alarm keeps syncing afterwards. Disabled configs never sync
// on their own.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, pgDatabase, assertEnvelope, waitFor, sleep } from "./harness.mjs";

let db;
let w;

before(async () => {
  db = await pgDatabase();
  await db.query(`CREATE TABLE ticks (id bigint PRIMARY KEY, v text, updated_at timestamptz NOT NULL DEFAULT now())`);
  await db.query(`INSERT INTO ticks (id, v) SELECT i, 't' || i FROM generate_series(1, 100) i`);
  await db.query(`CREATE TABLE snapshot_src (id integer PRIMARY KEY, v text)`);
  await db.query(`INSERT INTO snapshot_src SELECT i, 's' || i FROM generate_series(1, 40) i`);
  w = await startWorker({
    vars: {
      PG_URL: db.url,
      // nothing listens on port 1: every sync of a config using it fails at once
      DOWN_PG_URL: "postgres://postgres@127.0.0.1:1/nowhere?sslmode=disable",
    },
  });
});

after(async () => {
  await w?.dispose();
  await db?.close();
});

const SOURCE = { type: "postgres", url_secret: "PG_URL" };
const count = async (table) => (await w.query(`SELECT count(*) AS n FROM ${table}`))[0].n;
const tableExists = async (table) =>
  (await w.query("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ?", [table]))[0].n === 1;

let inc;
let full;
let disabled;
let failing;

test("enabled configs sync with no manual trigger", async () => {
  inc = await w.createConfig({
    source: SOURCE,
    source_table: "ticks",
    cursor_column: "id",
    interval_seconds: 1,
  });
  full = await w.createConfig({
    source: SOURCE,
    source_table: "snapshot_src",
    target_table: "snapshot",
    mode: "full",
    interval_seconds: 2,
  });
  disabled = await w.createConfig({
    source: SOURCE,
    source_table: "ticks",
    target_table: "ticks_disabled",
    cursor_column: "id",
    interval_seconds: 1,
    enabled: false,
  });
  failing = await w.createConfig({
    source: { type: "postgres", url_secret: "DOWN_PG_URL" },
    source_table: "ticks",
    target_table: "ticks_failing",
    interval_seconds: 1,
  });
  assert.equal(inc.enabled, true, "enabled defaults to true");

  const st = await waitFor(
    async () => {
      const s = await w.status(inc.id);
      return s.last_success_at ? s : null;
    },
    { timeoutMs: 30_000, message: "the alarm's first sync of ticks" },
  );
  assert.ok(st.last_sync_at);
  assert.equal(st.last_error, null);
  await waitFor(async () => (await w.status(full.id)).last_success_at, {
    timeoutMs: 30_000,
    message: "the alarm's first sync of snapshot",
  });
  await waitFor(async () => (await count("ticks")) === 100, { message: "100 rows in ticks" });
  await waitFor(async () => (await count("snapshot")) === 40, { message: "40 rows in snapshot" });

  const all = await w.api("GET", "/replication/status");
  assertEnvelope(all, 200);
  const byId = Object.fromEntries(all.json.result.map((s) => [s.config_id, s]));
  assert.equal(byId[inc.id].state, "idle");
  assert.ok(byId[inc.id].next_sync_at, "next_sync_at is set for an enabled config");
  assert.equal(byId[disabled.id].state, "disabled");
});

test("new source rows reach the replica on their own", async () => {
  await db.query(`INSERT INTO ticks (id, v) SELECT i, 't' || i FROM generate_series(101, 150) i`);
  await db.query(`DELETE FROM snapshot_src WHERE id <= 10`);
  await db.query(`UPDATE snapshot_src SET v = 'changed' WHERE id = 40`);
  await waitFor(async () => (await count("ticks")) === 150, { timeoutMs: 30_000, message: "150 rows in ticks" });
  await waitFor(async () => (await count("snapshot")) === 30, { timeoutMs: 30_000, message: "30 rows in snapshot" });
  const [r] = await w.query("SELECT v FROM snapshot WHERE id = 40");
  assert.equal(r.v, "changed");
  const st = await w.status(inc.id);
  assert.equal(st.consecutive_failures, 0);
  assert.ok(st.total_rows_synced >= 150);
  const runs = await w.api("GET", `/replication/runs?config_id=${inc.id}`);
  assertEnvelope(runs, 200);
  assert.ok(runs.json.result.length >= 2, "the alarm ran it at least twice");
  assert.ok(runs.json.result.every((r) => r.status === "ok"), JSON.stringify(runs.json.result.slice(0, 3)));
});

test("a failing config backs off exponentially without holding back the others", async () => {
  const st = await waitFor(
    async () => {
      const s = await w.status(failing.id);
      return s.consecutive_failures >= 3 ? s : null;
    },
    { timeoutMs: 30_000, message: "three alarm-driven failures" },
  );
  assert.equal(st.state, "error");
  assert.ok(st.last_error, "last_error is set");
  assert.equal(st.last_success_at, null);
  // next run after the n-th failure: min(interval * 2^(n-1), max(3600, interval)) seconds later
  const n = st.consecutive_failures;
  const expected = Math.min(2 ** (n - 1), 3600) * 1000;
  const delay = Date.parse(st.next_sync_at) - Date.parse(st.last_sync_at);
  assert.ok(Math.abs(delay - expected) <= 1500, `after ${n} failures the next sync is ${delay} ms later, expected ~${expected}`);
  // it did not fail once a second: ~1 + 2 + 4 s between the first three failures
  const runs = (await w.api("GET", `/replication/runs?config_id=${failing.id}&limit=1000`)).json.result;
  assert.ok(runs.length >= 3 && runs.every((r) => r.status === "error"), JSON.stringify(runs.slice(0, 2)));
  const oldest3 = runs.slice(-3).map((r) => Date.parse(r.started_at));
  assert.ok(oldest3[0] - oldest3[2] >= 2500, `the 2nd and 3rd failures are spaced by >= 1 s + 2 s: ${runs.slice(-3).map((r) => r.started_at)}`);
  // meanwhile the healthy configs kept syncing
  const ok = await w.status(inc.id);
  assert.equal(ok.consecutive_failures, 0);
  assert.equal(ok.state, "idle");
  // stop it so it does not churn through the rest of the file
  assertEnvelope(await w.api("PUT", `/replication/configs/${failing.id}`, { body: { enabled: false } }), 200);
});

test("a disabled config never syncs on its own", async () => {
  const st = await w.status(disabled.id);
  assert.equal(st.state, "disabled");
  assert.equal(st.last_sync_at, null);
  assert.equal(await tableExists("ticks_disabled"), false);
  const runs = await w.api("GET", `/replication/runs?config_id=${disabled.id}`);
  assertEnvelope(runs, 200);
  assert.deepEqual(runs.json.result, []);
});

test("configs, state and replica tables survive a restart, and the alarm resumes", async () => {
  const configsBefore = (await w.api("GET", "/replication/configs")).json.result;
  const statusBefore = await w.status(inc.id);
  const oldUrl = w.url;

  await w.restart();
  assert.ok(w.url, `restarted (${oldUrl} -> ${w.url})`);

  const configsAfter = await w.api("GET", "/replication/configs");
  assertEnvelope(configsAfter, 200);
  assert.deepEqual(configsAfter.json.result, configsBefore);

  // replica tables and state are there before any new sync
  assert.ok((await count("ticks")) >= 150);
  assert.equal(await count("snapshot"), 30);
  const statusAfter = await w.status(inc.id);
  assert.ok(statusAfter.last_success_at >= statusBefore.last_success_at);
  assert.ok(statusAfter.total_rows_synced >= statusBefore.total_rows_synced);
  assert.equal(statusAfter.cursor === null, false, "the checkpoint survived");
  assert.equal((await w.status(disabled.id)).state, "disabled");

  // the alarm keeps syncing after the restart, without any request touching the configs
  await db.query(`INSERT INTO ticks (id, v) SELECT i, 't' || i FROM generate_series(151, 175) i`);
  await waitFor(async () => (await count("ticks")) === 175, {
    timeoutMs: 30_000,
    message: "rows inserted after the restart reach the replica",
  });
  const rows = await w.query("SELECT count(*) AS n, count(DISTINCT id) AS d, max(id) AS hi FROM ticks");
  assert.deepEqual(rows, [{ n: 175, d: 175, hi: 175 }]);
});

test("the alarm also resumes after a restart with no request in between", async () => {
  await db.query(`INSERT INTO ticks (id, v) SELECT i, 't' || i FROM generate_series(176, 200) i`);
  const restartedAt = Date.now();
  await w.restart();
  // give the alarm time to fire before the first request wakes the object up
  await sleep(5000);
  const runs = await w.api("GET", `/replication/runs?config_id=${inc.id}&limit=1`);
  assertEnvelope(runs, 200);
  assert.equal(runs.json.result.length, 1);
  assert.ok(
    Date.parse(runs.json.result[0].started_at) >= restartedAt - 1000,
    `a run started after the restart before any request: ${JSON.stringify(runs.json.result[0])}`,
  );
  await waitFor(async () => (await count("ticks")) === 200, {
    timeoutMs: 30_000,
    message: "rows inserted before the restart reach the replica",
  });
  // turning the configs off stops the alarm-driven runs
  for (const id of [inc.id, full.id]) {
    assertEnvelope(await w.api("PUT", `/replication/configs/${id}`, { body: { enabled: false } }), 200);
  }
  await sleep(1500);
  const n1 = (await w.api("GET", `/replication/runs?config_id=${inc.id}&limit=1000`)).json.result.length;
  await sleep(3000);
  const n2 = (await w.api("GET", `/replication/runs?config_id=${inc.id}&limit=1000`)).json.result.length;
  assert.equal(n2, n1, "no runs while disabled");
});
