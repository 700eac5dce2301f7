// Bounded client reads and bookmarks (docs/API.md "Limits on reads", "Regional read replicas"
// as far as the primary goes): recursive queries refused to the client token unless allowed,
// results capped at QUERY_MAX_ROWS / QUERY_MAX_BYTES while they are produced (exactly the limit
// passes), the admin token unlimited, every refusal leaving the replica serving and its tables
// free for the next swap; X-Replica-Bookmark on every read, `bookmark` on run records, the
// X-Replica-* request headers, and GET /replication/replicas.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, pgDatabase, assertEnvelope } from "./harness.mjs";

const MAX_ROWS = 1000;
const MAX_BYTES = 50_000;
const ROWS = 1500;
const BOOKMARK = /^[0-9]{20}$/;
const ISSUE_QUERY = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c";

let db;
let w; // QUERY_MAX_ROWS / QUERY_MAX_BYTES set small, recursion refused to clients
let wr; // ALLOW_RECURSIVE_QUERIES=true
let cfg; // a full-mode config: every sync swaps the table in (DROP + rename)

before(async () => {
  db = await pgDatabase();
  await db.query(
    "CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, pad text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())",
  );
  await db.query(
    `INSERT INTO items (id, name, pad) SELECT i, 'item ' || i, repeat(chr(97 + i % 26), 60) FROM generate_series(1, ${ROWS}) AS i`,
  );
  const vars = { PG_URL: db.url, QUERY_MAX_ROWS: String(MAX_ROWS), QUERY_MAX_BYTES: String(MAX_BYTES) };
  w = await startWorker({ vars });
  wr = await startWorker({ vars: { ...vars, ALLOW_RECURSIVE_QUERIES: "true" } });
  for (const worker of [w, wr]) {
    const c = await worker.createConfig({
      source: { type: "postgres", url_secret: "PG_URL" },
      source_table: "items",
      mode: "full",
      interval_seconds: 3600,
      enabled: false,
    });
    const run = await worker.sync(c.id);
    assert.equal(run.status, "ok");
    if (worker === w) cfg = c;
  }
});

after(async () => {
  await w?.dispose();
  await wr?.dispose();
  await db?.close();
});

/** POST a read; returns the answer with its time. */
async function read(worker, sql, { token = "client", raw = false, params = [], headers = {} } = {}) {
  const started = Date.now();
  const r = await worker.api("POST", raw ? "/query/raw" : "/query", { token, body: { sql, params }, headers });
  return { ...r, ms: Date.now() - started };
}

/** The replica answers its status and a read at once: a refusal did not take it down. */
async function stillServing(worker, what) {
  const started = Date.now();
  const status = await worker.api("GET", "/replication/status");
  assertEnvelope(status, 200, `status after ${what}`);
  const r = await read(worker, "SELECT count(*) AS n FROM items");
  assertEnvelope(r, 200, `a read after ${what}`);
  assert.equal(r.json.result[0].n, ROWS);
  assert.ok(Date.now() - started < 5000, `answered at once after ${what}: ${Date.now() - started} ms`);
}

function assertRefused(r, status, pattern, what) {
  assertEnvelope(r, status, what);
  assert.match(r.json.error, pattern, what);
  assert.ok(r.ms < 10_000, `${what}: answered in ${r.ms} ms`);
}

test("the issue's recursive query is refused to the client at once, and the replica keeps serving", async () => {
  for (const raw of [false, true]) {
    const r = await read(w, ISSUE_QUERY, { raw });
    assertRefused(r, 400, /recursive/, `raw=${raw}`);
    assert.match(r.json.error, /ALLOW_RECURSIVE_QUERIES/);
    await stillServing(w, "the recursive query");
  }
  // SQLite recurses without the keyword too; the guard reads the query, not the words.
  for (const sql of [
    "WITH c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c",
    "SELECT * FROM items WHERE id IN (WITH c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c)",
    "with /* c */ recursive c(x) as (select 1 union all select x+1 from c) select count(*) from c",
  ]) {
    assertRefused(await read(w, sql), 400, /recursive/, sql);
  }
  await stillServing(w, "recursive variants");
  // Words that only look recursive are a read like any other.
  const plain = await read(w, "SELECT 'WITH RECURSIVE' AS recursive FROM items WHERE id = 1");
  assertEnvelope(plain, 200);
  assert.deepEqual(plain.json.result, [{ recursive: "WITH RECURSIVE" }]);
});

test("recursive queries: the admin token may, and ALLOW_RECURSIVE_QUERIES=true lets the client", async () => {
  const bounded = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10) SELECT x FROM c";
  const expected = Array.from({ length: 10 }, (_, i) => ({ x: i + 1 }));
  const admin = await read(w, bounded, { token: "admin" });
  assertEnvelope(admin, 200, "admin");
  assert.deepEqual(admin.json.result, expected);
  const allowed = await read(wr, bounded);
  assertEnvelope(allowed, 200, "client with ALLOW_RECURSIVE_QUERIES=true");
  assert.deepEqual(allowed.json.result, expected);
  // An endless recursion that produces rows is stopped by the row cap as it produces them.
  const endless = await read(wr, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c");
  assertRefused(endless, 400, /QUERY_MAX_ROWS/, "an endless recursion, capped");
  await stillServing(wr, "an endless recursion stopped by the cap");
});

test("QUERY_MAX_ROWS: exactly the limit is answered, one more is 400 naming it; the admin is not limited", async () => {
  for (const raw of [false, true]) {
    const ok = await read(w, `SELECT id FROM items ORDER BY id LIMIT ${MAX_ROWS}`, { raw });
    assertEnvelope(ok, 200, `exactly ${MAX_ROWS} rows, raw=${raw}`);
    assert.equal(raw ? ok.json.result.rows.length : ok.json.result.length, MAX_ROWS);
    for (const sql of [
      `SELECT id FROM items ORDER BY id LIMIT ${MAX_ROWS + 1}`,
      "SELECT id FROM items",
      "SELECT a.id, b.id FROM items a, items b",
    ]) {
      const over = await read(w, sql, { raw });
      assertRefused(over, 400, /QUERY_MAX_ROWS/, `${sql}, raw=${raw}`);
      assert.match(over.json.error, new RegExp(`more than ${MAX_ROWS} rows`));
      await stillServing(w, `${sql} refused`);
    }
  }
  const admin = await read(w, "SELECT id FROM items", { token: "admin" });
  assertEnvelope(admin, 200, "admin");
  assert.equal(admin.json.result.length, ROWS);
});

test("QUERY_MAX_BYTES: the UTF-8 JSON of the rows as the route returns them; exactly the limit is answered", async () => {
  // /query/raw: [["x…x"]] is the text plus 6 bytes; /query: [{"s":"x…x"}] plus 10.
  const cases = [
    { raw: true, char: "x", size: 1, overhead: 6 },
    { raw: true, char: "é", size: 2, overhead: 6 },
    { raw: true, char: "😀", size: 4, overhead: 6 },
    { raw: false, char: "x", size: 1, overhead: 10 },
    { raw: false, char: "€", size: 3, overhead: 10 },
  ];
  for (const { raw, char, size, overhead } of cases) {
    const n = Math.floor((MAX_BYTES - overhead) / size);
    const fits = await read(w, "SELECT ? AS s", { raw, params: [char.repeat(n)] });
    assertEnvelope(fits, 200, `${n} × ${char}, raw=${raw}`);
    const rows = raw ? fits.json.result.rows : fits.json.result;
    const bytes = Buffer.byteLength(JSON.stringify(rows));
    assert.ok(bytes <= MAX_BYTES && bytes > MAX_BYTES - size, `${bytes} bytes`);
    const over = await read(w, "SELECT ? AS s", { raw, params: [char.repeat(n + 1)] });
    assertRefused(over, 400, /QUERY_MAX_BYTES/, `${n + 1} × ${char}, raw=${raw}`);
    assert.match(over.json.error, new RegExp(`larger than ${MAX_BYTES} bytes`));
  }
  // Exactly the limit, to the byte: [["x…x"]] with 49994 characters is 50000 bytes.
  const exact = await read(w, "SELECT ? AS s", { raw: true, params: ["x".repeat(MAX_BYTES - 6)] });
  assertEnvelope(exact, 200, "exactly the limit");
  assert.equal(Buffer.byteLength(JSON.stringify(exact.json.result.rows)), MAX_BYTES);
  // Blobs count as their byte arrays: [[[0,0,…,0]]] is 2n + 5 bytes.
  const blob = (MAX_BYTES - 5) >> 1;
  const fitting = await read(w, "SELECT zeroblob(?) AS b", { raw: true, params: [blob] });
  assertEnvelope(fitting, 200, "a blob that fits");
  assert.equal(Buffer.byteLength(JSON.stringify(fitting.json.result.rows)), 2 * blob + 5);
  assertRefused(await read(w, "SELECT zeroblob(?) AS b", { raw: true, params: [blob + 1] }), 400, /QUERY_MAX_BYTES/, "blob");
  await stillServing(w, "byte-cap refusals");

  // Many rows: the boundary found with the admin token (unlimited), then the client on both sides.
  for (const raw of [false, true]) {
    const sql = "SELECT id, pad FROM items ORDER BY id LIMIT ?";
    const all = await read(w, sql, { token: "admin", raw, params: [MAX_ROWS] });
    assertEnvelope(all, 200);
    const rows = raw ? all.json.result.rows : all.json.result;
    let k = 0;
    while (k < rows.length && Buffer.byteLength(JSON.stringify(rows.slice(0, k + 1))) <= MAX_BYTES) k++;
    assert.ok(k > 100 && k < MAX_ROWS, `boundary at ${k} rows`);
    const fits = await read(w, sql, { raw, params: [k] });
    assertEnvelope(fits, 200, `${k} rows, raw=${raw}`);
    assert.deepEqual(raw ? fits.json.result.rows : fits.json.result, rows.slice(0, k));
    assertRefused(await read(w, sql, { raw, params: [k + 1] }), 400, /QUERY_MAX_BYTES/, `${k + 1} rows, raw=${raw}`);
  }
  const admin = await read(w, "SELECT ? AS s", { token: "admin", params: ["x".repeat(500_000)] });
  assertEnvelope(admin, 200, "the admin is not limited");
  await stillServing(w, "many-row byte refusals");
});

test("answers keep their exact form: object keys sorted by name, the last of equal names kept", async () => {
  const sql = `SELECT 2 AS b, 1 AS a, 3 AS a, 4 AS "é", 5 AS "😀", 6 AS "ｚ", x'00ff' AS "blob", 'x"\\y' AS s, 1.5 AS r, NULL AS n`;
  const r = await read(w, sql);
  assertEnvelope(r, 200);
  assert.equal(r.text, '{"error":null,"result":[{"a":3,"b":2,"blob":[0,255],"n":null,"r":1.5,"s":"x\\"\\\\y","é":4,"ｚ":6,"😀":5}]}');
  const raw = await read(w, sql, { raw: true });
  assertEnvelope(raw, 200);
  const b = raw.headers.get("x-replica-bookmark");
  assert.equal(
    raw.text,
    `{"error":null,"result":{"columns":["b","a","a","é","😀","ｚ","blob","s","r","n"],"meta":{"bookmark":"${b}","rows_read":0,"rows_written":0},` +
      '"rows":[[2,1,3,4,5,6,[0,255],"x\\"\\\\y",1.5,null]]}}',
  );
});

test("a refused read leaves its table free: the next full sync swaps it in", async () => {
  // Each shape leaves SQLite a different statement to stop: a scan, a join, a finished sort
  // (read to its end), a byte cap in the middle of a sort.
  const refusals = [
    ["SELECT id FROM items", /QUERY_MAX_ROWS/],
    ["SELECT * FROM items", /QUERY_MAX_BYTES/],
    ["SELECT a.id FROM items a JOIN items b ON b.id >= a.id", /QUERY_MAX_ROWS/],
    ["SELECT id FROM items ORDER BY pad DESC, id", /QUERY_MAX_ROWS/],
    ["SELECT pad, pad AS p2, name FROM items ORDER BY name LIMIT 900", /QUERY_MAX_BYTES/],
    ["SELECT name, count(*) FROM items GROUP BY name", /QUERY_MAX_ROWS/],
  ];
  let last = null;
  for (const [sql, limit] of refusals) {
    assertRefused(await read(w, sql), 400, limit, sql);
    const run = await w.sync(cfg.id);
    assert.equal(run.status, "ok", `the swap after ${sql}: ${JSON.stringify(run)}`);
    assert.equal(run.rows_upserted, ROWS);
    if (last) assert.ok(run.bookmark > last, `${run.bookmark} > ${last}`);
    last = run.bookmark;
    await stillServing(w, `${sql} and a sync`);
  }
});

test("bookmarks: every read carries one, runs carry the position after them, and later is greater", async () => {
  // Every answer of the query routes, successes and refusals, for both tokens.
  const answers = [
    await read(w, "SELECT 1 AS one"),
    await read(w, "SELECT 1 AS one", { raw: true }),
    await read(w, "SELECT 1 AS one", { token: "admin", raw: true }),
    await read(w, "DELETE FROM items"),
    await read(w, "SELECT * FROM tmp_replication_runs"),
    await read(w, ISSUE_QUERY),
    await read(w, "SELECT id FROM items"),
    await read(w, "SELECT * FROM no_such_table"),
  ];
  for (const r of answers) assert.match(r.headers.get("x-replica-bookmark") ?? "", BOOKMARK, `${r.status} ${r.text.slice(0, 200)}`);
  const raw = answers[1];
  assert.equal(raw.json.result.meta.bookmark, raw.headers.get("x-replica-bookmark"));
  assert.deepEqual(Object.keys(raw.json.result.meta).sort(), ["bookmark", "rows_read", "rows_written"]);
  const before = raw.json.result.meta.bookmark;

  // A sync moves it on; a read after it is at least as new as the run.
  await db.query("INSERT INTO items (id, name, pad) VALUES (100001, 'late', 'p')");
  const run = await w.sync(cfg.id);
  assert.match(run.bookmark, BOOKMARK);
  assert.ok(run.bookmark > before, `${run.bookmark} > ${before}`);
  const after = await read(w, "SELECT count(*) AS n FROM items", { headers: { "X-Replica-Bookmark": run.bookmark } });
  assertEnvelope(after, 200, "a read with the run's bookmark");
  assert.equal(after.json.result[0].n, ROWS + 1, "it sees the synced row");
  assert.ok(after.headers.get("x-replica-bookmark") >= run.bookmark);
  // A run that changed nothing new still records the position after it (a full copy swaps again).
  const run2 = await w.sync(cfg.id);
  assert.ok(run2.bookmark >= run.bookmark);
  const runs = await w.api("GET", `/replication/runs?config_id=${cfg.id}&limit=2`);
  assertEnvelope(runs, 200);
  assert.deepEqual(runs.json.result.map((r) => r.bookmark), [run2.bookmark, run.bookmark]);
  // An older bookmark is answered as well (the primary is newer than any it gave), as the
  // primary's own position; a malformed one is 400 and changes nothing.
  const old = await read(w, "SELECT 1 AS one", { headers: { "X-Replica-Bookmark": before } });
  assertEnvelope(old, 200);
  assert.equal(old.headers.get("x-replica-bookmark"), run2.bookmark);
  for (const bad of ["42", "abc", `${run.bookmark}x`, "-0000000000000000001"]) {
    const r = await read(w, "SELECT 1 AS one", { headers: { "X-Replica-Bookmark": bad } });
    assertRefused(r, 400, /X-Replica-Bookmark/, bad);
  }

  // Dropping a table with its config is a change of the replica too.
  const extra = await w.createConfig({
    source: { type: "postgres", url_secret: "PG_URL" },
    source_table: "items",
    target_table: "items_copy",
    mode: "full",
    interval_seconds: 3600,
    enabled: false,
  });
  await w.sync(extra.id);
  const withCopy = (await read(w, "SELECT 1 AS one")).headers.get("x-replica-bookmark");
  assertEnvelope(await w.api("DELETE", `/replication/configs/${extra.id}?drop_table=true`), 200);
  const dropped = (await read(w, "SELECT 1 AS one")).headers.get("x-replica-bookmark");
  assert.ok(dropped > withCopy, `${dropped} > ${withCopy}`);
  await db.query("DELETE FROM items WHERE id = 100001");
  await w.sync(cfg.id);
});

test("X-Replica-Location: primary is answered; a location hint or anything else is 400", async () => {
  for (const token of ["client", "admin"]) {
    for (const v of ["primary", "PRIMARY"]) {
      const r = await read(w, "SELECT 1 AS one", { token, headers: { "X-Replica-Location": v } });
      assertEnvelope(r, 200, v);
      assert.match(r.headers.get("x-replica-bookmark"), BOOKMARK);
    }
    for (const hint of ["wnam", "enam", "sam", "weur", "eeur", "apac", "oc", "afr", "me"]) {
      const r = await read(w, "SELECT 1 AS one", { token, raw: true, headers: { "X-Replica-Location": hint } });
      assertRefused(r, 400, new RegExp(`X-Replica-Location "${hint}".*no read replica`), hint);
    }
    for (const bad of ["mars", "primary, weur", "0"]) {
      const r = await read(w, "SELECT 1 AS one", { token, headers: { "X-Replica-Location": bad } });
      assertRefused(r, 400, /X-Replica-Location must be primary or a location hint/, bad);
    }
  }
  await stillServing(w, "location refusals");
});

test("GET /replication/replicas is an empty list without read replicas; admin only", async () => {
  assert.deepEqual(assertEnvelope(await w.api("GET", "/replication/replicas"), 200), { result: [], error: null });
  assertEnvelope(await w.api("GET", "/replication/replicas", { token: "client" }), 403);
  assertEnvelope(await w.api("GET", "/replication/replicas", { token: null }), 401);
  const wrong = await w.api("POST", "/replication/replicas");
  assertEnvelope(wrong, 405);
  assert.equal(wrong.headers.get("allow"), "GET");
});
