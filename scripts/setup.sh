#!/usr/bin/env bash
# Idempotent setup shared by serve.sh and test.sh: Python venv and the browser client.
# With --services it also installs what the tests need from Debian (PostgreSQL, Redis, nginx,
# Chromium) and the npm packages of the Node test clients.
set -euo pipefail
cd "$(dirname "$0")/.."

want_services=0
[ "${1:-}" = "--services" ] && want_services=1

if [ "$want_services" = 1 ]; then
  missing=()
  [ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql)
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v nginx >/dev/null || missing+=(nginx)
  command -v chromium >/dev/null || missing+=(chromium)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]} from Debian"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  # Debian starts the packaged services; the tests run private instances instead.
  for svc in postgresql redis-server nginx; do
    (command -v systemctl >/dev/null && systemctl stop "$svc" 2>/dev/null) || true
  done
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.palimpsest-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test,bench]'
  touch "$stamp"
fi

npm_install() {  # folder
  if [ -f "$1/package.json" ]; then
    if [ ! -d "$1/node_modules" ] || [ "$1/package-lock.json" -nt "$1/node_modules" ]; then
      (cd "$1" && npm ci --no-audit --no-fund --loglevel=error)
      touch "$1/node_modules"
    fi
  fi
}

if [ -f client_web/package.json ]; then
  npm_install client_web
  (cd client_web && npm run --silent build)
fi
if [ "$want_services" = 1 ]; then
  npm_install tests/node
fi
