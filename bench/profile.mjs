// A V8 CPU profile of the worker during one full sync, taken through workerd's inspector.
// Usage: node bench/profile.mjs [--rows N] [--runs K] [--batch N] [--out file.cpuprofile]
// Copies the table K times (default 3) into fresh targets, prints each copy's time and the
// median, and profiles the last copy: the functions with the most self time are printed, and
// the .cpuprofile opens in Chrome DevTools.
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import pg from "pg";
import { startWorker, sleep } from "../tests/harness.mjs";
import { inspector, pgAdmin, seed, workerdPids } from "./support.mjs";

const args = process.argv.slice(2);
const arg = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const ROWS = Number(arg("--rows", "200000"));
const OUT = arg("--out", "/tmp/edge-replica.cpuprofile");
const RUNS = Number(arg("--runs", "3"));
const BATCH = arg("--batch", null);
const PORT = 9300 + (process.pid % 500);
const DB = `er_prof_${process.pid}`;
const PG_URL = `postgres://postgres@127.0.0.1:5432/${DB}?sslmode=disable`;

// User + system CPU time of the processes, from /proc (clock ticks of 10 ms).
const cpuMs = (pids) => pids.reduce((a, p) => {
  const f = readFileSync(`/proc/${p}/stat`, "utf8").split(") ")[1].split(" ");
  return a + (Number(f[11]) + Number(f[12])) * 10;
}, 0);

// Milliseconds the processes' threads spent runnable but waiting for a core (schedstat).
const runWaitMs = (pids) => pids.reduce((a, p) => {
  let ns = 0;
  for (const t of readdirSync(`/proc/${p}/task`)) ns += Number(readFileSync(`/proc/${p}/task/${t}/schedstat`, "utf8").split(" ")[1]);
  return a + ns / 1e6;
}, 0);
// CPU time of the whole machine, all cores (/proc/stat, clock ticks of 10 ms).
const machineBusyMs = () => {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) * 10;
};

function summary(profile, top = 40) {
  const self = new Map();
  const dt = profile.timeDeltas;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  let total = 0;
  profile.samples.forEach((id, i) => {
    const n = byId.get(id);
    const f = n.callFrame;
    const key = `${f.functionName || "(anonymous)"} ${f.url ? f.url.split("/").pop() : ""}`.trim();
    self.set(key, (self.get(key) ?? 0) + (dt[i] ?? 0));
    total += dt[i] ?? 0;
  });
  const rows = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
  console.log(`self time, ${(total / 1000).toFixed(0)} ms sampled:`);
  for (const [k, us] of rows) console.log(`${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms  ${k}`);
}

await pgAdmin(`DROP DATABASE IF EXISTS ${DB}`);
await pgAdmin(`CREATE DATABASE ${DB}`);
const client = new pg.Client({ connectionString: PG_URL });
await client.connect();
let w;
try {
  await seed(client, ROWS);
  const others = new Set(workerdPids());
  w = await startWorker({ vars: { PG_URL }, miniflare: { inspectorPort: PORT } });
  const pids = workerdPids().filter((p) => !others.has(p));
  // Warm up: the first request compiles the module.
  await w.query("SELECT 1");
  const times = [];
  let result;
  for (let k = 1; k <= RUNS; k++) {
    const cfg = await w.createConfig({ source: { type: "postgres", url_secret: "PG_URL" }, source_table: "items",
      target_table: `items_${k}`, cursor_column: "updated_at", interval_seconds: 3600, enabled: false,
      ...(BATCH ? { batch_size: Number(BATCH) } : {}) });
    const ins = k === RUNS ? await inspector(PORT) : null;
    if (ins) {
      await ins.call("Profiler.enable");
      await ins.call("Profiler.setSamplingInterval", { interval: 200 });
      await ins.call("Profiler.start");
    }
    const t0 = performance.now();
    const c0 = cpuMs(pids), q0 = runWaitMs(pids), m0 = machineBusyMs();
    const runs = await w.syncUntilOk(cfg.id, 1000);
    const ms = performance.now() - t0;
    const cpu = cpuMs(pids) - c0, queued = runWaitMs(pids) - q0, others = machineBusyMs() - m0 - cpu;
    if (ins) {
      ({ result } = await ins.call("Profiler.stop"));
      ins.close();
    }
    times.push(ms);
    const src = runs.reduce((a, r) => a + r.source_ms, 0);
    const wr = runs.reduce((a, r) => a + r.write_ms, 0);
    console.log(`copy ${k}: ${ROWS} rows in ${ms.toFixed(0)} ms (${(ROWS / ms * 1000).toFixed(0)} rows/s), ${runs.length} runs; ` +
      `${src} ms waiting on the source, ${wr} ms writing; workerd CPU ${cpu.toFixed(0)} ms (${queued.toFixed(0)} ms waiting for a core), other processes' CPU ${others.toFixed(0)} ms`);
    await w.api("DELETE", `/replication/configs/${cfg.id}?drop_table=true`);
    await w.query("SELECT 1");
  }
  const med = [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)];
  console.log(`median: ${med.toFixed(0)} ms (${(ROWS / med * 1000).toFixed(0)} rows/s); profile of the last copy: ${OUT}`);
  writeFileSync(OUT, JSON.stringify(result.profile));
  summary(result.profile);
  await sleep(10);
} finally {
  await w?.dispose();
  await client.end();
  await pgAdmin(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
}
