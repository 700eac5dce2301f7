// The benchmark: full sync speed against a native baseline, incremental cost, workerd's
// memory, and read latency during a sync. Prints one line per figure and adds a row to
// bench/RESULTS.md's table. Usage: node bench/bench.mjs [--rows N] [--batch N]
import { execFileSync, execSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, totalmem, tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { startWorker, ROOT, sleep } from "../tests/harness.mjs";
import { inspector, pgAdmin, seed, workerdPids } from "./support.mjs";
import { splitCopy } from "./split.mjs";

const args = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const ROWS = Number(arg("--rows", "1000000"));
const SMALL = Math.min(100_000, ROWS);
const BATCH = arg("--batch", null) === null ? null : Number(arg("--batch", null));
const DB = `er_bench_${process.pid}`;
const PG_URL = `postgres://postgres@127.0.0.1:5432/${DB}?sslmode=disable`;
const figures = [];
const figure = (name, value, unit) => {
  figures.push([name, value, unit]);
  console.log(`${name}: ${typeof value === "number" ? Number(value.toFixed(2)) : value} ${unit}`);
};

// Checksum of every row in a canonical text form, computed by each side's own SQL in key
// ranges (one SQLite string may not exceed 2 MB) and hashed here in order.
const CHUNK = 20000;
const PG_CHUNK = `SELECT count(*)::int AS n, coalesce(string_agg(id::text || '|' || coalesce(name,'') || '|' || price::text || '|' || qty::text
  || '|' || to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || '|' || payload::text, ',' ORDER BY id), '') AS s
  FROM items WHERE id > $1 AND id <= $2`;
const REPLICA_CHUNK = `SELECT count(*) AS n, coalesce(group_concat(id || '|' || coalesce(name,'') || '|' || price || '|' || qty || '|' || updated_at
  || '|' || payload, ','), '') AS s FROM (SELECT * FROM items WHERE id > ?1 AND id <= ?2 ORDER BY id)`;

async function verify(w, client, label) {
  const { createHash } = await import("node:crypto");
  const hs = createHash("md5");
  const hr = createHash("md5");
  const max = Number((await client.query("SELECT coalesce(max(id), 0)::int AS m FROM items")).rows[0].m);
  let ns = 0;
  let nr = 0;
  for (let lo = 0; lo < max; lo += CHUNK) {
    const src = (await client.query(PG_CHUNK, [lo, lo + CHUNK])).rows[0];
    const r = await w.api("POST", "/query", { body: { sql: REPLICA_CHUNK, params: [lo, lo + CHUNK] } });
    if (r.status !== 200) throw new Error(`${label}: replica check failed: ${r.text}`);
    const row = r.json.result[0];
    ns += src.n;
    nr += Number(row.n);
    hs.update(src.s + ";");
    hr.update(row.s + ";");
  }
  const [a, b] = [hs.digest("hex"), hr.digest("hex")];
  const total = Number((await w.api("POST", "/query", { body: { sql: "SELECT count(*) AS n FROM items" } })).json.result[0].n);
  if (ns !== nr || a !== b || total !== ns) {
    throw new Error(`${label}: replica differs from source (count ${nr}/${total} vs ${ns}, checksum ${b} vs ${a})`);
  }
  console.log(`verified ${label}: ${ns} rows, checksum ${a}`);
}

// Resident memory split as the kernel counts it: anonymous (heaps, wasm memory) and
// file-backed (pages of mapped files, e.g. a SQLite database file workerd maps).
const rssKb = (pid) => {
  try {
    const st = readFileSync(`/proc/${pid}/status`, "utf8");
    const get = (k) => Number(st.match(new RegExp(`${k}:\\s+(\\d+)`))?.[1] ?? 0);
    return { total: get("VmRSS"), anon: get("RssAnon"), file: get("RssFile") + get("RssShmem") };
  } catch { return { total: 0, anon: 0, file: 0 }; }
};

// CPU time (user + system) of processes, and of this process's waited-for children, in ms
// (clock ticks of 10 ms). Wall times on a shared machine swing with its load; CPU time much less.
const cpuMs = (pids) => pids.reduce((a, p) => {
  try {
    const f = readFileSync(`/proc/${p}/stat`, "utf8").split(") ")[1].split(" ");
    return a + (Number(f[11]) + Number(f[12])) * 10;
  } catch { return a; }
}, 0);
const childrenCpuMs = () => {
  const f = readFileSync("/proc/self/stat", "utf8").split(") ")[1].split(" ");
  return (Number(f[13]) + Number(f[14])) * 10;
};

// Syncs until the run is ok (a long copy ends in `partial` runs at the time budget);
// meanwhile samples workerd's RSS and, optionally, the latency of reads.
async function fullSync(w, id, { sampleReads = false } = {}) {
  const pids = workerdPids().filter((p) => !w.pidsBefore?.has(p));
  const peak = { total: 0, anon: 0, file: 0 };
  const latencies = [];
  let done = false;
  const sampler = (async () => {
    while (!done) {
      for (const p of pids) {
        const r = rssKb(p);
        for (const k of Object.keys(peak)) peak[k] = Math.max(peak[k], r[k]);
      }
      await sleep(50);
    }
  })();
  const reader = (async () => {
    while (sampleReads && !done) {
      const t = performance.now();
      const r = await w.api("POST", "/query", { body: { sql: "SELECT count(*) AS n FROM sqlite_master" } });
      if (r.status !== 200) throw new Error(`read during sync failed: ${r.text}`);
      latencies.push(performance.now() - t);
      await sleep(20);
    }
  })();
  const t0 = performance.now();
  const cpu0 = cpuMs(pids);
  let runs = 0;
  for (;;) {
    const r = await w.api("POST", `/replication/sync/${id}`);
    runs++;
    if (r.status !== 200) throw new Error(`sync failed: ${r.text}`);
    if (r.json.result.status === "ok") break;
  }
  const ms = performance.now() - t0;
  const cpu = cpuMs(pids) - cpu0;
  done = true;
  await sampler;
  await reader;
  return { ms, cpu, runs, peakKb: peak, latencies };
}

// workerd's RSS once V8 has collected everything dead (a full GC through the inspector), and
// the JS heap still in use: what of the peak was live, and what only not yet collected.
async function afterFullGc(w, port) {
  const pids = workerdPids().filter((p) => !w.pidsBefore?.has(p));
  let ins;
  try {
    ins = await inspector(port);
    // Sent to an idle isolate, collectGarbage went unanswered for a minute in two of five
    // tries; with cheap requests alongside, every call was answered.
    let waiting = true;
    const nudges = (async () => { while (waiting) { await w.query("SELECT 1"); await sleep(100); } })();
    let heap;
    try {
      await ins.call("HeapProfiler.enable");
      await ins.call("HeapProfiler.collectGarbage");
      heap = (await ins.call("Runtime.getHeapUsage")).result;
    } finally {
      waiting = false;
      await nudges;
    }
    await sleep(1000);
    const rss = { total: 0, anon: 0 };
    for (const p of pids) {
      const r = rssKb(p);
      rss.total = Math.max(rss.total, r.total);
      rss.anon = Math.max(rss.anon, r.anon);
    }
    return { rss, heapUsedMiB: heap.usedSize / 2 ** 20 };
  } catch (e) {
    console.log(`rss after a full GC: not measured (${e.message})`);
    return null;
  } finally {
    ins?.close();
  }
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : NaN;
};

// `direct`: workerd without Miniflare (tests/workerd_direct.mjs), whose sockets hand over what
// has arrived rather than Miniflare's 4 KiB per read.
async function runSize(n, { sampleReads, incremental, direct = false }) {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  await seed(client, n);
  const pidsBefore = new Set(workerdPids());
  const inspectorPort = 9800 + (process.pid % 100);
  const w = await startWorker({ vars: { PG_URL }, miniflare: { inspectorPort }, direct });
  w.pidsBefore = pidsBefore;
  try {
    const cfg = await w.api("POST", "/replication/configs", {
      body: { source: { type: "postgres", url_secret: "PG_URL" }, source_table: "items", cursor_column: "updated_at",
        interval_seconds: 3600, enabled: false, batch_size: BATCH },
    });
    if (cfg.status !== 201) throw new Error(cfg.text);
    const id = cfg.json.result.id;
    const full = await fullSync(w, id, { sampleReads });
    full.afterGc = await afterFullGc(w, inspectorPort);
    const runs = (await w.api("GET", `/replication/runs?config_id=${id}&limit=1000`)).json.result;
    full.sourceMs = runs.reduce((a, r) => a + r.source_ms, 0);
    full.writeMs = runs.reduce((a, r) => a + r.write_ms, 0);
    console.log(`full sync of ${n}: ${full.sourceMs} ms waiting on the source, ${full.writeMs} ms writing the replica`);
    await verify(w, client, `full sync of ${n}`);
    const out = { full };
    if (incremental) {
      await client.query(`UPDATE items SET qty = qty + 1, updated_at = now() WHERE id IN (SELECT id FROM items ORDER BY random() LIMIT 1000)`);
      let t = performance.now();
      let r = await w.api("POST", `/replication/sync/${id}`);
      out.inc1k = performance.now() - t;
      if (r.json.result.rows_upserted < 1000) throw new Error(`incremental copied ${r.json.result.rows_upserted} rows`);
      await verify(w, client, "incremental of 1,000 changes");
      t = performance.now();
      r = await w.api("POST", `/replication/sync/${id}`);
      out.noop = performance.now() - t;
      if (r.json.result.rows_upserted !== 0) throw new Error(`no-op sync copied ${r.json.result.rows_upserted} rows`);
    }
    return out;
  } finally {
    await w.dispose();
    await client.end();
  }
}

let nativeCpuMs = 0;
function nativeBaseline(n) {
  const dir = mkdtempSync(path.join(tmpdir(), "er-bench-"));
  const db = path.join(dir, "native.db");
  try {
    execFileSync("sqlite3", [db, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price TEXT, qty INTEGER, updated_at TEXT, payload TEXT)"]);
    const t0 = performance.now();
    const cpu0 = childrenCpuMs();
    execSync(
      `psql -X -q "${PG_URL}" -c "\\copy items to stdout (format csv)" | sqlite3 ${db} ".import --csv /dev/stdin items"`,
      { stdio: ["ignore", "inherit", "inherit"], shell: "/bin/bash" },
    );
    const ms = performance.now() - t0;
    nativeCpuMs = childrenCpuMs() - cpu0;
    const count = execFileSync("sqlite3", [db, "SELECT count(*) FROM items"], { encoding: "utf8" }).trim();
    if (Number(count) !== n) throw new Error(`native import has ${count} rows, expected ${n}`);
    return ms;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await pgAdmin(`DROP DATABASE IF EXISTS ${DB}`);
await pgAdmin(`CREATE DATABASE ${DB}`);
try {
  console.log(`rows: ${ROWS}; batch_size: ${BATCH ?? "engine default"}; machine: ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB`);
  figure("load_average_start", loadavg()[0], "(1 min)");
  const big = await runSize(ROWS, { sampleReads: true, incremental: true });
  const fullRate = ROWS / (big.full.ms / 1000);
  figure("full_sync", fullRate, `rows/s (${ROWS} rows, ${big.full.runs} runs, ${(big.full.ms / 1000).toFixed(1)} s)`);
  const nativeMs = nativeBaseline(ROWS);
  const nativeRate = ROWS / (nativeMs / 1000);
  figure("native_baseline", nativeRate, "rows/s (psql \\copy | sqlite3 .import)");
  // Per row, less sensitive to the machine's load than the rates: workerd's CPU during the
  // copy (the object's thread, the runtime's, SQLite's), and psql's + sqlite3's for the baseline.
  figure("workerd_cpu_per_row", (big.full.cpu * 1000) / ROWS, "µs (in-object copy)");
  figure("native_cpu_per_row", (nativeCpuMs * 1000) / ROWS, "µs (psql + sqlite3, PostgreSQL's server not counted)");
  // The split prototype, on the same table (build-split/, built by scripts/bench.sh).
  const splitClient = new pg.Client({ connectionString: PG_URL });
  await splitClient.connect();
  let split = null;
  try {
    split = await splitCopy(PG_URL, splitClient, ROWS);
  } finally {
    await splitClient.end();
  }
  if (split) figure("full_sync_split", ROWS / (split.ms / 1000), `rows/s (${ROWS} rows, fetcher and object in two workerd processes; bench-only prototype)`);
  figure("incremental_1k", big.inc1k, "ms");
  figure("noop_incremental", big.noop, "ms");
  // A copy's peak RSS, with its anonymous and file-backed parts; `where` prefixes them.
  const peakFigure = (name, kb, where = "") =>
    figure(name, kb.total / 1024, `MiB (${where}anonymous ${(kb.anon / 1024).toFixed(1)}, file-backed ${(kb.file / 1024).toFixed(1)})`);
  peakFigure(`rss_peak_${ROWS}`, big.full.peakKb);
  const gcFigure = (n, g) => g && figure(`rss_after_gc_${n}`, g.rss.total / 1024, `MiB (anonymous ${(g.rss.anon / 1024).toFixed(1)}; JS heap in use ${g.heapUsedMiB.toFixed(1)} MiB)`);
  gcFigure(ROWS, big.full.afterGc);
  figure("read_p50_during_sync", pct(big.full.latencies, 50), `ms (${big.full.latencies.length} reads)`);
  figure("read_p99_during_sync", pct(big.full.latencies, 99), "ms");
  figure("read_max_during_sync", Math.max(...big.full.latencies), "ms");
  let small = null;
  if (SMALL < ROWS) {
    small = await runSize(SMALL, { sampleReads: false, incremental: false });
    peakFigure(`rss_peak_${SMALL}`, small.full.peakKb);
    gcFigure(SMALL, small.full.afterGc);
  }
  // The same two copies in workerd alone. Miniflare routes a Worker's sockets through its
  // outbound worker, which hands the data over 4 KiB per read; on Cloudflare, as in workerd
  // alone, a read returns what has arrived (8 KiB and more here), so the copy makes about a
  // third as many reads, and each read leaves garbage in the runtime's heaps.
  let bigDirect = null;
  let smallDirect = null;
  if (SMALL < ROWS) {
    bigDirect = await runSize(ROWS, { sampleReads: false, incremental: false, direct: true });
    smallDirect = await runSize(SMALL, { sampleReads: false, incremental: false, direct: true });
    figure("full_sync_direct", ROWS / (bigDirect.full.ms / 1000), `rows/s (workerd alone; ratio to native ${(ROWS / (bigDirect.full.ms / 1000) / nativeRate).toFixed(2)})`);
    for (const [n, r] of [[ROWS, bigDirect], [SMALL, smallDirect]]) {
      peakFigure(`rss_peak_direct_${n}`, r.full.peakKb, "workerd alone; ");
    }
  }
  figure("ratio full_sync/native", fullRate / nativeRate, "(in-object copy; target >= 0.5)");
  // The split design's ceiling: the object's own share of the in-object copy, the time its
  // write steps took (batches into SQLite, checkpoints), with everything else overlapping
  // perfectly in another process and the hand-over free.
  if (split) figure("ratio split/native", (ROWS / (split.ms / 1000)) / nativeRate, "(bench-only prototype; target >= 0.8 to make it the default)");
  figure("write_steps", big.full.writeMs, `ms of the ${ROWS}-row copy (the object's share in a split copy)`);
  figure("ratio split_upper_bound/native", (ROWS / (big.full.writeMs / 1000)) / nativeRate, "(a bound, not a measurement)");
  figure("ratio incremental_1k/noop", big.inc1k / big.noop, "");
  figure("load_average_end", loadavg()[0], `(1 min; ${cpus().length} cores; other work on the machine slows every figure)`);
  if (small) {
    // workerd's whole process: the object's isolate (JS heap, wasm memory), its SQLite and the runtime.
    figure(`rss_${ROWS} - rss_${SMALL}`, (big.full.peakKb.total - small.full.peakKb.total) / 1024, "MiB (workerd peak RSS; target <= 32)");
    figure(`rss_anon_${ROWS} - rss_anon_${SMALL}`, (big.full.peakKb.anon - small.full.peakKb.anon) / 1024, "MiB");
    if (big.full.afterGc && small.full.afterGc) {
      figure(`rss_after_gc_${ROWS} - rss_after_gc_${SMALL}`, (big.full.afterGc.rss.total - small.full.afterGc.rss.total) / 1024, "MiB");
    }
    figure(`rss_direct_${ROWS} - rss_direct_${SMALL}`, (bigDirect.full.peakKb.total - smallDirect.full.peakKb.total) / 1024, "MiB (workerd alone, without Miniflare; target <= 32)");
    if (bigDirect.full.afterGc && smallDirect.full.afterGc) {
      figure(`rss_direct_after_gc_${ROWS} - rss_direct_after_gc_${SMALL}`, (bigDirect.full.afterGc.rss.total - smallDirect.full.afterGc.rss.total) / 1024, "MiB");
    }
  }

  const commit = execSync("git rev-parse --short HEAD", { cwd: ROOT, encoding: "utf8" }).trim();
  const results = path.join(ROOT, "bench", "RESULTS.md");
  if (!existsSync(results)) {
    writeFileSync(results, "# Benchmark results\n\nAppended by `npm run bench`; one row per run.\n\n| date | commit | machine | rows | figures |\n|---|---|---|---|---|\n");
  }
  const cells = figures.map(([n, v, u]) => `${n} ${typeof v === "number" ? Number(v.toFixed(2)) : v} ${u.split(" (")[0]}`.trim()).join("; ");
  const row = `| ${new Date().toISOString().slice(0, 10)} | ${commit} | ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB | ${ROWS} | ${cells} |`;
  // Into the table, below its last row: the analysis after the table stays in one piece.
  const lines = readFileSync(results, "utf8").split("\n");
  let end = lines.findIndex((l) => l.startsWith("| date | commit"));
  while (end >= 0 && lines[end + 1]?.startsWith("|")) end++;
  lines.splice(end + 1, 0, row);
  writeFileSync(results, lines.join("\n"));
} finally {
  await pgAdmin(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
}
