// Helpers for the fault tests (tests/faults_*.test.mjs): killing the workerd process a test
// started, comparing a replica table with its source row by row, and a TCP proxy that can be
// cut to make a source go away and come back.
import { readdirSync, readFileSync } from "node:fs";
import net from "node:net";
import assert from "node:assert/strict";
import { pgDatabase, sleep, waitFor } from "./harness.mjs";

/** workerd processes that are children of this Node process (Miniflare spawns them directly). */
export function ownWorkerdPids() {
  const pids = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      // comm may contain spaces and parentheses: the ppid follows the last ')'.
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      const comm = stat.slice(stat.indexOf("(") + 1, close);
      const ppid = Number(stat.slice(close + 2).split(" ")[1]);
      if (ppid === process.pid && comm === "workerd") pids.push(Number(d));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

/**
 * SIGKILLs the worker's workerd (only the one this test started: a child of this process
 * whose command line has the worker's port) and waits until Miniflare has restarted it on
 * the same port and persist directory and it answers again. Returns the old and new pids.
 */
export async function killWorkerd(w) {
  const port = new URL(w.url).port;
  const mine = ownWorkerdPids().filter((pid) => {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      return cmd.includes("workerd") && cmd.includes("serve") && cmd.includes(`:${port}`);
    } catch {
      return false;
    }
  });
  // The first start binds port 0 and learns its port afterwards, so its command line may not
  // name the port; it is then the only workerd child this process has.
  const targets = mine.length > 0 ? mine : ownWorkerdPids();
  assert.equal(targets.length, 1, `exactly one workerd of ours to kill, found ${JSON.stringify(targets)}`);
  const [pid] = targets;
  process.kill(pid, "SIGKILL");
  await waitFor(
    () => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    },
    { timeoutMs: 10_000, intervalMs: 20, message: `workerd ${pid} to die` },
  );
  const restarted = await waitFor(
    async () => {
      const now = ownWorkerdPids().filter((p) => p !== pid);
      if (now.length !== 1) return null;
      try {
        const r = await fetch(`${w.url}/health`);
        return r.status === 200 ? now[0] : null;
      } catch {
        return null;
      }
    },
    { timeoutMs: 30_000, intervalMs: 50, message: "Miniflare to restart workerd" },
  );
  return { killed: pid, restarted };
}

/**
 * Canonical text of every row of the `items` shape, per id range, on both sides. Each chunk
 * stays far below SQLite's 2 MB string limit.
 */
const PG_ROW = `id::text || '|' || to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
  || '|' || coalesce(qty::text, '~') || '|' || coalesce(price::text, '~') || '|' || coalesce(name, '~')
  || '|' || coalesce(payload::text, '~') || '|' || coalesce(upper(encode(blob, 'hex')), '~')`;
const SQLITE_ROW = `CAST(id AS TEXT) || '|' || updated_at || '|' || coalesce(CAST(qty AS TEXT), '~')
  || '|' || coalesce(price, '~') || '|' || coalesce(name, '~') || '|' || coalesce(payload, '~')
  || '|' || CASE WHEN blob IS NULL THEN '~' ELSE hex(blob) END`;

export const ITEMS_DDL = `CREATE TABLE items (
  id bigint PRIMARY KEY,
  updated_at timestamptz NOT NULL,
  qty integer,
  price numeric(14,2),
  name text,
  payload jsonb,
  blob bytea)`;

/** Rows `lo..hi` of the items shape; some NULLs, multi-byte text, JSON and bytes. */
export const itemsInsert = (lo, hi, base = "2026-01-01T00:00:00Z") =>
  `INSERT INTO items SELECT g, '${base}'::timestamptz + g * interval '1 millisecond',
     CASE WHEN g % 7 = 0 THEN NULL ELSE g % 1000 END, (g % 100000) / 100.0,
     CASE WHEN g % 11 = 0 THEN '' ELSE 'item ' || g || ' ✓' END,
     jsonb_build_object('k', g, 'big', 12345678901234567890 + g),
     CASE WHEN g % 5 = 0 THEN NULL ELSE decode(lpad(to_hex(g), 8, '0'), 'hex') END
   FROM generate_series(${lo}, ${hi}) g`;

/**
 * Asserts that replica table `table` equals the source's `items` exactly: same count, same
 * key set, same value in every column of every row, no duplicate keys. Compares per id range
 * and names the first range that differs.
 */
/** A fresh PostgreSQL database holding `items` with rows 1..rows, indexed for keyset paging
 * (without the index every page sorts the whole table, and a test measures PostgreSQL). */
export async function itemsDatabase(rows, { index = true } = {}) {
  const db = await pgDatabase();
  await db.query(ITEMS_DDL);
  await db.query(itemsInsert(1, rows));
  if (index) await db.query("CREATE INDEX ON items (updated_at, id)");
  await db.query("ANALYZE items");
  return db;
}

/**
 * The replica table equals the source: same count, no duplicate keys, and every row's
 * canonical text equal, compared in key ranges (one SQLite string may not exceed 2 MB).
 * `source.totals()` gives `{ n, hi }`; `source.chunk(lo, hi)` gives `{ n, s }`, the rows
 * with lo < id <= hi joined by newlines in id order; `replicaRow` is the same text in SQLite.
 */
async function assertReplicaEqual(w, table, source, replicaRow, chunk) {
  const src = await source.totals();
  const [rep] = await w.query(`SELECT count(*) AS n, count(DISTINCT id) AS d, max(id) AS hi FROM "${table}"`);
  assert.equal(rep.d, rep.n, `${table}: duplicate keys in the replica`);
  assert.equal(rep.n, Number(src.n), `${table}: row count (replica ${rep.n}, source ${src.n})`);
  const hi = Math.max(Number(src.hi), Number(rep.hi ?? 0));
  for (let lo = 0; lo < hi; lo += chunk) {
    const s = await source.chunk(lo, lo + chunk);
    const [r] = await w.query(
      `SELECT count(*) AS n, coalesce(group_concat(r, char(10)), '') AS s
       FROM (SELECT ${replicaRow} AS r FROM "${table}" WHERE id > ?1 AND id <= ?2 ORDER BY id)`,
      [lo, lo + chunk],
    );
    if (r.s !== s.s) {
      const a = s.s.split("\n");
      const b = r.s.split("\n");
      const i = a.findIndex((x, k) => x !== b[k]);
      assert.fail(
        `${table}: ids ${lo + 1}..${lo + chunk} differ (source ${s.n} rows, replica ${r.n}); ` +
          `first difference: source ${JSON.stringify(a[i])} replica ${JSON.stringify(b[i])}`,
      );
    }
  }
}

export async function assertItemsEqual(w, db, table, chunk = 10_000) {
  const source = {
    totals: async () => (await db.query("SELECT count(*)::int AS n, coalesce(max(id), 0)::bigint AS hi FROM items")).rows[0],
    chunk: async (lo, hi) =>
      (
        await db.query(
          `SELECT count(*)::int AS n, coalesce(string_agg(${PG_ROW}, E'\\n' ORDER BY id), '') AS s
           FROM items WHERE id > $1 AND id <= $2`,
          [lo, hi],
        )
      ).rows[0],
  };
  await assertReplicaEqual(w, table, source, SQLITE_ROW, chunk);
}

/** A TCP proxy (to PostgreSQL by default) that can be switched off, cutting every connection, and on again. */
export async function tcpProxy(target = { host: "127.0.0.1", port: 5432 }, port = 0) {
  const sockets = new Set();
  let server = null;
  let listenPort = port;
  const proxy = {
    get port() {
      return listenPort;
    },
    async start() {
      server = net.createServer((client) => {
        const upstream = net.connect(target.port, target.host);
        for (const s of [client, upstream]) {
          sockets.add(s);
          s.on("close", () => sockets.delete(s));
          s.on("error", () => {});
        }
        client.pipe(upstream);
        upstream.pipe(client);
        client.on("close", () => upstream.destroy());
        upstream.on("close", () => client.destroy());
      });
      await new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(listenPort, "127.0.0.1", resolve);
      });
      listenPort = server.address().port;
      return proxy;
    },
    /** Stops listening and cuts every open connection. */
    async stop() {
      if (!server) return;
      const s = server;
      server = null;
      for (const c of sockets) c.destroy();
      sockets.clear();
      await new Promise((resolve) => s.close(() => resolve()));
    },
    connections: () => sockets.size / 2,
  };
  return proxy.start();
}

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
export async function closedPort() {
  const s = net.createServer();
  await new Promise((resolve) => s.listen(0, "127.0.0.1", resolve));
  const { port } = s.address();
  await new Promise((resolve) => s.close(resolve));
  return port;
}

/** Newest-first run records of a config (up to 1000). */
export async function runsOf(w, id) {
  const r = await w.api("GET", `/replication/runs?config_id=${id}&limit=1000`);
  assert.equal(r.status, 200, r.text);
  return r.json.result;
}

/** Polls `fn` quickly, ignoring errors (the worker may be restarting). */
export async function pollUntil(fn, { timeoutMs = 60_000, intervalMs = 20, message = "condition" } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch {
      // the worker is down or restarting: keep polling
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${message}`);
    await sleep(intervalMs);
  }
}

export const MY_ITEMS_DDL = `CREATE TABLE items (
  id BIGINT PRIMARY KEY,
  updated_at DATETIME(6) NOT NULL,
  qty INT NULL,
  price DECIMAL(14,2),
  name VARCHAR(100),
  blob_col VARBINARY(16),
  INDEX (updated_at, id))`;

/** Rows `lo..hi` of the MySQL items shape (MariaDB's sequence engine makes the numbers). */
export const myItemsInsert = (lo, hi, base = "2026-01-01 00:00:00") =>
  `INSERT INTO items SELECT seq, TIMESTAMPADD(MICROSECOND, seq * 1000, '${base}'),
     CASE WHEN seq % 7 = 0 THEN NULL ELSE seq % 1000 END, (seq % 100000) / 100,
     CASE WHEN seq % 11 = 0 THEN '' ELSE CONCAT('item ', seq, ' ✓') END,
     CASE WHEN seq % 5 = 0 THEN NULL ELSE UNHEX(LPAD(HEX(seq), 8, '0')) END
   FROM seq_${lo}_to_${hi}`;

const MY_ROW = `CONCAT(id, '|', DATE_FORMAT(updated_at, '%Y-%m-%dT%H:%i:%s.%f'), '|', COALESCE(CAST(qty AS CHAR), '~'),
  '|', COALESCE(CAST(price AS CHAR), '~'), '|', COALESCE(name, '~'), '|', COALESCE(HEX(blob_col), '~'))`;
const MY_SQLITE_ROW = `CAST(id AS TEXT) || '|' || updated_at || '|' || coalesce(CAST(qty AS TEXT), '~')
  || '|' || coalesce(price, '~') || '|' || coalesce(name, '~') || '|' || CASE WHEN blob_col IS NULL THEN '~' ELSE hex(blob_col) END`;

/** assertItemsEqual for the MySQL items shape. */
export async function assertMyItemsEqual(w, my, table, chunk = 10_000) {
  const source = {
    totals: async () => (await my.query("SELECT count(*) AS n, coalesce(max(id), 0) AS hi FROM items"))[0],
    chunk: async (lo, hi) =>
      (
        await my.query(
          `SELECT count(*) AS n, coalesce(GROUP_CONCAT(${MY_ROW} ORDER BY id SEPARATOR '\\n'), '') AS s FROM items WHERE id > ? AND id <= ?`,
          [lo, hi],
        )
      )[0],
  };
  await assertReplicaEqual(w, table, source, MY_SQLITE_ROW, chunk);
}

// ---- crash tests: progress, kills, and waiting for the alarm to finish

export async function stagingCount(w, id) {
  const [t] = await w.query("SELECT count(*) AS n FROM sqlite_master WHERE name = ?", [`tmp_stage_${id}`]);
  if (t.n === 0) return 0;
  return (await w.query(`SELECT count(*) AS n FROM tmp_stage_${id}`))[0].n;
}

/** Progress of a copy: rows in the staging table, or Infinity once a copy after `since` is done. */
export async function copyProgress(w, id, since) {
  const n = await stagingCount(w, id);
  if (n > 0) return n;
  const st = await w.status(id);
  return st.last_success_at && Date.parse(st.last_success_at) > since ? Infinity : 0;
}

/**
 * Waits until `progress()` reaches `threshold`, SIGKILLs workerd while a run of config `id`
 * is in progress, and checks that the alarm alone started a new run soon after the restart.
 */
export async function killAt(w, id, progress, threshold, label, budgetMs) {
  const seen = await pollUntil(
    async () => {
      const p = await progress();
      return p >= threshold ? p : null;
    },
    { timeoutMs: 120_000, intervalMs: 10, message: `${label}: progress ${threshold}` },
  );
  const [running] = (await runsOf(w, id)).filter((r) => r.status === "running");
  const killedAt = Date.now();
  const { killed, restarted } = await killWorkerd(w);
  assert.notEqual(killed, restarted);
  // No request may start a run: only the alarm, re-armed from storage, may.
  const resumed = await pollUntil(
    async () => (await runsOf(w, id)).filter((r) => Date.parse(r.started_at) >= killedAt - 50).at(-1),
    { timeoutMs: 90_000, intervalMs: 200, message: `${label}: a run started by the alarm after the restart` },
  );
  // A dead run's lock may delay the next run at most until its time budget has passed
  // (API.md); the slack covers the restart itself.
  if (running) {
    const delay = Date.parse(resumed.started_at) - Date.parse(running.started_at);
    assert.ok(
      delay <= budgetMs + 8000,
      `${label}: the run after the crash started ${delay} ms after the killed run (budget ${budgetMs} ms): ${JSON.stringify(resumed)}`,
    );
  }
  return { seen, running, resumed, label };
}

/** The kills must have hit runs in progress, or the phase tested nothing. */
export function assertKillsHitRuns(t, kills) {
  for (const k of kills) {
    t.diagnostic(`${k.label}: killed at ${k.seen} ${k.running ? `during run ${k.running.run_id}` : "between runs"}; next run ${k.resumed.run_id}`);
  }
  assert.ok(kills.filter((k) => k.running).length >= 2, "at least two of the three kills interrupted a run");
}

export async function waitIdle(w, id, label) {
  return waitFor(
    async () => {
      const s = await w.status(id);
      return s.state === "idle" && s.last_error === null ? s : null;
    },
    { timeoutMs: 180_000, intervalMs: 250, message: `${label}: an ok run` },
  );
}
