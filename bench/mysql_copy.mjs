// Full-copy speed from MariaDB/MySQL: copies an `items` table of N rows (the shape bench.mjs
// uses for PostgreSQL) into fresh targets K times and prints each copy's time and the median.
// A figure, not a test: it decides between socket implementations and shows regressions.
// Usage (after `source scripts/setup.sh` and a build): node bench/mysql_copy.mjs [--rows N] [--runs K]
import { mysqlDatabase, startWorker } from "../tests/harness.mjs";

const args = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const ROWS = arg("--rows", 200_000);
const RUNS = arg("--runs", 5);

const db = await mysqlDatabase({ prefix: "er_bench" });
try {
  await db.query(`CREATE TABLE items (id bigint PRIMARY KEY, name varchar(64), price decimal(12,2), qty int,
    updated_at datetime(6) NOT NULL, payload json)`);
  // Doubling inserts: MariaDB has no generate_series.
  await db.query("INSERT INTO items VALUES (1, 'item 1', 0.01, 1, '2026-01-01 00:00:00', JSON_OBJECT('k', 1, 'tag', 't1'))");
  for (let n = 1; n < ROWS; n *= 2) {
    await db.query(`INSERT INTO items SELECT id + ${n}, concat('item ', id + ${n}), ((id + ${n}) % 100000) / 100, (id + ${n}) % 1000,
      '2026-01-01 00:00:00' + INTERVAL (id + ${n}) * 1000 MICROSECOND, JSON_OBJECT('k', id + ${n}, 'tag', concat('t', (id + ${n}) % 17))
      FROM items WHERE id + ${n} <= ${ROWS}`);
  }
  const w = await startWorker({ vars: { MY_URL: db.url } });
  try {
    const times = [];
    for (let k = 0; k < RUNS; k++) {
      const cfg = await w.api("POST", "/replication/configs", {
        body: { source: { type: "mysql", url_secret: "MY_URL" }, source_table: "items", target_table: `items_${k}`,
          interval_seconds: 3600, enabled: false },
      });
      if (cfg.status !== 201) throw new Error(cfg.text);
      const t0 = performance.now();
      for (;;) {
        const r = await w.api("POST", `/replication/sync/${cfg.json.result.id}`);
        if (r.status !== 200) throw new Error(`sync failed: ${r.text}`);
        if (r.json.result.status === "ok") break;
      }
      const ms = performance.now() - t0;
      const n = Number((await w.query(`SELECT count(*) AS n FROM items_${k}`))[0].n);
      if (n !== ROWS) throw new Error(`copy ${k} has ${n} rows, expected ${ROWS}`);
      times.push(ms);
      console.log(`copy ${k + 1}: ${ms.toFixed(0)} ms (${(ROWS / (ms / 1000)).toFixed(0)} rows/s)`);
    }
    const median = [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)];
    console.log(`mysql_full_copy median: ${median.toFixed(0)} ms, ${(ROWS / (median / 1000)).toFixed(0)} rows/s (${ROWS} rows, ${RUNS} copies)`);
  } finally {
    await w.dispose();
  }
} finally {
  await db.close();
}
