// MySQL / MariaDB source end to end: the worker in workerd talks to the real MariaDB at
// 127.0.0.1:3306 over its own protocol client, directly (url_secret) and through a local
// Hyperdrive binding. Full sync of mixed rows, every edge value compared exactly,
// incremental with equal cursors across batches, and clear failures that keep the alarm going.
//
// Environment: EDGE_REPLICA_TEST_MYSQL  admin URL (default mysql://root@127.0.0.1:3306)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, assertEnvelope, mysqlDatabase } from "./harness.mjs";


let db; // { name, user, url, query, close }
let w;

before(async () => {
  db = await mysqlDatabase();
  w = await startWorker({
    vars: {
      MY_URL: `${db.url}?ssl-mode=disable`,
      MY_BAD_PW_URL: `mysql://${db.user}:not-${db.password}@127.0.0.1:3306/${db.name}`,
      // nothing listens on port 1
      MY_DOWN_URL: `mysql://${db.user}:${db.password}@127.0.0.1:1/${db.name}`,
    },
    hyperdrives: { MYSQL_HD: db.url },
  });
});

after(async () => {
  await w?.dispose();
  await db?.close();
});

const SOURCE = { type: "mysql", url_secret: "MY_URL" };
const ROWS = 3000;

/** Replica rows through POST /query, 1000 at a time. */
async function replicaRows(sql) {
  const out = [];
  for (let offset = 0; ; offset += 1000) {
    const rows = await w.query(`${sql} LIMIT 1000 OFFSET ?`, [offset]);
    out.push(...rows);
    if (rows.length < 1000) return out;
  }
}

const byBigId = (a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : BigInt(a.id) > BigInt(b.id) ? 1 : 0);

test("full sync of a few thousand mixed rows, ids on both sides of 2^63", async () => {
  await db.query(`
    CREATE TABLE items (
      id BIGINT UNSIGNED PRIMARY KEY,
      name VARCHAR(100),
      qty INT,
      price DECIMAL(14,3),
      ratio DOUBLE,
      active TINYINT(1),
      created_at TIMESTAMP(6) NULL,
      payload VARBINARY(32)
    )`);
  // The writer's session is not UTC; TIMESTAMPs must still reach the replica in UTC.
  await db.query(`SET time_zone = '+03:00'`);
  await db.query(String.raw`
    INSERT INTO items SELECT
      CASE WHEN seq % 10 = 0 THEN 18446744073709551615 - seq
           WHEN seq % 10 = 5 THEN CAST(9223372036854775807 AS UNSIGNED) + seq
           ELSE seq END,
      CASE seq % 7
        WHEN 0 THEN NULL
        WHEN 1 THEN ''
        WHEN 2 THEN CONCAT('héllo wörld ', seq)
        WHEN 3 THEN CONCAT('😀 emoji 🎉 ', seq, ' 日本語')
        WHEN 4 THEN CONCAT('line', CHAR(10 USING utf8mb4), 'break', CHAR(9 USING utf8mb4), seq)
        WHEN 5 THEN CONCAT('quotes '' " \\ %', seq)
        ELSE CONCAT('plain ', seq) END,
      CASE WHEN seq % 13 = 0 THEN NULL ELSE (seq % 1000) - 500 END,
      CASE WHEN seq % 17 = 0 THEN NULL ELSE ROUND(seq * 1.371, 3) END,
      CASE WHEN seq % 19 = 0 THEN NULL ELSE seq / 7e0 END,
      CASE WHEN seq % 11 = 0 THEN NULL ELSE seq % 2 END,
      CASE WHEN seq % 23 = 0 THEN NULL
           ELSE TIMESTAMPADD(MICROSECOND, seq * 3601123457, '2020-01-01 00:00:00') END,
      CASE WHEN seq % 29 = 0 THEN NULL
           WHEN seq % 31 = 0 THEN ''
           WHEN seq % 9 = 0 THEN x'000100ff'
           ELSE UNHEX(MD5(seq)) END
    FROM (SELECT CAST(seq AS SIGNED) AS seq FROM seq_1_to_${ROWS}) AS g`);
  await db.query(`SET time_zone = '+00:00'`);

  const cfg = await w.createConfig({ source: SOURCE, source_table: "items", mode: "full", batch_size: 700, interval_seconds: 3600, enabled: false });
  assert.deepEqual(cfg.source, SOURCE);
  const runs = await w.syncUntilOk(cfg.id);
  assert.equal(runs.reduce((s, r) => s + r.rows_upserted, 0), ROWS);
  assert.ok(runs.reduce((s, r) => s + r.batches, 0) >= 5, JSON.stringify(runs));
  await assertItemsMatch("items");
});

async function assertItemsMatch(table) {
  const src = (
    await db.execute(`
      SELECT CAST(id AS CHAR) AS id, name, CAST(qty AS CHAR) AS qty, CAST(price AS CHAR) AS price, ratio, active,
             DATE_FORMAT(created_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS created_at, HEX(payload) AS payload
      FROM items`)
  )
    .map((r) => ({ ...r, ratio: r.ratio === null ? null : Number(r.ratio), active: r.active === null ? null : Number(r.active) }))
    .sort(byBigId);
  const rep = (
    await replicaRows(`
      SELECT CAST(id AS TEXT) AS id, typeof(id) AS t_id, name, typeof(name) AS t_name, CAST(qty AS TEXT) AS qty,
             price, typeof(price) AS t_price, ratio, typeof(ratio) AS t_ratio, active, typeof(active) AS t_active,
             created_at, CASE WHEN payload IS NULL THEN NULL ELSE hex(payload) END AS payload, typeof(payload) AS t_payload
      FROM ${table} ORDER BY rowid`)
  ).sort(byBigId);
  assert.equal(rep.length, src.length, "row count");
  for (let i = 0; i < src.length; i++) {
    const r = rep[i];
    // Unsigned ids above i64::MAX are text, the rest integers, side by side in one column.
    assert.equal(r.t_id, BigInt(r.id) > 9223372036854775807n ? "text" : "integer", `id ${r.id}`);
    assert.equal(r.t_name, src[i].name === null ? "null" : "text");
    assert.equal(r.t_price, src[i].price === null ? "null" : "text");
    assert.equal(r.t_ratio, src[i].ratio === null ? "null" : "real");
    assert.equal(r.t_active, src[i].active === null ? "null" : "integer");
    assert.equal(r.t_payload, src[i].payload === null ? "null" : "blob");
    const got = Object.fromEntries(Object.keys(src[i]).map((k) => [k, r[k]]));
    assert.deepEqual(got, src[i], `row ${i}`);
  }
}

test("every edge value arrives exactly", async () => {
  await db.query(`
    CREATE TABLE edge (
      id INT PRIMARY KEY,
      u64 BIGINT UNSIGNED, i64 BIGINT, u32 INT UNSIGNED, i8 TINYINT,
      dec65 DECIMAL(65,30), f FLOAT, d DOUBLE,
      dt DATETIME(6), dt0 DATETIME, ts TIMESTAMP(6) NULL, tm TIME, tm6 TIME(6), dte DATE, y YEAR,
      j JSON, bl BLOB, bin BINARY(4), b1 BIT(1), b64 BIT(64), flag TINYINT(1), bo BOOLEAN,
      e ENUM('small','Medium','large'), s SET('a','b','c'), txt TEXT, vc VARCHAR(20), ch CHAR(5)
    )`);
  await db.query(`SET time_zone = '+05:30', sql_mode = ''`);
  await db.query(String.raw`INSERT INTO edge VALUES (1,
      18446744073709551615, -9223372036854775808, 4294967295, -128,
      '-12345678901234567890123456789012345.123456789012345678901234567891', 0.1, 0.1,
      '2026-01-02 03:04:05.123456', '2026-01-02 03:04:05', '2026-01-02 08:34:05.654321',
      '-838:59:59', '838:59:59.000001', '2026-01-02', 2026,
      '{"big": 123456789012345678901234567890, "f": 1e400}', x'00FF00', x'610062', b'1',
      b'1111111111111111111111111111111111111111111111111111111111111111', 1, TRUE,
      'Medium', 'a,c', '😀 emoji 🎉 ''q'' \\', '', 'ab')`);
  await db.query(`INSERT INTO edge VALUES (2,
      9223372036854775807, 9223372036854775807, 0, 127,
      '0.000000000000000000000000000001', -1.5, 1.7976931348623157e308,
      '0000-00-00 00:00:00', '1000-01-01 00:00:00', '1970-01-01 05:30:01.000001',
      '00:00:00', '-00:00:00.000001', '0000-00-00', 0,
      '[]', '', x'00000000', b'0', b'0', 0, FALSE,
      '', '', '', 'NULL', '')`);
  await db.query(`INSERT INTO edge (id, u64) VALUES (3, 9223372036854775808)`);
  await db.query(`SET time_zone = '+00:00', sql_mode = DEFAULT`);

  const cfg = await w.createConfig({ source: { type: "mysql", url_secret: "MY_URL" }, source_table: `\`${db.name}\`.\`edge\``, interval_seconds: 3600, enabled: false });
  assert.equal(cfg.target_table, "edge");
  assert.equal(cfg.mode, "full");
  const run = await w.sync(cfg.id);
  assert.equal(run.status, "ok", JSON.stringify(run));
  assert.equal(run.rows_upserted, 3);

  const cols = [
    "u64", "i64", "u32", "i8", "dec65", "f", "d", "dt", "dt0", "ts", "tm", "tm6", "dte", "y", "j", "bl", "bin",
    "b1", "b64", "flag", "bo", "e", "s", "txt", "vc", "ch",
  ];
  const sel = cols
    .map((c) => `CASE typeof(${c}) WHEN 'blob' THEN hex(${c}) ELSE CAST(${c} AS TEXT) END AS ${c}, typeof(${c}) AS t_${c}`)
    .join(", ");
  const rows = await w.query(`SELECT id, ${sel}, f AS f_num, d AS d_num FROM edge ORDER BY id`);
  const expect = (row, c, value, type) => {
    assert.equal(row[`t_${c}`], type, `type of ${c} in row ${row.id}`);
    assert.equal(row[c], value, `${c} in row ${row.id}`);
  };
  const [r1, r2, r3] = rows;
  expect(r1, "u64", "18446744073709551615", "text");
  expect(r1, "i64", "-9223372036854775808", "integer");
  expect(r1, "u32", "4294967295", "integer");
  expect(r1, "i8", "-128", "integer");
  expect(r1, "dec65", "-12345678901234567890123456789012345.123456789012345678901234567891", "text");
  expect(r1, "f", "0.1", "real");
  assert.equal(r1.f_num, 0.1, "FLOAT 0.1 is the double 0.1");
  assert.equal(r1.d_num, 0.1);
  expect(r1, "dt", "2026-01-02T03:04:05.123456", "text");
  expect(r1, "dt0", "2026-01-02T03:04:05", "text");
  expect(r1, "ts", "2026-01-02T03:04:05.654321Z", "text");
  expect(r1, "tm", "-838:59:59", "text");
  expect(r1, "tm6", "838:59:59.000001", "text");
  expect(r1, "dte", "2026-01-02", "text");
  expect(r1, "y", "2026", "integer");
  expect(r1, "j", '{"big": 123456789012345678901234567890, "f": 1e400}', "text");
  expect(r1, "bl", "00FF00", "blob");
  expect(r1, "bin", "61006200", "blob");
  expect(r1, "b1", "1", "integer");
  expect(r1, "b64", "18446744073709551615", "text");
  expect(r1, "flag", "1", "integer");
  expect(r1, "bo", "1", "integer");
  expect(r1, "e", "Medium", "text");
  expect(r1, "s", "a,c", "text");
  expect(r1, "txt", "😀 emoji 🎉 'q' \\", "text");
  expect(r1, "vc", "", "text");
  expect(r1, "ch", "ab", "text");

  expect(r2, "u64", "9223372036854775807", "integer");
  expect(r2, "i64", "9223372036854775807", "integer");
  expect(r2, "dec65", "0.000000000000000000000000000001", "text");
  assert.equal(r2.f_num, -1.5);
  assert.equal(r2.d_num, 1.7976931348623157e308);
  expect(r2, "dt", "0000-00-00T00:00:00.000000", "text");
  expect(r2, "dt0", "1000-01-01T00:00:00", "text");
  expect(r2, "ts", "1970-01-01T00:00:01.000001Z", "text");
  expect(r2, "tm", "00:00:00", "text");
  expect(r2, "tm6", "-00:00:00.000001", "text");
  expect(r2, "dte", "0000-00-00", "text");
  expect(r2, "y", "0", "integer");
  expect(r2, "j", "[]", "text");
  expect(r2, "bl", "", "blob");
  expect(r2, "bin", "00000000", "blob");
  expect(r2, "b1", "0", "integer");
  expect(r2, "b64", "0", "integer");
  expect(r2, "flag", "0", "integer");
  expect(r2, "e", "", "text");
  expect(r2, "s", "", "text");
  expect(r2, "txt", "", "text");
  expect(r2, "vc", "NULL", "text");
  expect(r2, "ch", "", "text");

  expect(r3, "u64", "9223372036854775808", "text");
  for (const c of cols.filter((c) => c !== "u64")) expect(r3, c, null, "null");
});

test("incremental: equal DATETIME(6) cursors across batch boundaries, then updates without duplicates", async () => {
  await db.query(`CREATE TABLE events (id INT PRIMARY KEY, updated_at DATETIME(6), body VARCHAR(40), KEY (updated_at, id))`);
  await db.query(`INSERT INTO events SELECT (seq * 7919) % 2500 + 1, '2026-01-02 03:04:05.123456', CONCAT('v1 ', seq) FROM seq_0_to_2499`);
  const cfg = await w.createConfig({ source: SOURCE, source_table: "events", cursor_column: "updated_at", batch_size: 100, interval_seconds: 3600, enabled: false });
  assert.equal(cfg.mode, "incremental");
  const runs = await w.syncUntilOk(cfg.id);
  assert.equal(runs.reduce((s, r) => s + r.rows_upserted, 0), 2500);
  assert.ok(runs.reduce((s, r) => s + r.batches, 0) >= 25, JSON.stringify(runs));
  assert.equal(runs.at(-1).cursor, "2026-01-02T03:04:05.123456");
  await assertEventsMatch();

  const again = await w.sync(cfg.id);
  assert.equal(again.status, "ok");
  assert.equal(again.rows_upserted, 0, "nothing new, nothing copied");

  await db.query(`UPDATE events SET updated_at = '2026-01-03 00:00:00', body = CONCAT('v2 ✓ ', id) WHERE id % 5 = 0`);
  await db.query(`INSERT INTO events SELECT 2500 + seq, '2026-01-03 00:00:00', CONCAT('v1 ', 2500 + seq) FROM seq_1_to_700`);
  const runs2 = await w.syncUntilOk(cfg.id);
  assert.equal(runs2.reduce((s, r) => s + r.rows_upserted, 0), 500 + 700);
  const [c] = await w.query("SELECT count(*) AS n, count(DISTINCT id) AS d FROM events");
  assert.deepEqual(c, { n: 3200, d: 3200 });
  await assertEventsMatch();
  const st = await w.status(cfg.id);
  assert.equal(st.cursor, "2026-01-03T00:00:00.000000");
  assert.equal(st.target_row_count, 3200);
  assert.equal(st.total_rows_synced, 3700);
});

async function assertEventsMatch() {
  const src = await db.query(
    `SELECT id, DATE_FORMAT(updated_at, '%Y-%m-%dT%H:%i:%s.%f') AS updated_at, body FROM events ORDER BY id`,
  );
  const rep = await replicaRows(`SELECT id, updated_at, body FROM events ORDER BY id`);
  assert.equal(rep.length, src.length);
  assert.deepEqual(rep, src);
}

test("incremental on a BIGINT UNSIGNED cursor above 2^63, and a TIMESTAMP cursor with lookback", async () => {
  await db.query(`CREATE TABLE big (id BIGINT UNSIGNED PRIMARY KEY, body VARCHAR(20))`);
  // Consecutive ids that all collapse to one double.
  await db.query(`INSERT INTO big SELECT 18446744073709550615 + seq, CONCAT('b', seq) FROM seq_0_to_999`);
  const cfg = await w.createConfig({ source: SOURCE, source_table: "big", cursor_column: "id", batch_size: 100, interval_seconds: 3600, enabled: false });
  const runs = await w.syncUntilOk(cfg.id);
  assert.equal(runs.reduce((s, r) => s + r.rows_upserted, 0), 1000);
  assert.equal(runs.at(-1).cursor, "18446744073709551614");
  await db.query(`INSERT INTO big VALUES (18446744073709551615, 'last')`);
  const run = await w.sync(cfg.id);
  assert.equal(run.rows_upserted, 1);
  assert.equal(run.cursor, "18446744073709551615");
  const [c] = await w.query("SELECT count(*) AS n, count(DISTINCT id) AS d, max(CAST(id AS TEXT)) AS top FROM big");
  assert.deepEqual(c, { n: 1001, d: 1001, top: "18446744073709551615" });

  await db.query(`CREATE TABLE ticks (id INT PRIMARY KEY, at TIMESTAMP(3) NOT NULL, v INT)`);
  await db.query(`INSERT INTO ticks SELECT seq, TIMESTAMPADD(SECOND, seq DIV 10, '2026-05-01 00:00:00'), 0 FROM seq_1_to_300`);
  const tc = await w.createConfig({ source: SOURCE, source_table: "ticks", cursor_column: "at", lookback_seconds: 5, batch_size: 50, interval_seconds: 3600, enabled: false });
  await w.syncUntilOk(tc.id);
  // A late row inside the lookback window, behind the checkpoint.
  await db.query(`UPDATE ticks SET v = 1 WHERE id = 298`);
  await db.query(`INSERT INTO ticks VALUES (1000, '2026-05-01 00:00:28.500', 7)`);
  const late = await w.sync(tc.id);
  assert.equal(late.status, "ok");
  assert.ok(late.rows_upserted >= 1, JSON.stringify(late));
  const [t] = await w.query("SELECT count(*) AS n, max(at) AS top, (SELECT v FROM ticks WHERE id = 1000) AS late FROM ticks");
  assert.deepEqual(t, { n: 301, top: "2026-05-01T00:00:30.000Z", late: 7 });
});

/** Syncs a config that must fail: 502, an error run record whose message matches `pattern`. */
async function failingRun(id, pattern) {
  const r = await w.api("POST", `/replication/sync/${id}`);
  assertEnvelope(r, 502, "failing sync");
  assert.equal(r.json.result.status, "error");
  assert.equal(r.json.result.error, r.json.error);
  assert.match(r.json.error, pattern);
  assert.doesNotMatch(r.text, new RegExp(db.password), "the password does not leak");
  return r.json.result;
}

for (const [what, source, table, pattern] of [
  ["a wrong password", { type: "mysql", url_secret: "MY_BAD_PW_URL" }, "items", /MySQL error 1045 \(28000\): Access denied for user/],
  ["a missing table", SOURCE, "nope", /table `nope` does not exist in database `er_my_/],
  ["a closed port", { type: "mysql", url_secret: "MY_DOWN_URL" }, "items", /: cannot connect to 127\.0\.0\.1:1: /],
]) {
  test(`${what}: a clear error, a failed run, and the alarm keeps going`, async (t) => {
    const target = `fail_${what.replaceAll(" ", "_")}`;
    const cfg = await w.createConfig({ source, source_table: table, target_table: target, interval_seconds: 600, enabled: false });
    const first = await failingRun(cfg.id, pattern);
    t.diagnostic(first.error);
    assert.match(first.error, /^source mysql via url_secret MY_/, "the message names the source");
    // Enabled, it stays scheduled: the next try is due after the backoff, in the future.
    assertEnvelope(await w.api("PUT", `/replication/configs/${cfg.id}`, { body: { enabled: true } }), 200);
    const st1 = await w.status(cfg.id);
    assert.equal(st1.state, "error");
    assert.equal(st1.consecutive_failures, 1);
    assert.match(st1.last_error, pattern);
    assert.ok(Date.parse(st1.next_sync_at) > Date.now() + 500 * 1000, `next_sync_at ${st1.next_sync_at}`);
    await failingRun(cfg.id, pattern);
    const st2 = await w.status(cfg.id);
    assert.equal(st2.consecutive_failures, 2);
    assert.ok(Date.parse(st2.next_sync_at) > Date.parse(st1.next_sync_at), `backoff grows: ${st1.next_sync_at} -> ${st2.next_sync_at}`);
    const left = await w.query("SELECT name FROM sqlite_master WHERE name = ?", [target]);
    assert.deepEqual(left, [], "a failed run leaves no table behind");
    assertEnvelope(await w.api("PUT", `/replication/configs/${cfg.id}`, { body: { enabled: false } }), 200);
  });
}

test("through a Hyperdrive binding (localConnectionString) as well", async () => {
  const cfg = await w.createConfig({
    source: { type: "mysql", hyperdrive: "MYSQL_HD" },
    source_table: "items",
    target_table: "hd_items",
    batch_size: 1000,
    interval_seconds: 3600,
    enabled: false,
  });
  const runs = await w.syncUntilOk(cfg.id);
  assert.equal(runs.reduce((s, r) => s + r.rows_upserted, 0), ROWS);
  assert.match(runs.at(-1).error ?? "", /^$/);
  await assertItemsMatch("hd_items");
  const st = await w.status(cfg.id);
  assert.equal(st.target_row_count, ROWS);
  // The binding is what the worker connected through: its errors name it.
  const nope = await w.createConfig({ source: { type: "mysql", hyperdrive: "MYSQL_HD" }, source_table: "nope", target_table: "hd_nope", interval_seconds: 3600, enabled: false });
  const err = await failingRun(nope.id, /^source mysql via hyperdrive MYSQL_HD \([^)]*\): table `nope` does not exist/);
  assert.doesNotMatch(err.error, /127\.0\.0\.1/, "through the binding's own host, not the origin's");
});

test("the instance default (EXTERNAL_DB_TYPE=mysql and EXTERNAL_DB_*), as StarbaseDB configures it", async () => {
  const w2 = await startWorker({
    vars: {
      EXTERNAL_DB_TYPE: "mysql",
      EXTERNAL_DB_HOST: "127.0.0.1",
      EXTERNAL_DB_PORT: "3306",
      EXTERNAL_DB_USER: db.user,
      EXTERNAL_DB_PASS: db.password,
      EXTERNAL_DB_DATABASE: db.name,
    },
  });
  try {
    const cfg = await w2.createConfig({ source_table: "events", mode: "full", interval_seconds: 3600, enabled: false });
    const run = await w2.sync(cfg.id);
    assert.equal(run.status, "ok", JSON.stringify(run));
    assert.equal(run.rows_upserted, 3200);
    const [c] = await w2.query("SELECT count(*) AS n, max(updated_at) AS top FROM events");
    assert.deepEqual(c, { n: 3200, top: "2026-01-03T00:00:00.000000" });
  } finally {
    await w2.dispose();
  }
});
