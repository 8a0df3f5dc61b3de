#!/usr/bin/env bash
# Runs a command beside a throwaway PostgreSQL 15 cluster: initdb in a temp dir, a free
# loopback port, ORDERFLOW_TEST_PG=postgresql://… exported to the command (and
# ORDERFLOW_TEST_PG_DATA, the cluster's directory, for tests that restart it), the cluster
# stopped and removed when the command ends. PostgreSQL refuses to run as root, so the
# server runs as the `postgres` user when we are root.
#   scripts/pg-test-server.sh ctest --test-dir build -L store_postgres
# The server is durable (fsync, synchronous_commit on), as the benchmarks need.
# --stats (first): the server loads pg_stat_statements, to see where its time goes:
#   scripts/pg-test-server.sh --stats sh -c 'orderflow bench … ; psql "$ORDERFLOW_TEST_PG" -c "SELECT …
#   FROM pg_stat_statements ORDER BY total_exec_time DESC"'
set -euo pipefail
stats=()
if [ "${1:-}" = --stats ]; then
  stats=(-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all -c pg_stat_statements.track_planning=on)
  shift
fi
bin=/usr/lib/postgresql/15/bin
[ -x "$bin/initdb" ] || { echo "pg-test-server: PostgreSQL 15 is not installed (scripts/install-deps.sh)" >&2; exit 1; }

as_owner=()
if [ "$(id -u)" -eq 0 ]; then as_owner=(runuser -u postgres --); fi
dir=$(mktemp -d /tmp/orderflow-pg-XXXXXX)
chmod 755 "$dir"
[ ${#as_owner[@]} -eq 0 ] || chown postgres: "$dir"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
stop() {
  "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT

"${as_owner[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 ||
  { cat "$dir/initdb.log" >&2; exit 1; }
# Room for the tests' and benchmarks' connections; sockets only in the temp dir.
"${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
  -o "-h 127.0.0.1 -p $port -k $dir -c max_connections=300 -c shared_buffers=256MB -c max_wal_size=4GB ${stats[*]}" start >/dev/null ||
  { cat "$dir/server.log" >&2; exit 1; }

export ORDERFLOW_TEST_PG="postgresql://postgres@127.0.0.1:$port/postgres"
export ORDERFLOW_TEST_PG_DATA="$dir/data"
if ((${#stats[@]})); then
  "$bin/psql" -q -d "$ORDERFLOW_TEST_PG" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
fi
echo "pg-test-server: $ORDERFLOW_TEST_PG (data in $dir)" >&2
set +e
"$@"
status=$?
exit $status
