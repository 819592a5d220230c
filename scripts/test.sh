#!/usr/bin/env bash
# Set up and run every test: installs PostgreSQL, Redis, nginx and Chromium from Debian when
# missing, the Python and npm packages, builds the browser client, then runs lint and pytest.
# The tests start their own PostgreSQL and Redis on loopback and fail if they cannot.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --services
.venv/bin/ruff check server storage tests bench
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
