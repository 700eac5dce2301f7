// mode cdc against a real MariaDB with a row binlog (scripts/mariadb_binlog.sh, port 3307):
// two tables sharing one binlog reader, grants named when missing, every kind of change,
// transactions applied whole, binlog rotation, a 100,000-row transaction, workerd SIGKILLed
// while applying, a column added at the origin, and every edge value of the MySQL type tests
// equal to a full copy's cell by cell. A purged binlog is tested natively (tests/mysql_cdc.rs):
// purging here would pull files from under the other tests that share this server.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, mysqlDatabase, assertEnvelope, MYSQL_BINLOG_URL, sleep } from "./harness.mjs";
import { killWorkerd } from "./faults_support.mjs";

const TYPES_TABLE = "CREATE TABLE all_types (\n  id INT PRIMARY KEY,\n  u64 BIGINT UNSIGNED, i64 BIGINT, i32 INT, u32 INT UNSIGNED, i24 MEDIUMINT, u24 MEDIUMINT UNSIGNED, i16 SMALLINT,\n  u16 SMALLINT UNSIGNED, i8 TINYINT, u8 TINYINT UNSIGNED,\n  dec65 DECIMAL(65,30), dec2 DECIMAL(12,2), dec0 DECIMAL(10,0), udec DECIMAL(20,5) UNSIGNED, dec30 DECIMAL(30,30), f FLOAT, d DOUBLE,\n  dt DATETIME(6), dt0 DATETIME, dt3 DATETIME(3), ts TIMESTAMP(6) NULL, ts0 TIMESTAMP NULL, ts2 TIMESTAMP(2) NULL,\n  tm TIME, tm6 TIME(6), tm1 TIME(1), tm3 TIME(3), dte DATE, y YEAR, neg TINYINT, uy SMALLINT UNSIGNED,\n  j JSON, bl BLOB, tb TINYBLOB, mb MEDIUMBLOB, bin BINARY(4), vb VARBINARY(8), b1 BIT(1), b10 BIT(10), b64 BIT(64),\n  flag TINYINT(1), bo BOOLEAN,\n  e ENUM('small','Medium','large'), s SET('a','b','c'), txt TEXT, vc VARCHAR(20), vcl VARCHAR(300), ch CHAR(5),\n  chl CHAR(100), lt LONGTEXT,\n  lat VARCHAR(10) CHARACTER SET latin1, latc CHAR(3) CHARACTER SET latin1, elat ENUM('é','b') CHARACTER SET latin1,\n  uu UUID, i4 INET4, i6 INET6, g GEOMETRY\n)";
const ROW_MAX = "(1,\n  18446744073709551615, -9223372036854775808, -2147483648, 4294967295, -8388608, 16777215, -32768, 65535, -128, 255,\n  '-12345678901234567890123456789012345.123456789012345678901234567891', 12.3, -9999999999, 999999999999999.99999,\n  -0.999999999999999999999999999999, 0.1, 0.1,\n  '2026-01-02 03:04:05.123456', '2026-01-02 03:04:05', '2026-01-02 03:04:05.120', '2026-01-02 08:34:05.654321',\n  '2026-01-02 05:30:00', '2038-01-19 08:44:07.99',\n  '-838:59:59', '838:59:59.000000', '-00:00:00.5', '-12:34:56.789', '2026-01-02', 2026, -5, 65535,\n  '{\"big\": 123456789012345678901234567890, \"f\": 1e400, \"s\": \"é\"}', x'00FF00', x'FF', REPEAT(x'AB', 70000),\n  x'610062', x'', b'1', b'1000000001', b'1111111111111111111111111111111111111111111111111111111111111111', 1, TRUE,\n  'Medium', 'a,c', '😀 emoji 🎉', '', REPEAT('é', 300), 'ab', REPEAT('😀', 100), REPEAT('x', 70000),\n  'été €', 'ñ', 'é',\n  '123e4567-e89b-12d3-a456-426614174000', '192.0.2.255', '2001:db8::ff00:42:8329', ST_GeomFromText('POINT(1 2)'))";
const ROW_MIN = "(2,\n  9223372036854775807, 9223372036854775807, 2147483647, 0, 8388607, 0, 32767, 0, 127, 0,\n  '0.000000000000000000000000000001', -0.5, 0, 0.00001, 0.000000000000000000000000000001, -3.4028235e38, 1.7976931348623157e308,\n  '0000-00-00 00:00:00', '1000-01-01 00:00:00', '9999-12-31 23:59:59.999', '1970-01-01 05:30:01.000001',\n  '2038-01-19 08:44:07', '1970-01-01 05:30:01.01',\n  '00:00:00', '-00:00:00.000001', '00:00:00.1', '838:59:58.999', '0000-00-00', 0, 127, 0,\n  '[]', '', x'', '',\n  x'00000000', x'FF', b'0', b'0', b'0', 0, FALSE,\n  '', '', 'line\\nbreak\\ttab ''q'' \\\\', 'NULL', '', '', '', '',\n  '', '', '',\n  '00000000-0000-0000-0000-000000000000', '0.0.0.0', '::', ST_GeomFromText('LINESTRING(0 0, 1 1)'))";

let my;
let w;
const SOURCE = { type: "mysql", url_secret: "MY_URL" };

before(async () => {
  my = await mysqlDatabase({ prefix: "er_cdcmy", adminUrl: MYSQL_BINLOG_URL });
  await my.query(`
    CREATE TABLE parent (id BIGINT UNSIGNED PRIMARY KEY, name VARCHAR(50) NOT NULL);
    CREATE TABLE child (id BIGINT PRIMARY KEY, parent_id BIGINT UNSIGNED NOT NULL, note VARCHAR(100), blob_col BLOB);
    INSERT INTO parent SELECT seq, CONCAT('p', seq) FROM seq_1_to_50;
    INSERT INTO child SELECT seq, 1 + seq % 50, CONCAT('n', seq), NULL FROM seq_1_to_200;`);
  w = await startWorker({ vars: { MY_URL: `${my.url}?ssl-mode=disable` } });
});

after(async () => {
  await w?.dispose();
  await my?.close();
});

// Rows as one text per row, built the same way on both sides, ordered by id numerically.
const ORIGIN = {
  parent: "SELECT CONCAT(CAST(id AS CHAR), '|', name) AS r FROM parent ORDER BY id",
  child: "SELECT CONCAT(CAST(id AS CHAR), '|', CAST(parent_id AS CHAR), '|', COALESCE(note, '~'), '|', COALESCE(HEX(blob_col), '~')) AS r FROM child ORDER BY id",
};
const REPLICA = {
  parent: "SELECT CAST(id AS TEXT) || '|' || name AS r FROM parent ORDER BY CAST(id AS TEXT) COLLATE BINARY",
  child: "SELECT CAST(id AS TEXT) || '|' || CAST(parent_id AS TEXT) || '|' || coalesce(note, '~') || '|' || CASE WHEN blob_col IS NULL THEN '~' ELSE hex(blob_col) END AS r FROM child ORDER BY id",
};

async function same(table) {
  const o = (await my.query(ORIGIN[table])).map((x) => x.r);
  let r = (await w.query(REPLICA[table])).map((x) => x.r);
  if (table === "parent") {
    // Unsigned ids above 2^63 are stored as text: order both sides numerically, exactly.
    const key = (s) => BigInt(s.split("|")[0]);
    const cmp = (a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);
    r = r.sort(cmp);
    o.sort(cmp);
  }
  assert.equal(r.length, o.length, `${table}: ${r.length} replica rows, ${o.length} at the origin`);
  assert.deepEqual(r, o, `${table} equals the origin`);
}

async function syncOk(id, what = "") {
  let r = await w.api("POST", `/replication/sync/${id}`);
  for (let i = 0; i < 30 && (r.status === 409 || r.json?.result?.status === "partial"); i++) {
    await sleep(200);
    r = await w.api("POST", `/replication/sync/${id}`);
  }
  assertEnvelope(r, 200, `${what}: ${r.text}`);
  assert.equal(r.json.result.status, "ok", `${what}: ${r.text}`);
  return r.json.result;
}

async function grantReplication() {
  for (const h of ["%", "localhost", "127.0.0.1"]) {
    await my.admin(`GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '${my.user}'@'${h}'`);
  }
}

let parentCfg;
let childCfg;

test("mysql cdc configs: a server_id chosen per origin, bad combinations refused", async () => {
  for (const [body, field] of [
    [{ source: SOURCE, source_table: "parent", mode: "cdc", slot_name: "x", interval_seconds: 60 }, "slot_name"],
    [{ source: SOURCE, source_table: "parent", mode: "cdc", publication: "x", interval_seconds: 60 }, "publication"],
    [{ source: SOURCE, source_table: "parent", mode: "full", server_id: 5, interval_seconds: 60 }, "server_id"],
    [{ source: SOURCE, source_table: "parent", mode: "cdc", server_id: 0, interval_seconds: 60 }, "server_id"],
    [{ source: SOURCE, source_table: "parent", mode: "cdc", server_id: 4294967296, interval_seconds: 60 }, "server_id"],
    [{ source: SOURCE, source_table: "parent", mode: "cdc", cursor_column: "id", interval_seconds: 60 }, "cursor_column"],
  ]) {
    const r = await w.api("POST", "/replication/configs", { body });
    assertEnvelope(r, 400, JSON.stringify(body));
    assert.match(r.json.error, new RegExp(field), r.json.error);
  }
  parentCfg = await w.createConfig({ source: SOURCE, source_table: "parent", mode: "cdc", interval_seconds: 3600, enabled: false });
  childCfg = await w.createConfig({ source: SOURCE, source_table: "child", mode: "cdc", interval_seconds: 3600, enabled: false });
  assert.equal(parentCfg.mode, "cdc");
  assert.equal(typeof parentCfg.server_id, "number");
  assert.ok(parentCfg.server_id >= 2 ** 31 && parentCfg.server_id < 2 ** 32, `server_id ${parentCfg.server_id}`);
  assert.equal(childCfg.server_id, parentCfg.server_id, "one binlog reader per origin");
  assert.equal(parentCfg.slot_name, null);
  assert.equal(parentCfg.publication, null);
});

test("a login without the replication grants is refused, naming them", async () => {
  const r = await w.api("POST", `/replication/sync/${parentCfg.id}`);
  assertEnvelope(r, 502);
  assert.match(r.json.error, /REPLICATION SLAVE/, r.json.error);
  assert.match(r.json.error, /REPLICATION CLIENT/, r.json.error);
  assert.deepEqual(await w.query("SELECT count(*) AS n FROM sqlite_master WHERE name = 'parent'"), [{ n: 0 }], "nothing copied");
  await grantReplication();
});

test("first syncs note the binlog position, copy both tables and share one reader", async () => {
  const r1 = await syncOk(parentCfg.id, "parent");
  assert.match(r1.cursor, /^[^:]+\.\d+:\d+$/, `cursor ${r1.cursor}`);
  await syncOk(childCfg.id, "child");
  await same("parent");
  await same("child");
  const st = await w.status(childCfg.id);
  assert.equal(st.cdc.server_id, parentCfg.server_id);
  assert.match(st.cdc.binlog_position, /^[^:]+\.\d+:\d+$/);
  assert.equal(st.cursor, st.cdc.binlog_position);
  assert.equal(typeof st.cdc.binlog_lag_bytes, "number");
  assert.deepEqual(Object.keys(st.cdc).sort(), ["binlog_lag_bytes", "binlog_position", "server_id"]);
  const parent = await w.status(parentCfg.id);
  assert.equal(parent.cdc.binlog_position, st.cdc.binlog_position, "the reader's position is shared");
});

test("inserts, updates, deletes, key changes, insert-and-delete, truncate: the replica equals the origin", async () => {
  await my.query(`
    INSERT INTO parent VALUES (100, 'new'), (18446744073709551615, 'max'), (9223372036854775808, 'above i64');
    UPDATE parent SET name = 'renamed' WHERE id <= 5;
    UPDATE parent SET id = 1000 WHERE id = 6;
    DELETE FROM child WHERE id % 10 = 0;
    INSERT INTO child VALUES (900, 100, NULL, ''), (901, 100, '', NULL), (902, 18446744073709551615, 'b', x'00FF');`);
  await my.query(`START TRANSACTION; INSERT INTO child VALUES (999, 1, 'fleeting', NULL); DELETE FROM child WHERE id = 999; COMMIT;`);
  const run = await syncOk(parentCfg.id, "changes");
  assert.ok(run.rows_deleted >= 21, `deletes counted: ${run.rows_deleted}`);
  await same("parent");
  await same("child");
  await my.query("TRUNCATE child");
  await my.query("INSERT INTO child VALUES (1, 1, 'after truncate', NULL)");
  await syncOk(childCfg.id, "truncate");
  await same("child");
  await my.query("INSERT INTO child SELECT seq, 1 + seq % 50, CONCAT('n', seq), NULL FROM seq_2_to_200");
  await syncOk(childCfg.id, "refill");
  await same("child");
});

test("a transaction over both tables reaches the replica as one: no reader sees a child without its parent", async () => {
  let stop = false;
  let violations = 0;
  let reads = 0;
  const reader = (async () => {
    while (!stop) {
      // Only these transactions' children: the origin has no foreign key, and other tests leave orphans.
      const r = await w.query(
        "SELECT count(*) AS n FROM child c WHERE c.parent_id BETWEEN 5000 AND 5999 AND NOT EXISTS (SELECT 1 FROM parent p WHERE p.id = c.parent_id)",
      );
      reads++;
      if (Number(r[0].n) !== 0) violations++;
      await sleep(5);
    }
  })();
  for (let i = 0; i < 12; i++) {
    const p = 5000 + i;
    await my.query(`START TRANSACTION; INSERT INTO parent VALUES (${p}, 'tx');
      INSERT INTO child SELECT ${p} * 100 + seq, ${p}, 'c', NULL FROM seq_1_to_50; COMMIT;`);
    await syncOk(i % 2 ? parentCfg.id : childCfg.id, `tx ${i}`);
  }
  stop = true;
  await reader;
  assert.ok(reads > 5, `the reader read ${reads} times`);
  assert.equal(violations, 0, "no orphan child was ever visible");
  await same("parent");
  await same("child");
});

test("binlog rotation (FLUSH BINARY LOGS) between and inside the changes a run applies", async () => {
  const before = (await w.status(parentCfg.id)).cdc.binlog_position;
  await my.query("INSERT INTO parent VALUES (7001, 'before flush')");
  await my.admin("FLUSH BINARY LOGS");
  await my.query("UPDATE parent SET name = 'after one flush' WHERE id <= 10");
  await my.admin("FLUSH BINARY LOGS");
  await my.query("DELETE FROM parent WHERE id = 7001; INSERT INTO child VALUES (7002, 1, 'two files on', NULL)");
  await syncOk(parentCfg.id, "rotation");
  await same("parent");
  await same("child");
  const after = (await w.status(parentCfg.id)).cdc.binlog_position;
  const fileNo = (p) => Number(p.split(":")[0].split(".").pop());
  assert.ok(fileNo(after) >= fileNo(before) + 2, `the position moved across files: ${before} → ${after}`);
});

test("12,000 single-row transactions: reads stop between transactions mid-binlog and the next one resumes there", async () => {
  await my.query(`CREATE PROCEDURE touch_each(n INT) BEGIN DECLARE i INT DEFAULT 1;
    WHILE i <= n DO UPDATE parent SET name = CONCAT('touched ', i) WHERE id = 10 + i % 40; SET i = i + 1; END WHILE; END`);
  await my.query("CALL touch_each(12000)");
  // A read stops after about 20,000 changes (a Begin and a row each here) and drops its dump
  // connection mid-stream; the next read of the same run starts a new dump from the commit.
  const r = await syncOk(parentCfg.id, "12,000 transactions");
  assert.equal(r.rows_upserted, 12000, JSON.stringify(r));
  await same("parent");
});

test("a 100,000-row transaction arrives whole", async () => {
  await my.query("INSERT INTO child SELECT 100000 + seq, 1, 'bulk', NULL FROM seq_1_to_100000");
  await syncOk(childCfg.id, "bulk insert");
  await my.query("UPDATE child SET note = 'bulk updated' WHERE id BETWEEN 100001 AND 200000");
  await syncOk(childCfg.id, "bulk update");
  const n = await w.query("SELECT count(*) AS n FROM child WHERE note = 'bulk updated'");
  assert.equal(Number(n[0].n), 100000);
  await same("child");
});

test("workerd SIGKILLed while applying a 100,000-row transaction: exact after the restart, nothing doubled", async () => {
  for (const [k, delayMs] of [[1, 150], [2, 600], [3, 1500]]) {
    await my.query(`UPDATE child SET note = 'crash ${k} ${"x".repeat(20)}' WHERE id BETWEEN 100001 AND 200000`);
    const pending = w.api("POST", `/replication/sync/${childCfg.id}`).catch(() => null);
    await sleep(delayMs);
    await killWorkerd(w);
    await pending;
    await syncOk(childCfg.id, `sync after kill ${k}`);
    const n = await w.query(`SELECT count(*) AS n FROM child WHERE note LIKE 'crash ${k} %'`);
    assert.equal(Number(n[0].n), 100000, `kill ${k}: the whole transaction is there`);
    await same("child");
  }
  await same("parent");
});

test("a column added at the origin appears with its values in every row, in place", async () => {
  await my.query("INSERT INTO parent VALUES (7900, 'before the column')");
  await my.query("ALTER TABLE parent ADD COLUMN score INT NOT NULL DEFAULT 7");
  await my.query("UPDATE parent SET score = 9 WHERE id = 1");
  const r0 = await syncOk(parentCfg.id, "after ADD COLUMN");
  // Taken in place (ALTER TABLE ... DEFAULT 7 in the replica), not copied afresh: the run
  // applied the three changes, not the table's rows.
  assert.ok(r0.rows_upserted <= 3, `no fresh copy: ${JSON.stringify(r0)}`);
  await my.query("UPDATE parent SET score = 11 WHERE id = 2");
  await my.query("INSERT INTO parent (id, name, score) VALUES (8001, 'scored', -1)");
  await syncOk(parentCfg.id, "after ADD COLUMN, more changes");
  const o = (await my.query("SELECT CONCAT(CAST(id AS CHAR), ':', score) AS r FROM parent ORDER BY id")).map((x) => x.r);
  const r = (await w.query("SELECT CAST(id AS TEXT) || ':' || score AS r FROM parent")).map((x) => x.r);
  const key = (s) => BigInt(s.split(":")[0]);
  r.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  assert.deepEqual(r, o);
  await same("child");
});

test("every edge value of the MySQL type tests: a cdc replica equals a full copy cell by cell", async () => {
  await my.query(TYPES_TABLE);
  const cdc = await w.createConfig({ source: SOURCE, source_table: "all_types", target_table: "types_cdc", mode: "cdc", interval_seconds: 3600, enabled: false });
  const full = await w.createConfig({ source: SOURCE, source_table: "all_types", target_table: "types_full", interval_seconds: 3600, enabled: false });
  await syncOk(cdc.id, "types: first copy (empty)");
  // The writer's session is not UTC: TIMESTAMPs still come out in UTC.
  await my.query("SET time_zone = '+05:30', sql_mode = ''");
  await my.query(`INSERT INTO all_types VALUES ${ROW_MAX}`);
  await my.query(`INSERT INTO all_types VALUES ${ROW_MIN}`);
  await my.query("INSERT INTO all_types (id, u64) VALUES (3, 9223372036854775808)");
  await my.query("INSERT INTO all_types (id, txt, vc, ch, bl, vb, bin, j, e, s, lat) VALUES (4, '', '', '', '', '', '', '{}', '', '', NULL)");
  await my.query(`INSERT INTO all_types SELECT 10 + id, u64, i64, i32, u32, i24, u24, i16, u16, i8, u8, dec65, dec2, dec0, udec, dec30, f, d,
    dt, dt0, dt3, ts, ts0, ts2, tm, tm6, tm1, tm3, dte, y, neg, uy, j, bl, tb, mb, bin, vb, b1, b10, b64, flag, bo, e, s, txt, vc, vcl, ch,
    chl, lt, lat, latc, elat, uu, i4, i6, g FROM all_types WHERE id IN (1, 2)`);
  await my.query(`UPDATE all_types a JOIN all_types b ON b.id = 2 SET a.u64 = b.u64, a.i64 = b.i64, a.dec65 = b.dec65, a.dt = b.dt,
    a.ts = b.ts, a.tm = b.tm, a.j = b.j, a.bl = b.bl, a.bin = b.bin, a.b64 = b.b64, a.e = 'large', a.s = 'b,c',
    a.txt = 'changed', a.uu = '550e8400-e29b-41d4-a716-446655440000', a.i6 = '::ffff:192.0.2.1', a.g = NULL,
    a.neg = -128, a.uy = 1, a.f = -0.0, a.dec2 = '-0.00' WHERE a.id = 11`);
  await my.query("UPDATE all_types SET id = 5 WHERE id = 4");
  await my.query("SET time_zone = '+00:00', sql_mode = DEFAULT");
  const r = await syncOk(cdc.id, "types: changes");
  assert.ok(r.rows_upserted >= 8, JSON.stringify(r));
  await syncOk(full.id, "types: full copy");
  const cols = (await w.query("SELECT name FROM pragma_table_info('types_full') ORDER BY cid")).map((c) => c.name);
  assert.ok(cols.length > 50, `${cols.length} columns`);
  // A few columns per query: the replica's SQLite caps a result's columns.
  for (let at = 0; at < cols.length; at += 20) {
    const exprs = cols.slice(at, at + 20).map((c) => `typeof("${c}") AS "t_${c}", quote("${c}") AS "q_${c}"`).join(", ");
    const a = await w.query(`SELECT ${exprs} FROM types_full ORDER BY id`);
    const b = await w.query(`SELECT ${exprs} FROM types_cdc ORDER BY id`);
    assert.equal(b.length, a.length);
    assert.equal(a.length, 6);
    for (let i = 0; i < a.length; i++) {
      for (const k of Object.keys(a[i])) assert.equal(b[i][k], a[i][k], `row ${i + 1}, ${k}`);
    }
  }
  const schemaOf = async (t) => await w.query(`SELECT name, type FROM pragma_table_info('${t}') ORDER BY cid`);
  assert.deepEqual(await schemaOf("types_cdc"), await schemaOf("types_full"), "declared types match");

  const cellsEqual = async (what) => {
    const names = (await w.query("SELECT name FROM pragma_table_info('types_full') ORDER BY cid")).map((c) => c.name);
    for (let at = 0; at < names.length; at += 20) {
      const exprs = names.slice(at, at + 20).map((c) => `typeof("${c}") AS "t_${c}", quote("${c}") AS "q_${c}"`).join(", ");
      const a = await w.query(`SELECT ${exprs} FROM types_full ORDER BY id`);
      const b = await w.query(`SELECT ${exprs} FROM types_cdc ORDER BY id`);
      assert.equal(b.length, a.length, what);
      for (let i = 0; i < a.length; i++) {
        for (const k of Object.keys(a[i])) assert.equal(b[i][k], a[i][k], `${what}: row ${i + 1}, ${k}`);
      }
    }
    assert.deepEqual(await schemaOf("types_cdc"), await schemaOf("types_full"), `${what}: declared types match`);
  };
  // Columns added with constant defaults: taken in place, each existing row holding the default
  // as a copy would read it; a row written before the ALTER but applied after it too.
  await my.query("INSERT INTO all_types (id) VALUES (40)");
  await my.query(`ALTER TABLE all_types ADD COLUMN a1 VARCHAR(20) NOT NULL DEFAULT 'it''s é',
    ADD COLUMN a2 DATETIME(6) DEFAULT '2026-01-02 03:04:05.123456', ADD COLUMN a3 BIGINT UNSIGNED DEFAULT 18446744073709551615,
    ADD COLUMN a4 DECIMAL(20,5) DEFAULT -1.5, ADD COLUMN a5 INT NULL, ADD COLUMN a6 ENUM('x','y') DEFAULT 'y',
    ADD COLUMN a7 VARBINARY(4) DEFAULT x'00FF', ADD COLUMN a8 BIGINT DEFAULT -9223372036854775808`);
  await my.query("UPDATE all_types SET a1 = 'changed' WHERE id = 2");
  const widened = await syncOk(cdc.id, "types: constant defaults added");
  assert.equal(widened.rows_upserted, 2, `in place, not copied afresh: ${JSON.stringify(widened)}`);
  await syncOk(full.id, "types: full copy after the constants");
  await cellsEqual("constant defaults");
  // An expression default is not known without reading every row: copied afresh.
  await my.query("ALTER TABLE all_types ADD COLUMN a9 TIMESTAMP(6) NULL DEFAULT CURRENT_TIMESTAMP(6)");
  const recopied = await syncOk(cdc.id, "types: expression default added");
  assert.equal(recopied.rows_upserted, 7, `copied afresh: ${JSON.stringify(recopied)}`);
  await syncOk(full.id, "types: full copy after the expression");
  await cellsEqual("expression default");
});

test("a first copy spread over many runs, with changes between them, then caught up: exact (and through a local Hyperdrive binding)", async () => {
  // A second worker whose runs stop after 200 ms: the copy takes several partial runs while the
  // origin changes rows already copied and rows not yet copied; the catch-up applies the binlog
  // from the position noted before the copy. Its source is a Hyperdrive binding: locally a
  // plain TCP pass-through, so this shows the reader's second connection through the binding,
  // not that Cloudflare's Hyperdrive carries the binlog protocol.
  await grantReplication();
  const w2 = await startWorker({
    vars: { SYNC_TIME_BUDGET_MS: "200" },
    hyperdrives: { MY_HD: my.url },
  });
  try {
    await my.query("CREATE TABLE spread (id INT PRIMARY KEY, v VARCHAR(40), n BIGINT)");
    await my.query("INSERT INTO spread SELECT seq, CONCAT('v', seq), seq * 1000 FROM seq_1_to_100000");
    const c = await w2.createConfig({
      source: { type: "mysql", hyperdrive: "MY_HD" },
      source_table: "spread",
      mode: "cdc",
      batch_size: 200,
      interval_seconds: 3600,
      enabled: false,
    });
    let partials = 0;
    for (let i = 0; ; i++) {
      const r = await w2.api("POST", `/replication/sync/${c.id}`);
      assertEnvelope(r, 200, r.text);
      if (r.json.result.status === "ok") break;
      partials++;
      assert.ok(i < 200, "the copy ends");
      const k = 1 + ((i * 7919) % 100000);
      await my.query(`UPDATE spread SET v = CONCAT('changed ', id) WHERE id BETWEEN ${k} AND ${k + 40};
        DELETE FROM spread WHERE id = ${100001 - k}; INSERT INTO spread VALUES (${200000 + i}, 'new', -1)
        ON DUPLICATE KEY UPDATE v = 'again'`);
    }
    assert.ok(partials >= 2, `the copy took ${partials} partial runs`);
    const o = (await my.query("SELECT CONCAT(id, '|', v, '|', n) AS r FROM spread ORDER BY id")).map((x) => x.r);
    const r = (await w2.query("SELECT id || '|' || v || '|' || n AS r FROM spread ORDER BY id")).map((x) => x.r);
    assert.equal(r.length, o.length);
    assert.deepEqual(r, o);
  } finally {
    await w2.dispose();
  }
});

test("read replicas: mysql cdc changes, and a column added in place, reach them whole", async () => {
  await grantReplication();
  const w3 = await startWorker({ vars: { MY_URL: `${my.url}?ssl-mode=disable`, REPLICA_LOCATIONS: "weur" } });
  try {
    await my.query("CREATE TABLE rr (id INT PRIMARY KEY, v VARCHAR(10))");
    await my.query("INSERT INTO rr SELECT seq, CONCAT('v', seq) FROM seq_1_to_20");
    const c = await w3.createConfig({ source: SOURCE, source_table: "rr", mode: "cdc", interval_seconds: 3600, enabled: false });
    let run = await w3.sync(c.id);
    assert.equal(run.status, "ok", JSON.stringify(run));
    await my.query("ALTER TABLE rr ADD COLUMN extra VARCHAR(10) NOT NULL DEFAULT 'd'");
    await my.query("UPDATE rr SET extra = 'x' WHERE id = 1; DELETE FROM rr WHERE id = 2; INSERT INTO rr VALUES (30, 'new', 'n')");
    run = await w3.sync(c.id);
    assert.equal(run.status, "ok", JSON.stringify(run));
    assert.ok(run.rows_upserted <= 2, `in place: ${JSON.stringify(run)}`);
    const origin = (await my.query("SELECT id, v, extra FROM rr ORDER BY id")).map((r) => `${r.id}|${r.v}|${r.extra}`);
    const primary = (await w3.query("SELECT id, v, extra FROM rr ORDER BY id")).map((r) => `${r.id}|${r.v}|${r.extra}`);
    assert.deepEqual(primary, origin);
    const r = await w3.api("POST", "/query", {
      body: { sql: "SELECT id, v, extra FROM rr ORDER BY id" },
      headers: { "X-Replica-Location": "weur", "X-Replica-Bookmark": run.bookmark },
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get("x-replica-served-by"), "weur");
    assert.deepEqual(r.json.result.map((x) => `${x.id}|${x.v}|${x.extra}`), origin, "the read replica holds the added column and the changes");
  } finally {
    await w3.dispose();
  }
});

test("deleting the configs forgets the reader with the last one", async () => {
  const configs = (await w.api("GET", "/replication/configs")).json.result.filter((c) => c.mode === "cdc");
  assert.ok(configs.length >= 3);
  for (const c of configs) {
    const d = await w.api("DELETE", `/replication/configs/${c.id}`);
    assertEnvelope(d, 200);
    assert.deepEqual(d.json.result, { deleted: true }, "a binlog reader leaves nothing behind at the origin");
  }
  assert.deepEqual(await w.query("SELECT count(*) AS n FROM tmp_replication_slots"), [{ n: 0 }]);
});
