// Delete reconciliation end to end: incremental configs of every source type (PostgreSQL,
// MariaDB, a D1 binding, another edge-replica through starbase) whose origin loses 1% of its
// rows at random, gains and loses rows in the same key ranges, and deletes then re-inserts a
// key; after POST /replication/sync/:id?reconcile=true the replica equals the origin. Keys
// above 2^53, composite keys, text keys that the origin orders differently from the replica
// (ICU and case-insensitive PAD SPACE collations, trailing spaces). A pass cut by a small time
// budget resumes where it stopped; reconcile_seconds makes an alarm run reconcile when due;
// invalid requests are 400s that change nothing.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startWorker, pgDatabase, mysqlDatabase, assertEnvelope, waitFor, ADMIN } from "./harness.mjs";

let pg;
let my;
let d1Dir;
let w; // PostgreSQL, MariaDB and D1 sources
let b; // a second edge-replica reading w through starbase

before(async () => {
  pg = await pgDatabase();
  my = await mysqlDatabase({ prefix: "er_rc" });
  d1Dir = mkdtempSync(path.join(tmpdir(), "edge-replica-rc-d1-"));
  w = await startWorker({
    vars: { PG_URL: pg.url, MY_URL: `${my.url}?ssl-mode=disable` },
    miniflare: { d1Databases: { SRC_DB: "rc-src-db" }, d1Persist: d1Dir },
  });
  b = await startWorker({ vars: { A_ADMIN: ADMIN } });
});

after(async () => {
  await b?.dispose();
  await w?.dispose();
  await pg?.close();
  await my?.close();
  if (d1Dir) rmSync(d1Dir, { recursive: true, force: true });
});

const PG = { type: "postgres", url_secret: "PG_URL" };
const MY = { type: "mysql", url_secret: "MY_URL" };
const D1 = { type: "d1", binding: "SRC_DB" };

/** Rows through POST /query, 5000 at a time, as canonical text lines, sorted. */
async function replicaLines(worker, sql) {
  const out = [];
  for (let offset = 0; ; offset += 5000) {
    const rows = await worker.query(`${sql} LIMIT 5000 OFFSET ?`, [offset]);
    out.push(...rows.map((r) => r.line));
    if (rows.length < 5000) return out.sort();
  }
}

const sorted = (rows) => rows.map((r) => r.line).sort();

/** Asserts equal line lists without printing thousands of lines. */
function assertSameLines(replica, origin, label) {
  const r = new Set(replica);
  const o = new Set(origin);
  const extra = replica.filter((l) => !o.has(l)).slice(0, 5);
  const missing = origin.filter((l) => !r.has(l)).slice(0, 5);
  assert.deepEqual({ extra, missing, count: replica.length }, { extra: [], missing: [], count: origin.length }, label);
}

/** A forced pass: the run record, asserted ok and reconciled. */
async function reconcile(worker, id) {
  const r = await worker.api("POST", `/replication/sync/${id}?reconcile=true`);
  assertEnvelope(r, 200, "sync?reconcile=true");
  assert.equal(r.json.result.status, "ok", JSON.stringify(r.json.result));
  assert.equal(r.json.result.reconciled, true);
  return r.json.result;
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

const PG_ORDERS_LINE = `id::text || '|' || v || '|' || to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS line`;
const REPLICA_ORDERS_LINE = `CAST(id AS TEXT) || '|' || v || '|' || updated_at AS line`;

test("postgres: 1% deleted at random, deletes and inserts in one range, a key deleted and re-inserted, keys above 2^53", async () => {
  // Even ids, and odd ones above 2^53: room for new odd ids among the small ones.
  await pg.query(`CREATE TABLE orders (id bigint PRIMARY KEY, v text NOT NULL, updated_at timestamptz NOT NULL);
    INSERT INTO orders SELECT CASE WHEN g % 4 = 0 THEN 9007199254740993 + 2 * g ELSE 2 * g END, 'v' || g,
      timestamptz '2026-01-01Z' + g * interval '1 ms' FROM generate_series(1, 20000) g`);
  const cfg = await w.createConfig({ source: PG, source_table: "orders", cursor_column: "updated_at", interval_seconds: 3600, enabled: false });
  const first = await w.sync(cfg.id);
  assert.equal(first.status, "ok");
  assert.equal(first.reconciled, false, "no pass unless asked or due");
  const before = new Set((await pg.query("SELECT id::text AS id FROM orders")).rows.map((r) => r.id));

  await pg.query(`DELETE FROM orders WHERE id IN (SELECT id FROM orders ORDER BY md5(id::text || 'pg') LIMIT 200)`);
  // One range both loses and gains rows: even ids 8000..8200 go, odd ids between them arrive.
  await pg.query(`DELETE FROM orders WHERE id BETWEEN 8000 AND 8200`);
  await pg.query(`INSERT INTO orders SELECT g, 'new ' || g, now() FROM generate_series(8001, 8199, 2) g`);
  // Deleted, then re-inserted under the same key with new values.
  await pg.query(`DELETE FROM orders WHERE id IN (10000, 9007199254740993 + 2 * 4000)`);
  await pg.query(`INSERT INTO orders VALUES (10000, 'again', now()), (9007199254740993 + 2 * 4000, 'again big', now())`);
  // The first and the last key are gone too.
  await pg.query(`DELETE FROM orders WHERE id IN ((SELECT min(id) FROM orders), (SELECT max(id) FROM orders))`);

  const after = new Set((await pg.query("SELECT id::text AS id FROM orders")).rows.map((r) => r.id));
  const gone = [...before].filter((id) => !after.has(id)).length;
  assert.ok(gone > 250, `${gone} rows gone`);
  const run = await reconcile(w, cfg.id);
  assert.equal(run.rows_upserted, 102, "the inserts and the re-inserts arrive first");
  assert.equal(run.rows_deleted, gone);
  assertSameLines(
    await replicaLines(w, `SELECT ${REPLICA_ORDERS_LINE} FROM orders ORDER BY id`),
    sorted((await pg.query(`SELECT ${PG_ORDERS_LINE} FROM orders`)).rows),
    "orders after the pass",
  );
  const st = await w.status(cfg.id);
  assert.match(st.last_reconcile_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(st.target_row_count, after.size);
  // A pass with nothing to delete deletes nothing.
  const again = await reconcile(w, cfg.id);
  assert.equal(again.rows_deleted, 0);
  assert.equal(again.rows_upserted, 0);
});

test("postgres: a composite key with text the origin orders otherwise (ICU collation, case, spaces, accents)", async () => {
  const names = ["apple", "Apple", "APPLE", "apple ", "apple  ", "Äpfel", "banana", "B", "b", "a\t", "a!", "z", "Z", "é", "e\u0301", "😀", "", "ß", "ss", "0", "10", "9"];
  await pg.query(`CREATE TABLE tags (tenant int, name text COLLATE "en-x-icu", note text, updated_at timestamptz NOT NULL, PRIMARY KEY (tenant, name))`);
  await pg.query(
    `INSERT INTO tags SELECT t, n || s, 'note', timestamptz '2026-01-01Z' + t * interval '1 s'
       FROM generate_series(1, 40) t, unnest($1::text[]) n, unnest(ARRAY['', '-1', '-2', ' x']) s`,
    [names],
  );
  const cfg = await w.createConfig({ source: PG, source_table: "tags", cursor_column: "updated_at", interval_seconds: 3600, enabled: false });
  await w.sync(cfg.id);
  await pg.query(`DELETE FROM tags WHERE md5(tenant || name) < '08'`); // about 3%
  await pg.query(`DELETE FROM tags WHERE name IN ('Apple', 'apple ', 'B', 'e\u0301', '')`);
  await pg.query(`INSERT INTO tags VALUES (3, 'Apple', 'back', now()) ON CONFLICT DO NOTHING`);
  await reconcile(w, cfg.id);
  const line = (name) => `tenant || '|' || ${name} || '|' || note AS line`;
  assertSameLines(
    await replicaLines(w, `SELECT ${line("hex(name)")} FROM tags ORDER BY tenant, name`),
    sorted((await pg.query(`SELECT ${line("upper(encode(convert_to(name, 'UTF8'), 'hex'))")} FROM tags`)).rows),
    "tags after the pass",
  );
});

// ---------------------------------------------------------------------------------------------
// MariaDB

test("mariadb: case-insensitive PAD SPACE keys, a composite key and keys above 2^53", async () => {
  await my.query(`CREATE TABLE people (k VARCHAR(40) PRIMARY KEY, v VARCHAR(40) NOT NULL, updated_at DATETIME(6) NOT NULL)
    CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci`);
  // Mixed case, and a trailing space on every third key: the origin's order is not the replica's.
  await my.query(`INSERT INTO people SELECT CONCAT(IF(seq % 2 = 0, 'a', 'B'), LPAD(seq, 5, '0'), IF(seq % 3 = 0, ' ', ''), IF(seq % 7 = 0, 'é', '')),
      CONCAT('v', seq), TIMESTAMP '2026-01-01 00:00:00' + INTERVAL seq SECOND FROM seq_1_to_6000`);
  await my.query(`CREATE TABLE slots (tenant INT, code VARCHAR(20), big BIGINT NOT NULL, updated_at DATETIME(6) NOT NULL, PRIMARY KEY (tenant, code))
    COLLATE utf8mb4_unicode_ci`);
  await my.query(`INSERT INTO slots SELECT seq % 50, CONCAT(IF(seq % 3 = 0, 'X', 'y'), seq), 9007199254740993 + seq,
      TIMESTAMP '2026-01-01 00:00:00' + INTERVAL seq SECOND FROM seq_1_to_4000`);
  await my.query(`CREATE TABLE bigs (id BIGINT PRIMARY KEY, updated_at DATETIME(6) NOT NULL)`);
  await my.query(`INSERT INTO bigs SELECT 9007199254740993 + seq * 3, TIMESTAMP '2026-01-01 00:00:00' FROM seq_1_to_3000`);

  const cfgs = {};
  await my.query(`INSERT INTO people VALUES ('trap-lower', 'x', '2026-01-01'), ('trap-gone', 'x', '2026-01-01')`);
  for (const t of ["people", "slots", "bigs"]) {
    cfgs[t] = await w.createConfig({ source: MY, source_table: t, cursor_column: "updated_at", interval_seconds: 3600, enabled: false });
    assert.equal((await w.sync(cfgs[t].id)).status, "ok");
    await my.query(`DELETE FROM ${t} WHERE RAND(7) < 0.01${t === "people" ? " AND k NOT LIKE 'trap%'" : ""}`);
  }
  await my.query(`DELETE FROM people WHERE k LIKE 'a0002%' OR k LIKE 'B0002%'`);
  await my.query(`INSERT INTO people VALUES ('a00020x', 'new', NOW(6)), ('B00021x', 'new', NOW(6))`);
  await my.query(`DELETE FROM people WHERE k = 'a00010'`);
  await my.query(`INSERT INTO people VALUES ('a00010', 'again', NOW(6))`);
  await my.query(`DELETE FROM slots WHERE tenant = 7`);
  await my.query(`DELETE FROM bigs WHERE id = 9007199254740996`);

  const lines = {
    people: ["HEX(k) || '|' || v", "CONCAT(HEX(k), '|', v)"],
    slots: ["tenant || '|' || HEX(code) || '|' || CAST(big AS TEXT)", "CONCAT(tenant, '|', HEX(code), '|', big)"],
    bigs: ["CAST(id AS TEXT)", "CAST(id AS CHAR)"],
  };
  for (const t of ["people", "slots", "bigs"]) {
    const run = await reconcile(w, cfgs[t].id);
    assert.ok(run.rows_deleted > 0, `${t}: ${JSON.stringify(run)}`);
    const origin = (await my.query(`SELECT ${lines[t][1]} AS line FROM ${t}`)).map((r) => r.line).sort();
    assertSameLines(await replicaLines(w, `SELECT ${lines[t][0]} AS line FROM ${t} ORDER BY 1`), origin, `${t} after the pass`);
  }

  // Absent is what the origin's own equality says: renamed to 'TRAP-LOWER', which equals
  // 'trap-lower' in utf8mb4_general_ci, the row is still there for the origin, so the replica
  // keeps the old spelling beside the new one.
  await my.query(`DELETE FROM people WHERE k = 'trap-gone'`);
  await my.query(`UPDATE people SET k = 'TRAP-LOWER', updated_at = NOW(6) WHERE k = 'trap-lower'`);
  const run = await reconcile(w, cfgs.people.id);
  assert.equal(run.rows_deleted, 1, "trap-gone is gone; trap-lower is still there by the origin's equality");
  const kept = await w.query(`SELECT k FROM people WHERE k LIKE 'trap%' OR k LIKE 'TRAP%' ORDER BY k`);
  assert.deepEqual(kept.map((r) => r.k), ["TRAP-LOWER", "trap-lower"]);
});

// ---------------------------------------------------------------------------------------------
// D1 binding

test("d1 binding: integer keys above 2^53 and text keys compared as bytes", async () => {
  const db = await w.mf.getD1Database("SRC_DB");
  await db.batch([
    db.prepare(`CREATE TABLE d1_items (id INTEGER PRIMARY KEY, v TEXT, updated_at INTEGER NOT NULL)`),
    db.prepare(`WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 3000)
      INSERT INTO d1_items SELECT CASE WHEN i % 2 = 0 THEN 9007199254740993 + i ELSE i * 7 END, 'v' || i, 1000 + i FROM s`),
    db.prepare(`CREATE TABLE d1_words (k TEXT PRIMARY KEY, v TEXT, updated_at INTEGER NOT NULL)`),
    db.prepare(`WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 2000)
      INSERT INTO d1_words SELECT CASE i % 4 WHEN 0 THEN 'a' || i WHEN 1 THEN 'A' || i WHEN 2 THEN 'a' || i || ' ' ELSE 'é' || i END, 'v', i FROM s`),
  ]);
  const cfgs = {};
  for (const t of ["d1_items", "d1_words"]) {
    cfgs[t] = await w.createConfig({ source: D1, source_table: t, cursor_column: "updated_at", interval_seconds: 3600, enabled: false });
    assert.equal((await w.sync(cfgs[t].id)).status, "ok");
  }
  await db.batch([
    db.prepare(`DELETE FROM d1_items WHERE abs(random()) % 100 = 0 OR id BETWEEN 700 AND 900 OR id = 9007199254740995`),
    db.prepare(`INSERT INTO d1_items VALUES (701, 'new', 99999), (9007199254740995, 'again', 99999)`),
    db.prepare(`DELETE FROM d1_words WHERE abs(random()) % 100 = 0 OR k IN ('a4', 'A5', 'a6 ')`),
    db.prepare(`INSERT INTO d1_words VALUES ('a5', 'new', 99999)`),
  ]);
  const lines = { d1_items: "CAST(id AS TEXT) || '|' || v", d1_words: "hex(k) || '|' || v" };
  for (const t of ["d1_items", "d1_words"]) {
    const run = await reconcile(w, cfgs[t].id);
    assert.ok(run.rows_deleted > 0, `${t}: ${JSON.stringify(run)}`);
    const origin = (await db.prepare(`SELECT ${lines[t]} AS line FROM ${t}`).all()).results.map((r) => r.line).sort();
    assertSameLines(await replicaLines(w, `SELECT ${lines[t]} AS line FROM ${t} ORDER BY 1`), origin, `${t} after the pass`);
  }
});

// ---------------------------------------------------------------------------------------------
// starbase: B reads w's copy of the PostgreSQL orders through /query/raw

test("starbase: a second edge-replica reconciles against the first", async () => {
  await pg.query(`CREATE TABLE chain (id bigint PRIMARY KEY, v text NOT NULL, updated_at timestamptz NOT NULL);
    INSERT INTO chain SELECT CASE WHEN g % 3 = 0 THEN 9223372036854775807 - g ELSE g END, 'v' || g,
      timestamptz '2026-01-01Z' + g * interval '1 ms' FROM generate_series(1, 5000) g`);
  const a = await w.createConfig({ source: PG, source_table: "chain", cursor_column: "updated_at", interval_seconds: 3600, enabled: false });
  await w.sync(a.id);
  const cfg = await b.createConfig({
    source: { type: "starbase", url: w.url, token_secret: "A_ADMIN" },
    source_table: "chain",
    cursor_column: "updated_at",
    interval_seconds: 3600,
    enabled: false,
  });
  assert.equal((await b.sync(cfg.id)).status, "ok");
  await pg.query(`DELETE FROM chain WHERE md5(id::text) < '04' OR id BETWEEN 100 AND 140 OR id = 9223372036854775806`);
  await pg.query(`INSERT INTO chain VALUES (101, 'new', now()), (9223372036854775806, 'again', now())`);
  await reconcile(w, a.id);
  const run = await reconcile(b, cfg.id);
  assert.ok(run.rows_deleted > 50, JSON.stringify(run));
  const line = "CAST(id AS TEXT) || '|' || v AS line";
  const origin = sorted((await pg.query(`SELECT id::text || '|' || v AS line FROM chain`)).rows);
  assertSameLines(await replicaLines(w, `SELECT ${line} FROM chain ORDER BY id`), origin, "A after its pass");
  assertSameLines(await replicaLines(b, `SELECT ${line} FROM chain ORDER BY id`), origin, "B after its pass");
});

// ---------------------------------------------------------------------------------------------
// reconcile_seconds, and the 400s

test("reconcile_seconds: the alarm's first caught-up run reconciles, the next ones wait until due", async () => {
  await pg.query(`CREATE TABLE ticks (id int PRIMARY KEY, updated_at timestamptz NOT NULL);
    INSERT INTO ticks SELECT g, timestamptz '2026-01-01Z' FROM generate_series(1, 500) g`);
  const cfg = await w.createConfig({ source: PG, source_table: "ticks", cursor_column: "updated_at", interval_seconds: 1, reconcile_seconds: 3600 });
  assert.equal(cfg.reconcile_seconds, 3600);
  const runs = async () => (await w.api("GET", `/replication/runs?config_id=${cfg.id}`)).json.result;
  await waitFor(async () => (await runs()).some((r) => r.status === "ok"), { message: "the alarm's first run" });
  const firstOk = (await runs()).filter((r) => r.status === "ok").at(-1);
  assert.equal(firstOk.reconciled, true, "never reconciled: due at once after the first copy");
  await pg.query(`DELETE FROM ticks WHERE id <= 5`);
  const seen = (await runs()).length;
  await waitFor(async () => (await runs()).length >= seen + 2, { message: "two more alarm runs" });
  const later = (await runs()).slice(0, -seen);
  assert.ok(later.every((r) => !r.reconciled && r.rows_deleted === 0), JSON.stringify(later));
  assert.equal((await w.query(`SELECT count(*) AS n FROM ticks`))[0].n, 500, "not due: the deleted rows stay until the next pass");
  assertEnvelope(await w.api("PUT", `/replication/configs/${cfg.id}`, { body: { enabled: false } }), 200);
  // An alarm run may still be under way: the forced one waits for it.
  const forced = await waitFor(
    async () => {
      const r = await w.api("POST", `/replication/sync/${cfg.id}?reconcile=true`);
      return r.status === 409 ? null : r;
    },
    { intervalMs: 100, message: "the alarm's run to end" },
  );
  assertEnvelope(forced, 200);
  assert.equal(forced.json.result.rows_deleted, 5);
});

test("bad reconcile requests are 400s that change nothing", async () => {
  await pg.query(`CREATE TABLE plain (id int PRIMARY KEY, updated_at timestamptz NOT NULL)`);
  const base = { source: PG, source_table: "plain", interval_seconds: 60, enabled: false };
  for (const [body, why] of [
    [{ ...base, cursor_column: "updated_at", reconcile_seconds: 59 }, "below 60"],
    [{ ...base, cursor_column: "updated_at", reconcile_seconds: "600" }, "a string"],
    [{ ...base, cursor_column: "updated_at", reconcile_seconds: 600.5 }, "a fraction"],
    [{ ...base, reconcile_seconds: 600 }, "full mode"],
  ]) {
    const r = await w.api("POST", "/replication/configs", { body });
    assertEnvelope(r, 400, why);
    assert.match(r.json.error, /reconcile_seconds/, why);
  }
  const inc = await w.createConfig({ ...base, target_table: "plain_inc", cursor_column: "updated_at", reconcile_seconds: 600 });
  const full = await w.createConfig({ ...base, target_table: "plain_full" });
  // Switching to full while reconcile_seconds stays set, or setting it too low.
  for (const body of [{ mode: "full" }, { reconcile_seconds: 30 }, { reconcile_seconds: -1 }]) {
    const r = await w.api("PUT", `/replication/configs/${inc.id}`, { body });
    assertEnvelope(r, 400, JSON.stringify(body));
    assert.match(r.json.error, /reconcile_seconds/);
  }
  assertEnvelope(await w.api("PUT", `/replication/configs/${full.id}`, { body: { reconcile_seconds: 600 } }), 400);
  assert.deepEqual((await w.api("GET", `/replication/configs/${inc.id}`)).json.result, inc, "unchanged");
  const cleared = await w.api("PUT", `/replication/configs/${inc.id}`, { body: { mode: "full", cursor_column: null, reconcile_seconds: null } });
  assertEnvelope(cleared, 200);
  assert.equal(cleared.json.result.reconcile_seconds, null);

  const r = await w.api("POST", `/replication/sync/${full.id}?reconcile=true`);
  assertEnvelope(r, 400);
  assert.match(r.json.error, /incremental/);
  assertEnvelope(await w.api("POST", `/replication/sync/${full.id}?reconcile=yes`), 400);
  assertEnvelope(await w.api("POST", `/replication/sync/987654?reconcile=true`), 404);
  assert.deepEqual((await w.api("GET", `/replication/runs?config_id=${full.id}`)).json.result, [], "nothing ran");
  const ok = await w.api("POST", `/replication/sync/${full.id}?reconcile=false`);
  assertEnvelope(ok, 200);
  assert.equal(ok.json.result.reconciled, false);
});

// ---------------------------------------------------------------------------------------------
// A pass longer than the time budget

test("a pass cut by a small time budget resumes where it stopped, exact", async () => {
  const db = await pgDatabase();
  const small = await startWorker({ vars: { PG_URL: db.url, SYNC_TIME_BUDGET_MS: "20" } });
  try {
    await db.query(`CREATE TABLE big (id bigint PRIMARY KEY, v text NOT NULL, updated_at timestamptz NOT NULL);
      INSERT INTO big SELECT 9007199254740000 + g, 'v' || g, timestamptz '2026-01-01Z' FROM generate_series(1, 60000) g`);
    const cfg = await small.createConfig({ source: PG, source_table: "big", cursor_column: "updated_at", interval_seconds: 3600, enabled: false, batch_size: 5000 });
    await small.syncUntilOk(cfg.id, 1000);
    await db.query(`DELETE FROM big WHERE md5(id::text) < '0a'`); // about 4%
    const gone = 60000 - Number((await db.query(`SELECT count(*) AS n FROM big`)).rows[0].n);
    const first = await small.api("POST", `/replication/sync/${cfg.id}?reconcile=true`);
    assertEnvelope(first, 200);
    const runs = [first.json.result];
    // The next runs are plain syncs: they take up the pass under way.
    while (runs.at(-1).status === "partial" && runs.length < 500) runs.push(await small.sync(cfg.id));
    assert.equal(runs.at(-1).status, "ok", JSON.stringify(runs));
    assert.ok(runs.length >= 2, `the budget cut the pass: ${JSON.stringify(runs.map((r) => [r.status, r.rows_deleted]))}`);
    assert.ok(runs.every((r) => r.reconciled), "every run moves the pass on, even past its budget");
    assert.equal(runs.reduce((n, r) => n + r.rows_deleted, 0), gone);
    const line = "CAST(id AS TEXT) || '|' || v AS line";
    assertSameLines(
      await replicaLines(small, `SELECT ${line} FROM big ORDER BY id`),
      sorted((await db.query(`SELECT id::text || '|' || v AS line FROM big`)).rows),
      "after the cut pass",
    );
  } finally {
    await small.dispose();
    await db.close();
  }
});
