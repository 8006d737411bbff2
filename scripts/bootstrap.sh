#!/usr/bin/env bash
# Creates .venv and installs kombify with its dev tools; re-installs only when pyproject.toml
# changed, so repeated runs of `make demo` / `make test` cost a second, not a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "kombify needs Python 3.11 or newer as \`$PY\`: install python3 (3.11+) or set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv || { echo "could not create .venv: install python3-venv (apt-get install python3-venv)" >&2; exit 1; }
fi
stamp=.venv/.kombify-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "==> installing kombify and its tools into .venv (first run takes a minute)"
  log=.venv/pip-install.log
  if ! { .venv/bin/python -m pip install --upgrade pip && .venv/bin/python -m pip install -e '.[dev]'; } >"$log" 2>&1; then
    tail -30 "$log" >&2
    echo "installing kombify's Python packages failed; full log: $log" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi
# gRPC stubs are generated from proto/, never committed.
.venv/bin/python -m kombify.workers.protogen >/dev/null
# The web dashboard the API serves at / (skipped, with a note, when Node.js is missing).
bash scripts/build-dashboard.sh
