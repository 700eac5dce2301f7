// The split copy's bench-only prototype (src/worker/split_bench.rs, built with the
// `split-bench` feature into build-split/ by scripts/bench.sh): a fetcher Worker in one
// workerd process reads `items` from PostgreSQL and encodes its pages; the object, in a second
// workerd process, writes each page with its checkpoint. Both are started here; the copy is
// timed from the fetcher's request to its answer and checked against PostgreSQL.
import { existsSync } from "node:fs";
import path from "node:path";
import { startWorker, ROOT, ADMIN } from "../tests/harness.mjs";

export const SPLIT_BUILD = path.join(ROOT, "build-split", "index.js");

// Pages in flight between the fetcher and the object (SPLIT_DEPTH): each write's answer waits
// for its commit to be durable, so one at a time serializes those waits.
const DEPTH = Number(process.env.SPLIT_DEPTH ?? 8);

export async function splitCopy(pgUrl, client, rows) {
  if (!existsSync(SPLIT_BUILD)) return null;
  const miniflare = { scriptPath: SPLIT_BUILD };
  const object = await startWorker({ vars: { PG_URL: pgUrl }, miniflare });
  const fetcher = await startWorker({ vars: { PG_URL: pgUrl }, miniflare });
  try {
    // Both isolates compile the module before the clock starts, as the in-object copy's has.
    for (const w of [object, fetcher]) await w.api("POST", "/query", { body: { sql: "SELECT 1" } });
    const t0 = performance.now();
    const r = await fetch(`${fetcher.url}/__split/fetch`, {
      method: "POST",
      body: JSON.stringify({ table: "items", target: object.url, batch: 2000, depth: DEPTH, authorization: `Bearer ${ADMIN}` }),
    });
    const text = await r.text();
    const ms = performance.now() - t0;
    if (r.status !== 200) throw new Error(`split copy failed: ${r.status} ${text}`);
    const answer = JSON.parse(text);
    if (answer.rows !== rows) throw new Error(`split copy read ${answer.rows} rows, expected ${rows}`);
    // The same aggregates on both sides: every row arrived, with its values.
    const src = (await client.query(`SELECT count(*)::text AS n, sum(id)::text AS ids, sum(qty)::text AS q,
      sum(length(payload::text))::text AS p, max(name) AS name, sum(price)::text AS price FROM items`)).rows[0];
    const q = await object.api("POST", "/query", { body: { sql: `SELECT count(*) AS n, sum(id) AS ids, sum(qty) AS q,
      sum(length(payload)) AS p, max(name) AS name, sum(CAST(price AS REAL)) AS price FROM items_split` } });
    if (q.status !== 200) throw new Error(`split copy check failed: ${q.text}`);
    const dst = q.json.result[0];
    const same = String(dst.n) === src.n && String(dst.ids) === src.ids && String(dst.q) === src.q && String(dst.p) === src.p
      && dst.name === src.name && Math.abs(Number(dst.price) - Number(src.price)) < 1e-3 * Number(src.price);
    if (!same) throw new Error(`split copy differs: ${JSON.stringify(dst)} vs ${JSON.stringify(src)}`);
    console.log(`split copy of ${rows}: ${ms.toFixed(0)} ms, ${answer.pages} pages, ${DEPTH} in flight (the fetcher waited ${answer.write_wait_ms} ms ` +
      `for the object's writes, ${answer.read_wait_ms} ms for pages after them); checked (count, sums, max) against PostgreSQL`);
    return { ms, writeWaitMs: answer.write_wait_ms, readWaitMs: answer.read_wait_ms };
  } finally {
    await fetcher.dispose();
    await object.dispose();
  }
}
