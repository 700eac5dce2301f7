#!/usr/bin/env bash
# A PostgreSQL cluster with logical decoding for the CDC tests: Debian's `pg_createcluster`
# on port 5433 (EDGE_REPLICA_LOGICAL_PORT), wal_level=logical, trust auth on 127.0.0.1.
# Created when missing, started when stopped, reused when running; the main cluster
# (5432) is never touched.
set -euo pipefail
port="${EDGE_REPLICA_LOGICAL_PORT:-5433}"
name=er_logical
version="$(ls /etc/postgresql | sort -V | tail -n1)"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! pg_lsclusters -h | awk '{print $2}' | grep -qx "$name"; then
  as_root pg_createcluster "$version" "$name" --port "$port" -- --auth-local=trust --auth-host=trust >&2
  conf="/etc/postgresql/$version/$name/conf.d/edge-replica.conf"
  as_root tee "$conf" >/dev/null <<CONF
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
listen_addresses = '127.0.0.1'
fsync = off
CONF
fi
if ! pg_isready -q -h 127.0.0.1 -p "$port"; then
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start >&2
fi
for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p "$port" && break; sleep 0.5; done
pg_isready -h 127.0.0.1 -p "$port" >&2
