#!/usr/bin/env bash
# The tests start a throwaway PostgreSQL themselves (initdb in a temp dir); this only makes
# sure the server binaries are installed.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "==> installing postgresql (for the database tests)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
else
  echo "PostgreSQL server binaries missing: apt-get install postgresql" >&2
  exit 1
fi
