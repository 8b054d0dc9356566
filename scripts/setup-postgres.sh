#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for the tests (the second Storage driver, issue 14) and
# tells the tests where it is. Installs PostgreSQL from apt when its binaries are missing, makes a
# cluster in a temporary folder with initdb (as user `postgres` when run as root), starts it with
# pg_ctl on 127.0.0.1 only, creates the database `llmaas`, and writes
#     LLMAAS_TEST_POSTGRES_URL=postgres://postgres:<password>@127.0.0.1:<port>/llmaas
# to the env file (printed too). Idempotent: a server already running on the port is reused.
#
#   LLMAAS_PG_PORT      port (default 55432)
#   LLMAAS_PG_DIR       cluster folder (default /tmp/llmaas-pg-<port>)
#   LLMAAS_PG_ENV_FILE  env file to write (default <cluster folder>.env)
#   scripts/setup-postgres.sh stop   stops the server of LLMAAS_PG_PORT
# Also installs psycopg into the project's venv (.venv, made by setup-engine.sh) for the e2e suite.
#
# A test cluster only: fsync and synchronous commit are off (the tests create many databases),
# password (SCRAM) authentication over TCP on loopback, trust on its own Unix socket.
set -euo pipefail
umask 077

PORT=${LLMAAS_PG_PORT:-55432}
DIR=${LLMAAS_PG_DIR:-/tmp/llmaas-pg-$PORT}
ENV_FILE=${LLMAAS_PG_ENV_FILE:-$DIR.env}
DATA="$DIR/data"

find_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
BIN=$(find_bindir)
if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ] || [ ! -x "$BIN/pg_ctl" ]; then
  echo "setup-postgres: installing postgresql (apt)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  BIN=$(find_bindir)
fi
[ -n "$BIN" ] && [ -x "$BIN/initdb" ] || { echo "setup-postgres: no initdb after installing postgresql" >&2; exit 1; }

# PostgreSQL refuses to run as root: run its tools as `postgres` then.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ "${1:-}" = stop ]; then
  if [ -d "$DATA" ]; then as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null 2>&1 || true; fi
  exit 0
fi

# The e2e suite reads the gateway's PostgreSQL database with psycopg (into the project's venv),
# also when the server is reused.
install_psycopg() {
  local repo venv
  repo=$(cd "$(dirname "$0")/.." && pwd)
  venv=${LLMAAS_VENV:-$repo/.venv}
  if [ -x "$venv/bin/python" ] && ! "$venv/bin/python" -c 'import psycopg' >/dev/null 2>&1; then
    echo "setup-postgres: installing psycopg into $venv" >&2
    "$venv/bin/pip" install -q 'psycopg[binary]==3.2.13' >&2
  fi
}

if "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" && [ -s "$ENV_FILE" ]; then
  install_psycopg
  cat "$ENV_FILE"
  exit 0
fi

mkdir -p "$DIR"
[ "$(id -u)" = 0 ] && chown postgres: "$DIR"
chmod 700 "$DIR"
if [ ! -s "$DATA/PG_VERSION" ]; then
  password=$(head -c 18 /dev/urandom | base64 | tr '+/' 'xy')
  pwfile="$DIR/pwfile"
  printf '%s\n' "$password" >"$pwfile"
  [ "$(id -u)" = 0 ] && chown postgres: "$pwfile"
  chmod 600 "$pwfile"
  as_pg "$BIN/initdb" -D "$DATA" -U postgres --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; exit 1; }
  printf '%s' "$password" >"$DIR/password"
  rm -f "$pwfile"
fi
password=$(cat "$DIR/password")

if ! "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
  as_pg "$BIN/pg_ctl" -D "$DATA" -l "$DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$DIR -c max_connections=400 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null || { tail -20 "$DIR/server.log" >&2; exit 1; }
fi

if ! as_pg "$BIN/psql" -h "$DIR" -p "$PORT" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'llmaas'" | grep -q 1; then
  as_pg "$BIN/createdb" -h "$DIR" -p "$PORT" -U postgres llmaas
fi

install_psycopg

url="postgres://postgres:$password@127.0.0.1:$PORT/llmaas"
printf 'LLMAAS_TEST_POSTGRES_URL=%s\n' "$url" >"$ENV_FILE"
cat "$ENV_FILE"
