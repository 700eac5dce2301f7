// Source outages, with nothing but the alarm driving: a config pointed at a closed port, a
// config whose database goes away in the middle of a copy (its connection terminated, new
// connections refused), a MySQL source whose network path is cut mid-copy, and a config whose
// default source is removed from the settings. Each run fails with a clear error; status shows
// `error`, a growing `consecutive_failures` and a `next_sync_at` that backs off as API.md
// says; a healthy config on the same replica keeps syncing meanwhile; when the sources come
// back the configs recover by themselves and their replicas are exact. No error, status or
// run record shows a password.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { startWorker, pgDatabase, PG_ADMIN_URL, waitFor, sleep, assertEnvelope, mysqlDatabase } from "./harness.mjs";
import {
  assertItemsEqual,
  assertMyItemsEqual,
  closedPort,
  ITEMS_DDL,
  itemsInsert,
  MY_ITEMS_DDL,
  myItemsInsert,
  tcpProxy,
  pollUntil,
  runsOf,
} from "./faults_support.mjs";

const CLOSED_PW = "closed-port-pw-5d1e";
const MIDRUN_PW = "midrun-pw-93c7";
let healthyDb;
let goneDb;
let w;
let port;
let proxy;

async function admin(sql) {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL });
  await c.connect();
  try {
    return await c.query(sql);
  } finally {
    await c.end();
  }
}

before(async () => {
  healthyDb = await pgDatabase();
  await healthyDb.query(`CREATE TABLE ticks (id bigint PRIMARY KEY, v text)`);
  await healthyDb.query(`INSERT INTO ticks SELECT i, 't' || i FROM generate_series(1, 10) i`);
  await healthyDb.query(ITEMS_DDL);
  await healthyDb.query(itemsInsert(1, 5000));
  goneDb = await pgDatabase();
  await goneDb.query(ITEMS_DDL);
  await goneDb.query(itemsInsert(1, 200_000));
  await goneDb.query("CREATE INDEX ON items (updated_at, id)");
  await goneDb.query("ANALYZE items");
  port = await closedPort();
  const url = (pw, p, name) => `postgres://postgres:${pw}@127.0.0.1:${p}/${name}?sslmode=disable`;
  w = await startWorker({
    vars: {
      PG_URL: healthyDb.url,
      // Nothing listens there until the test starts a proxy to PostgreSQL on that port.
      CLOSED_URL: url(CLOSED_PW, port, healthyDb.name),
      // PostgreSQL trusts local connections, so the password is sent and ignored.
      GONE_URL: url(MIDRUN_PW, 5432, goneDb.name),
    },
  });
});

after(async () => {
  await proxy?.stop();
  await w?.dispose();
  await admin(`ALTER DATABASE ${goneDb.name} ALLOW_CONNECTIONS true`).catch(() => {});
  await goneDb?.close();
  await healthyDb?.close();
});

const backoffMs = (interval, n) => Math.min(interval * 2 ** (n - 1), Math.max(3600, interval)) * 1000;

/** Every failure count seen in the statuses, with the schedule it produced. */
function recordBackoff(log, st) {
  if (st.state === "error" && !log.has(st.consecutive_failures)) {
    log.set(st.consecutive_failures, { last: st.last_sync_at, next: st.next_sync_at, error: st.last_error });
  }
}

function assertBackoff(log, label) {
  for (const [n, { last, next }] of log) {
    assert.equal(Date.parse(next) - Date.parse(last), backoffMs(1, n), `${label}: after failure ${n}, next_sync_at ${next}, last_sync_at ${last}`);
  }
}

function assertNoSecrets(text, label) {
  for (const pw of [CLOSED_PW, MIDRUN_PW]) assert.ok(!text.includes(pw), `${label} shows a password: ${text.slice(0, 500)}`);
}

test("outages back off, leave the healthy config alone, and recover by themselves", async () => {
  const healthy = await w.createConfig({
    source: { type: "postgres", url_secret: "PG_URL" },
    source_table: "ticks",
    cursor_column: "id",
    interval_seconds: 1,
  });
  const closed = await w.createConfig({
    source: { type: "postgres", url_secret: "CLOSED_URL" },
    source_table: "items",
    target_table: "items_closed",
    interval_seconds: 1,
  });
  const gone = await w.createConfig({
    source: { type: "postgres", url_secret: "GONE_URL" },
    source_table: "items",
    target_table: "items_gone",
    cursor_column: "updated_at",
    batch_size: 100,
    interval_seconds: 1,
  });

  // The database goes away in the middle of the copy.
  await pollUntil(
    async () => {
      const [t] = await w.query("SELECT count(*) AS n FROM sqlite_master WHERE name = ?", [`tmp_stage_${gone.id}`]);
      return t.n === 1 && (await w.query(`SELECT count(*) AS n FROM tmp_stage_${gone.id}`))[0].n >= 10_000;
    },
    { timeoutMs: 60_000, intervalMs: 20, message: "the copy of items_gone under way" },
  );
  await admin(`ALTER DATABASE ${goneDb.name} ALLOW_CONNECTIONS false`);
  const cut = await admin(
    `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE datname = '${goneDb.name}'`,
  );
  assert.ok(cut.rows[0].n >= 1, "the replica's connection was terminated");

  const closedLog = new Map();
  const goneLog = new Map();
  let tick = 10;
  const healthyLatencies = [];
  // Meanwhile new rows keep arriving at the healthy source and reach the replica on their own.
  await waitFor(
    async () => {
      tick++;
      await healthyDb.query("INSERT INTO ticks VALUES ($1, $2)", [tick, `t${tick}`]);
      const t0 = Date.now();
      await waitFor(async () => (await w.query("SELECT count(*) AS n FROM ticks"))[0].n === tick, {
        timeoutMs: 10_000,
        intervalMs: 50,
        message: `healthy row ${tick} to arrive`,
      });
      healthyLatencies.push(Date.now() - t0);
      recordBackoff(closedLog, await w.status(closed.id));
      recordBackoff(goneLog, await w.status(gone.id));
      return closedLog.has(4) && goneLog.has(4);
    },
    { timeoutMs: 60_000, intervalMs: 100, message: "four failures of each failing config" },
  );
  assertBackoff(closedLog, "closed port");
  assertBackoff(goneLog, "database gone");
  assert.ok(Math.max(...healthyLatencies) < 5000, `the healthy config kept syncing: ${healthyLatencies}`);
  const h = await w.status(healthy.id);
  assert.equal(h.state, "idle");
  assert.equal(h.consecutive_failures, 0);

  // Clear errors that name the source, its host and database, and never the password.
  assert.ok(closedLog.size >= 3 && goneLog.size >= 3, `several failure counts observed: ${[...closedLog.keys()]} / ${[...goneLog.keys()]}`);
  const closedErr = (await runsOf(w, closed.id)).at(-1).error;
  assert.match(closedErr, /CLOSED_URL/);
  assert.match(closedErr, new RegExp(`127\\.0\\.0\\.1:${port}/${healthyDb.name}`));
  const goneErrors = (await runsOf(w, gone.id)).filter((r) => r.status === "error").reverse().map((r) => r.error);
  assert.match(goneErrors[0], /GONE_URL/);
  assert.match(goneErrors[0], new RegExp(`${goneDb.name}`));
  assert.match(goneErrors[0], /terminat|connection|closed/i, `the mid-run failure says what happened: ${goneErrors[0]}`);
  assert.ok(goneErrors.slice(1).every((e) => /not currently accepting connections/.test(e)), JSON.stringify(goneErrors));
  // The runs themselves, spaced by the backoff: 1, 2, 4 s.
  for (const cfg of [closed, gone]) {
    const failed = (await runsOf(w, cfg.id)).filter((r) => r.status === "error").reverse();
    for (let i = 1; i < Math.min(failed.length, 4); i++) {
      const gap = Date.parse(failed[i].started_at) - Date.parse(failed[i - 1].finished_at);
      assert.ok(gap >= backoffMs(1, i) - 50, `config ${cfg.id}: failure ${i + 1} came ${gap} ms after failure ${i}`);
    }
  }

  // The sources come back: nothing but the alarm brings the configs back.
  proxy = await tcpProxy({ host: "127.0.0.1", port: 5432 }, port);
  await admin(`ALTER DATABASE ${goneDb.name} ALLOW_CONNECTIONS true`);
  for (const cfg of [closed, gone]) {
    const st = await waitFor(
      async () => {
        const s = await w.status(cfg.id);
        return s.state === "idle" && s.consecutive_failures === 0 ? s : null;
      },
      { timeoutMs: 60_000, intervalMs: 250, message: `config ${cfg.id} to recover` },
    );
    assert.equal(st.last_error, null);
  }
  await assertItemsEqual(w, healthyDb, "items_closed");
  await assertItemsEqual(w, goneDb, "items_gone");

  const texts = [
    JSON.stringify((await w.api("GET", "/replication/configs")).json),
    JSON.stringify((await w.api("GET", "/replication/status")).json),
    JSON.stringify((await w.api("GET", "/replication/runs?limit=1000")).json),
    w.logs(),
  ];
  for (const t of texts) assertNoSecrets(t, "the API or the worker's log");
  for (const cfg of [healthy, closed, gone]) {
    const r = await w.api("PUT", `/replication/configs/${cfg.id}`, { body: { enabled: false } });
    assert.equal(r.status, 200, r.text);
  }
  await sleep(100);
});

test("a config whose default source disappears fails on its own; the others keep syncing", async () => {
  // A StarbaseDB-style instance: configs without `source` use EXTERNAL_DB_*.
  const db = await pgDatabase();
  const { mkdtempSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const path = await import("node:path");
  const dir = mkdtempSync(path.join(tmpdir(), "edge-replica-outage-"));
  let w1;
  let w2;
  try {
    await db.query(`CREATE TABLE ticks (id bigint PRIMARY KEY, v text)`);
    await db.query(`INSERT INTO ticks SELECT i, 't' || i FROM generate_series(1, 5) i`);
    const external = {
      EXTERNAL_DB_TYPE: "postgresql",
      EXTERNAL_DB_HOST: "127.0.0.1",
      EXTERNAL_DB_PORT: "5432",
      EXTERNAL_DB_USER: "postgres",
      EXTERNAL_DB_DATABASE: db.name,
    };
    w1 = await startWorker({ vars: { PG_URL: db.url, ...external }, persistDir: dir });
    const viaDefault = await w1.createConfig({ source_table: "ticks", target_table: "ticks_default", cursor_column: "id", interval_seconds: 1 });
    const healthy = await w1.createConfig({
      source: { type: "postgres", url_secret: "PG_URL" },
      source_table: "ticks",
      cursor_column: "id",
      interval_seconds: 1,
    });
    await waitFor(async () => (await w1.status(viaDefault.id)).state === "idle", { message: "the default source's first sync" });
    await w1.dispose();
    w1 = null;

    // The operator removes the external database from the settings and restarts.
    w2 = await startWorker({ vars: { PG_URL: db.url }, persistDir: dir });
    for (let i = 6; i <= 9; i++) {
      await db.query("INSERT INTO ticks VALUES ($1, $2)", [i, `t${i}`]);
      await waitFor(async () => (await w2.query("SELECT count(*) AS n FROM ticks"))[0].n === i, {
        timeoutMs: 15_000,
        message: `row ${i} through the healthy config while the other cannot resolve its source`,
      });
    }
    const st = await waitFor(
      async () => {
        const s = await w2.status(viaDefault.id);
        return s.consecutive_failures >= 2 ? s : null;
      },
      { timeoutMs: 20_000, message: "the orphaned config to fail and back off" },
    );
    assert.equal(st.state, "error");
    assert.match(st.last_error, /no default external database/);
    assert.equal(Date.parse(st.next_sync_at) - Date.parse(st.last_sync_at), backoffMs(1, st.consecutive_failures));
    assert.equal((await w2.status(healthy.id)).consecutive_failures, 0);
    // Such a config cannot be updated without a source, but it can be deleted.
    assertEnvelope(await w2.api("PUT", `/replication/configs/${viaDefault.id}`, { body: { enabled: false } }), 400);
    assertEnvelope(await w2.api("DELETE", `/replication/configs/${viaDefault.id}`), 200);
    assertEnvelope(await w2.api("PUT", `/replication/configs/${healthy.id}`, { body: { enabled: false } }), 200);
  } finally {
    await w1?.dispose();
    await w2?.dispose();
    rmSync(dir, { recursive: true, force: true });
    await db.close();
  }
});

test("mysql: the network path is cut in the middle of a copy, then restored", async () => {
  const my = await mysqlDatabase({ prefix: "er_fault" });
  let mw;
  let cut;
  try {
    await my.query(MY_ITEMS_DDL);
    await my.query(myItemsInsert(1, 150_000));
    cut = await tcpProxy({ host: my.host, port: my.port });
    const viaProxy = `${my.url.replace(`:${my.port}/`, `:${cut.port}/`)}?ssl-mode=disable`;
    mw = await startWorker({ vars: { MY_URL: viaProxy, PG_URL: healthyDb.url } });
    const healthy = await mw.createConfig({ source: { type: "postgres", url_secret: "PG_URL" }, source_table: "ticks", cursor_column: "id", interval_seconds: 1 });
    const cfg = await mw.createConfig({
      source: { type: "mysql", url_secret: "MY_URL" },
      source_table: "items",
      cursor_column: "updated_at",
      batch_size: 200,
      interval_seconds: 1,
    });
    await pollUntil(
      async () => {
        const [t] = await mw.query("SELECT count(*) AS n FROM sqlite_master WHERE name = ?", [`tmp_stage_${cfg.id}`]);
        return t.n === 1 && (await mw.query(`SELECT count(*) AS n FROM tmp_stage_${cfg.id}`))[0].n >= 10_000;
      },
      { timeoutMs: 60_000, intervalMs: 20, message: "the mysql copy under way" },
    );
    await cut.stop();
    const log = new Map();
    let tick = (await mw.query("SELECT count(*) AS n FROM ticks"))[0].n;
    await waitFor(
      async () => {
        tick++;
        await healthyDb.query("INSERT INTO ticks VALUES ($1, $2) ON CONFLICT DO NOTHING", [1000 + tick, `m${tick}`]);
        await waitFor(async () => (await mw.query("SELECT count(*) AS n FROM ticks WHERE id = ?", [1000 + tick]))[0].n === 1, {
          timeoutMs: 10_000,
          intervalMs: 50,
          message: "a healthy row during the mysql outage",
        });
        recordBackoff(log, await mw.status(cfg.id));
        return log.has(3);
      },
      { timeoutMs: 60_000, intervalMs: 100, message: "three failures of the mysql config" },
    );
    assertBackoff(log, "mysql cut");
    const errors = (await runsOf(mw, cfg.id)).filter((r) => r.status === "error").map((r) => r.error);
    assert.ok(errors.length >= 3);
    for (const e of errors) {
      assert.match(e, /mysql via url_secret MY_URL/);
      assert.match(e, new RegExp(my.name));
      assert.ok(!e.includes(my.password), `no password in ${e}`);
    }
    assert.equal((await mw.status(healthy.id)).consecutive_failures, 0);

    await cut.start();
    await waitFor(
      async () => {
        const s = await mw.status(cfg.id);
        return s.state === "idle" && s.consecutive_failures === 0;
      },
      { timeoutMs: 60_000, intervalMs: 250, message: "the mysql config to recover" },
    );
    await assertMyItemsEqual(mw, my, "items");
    for (const id of [cfg.id, healthy.id]) {
      assertEnvelope(await mw.api("PUT", `/replication/configs/${id}`, { body: { enabled: false } }), 200);
    }
  } finally {
    await cut?.stop();
    await mw?.dispose();
    await my.close();
  }
});
