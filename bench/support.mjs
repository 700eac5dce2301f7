// What bench.mjs and profile.mjs share: the benchmark table, finding workerd, its inspector.
import { execFileSync } from "node:child_process";
import pg from "pg";

export async function pgAdmin(sql) {
  const c = new pg.Client({ connectionString: "postgres://postgres@127.0.0.1:5432/test" });
  await c.connect();
  try { await c.query(sql); } finally { await c.end(); }
}

/** `items` with n rows: the six columns issue 6 names, small JSON payloads. */
export async function seed(client, n) {
  await client.query("DROP TABLE IF EXISTS items");
  await client.query(`CREATE TABLE items (id bigint PRIMARY KEY, name text, price numeric(12,2), qty int,
    updated_at timestamptz NOT NULL, payload jsonb)`);
  await client.query(`INSERT INTO items SELECT g, 'item ' || g, (g % 100000) / 100.0, g % 1000,
    '2026-01-01T00:00:00Z'::timestamptz + g * interval '1 millisecond',
    jsonb_build_object('k', g, 'tag', 't' || (g % 17)) FROM generate_series(1, $1) g`, [n]);
  await client.query("CREATE INDEX ON items (updated_at, id)");
  await client.query("ANALYZE items");
}

/** Pids of running workerd processes (pgrep run directly: through a shell it matches its shell). */
export function workerdPids() {
  try {
    return execFileSync("pgrep", ["-f", "workerd serve"], { encoding: "utf8" }).trim().split("\n").filter(Boolean).map(Number);
  } catch { return []; }
}

/**
 * A DevTools protocol session with the worker's isolate, through workerd's inspector on
 * `port` (Miniflare's `inspectorPort`). `call` fails after `timeoutMs` instead of hanging.
 */
export async function inspector(port, timeoutMs = 60_000) {
  const list = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const target = list.find((t) => t.webSocketDebuggerUrl?.includes("core:user")) ?? list[0];
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = fail; });
  let next = 1;
  const waiting = new Map();
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.id && waiting.has(msg.id)) { waiting.get(msg.id)(msg); waiting.delete(msg.id); }
  };
  const call = (method, params = {}) => new Promise((ok, fail) => {
    const id = next++;
    const timer = setTimeout(() => { waiting.delete(id); fail(new Error(`inspector: no answer to ${method} in ${timeoutMs} ms`)); }, timeoutMs);
    waiting.set(id, (msg) => { clearTimeout(timer); ok(msg); });
    ws.send(JSON.stringify({ id, method, params }));
  });
  return { call, close: () => ws.close() };
}

/**
 * Commit-to-readable delays: `insert(i)` commits row `i` of table `fresh` at the origin, one
 * every 50 ms, while a poller reads new ids from the replica. Returns the delays (ms) of the
 * rows seen within 30 s of the last commit, and how many were committed.
 */
export async function freshness(w, commits, insert) {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const committed = new Map();
  const seen = new Map();
  let stop = false;
  const poller = (async () => {
    let last = 0;
    while (!stop || seen.size < committed.size) {
      const rows = await w.query("SELECT id FROM fresh WHERE id > ? ORDER BY id", [last]);
      const now = performance.now();
      for (const r of rows) {
        if (!seen.has(r.id)) seen.set(r.id, now);
        last = Math.max(last, r.id);
      }
      if (stop && performance.now() - now > 30_000) break;
      await sleep(20);
    }
  })();
  for (let i = 1; i <= commits; i++) {
    await insert(i);
    committed.set(i, performance.now());
    await sleep(50);
  }
  const deadline = performance.now() + 30_000;
  while (seen.size < commits && performance.now() < deadline) await sleep(100);
  stop = true;
  await Promise.race([poller, sleep(1000)]);
  return [...committed].filter(([id]) => seen.has(id)).map(([id, t]) => seen.get(id) - t);
}

/** The number after `--name` on the command line, or `dflt`. */
export function numberArg(name, dflt) {
  const args = process.argv.slice(2);
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
}

/** Prints one figure line: `name: value unit`. */
export const figure = (name, value, unit) => console.log(`${name}: ${Number(value.toFixed(2))} ${unit}`);

/** The p-th percentile of `xs` (nearest rank). */
export function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}
