#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs, starts the Docker engine if
# it is stopped, runs ruff, mypy and pytest (which starts Temporal and PostgreSQL itself), and
# stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/ensure-postgres.sh
scripts/ensure-sim-tools.sh
scripts/ensure-docker.sh
trap 'scripts/stop-docker.sh' EXIT
echo "==> ruff"
.venv/bin/ruff check kombify tests benchmarks
echo "==> mypy (strict)"
.venv/bin/mypy
echo "==> pytest"
.venv/bin/pytest "$@"
