#!/usr/bin/env bash
# The main job, from a fresh clone: install everything, start kombify (Temporal + worker +
# API), deploy a one-node homelab onto a simulated node, show its service answering, and print
# where to look. On a terminal it then keeps running until Ctrl-C; elsewhere (CI) it tears the
# demo down and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/ensure-sim-tools.sh
# Stop dockerd at the end only if this run started it (not one an earlier run left running).
before=$(cat .kombify/dockerd/pid 2>/dev/null || true)
scripts/ensure-docker.sh
started=$(cat .kombify/dockerd/pid 2>/dev/null || true)
[ "$started" = "$before" ] && started=""
export PATH="$PWD/.venv/bin:$PATH"
export KOMBIFY_HOME=${KOMBIFY_HOME:-$PWD/.kombify/demo}
mkdir -p "$KOMBIFY_HOME"
interactive=false
[ -t 0 ] && [ -t 1 ] && interactive=true

kombify server >"$KOMBIFY_HOME/server.out" 2>&1 &
server=$!
cleanup() {
  kill -INT "$server" 2>/dev/null && wait "$server" 2>/dev/null
  $interactive || [ -z "$started" ] || scripts/stop-docker.sh
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "kombify server (Temporal dev server, worker, API)"
for _ in $(seq 1 240); do
  grep -q "logs " "$KOMBIFY_HOME/server.out" 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$KOMBIFY_HOME/server.out"; exit 1; }
  sleep 0.5
done
cat "$KOMBIFY_HOME/server.out"

step "kombify status"
kombify status

step "kombify sim image build   (first time only: a Debian root filesystem, about a minute)"
kombify sim image build

example=docs/examples/rehearsal.yaml
step "kombify validate $example"
kombify validate "$example"

step "kombify apply $example --auto-approve"
kombify apply "$example" --auto-approve

step "kombify status rehearsal"
kombify status rehearsal

port=$(kombify sim info rehearsal --json | python3 -c \
  'import json,sys; n=json.load(sys.stdin)["nodes"][0]; print(n["ports"]["8080"])')
step "the service answers: curl http://127.0.0.1:$port/  (node box, port 8080)"
curl -fsS "http://127.0.0.1:$port/"

step "kombify apply again: nothing changes"
kombify apply "$example" --auto-approve

api=$(grep -E '^\s+API\s+http' "$KOMBIFY_HOME/server.out" | awk '{print $2}')
ui=$(grep -E 'Temporal UI' "$KOMBIFY_HOME/server.out" | awk '{print $3}')
cat <<EOT

Where to look:
  dashboard     $api/   (signing in needs an account: docs/dashboard.md)
  API docs      $api/docs
  Temporal UI   $ui   (filter: KombifyStack = "rehearsal")
  the node      kombify sim ssh rehearsal box
  its services  kombify status rehearsal
EOT

if $interactive; then
  printf '\nkombify keeps running; press Ctrl-C to stop it (the simulation stays: `kombify sim delete rehearsal`).\n'
  wait "$server"
else
  step "tearing the demo down (not on a terminal)"
  kombify destroy rehearsal --yes
  kombify sim delete rehearsal
fi
