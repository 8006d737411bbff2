#!/usr/bin/env bash
# The main job, from a fresh clone: install, start kombify (Temporal + worker + API), show it
# working on an example homelab, then keep running until Ctrl-C (or stop at once when not on a
# terminal, e.g. in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
export KOMBIFY_HOME=${KOMBIFY_HOME:-$PWD/.kombify/demo}
mkdir -p "$KOMBIFY_HOME"

kombify server >"$KOMBIFY_HOME/server.out" 2>&1 &
server=$!
stop() { kill -INT "$server" 2>/dev/null && wait "$server" 2>/dev/null; true; }
trap stop EXIT
trap 'exit 130' INT TERM

printf '==> starting kombify (Temporal dev server, worker, API)\n'
for _ in $(seq 1 240); do
  grep -q "logs " "$KOMBIFY_HOME/server.out" 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$KOMBIFY_HOME/server.out"; exit 1; }
  sleep 0.5
done
cat "$KOMBIFY_HOME/server.out"

printf '\n==> kombify status\n'
kombify status

example=docs/examples/rehearsal.yaml
printf '\n==> kombify validate %s\n' "$example"
kombify validate "$example"
printf '\n==> kombify stacks create %s\n' "$example"
kombify stacks delete rehearsal >/dev/null 2>&1 || true
kombify stacks create "$example"
kombify stacks list

if [ -t 0 ]; then
  printf '\nkombify keeps running; press Ctrl-C to stop it.\n'
  wait "$server"
fi
