// The built worker in a workerd process of its own configuration, without Miniflare.
//
// Miniflare puts an "outbound interceptor" worker in front of every Worker's outbound
// connections (compatibility flag `connect_pass_through`), and the pass-through hands a
// socket's data over 4 KiB per read. On Cloudflare a socket is the network's, and a read
// returns what has arrived: measured with one test worker reading a PostgreSQL result, 8–64
// KiB per read under workerd alone, 4 KiB under Miniflare. The benchmark measures the copy's
// memory both ways (bench/bench.mjs); the tests keep Miniflare, which `npm start` also uses.
//
// Only what the benchmark needs is configured: the entry Worker, the Durable Object namespace
// with SQLite storage on disk, text bindings and the inspector. No Hyperdrive, no `request.cf`.
// `WORKERD_V8_FLAGS="--trace-gc"` (space-separated flags) passes V8 flags for a diagnosis;
// Cloudflare sets none of them, so no figure may be taken with flags.

import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

/** The workerd binary Miniflare would run (the same version, from the same package). */
function workerdBinary() {
  return require("workerd").default;
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** A Cap'n Proto text literal: JSON's string escapes are a subset of its own. */
const capnpString = (s) => JSON.stringify(String(s));

function config({ dir, port, scriptPath, wasmPath, bindings, compatibilityDate, v8Flags = process.env.WORKERD_V8_FLAGS }) {
  const rel = (f) => capnpString(path.relative(dir, f));
  const texts = Object.entries(bindings).map(([name, value]) => `(name = ${capnpString(name)}, text = ${capnpString(value)})`);
  return `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .replica),
    (name = "internet", network = (allow = ["public", "private", "local"])),
    (name = "do-storage", disk = (path = ${capnpString(path.join(dir, "do"))}, writable = true)),
  ],
  sockets = [ (name = "http", address = ${capnpString(`127.0.0.1:${port}`)}, http = (), service = "main") ],
  ${v8Flags ? `v8Flags = [${v8Flags.split(" ").map(capnpString).join(", ")}],` : ""}
);
const replica :Workerd.Worker = (
  modules = [
    (name = "index.js", esModule = embed ${rel(scriptPath)}),
    (name = "index_bg.wasm", wasm = embed ${rel(wasmPath)}),
  ],
  compatibilityDate = ${capnpString(compatibilityDate)},
  bindings = [
    ${[...texts, '(name = "REPLICA", durableObjectNamespace = (className = "Replica"))'].join(",\n    ")}
  ],
  durableObjectNamespaces = [ (className = "Replica", uniqueKey = "edge-replica-Replica", enableSql = true) ],
  durableObjectStorage = (localDisk = "do-storage"),
);
`;
}

/**
 * Starts workerd on `dir` (its config and the object's storage live there) and resolves once it
 * answers. `handleRuntimeStdio(stdout, stderr)` receives workerd's output streams, as Miniflare's
 * option of that name does. Returns `{ url, stop() }`.
 */
export async function startWorkerd({ dir, scriptPath, wasmPath, bindings, compatibilityDate, inspectorPort, handleRuntimeStdio }) {
  const port = await freePort();
  mkdirSync(path.join(dir, "do"), { recursive: true });
  const file = path.join(dir, "workerd.capnp");
  writeFileSync(file, config({ dir, port, scriptPath, wasmPath, bindings, compatibilityDate }));
  const args = ["serve", file];
  if (inspectorPort) args.push(`--inspector-addr=127.0.0.1:${inspectorPort}`);
  const proc = spawn(workerdBinary(), args, { stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise((resolve) => proc.once("exit", resolve));
  handleRuntimeStdio(proc.stdout, proc.stderr);
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
    await exited;
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`workerd exited with ${proc.exitCode} before it answered`);
    try {
      const r = await fetch(`${url}/health`);
      await r.arrayBuffer();
      return { url, stop };
    } catch (e) {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`workerd did not answer on ${url} within 30 s: ${e.message}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
