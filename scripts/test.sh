#!/usr/bin/env bash
# Everything `npm test` runs: set-up, PostgreSQL (the main cluster and a logical-decoding one) + MariaDB (the
# main server and a binlog one), rustfmt and clippy, Rust tests, the worker build, then the end-to-end tests
# against the built worker in workerd (Miniflare), the dashboard's in headless Chromium (Debian's `chromium`,
# installed here when missing).
#
#   bash scripts/test.sh                          # everything
#   bash scripts/test.sh tests/types.test.mjs     # Rust tests + only these e2e files
#   SKIP_CARGO_TEST=1 bash scripts/test.sh ...    # skip the Rust checks and tests
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/setup.sh
source scripts/setup.sh

log() { printf '[test] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else "$@"; fi; }

# --- databases ----------------------------------------------------------------
installed_pg=0
if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ] ||
   ! command -v mariadb-admin >/dev/null 2>&1 || [ ! -x /usr/sbin/mariadbd ]; then
  command -v pg_ctlcluster >/dev/null 2>&1 || installed_pg=1
  log "installing postgresql and mariadb-server"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql mariadb-server >&2 ||
    { as_root apt-get update >&2 && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql mariadb-server >&2; }
fi

pg_version="$(ls /etc/postgresql | sort -V | tail -n1)"
if [ "$installed_pg" = 1 ]; then
  # A fresh Debian cluster asks for passwords over TCP; the tests connect as
  # postgres@127.0.0.1 without one, like the development machines.
  hba="/etc/postgresql/$pg_version/main/pg_hba.conf"
  log "allowing trust auth for postgres on 127.0.0.1 in $hba"
  as_root sed -i '1i host all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust' "$hba"
  as_root pg_ctlcluster --skip-systemctl-redirect "$pg_version" main restart >&2 || true
fi
if ! pg_isready -q -h 127.0.0.1; then
  log "starting PostgreSQL $pg_version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start >&2 || true
fi
if ! mariadb-admin ping >/dev/null 2>&1; then
  log "starting MariaDB"
  as_root install -d -o mysql -g mysql /run/mysqld 2>/dev/null || true
  as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd >&2
fi
for _ in $(seq 1 60); do
  if pg_isready -q -h 127.0.0.1 && mariadb-admin ping >/dev/null 2>&1; then break; fi
  sleep 0.5
done
pg_isready -h 127.0.0.1 >&2 || { log "PostgreSQL is not accepting connections on 127.0.0.1:5432"; exit 1; }
mariadb-admin ping >&2 || { log "MariaDB is not answering"; exit 1; }
# A second cluster with wal_level=logical on 5433 for the CDC tests (tests/pg_cdc_codec.rs): created
# when missing, started when stopped, a pg_isready otherwise. The main cluster is left as it is.
bash scripts/pg_logical.sh || { log "no logical-decoding PostgreSQL: scripts/pg_logical.sh failed"; exit 1; }
# A second MariaDB with a row-based binlog on 3307 for the MySQL CDC tests (tests/mysql_binlog.rs): its own
# datadir, socket and pid file, created when missing, started when stopped. The main server is left as it is.
bash scripts/mariadb_binlog.sh || { log "no binlog MariaDB: scripts/mariadb_binlog.sh failed"; exit 1; }

failed=()

# --- Rust checks and tests --------------------------------------------------------
if [ "${SKIP_CARGO_TEST:-0}" != 1 ]; then
  for tool in rustfmt clippy-driver; do
    command -v "$tool" >/dev/null 2>&1 ||
      { log "$tool is missing: install it with 'rustup component add ${tool%-driver}'"; exit 1; }
  done
  log "cargo fmt --check"
  if ! cargo fmt --all -- --check; then failed+=("cargo fmt (run 'cargo fmt --all')"); fi
  log "cargo clippy (native, all targets)"
  if ! cargo clippy --all-targets -- -D warnings; then failed+=("cargo clippy (native)"); fi
  log "cargo clippy (wasm32-unknown-unknown)"
  if ! cargo clippy --lib --target wasm32-unknown-unknown -- -D warnings; then failed+=("cargo clippy (wasm32)"); fi
  log "cargo test"
  if ! cargo test; then failed+=("cargo test"); fi
fi

# --- build ----------------------------------------------------------------------
log "bash scripts/build.sh"
bash scripts/build.sh

# --- end-to-end tests (Node 22 from node_modules) ---------------------------------
if [ "$#" -gt 0 ]; then
  files=("$@")
else
  files=(tests/*.test.mjs)
fi
# --- headless Chromium for the browser tests ------------------------------------------------
# Debian's package, driven by playwright-core (which downloads no browser). Installed only when a
# browser test is about to run and /usr/bin/chromium is missing; nothing to do when present.
needs_browser=0
for f in "${files[@]}"; do
  case "$f" in */dashboard*.test.mjs) needs_browser=1 ;; esac
done
if [ "$needs_browser" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  log "installing chromium (for the browser tests)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >&2 ||
    { as_root apt-get update >&2 && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >&2; }
fi

log "node $(node --version) --test ${files[*]}"
if ! node --test --test-concurrency=1 --test-timeout=600000 --test-reporter=spec "${files[@]}"; then
  failed+=("end-to-end tests")
fi

# The read tests once more against a deployment with three read replicas: every read goes to a
# replica (tests/harness.mjs checks which object answered) with the session's bookmark.
if [ "$#" -eq 0 ]; then
  replica_files=(tests/types.test.mjs tests/incremental.test.mjs tests/full_sync.test.mjs tests/mysql.test.mjs tests/sqlite_sources.test.mjs)
  log "the read tests with REPLICA_LOCATIONS=weur,apac,enam: ${replica_files[*]}"
  if ! EDGE_REPLICA_TEST_REPLICAS=weur,apac,enam node --test --test-concurrency=1 --test-timeout=600000 --test-reporter=spec "${replica_files[@]}"; then
    failed+=("end-to-end read tests with read replicas")
  fi
fi

if [ "${#failed[@]}" -gt 0 ]; then
  log "FAILED: ${failed[*]}"
  exit 1
fi
log "all tests passed"
