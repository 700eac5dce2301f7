#!/usr/bin/env bash
# `npm run bench [-- --rows N]`: build, make sure PostgreSQL is up, run bench/bench.mjs
# (`npm run bench:reconcile`: bench/reconcile.mjs, BENCH=reconcile).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/setup.sh
source scripts/setup.sh
pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
command -v sqlite3 >/dev/null || { apt-get update -qq && apt-get install -y -qq sqlite3; }
bash scripts/build.sh
exec node "bench/${BENCH:-bench}.mjs" "$@"
