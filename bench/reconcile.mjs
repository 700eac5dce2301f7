// Delete reconciliation against a full refresh, on the benchmark table (bench/support.mjs's
// `items`): time and bytes read from PostgreSQL for one reconcile pass after 1,000 rows were
// deleted at random, for a pass with nothing deleted, and for a full refresh of the same table,
// all in the same run. Prints the figures, says whether the targets are met (a pass under 10% of
// the full refresh's time and under 1% of its bytes), checks the replicas against the origin,
// and adds a row to bench/RESULTS.md.
//
// Two connections to the same database: times are taken on a direct one; bytes are counted on
// the wire through a TCP proxy (server to client: what is read; client to server: what is sent,
// mostly keys), on configs of their own, since the proxy itself slows the transfer (a 200k-row
// full refresh took 3.5 s through it against 1.1 s without). Times are medians of `--rounds`
// rounds, each deleting its own 1,000 rows; the machine is shared, so single runs vary.
//
// Usage: npm run bench:reconcile [-- --rows N --deletes N --rounds N]
//   (defaults 1,000,000, 1,000 and 3; --log: the server logs every statement of the bench
//   database with its duration, to see where a pass's time goes)
import { execSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import net from "node:net";
import path from "node:path";
import { createHash } from "node:crypto";
import pg from "pg";
import { startWorker, ROOT } from "../tests/harness.mjs";
import { pgAdmin, seed } from "./support.mjs";

const args = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const ROWS = Number(arg("--rows", "1000000"));
const DELETES = Number(arg("--deletes", "1000"));
const ROUNDS = Number(arg("--rounds", "3"));
const DB = `er_bench_rc_${process.pid}`;
const url = (port) => `postgres://postgres@127.0.0.1:${port}/${DB}?sslmode=disable`;

/** A TCP proxy to PostgreSQL that counts the bytes in each direction. */
async function countingProxy() {
  const counts = { fromServer: 0, toServer: 0 };
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(5432, "127.0.0.1");
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {});
    }
    client.on("data", (d) => { counts.toServer += d.length; upstream.write(d); });
    upstream.on("data", (d) => { counts.fromServer += d.length; client.write(d); });
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  return {
    port: server.address().port,
    counts,
    reset() { counts.fromServer = 0; counts.toServer = 0; },
    async close() { for (const s of sockets) s.destroy(); await new Promise((ok) => server.close(ok)); },
  };
}

/** Runs `id` until a run is ok (a long one ends in partial runs): time, bytes, and its runs. */
async function measure(w, proxy, id, query = "") {
  proxy.reset();
  const t0 = performance.now();
  const runs = [];
  for (let i = 0; ; i++) {
    const r = await w.api("POST", `/replication/sync/${id}${i === 0 ? query : ""}`);
    if (r.status !== 200) throw new Error(`sync failed: ${r.text}`);
    runs.push(r.json.result);
    if (r.json.result.status === "ok") break;
  }
  const m = { ms: performance.now() - t0, bytesIn: proxy.counts.fromServer, bytesOut: proxy.counts.toServer, runs };
  m.deleted = runs.reduce((n, r) => n + r.rows_deleted, 0);
  m.sourceMs = runs.reduce((n, r) => n + r.source_ms, 0);
  m.writeMs = runs.reduce((n, r) => n + r.write_ms, 0);
  return m;
}

/** Every row of `table` in the replica against the origin's `items`: count and checksum, by id ranges. */
async function verify(w, client, table, label) {
  const CHUNK = 50000;
  const hs = createHash("md5");
  const hr = createHash("md5");
  let ns = 0;
  let nr = 0;
  const max = Number((await client.query("SELECT coalesce(max(id), 0) AS m FROM items")).rows[0].m);
  for (let lo = 0; lo < max; lo += CHUNK) {
    const src = (await client.query(
      `SELECT count(*)::int AS n, coalesce(string_agg(id::text || '|' || qty, ',' ORDER BY id), '') AS s FROM items WHERE id > $1 AND id <= $2`,
      [lo, lo + CHUNK])).rows[0];
    const r = await w.api("POST", "/query", { body: {
      sql: `SELECT count(*) AS n, coalesce(group_concat(id || '|' || qty, ','), '') AS s FROM (SELECT * FROM "${table}" WHERE id > ?1 AND id <= ?2 ORDER BY id)`,
      params: [lo, lo + CHUNK] } });
    if (r.status !== 200) throw new Error(`${label}: ${r.text}`);
    ns += src.n;
    nr += Number(r.json.result[0].n);
    hs.update(src.s + ";");
    hr.update(r.json.result[0].s + ";");
  }
  const total = Number((await w.query(`SELECT count(*) AS n FROM "${table}"`))[0].n);
  if (ns !== nr || total !== ns || hs.digest("hex") !== hr.digest("hex")) {
    throw new Error(`${label}: the replica differs from the origin (${nr}/${total} rows against ${ns})`);
  }
  console.log(`verified ${label}: ${ns} rows`);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mib = (b) => `${(b / 2 ** 20).toFixed(2)} MiB`;
const figures = [];
const figure = (name, value, unit) => {
  figures.push([name, value, unit]);
  console.log(`${name}: ${Number(value.toFixed(4))} ${unit}`);
};

await pgAdmin(`DROP DATABASE IF EXISTS ${DB}`);
await pgAdmin(`CREATE DATABASE ${DB}`);
if (args.includes("--log")) await pgAdmin(`ALTER DATABASE ${DB} SET log_min_duration_statement = 0`);
const client = new pg.Client({ connectionString: url(5432) });
await client.connect();
const proxy = await countingProxy();
let w;
try {
  console.log(`rows: ${ROWS}; deletes: ${DELETES} per round; rounds: ${ROUNDS}; machine: ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB`);
  await seed(client, ROWS);
  await client.query("VACUUM ANALYZE items");
  w = await startWorker({ vars: { PG_URL: url(5432), PG_COUNTED: url(proxy.port) } });
  const create = async (secret, body) => {
    const r = await w.api("POST", "/replication/configs", {
      body: { source: { type: "postgres", url_secret: secret }, source_table: "items", interval_seconds: 3600, enabled: false, ...body },
    });
    if (r.status !== 201) throw new Error(r.text);
    return r.json.result.id;
  };
  const inc = await create("PG_URL", { cursor_column: "updated_at", target_table: "items" });
  const full = await create("PG_URL", { target_table: "items_full" });
  const incCounted = await create("PG_COUNTED", { cursor_column: "updated_at", target_table: "items_counted" });
  const fullCounted = await create("PG_COUNTED", { target_table: "items_full_counted" });
  const first = await measure(w, proxy, inc);
  await measure(w, proxy, incCounted);
  console.log(`first copy: ${(first.ms / 1000).toFixed(1)} s in ${first.runs.length} run(s)`);

  const passes = [];
  const noops = [];
  const refreshes = [];
  let passBytes;
  let noopBytes;
  for (let round = 1; round <= ROUNDS; round++) {
    await client.query(`DELETE FROM items WHERE id IN (SELECT id FROM items ORDER BY random() LIMIT $1)`, [DELETES]);
    const pass = await measure(w, proxy, inc, "?reconcile=true");
    passBytes = await measure(w, proxy, incCounted, "?reconcile=true");
    for (const m of [pass, passBytes]) {
      if (m.deleted !== DELETES) throw new Error(`a pass deleted ${m.deleted} rows, not ${DELETES}: ${JSON.stringify(m.runs)}`);
    }
    const noop = await measure(w, proxy, inc, "?reconcile=true");
    noopBytes = await measure(w, proxy, incCounted, "?reconcile=true");
    if (noop.deleted !== 0 || noopBytes.deleted !== 0) throw new Error("a pass with nothing to delete deleted rows");
    const refresh = await measure(w, proxy, full);
    console.log(
      `round ${round}: pass ${pass.ms.toFixed(0)} ms (runs: ${pass.sourceMs} ms on PostgreSQL, ${pass.writeMs} ms on the replica), ` +
        `nothing to delete ${noop.ms.toFixed(0)} ms, full refresh ${refresh.ms.toFixed(0)} ms`,
    );
    passes.push(pass);
    noops.push(noop);
    refreshes.push(refresh);
  }
  await verify(w, client, "items", "after the passes");
  await verify(w, client, "items_counted", "after the passes (counted)");
  await verify(w, client, "items_full", "after the full refreshes");
  const refreshBytes = await measure(w, proxy, fullCounted);

  const passMs = median(passes.map((m) => m.ms));
  const noopMs = median(noops.map((m) => m.ms));
  const refreshMs = median(refreshes.map((m) => m.ms));
  const all = (ms) => ms.map((m) => m.ms.toFixed(0)).join(", ");
  figure("reconcile_pass", passMs, `ms (median of ${all(passes)}; ${DELETES} deleted)`);
  figure("reconcile_pass_bytes_in", passBytes.bytesIn, `bytes from PostgreSQL (${mib(passBytes.bytesIn)}; ${mib(passBytes.bytesOut)} sent)`);
  figure("reconcile_noop_pass", noopMs, `ms (median of ${all(noops)}; nothing deleted)`);
  figure("reconcile_noop_bytes_in", noopBytes.bytesIn, `bytes from PostgreSQL (${mib(noopBytes.bytesOut)} sent)`);
  figure("full_refresh", refreshMs, `ms (median of ${all(refreshes)})`);
  figure("full_refresh_bytes_in", refreshBytes.bytesIn, `bytes from PostgreSQL (${mib(refreshBytes.bytesIn)})`);
  const t = passMs / refreshMs;
  const b = passBytes.bytesIn / refreshBytes.bytesIn;
  figure("ratio pass/full time", t, t < 0.10 ? "(target < 0.10: met)" : "(target < 0.10: NOT met)");
  figure("ratio pass/full bytes", b, b < 0.01 ? "(target < 0.01: met)" : "(target < 0.01: NOT met)");
  figure("ratio noop/full time", noopMs / refreshMs, "");

  const commit = execSync("git rev-parse --short HEAD", { cwd: ROOT, encoding: "utf8" }).trim();
  const results = path.join(ROOT, "bench", "RESULTS.md");
  const cells = figures.map(([n, v, u]) => `${n} ${Number(v.toFixed(4))} ${u.split(" (")[0]}`.trim()).join("; ");
  const row = `| ${new Date().toISOString().slice(0, 10)} | ${commit} | ${cpus().length} cores | ${ROWS} | ${DELETES} | ${cells} |`;
  const header = "| date | commit | machine | rows | deleted | figures |";
  let text = readFileSync(results, "utf8");
  if (!text.includes(header)) {
    text += `\n## Delete reconciliation (\`npm run bench:reconcile\`)\n\nOne row per run of bench/reconcile.mjs.\n\n${header}\n|---|---|---|---|---|---|\n`;
  }
  const lines = text.split("\n");
  let end = lines.indexOf(header) + 1;
  while (lines[end + 1]?.startsWith("|")) end++;
  lines.splice(end + 1, 0, row);
  writeFileSync(results, lines.join("\n"));
} finally {
  await w?.dispose();
  await client.end();
  await proxy.close();
  await pgAdmin(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
}
