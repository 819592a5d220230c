#!/usr/bin/env bash
# Set up and start Palimpsest on the embedded default (SQLite file, in-process bus) at
# http://127.0.0.1:8000. Extra arguments go to `palimpsest serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/palimpsest serve "$@"
