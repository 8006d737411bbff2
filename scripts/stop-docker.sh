#!/usr/bin/env bash
# Stops the dockerd that scripts/ensure-docker.sh started, and nothing else.
set -uo pipefail
cd "$(dirname "$0")/.."
pidfile=.kombify/dockerd/pid
[ -f "$pidfile" ] || exit 0
pid=$(cat "$pidfile")
rm -f "$pidfile"
kill "$pid" 2>/dev/null || exit 0
for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.5; done
kill -9 "$pid" 2>/dev/null || true
