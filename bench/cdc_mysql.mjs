// mode cdc for a mysql source, measured against the MariaDB with a row binlog
// (scripts/mariadb_binlog.sh, port 3307):
// - change throughput: N single-row UPDATEs, each its own transaction (autocommit in a stored
//   procedure), then syncs until caught up: changes/s applied, beside a full copy of the same
//   table in the same run and one N-row UPDATE transaction;
// - freshness: with interval_seconds 1 (the alarm drives it), the time from an origin commit
//   until the row is readable through /query, p50 and p99 over K commits.
// Prints one line per figure. Usage: node bench/cdc_mysql.mjs [--rows N] [--commits K]
import { startWorker, mysqlDatabase, MYSQL_BINLOG_URL, sleep } from "../tests/harness.mjs";
import { figure, freshness, numberArg, pct } from "./support.mjs";

const ROWS = numberArg("--rows", 100_000);
const COMMITS = numberArg("--commits", 200);

async function syncUntilOk(w, id) {
  const t0 = performance.now();
  let rows = 0;
  for (;;) {
    const r = await w.api("POST", `/replication/sync/${id}`);
    if (r.status !== 200) throw new Error(`sync failed: ${r.text}`);
    rows += r.json.result.rows_upserted;
    if (r.json.result.status === "ok") break;
  }
  return { ms: performance.now() - t0, rows };
}

const my = await mysqlDatabase({ prefix: "er_bench", adminUrl: MYSQL_BINLOG_URL });
for (const h of ["%", "localhost", "127.0.0.1"]) await my.admin(`GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '${my.user}'@'${h}'`);
const w = await startWorker({ vars: { MY_URL: `${my.url}?ssl-mode=disable` } });
try {
  await my.query("CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(100), qty INT, updated_at DATETIME(6) NOT NULL)");
  await my.query(`INSERT INTO items SELECT seq, CONCAT('item ', seq), seq % 1000, NOW(6) FROM seq_1_to_${ROWS}`);
  const source = { type: "mysql", url_secret: "MY_URL" };
  const mk = async (body) => (await w.api("POST", "/replication/configs", { body: { source, interval_seconds: 3600, enabled: false, ...body } })).json.result;

  const full = await mk({ source_table: "items", target_table: "items_full" });
  const copy = await syncUntilOk(w, full.id);
  figure("mysql_full_copy", ROWS / (copy.ms / 1000), `rows/s (${ROWS} rows, ${(copy.ms / 1000).toFixed(2)} s)`);

  const cdc = await mk({ source_table: "items", target_table: "items_cdc", mode: "cdc" });
  await syncUntilOk(w, cdc.id);

  // N single-row transactions at the origin: autocommit makes each UPDATE its own.
  await my.query(`CREATE PROCEDURE touch_each(n INT) BEGIN DECLARE i INT DEFAULT 1;
    WHILE i <= n DO UPDATE items SET qty = qty + 1 WHERE id = i; SET i = i + 1; END WHILE; END`);
  const t0 = performance.now();
  await my.query("CALL touch_each(?)", [ROWS]);
  const originMs = performance.now() - t0;
  const singles = await syncUntilOk(w, cdc.id);
  figure(
    "mysql_cdc_single_row_transactions",
    ROWS / (singles.ms / 1000),
    `changes/s (${ROWS} transactions of one UPDATE, ${(singles.ms / 1000).toFixed(2)} s; the origin took ${(originMs / 1000).toFixed(1)} s to commit them)`,
  );

  await my.query("UPDATE items SET name = CONCAT(name, '!')");
  const big = await syncUntilOk(w, cdc.id);
  figure("mysql_cdc_one_big_transaction", ROWS / (big.ms / 1000), `changes/s (one UPDATE of ${ROWS} rows, ${(big.ms / 1000).toFixed(2)} s)`);
  const [same] = await w.query("SELECT count(*) AS n FROM items_cdc a JOIN items_full b USING (id) WHERE a.qty = b.qty + 1 AND a.name = b.name || '!'");
  if (Number(same.n) !== ROWS) throw new Error(`the cdc replica has ${same.n} rows with both changes, expected ${ROWS}`);

  // Freshness through the alarm: interval_seconds 1.
  await my.query("CREATE TABLE fresh (id INT PRIMARY KEY, at DATETIME(6) NOT NULL DEFAULT NOW(6))");
  const fresh = await mk({ source_table: "fresh", mode: "cdc", interval_seconds: 1, enabled: true });
  for (let i = 0; i < 100; i++) {
    const r = await w.api("GET", `/replication/status/${fresh.id}`);
    if (r.json.result.state === "idle" && r.json.result.last_success_at) break;
    await sleep(100);
  }
  const delays = await freshness(w, COMMITS, (i) => my.query("INSERT INTO fresh (id) VALUES (?)", [i]));
  figure("mysql_cdc_freshness_p50", pct(delays, 50), `ms (commit to readable, interval_seconds 1, ${delays.length}/${COMMITS} commits seen)`);
  figure("mysql_cdc_freshness_p99", pct(delays, 99), "ms");
} finally {
  await w.dispose();
  await my.close();
}
