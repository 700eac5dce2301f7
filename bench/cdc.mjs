// mode cdc, measured against a PostgreSQL in logical mode (scripts/pg_logical.sh, port 5433):
// - change throughput: N single-row UPDATEs, each its own transaction, then syncs until caught
//   up: changes/s applied, beside a full copy of the same table in the same run;
// - peak workerd RSS while applying one N-row UPDATE transaction, beside the full copy's;
// - freshness: with interval_seconds 1 (the alarm drives it), the time from an origin commit
//   until the row is readable through /query, p50 and p99 over K commits.
// Prints one line per figure. Usage: node bench/cdc.mjs [--rows N] [--commits K]
import pg from "pg";
import { readFileSync } from "node:fs";
import { startWorker, pgDatabase, PG_LOGICAL_URL, sleep } from "../tests/harness.mjs";
import { figure, freshness, numberArg, pct, workerdPids } from "./support.mjs";

const ROWS = numberArg("--rows", 100_000);
const COMMITS = numberArg("--commits", 200);
const rssKb = (pid) => {
  try {
    return Number(readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/)?.[1] ?? 0);
  } catch {
    return 0;
  }
};

/** Syncs `id` until a run is ok; returns the wall time, and workerd's peak RSS meanwhile and
 * how far it rose over the RSS just before (what this work added, whatever ran earlier). */
async function syncUntilOk(w, id, pids) {
  const base = Math.max(0, ...pids.map(rssKb));
  let peak = 0;
  let done = false;
  const sampler = (async () => {
    while (!done) {
      for (const p of pids) peak = Math.max(peak, rssKb(p));
      await sleep(20);
    }
  })();
  const t0 = performance.now();
  let rows = 0;
  for (;;) {
    const r = await w.api("POST", `/replication/sync/${id}`);
    if (r.status !== 200) throw new Error(`sync failed: ${r.text}`);
    rows += r.json.result.rows_upserted;
    if (r.json.result.status === "ok") break;
  }
  const ms = performance.now() - t0;
  done = true;
  await sampler;
  return { ms, rows, peakMiB: peak / 1024, riseMiB: Math.max(0, peak - base) / 1024 };
}

const db = await pgDatabase({ adminUrl: PG_LOGICAL_URL });
let before = new Set(workerdPids());
const w = await startWorker({ vars: { PG_URL: db.url } });
let pids = workerdPids().filter((p) => !before.has(p));
try {
  await db.query(`CREATE TABLE items (id bigint PRIMARY KEY, name text, qty int, updated_at timestamptz NOT NULL DEFAULT now())`);
  await db.query(`INSERT INTO items SELECT g, 'item ' || g, g % 1000, now() FROM generate_series(1, $1) g`, [ROWS]);
  const source = { type: "postgres", url_secret: "PG_URL" };
  const mk = async (body) => (await w.api("POST", "/replication/configs", { body: { source, interval_seconds: 3600, enabled: false, ...body } })).json.result;

  const full = await mk({ source_table: "items", target_table: "items_full" });
  const copy = await syncUntilOk(w, full.id, pids);
  figure("full_copy", ROWS / (copy.ms / 1000), `rows/s (${ROWS} rows, ${(copy.ms / 1000).toFixed(2)} s, peak RSS ${copy.peakMiB.toFixed(1)} MiB, +${copy.riseMiB.toFixed(1)} MiB)`);

  const cdc = await mk({ source_table: "items", target_table: "items_cdc", mode: "cdc" });
  await syncUntilOk(w, cdc.id, pids);

  // N single-row transactions at the origin.
  await db.query(`CREATE PROCEDURE touch_each(n int) LANGUAGE plpgsql AS $$
    BEGIN FOR i IN 1..n LOOP UPDATE items SET qty = qty + 1 WHERE id = i; COMMIT; END LOOP; END $$`);
  await db.query("CALL touch_each($1)", [ROWS]);
  const singles = await syncUntilOk(w, cdc.id, pids);
  figure("cdc_single_row_transactions", ROWS / (singles.ms / 1000), `changes/s (${ROWS} transactions of one UPDATE, ${(singles.ms / 1000).toFixed(2)} s)`);

  // One N-row transaction, applied by a fresh workerd (the state persists), so that its peak is
  // comparable with the full copy's, the first thing its workerd did.
  await db.query("UPDATE items SET name = name || '!'");
  before = new Set(workerdPids().filter((p) => !pids.includes(p)));
  await w.restart();
  pids = workerdPids().filter((p) => !before.has(p));
  const big = await syncUntilOk(w, cdc.id, pids);
  figure("cdc_one_big_transaction", ROWS / (big.ms / 1000), `changes/s (one UPDATE of ${ROWS} rows, ${(big.ms / 1000).toFixed(2)} s)`);
  figure("rss_peak_cdc_big_transaction", big.peakMiB, `MiB (full copy of the same table, first in a fresh workerd: ${copy.peakMiB.toFixed(1)} MiB)`);
  figure("rss_rise_cdc_big_transaction", big.riseMiB, `MiB over the RSS before the sync (full copy: +${copy.riseMiB.toFixed(1)} MiB)`);
  const same = await w.query("SELECT count(*) AS n FROM items_cdc a JOIN items_full b USING (id) WHERE a.qty = b.qty + 1 AND a.name = b.name || '!'");
  if (Number(same[0].n) !== ROWS) throw new Error(`the cdc replica has ${same[0].n} rows with both changes, expected ${ROWS}`);

  // Freshness through the alarm: interval_seconds 1.
  await db.query("CREATE TABLE fresh (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())");
  const fresh = await mk({ source_table: "fresh", mode: "cdc", interval_seconds: 1, enabled: true });
  for (let i = 0; i < 100; i++) {
    const r = await w.api("GET", `/replication/status/${fresh.id}`);
    if (r.json.result.state === "idle") break;
    await sleep(100);
  }
  const writer = new pg.Client({ connectionString: db.url });
  await writer.connect();
  const delays = await freshness(w, COMMITS, (i) => writer.query("INSERT INTO fresh (id) VALUES ($1)", [i]));
  await writer.end();
  figure("cdc_freshness_p50", pct(delays, 50), `ms (commit to readable, interval_seconds 1, ${delays.length}/${COMMITS} commits seen)`);
  figure("cdc_freshness_p99", pct(delays, 99), "ms");
} finally {
  await w.dispose();
  await db.close();
}
