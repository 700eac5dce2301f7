// The edge-replica dashboard: a client of the admin API, nothing more.
//
// The admin token is kept in sessionStorage (this tab only) and sent only as
// `Authorization: Bearer`; requests omit credentials, so no cookie is ever involved. Every
// value shown comes from users or origins (table names, error messages), so the page is built
// with createElement/textContent only: nothing is ever parsed as HTML (the page's
// Content-Security-Policy enforces that with Trusted Types).
"use strict";

(() => {
  const TOKEN_KEY = "edge-replica.admin-token";
  const REFRESH_MS = 5000;
  const RUNS_SHOWN = 30;
  const STATES = new Set(["never_synced", "idle", "running", "backfilling", "error", "disabled"]);
  const SOURCE_FIELDS = {
    postgres: ["url_secret", "hyperdrive"],
    mysql: ["url_secret", "hyperdrive"],
    libsql: ["url", "token_secret"],
    d1: ["binding", "account_id", "database_id", "token_secret"],
    starbase: ["url", "token_secret"],
  };
  const ALL_SOURCE_FIELDS = ["url_secret", "hyperdrive", "url", "binding", "account_id", "database_id", "token_secret"];
  const SVG = "http://www.w3.org/2000/svg"; // the SVG namespace: a name, never fetched

  const $ = (id) => document.getElementById(id);

  let token = sessionStorage.getItem(TOKEN_KEY);
  let timer = null;
  let inflight = null;
  let again = false;
  let data = { configs: [], statuses: new Map(), runs: new Map(), replicas: [] };
  let lastRefresh = null;
  let editing = null; // the config the editor changes; null when it creates one
  const busy = new Set(); // ids of configs with a sync started from this page
  let confirming = null; // id of the config whose delete awaits confirmation
  let confirmDrop = false;

  class ApiError extends Error {
    constructor(status, message, result) {
      super(message);
      this.status = status;
      this.result = result;
    }
  }

  async function api(method, path, body) {
    const init = { method, headers: { Authorization: `Bearer ${token}` }, credentials: "omit", cache: "no-store" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, `the replica did not answer (${e.message})`);
    }
    let json = null;
    try {
      json = await res.json();
    } catch {
      json = null;
    }
    if (!res.ok) throw new ApiError(res.status, (json && json.error) || `HTTP ${res.status}`, json && json.result);
    return json ? json.result : null;
  }

  // ---- building elements (text only) ------------------------------------------------

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    setAttrs(e, attrs);
    for (const c of children) if (c !== null && c !== undefined && c !== false) e.append(c);
    return e;
  }

  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVG, tag);
    setAttrs(e, attrs);
    for (const c of children) if (c !== null && c !== undefined && c !== false) e.append(c);
    return e;
  }

  function setAttrs(e, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") e.textContent = String(v);
      else if (k === "onclick") e.addEventListener("click", v);
      else if (k === "onchange") e.addEventListener("change", v);
      else if (k === "class") e.setAttribute("class", v);
      else if (k === "dataset") Object.assign(e.dataset, v);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
  }

  // ---- formatting -------------------------------------------------------------------

  const nf = new Intl.NumberFormat("en-US");

  function fmtNumber(n) {
    return n === null || n === undefined ? "—" : nf.format(n);
  }

  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const s = Math.max(0, seconds);
    if (s < 10) return `${s.toFixed(1)} s`;
    if (s < 60) return `${Math.round(s)} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
    return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
  }

  function fmtMs(ms) {
    if (ms === null || ms === undefined) return "—";
    return ms < 1000 ? `${ms} ms` : fmtDuration(ms / 1000);
  }

  /** A <time> saying how long ago (or how soon) `iso` is, with the exact time as its title. */
  function when(iso) {
    if (!iso) return el("span", { text: "—" });
    const delta = (Date.parse(iso) - Date.now()) / 1000;
    const text = Math.abs(delta) < 1 ? "now" : delta > 0 ? `in ${fmtDuration(delta)}` : `${fmtDuration(-delta)} ago`;
    return el("time", { datetime: iso, title: iso, text });
  }

  function describeSource(src) {
    if (!src) return "instance default (EXTERNAL_DB_* settings)";
    const url = (u) => {
      // Only scheme, host and path: a query string could carry something secret.
      try {
        const p = new URL(u);
        return `${p.protocol}//${p.host}${p.pathname === "/" ? "" : p.pathname}${p.search ? " (query hidden)" : ""}`;
      } catch {
        return "(unreadable URL)";
      }
    };
    switch (src.type) {
      case "postgres":
      case "mysql":
        return src.hyperdrive ? `${src.type} via Hyperdrive binding ${src.hyperdrive}` : `${src.type} via the URL in secret ${src.url_secret}`;
      case "libsql":
        return `libsql ${url(src.url)}${src.token_secret ? `, token in secret ${src.token_secret}` : ""}`;
      case "d1":
        return src.binding ? `d1 binding ${src.binding}` : `d1 REST API, database ${src.database_id}, token in secret ${src.token_secret}`;
      case "starbase":
        return `starbase ${url(src.url)}, token in secret ${src.token_secret}`;
      default:
        return String(src.type);
    }
  }

  // ---- rendering --------------------------------------------------------------------

  function lastFinished(runs) {
    return runs.find((r) => r.status !== "running") || null;
  }

  function rowsPerSecond(run) {
    if (!run || !run.duration_ms || run.rows_upserted === 0) return null;
    return run.rows_upserted / (run.duration_ms / 1000);
  }

  function fact(label, ...value) {
    return [el("dt", { text: label }), el("dd", {}, ...value)];
  }

  function chart(cfg, runs) {
    const shown = runs.slice(0, RUNS_SHOWN).reverse(); // oldest first, left to right
    const W = 320;
    const H = 96;
    const top = 14;
    const bottom = H - 4;
    const errors = shown.filter((r) => r.status === "error").length;
    const label =
      shown.length === 0
        ? `No runs yet for ${cfg.target_table}`
        : `Last ${shown.length} runs of ${cfg.target_table}: rows per run as bars, duration as a line, ${errors} failed`;
    const box = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label, class: "chart", preserveAspectRatio: "none" });
    box.append(svg("title", { text: label }));
    box.append(svg("line", { x1: 0, x2: W, y1: bottom, y2: bottom, class: "axis" }));
    if (shown.length === 0) {
      box.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "chart-note", text: "no runs yet" }));
      return box;
    }
    const maxRows = Math.max(1, ...shown.map((r) => r.rows_upserted));
    const maxMs = Math.max(1, ...shown.map((r) => r.duration_ms || 0));
    const step = W / Math.max(shown.length, 8);
    const barW = Math.max(2, step * 0.7);
    const points = [];
    shown.forEach((r, i) => {
      const x = i * step + (step - barW) / 2;
      const h = ((bottom - top) * r.rows_upserted) / maxRows;
      const g = svg("g", { class: `run run-${r.status === "error" || r.status === "partial" || r.status === "running" ? r.status : "ok"}` });
      const tip = `run ${r.run_id}: ${r.status}, ${fmtNumber(r.rows_upserted)} rows in ${fmtMs(r.duration_ms)}, started ${r.started_at}${r.error ? ` — ${r.error}` : ""}`;
      g.append(svg("title", { text: tip }));
      g.append(svg("rect", { x: x.toFixed(1), y: (bottom - Math.max(h, 1)).toFixed(1), width: barW.toFixed(1), height: Math.max(h, 1).toFixed(1), class: "bar" }));
      if (r.status === "error") {
        const cx = x + barW / 2;
        g.append(svg("path", { d: `M${(cx - 4).toFixed(1)} 2 l8 8 m0 -8 l-8 8`, class: "err-mark" }));
      }
      box.append(g);
      if (r.duration_ms !== null && r.duration_ms !== undefined) {
        points.push(`${(x + barW / 2).toFixed(1)},${(bottom - ((bottom - top) * r.duration_ms) / maxMs).toFixed(1)}`);
      }
    });
    if (points.length > 1) box.append(svg("polyline", { points: points.join(" "), class: "duration" }));
    for (const p of points) {
      const [cx, cy] = p.split(",");
      box.append(svg("circle", { cx, cy, r: 1.8, class: "duration-dot" }));
    }
    return box;
  }

  function chartLegend(runs) {
    const shown = runs.slice(0, RUNS_SHOWN);
    const maxRows = Math.max(0, ...shown.map((r) => r.rows_upserted));
    const maxMs = Math.max(0, ...shown.map((r) => r.duration_ms || 0));
    return el(
      "p",
      { class: "legend" },
      el("span", { class: "key key-rows", "aria-hidden": "true" }),
      ` rows (max ${fmtNumber(maxRows)}) `,
      el("span", { class: "key key-duration", "aria-hidden": "true" }),
      ` duration (max ${fmtMs(maxMs)}) `,
      el("span", { class: "key key-error", "aria-hidden": "true", text: "✕" }),
      " failed",
    );
  }

  function runsTable(runs) {
    const rows = runs.slice(0, 10).map((r) =>
      el(
        "tr",
        {},
        el("td", { text: String(r.run_id) }),
        el("td", {}, el("span", { class: `pill run-${r.status}`, text: r.status })),
        el("td", { class: "num", text: fmtNumber(r.rows_upserted) }),
        el("td", { class: "num", text: fmtMs(r.duration_ms) }),
        el("td", {}, when(r.started_at)),
        el("td", { class: "run-error", text: r.error || "" }),
      ),
    );
    const head = el("tr", {}, ...["run", "status", "rows", "duration", "started", "error"].map((h) => el("th", { scope: "col", text: h })));
    return el(
      "div",
      { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Recent runs" },
      el("table", { class: "runs" }, el("thead", {}, head), el("tbody", {}, ...rows)),
    );
  }

  function card(cfg) {
    const st = data.statuses.get(cfg.id) || null;
    const runs = data.runs.get(cfg.id) || [];
    const state = st && STATES.has(st.state) ? st.state : "never_synced";
    const last = lastFinished(runs);
    const rps = rowsPerSecond(last);
    const titleId = `cfg-${cfg.id}-title`;
    const key = (what) => ({ key: `${what}-${cfg.id}` });

    const facts = el(
      "dl",
      { class: "facts" },
      ...fact("Source", describeSource(cfg.source)),
      ...fact("Source table", cfg.source_table),
      ...fact("Mode", cfg.mode + (cfg.cursor_column ? ` on ${cfg.cursor_column}` : "")),
      ...(cfg.mode === "cdc" && st && st.cdc && st.cdc.server_id === undefined
        ? fact("Slot", `${st.cdc.slot_name} at ${st.cdc.confirmed_lsn ?? "—"}${st.cdc.slot_lag_bytes !== null ? ` · ${fmtNumber(st.cdc.slot_lag_bytes)} bytes behind` : ""}`)
        : []),
      ...(cfg.mode === "cdc" && st && st.cdc && st.cdc.server_id !== undefined
        ? fact("Binlog", `reader ${st.cdc.server_id} at ${st.cdc.binlog_position ?? "—"}${st.cdc.binlog_lag_bytes !== null ? ` · ${fmtNumber(st.cdc.binlog_lag_bytes)} bytes behind` : ""}`)
        : []),
      ...fact(
        "Last run",
        last ? el("span", { class: `pill run-${last.status}`, text: last.status }) : "none yet",
        last ? " " : null,
        last ? when(last.finished_at || last.started_at) : null,
      ),
      ...fact("Rows", st && st.target_row_count !== null ? `${fmtNumber(st.target_row_count)} in the table` : "no table yet"),
      ...fact("Last run rows", last ? `${fmtNumber(last.rows_upserted)}${rps !== null ? ` · ${fmtNumber(Math.round(rps))} rows/s` : ""}` : "—"),
      ...fact(
        "Lag",
        st && st.lag_seconds !== null && st.lag_seconds !== undefined
          ? el("span", { class: "lag", text: fmtDuration(st.lag_seconds) })
          : el("span", { class: "lag", text: "unknown (no complete run yet)" }),
        st && st.data_as_of ? el("span", { class: "sub" }, " · data as of ", when(st.data_as_of)) : null,
      ),
      ...fact("Next sync", !cfg.enabled ? "disabled (manual only)" : st && st.next_sync_at ? when(st.next_sync_at) : "—"),
      ...(st && st.consecutive_failures > 0 ? fact("Failures in a row", String(st.consecutive_failures)) : []),
    );

    const error =
      st && st.last_error
        ? el("div", { class: "last-error", role: "note" }, el("strong", { text: "Last error" }), el("p", { class: "error-text", text: st.last_error }))
        : null;

    const syncing = busy.has(cfg.id) || state === "running";
    const actions = el(
      "div",
      { class: "actions" },
      el("button", { type: "button", dataset: key("sync"), disabled: syncing, onclick: () => syncNow(cfg), text: syncing ? "Syncing…" : "Sync now" }),
      el("button", { type: "button", dataset: key("toggle"), onclick: () => toggle(cfg), text: cfg.enabled ? "Disable" : "Enable" }),
      el("button", { type: "button", dataset: key("edit"), onclick: () => openEditor(cfg), text: "Edit" }),
      el("button", { type: "button", class: "danger", dataset: key("delete"), onclick: () => askDelete(cfg), text: "Delete" }),
    );

    const confirm =
      confirming === cfg.id
        ? el(
            "div",
            { class: "confirm", role: "group", "aria-label": `Delete ${cfg.target_table}?` },
            el("p", { text: `Delete config ${cfg.id} (${cfg.target_table}) with its state and history?` }),
            el(
              "div",
              { class: "check" },
              el("input", {
                type: "checkbox",
                id: `drop-${cfg.id}`,
                dataset: key("drop"),
                checked: confirmDrop,
                onchange: (ev) => {
                  confirmDrop = ev.target.checked;
                },
              }),
              el("label", { for: `drop-${cfg.id}`, text: "Also drop the replica table" }),
            ),
            el("button", { type: "button", class: "danger", dataset: key("confirm-delete"), onclick: () => doDelete(cfg), text: "Delete config" }),
            el("button", { type: "button", dataset: key("cancel-delete"), onclick: () => cancelDelete(cfg), text: "Cancel" }),
          )
        : null;

    return el(
      "li",
      { class: `card state-${state}`, "aria-labelledby": titleId, dataset: { configId: String(cfg.id) } },
      el(
        "div",
        { class: "card-head" },
        el("h3", { id: titleId, class: "target" }, el("span", { class: "target-name", text: cfg.target_table })),
        el("span", { class: `state state-${state}`, text: state.replace("_", " ") }),
      ),
      facts,
      error,
      el("figure", { class: "chart-box" }, chart(cfg, runs), el("figcaption", {}, chartLegend(runs))),
      runs.length ? el("details", { class: "history" }, el("summary", { text: `Recent runs (${Math.min(runs.length, 10)})` }), runsTable(runs)) : null,
      actions,
      confirm,
    );
  }

  /** The read replicas (GET /replication/replicas): a table, a line when there are none, or why they could not be read. */
  function replicasView(replicas) {
    if (replicas instanceof Error) {
      return el("p", { class: "notice error", role: "note", text: `Could not read the replicas: ${replicas.message}` });
    }
    if (replicas.length === 0) {
      return el("p", { class: "empty-replicas" }, "No read replicas: set ", el("code", { text: "REPLICA_LOCATIONS" }), " (location hints such as weur,apac) to add them.");
    }
    const rows = replicas.map((r) =>
      el(
        "tr",
        { dataset: { location: r.location } },
        el("th", { scope: "row", class: "location", text: r.location }),
        el("td", { class: "bookmark" }, r.bookmark === null ? "not pulled yet" : el("code", { text: r.bookmark })),
        el("td", { class: "lag", text: r.lag_ms === null ? "—" : r.lag_ms === 0 ? "caught up" : fmtMs(r.lag_ms) }),
        el("td", { class: "pulled" }, when(r.last_pull_at)),
        el("td", { class: "run-error", text: r.last_error || "" }),
        el("td", { class: "num tables", text: fmtNumber(r.tables) }),
      ),
    );
    const head = el(
      "tr",
      {},
      ...["location", "bookmark", "lag", "last pull", "last error", "tables"].map((h) => el("th", { scope: "col", class: h === "tables" ? "num" : null, text: h })),
    );
    return el(
      "div",
      { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Read replicas by location" },
      el("table", { class: "runs replica-list" }, el("thead", {}, head), el("tbody", {}, ...rows)),
    );
  }

  function render() {
    const active = document.activeElement;
    const focusKey = active && active.dataset ? active.dataset.key : undefined;
    const openDetails = new Set([...document.querySelectorAll("li.card details[open]")].map((d) => d.closest("li").dataset.configId));
    const list = $("configs");
    const cards = data.configs.map(card);
    for (const c of cards) {
      if (openDetails.has(c.dataset.configId)) c.querySelector("details")?.setAttribute("open", "");
    }
    list.replaceChildren(...cards);
    $("replicas").replaceChildren(replicasView(data.replicas));
    if (cards.length === 0) {
      list.append(el("li", { class: "empty" }, "No configs yet. ", el("button", { type: "button", onclick: () => openEditor(null), text: "Create one" })));
    }
    const counts = {};
    for (const s of data.statuses.values()) counts[s.state] = (counts[s.state] || 0) + 1;
    const parts = Object.entries(counts).map(([k, n]) => `${n} ${k.replace("_", " ")}`);
    $("summary").textContent = `${data.configs.length} config${data.configs.length === 1 ? "" : "s"}${parts.length ? `: ${parts.join(", ")}` : ""}`;
    renderMeta();
    if (focusKey) {
      const again = document.querySelector(`[data-key="${CSS.escape(focusKey)}"]`);
      if (again && again !== document.activeElement) again.focus();
    }
  }

  let version = "";
  function renderMeta() {
    const bits = [];
    if (version) bits.push(`version ${version}`);
    if (lastRefresh) bits.push(`updated ${lastRefresh.toLocaleTimeString()}, every ${REFRESH_MS / 1000} s`);
    $("meta").textContent = bits.join(" · ");
  }

  function announce(message, isError) {
    const a = $("announce");
    a.textContent = message;
    a.classList.toggle("error", !!isError);
  }

  // ---- loading ----------------------------------------------------------------------

  async function load() {
    // The replicas' answer is shown in their panel whatever it is (a REPLICA_LOCATIONS that is
    // not a list of hints is a 500 naming it); only a refused token stops the whole board.
    const replicasOrError = api("GET", "/replication/replicas").catch((e) => {
      if (e.status === 401) throw e;
      return e;
    });
    const [configs, statuses, replicas] = await Promise.all([api("GET", "/replication/configs"), api("GET", "/replication/status"), replicasOrError]);
    const runs = await Promise.all(configs.map((c) => api("GET", `/replication/runs?config_id=${c.id}&limit=${RUNS_SHOWN}`)));
    data = {
      configs,
      statuses: new Map(statuses.map((s) => [s.config_id, s])),
      runs: new Map(configs.map((c, i) => [c.id, runs[i]])),
      replicas,
    };
    lastRefresh = new Date();
  }

  function refresh() {
    if (inflight) {
      again = true;
      return inflight;
    }
    inflight = (async () => {
      try {
        await load();
        $("board-error").hidden = true;
        render();
      } catch (e) {
        if (e.status === 401) return signOut("The admin token was refused (401). Enter it again.");
        $("board-error").textContent = `Could not refresh: ${e.message}`;
        $("board-error").hidden = false;
      }
    })().finally(() => {
      inflight = null;
      clearTimeout(timer);
      if (!token) return;
      if (again) {
        again = false;
        refresh();
      } else {
        timer = setTimeout(refresh, REFRESH_MS);
      }
    });
    return inflight;
  }

  // ---- actions ----------------------------------------------------------------------

  async function act(what, fn) {
    try {
      return await fn();
    } catch (e) {
      if (e.status === 401) {
        signOut("The admin token was refused (401). Enter it again.");
      } else {
        announce(`${what} failed: ${e.message}`, true);
      }
      return undefined;
    }
  }

  async function syncNow(cfg) {
    busy.add(cfg.id);
    render();
    announce(`Syncing ${cfg.target_table}…`);
    try {
      const run = await act(`Sync of ${cfg.target_table}`, () => api("POST", `/replication/sync/${cfg.id}`));
      if (run) announce(`Sync of ${cfg.target_table}: run ${run.run_id} ${run.status}, ${fmtNumber(run.rows_upserted)} rows in ${fmtMs(run.duration_ms)}.`);
    } finally {
      busy.delete(cfg.id);
      await refresh();
    }
  }

  async function toggle(cfg) {
    const done = await act(`${cfg.enabled ? "Disabling" : "Enabling"} ${cfg.target_table}`, () =>
      api("PUT", `/replication/configs/${cfg.id}`, { enabled: !cfg.enabled }),
    );
    if (done) announce(`${done.target_table} is ${done.enabled ? "enabled" : "disabled"}.`);
    await refresh();
  }

  function askDelete(cfg) {
    confirming = cfg.id;
    confirmDrop = false;
    render();
    document.querySelector(`[data-key="cancel-delete-${cfg.id}"]`)?.focus();
  }

  function cancelDelete(cfg) {
    confirming = null;
    render();
    document.querySelector(`[data-key="delete-${cfg.id}"]`)?.focus();
  }

  async function doDelete(cfg) {
    const drop = confirmDrop;
    const done = await act(`Deleting ${cfg.target_table}`, () => api("DELETE", `/replication/configs/${cfg.id}?drop_table=${drop}`));
    confirming = null;
    if (done) announce(`Deleted config ${cfg.id} (${cfg.target_table})${drop ? " and its table" : ""}.`);
    await refresh();
    $("new-config").focus();
  }

  // ---- the editor -------------------------------------------------------------------

  const field = (name) => $(`f-${name}`);

  function showSourceFields() {
    const type = field("source.type").value;
    for (const div of document.querySelectorAll("#config-form [data-types]")) {
      div.hidden = !div.dataset.types.split(" ").includes(type);
    }
  }

  function clearErrors() {
    for (const p of document.querySelectorAll("#config-form .field-error")) p.textContent = "";
    for (const i of document.querySelectorAll("#config-form [aria-invalid]")) i.removeAttribute("aria-invalid");
  }

  function openEditor(cfg) {
    editing = cfg;
    clearErrors();
    $("editor-title").textContent = cfg ? `Edit config ${cfg.id}` : "New config";
    $("save").textContent = cfg ? "Save" : "Create";
    const src = (cfg && cfg.source) || {};
    field("source.type").value = src.type || "";
    for (const f of ALL_SOURCE_FIELDS) field(`source.${f}`).value = src[f] || "";
    field("source_table").value = cfg ? cfg.source_table : "";
    field("target_table").value = cfg ? cfg.target_table : "";
    field("columns").value = cfg && cfg.columns ? cfg.columns.join(", ") : "";
    field("primary_key").value = cfg && cfg.primary_key ? cfg.primary_key.join(", ") : "";
    field("mode").value = cfg ? cfg.mode : "";
    field("cursor_column").value = cfg && cfg.cursor_column ? cfg.cursor_column : "";
    field("interval_seconds").value = cfg ? String(cfg.interval_seconds) : "60";
    field("batch_size").value = cfg && cfg.batch_size !== null ? String(cfg.batch_size) : "";
    field("lookback_seconds").value = cfg ? String(cfg.lookback_seconds) : "0";
    field("enabled").checked = cfg ? cfg.enabled : true;
    showSourceFields();
    $("editor").showModal();
    field(cfg ? "interval_seconds" : "source.type").focus();
  }

  /** Splits `a, "b,c", d` at the commas outside quotes. */
  function names(text) {
    const out = [];
    let cur = "";
    let quote = null;
    for (const ch of text) {
      if (quote) {
        if (ch === quote) quote = null;
        cur += ch;
      } else if (ch === '"' || ch === "`") {
        quote = ch;
        cur += ch;
      } else if (ch === ",") {
        out.push(cur.trim());
        cur = "";
      } else {
        cur += ch;
      }
    }
    if (cur.trim() !== "" || out.length) out.push(cur.trim());
    return out;
  }

  /** A number field: an integer when it reads as one, else the text (the API says what is wrong). */
  function integerOr(text) {
    return /^-?\d+$/.test(text) ? Number(text) : text;
  }

  /** The request body: on create, empty fields are left out (defaults); on update they clear. */
  function formBody(update) {
    const v = (n) => field(n).value.trim();
    const body = {};
    const empty = update ? null : undefined;
    const set = (k, val) => {
      if (val !== undefined) body[k] = val;
    };
    const type = v("source.type");
    if (type) {
      const src = { type };
      for (const f of SOURCE_FIELDS[type] || []) if (v(`source.${f}`)) src[f] = v(`source.${f}`);
      body.source = src;
    } else {
      set("source", empty);
    }
    set("source_table", v("source_table") || undefined);
    set("target_table", v("target_table") || empty);
    set("columns", v("columns") ? names(v("columns")) : empty);
    set("primary_key", v("primary_key") ? names(v("primary_key")) : empty);
    set("mode", v("mode") || undefined);
    set("cursor_column", v("cursor_column") || empty);
    set("interval_seconds", v("interval_seconds") ? integerOr(v("interval_seconds")) : undefined);
    set("batch_size", v("batch_size") ? integerOr(v("batch_size")) : empty);
    set("lookback_seconds", v("lookback_seconds") ? integerOr(v("lookback_seconds")) : empty);
    body.enabled = field("enabled").checked;
    return body;
  }

  /** The form field an API message is about: it names it as field `x` (or `source.x`). */
  function fieldOf(message) {
    const m =
      /field `([a-z_.]+)(?:\[\d+\])?`/.exec(message) ||
      /`(source\.[a-z_]+)`/.exec(message) ||
      /^(target_table|source_table|cursor_column|mode) /.exec(message);
    return m ? m[1] : null;
  }

  function showError(message) {
    const name = fieldOf(message);
    const slot = name && $(`err-${name}`);
    const input = name && field(name);
    const visible = slot && !slot.closest("[hidden]");
    if (visible) {
      slot.textContent = message;
      if (input) {
        input.setAttribute("aria-invalid", "true");
        input.focus();
      }
    } else {
      $("err-form").textContent = message;
    }
  }

  async function save(ev) {
    ev.preventDefault();
    clearErrors();
    const update = editing !== null;
    const body = formBody(update);
    try {
      const cfg = update ? await api("PUT", `/replication/configs/${editing.id}`, body) : await api("POST", "/replication/configs", body);
      $("editor").close();
      editing = null;
      announce(`${update ? "Saved" : "Created"} config ${cfg.id} (${cfg.target_table}).`);
      await refresh();
    } catch (e) {
      if (e.status === 401) {
        $("editor").close();
        signOut("The admin token was refused (401). Enter it again.");
      } else {
        showError(e.message);
      }
    }
  }

  // ---- signing in and out -----------------------------------------------------------

  function showBoard() {
    $("login").hidden = true;
    $("board").hidden = false;
    $("top-actions").hidden = false;
    refresh();
  }

  function signOut(message) {
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    clearTimeout(timer);
    data = { configs: [], statuses: new Map(), runs: new Map(), replicas: [] };
    $("configs").replaceChildren();
    $("replicas").replaceChildren();
    $("board").hidden = true;
    $("top-actions").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("token").focus();
  }

  async function signIn(ev) {
    ev.preventDefault();
    const t = $("token").value.trim();
    $("login-error").textContent = "";
    if (!t) {
      $("login-error").textContent = "Enter the admin token.";
      return;
    }
    token = t;
    try {
      await api("GET", "/replication/status");
    } catch (e) {
      token = null;
      $("login-error").textContent =
        e.status === 401 ? "That token was refused (401)." : e.status === 403 ? "That is not the admin token (403)." : `Could not check the token: ${e.message}`;
      $("token").focus();
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, t);
    $("token").value = "";
    showBoard();
  }

  async function loadVersion() {
    try {
      const res = await fetch("/health", { credentials: "omit", cache: "no-store" });
      const json = await res.json();
      version = json && json.result ? String(json.result.version) : "";
      renderMeta();
    } catch {
      version = "";
    }
  }

  function start() {
    $("login-form").addEventListener("submit", signIn);
    $("config-form").addEventListener("submit", save);
    $("cancel").addEventListener("click", () => {
      editing = null;
      $("editor").close();
    });
    $("editor").addEventListener("close", () => {
      editing = null;
    });
    field("source.type").addEventListener("change", showSourceFields);
    $("refresh").addEventListener("click", () => refresh());
    $("new-config").addEventListener("click", () => openEditor(null));
    $("sign-out").addEventListener("click", () => signOut("Signed out."));
    loadVersion();
    if (token) showBoard();
    else signOut("");
  }

  start();
})();
