#!/usr/bin/env bash
# A second MariaDB with a row-based binlog for the MySQL CDC tests (tests/mysql_binlog.rs):
# Debian's `mariadb-install-db` into its own datadir, started as its own `mariadbd` on
# 127.0.0.1:3307 (EDGE_REPLICA_BINLOG_PORT) with log_bin, binlog_format=ROW,
# binlog_row_image=FULL, binlog_row_metadata=FULL (when the server knows it), server_id=1,
# and root without a password over TCP from 127.0.0.1.
# Created when missing, started when stopped, reused when running. It reads no option file
# (--no-defaults), so the main MariaDB on 3306, its socket, pid file and datadir are never touched.
set -euo pipefail
port="${EDGE_REPLICA_BINLOG_PORT:-3307}"
datadir="${EDGE_REPLICA_BINLOG_DATADIR:-/var/lib/edge-replica-binlog}"
rundir="/run/edge-replica-binlog-$port"
socket="$rundir/mariadbd.sock"
pidfile="$rundir/mariadbd.pid"
logfile="$datadir/error.log"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
log() { printf '[mariadb_binlog] %s\n' "$*" >&2; }
client() { mariadb --no-defaults --protocol=tcp -h 127.0.0.1 -P "$port" -u root "$@"; }
ping() { mariadb-admin --no-defaults --protocol=tcp -h 127.0.0.1 -P "$port" -u root --connect-timeout=2 ping >/dev/null 2>&1; }

check() {
  local got
  got="$(client -N -B -e "SELECT CONCAT_WS(' ', @@log_bin IN (1, 'ON'), @@binlog_format, @@binlog_row_image, @@server_id)" 2>/dev/null)" || return 1
  [ "$got" = "1 ROW FULL 1" ] || { log "the server on 127.0.0.1:$port is not set up for the binlog tests ($got)"; return 1; }
}

if ping; then
  check || exit 1
  exit 0
fi

for tool in mariadb-install-db mariadb mariadb-admin; do
  command -v "$tool" >/dev/null 2>&1 || { log "$tool is missing: install mariadb-server (scripts/test.sh does)"; exit 1; }
done
[ -x /usr/sbin/mariadbd ] || { log "/usr/sbin/mariadbd is missing: install mariadb-server"; exit 1; }

as_root install -d -o mysql -g mysql "$rundir"
if [ ! -d "$datadir/mysql" ]; then
  log "creating $datadir"
  as_root install -d -o mysql -g mysql -m 0750 "$datadir"
  # `normal` root: a root@localhost with an empty password (not unix_socket only).
  as_root mariadb-install-db --no-defaults --user=mysql --datadir="$datadir" --auth-root-authentication-method=normal \
    --skip-test-db >"$rundir/install.log" 2>&1 || { cat "$rundir/install.log" >&2; exit 1; }
fi

opts=(
  --no-defaults --user=mysql --datadir="$datadir" --socket="$socket" --pid-file="$pidfile" --log-error="$logfile"
  --port="$port" --bind-address=127.0.0.1 --skip-name-resolve
  --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci
  --server-id=1 --log-bin=binlog --binlog-format=ROW --binlog-row-image=FULL
  --innodb-buffer-pool-size=64M --innodb-log-file-size=48M --max-connections=100
)
# binlog_row_metadata exists from MariaDB 10.5 (and MySQL 8.0.1).
if /usr/sbin/mariadbd --no-defaults --verbose --help 2>/dev/null | grep -q '^ *--binlog-row-metadata'; then
  opts+=(--binlog-row-metadata=FULL)
fi
log "starting mariadbd on 127.0.0.1:$port ($datadir)"
as_root start-stop-daemon --start --background --pidfile "$pidfile" --exec /usr/sbin/mariadbd -- "${opts[@]}" >&2
for _ in $(seq 1 120); do ping && break; sleep 0.5; done
if ! ping; then
  log "mariadbd did not answer on 127.0.0.1:$port; its log ($logfile) ends:"
  as_root tail -n 30 "$logfile" >&2 || true
  exit 1
fi
# root@localhost matches TCP from 127.0.0.1 only with name resolution; skip-name-resolve needs root@127.0.0.1.
client -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION" 2>/dev/null ||
  mariadb --no-defaults -S "$socket" -u root \
    -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION"
check
