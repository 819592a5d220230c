#!/usr/bin/env bash
# A real local cluster on loopback: PostgreSQL, Redis, N `palimpsest serve` nodes and nginx in
# front of them, spreading WebSocket connections over the nodes (no sticky routing).
#
#   scripts/cluster.sh [NODES]        # default 2 nodes; Ctrl-C stops everything, by PID
#
# Open http://127.0.0.1:8080/ (nginx). Ports and folders, from the environment:
#   PALIMPSEST_CLUSTER_PORT  nginx port (8080); node i listens on PORT+i (8081, 8082, ...)
#   PALIMPSEST_CLUSTER_PG_PORT    PostgreSQL port (55432)
#   PALIMPSEST_CLUSTER_REDIS_PORT Redis port (56379)
#   PALIMPSEST_CLUSTER_DIR   data and logs (data/cluster; Postgres data survives restarts)
#   PYTHON                   the interpreter with Palimpsest installed (.venv/bin/python)
#   PALIMPSEST_SKIP_SETUP=1  do not run scripts/setup.sh first
# See docs/cluster.md for how this maps onto a production deployment.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

NODES=${1:-2}
PORT=${PALIMPSEST_CLUSTER_PORT:-8080}
PG_PORT=${PALIMPSEST_CLUSTER_PG_PORT:-55432}
REDIS_PORT=${PALIMPSEST_CLUSTER_REDIS_PORT:-56379}
DIR=${PALIMPSEST_CLUSTER_DIR:-$ROOT/data/cluster}
PG_BIN=${PALIMPSEST_PG_BIN:-/usr/lib/postgresql/15/bin}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}

[ "${PALIMPSEST_SKIP_SETUP:-}" = 1 ] || ./scripts/setup.sh --services

mkdir -p "$DIR/run" "$DIR/logs"
chmod 755 "$DIR" "$DIR/run"
PIDS=()

stopped=0
stop_all() {
  [ "$stopped" = 1 ] && return
  stopped=1
  echo
  echo "cluster: stopping"
  # Reverse order: the load balancer first, the database last.
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill -TERM "${PIDS[$i]}" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  echo "cluster: stopped (logs in $DIR/logs)"
}
trap 'stop_all; exit 130' INT TERM
trap stop_all EXIT

wait_for() {  # description, command...
  local what=$1; shift
  for _ in $(seq 300); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "cluster: $what did not come up; see $DIR/logs" >&2
  exit 1
}

as_postgres=()
if [ "$(id -u)" = 0 ]; then  # PostgreSQL refuses to run as root
  as_postgres=(runuser -u postgres --)
  chown postgres:postgres "$DIR"
fi

# PostgreSQL
if [ ! -f "$DIR/pg/PG_VERSION" ]; then
  mkdir -p "$DIR/pg"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$DIR/pg"
  "${as_postgres[@]}" "$PG_BIN/initdb" -D "$DIR/pg" -A trust -U postgres -E UTF8 >"$DIR/logs/initdb.log"
fi
[ "$(id -u)" = 0 ] && chown postgres:postgres "$DIR/run" "$DIR/logs"
"${as_postgres[@]}" "$PG_BIN/postgres" -D "$DIR/pg" -p "$PG_PORT" -c listen_addresses=127.0.0.1 \
  -c unix_socket_directories="$DIR/run" -c max_connections=200 >"$DIR/logs/postgres.log" 2>&1 &
PIDS+=($!)
wait_for "PostgreSQL" "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$PG_PORT"
# Hold the postmaster's own PID (not runuser's): stopping it is then a plain `kill`.
WAIT_PIDS=("${PIDS[@]}")
PIDS[-1]=$(head -1 "$DIR/pg/postmaster.pid")
psql=("$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -Atq)
if [ -z "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = 'palimpsest'")" ]; then
  "${psql[@]}" -c "CREATE DATABASE palimpsest"
fi
export DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:$PG_PORT/palimpsest"

# Redis: a bus, never a store, so nothing is saved.
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --daemonize no >"$DIR/logs/redis.log" 2>&1 &
PIDS+=($!)
wait_for "Redis" redis-cli -p "$REDIS_PORT" ping
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"

# The schema: a deploy step, once, before any node starts.
"$PYTHON" -m server.cli migrate

# The nodes
upstreams=""
for i in $(seq "$NODES"); do
  node_port=$((PORT + i))
  "$PYTHON" -m server.cli serve --host 127.0.0.1 --port "$node_port" \
    >"$DIR/logs/node-$i.log" 2>&1 &
  PIDS+=($!)
  upstreams+="        server 127.0.0.1:$node_port max_fails=1 fail_timeout=3s;"$'\n'
done
for i in $(seq "$NODES"); do
  wait_for "node $i" curl -sf "http://127.0.0.1:$((PORT + i))/healthz"
done

# nginx in front
conf="$DIR/run/nginx.conf"
TEMPLATE="$ROOT/deploy/nginx.conf.template" RUN_DIR="$DIR/run" LISTEN="$PORT" UPSTREAMS="$upstreams" \
  "$PYTHON" -c 'import os; print(open(os.environ["TEMPLATE"]).read()
    .replace("@RUN_DIR@", os.environ["RUN_DIR"]).replace("@PORT@", os.environ["LISTEN"])
    .replace("@UPSTREAMS@", os.environ["UPSTREAMS"].rstrip()))' >"$conf"
nginx -p "$DIR/run" -c "$conf" -g "daemon off;" >"$DIR/logs/nginx.log" 2>&1 &
PIDS+=($!)
wait_for "nginx" curl -sf "http://127.0.0.1:$PORT/healthz"

echo "cluster: $NODES nodes on ports $((PORT + 1))-$((PORT + NODES)), Postgres :$PG_PORT, Redis :$REDIS_PORT"
echo "cluster: open http://127.0.0.1:$PORT/  (WebSockets: ws://127.0.0.1:$PORT/ws/{doc_id})"
echo "cluster: logs in $DIR/logs; Ctrl-C stops everything"
WAIT_PIDS+=("${PIDS[@]:1}")
wait -n "${WAIT_PIDS[@]}" || true
echo "cluster: a process exited; stopping the rest" >&2
