// Secrets stay secret when connections fail: a source URL's password never appears in a
// response, a run record, the status, the configs or the worker's log, whether the port is
// closed, the server refuses the password, the database does not exist, the URL is malformed
// so that the password would be read as host or database, or the secret is no URL at all.
// The errors still name the source: its secret, host, port and database.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { startWorker, assertEnvelope, ADMIN, CLIENT, mysqlDatabase } from "./harness.mjs";
import { closedPort } from "./faults_support.mjs";

const SECRETS = {
  closed: "Cl0sedPortSecret",
  cleartext: "Wr0ngCleartextSecret",
  md5: "Wr0ngMd5Secret",
  nodb: "N0dbSecret",
  slash: "Sl4shSecret",
  raw: "JustARawSecretValue",
  myWrong: "Wr0ngMysqlSecret",
  myClosed: "Cl0sedMysqlSecret",
  mySlash: "Sl4shMysqlSecret",
};

/**
 * A PostgreSQL server that asks for a password (cleartext or MD5) and refuses it as a real
 * one does: ErrorResponse 28P01. It records the passwords it was sent, which proves the
 * secret really travelled, so its absence from every output means something.
 */
async function passwordServer(method) {
  const received = [];
  const server = net.createServer((sock) => {
    sock.on("error", () => {});
    let buf = Buffer.alloc(0);
    let started = false;
    sock.on("data", (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (!started) {
          if (buf.length < 4) return;
          const len = buf.readInt32BE(0);
          if (buf.length < len) return;
          const code = buf.readInt32BE(4);
          buf = buf.subarray(len);
          if (code === 80877103) {
            sock.write("N"); // no TLS
            continue;
          }
          started = true;
          const auth = Buffer.alloc(method === "md5" ? 13 : 9);
          auth.write("R", 0);
          auth.writeInt32BE(method === "md5" ? 12 : 8, 1);
          auth.writeInt32BE(method === "md5" ? 5 : 3, 5);
          if (method === "md5") auth.write("salt", 9);
          sock.write(auth);
          continue;
        }
        if (buf.length < 5) return;
        const len = buf.readInt32BE(1);
        if (buf.length < len + 1) return;
        if (buf[0] === 0x70) received.push(buf.subarray(5, len).toString("utf8").replace(/\0$/, ""));
        buf = buf.subarray(len + 1);
        const fields = Buffer.from(
          'SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed for user "app"\0\0',
          "utf8",
        );
        const err = Buffer.alloc(5);
        err.write("E", 0);
        err.writeInt32BE(4 + fields.length, 1);
        sock.end(Buffer.concat([err, fields]));
        return;
      }
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: server.address().port, received, close: () => new Promise((r) => server.close(r)) };
}

let w;
let my;
let cleartext;
let md5;
let closed;

before(async () => {
  cleartext = await passwordServer("cleartext");
  md5 = await passwordServer("md5");
  closed = await closedPort();
  // MariaDB checks passwords for real: a user that exists, with the wrong password.
  my = await mysqlDatabase({ prefix: "er_fault" });
  w = await startWorker({
    vars: {
      CLOSED_URL: `postgres://app:${SECRETS.closed}@127.0.0.1:${closed}/ghostdb?sslmode=disable`,
      CLEARTEXT_URL: `postgres://app:${SECRETS.cleartext}@127.0.0.1:${cleartext.port}/appdb?sslmode=disable`,
      MD5_URL: `postgres://app:${SECRETS.md5}@127.0.0.1:${md5.port}/appdb?sslmode=disable`,
      // A real server (it trusts local connections, so the password is ignored) without that database.
      NODB_URL: `postgres://postgres:${SECRETS.nodb}@127.0.0.1:5432/er_no_such_database?sslmode=disable`,
      // An unescaped '/' in the password: "1234" would pass for a port, the rest for the database.
      SLASH_URL: `postgres://app:1234/${SECRETS.slash}@127.0.0.1:5432/appdb?sslmode=disable`,
      RAW_SECRET: SECRETS.raw,
      MY_WRONG_URL: `mysql://${my.user}:${SECRETS.myWrong}@127.0.0.1:${my.port}/${my.name}?ssl-mode=disable`,
      MY_CLOSED_URL: `mysql://app:${SECRETS.myClosed}@127.0.0.1:${closed}/ghostdb`,
      MY_SLASH_URL: `mysql://app:1234/${SECRETS.mySlash}@127.0.0.1:${my.port}/${my.name}`,
    },
  });
});

after(async () => {
  await w?.dispose();
  await cleartext?.close();
  await md5?.close();
  await my?.close();
});

function assertNoSecret(text, where) {
  for (const [name, s] of Object.entries(SECRETS)) {
    assert.ok(!text.includes(s), `${where} contains the ${name} password: ${text.slice(0, 800)}`);
  }
  for (const t of [ADMIN, CLIENT]) assert.ok(!text.includes(t), `${where} contains an authorization token`);
}

// [secret name, what the error must name, what the error must say]
const cases = () => [
  ["CLOSED_URL", [`127.0.0.1:${closed}`, "ghostdb"], /refused|connect|socket/i],
  ["CLEARTEXT_URL", ["127.0.0.1", "appdb"], /28P01.*password authentication failed/],
  ["MD5_URL", ["127.0.0.1", "appdb"], /28P01.*password authentication failed/],
  ["NODB_URL", ["127.0.0.1:5432", "er_no_such_database"], /3D000.*does not exist/],
  ["SLASH_URL", ["SLASH_URL"], /percent-encode/],
  ["RAW_SECRET", ["RAW_SECRET"], /postgres:\/\//],
  ["MY_WRONG_URL", [`127.0.0.1:${my.port}`, my.name], /Access denied/],
  ["MY_CLOSED_URL", [`127.0.0.1:${closed}`, "ghostdb"], /refused|connect|socket/i],
  ["MY_SLASH_URL", ["MY_SLASH_URL"], /percent-encode/],
];

test("failing connections name the source but never its password", async (t) => {
  const ids = [];
  for (const [secret, names, says] of cases()) {
    const cfg = await w.createConfig({
      source: { type: secret.startsWith("MY_") ? "mysql" : "postgres", url_secret: secret },
      source_table: "t",
      target_table: `t_${secret.toLowerCase()}`,
      interval_seconds: 3600,
      enabled: false,
    });
    ids.push(cfg.id);
    const r = await w.api("POST", `/replication/sync/${cfg.id}`);
    assertEnvelope(r, 502, `sync via ${secret}`);
    assertNoSecret(r.text, `the sync response via ${secret}`);
    const err = r.json.error;
    t.diagnostic(`${secret}: ${err}`);
    assert.equal(r.json.result.status, "error");
    assert.equal(r.json.result.error, err);
    assert.match(err, new RegExp(secret), `the error names the secret: ${err}`);
    for (const n of names) assert.ok(err.includes(n), `the error via ${secret} names ${n}: ${err}`);
    assert.match(err, says, `the error via ${secret} says what went wrong: ${err}`);
  }
  // The servers did receive the passwords: they were in play, and still never shown.
  assert.deepEqual(cleartext.received, [SECRETS.cleartext]);
  assert.equal(md5.received.length, 1);
  assert.match(md5.received[0], /^md5[0-9a-f]{32}$/);

  const outputs = {
    configs: (await w.api("GET", "/replication/configs")).text,
    status: (await w.api("GET", "/replication/status")).text,
    runs: (await w.api("GET", "/replication/runs?limit=1000")).text,
    bookkeeping: JSON.stringify(await w.query("SELECT * FROM tmp_replication_state")) + JSON.stringify(await w.query("SELECT * FROM tmp_replication_runs")),
    log: w.logs(),
  };
  for (const [where, text] of Object.entries(outputs)) assertNoSecret(text, where);
  const status = JSON.parse(outputs.status).result;
  for (const id of ids) {
    const s = status.find((x) => x.config_id === id);
    assert.equal(s.state, "disabled");
    assert.equal(s.consecutive_failures, 1);
    assert.ok(s.last_error);
  }
});

test("a client token cannot read the bookkeeping that holds errors", async () => {
  for (const sql of [
    "SELECT * FROM tmp_replication_runs",
    "SELECT * FROM tmp_replication_state",
    "SELECT * FROM tmp_replication_configs",
    "SELECT sql FROM sqlite_master",
  ]) {
    const r = await w.api("POST", "/query", { token: "client", body: { sql } });
    assertEnvelope(r, 403, sql);
  }
  assertEnvelope(await w.api("GET", "/replication/runs", { token: "client" }), 403);
  assertEnvelope(await w.api("GET", "/replication/status", { token: "client" }), 403);
});
