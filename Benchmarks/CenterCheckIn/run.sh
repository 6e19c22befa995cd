#!/usr/bin/env bash
# Check-in benchmark: a real Center on loopback with a fleet of 100,000 devices in its database,
# DEVICES of them checking in back to back over mutual TLS, on SQLite and on a PostgreSQL this
# script starts (initdb in a temporary folder, default settings: fsync on); then on SQLite with a
# new TLS connection for every check-in; beside it, wrk against the same kind of Center's
# /health: the ceiling of a TLS request that touches the database once, in this run.
# Usage: Benchmarks/CenterCheckIn/run.sh [DEVICES] [SECONDS]     Figures: docs/PERFORMANCE.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
devices=${1:-64}
seconds=${2:-20}
"$top/scripts/setup-host" test >&2
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
(cd "$top" && swift build -c release --product center-checkin-bench >&2 && swift build -c release --product hearth >&2)
bench=$top/.build/release/center-checkin-bench
hearth=$top/.build/release/hearth
work=$(mktemp -d /var/tmp/hearth-checkin-XXXXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; sleep 1; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$bench" --devices "$devices" --seconds "$seconds"

# PostgreSQL 15 from Debian, started here, as the postgres user when run as root.
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_pg=(); [ "$(id -u)" -eq 0 ] && { chown postgres "$work"; as_pg=(runuser -u postgres --); }
"${as_pg[@]}" "$pgbin/initdb" -D "$work/pg" -U hearth -A trust >/dev/null
pgport=$(free_port)
"${as_pg[@]}" "$pgbin/postgres" -D "$work/pg" -h 127.0.0.1 -p "$pgport" -k "$work" -c max_connections=200 >"$work/pg.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do "$pgbin/pg_isready" -h 127.0.0.1 -p "$pgport" -q && break; sleep 0.2; done
"${as_pg[@]}" "$pgbin/createdb" -h 127.0.0.1 -p "$pgport" -U hearth bench
"$bench" --devices "$devices" --seconds "$seconds" --database "postgres://hearth@127.0.0.1:$pgport/bench"
"$bench" --devices "$devices" --seconds "$seconds" --reconnect

# The ceiling: wrk (64 connections, 2 threads) against /health of a Center on SQLite.
port=$(free_port)
HEARTH_LOG_LEVEL=error "$hearth" center serve --data "$work/center" --listen "127.0.0.1:$port" >/dev/null &
pids+=($!)
for _ in $(seq 50); do curl -sk "https://127.0.0.1:$port/health" >/dev/null && break; sleep 0.2; done
echo "wrk GET /health (same TLS server, 64 connections):"
wrk -t2 -c"$devices" -d"${seconds}s" --latency "https://127.0.0.1:$port/health" | grep -E "Requests/sec|50%|99%"
