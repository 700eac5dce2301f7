// mode cdc against a real PostgreSQL in logical mode (scripts/pg_logical.sh, port 5433):
// two tables with a foreign key sharing one slot, every kind of change, transactions applied
// whole, every type's edge values equal to a full copy's cell by cell, slot loss, a quiet
// origin that must not pin WAL, and the slot dropped with the last config.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, pgDatabase, assertEnvelope, PG_LOGICAL_URL, sleep } from "./harness.mjs";
import { killWorkerd, tcpProxy } from "./faults_support.mjs";

let db;
let w;
const SOURCE = { type: "postgres", url_secret: "PG_URL" };

before(async () => {
  db = await pgDatabase({ adminUrl: PG_LOGICAL_URL });
  await db.query(`
    CREATE TABLE parent (id bigint PRIMARY KEY, name text NOT NULL);
    CREATE TABLE child (id bigint PRIMARY KEY, parent_id bigint NOT NULL REFERENCES parent (id) ON DELETE CASCADE ON UPDATE CASCADE, note text, blob text);
    INSERT INTO parent SELECT g, 'p' || g FROM generate_series(1, 50) g;
    INSERT INTO child SELECT g, 1 + g % 50, 'n' || g, NULL FROM generate_series(1, 200) g;`);
  w = await startWorker({ vars: { PG_URL: db.url } });
});

after(async () => {
  await w?.dispose();
  await db?.close();
});

// Rows as JSON arrays in a fixed column order (the API's row objects do not keep the
// select order), ordered by id numerically on both sides.
const NAMES = { parent: ["id", "name"], child: ["id", "parent_id", "note", "blob"] };
async function originRows(table, cols) {
  return (await db.query(`SELECT ${cols} FROM ${table} ORDER BY ${table}.id`)).rows.map((r) => JSON.stringify(NAMES[table].map((k) => r[k])));
}
async function replicaRows(table, cols) {
  return (await w.query(`SELECT ${cols} FROM ${table} ORDER BY ${table}.id`)).map((r) => JSON.stringify(NAMES[table].map((k) => r[k])));
}
const PARENT = "CAST(id AS TEXT) AS id, name";
const CHILD = "CAST(id AS TEXT) AS id, CAST(parent_id AS TEXT) AS parent_id, note, blob";
const PG_PARENT = "id::text AS id, name";
const PG_CHILD = "id::text AS id, parent_id::text AS parent_id, note, blob";

async function same(table) {
  const [o, r] = table === "parent"
    ? [await originRows("parent", PG_PARENT), await replicaRows("parent", PARENT)]
    : [await originRows("child", PG_CHILD), await replicaRows("child", CHILD)];
  assert.equal(r.length, o.length, `${table}: ${r.length} replica rows, ${o.length} at the origin`);
  assert.deepEqual(r, o, `${table} equals the origin`);
}

let parentCfg;
let childCfg;

test("cdc configs: defaults chosen, bad combinations refused", async () => {
  for (const [body, field] of [
    [{ source: SOURCE, source_table: "parent", mode: "cdc", cursor_column: "id", interval_seconds: 60 }, "cursor_column"],
    [{ source: SOURCE, source_table: "parent", mode: "full", slot_name: "x", interval_seconds: 60 }, "slot_name"],
    [{ source: SOURCE, source_table: "parent", mode: "cdc", slot_name: "Bad-Name", interval_seconds: 60 }, "slot_name"],
    [{ source: { type: "mysql", url_secret: "PG_URL" }, source_table: "parent", mode: "cdc", slot_name: "abc", interval_seconds: 60 }, "postgres"],
  ]) {
    const r = await w.api("POST", "/replication/configs", { body });
    assertEnvelope(r, 400, JSON.stringify(body));
    assert.match(r.json.error, new RegExp(field), r.json.error);
  }
  parentCfg = await w.createConfig({ source: SOURCE, source_table: "parent", mode: "cdc", interval_seconds: 3600, enabled: false });
  childCfg = await w.createConfig({ source: SOURCE, source_table: "child", mode: "cdc", interval_seconds: 3600, enabled: false });
  assert.equal(parentCfg.mode, "cdc");
  assert.match(parentCfg.slot_name, /^edge_replica_[0-9a-f]{16}_[0-9a-f]{8}$/);
  assert.equal(parentCfg.publication, parentCfg.slot_name);
  assert.equal(childCfg.slot_name, parentCfg.slot_name, "one slot per origin");
});

test("first syncs copy both tables and share one slot", async () => {
  const r1 = await w.sync(parentCfg.id);
  assert.equal(r1.status, "ok", JSON.stringify(r1));
  assert.match(r1.cursor, /^[0-9A-F]+\/[0-9A-F]+$/);
  const r2 = await w.sync(childCfg.id);
  assert.equal(r2.status, "ok", JSON.stringify(r2));
  await same("parent");
  await same("child");
  const slots = (await db.query("SELECT slot_name, plugin FROM pg_replication_slots WHERE database = current_database()")).rows;
  assert.deepEqual(slots, [{ slot_name: parentCfg.slot_name, plugin: "pgoutput" }]);
  const st = await w.status(childCfg.id);
  assert.equal(st.cdc.slot_name, parentCfg.slot_name);
  assert.match(st.cdc.confirmed_lsn, /\//);
  assert.equal(typeof st.cdc.slot_lag_bytes, "number");
  // Lag: the slot was caught up by the last run, so the replica is as new as its start.
  assert.ok(st.data_as_of && Date.parse(st.data_as_of) <= Date.now(), `data_as_of ${st.data_as_of}`);
  assert.ok(typeof st.lag_seconds === "number" && st.lag_seconds >= 0 && st.lag_seconds < 60, `lag ${st.lag_seconds}`);
  const parent = await w.status(parentCfg.id);
  assert.equal(parent.data_as_of, st.data_as_of, "configs on one slot share its data_as_of");
});

test("inserts, updates, deletes, key changes, insert-and-delete, truncate: the replica equals the origin", async () => {
  await db.query(`
    INSERT INTO parent VALUES (100, 'new'), (9223372036854775807, 'max');
    UPDATE parent SET name = 'renamed' WHERE id <= 5;
    UPDATE parent SET id = 1000 WHERE id = 6;
    DELETE FROM child WHERE id % 10 = 0;
    INSERT INTO child VALUES (900, 100, NULL, ''), (901, 100, '', NULL);`);
  await db.query(`BEGIN; INSERT INTO child VALUES (999, 1, 'fleeting', NULL); DELETE FROM child WHERE id = 999; COMMIT;`);
  const run = await w.sync(parentCfg.id);
  assert.equal(run.status, "ok", JSON.stringify(run));
  assert.ok(run.rows_deleted >= 20, `deletes counted: ${run.rows_deleted}`);
  await same("parent");
  await same("child");
  await db.query("TRUNCATE child");
  await db.query("INSERT INTO child VALUES (1, 1, 'after truncate', NULL)");
  const t = await w.sync(childCfg.id);
  assert.equal(t.status, "ok", JSON.stringify(t));
  await same("child");
});

test("an unchanged TOASTed value keeps the replica's value", async () => {
  const big = "x".repeat(5000) + Math.random().toString(36).repeat(200);
  await db.query("ALTER TABLE child ALTER COLUMN blob SET STORAGE EXTERNAL");
  await db.query("INSERT INTO child VALUES (7777, 2, 'toast', $1)", [big]);
  await w.sync(childCfg.id);
  await db.query("UPDATE child SET note = 'touched' WHERE id = 7777");
  const r = await w.sync(childCfg.id);
  assert.equal(r.status, "ok", JSON.stringify(r));
  const rows = await w.query("SELECT note, length(blob) AS n FROM child WHERE id = 7777");
  assert.deepEqual(rows, [{ note: "touched", n: big.length }]);
  await same("child");
});

test("a reader never sees a child without its parent", async () => {
  let stop = false;
  let violations = 0;
  let reads = 0;
  const reader = (async () => {
    while (!stop) {
      const r = await w.query(
        "SELECT count(*) AS n FROM child c WHERE NOT EXISTS (SELECT 1 FROM parent p WHERE p.id = c.parent_id)",
      );
      reads++;
      if (Number(r[0].n) !== 0) violations++;
      await sleep(5);
    }
  })();
  for (let i = 0; i < 20; i++) {
    await db.query(`BEGIN; INSERT INTO parent VALUES (${5000 + i}, 'tx'); INSERT INTO child SELECT ${5000 + i} * 100 + g, ${5000 + i}, 'c', NULL
      FROM generate_series(1, 50) g; COMMIT;`);
    await w.sync(i % 2 ? parentCfg.id : childCfg.id);
  }
  stop = true;
  await reader;
  assert.ok(reads > 10, `the reader read ${reads} times`);
  assert.equal(violations, 0, "no orphan child was ever visible");
  await same("parent");
  await same("child");
});

test("a 100,000-row UPDATE in one transaction arrives whole", async () => {
  await db.query("INSERT INTO child SELECT 100000 + g, 1, 'bulk', NULL FROM generate_series(1, 100000) g");
  let r = await w.sync(childCfg.id);
  while (r.status === "partial") r = await w.sync(childCfg.id);
  await db.query("UPDATE child SET note = 'bulk updated' WHERE id BETWEEN 100001 AND 200000");
  r = await w.sync(childCfg.id);
  while (r.status === "partial") r = await w.sync(childCfg.id);
  assert.equal(r.status, "ok", JSON.stringify(r));
  const n = await w.query("SELECT count(*) AS n FROM child WHERE note = 'bulk updated'");
  assert.equal(Number(n[0].n), 100000);
  await same("child");
});

test("workerd SIGKILLed while applying a 100,000-row transaction: exact after the restart, nothing doubled", async () => {
  for (const [k, delayMs] of [[1, 150], [2, 600], [3, 1500]]) {
    await db.query(`UPDATE child SET note = 'crash ${k} ' || id WHERE id BETWEEN 100001 AND 200000`);
    const pending = w.api("POST", `/replication/sync/${childCfg.id}`).catch(() => null);
    await sleep(delayMs);
    await killWorkerd(w);
    await pending;
    let r = await w.api("POST", `/replication/sync/${childCfg.id}`);
    for (let i = 0; i < 20 && (r.status === 409 || r.json?.result?.status === "partial"); i++) {
      await sleep(500);
      r = await w.api("POST", `/replication/sync/${childCfg.id}`);
    }
    assertEnvelope(r, 200, `sync after kill ${k}`);
    const n = await w.query(`SELECT count(*) AS n FROM child WHERE note LIKE 'crash ${k} %'`);
    assert.equal(Number(n[0].n), 100000, `kill ${k}: the whole transaction is there`);
    await same("child");
  }
});

test("a column added at the origin appears with its values in every row", async () => {
  await db.query("ALTER TABLE parent ADD COLUMN score int NOT NULL DEFAULT 7");
  await db.query("UPDATE parent SET score = 9 WHERE id = 1");
  let r = await w.sync(parentCfg.id);
  for (let i = 0; i < 5 && r.status !== "ok"; i++) r = await w.sync(parentCfg.id);
  assert.equal(r.status, "ok", JSON.stringify(r));
  await db.query("UPDATE parent SET score = 11 WHERE id = 2");
  assert.equal((await w.sync(parentCfg.id)).status, "ok");
  const o = (await db.query("SELECT id::text AS id, score FROM parent ORDER BY parent.id")).rows.map((x) => `${x.id}:${x.score}`);
  const rr = (await w.query("SELECT CAST(id AS TEXT) AS id, score FROM parent ORDER BY parent.id")).map((x) => `${x.id}:${x.score}`);
  assert.deepEqual(rr, o);
  await same("parent");
  await same("child");
});

test("a table without a primary key (or REPLICA IDENTITY FULL) is refused before anything is created", async () => {
  await db.query("CREATE TABLE nokey (a int, b text); INSERT INTO nokey VALUES (1, 'x')");
  const c = await w.createConfig({ source: SOURCE, source_table: "nokey", mode: "cdc", slot_name: "er_nokey", interval_seconds: 3600, enabled: false });
  assert.equal(c.publication, "er_nokey", "a named slot gets a publication of its own name");
  // The replica needs a key to upsert by: without one, it asks for `primary_key`.
  const noKey = await w.api("POST", `/replication/sync/${c.id}`);
  assertEnvelope(noKey, 502);
  assert.match(noKey.json.error, /no primary key.*primary_key/s, noKey.json.error);
  // With one in the config, the origin must still be able to publish updates and deletes.
  assertEnvelope(await w.api("PUT", `/replication/configs/${c.id}`, { body: { primary_key: ["a"] } }), 200);
  const r = await w.api("POST", `/replication/sync/${c.id}`);
  assertEnvelope(r, 502);
  assert.match(r.json.error, /no primary key.*REPLICA IDENTITY FULL/s, r.json.error);
  assert.equal((await db.query("SELECT count(*)::int AS n FROM pg_replication_slots WHERE slot_name = 'er_nokey'")).rows[0].n, 0);
  assert.equal((await db.query("SELECT count(*)::int AS n FROM pg_publication WHERE pubname = 'er_nokey'")).rows[0].n, 0);
  await db.query("ALTER TABLE nokey REPLICA IDENTITY FULL");
  const ok = await w.sync(c.id);
  assert.equal(ok.status, "ok", JSON.stringify(ok));
  await db.query("UPDATE nokey SET b = 'y'; INSERT INTO nokey VALUES (2, 'z')");
  assert.equal((await w.sync(c.id)).status, "ok");
  assert.deepEqual(await w.query("SELECT b FROM nokey ORDER BY b"), [{ b: "y" }, { b: "z" }]);
  assertEnvelope(await w.api("DELETE", `/replication/configs/${c.id}?drop_table=true`), 200);
  assert.equal((await db.query("SELECT count(*)::int AS n FROM pg_replication_slots WHERE slot_name = 'er_nokey'")).rows[0].n, 0);
});

test("a quiet origin does not pin WAL: the slot's position moves", async () => {
  const before = (await db.query("SELECT confirmed_flush_lsn::text AS c FROM pg_replication_slots WHERE slot_name = $1", [parentCfg.slot_name])).rows[0].c;
  // WAL from elsewhere: another table, not replicated.
  await db.query("CREATE TABLE noise (x int); INSERT INTO noise SELECT generate_series(1, 1000)");
  const r = await w.sync(parentCfg.id);
  assert.equal(r.status, "ok", JSON.stringify(r));
  const afterRow = (await db.query(
    "SELECT confirmed_flush_lsn::text AS c, (confirmed_flush_lsn > $2::pg_lsn) AS moved FROM pg_replication_slots WHERE slot_name = $1",
    [parentCfg.slot_name, before],
  )).rows[0];
  assert.equal(afterRow.moved, true, `confirmed_flush_lsn moved from ${before} to ${afterRow.c}`);
  // The restart point follows: a quiet slot must not keep the origin's WAL.
  const restart = async () =>
    (await db.query("SELECT restart_lsn::text AS r FROM pg_replication_slots WHERE slot_name = $1", [parentCfg.slot_name])).rows[0].r;
  const r0 = await restart();
  await db.query("INSERT INTO noise SELECT generate_series(1, 1000)");
  // PostgreSQL records running transactions (the points a slot may restart from) every 15 s
  // when the server is busy, and at checkpoints: a checkpoint stands for the quiet hour.
  for (let i = 0; i < 3; i++) {
    await db.query("CHECKPOINT");
    assert.equal((await w.sync(parentCfg.id)).status, "ok");
  }
  const moved = (await db.query("SELECT $1::pg_lsn > $2::pg_lsn AS m", [await restart(), r0])).rows[0].m;
  assert.equal(moved, true, `restart_lsn moved from ${r0}`);
});

test("two configs on one slot: a run while the other reads the slot is a 409, and counts no failure", async () => {
  await db.query("CALL touch_parents(3000)").catch(async () => {
    await db.query(`CREATE PROCEDURE touch_parents(n int) LANGUAGE plpgsql AS $$
      BEGIN FOR i IN 1..n LOOP UPDATE parent SET name = 'touched ' || i WHERE id = 1 + i % 40; COMMIT; END LOOP; END $$`);
    await db.query("CALL touch_parents(3000)");
  });
  // Both at once: whichever takes the slot first reads it; the other did not start.
  const [a, b] = await Promise.all([parentCfg.id, childCfg.id].map((id) => w.api("POST", `/replication/sync/${id}`)));
  assert.deepEqual([a.status, b.status].sort(), [200, 409], `${a.text} / ${b.text}`);
  const busy = a.status === 409 ? a : b;
  assert.match(busy.json.error, /slot .* is being read/);
  assert.equal((await w.sync(parentCfg.id)).status, "ok");
  assert.equal((await w.sync(childCfg.id)).status, "ok");
  for (const id of [parentCfg.id, childCfg.id]) {
    assert.equal((await w.status(id)).consecutive_failures, 0, "a busy slot is not a failure");
  }
  await same("parent");
});

test("a new slot_name moves the config to a fresh slot and drops the old one", async () => {
  await db.query("CREATE TABLE moving (id int PRIMARY KEY, v text); INSERT INTO moving VALUES (1, 'a')");
  const c = await w.createConfig({ source: SOURCE, source_table: "moving", mode: "cdc", slot_name: "er_first", interval_seconds: 3600, enabled: false });
  assert.equal((await w.sync(c.id)).status, "ok");
  const slots = async () => (await db.query("SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'er\\_%' ORDER BY 1")).rows.map((r) => r.slot_name);
  assert.deepEqual(await slots(), ["er_first"]);
  const moved = await w.api("PUT", `/replication/configs/${c.id}`, { body: { slot_name: "er_second" } });
  assertEnvelope(moved, 200);
  assert.equal(moved.json.result.publication, "er_second", "a publication named after its slot follows it");
  assert.deepEqual(await slots(), [], "the old slot is dropped once no config reads it");
  await db.query("INSERT INTO moving VALUES (2, 'b')");
  assert.equal((await w.sync(c.id)).status, "ok");
  assert.deepEqual(await slots(), ["er_second"]);
  assert.deepEqual(await w.query("SELECT id, v FROM moving ORDER BY id"), [{ id: 1, v: "a" }, { id: 2, v: "b" }]);
  assertEnvelope(await w.api("DELETE", `/replication/configs/${c.id}?drop_table=true`), 200);
  assert.deepEqual(await slots(), []);
});

test("deleting a cdc config while the origin is unreachable deletes it and names what is left behind", async () => {
  const other = await pgDatabase({ adminUrl: PG_LOGICAL_URL });
  const proxy = await tcpProxy({ host: "127.0.0.1", port: 5433 });
  const viaProxy = new URL(other.url);
  viaProxy.port = String(proxy.port);
  const w2 = await startWorker({ vars: { PG_URL: viaProxy.toString() } });
  try {
    await other.query("CREATE TABLE t (id int PRIMARY KEY)");
    const c = await w2.createConfig({ source: SOURCE, source_table: "t", mode: "cdc", interval_seconds: 3600, enabled: false });
    assert.equal((await w2.sync(c.id)).status, "ok");
    await proxy.stop();
    const d = await w2.api("DELETE", `/replication/configs/${c.id}`);
    assertEnvelope(d, 200);
    assert.equal(d.json.result.deleted, true);
    const left = d.json.result.left_behind.join("\n");
    assert.ok(left.includes(`replication slot ${c.slot_name}`) && left.includes(`publication ${c.publication}`), left);
    assertEnvelope(await w2.api("GET", `/replication/configs/${c.id}`), 404);
  } finally {
    await w2.dispose();
    await proxy.stop();
    await other.close();
  }
});

test("every type's edge values: a cdc replica equals a full copy cell by cell", async () => {
  await db.query(`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'très content')`);
  await db.query(`
    CREATE TABLE types_edge (
      id integer PRIMARY KEY,
      c_smallint smallint, c_int integer, c_bigint bigint, c_real real, c_double double precision,
      c_numeric numeric, c_numeric_scaled numeric(50, 10), c_money money, c_bool boolean, c_bytea bytea,
      c_tstz timestamptz, c_ts timestamp, c_date date, c_time time, c_timetz timetz, c_interval interval,
      c_uuid uuid, c_enum mood, c_json json, c_jsonb jsonb,
      c_int_arr integer[], c_text_arr text[], c_bigint_arr bigint[],
      c_text text, c_varchar varchar(40), c_char char(5), c_inet inet
    )`);
  const cdc = await w.createConfig({ source: SOURCE, source_table: "types_edge", target_table: "types_cdc", mode: "cdc", interval_seconds: 3600, enabled: false });
  const full = await w.createConfig({ source: SOURCE, source_table: "types_edge", target_table: "types_full", interval_seconds: 3600, enabled: false });
  assert.equal((await w.sync(cdc.id)).status, "ok");
  await db.query(`
    INSERT INTO types_edge VALUES
    (1, -32768, -2147483648, -9223372036854775808, 0.1, 0.1,
        '1234567890123456789012345678901234567890.123456789', '-12345678901234567890.0123456789', '-92233720368547758.08',
        true, '\\x00'::bytea,
        '2026-01-02 03:04:05.123456+00', '2026-01-02 03:04:05.123456', '2026-01-02', '03:04:05.123456', '03:04:05.5+05:30',
        '1 year 2 months 3 days 4 hours 5 minutes 6.5 seconds',
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'happy',
        '{"big": 123456789012345678901234567890, "s": "x", "f": 1.50}', '{"big": 123456789012345678901234567890, "s": "x"}',
        '{1,2,3}', '{"a","b c","","quote\\"d",NULL}', '{-9223372036854775808,9223372036854775807}',
        '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ✓ 日本語 🎉', 'varchar', 'ab', '192.168.0.1/24'),
    (2, 32767, 2147483647, 9223372036854775807, 3.4028235e38, 1e308,
        '-0.000000000000000000000000000000000000001', '99999999999999999999999999999999999999.9999999999', '92233720368547758.07',
        false, ''::bytea,
        '1999-12-31 23:59:59.999999-08', '1970-01-01 00:00:00', '2000-02-29', '23:59:59.999999', '24:00:00-14:59',
        '-3 days 00:00:01', '00000000-0000-0000-0000-000000000000', 'très content', '[]', '{}',
        '{}', '{}', '{}', '', '', '', '::1'),
    (3, 0, 0, 0, 'NaN', '-Infinity', 'NaN', '0.0000000000', '0.00', true, '\\x00ff00deadbeef00'::bytea,
        'infinity', '-infinity', '0044-03-15 BC', '00:00:00', '00:00:00+00', '0 seconds',
        'ffffffff-ffff-ffff-ffff-ffffffffffff', 'sad', '"just a string"', 'null',
        '{NULL,2,NULL}', '{"x,y","{}","[\\"a\\"]","\\\\"}', '{0}', 'a''b"c\\d', NULL, NULL, NULL),
    (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
        NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`);
  const r = await w.sync(cdc.id);
  assert.equal(r.status, "ok", JSON.stringify(r));
  assert.equal(r.rows_upserted, 4);
  assert.equal((await w.sync(full.id)).status, "ok");
  const cols = (await w.query("SELECT name FROM pragma_table_info('types_full') ORDER BY cid")).map((c) => c.name);
  const exprs = cols.map((c) => `typeof("${c}") AS "t_${c}", quote("${c}") AS "q_${c}"`).join(", ");
  const a = await w.query(`SELECT ${exprs} FROM types_full ORDER BY id`);
  const b = await w.query(`SELECT ${exprs} FROM types_cdc ORDER BY id`);
  assert.equal(b.length, 4);
  for (let i = 0; i < a.length; i++) {
    for (const k of Object.keys(a[i])) assert.equal(b[i][k], a[i][k], `row ${i + 1}, ${k}`);
  }
  const schemaOf = async (t) => (await w.query(`SELECT name, type FROM pragma_table_info('${t}') ORDER BY cid`));
  assert.deepEqual(await schemaOf("types_cdc"), await schemaOf("types_full"), "declared types match");
});

test("a slot dropped behind the replica's back fails the run, naming the slot", async () => {
  const other = await pgDatabase({ adminUrl: PG_LOGICAL_URL });
  const w2 = await startWorker({ vars: { PG_URL: other.url } });
  try {
    await other.query("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a')");
    const c = await w2.createConfig({ source: SOURCE, source_table: "t", mode: "cdc", interval_seconds: 3600, enabled: false });
    assert.equal((await w2.sync(c.id)).status, "ok");
    await other.query("SELECT pg_drop_replication_slot($1)", [c.slot_name]);
    await other.query("INSERT INTO t VALUES (2, 'b')");
    const r = await w2.api("POST", `/replication/sync/${c.id}`);
    assertEnvelope(r, 502);
    assert.equal(r.json.result.status, "error");
    assert.ok(r.json.error.includes(c.slot_name) && /lost/.test(r.json.error) && /[Rr]eset/.test(r.json.error), r.json.error);
    // Deleting the config removes what the replica created; the slot is already gone.
    const d = await w2.api("DELETE", `/replication/configs/${c.id}`);
    assertEnvelope(d, 200);
    const pubs = (await other.query("SELECT pubname FROM pg_publication")).rows;
    assert.deepEqual(pubs, [], "the replica's publication is dropped with its last config");
  } finally {
    await w2.dispose();
    await other.close();
  }
});

test("deleting the configs drops the table from the publication, then the slot with the last", async () => {
  const d1 = await w.api("DELETE", `/replication/configs/${childCfg.id}`);
  assertEnvelope(d1, 200);
  assert.deepEqual(d1.json.result, { deleted: true });
  const tables = (await db.query("SELECT tablename FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1", [parentCfg.publication])).rows;
  assert.deepEqual(tables.map((t) => t.tablename), ["parent", "types_edge"]);
  const slots = async () => (await db.query("SELECT slot_name FROM pg_replication_slots WHERE database = current_database()")).rows.length;
  assert.equal(await slots(), 1, "the slot stays while other configs read it");
  for (const c of (await w.api("GET", "/replication/configs")).json.result.filter((c) => c.mode === "cdc")) {
    assertEnvelope(await w.api("DELETE", `/replication/configs/${c.id}`), 200);
  }
  assert.equal(await slots(), 0, "the last config's delete drops the slot");
  assert.equal((await db.query("SELECT count(*)::int AS n FROM pg_publication")).rows[0].n, 0, "and the replica's publication");
});
