// Regional read replicas, measured in one local workerd process (issue 14):
//  - replication delay: from the end of a primary run (its sync answer) until all three
//    replicas answer reads at its bookmark, for a 1,000-row incremental change and for a
//    full refresh of --rows rows (default 1,000,000);
//  - reads per second against one replica vs spread over three;
//  - the primary's full-copy throughput with three replicas pulling vs without replicas.
// Locally every object shares one thread of one process: replicas cannot add read capacity
// here and their pulls take time from the primary's thread; the figures show the costs of
// the design (log writes, pulls, applies), not production's parallelism.
// Usage: node bench/replicas.mjs [--rows N]
import pg from "pg";
import { startWorker } from "../tests/harness.mjs";
import { pgAdmin, seed } from "./support.mjs";

const args = process.argv.slice(2);
const ROWS = Number(args.includes("--rows") ? args[args.indexOf("--rows") + 1] : 1_000_000);
const LOCATIONS = ["weur", "apac", "enam"];
const DB = `er_bench_rep_${process.pid}`;
const PG_URL = `postgres://postgres@127.0.0.1:5432/${DB}?sslmode=disable`;
const SAMPLES = 30;

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const line = (name, value, unit) => console.log(`${name}: ${typeof value === "number" ? Number(value.toFixed(2)) : value} ${unit}`);

async function bookmarkAt(w, location) {
  const r = await w.api("POST", "/query", { body: { sql: "SELECT 1" }, headers: { "X-Replica-Location": location } });
  if (r.status !== 200) throw new Error(`${location}: ${r.text}`);
  // A replica still copying lets the primary answer: that is not the replica's position.
  if (r.headers.get("x-replica-served-by") !== location) return "";
  return r.headers.get("x-replica-bookmark");
}

/** Milliseconds from now until every replica answers at `bookmark` (polled every 5 ms). */
async function delayUntilAll(w, bookmark, t0) {
  const pending = new Set(LOCATIONS);
  for (;;) {
    for (const loc of [...pending]) if ((await bookmarkAt(w, loc)) >= bookmark) pending.delete(loc);
    if (pending.size === 0) return performance.now() - t0;
    if (performance.now() - t0 > 300_000) throw new Error(`replicas ${[...pending]} did not reach ${bookmark}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function syncAll(w, id) {
  let last;
  for (let i = 0; i < 500; i++) {
    last = await w.sync(id);
    if (last.status === "ok") return last;
  }
  throw new Error("sync did not finish");
}

async function readsPerSecond(w, locations, seconds = 5, clients = 16) {
  let n = 0;
  const until = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      let i = c;
      while (performance.now() < until) {
        const loc = locations[i++ % locations.length];
        const r = await w.api("POST", "/query", {
          token: "client",
          body: { sql: "SELECT * FROM items WHERE id = ?", params: [1 + ((i * 7919) % 1000)] },
          headers: { "X-Replica-Location": loc },
        });
        if (r.status !== 200) throw new Error(r.text);
        n++;
      }
    }),
  );
  return n / seconds;
}

await pgAdmin(`DROP DATABASE IF EXISTS ${DB}`);
await pgAdmin(`CREATE DATABASE ${DB}`);
const client = new pg.Client({ connectionString: PG_URL });
await client.connect();
try {
  await seed(client, ROWS);
  const source = { type: "postgres", url_secret: "PG_URL" };

  // The primary alone: the full copy's pace without read replicas.
  const solo = await startWorker({ vars: { PG_URL } });
  let soloMs;
  try {
    const c = await solo.createConfig({ source, source_table: "items", mode: "full", interval_seconds: 86400, enabled: false });
    const t = performance.now();
    await syncAll(solo, c.id);
    soloMs = performance.now() - t;
  } finally {
    await solo.dispose();
  }

  const w = await startWorker({ vars: { PG_URL, REPLICA_LOCATIONS: LOCATIONS.join(",") } });
  try {
    // A full refresh with three replicas following.
    const full = await w.createConfig({ source, source_table: "items", target_table: "items_full", mode: "full", interval_seconds: 86400, enabled: false });
    const refresh = [];
    let withMs = 0;
    for (let i = 0; i < 2; i++) {
      const t = performance.now();
      const run = await syncAll(w, full.id);
      withMs = performance.now() - t;
      refresh.push(await delayUntilAll(w, run.bookmark, performance.now()));
    }
    line(`full copy of ${ROWS} rows on the primary, no replicas`, ROWS / (soloMs / 1000), "rows/s");
    line(`full copy of ${ROWS} rows on the primary, 3 replicas following`, ROWS / (withMs / 1000), "rows/s");
    // The replicas are new at the first refresh: each copies the table page by page (a re-copy).
    // At the second they replay the refresh's batches from the primary's log.
    line(`replication delay after a first ${ROWS}-row full copy (new replicas copy it page by page)`, refresh[0], "ms");
    line(`replication delay after a ${ROWS}-row full refresh (replicas replay the log)`, refresh[1], "ms");

    // 1,000-row incremental changes.
    const inc = await w.createConfig({ source, source_table: "items", target_table: "items", cursor_column: "updated_at", interval_seconds: 86400, enabled: false });
    await syncAll(w, inc.id);
    await delayUntilAll(w, (await w.api("POST", "/query", { body: { sql: "SELECT 1" }, headers: { "X-Replica-Location": "primary" } })).headers.get("x-replica-bookmark"), performance.now());
    const small = [];
    for (let i = 0; i < SAMPLES; i++) {
      await client.query(`UPDATE items SET qty = qty + 1, updated_at = now() WHERE id > $1 AND id <= $1 + 1000`, [i * 1000]);
      const run = await syncAll(w, inc.id);
      small.push(await delayUntilAll(w, run.bookmark, performance.now()));
    }
    line(`replication delay after a 1000-row incremental change (${SAMPLES} samples), p50`, pct(small, 50), "ms");
    line(`replication delay after a 1000-row incremental change (${SAMPLES} samples), p99`, pct(small, 99), "ms");

    const one = await readsPerSecond(w, ["weur"]);
    const three = await readsPerSecond(w, LOCATIONS);
    line("point reads against one replica (16 clients)", one, "reads/s");
    line("point reads spread over three replicas (16 clients)", three, "reads/s");
  } finally {
    await w.dispose();
  }
} finally {
  await client.end();
  await pgAdmin(`DROP DATABASE IF EXISTS ${DB}`);
}
