#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs, starts the Docker engine if
# it is stopped, runs ruff, mypy and pytest (which starts Temporal and PostgreSQL itself), and
# stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/ensure-postgres.sh
scripts/ensure-sim-tools.sh
scripts/ensure-browser.sh
# Stop dockerd at the end only if this run started it (not one an earlier run left running).
before=$(cat .kombify/dockerd/pid 2>/dev/null || true)
scripts/ensure-docker.sh
started=$(cat .kombify/dockerd/pid 2>/dev/null || true)
[ "$started" = "$before" ] && started=""
trap '[ -z "$started" ] || scripts/stop-docker.sh' EXIT
echo "==> ruff"
.venv/bin/ruff check kombify tests benchmarks
echo "==> mypy (strict)"
.venv/bin/mypy
echo "==> pytest"
KOMBIFY_TESTS_NEED_DOCKER=1 .venv/bin/pytest "$@"
