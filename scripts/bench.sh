#!/usr/bin/env bash
# `npm run bench [-- --rows N]`: build, make sure PostgreSQL is up, run bench/bench.mjs, then
# bench/cdc.mjs (100,000 changes) against the logical-decoding cluster, bench/cdc_mysql.mjs
# against the binlog MariaDB, then bench/reconcile.mjs and bench/replicas.mjs;
# `npm run bench:reconcile` (BENCH=reconcile) runs only that one.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/setup.sh
source scripts/setup.sh
pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
command -v sqlite3 >/dev/null || { apt-get update -qq && apt-get install -y -qq sqlite3; }
bash scripts/build.sh
if [ "${BENCH:-bench}" != bench ]; then
  exec node "bench/${BENCH}.mjs" "$@"
fi
# The split copy's bench-only prototype (src/worker/split_bench.rs) for bench.mjs, into
# build-split/. Last, so that build/ is the worker everything else runs.
worker-build --release --no-opt -d build-split . --features split-bench
node bench/bench.mjs "$@"
# cdc needs the logical-decoding cluster on 5433 (created when missing).
bash scripts/pg_logical.sh
node bench/cdc.mjs
# mysql cdc needs the binlog MariaDB on 3307 (created when missing).
bash scripts/mariadb_binlog.sh
node bench/cdc_mysql.mjs
# Delete reconciliation against a full refresh of the same table (same --rows).
node bench/reconcile.mjs "$@"
# Read replicas: replication delay, reads per second, the primary's pace while replicas pull.
node bench/replicas.mjs "$@"
