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

# wrangler's [build] step runs scripts/build.sh; node here is Node 22 from node_modules.
exec node node_modules/wrangler/bin/wrangler.js dev \
  --ip 127.0.0.1 --port "${PORT:-8787}" --persist-to .wrangler/state "$@"
