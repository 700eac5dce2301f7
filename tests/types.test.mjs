// Every PostgreSQL type's edge values, compared exactly with what the replica holds
// (API.md "Values in the replica"); quoted identifiers; a columns subset.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, pgDatabase, assertEnvelope } from "./harness.mjs";

let db;
let w;

before(async () => {
  db = await pgDatabase();
  await db.query(`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'très content')`);
  await db.query(`
    CREATE TABLE types_edge (
      id integer PRIMARY KEY,
      c_smallint smallint, c_int integer, c_bigint bigint,
      c_real real, c_double double precision,
      c_numeric numeric, c_numeric_scaled numeric(50, 10), c_money money,
      c_bool boolean, c_bytea bytea,
      c_tstz timestamptz, c_ts timestamp, c_date date, c_time time, c_interval interval,
      c_uuid uuid, c_enum mood, c_json json, c_jsonb jsonb,
      c_int_arr integer[], c_text_arr text[], c_bigint_arr bigint[],
      c_text text, "select" text, c_varchar varchar(40)
    )`);
  await db.query(`
    INSERT INTO types_edge VALUES
    (1, -32768, -2147483648, -9223372036854775808,
        0.1, 0.1,
        '1234567890123456789012345678901234567890.123456789', '-12345678901234567890.0123456789', '-92233720368547758.08',
        true, '\\x00'::bytea,
        '2026-01-02 03:04:05.123456+00', '2026-01-02 03:04:05.123456', '2026-01-02', '03:04:05.123456',
        '1 year 2 months 3 days 4 hours 5 minutes 6.5 seconds',
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'happy',
        '{"big": 123456789012345678901234567890, "s": "x", "f": 1.50, "nested": {"a": [1, 2.0e3]}}',
        '{"big": 123456789012345678901234567890, "s": "x"}',
        '{1,2,3}', '{"a","b c","","quote\\"d",NULL}', '{-9223372036854775808,9223372036854775807}',
        '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ✓ 日本語 🎉 Ünïcödé', 'sel', 'varchar'),
    (2, 32767, 2147483647, 9223372036854775807,
        3.4028235e38, 1e308,
        '-0.000000000000000000000000000000000000001', '99999999999999999999999999999999999999.9999999999', '92233720368547758.07',
        false, ''::bytea,
        '1999-12-31 23:59:59.999999-08', '1970-01-01 00:00:00', '2000-02-29', '23:59:59.999999',
        '-3 days 00:00:01',
        '00000000-0000-0000-0000-000000000000', 'très content',
        '[]', '{}',
        '{}', '{}', '{}',
        '', '', ''),
    (3, 0, 0, 0,
        1.5, -2.5e-300,
        '1.500', '0.0000000000', '0.00',
        true, '\\x00ff00deadbeef00'::bytea,
        '2026-01-02 03:04:05+00', '2026-01-02 03:04:05', '1900-01-01', '00:00:00',
        '0 seconds',
        'ffffffff-ffff-ffff-ffff-ffffffffffff', 'sad',
        '"just a string"', 'null',
        '{NULL,2,NULL}', '{"x,y","{}","[\\"a\\"]","\\\\"}', '{0}',
        'a''b"c\\d', 'line1' || chr(10) || 'line2', NULL),
    (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
        NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
  `);
  await db.query(`CREATE SCHEMA "My Schema"`);
  await db.query(`
    CREATE TABLE "My Schema"."Order Items" (
      "Line No" integer PRIMARY KEY,
      "select" text,
      "Qty""x" integer,
      "from" timestamptz
    )`);
  await db.query(`
    INSERT INTO "My Schema"."Order Items"
    SELECT i, 'item ' || i, i * 10, timestamptz '2026-01-02 00:00:00+00' + i * interval '1 minute'
    FROM generate_series(1, 25) i`);
  w = await startWorker({ vars: { PG_URL: db.url } });
});

after(async () => {
  await w?.dispose();
  await db?.close();
});

const SOURCE = { type: "postgres", url_secret: "PG_URL" };

async function replicaRow(id, exprs) {
  const rows = await w.query(`SELECT ${exprs} FROM types_edge WHERE id = ?`, [id]);
  assert.equal(rows.length, 1, `row ${id} is in the replica`);
  return rows[0];
}

/** Parse JSON keeping every number as its source text, with sorted keys. */
function canonicalJson(text) {
  const v = JSON.parse(text, (key, value, ctx) =>
    typeof value === "number" ? { $num: ctx?.source ?? String(value) } : value,
  );
  const norm = (x) => {
    if (Array.isArray(x)) return x.map(norm);
    if (x && typeof x === "object") {
      if ("$num" in x && Object.keys(x).length === 1) return `#${Number(x.$num) === 0 ? "0" : normNum(x.$num)}`;
      return Object.fromEntries(Object.keys(x).sort().map((k) => [k, norm(x[k])]));
    }
    return x;
  };
  return norm(v);
}
// 2.0e3 and 2000 are the same JSON number; keep big integers digit for digit
function normNum(s) {
  return /^-?\d+$/.test(s) ? s : String(Number(s));
}

let cfg;

test("sync the edge-value table", async () => {
  cfg = await w.createConfig({ source: SOURCE, source_table: "types_edge", interval_seconds: 3600, enabled: false });
  assert.equal(cfg.mode, "full");
  const run = await w.sync(cfg.id);
  assert.equal(run.status, "ok", JSON.stringify(run));
  assert.equal(run.rows_upserted, 4);
});

test("integers: INTEGER with all 64 bits", async () => {
  const expect = {
    1: ["-32768", "-2147483648", "-9223372036854775808"],
    2: ["32767", "2147483647", "9223372036854775807"],
    3: ["0", "0", "0"],
  };
  for (const [id, [s, i, b]] of Object.entries(expect)) {
    const r = await replicaRow(
      Number(id),
      `CAST(c_smallint AS TEXT) AS s, CAST(c_int AS TEXT) AS i, CAST(c_bigint AS TEXT) AS b,
       typeof(c_smallint) AS ts, typeof(c_int) AS ti, typeof(c_bigint) AS tb`,
    );
    assert.deepEqual(r, { s, i, b, ts: "integer", ti: "integer", tb: "integer" }, `row ${id}`);
  }
  // exact arithmetic in SQLite proves they are integers, not doubles
  const [r] = await w.query(
    "SELECT CAST(c_bigint - 1 AS TEXT) AS m, c_bigint = 9223372036854775807 AS eq FROM types_edge WHERE id = 2",
  );
  assert.deepEqual(r, { m: "9223372036854775806", eq: 1 });
  const [r1] = await w.query("SELECT c_bigint = -9223372036854775807 - 1 AS eq FROM types_edge WHERE id = 1");
  assert.equal(r1.eq, 1);
});

test("real and double precision: REAL", async () => {
  const expect = { 1: [0.1, 0.1], 2: [3.4028234663852886e38, 1e308], 3: [1.5, -2.5e-300] };
  for (const [id, [real, dbl]] of Object.entries(expect)) {
    const r = await replicaRow(Number(id), `c_real, c_double, typeof(c_real) AS tr, typeof(c_double) AS td`);
    assert.equal(r.tr, "real", `row ${id} real type`);
    assert.equal(r.td, "real", `row ${id} double type`);
    // a float4 may arrive widened (0.10000000149011612) or as its shortest text (0.1)
    assert.equal(Math.fround(r.c_real), Math.fround(real), `row ${id} real ${r.c_real}`);
    assert.equal(r.c_double, dbl, `row ${id} double`);
  }
  const [exact] = await w.query("SELECT c_double = 0.1 AS a, c_double * 10 AS b FROM types_edge WHERE id = 1");
  assert.equal(exact.a, 1);
});

test("numeric and money: TEXT with every digit", async () => {
  const src = (
    await db.query(
      `SELECT id, c_numeric::text AS n, c_numeric_scaled::text AS ns, c_money::numeric::text AS m
       FROM types_edge WHERE id <= 3 ORDER BY id`,
    )
  ).rows;
  assert.equal(src[0].n, "1234567890123456789012345678901234567890.123456789");
  assert.equal(src[2].n, "1.500");
  for (const s of src) {
    const r = await replicaRow(
      s.id,
      `c_numeric AS n, c_numeric_scaled AS ns, c_money AS m,
       typeof(c_numeric) AS tn, typeof(c_numeric_scaled) AS tns, typeof(c_money) AS tm`,
    );
    assert.deepEqual(r, { n: s.n, ns: s.ns, m: s.m, tn: "text", tns: "text", tm: "text" }, `row ${s.id}`);
  }
});

test("boolean: 0/1", async () => {
  for (const [id, v] of [[1, 1], [2, 0], [3, 1]]) {
    const r = await replicaRow(id, "c_bool AS b, typeof(c_bool) AS t");
    assert.deepEqual(r, { b: v, t: "integer" }, `row ${id}`);
  }
});

test("bytea: BLOB, byte for byte (empty and \\x00 included)", async () => {
  for (const [id, hex] of [[1, "00"], [2, ""], [3, "00FF00DEADBEEF00"]]) {
    const r = await replicaRow(id, "hex(c_bytea) AS h, typeof(c_bytea) AS t, length(c_bytea) AS n");
    assert.deepEqual(r, { h: hex, t: "blob", n: hex.length / 2 }, `row ${id}`);
  }
});

test("timestamptz, timestamp, date, time: ISO-8601 text with microseconds", async () => {
  const expect = {
    1: ["2026-01-02T03:04:05.123456Z", "2026-01-02T03:04:05.123456", "2026-01-02", "03:04:05.123456"],
    2: ["2000-01-01T07:59:59.999999Z", "1970-01-01T00:00:00.000000", "2000-02-29", "23:59:59.999999"],
    3: ["2026-01-02T03:04:05.000000Z", "2026-01-02T03:04:05.000000", "1900-01-01", "00:00:00.000000"],
  };
  for (const [id, [tstz, ts, d, t]] of Object.entries(expect)) {
    const r = await replicaRow(
      Number(id),
      `c_tstz, c_ts, c_date, c_time, typeof(c_tstz) AS a, typeof(c_ts) AS b, typeof(c_date) AS c, typeof(c_time) AS d`,
    );
    assert.deepEqual(
      r,
      { c_tstz: tstz, c_ts: ts, c_date: d, c_time: t, a: "text", b: "text", c: "text", d: "text" },
      `row ${id}`,
    );
  }
});

test("interval: ISO-8601 duration text", async () => {
  for (const id of [1, 2, 3]) {
    const r = await replicaRow(id, "c_interval AS i, typeof(c_interval) AS t");
    assert.equal(r.t, "text", `row ${id}`);
    assert.match(r.i, /^-?P/, `row ${id}: ${r.i}`);
  }
  const r1 = await replicaRow(1, "c_interval AS i");
  // 1 year 2 months 3 days 4 hours 5 minutes 6.5 seconds
  assert.match(r1.i, /^P1Y2M3DT4H5M6\.50*S$/, r1.i);
});

test("uuid and enum: TEXT", async () => {
  const expect = {
    1: ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "happy"],
    2: ["00000000-0000-0000-0000-000000000000", "très content"],
    3: ["ffffffff-ffff-ffff-ffff-ffffffffffff", "sad"],
  };
  for (const [id, [u, e]] of Object.entries(expect)) {
    const r = await replicaRow(Number(id), "c_uuid AS u, c_enum AS e, typeof(c_uuid) AS tu, typeof(c_enum) AS te");
    assert.deepEqual(r, { u, e, tu: "text", te: "text" }, `row ${id}`);
  }
});

test("json and jsonb: TEXT holding the JSON, big numbers digit for digit", async () => {
  const src = (await db.query("SELECT id, c_json::text AS j, c_jsonb::text AS jb FROM types_edge WHERE id <= 3 ORDER BY id"))
    .rows;
  for (const s of src) {
    const r = await replicaRow(s.id, "c_json AS j, c_jsonb AS jb, typeof(c_json) AS tj, typeof(c_jsonb) AS tjb, json_valid(c_json) AS vj, json_valid(c_jsonb) AS vjb");
    assert.equal(r.tj, "text", `row ${s.id}`);
    assert.equal(r.tjb, "text", `row ${s.id}`);
    assert.equal(r.vj, 1, `row ${s.id} json is valid JSON: ${r.j}`);
    assert.equal(r.vjb, 1, `row ${s.id} jsonb is valid JSON: ${r.jb}`);
    assert.deepEqual(canonicalJson(r.j), canonicalJson(s.j), `row ${s.id} json ${r.j} vs ${s.j}`);
    assert.deepEqual(canonicalJson(r.jb), canonicalJson(s.jb), `row ${s.id} jsonb ${r.jb} vs ${s.jb}`);
  }
  const r1 = await replicaRow(1, "c_json AS j, c_jsonb AS jb");
  assert.ok(r1.j.includes("123456789012345678901234567890"), r1.j);
  assert.ok(r1.jb.includes("123456789012345678901234567890"), r1.jb);
  // SQLite's JSON functions read it
  const [x] = await w.query("SELECT json_extract(c_jsonb, '$.s') AS s, json_type(c_json, '$.big') AS t FROM types_edge WHERE id = 1");
  assert.deepEqual(x, { s: "x", t: "integer" });
  const r3 = await replicaRow(3, "c_json AS j, c_jsonb AS jb");
  assert.deepEqual(JSON.parse(r3.j), "just a string");
  assert.equal(r3.jb, "null", "jsonb null is the JSON text null, not SQL NULL");
});

test("arrays: TEXT holding a JSON array", async () => {
  const expect = {
    1: [[1, 2, 3], ["a", "b c", "", 'quote"d', null], ["-9223372036854775808", "9223372036854775807"]],
    2: [[], [], []],
    3: [[null, 2, null], ["x,y", "{}", '["a"]', "\\"], ["0"]],
  };
  for (const [id, [ints, texts, bigs]] of Object.entries(expect)) {
    const r = await replicaRow(
      Number(id),
      "c_int_arr AS i, c_text_arr AS t, c_bigint_arr AS b, typeof(c_int_arr) AS ti, typeof(c_text_arr) AS tt, json_valid(c_bigint_arr) AS vb",
    );
    assert.equal(r.ti, "text", `row ${id}`);
    assert.equal(r.tt, "text", `row ${id}`);
    assert.equal(r.vb, 1, `row ${id}`);
    assert.deepEqual(JSON.parse(r.i), ints, `row ${id} int[] ${r.i}`);
    assert.deepEqual(JSON.parse(r.t), texts, `row ${id} text[] ${r.t}`);
    // bigint elements keep all their digits
    const bigDigits = JSON.parse(r.b, (k, v, ctx) => (typeof v === "number" ? ctx?.source ?? String(v) : v));
    assert.deepEqual(bigDigits, bigs, `row ${id} bigint[] ${r.b}`);
  }
  const r1 = await replicaRow(1, "c_int_arr AS i");
  assert.equal(r1.i.replace(/\s/g, ""), "[1,2,3]");
});

test("text: Unicode exact, '' stays '', NULL stays NULL, a column named select", async () => {
  const src = (await db.query(`SELECT id, c_text, "select", c_varchar FROM types_edge ORDER BY id`)).rows;
  const rep = await w.query(`SELECT id, c_text, "select", c_varchar FROM types_edge ORDER BY id`);
  assert.deepEqual(rep, src);
  const r2 = await replicaRow(2, `c_text, typeof(c_text) AS t, length(c_text) AS n, "select" AS s`);
  assert.deepEqual(r2, { c_text: "", t: "text", n: 0, s: "" });
  const r1 = await replicaRow(1, "c_text");
  assert.equal(r1.c_text, "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ✓ 日本語 🎉 Ünïcödé");
});

test("NULL stays NULL in every column", async () => {
  const [r] = await w.query("SELECT * FROM types_edge WHERE id = 4");
  for (const [k, v] of Object.entries(r)) {
    if (k === "id") assert.equal(v, 4);
    else assert.equal(v, null, `column ${k}`);
  }
  assert.equal(Object.keys(r).length, 26);
});

test('quoted identifiers: "My Schema"."Order Items" with columns "select", "Qty""x", "from"', async () => {
  const c = await w.createConfig({
    source: SOURCE,
    source_table: '"My Schema"."Order Items"',
    cursor_column: '"from"',
    interval_seconds: 3600,
    enabled: false,
  });
  assert.equal(c.target_table, "Order Items");
  assert.equal(c.mode, "incremental");
  const run = await w.sync(c.id);
  assert.equal(run.status, "ok", JSON.stringify(run));
  assert.equal(run.rows_upserted, 25);
  const rows = await w.query(`SELECT "Line No", "select", "Qty""x", "from" FROM "Order Items" ORDER BY "Line No"`);
  assert.equal(rows.length, 25);
  assert.deepEqual(rows[0], { "Line No": 1, select: "item 1", 'Qty"x': 10, from: "2026-01-02T00:01:00.000000Z" });
  assert.deepEqual(rows[24], { "Line No": 25, select: "item 25", 'Qty"x': 250, from: "2026-01-02T00:25:00.000000Z" });
  // incremental on a quoted cursor
  await db.query(`INSERT INTO "My Schema"."Order Items" VALUES (26, 'late item', 1, '2026-02-01 00:00:00+00')`);
  const run2 = await w.sync(c.id);
  assert.equal(run2.rows_upserted, 1);
  const st = await w.status(c.id);
  assert.equal(st.target_table, "Order Items");
  assert.equal(st.target_row_count, 26);
});

test("columns subset with an explicit target table", async () => {
  const c = await w.createConfig({
    source: SOURCE,
    source_table: "public.types_edge",
    target_table: "types_subset",
    columns: ["id", "c_text", '"select"'],
    interval_seconds: 3600,
    enabled: false,
  });
  const run = await w.sync(c.id);
  assert.equal(run.status, "ok", JSON.stringify(run));
  const rows = await w.query("SELECT * FROM types_subset ORDER BY id");
  assert.equal(rows.length, 4);
  assert.deepEqual(Object.keys(rows[0]).sort(), ["c_text", "id", "select"]);
  assert.deepEqual(rows[1], { id: 2, c_text: "", select: "" });
  const got = await w.api("GET", `/replication/configs/${c.id}`);
  assertEnvelope(got, 200);
  assert.equal(got.json.result.columns.length, 3);
});
