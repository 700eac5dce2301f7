// A chain of replicas with the least-privileged token: instance A replicates a PostgreSQL
// table; instance B reads A's copy through A's POST /query/raw with A's CLIENT token and no
// `primary_key` in its config, so B must learn the key and the column types from A's
// pragma_table_info. With that client token, A still hides its internal tables: the
// metadata pragma functions answer only for replicated tables.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, pgDatabase, assertEnvelope, CLIENT } from "./harness.mjs";

const TABLE = "chain_items";
const COLUMNS = ["region", "id", "big", "name", "ratio", "price", "payload", "flag", "updated_at"];

let pgdb;
let a;
let b;

/** Every cell with its storage class, exactly (integers as text, blobs as hex). */
const EXACT = COLUMNS.map(
  (c) => `CASE typeof("${c}") WHEN 'integer' THEN CAST("${c}" AS TEXT) WHEN 'blob' THEN hex("${c}") ELSE "${c}" END AS "${c}",
          typeof("${c}") AS "t_${c}"`,
).join(", ");

async function rows(w, table) {
  return w.query(`SELECT ${EXACT} FROM "${table}" ORDER BY region, id`);
}

async function tableInfo(w, table, token = "admin") {
  return w.query(`SELECT name, type, pk FROM pragma_table_info(?1) ORDER BY cid`, [table], token);
}

before(async () => {
  pgdb = await pgDatabase();
  // A composite key in an order that is not the column order: B can only get it right by reading it.
  await pgdb.query(`CREATE TABLE ${TABLE} (region text NOT NULL, id bigint NOT NULL, big bigint, name text,
                      ratio double precision, price numeric(20,3), payload bytea, flag boolean,
                      updated_at timestamptz NOT NULL, PRIMARY KEY (id, region))`);
  await pgdb.query(`INSERT INTO ${TABLE} SELECT
      CASE i % 3 WHEN 0 THEN 'eu' WHEN 1 THEN 'us' ELSE 'ap' END,
      CASE WHEN i % 10 = 0 THEN 9223372036854775807 - i ELSE i END,
      CASE WHEN i % 2 = 0 THEN 9007199254740993 + i ELSE NULL END,
      CASE i % 4 WHEN 0 THEN NULL WHEN 1 THEN '' ELSE 'n😀' || i END,
      CASE WHEN i % 7 = 0 THEN NULL ELSE i / 3.0::float8 END,
      i * 1.125,
      CASE WHEN i % 6 = 0 THEN NULL ELSE decode(md5(i::text), 'hex') END,
      i % 5 = 0,
      timestamptz '2026-01-01 00:00:00+00' + i * interval '1 second'
    FROM generate_series(1, 700) AS i`);
  a = await startWorker({ vars: { PG_URL: pgdb.url } });
  const cfg = await a.createConfig({ source: { type: "postgres", url_secret: "PG_URL" }, source_table: TABLE, interval_seconds: 3600, enabled: false });
  await a.syncUntilOk(cfg.id);
  b = await startWorker({ vars: { A_CLIENT: CLIENT } });
});

after(async () => {
  await b?.dispose();
  await a?.dispose();
  await pgdb?.close();
});

test("B learns key and types through A's client token and copies A's table exactly", async () => {
  const cfg = await b.createConfig({
    source: { type: "starbase", url: a.url, token_secret: "A_CLIENT" },
    source_table: TABLE,
    interval_seconds: 3600,
    enabled: false, // no scheduled run racing the manual one below
  });
  assert.equal(cfg.primary_key ?? null, null, "the config names no primary key");
  const r = await b.api("POST", `/replication/sync/${cfg.id}`);
  assertEnvelope(r, 200, "manual sync of B");
  let run = r.json.result;
  while (run.status === "partial") run = await b.sync(cfg.id);
  assert.equal(run.status, "ok", JSON.stringify(run));

  const want = await rows(a, TABLE);
  assert.equal(want.length, 700);
  assert.deepEqual(await rows(b, TABLE), want);
  // B's table has A's columns, affinities and key (id, region), as A's client token shows them.
  const aInfo = await tableInfo(a, TABLE, "client");
  assert.deepEqual(await tableInfo(b, TABLE), aInfo);
  assert.deepEqual(
    aInfo.filter((c) => c.pk > 0).sort((x, y) => x.pk - y.pk).map((c) => c.name),
    ["id", "region"],
  );
  assert.deepEqual(aInfo.map((c) => c.type), ["TEXT", "INTEGER", "INTEGER", "TEXT", "REAL", "TEXT", "BLOB", "INTEGER", "TEXT"]);
});

test("an incremental config through A's client token also learns the key and follows the cursor", async () => {
  const cfg = await b.createConfig({
    source: { type: "starbase", url: a.url, token_secret: "A_CLIENT" },
    source_table: TABLE,
    target_table: "chain_items_inc",
    cursor_column: "updated_at",
    batch_size: 250,
    interval_seconds: 3600,
    enabled: false,
  });
  await b.syncUntilOk(cfg.id);
  assert.deepEqual(await rows(b, "chain_items_inc"), await rows(a, TABLE));

  await pgdb.query(`UPDATE ${TABLE} SET name = 'changed', updated_at = '2030-01-01Z' WHERE id <= 4`);
  await pgdb.query(`INSERT INTO ${TABLE} VALUES ('eu', 9223372036854775806, -1, 'new', 0.1, 1.5, '\\x00ff', true, '2030-01-02Z')`);
  const acfg = (await a.api("GET", "/replication/configs")).json.result[0];
  await a.syncUntilOk(acfg.id);
  const run = await b.sync(cfg.id);
  assert.equal(run.status, "ok", JSON.stringify(run));
  assert.equal(run.rows_upserted, 5);
  assert.deepEqual(await rows(b, "chain_items_inc"), await rows(a, TABLE));
  const info = await tableInfo(b, "chain_items_inc");
  assert.deepEqual(info.filter((c) => c.pk > 0).sort((x, y) => x.pk - y.pk).map((c) => c.name), ["id", "region"]);
});

test("A's client token reads metadata of replicated tables only", async () => {
  const asClient = (sql, params = []) => a.api("POST", "/query/raw", { token: "client", body: { sql, params } });

  for (const [sql, params] of [
    [`SELECT name, type, pk FROM pragma_table_info('${TABLE}')`, []],
    [`SELECT name, type, pk FROM pragma_table_info(?1)`, [TABLE]],
    [`SELECT name, type, pk FROM pragma_table_info(?1, ?2)`, [TABLE, "main"]],
    [`SELECT * FROM pragma_table_xinfo(?)`, [TABLE]],
    [`SELECT * FROM pragma_index_list('${TABLE}')`, []],
    [`SELECT * FROM pragma_index_info('sqlite_autoindex_${TABLE}_1')`, []],
  ]) {
    const r = await asClient(sql, params);
    assertEnvelope(r, 200, sql);
    assert.ok(r.json.result.rows.length > 0, `${sql}: ${r.text}`);
  }
  const key = await asClient(`SELECT name FROM pragma_index_info('sqlite_autoindex_${TABLE}_1') ORDER BY seqno`);
  assert.deepEqual(key.json.result.rows, [["id"], ["region"]]);

  for (const [sql, params] of [
    ["SELECT * FROM pragma_table_info('tmp_replication_configs')", []],
    ["SELECT * FROM pragma_table_info('TMP_Replication_Configs')", []],
    ["SELECT * FROM pragma_table_info(?1)", ["tmp_replication_runs"]],
    ["SELECT * FROM pragma_table_info(?)", ["tmp_replication_runs"]],
    ["SELECT ?, * FROM pragma_table_info(?)", [TABLE, "tmp_replication_runs"]],
    ["SELECT * FROM pragma_table_info(:t)", [TABLE]],
    ["SELECT * FROM pragma_table_info(?1)", [7]],
    ["SELECT * FROM pragma_table_info('tmp_' || 'replication_runs')", []],
    ["SELECT * FROM pragma_table_info((SELECT 'tmp_replication_runs'))", []],
    ["SELECT * FROM pragma_table_info(\"tmp_replication_runs\")", []],
    ["SELECT * FROM pragma_table_xinfo('_cf_KV')", []],
    ["SELECT * FROM pragma_table_info('sqlite_master')", []],
    ["SELECT * FROM pragma_index_list('sqlite_master')", []],
    ["SELECT * FROM pragma_index_list('tmp_replication_runs')", []],
    ["SELECT * FROM pragma_index_info('tmp_replication_runs_by_config')", []],
    ["SELECT * FROM pragma_index_info('sqlite_autoindex_tmp_replication_configs_1')", []],
    [`SELECT * FROM pragma_table_info('${TABLE}', 'temp')`, []],
    [`SELECT * FROM pragma_table_info('${TABLE}') AS p WHERE p.arg = 'tmp_replication_runs'`, []],
    [`SELECT * FROM pragma_table_info('${TABLE}') WHERE schema = 'main'`, []],
    ["SELECT * FROM pragma_table_info WHERE arg = 'tmp_replication_runs'", []],
    [`SELECT (SELECT group_concat(name) FROM pragma_table_info('tmp_replication_configs')) FROM "${TABLE}"`, []],
    ["SELECT * FROM pragma_table_list", []],
    [`SELECT * FROM pragma_index_xinfo('sqlite_autoindex_${TABLE}_1')`, []],
    [`SELECT pragma_table_info('${TABLE}')`, []],
  ]) {
    const r = await asClient(sql, params);
    assertEnvelope(r, 403, `${sql} ${JSON.stringify(params)}`);
    assert.equal(r.json.result, null);
  }

  // The admin token still reads everything.
  const admin = await a.api("POST", "/query/raw", { body: { sql: "SELECT name FROM pragma_table_info(?1)", params: ["tmp_replication_configs"] } });
  assertEnvelope(admin, 200);
  assert.ok(admin.json.result.rows.length > 0);
});
