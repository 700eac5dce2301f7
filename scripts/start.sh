#!/usr/bin/env bash
# Serve the replica locally with `wrangler dev` on 127.0.0.1:${PORT:-8787}.
# Secrets come from .dev.vars (written with random tokens when missing);
# state persists under .wrangler/state.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/setup.sh
source scripts/setup.sh

if [ ! -f .dev.vars ]; then
  gen_token() { node -e 'process.stdout.write(require("crypto").randomBytes(24).toString("hex"))'; }
  umask 077
  cat > .dev.vars <<VARS
# Local secrets for \`npm start\` (wrangler dev). Not committed (.gitignore).
ADMIN_AUTHORIZATION_TOKEN=$(gen_token)
CLIENT_AUTHORIZATION_TOKEN=$(gen_token)
PG_URL=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
VARS
  umask 022
  echo "[start] wrote $(pwd)/.dev.vars with new random ADMIN_AUTHORIZATION_TOKEN and CLIENT_AUTHORIZATION_TOKEN" >&2
  echo "[start] read them with: grep TOKEN .dev.vars" >&2
else
  echo "[start] using the tokens in $(pwd)/.dev.vars" >&2
fi

# The demo needs no external database: a local D1 database (binding DEMO_DB in wrangler.toml)
# with sample rows, in the same state directory that `wrangler dev` uses. Idempotent.
port="${PORT:-8787}"
echo "[start] seeding the demo D1 database DEMO_DB (table orders, 5000 rows)" >&2
if ! seed_log="$(node node_modules/wrangler/bin/wrangler.js d1 execute DEMO_DB --local \
      --persist-to .wrangler/state --file scripts/demo_seed.sql --yes 2>&1)"; then
  printf '%s\n' "$seed_log" >&2
  echo "[start] seeding DEMO_DB failed (see above); starting anyway" >&2
fi
cat >&2 <<DEMO

[start] Try the replica on the demo database once the server below is ready:

  TOKEN=\$(grep '^ADMIN_AUTHORIZATION_TOKEN=' .dev.vars | cut -d= -f2-)

  # 1. replicate the D1 table "orders" (the first sync starts at once, then every 30 s)
  curl -s -X POST http://127.0.0.1:${port}/replication/configs \\
    -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
    -d '{"source":{"type":"d1","binding":"DEMO_DB"},"source_table":"orders","cursor_column":"updated_at","interval_seconds":30}'

  # 2. query the replica
  curl -s -X POST http://127.0.0.1:${port}/query \\
    -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
    -d '{"sql":"SELECT product, count(*) AS orders, round(sum(total), 2) AS revenue FROM orders GROUP BY product ORDER BY revenue DESC"}'

DEMO

# wrangler's [build] step runs scripts/build.sh; node here is Node 22 from node_modules.
exec node node_modules/wrangler/bin/wrangler.js dev \
  --ip 127.0.0.1 --port "$port" --persist-to .wrangler/state "$@"
