#!/usr/bin/env bash
# Makes sure a Docker engine answers. Starts dockerd if it is installed but stopped (and records
# that, so scripts/stop-docker.sh stops only an engine we started); installs docker.io when
# missing and we are root on Debian/Ubuntu.
set -euo pipefail
cd "$(dirname "$0")/.."
state=.kombify/dockerd
mkdir -p "$state"
if docker info >/dev/null 2>&1; then exit 0; fi
if ! command -v dockerd >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing docker.io (Docker engine)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
  else
    echo "no Docker engine: install one (apt-get install docker.io) or set DOCKER_HOST" >&2
    exit 1
  fi
fi
echo "==> starting dockerd"
nohup dockerd >"$state/dockerd.log" 2>&1 &
echo $! >"$state/pid"
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then exit 0; fi
  sleep 0.5
done
echo "dockerd did not answer within 30 s; see $state/dockerd.log" >&2
tail -5 "$state/dockerd.log" >&2
exit 1
