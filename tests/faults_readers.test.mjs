// Full refresh under readers: while a full sync replaces a 100,000-row table (half the rows
// changed, a tenth deleted at the source), concurrent readers only ever see the old table or
// the new one: never a count, or a sum over the changed rows, that belongs to neither.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, assertEnvelope, waitFor } from "./harness.mjs";
import { assertItemsEqual, runsOf, itemsDatabase } from "./faults_support.mjs";

const ROWS = 100_000;
let db;
let w;

before(async () => {
  db = await itemsDatabase(ROWS, { index: false });
  // A budget shorter than the copy: the refresh spans several runs, and readers also land
  // between them, while the staging table is half full.
  w = await startWorker({ vars: { PG_URL: db.url, SYNC_TIME_BUDGET_MS: "700" } });
});

after(async () => {
  await w?.dispose();
  await db?.close();
});

const SOURCE = { type: "postgres", url_secret: "PG_URL" };
const READ = "SELECT count(*) AS n, sum(qty) AS q, count(DISTINCT id) AS d FROM items";

/** Reads `items` in a loop until `stop()` says so; returns what each read saw. */
async function reader(stop, route) {
  const seen = [];
  while (!stop()) {
    const r = await w.api("POST", route, { body: { sql: READ } });
    assertEnvelope(r, 200, `a read during the refresh (${route})`);
    const row = route === "/query" ? r.json.result[0] : Object.fromEntries(r.json.result.columns.map((c, i) => [c, r.json.result.rows[0][i]]));
    seen.push(`${row.n}/${row.q}/${row.d}`);
  }
  return seen;
}

test("readers see the old table or the new one during a full refresh, never a mix", async () => {
  const cfg = await w.createConfig({
    source: SOURCE,
    source_table: "items",
    mode: "full",
    batch_size: 1000,
    interval_seconds: 3600,
    enabled: false,
  });
  await w.syncUntilOk(cfg.id);
  await assertItemsEqual(w, db, "items");
  const [old] = await w.query(READ);

  await db.query("UPDATE items SET qty = coalesce(qty, 0) + 100000 WHERE id % 2 = 0");
  await db.query("DELETE FROM items WHERE id % 10 = 5");
  const fresh = (
    await db.query("SELECT count(*)::int AS n, sum(qty)::bigint AS q, count(DISTINCT id)::int AS d FROM items")
  ).rows[0];
  const allowed = new Set([`${old.n}/${old.q}/${old.d}`, `${fresh.n}/${Number(fresh.q)}/${fresh.d}`]);
  assert.equal(allowed.size, 2);

  let done = false;
  const readers = [reader(() => done, "/query"), reader(() => done, "/query"), reader(() => done, "/query/raw")];
  // The refresh is driven by hand here, run after run, so that reads overlap every phase of it.
  let runs;
  try {
    runs = await w.syncUntilOk(cfg.id);
  } finally {
    // A few more reads after the swap.
    await new Promise((r) => setTimeout(r, 300));
    done = true;
  }
  const seen = (await Promise.all(readers)).flat();
  const unexpected = [...new Set(seen)].filter((s) => !allowed.has(s));
  assert.deepEqual(unexpected, [], `reads outside {old, new} ${[...allowed]}`);
  assert.ok(seen.includes([...allowed][0]) && seen.includes([...allowed][1]), `reads saw both tables: ${[...new Set(seen)]}`);
  assert.ok(seen.length >= 20, `the object served reads during the refresh (${seen.length})`);
  assert.ok(runs.length >= 2, `the refresh spanned several runs: ${runs.map((r) => r.status)}`);
  assert.equal(runs.at(-1).rows_deleted, ROWS / 10);
  await assertItemsEqual(w, db, "items");

  // Once more with the alarm driving: change the source back and let it refresh on its own.
  await db.query("UPDATE items SET qty = qty - 100000 WHERE id % 2 = 0");
  const back = (await db.query("SELECT count(*)::int AS n, sum(qty)::bigint AS q, count(DISTINCT id)::int AS d FROM items")).rows[0];
  const allowed2 = new Set([`${fresh.n}/${Number(fresh.q)}/${fresh.d}`, `${back.n}/${Number(back.q)}/${back.d}`]);
  done = false;
  const readers2 = [reader(() => done, "/query"), reader(() => done, "/query/raw")];
  const before = (await runsOf(w, cfg.id)).length;
  assertEnvelope(await w.api("PUT", `/replication/configs/${cfg.id}`, { body: { enabled: true, interval_seconds: 1 } }), 200);
  try {
    await waitFor(
      async () => {
        const [r] = await w.query(READ);
        return `${r.n}/${r.q}/${r.d}` === [...allowed2][1];
      },
      { timeoutMs: 60_000, message: "the alarm's refresh to be swapped in" },
    );
  } finally {
    done = true;
  }
  assertEnvelope(await w.api("PUT", `/replication/configs/${cfg.id}`, { body: { enabled: false } }), 200);
  const seen2 = (await Promise.all(readers2)).flat();
  assert.deepEqual([...new Set(seen2)].filter((s) => !allowed2.has(s)), [], `reads outside ${[...allowed2]}`);
  assert.ok((await runsOf(w, cfg.id)).length > before, "the alarm ran the refresh");
  await assertItemsEqual(w, db, "items");
});
