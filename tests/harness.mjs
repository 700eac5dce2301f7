// Shared helpers for the end-to-end tests: run the built worker (build/index.js +
// build/index_bg.wasm) in workerd through Miniflare, talk to it over HTTP, and
// create throw-away PostgreSQL databases.
//
// Environment:
//   EDGE_REPLICA_TEST_PG   admin URL of the test PostgreSQL
//                          (default postgres://postgres@127.0.0.1:5432/postgres)
//   EDGE_REPLICA_TEST_LOG=1  print the worker's console output as it runs

import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import assert from "node:assert/strict";
import { Miniflare } from "miniflare";
import { startWorkerd } from "./workerd_direct.mjs";
import pg from "pg";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const BUILD_JS = path.join(ROOT, "build", "index.js");
export const BUILD_WASM = path.join(ROOT, "build", "index_bg.wasm");

/** The tokens every test worker is started with. */
export const ADMIN = "test-admin-token-5f0c2b7e9a1d4c38";
export const CLIENT = "test-client-token-81e6a3d09b7f4e25";

export const PG_ADMIN_URL =
  process.env.EDGE_REPLICA_TEST_PG ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** The PostgreSQL with wal_level = logical that scripts/pg_logical.sh keeps on port 5433. */
export const PG_LOGICAL_URL =
  process.env.EDGE_REPLICA_TEST_PG_LOGICAL ?? "postgres://postgres@127.0.0.1:5433/postgres";

/** The MariaDB with a row binlog (scripts/mariadb_binlog.sh) that the MySQL cdc tests use. */
export const MYSQL_BINLOG_URL = `mysql://root@127.0.0.1:${process.env.EDGE_REPLICA_BINLOG_PORT ?? 3307}`;
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function checkBuild() {
  const missing = [BUILD_JS, BUILD_WASM].filter((f) => !existsSync(f));
  if (missing.length > 0) {
    throw new Error(
      `the worker build is missing (${missing.map((f) => path.relative(ROOT, f)).join(", ")}): ` +
        "run `bash scripts/build.sh` first (`npm test` does it)",
    );
  }
}

/**
 * Start the built worker in workerd.
 * @param {{vars?: Record<string,string>, hyperdrives?: Record<string,string>, persistDir?: string,
 *   miniflare?: object, direct?: boolean}} opts  `miniflare`: further Miniflare options (the
 *   profiler's inspectorPort); `direct`: run workerd without Miniflare (tests/workerd_direct.mjs;
 *   text bindings only, and `miniflare.inspectorPort`)
 */
/**
 * `EDGE_REPLICA_TEST_REPLICAS=weur,apac,enam` runs a test file against a deployment with read
 * replicas (scripts/test.sh does so for the read tests): every worker gets `REPLICA_LOCATIONS`
 * (unless the test sets its own), and `api()` reads as a D1 session does, sending with each read
 * the newest bookmark it has seen, so that a read after a sync sees what the sync wrote.
 */
const TEST_REPLICAS = process.env.EDGE_REPLICA_TEST_REPLICAS ?? "";

/** The newest bookmark in an answer: its header, a run record's, or a list of run records'. */
function bookmarksOf(headers, json) {
  const found = [headers.get("x-replica-bookmark")];
  const result = json?.result;
  for (const r of Array.isArray(result) ? result : [result]) {
    if (r && typeof r === "object" && typeof r.bookmark === "string") found.push(r.bookmark);
  }
  return found.filter((b) => typeof b === "string" && /^\d{20}$/.test(b));
}

/** The primary's bookmark now. */
async function primaryBookmark(url) {
  const p = await fetch(url + "/query", {
    method: "POST",
    headers: { Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/json", "X-Replica-Location": "primary" },
    body: JSON.stringify({ sql: "SELECT 1" }),
  });
  await p.text();
  return p.headers.get("x-replica-bookmark");
}

export async function startWorker({ vars = {}, hyperdrives = {}, persistDir, miniflare = {}, direct = false } = {}) {
  checkBuild();
  if (TEST_REPLICAS && !("REPLICA_LOCATIONS" in vars)) vars = { ...vars, REPLICA_LOCATIONS: TEST_REPLICAS };
  const session = { bookmark: null, on: Boolean(vars.REPLICA_LOCATIONS) && Boolean(TEST_REPLICAS) };
  const ownDir = !persistDir;
  const dir = persistDir ?? mkdtempSync(path.join(tmpdir(), "edge-replica-test-"));
  const logLines = [];
  const verbose = process.env.EDGE_REPLICA_TEST_LOG === "1";

  const options = () => ({
    modules: true,
    scriptPath: BUILD_JS,
    modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"], fallthrough: true }],
    compatibilityDate: "2025-09-01",
    durableObjects: { REPLICA: { className: "Replica", useSQLite: true } },
    bindings: {
      ADMIN_AUTHORIZATION_TOKEN: ADMIN,
      CLIENT_AUTHORIZATION_TOKEN: CLIENT,
      ...vars,
    },
    hyperdrives: withPasswords(hyperdrives),
    durableObjectsPersist: dir,
    host: "127.0.0.1",
    port: 0,
    ...miniflare,
    handleRuntimeStdio(stdout, stderr) {
      for (const stream of [stdout, stderr]) {
        stream.setEncoding("utf8");
        stream.on("data", (chunk) => {
          if (verbose) process.stderr.write(chunk);
          for (const line of chunk.split("\n")) {
            if (line.trim() === "") continue;
            logLines.push(line);
            if (logLines.length > 500) logLines.shift();
          }
        });
      }
    },
  });

  const worker = {
    url: "",
    persistDir: dir,
    mf: null,
    workerd: null,
    /** The last lines the worker printed (console.log / errors). */
    logs: () => logLines.join("\n"),

    async start() {
      if (direct) {
        if (Object.keys(hyperdrives).length) throw new Error("startWorker: `direct` has no Hyperdrive bindings");
        const o = options();
        this.workerd = await startWorkerd({
          dir, scriptPath: BUILD_JS, wasmPath: BUILD_WASM, bindings: o.bindings, compatibilityDate: o.compatibilityDate,
          inspectorPort: miniflare.inspectorPort, handleRuntimeStdio: o.handleRuntimeStdio,
        });
        this.url = this.workerd.url;
        return this;
      }
      const mf = new Miniflare(options());
      this.mf = mf;
      let url;
      try {
        url = await mf.ready;
      } catch (e) {
        this.mf = null;
        await mf.dispose().catch(() => {});
        throw e;
      }
      this.url = url.toString().replace(/\/$/, "");
      return this;
    },

    /**
     * Call the worker over HTTP.
     * @param {string} method
     * @param {string} urlPath
     * @param {{token?: "admin"|"client"|null|string, body?: any, rawBody?: string|Buffer, headers?: Record<string,string>}} o
     * @returns {Promise<{status:number, json:any, text:string, headers:Headers}>}
     */
    async api(method, urlPath, { token = "admin", body, rawBody, headers = {} } = {}) {
      const h = { ...headers };
      const isRead = method === "POST" && (urlPath === "/query" || urlPath === "/query/raw");
      if (session.on && isRead && !("x-replica-bookmark" in lower(h)) && !("x-replica-location" in lower(h))) {
        // Before anything changed, the session starts at the primary's position.
        if (!session.bookmark) session.bookmark = await primaryBookmark(this.url);
        h["X-Replica-Bookmark"] = session.bookmark;
      }
      const bearer = token === "admin" ? ADMIN : token === "client" ? CLIENT : token;
      if (bearer !== null && bearer !== undefined && !("authorization" in lower(h))) {
        h.Authorization = `Bearer ${bearer}`;
      }
      let payload;
      if (rawBody !== undefined) {
        payload = rawBody;
      } else if (body !== undefined) {
        payload = JSON.stringify(body);
        if (!("content-type" in lower(h))) h["Content-Type"] = "application/json";
      }
      const res = await fetch(this.url + urlPath, { method, headers: h, body: payload });
      const text = await res.text();
      let json;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      if (session.on) {
        if (isRead && !("x-replica-location" in lower(h)) && res.status === 200) {
          const by = res.headers.get("x-replica-served-by");
          assert.ok(TEST_REPLICAS.split(",").includes(by), `a read without X-Replica-Location was answered by ${by}, not a read replica`);
        }
        for (const b of bookmarksOf(res.headers, json)) if (!session.bookmark || b > session.bookmark) session.bookmark = b;
        // A change without a run record (a config deleted with its table): ask the primary.
        if (method !== "GET" && !isRead && res.status < 300) {
          const b = await primaryBookmark(this.url);
          if (b && (!session.bookmark || b > session.bookmark)) session.bookmark = b;
        }
      }
      return { status: res.status, json, text, headers: res.headers };
    },

    /** Admin (or given token) read through POST /query; asserts 200 and returns the rows. */
    async query(sql, params = [], token = "admin") {
      const r = await this.api("POST", "/query", { token, body: { sql, params } });
      assert.equal(r.status, 200, `POST /query ${sql} -> ${r.status} ${r.text}`);
      assert.ok(Array.isArray(r.json?.result), `POST /query result is not an array: ${r.text}`);
      return r.json.result;
    },

    /** POST /replication/configs; asserts 201 and returns the stored config. */
    async createConfig(body) {
      const r = await this.api("POST", "/replication/configs", { body });
      assert.equal(r.status, 201, `create config -> ${r.status} ${r.text}`);
      assert.equal(r.json.error, null);
      assert.equal(typeof r.json.result.id, "number", `config id: ${r.text}`);
      return r.json.result;
    },

    /** POST /replication/sync/:id; asserts the status (200 by default) and returns the run record. */
    async sync(id, expectStatus = 200) {
      const r = await this.api("POST", `/replication/sync/${id}`);
      assert.equal(r.status, expectStatus, `sync ${id} -> ${r.status} ${r.text}`);
      return r.json.result;
    },

    /** Sync until the run is `ok` (a `partial` run resumes from its checkpoint). */
    async syncUntilOk(id, maxRuns = 50) {
      const runs = [];
      for (let i = 0; i < maxRuns; i++) {
        const run = await this.sync(id);
        runs.push(run);
        if (run.status === "ok") return runs;
        assert.equal(run.status, "partial", `unexpected run status: ${JSON.stringify(run)}`);
      }
      throw new Error(`config ${id} did not finish in ${maxRuns} runs`);
    },

    /** GET /replication/status/:id; asserts 200 and returns the status object. */
    async status(id) {
      const r = await this.api("GET", `/replication/status/${id}`);
      assert.equal(r.status, 200, `status ${id} -> ${r.status} ${r.text}`);
      return r.json.result;
    },

    async dispose() {
      await this.stopWorkerd();
      if (this.mf) {
        const mf = this.mf;
        this.mf = null;
        await mf.dispose();
      }
      if (ownDir) rmSync(dir, { recursive: true, force: true });
    },

    async stopWorkerd() {
      const w = this.workerd;
      this.workerd = null;
      await w?.stop();
    },

    /** Stop workerd and start it again on the same persisted state. */
    async restart() {
      await this.stopWorkerd();
      if (this.mf) {
        const mf = this.mf;
        this.mf = null;
        await mf.dispose();
      }
      return this.start();
    },
  };
  try {
    return await worker.start();
  } catch (e) {
    if (ownDir) rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

// Miniflare insists on a password in a Hyperdrive connection string; the test
// PostgreSQL uses trust auth, so any placeholder works.
function withPasswords(hyperdrives) {
  return Object.fromEntries(
    Object.entries(hyperdrives).map(([name, conn]) => {
      const u = new URL(String(conn));
      if (!u.password) u.password = "unused";
      return [name, u.toString()];
    }),
  );
}

function lower(obj) {
  return Object.fromEntries(Object.keys(obj).map((k) => [k.toLowerCase(), true]));
}

/** Assert the StarbaseDB envelope and an HTTP status; returns the parsed body. */
export function assertEnvelope(res, status, what = "") {
  const label = `${what ? what + ": " : ""}HTTP ${res.status} ${res.text.slice(0, 500)}`;
  assert.equal(res.status, status, label);
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/i, `content-type; ${label}`);
  assert.ok(res.json && typeof res.json === "object" && !Array.isArray(res.json), `JSON object body; ${label}`);
  assert.deepEqual(Object.keys(res.json).sort(), ["error", "result"], `envelope keys; ${label}`);
  if (status >= 400) {
    assert.equal(typeof res.json.error, "string", `error is a string; ${label}`);
    assert.ok(res.json.error.length > 0, `error is not empty; ${label}`);
    assert.doesNotMatch(res.json.error, /panicked|RuntimeError|unreachable|stack backtrace/i, label);
  } else {
    assert.equal(res.json.error, null, `error is null; ${label}`);
  }
  return res.json;
}

/**
 * A fresh PostgreSQL database for one test file; close() drops it.
 * @returns {Promise<{name:string, url:string, query:(sql:string, params?:any[]) => Promise<pg.QueryResult>, close:() => Promise<void>}>}
 */
export async function pgDatabase({ adminUrl = PG_ADMIN_URL } = {}) {
  const PG_ADMIN_URL = adminUrl;
  const name = `er_test_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const base = new URL(PG_ADMIN_URL);
  base.pathname = `/${name}`;
  const connUrl = base.toString();
  base.searchParams.set("sslmode", "disable");
  const url = base.toString();
  const pool = new pg.Pool({ connectionString: connUrl, max: 4 });
  pool.on("error", () => {});
  let closed = false;
  return {
    name,
    url,
    query: (sql, params) => pool.query(sql, params),
    async close() {
      if (closed) return;
      closed = true;
      await pool.end();
      const a = new pg.Client({ connectionString: PG_ADMIN_URL });
      await a.connect();
      try {
        // Logical slots pin a database: a test that left one behind must not leave the database.
        await a.query(
          `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL`,
          [name],
        );
        await a.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1`, [name]);
        await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await a.end();
      }
    },
  };
}

/**
 * A fresh MariaDB/MySQL database and a user with a password that owns it (the server checks
 * passwords for real, unlike the test PostgreSQL, and Hyperdrive needs one). `url` connects
 * as that user; close() drops the database and the user.
 * Admin URL: EDGE_REPLICA_TEST_MYSQL (default mysql://root@127.0.0.1:3306), or `adminUrl`
 * (MYSQL_BINLOG_URL for the binlog server). `admin(sql)` runs a statement as the admin.
 */
export async function mysqlDatabase({ prefix = "er_my", adminUrl: admin = process.env.EDGE_REPLICA_TEST_MYSQL ?? "mysql://root@127.0.0.1:3306" } = {}) {
  const { default: mysql } = await import("mysql2/promise");
  const adminUrl = new URL(admin);
  const suffix = randomBytes(6).toString("hex");
  const name = `${prefix}_${suffix}`;
  const user = `${prefix}_${suffix}`;
  const password = `pw-${randomBytes(8).toString("hex")}`;
  const host = adminUrl.hostname;
  const port = Number(adminUrl.port || 3306);
  const connect = (database) =>
    mysql.createConnection({
      host,
      port,
      user: decodeURIComponent(adminUrl.username || "root"),
      password: decodeURIComponent(adminUrl.password),
      database,
      charset: "UTF8MB4_GENERAL_CI",
      supportBigNumbers: true,
      bigNumberStrings: true,
      dateStrings: true,
      multipleStatements: true,
    });
  const root = await connect(undefined);
  await root.query(`CREATE DATABASE ${name} CHARACTER SET utf8mb4`);
  for (const h of ["%", "localhost", "127.0.0.1"]) {
    await root.query(`CREATE USER '${user}'@'${h}' IDENTIFIED BY '${password}'`);
    await root.query(`GRANT ALL ON ${name}.* TO '${user}'@'${h}'`);
  }
  const conn = await connect(name);
  // Checksums concatenate whole key ranges.
  await conn.query("SET SESSION group_concat_max_len = 67108864");
  let closed = false;
  return {
    name,
    user,
    password,
    host,
    port,
    url: `mysql://${user}:${password}@${host}:${port}/${name}`,
    query: async (sql, params) => (await conn.query(sql, params))[0],
    admin: async (sql, params) => (await root.query(sql, params))[0],
    /** A prepared statement: values in the binary protocol, so doubles arrive exactly. */
    execute: async (sql, params) => (await conn.execute(sql, params))[0],
    async close() {
      if (closed) return;
      closed = true;
      await conn.end();
      await root.query(`DROP DATABASE IF EXISTS ${name}`);
      for (const h of ["%", "localhost", "127.0.0.1"]) await root.query(`DROP USER IF EXISTS '${user}'@'${h}'`);
      await root.end();
    },
  };
}

/**
 * Poll fn until it returns a truthy value (returned) or the time is up (throws,
 * with the last value or error).
 */
export async function waitFor(fn, { timeoutMs = 30_000, intervalMs = 250, message = "condition" } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  let lastError;
  for (;;) {
    try {
      last = await fn();
      lastError = undefined;
      if (last) return last;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() >= deadline) {
      const detail = lastError ? `last error: ${lastError.stack ?? lastError}` : `last value: ${JSON.stringify(last)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${message}; ${detail}`);
    }
    await sleep(intervalMs);
  }
}

// ---------------------------------------------------------------------------
// PostgreSQL expressions that format a source value the way the replica stores it
// (API.md, "Values in the replica"), for exact comparisons.

/** timestamptz -> 2026-01-02T03:04:05.123456Z */
export const pgTimestamptzText = (col) =>
  `to_char((${col}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
/** timestamp -> 2026-01-02T03:04:05.123456 */
export const pgTimestampText = (col) => `to_char((${col}), 'YYYY-MM-DD"T"HH24:MI:SS.US')`;
/** bytea -> upper-case hex as SQLite's hex() prints it */
export const pgByteaHex = (col) => `upper(encode((${col}), 'hex'))`;

/** Quote an identifier for SQLite / PostgreSQL. */
export const qi = (name) => `"${String(name).replaceAll('"', '""')}"`;
