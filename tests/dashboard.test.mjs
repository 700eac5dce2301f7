// The dashboard (GET /) in a real browser: Debian's headless Chromium driven by playwright-core,
// against the built worker replicating a real PostgreSQL. Signs in with the admin token, reads the
// configs and their states, runs a sync and sees its run, creates a config with a bad field and
// sees the API's message next to that field, shows a failing source's error, shows hostile table
// names and error messages as text, works at phone width and from the keyboard, lists the read
// replicas (REPLICA_LOCATIONS=weur,apac) with their bookmarks, says when there are none, and logs
// no console error. Screenshots go to tests/output/ (UPDATE_SCREENSHOT=1 also copies the desktop one
// to docs/dashboard.png, the one README shows).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { startWorker, pgDatabase, waitFor, ADMIN, CLIENT, ROOT } from "./harness.mjs";

const CHROMIUM = "/usr/bin/chromium";
const OUT = path.join(ROOT, "tests", "output");
const SOURCE = { type: "postgres", url_secret: "PG_URL" };
const REPLICA_LOCATIONS = ["weur", "apac"];
// Messages Chromium logs for API answers the tests provoke on purpose (a wrong token, a bad
// field, a failing source). Anything else in the console fails the test.
const EXPECTED_NETWORK = /^Failed to load resource: the server responded with a status of (400|401|403|502) /;

let db;
let w;
let context;
let page;
let userDataDir;
const consoleProblems = [];
const apiRequests = [];
const cfgs = {};

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: scripts/test.sh installs Debian's chromium package`);
  mkdirSync(OUT, { recursive: true });
  db = await pgDatabase();
  await db.query(`CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, total numeric(12,2) NOT NULL,
                  updated_at timestamptz NOT NULL DEFAULT clock_timestamp())`);
  await db.query("INSERT INTO orders (id, customer, total) SELECT g, 'customer ' || g, g * 1.25 FROM generate_series(1, 5000) g");
  await db.query("CREATE TABLE customers (id bigint PRIMARY KEY, name text)");
  await db.query("INSERT INTO customers SELECT g, 'name ' || g FROM generate_series(1, 1200) g");
  w = await startWorker({
    vars: { PG_URL: db.url, DEAD_PG: "postgres://replica@127.0.0.1:1/shop?sslmode=disable", REPLICA_LOCATIONS: REPLICA_LOCATIONS.join(",") },
  });

  // A replica with some history: an incremental table synced a few times as rows change, a
  // full one, a source that is down, and a disabled config that never ran.
  // Created disabled so that the alarm does not race the syncs below; enabled afterwards, when
  // their next run is an interval away.
  cfgs.orders = await w.createConfig({ source: SOURCE, source_table: "public.orders", cursor_column: "updated_at", interval_seconds: 3600, enabled: false });
  cfgs.customers = await w.createConfig({ source: SOURCE, source_table: "customers", interval_seconds: 3600, enabled: false });
  cfgs.down = await w.createConfig({ source: { type: "postgres", url_secret: "DEAD_PG" }, source_table: "shipments", interval_seconds: 3600, enabled: false });
  cfgs.paused = await w.createConfig({ source: SOURCE, source_table: "customers", target_table: "customers_archive", interval_seconds: 86400, enabled: false });
  await w.sync(cfgs.orders.id);
  await w.sync(cfgs.customers.id);
  for (const n of [40, 300, 15, 900, 120]) {
    await db.query(`UPDATE orders SET total = total + 1, updated_at = clock_timestamp() WHERE id <= ${n}`);
    await w.sync(cfgs.orders.id);
  }
  await db.query("INSERT INTO customers SELECT g, 'name ' || g FROM generate_series(1201, 1500) g");
  await w.sync(cfgs.customers.id);
  await w.sync(cfgs.down.id, 502);
  await w.sync(cfgs.down.id, 502);
  for (const key of ["orders", "customers", "down"]) {
    const r = await w.api("PUT", `/replication/configs/${cfgs[key].id}`, { body: { enabled: true } });
    assert.equal(r.status, 200, r.text);
    cfgs[key] = r.json.result;
  }

  userDataDir = mkdtempSync(path.join(tmpdir(), "edge-replica-chromium-"));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync"],
    viewport: { width: 1280, height: 900 },
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (m) => {
    if ((m.type() === "error" || m.type() === "warning") && !EXPECTED_NETWORK.test(m.text())) consoleProblems.push(`${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => consoleProblems.push(`pageerror: ${e.message}`));
  page.on("request", (r) => {
    const u = new URL(r.url());
    if (u.pathname.startsWith("/replication") || u.pathname === "/metrics") apiRequests.push({ method: r.method(), path: u.pathname + u.search, headers: r.headers() });
  });
});

after(async () => {
  await context?.close();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  await w?.dispose();
  await db?.close();
});

const card = (id) => page.locator(`li.card[data-config-id="${id}"]`);

async function apiStatus(id) {
  return (await w.api("GET", `/replication/status/${id}`)).json.result;
}

// ---------------------------------------------------------------------------------------------

test("load /, sign in with the admin token, and see every config of the PostgreSQL replica with its state", async () => {
  await page.goto(w.url + "/");
  const token = page.getByLabel("Admin token");
  await token.waitFor();
  assert.equal(await token.getAttribute("type"), "password");

  // A wrong token and the client token are refused, with the reason next to the field.
  await token.fill("not-the-token");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#login-error").filter({ hasText: "refused (401)" }).waitFor();
  await token.fill(CLIENT);
  await token.press("Enter");
  await page.locator("#login-error").filter({ hasText: "not the admin token (403)" }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, "nothing kept for a refused token");

  // The keyboard is enough: type the token and press Enter.
  await token.fill(ADMIN);
  await token.press("Enter");
  await card(cfgs.paused.id).waitFor();
  for (const [key, state] of [
    ["orders", "idle"],
    ["customers", "idle"],
    ["down", "error"],
    ["paused", "disabled"],
  ]) {
    const c = card(cfgs[key].id);
    assert.equal(await c.locator("h3").textContent(), cfgs[key].target_table);
    assert.equal(await c.locator(".state").textContent(), state, key);
    assert.equal((await apiStatus(cfgs[key].id)).state, state, `${key}: the API agrees`);
  }
  const orders = card(cfgs.orders.id);
  const st = await apiStatus(cfgs.orders.id);
  const text = await orders.textContent();
  assert.match(text, /postgres via the URL in secret PG_URL/);
  assert.match(text, /incremental on updated_at/);
  assert.ok(text.includes(`${st.target_row_count.toLocaleString("en-US")} in the table`), text);
  assert.match(await orders.locator(".lag").textContent(), /^\d+(\.\d)? s$|min/);
  assert.match(text, /rows\/s/);
  assert.equal(await orders.locator("svg.chart g.run").count(), 6, "one bar per run");
  assert.match(await card(cfgs.paused.id).locator(".lag").textContent(), /unknown/);
  assert.match(await card(cfgs.paused.id).textContent(), /disabled \(manual only\)/);

  // The token lives in this tab's sessionStorage only; no cookie; every API call is a bearer call.
  assert.equal(await page.evaluate(() => sessionStorage.getItem("edge-replica.admin-token")), ADMIN);
  assert.equal(await page.evaluate(() => localStorage.length), 0);
  assert.deepEqual(await context.cookies(), []);
  assert.equal(await page.evaluate(() => document.cookie), "");
  assert.ok(apiRequests.length >= 5);
  for (const r of apiRequests) {
    assert.match(r.headers.authorization ?? "", /^Bearer /, `${r.method} ${r.path}`);
    assert.equal(r.headers.cookie, undefined, `${r.method} ${r.path}`);
    assert.ok(!r.path.includes(ADMIN), "the token never goes into a URL");
  }
  assert.ok(!page.url().includes(ADMIN) && !page.url().includes("token"), page.url());
});

test("the read replicas are listed with their bookmark, lag, last pull and tables", async () => {
  // The primary's position now, and the replicas' own view of it once they have pulled it.
  const head = (await w.api("POST", "/query", { body: { sql: "SELECT 1" }, headers: { "X-Replica-Location": "primary" } })).headers.get("x-replica-bookmark");
  const list = await waitFor(
    async () => {
      const r = (await w.api("GET", "/replication/replicas")).json.result;
      return r.every((x) => x.bookmark === head && x.lag_ms === 0) ? r : null;
    },
    { timeoutMs: 30_000, message: "both replicas at the primary's bookmark" },
  );
  assert.deepEqual(
    list.map((x) => x.location),
    REPLICA_LOCATIONS,
  );
  await page.getByRole("button", { name: "Refresh" }).click();
  const panel = page.getByRole("region", { name: "Read replicas by location" });
  for (const x of list) {
    const row = panel.locator(`tr[data-location="${x.location}"]`);
    await row.locator(".bookmark code").filter({ hasText: head }).waitFor();
    assert.equal(await row.locator("th").textContent(), x.location);
    assert.equal(await row.locator(".lag").textContent(), "caught up");
    assert.equal(await row.locator(".tables").textContent(), String(x.tables));
    assert.equal(await row.locator(".pulled time").getAttribute("datetime"), x.last_pull_at);
    assert.equal(await row.locator(".run-error").textContent(), "");
  }
  assert.equal(await panel.locator("tbody tr").count(), REPLICA_LOCATIONS.length);
  assert.deepEqual(
    await panel.locator("thead th").allTextContents(),
    ["location", "bookmark", "lag", "last pull", "last error", "tables"],
  );
});

test("without REPLICA_LOCATIONS the panel says there are no read replicas", async () => {
  const bare = await startWorker();
  const other = await context.newPage();
  try {
    other.on("pageerror", (e) => consoleProblems.push(`pageerror (no replicas): ${e.message}`));
    await other.goto(bare.url + "/");
    await other.getByLabel("Admin token").fill(ADMIN);
    await other.getByLabel("Admin token").press("Enter");
    const empty = other.locator("#replicas .empty-replicas");
    await empty.waitFor();
    assert.match(await empty.textContent(), /^No read replicas: set REPLICA_LOCATIONS/);
    assert.equal(await other.locator("#replicas table").count(), 0);
  } finally {
    await other.close();
    await bare.dispose();
  }
});

test("a failing source shows its error message", async () => {
  const c = card(cfgs.down.id);
  const st = await apiStatus(cfgs.down.id);
  assert.ok(st.last_error && st.last_error.includes("127.0.0.1"), st.last_error);
  assert.equal(await c.locator(".last-error p").textContent(), st.last_error);
  assert.match(await c.textContent(), /Failures in a row2/);
  assert.equal(await c.locator("svg.chart g.run-error").count(), 2);
  assert.equal(await c.locator("svg.chart .err-mark").count(), 2, "errors are marked");
  assert.doesNotMatch(st.last_error, /password/i);
});

test("the page at desktop and phone width: screenshots, and nothing wider than the screen", async () => {
  await page.locator("#board").waitFor();
  const desktop = path.join(OUT, "dashboard.png");
  await page.screenshot({ path: desktop, fullPage: true });
  if (process.env.UPDATE_SCREENSHOT === "1") copyFileSync(desktop, path.join(ROOT, "docs", "dashboard.png"));

  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(200);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than a 390px screen`);
  for (const id of [cfgs.orders.id, cfgs.down.id]) {
    const box = await card(id).boundingBox();
    assert.ok(box.x >= 0 && box.x + box.width <= 390, `card ${id} fits: ${JSON.stringify(box)}`);
    const sync = card(id).getByRole("button", { name: "Sync now" });
    const b = await sync.boundingBox();
    assert.ok(b.height >= 36 && b.x + b.width <= 390, `a button big enough to tap: ${JSON.stringify(b)}`);
  }
  await page.screenshot({ path: path.join(OUT, "dashboard-phone.png"), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });
});

test("run a sync from the page and see the new run appear", async () => {
  await db.query("UPDATE orders SET total = 0, updated_at = clock_timestamp() WHERE id <= 77");
  const c = card(cfgs.orders.id);
  const before = await c.locator("svg.chart g.run").count();
  await c.getByRole("button", { name: "Sync now" }).click();
  const announce = page.locator("#announce");
  await announce.filter({ hasText: /run \d+ ok, 77 rows/ }).waitFor();
  const runId = Number(/run (\d+) ok/.exec(await announce.textContent())[1]);
  await c.locator("svg.chart g.run").nth(before).waitFor();
  assert.equal(await c.locator("svg.chart g.run").count(), before + 1);
  assert.match(await c.locator("svg.chart g.run").last().locator("title").textContent(), new RegExp(`^run ${runId}: ok, 77 rows`));
  await c.locator("details.history summary").click();
  assert.equal(await c.locator("table.runs tbody tr").first().locator("td").first().textContent(), String(runId));
  assert.match(await c.textContent(), /Last run rows77/);
  const runs = (await w.api("GET", `/replication/runs?config_id=${cfgs.orders.id}&limit=1`)).json.result;
  assert.equal(runs[0].run_id, runId, "the API's newest run");
});

test("create a config with bad fields: the API's message appears next to the field it names", async () => {
  await page.getByRole("button", { name: "New config" }).click();
  const dialog = page.locator("dialog#editor");
  await dialog.waitFor();
  await page.getByLabel("Source type").selectOption("postgres");
  await page.getByLabel("URL secret name").fill("NO_SUCH_SECRET");
  await page.getByLabel("Source table").fill("orders");
  await page.getByLabel("Target table (optional)").fill("orders_copy");
  await page.getByLabel("Interval (seconds)").fill("60");
  await dialog.getByRole("button", { name: "Create" }).click();
  const secretErr = page.locator('[id="err-source.url_secret"]');
  await secretErr.filter({ hasText: "source.url_secret" }).waitFor();
  assert.match(await secretErr.textContent(), /NO_SUCH_SECRET.*not a secret or var of this Worker/);
  assert.equal(await page.getByLabel("URL secret name").getAttribute("aria-invalid"), "true");

  await page.getByLabel("URL secret name").fill("PG_URL");
  await page.getByLabel("Interval (seconds)").fill("0");
  await dialog.getByRole("button", { name: "Create" }).click();
  const intervalErr = page.locator("#err-interval_seconds");
  await intervalErr.filter({ hasText: "interval_seconds" }).waitFor();
  assert.match(await intervalErr.textContent(), /^field `interval_seconds` must be an integer from 1 to 31536000, got 0$/);
  assert.equal(await secretErr.textContent(), "", "the old message is gone");
  assert.equal(await page.evaluate(() => document.activeElement.id), "f-interval_seconds", "focus moves to the field");

  await page.getByLabel("Interval (seconds)").fill("ten");
  await dialog.getByRole("button", { name: "Create" }).click();
  await intervalErr.filter({ hasText: "must be an integer, got a string" }).waitFor();

  await page.getByLabel("Interval (seconds)").fill("600");
  await dialog.getByRole("button", { name: "Create" }).click();
  await dialog.waitFor({ state: "hidden" });
  const configs = (await w.api("GET", "/replication/configs")).json.result;
  const created = configs.find((c) => c.target_table === "orders_copy");
  assert.ok(created, "created through the API");
  assert.equal(created.interval_seconds, 600);
  cfgs.copy = created;
  await card(created.id).waitFor();
});

test("enable/disable, edit and delete a config from the page", async () => {
  const c = card(cfgs.copy.id);
  await c.getByRole("button", { name: "Disable" }).click();
  await c.getByRole("button", { name: "Enable" }).waitFor();
  assert.equal((await w.api("GET", `/replication/configs/${cfgs.copy.id}`)).json.result.enabled, false);
  await c.locator(".state").filter({ hasText: "disabled" }).waitFor();

  await c.getByRole("button", { name: "Edit" }).click();
  const dialog = page.locator("dialog#editor");
  assert.equal(await page.getByLabel("Interval (seconds)").inputValue(), "600");
  assert.equal(await page.getByLabel("URL secret name").inputValue(), "PG_URL");
  await page.getByLabel("Interval (seconds)").fill("120");
  await page.getByLabel("Cursor column").fill("no such column!");
  await dialog.getByRole("button", { name: "Save" }).click();
  await page.locator("#err-cursor_column").filter({ hasText: "cursor_column" }).waitFor();
  await page.getByLabel("Cursor column").fill("");
  await dialog.getByRole("button", { name: "Save" }).click();
  await dialog.waitFor({ state: "hidden" });
  const saved = (await w.api("GET", `/replication/configs/${cfgs.copy.id}`)).json.result;
  assert.deepEqual([saved.interval_seconds, saved.source_table, saved.enabled], [120, "orders", false]);

  await c.getByRole("button", { name: "Delete" }).click();
  await c.getByLabel("Also drop the replica table").check();
  await c.getByRole("button", { name: "Delete config" }).click();
  await c.waitFor({ state: "detached" });
  assertStatus(await w.api("GET", `/replication/configs/${cfgs.copy.id}`), 404);
});

function assertStatus(r, status) {
  assert.equal(r.status, status, r.text);
}

test("hostile table names and error messages are shown as text, never run", async () => {
  const markup = `<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">`;
  await db.query(`CREATE TABLE ${qi(markup)} (id bigint PRIMARY KEY, v text)`);
  await db.query(`INSERT INTO ${qi(markup)} VALUES (1, '<b>bold</b>')`);
  const hostile = await w.createConfig({ source: SOURCE, source_table: qi(markup), target_table: qi(markup), interval_seconds: 3600, enabled: false });
  await w.sync(hostile.id);
  // A source table that does not exist: the origin's message quotes the name, markup and all.
  const missing = `<iframe src=/health onload=window.__pwned=3></iframe>`;
  const broken = await w.createConfig({ source: SOURCE, source_table: qi(missing), target_table: "broken", interval_seconds: 3600, enabled: false });
  const failed = await w.api("POST", `/replication/sync/${broken.id}`);
  assert.equal(failed.status, 502, failed.text);
  assert.ok(failed.json.error.includes(missing), failed.json.error);

  await page.getByRole("button", { name: "Refresh" }).click();
  await card(hostile.id).waitFor();
  await card(broken.id).waitFor();
  assert.equal(await card(hostile.id).locator("h3").textContent(), markup);
  assert.equal(await card(hostile.id).locator("h3 *").count(), 1, "only the span the page made");
  assert.match(await card(hostile.id).locator("dd").nth(1).textContent(), /^"<script>/, "the source table, quoted, as text");
  assert.equal(await card(broken.id).locator(".last-error p").textContent(), failed.json.error);
  assert.equal(await card(broken.id).locator(".last-error p *").count(), 0);
  await card(broken.id).locator("details.history summary").click();
  assert.equal(await card(broken.id).locator("table.runs td.run-error").first().textContent(), failed.json.error);
  assert.equal(await page.locator("#board script, #board img, #board iframe").count(), 0, "no element from the data");
  assert.equal(await page.evaluate(() => window.__pwned), undefined, "nothing ran");
  assert.equal(await page.evaluate(() => document.scripts.length), 1, "only the page's own script");
});

test("the keyboard reaches everything: the editor opens, traps focus and closes with Escape", async () => {
  await page.getByRole("button", { name: "New config" }).focus();
  await page.keyboard.press("Enter");
  await page.locator("dialog#editor[open]").waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), "f-source.type");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.closest("dialog")?.id), "editor", "focus stays in the dialog");
  await page.keyboard.press("Escape");
  await page.locator("dialog#editor").waitFor({ state: "hidden" });

  // Tab order: from the top bar into the first card's actions, every stop a labelled control.
  await page.getByRole("button", { name: "Refresh" }).focus();
  const stops = [];
  for (let i = 0; i < 12; i++) {
    await page.keyboard.press("Tab");
    stops.push(await page.evaluate(() => {
      const e = document.activeElement;
      return `${e.tagName.toLowerCase()}:${(e.getAttribute("aria-label") || e.textContent || "").trim().slice(0, 30)}`;
    }));
  }
  assert.ok(stops.includes("button:Sign out") && stops.includes("button:Sync now"), stops.join(" | "));
  assert.ok(stops.every((s) => !/:$/.test(s)), `every stop has a name: ${stops.join(" | ")}`);

  // A sync started from the keyboard.
  const c = card(cfgs.customers.id);
  await c.getByRole("button", { name: "Sync now" }).focus();
  await page.keyboard.press("Enter");
  await page.locator("#announce").filter({ hasText: `Sync of customers: run` }).waitFor();
});

test("it refreshes itself while open", async () => {
  await db.query("UPDATE orders SET updated_at = clock_timestamp() WHERE id <= 5");
  const run = await w.sync(cfgs.orders.id); // outside the page
  const c = card(cfgs.orders.id);
  await c.locator("svg.chart g.run title").filter({ hasText: `run ${run.run_id}: ok` }).waitFor({ state: "attached", timeout: 15_000 });
});

test("no console errors, no script errors, no policy violations", async () => {
  assert.deepEqual(consoleProblems, []);
});

/** Quote an identifier for PostgreSQL and the config API. */
function qi(name) {
  return `"${name.replaceAll('"', '""')}"`;
}
