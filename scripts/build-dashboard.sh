#!/usr/bin/env bash
# Builds the web dashboard (dashboard/, SvelteKit) into dashboard/build/, which the API serves
# at /. `npm ci` runs only when package-lock.json changed, the build only when a source did,
# so repeated runs of `make demo` / `make test` cost a second. Without Node.js and npm it says
# so and exits 0: the API then serves a page at / that says how to build the dashboard.
set -euo pipefail
cd "$(dirname "$0")/../dashboard"
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "==> dashboard not built: Node.js 20+ and npm are not installed (apt-get install nodejs npm); the API runs without it"
  exit 0
fi
stamps=node_modules/.kombify-stamps
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat "$stamps/npm-ci" 2>/dev/null)" != "$lock_hash" ]; then
  echo "==> installing the dashboard's npm packages (npm ci)"
  log=$(mktemp)
  if ! npm ci --no-audit --no-fund >"$log" 2>&1; then
    tail -30 "$log" >&2
    echo "installing the dashboard's npm packages failed (npm ci in dashboard/); log above" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
  mkdir -p "$stamps"
  echo "$lock_hash" > "$stamps/npm-ci"
fi
# Every file the build reads: sources, static files, configuration, the lock.
src_hash=$(
  { find src static -type f -print0 | sort -z | xargs -0 sha256sum
    sha256sum package.json package-lock.json svelte.config.js vite.config.ts tsconfig.json
  } | sha256sum | cut -d' ' -f1
)
if [ "$(cat "$stamps/build" 2>/dev/null)" != "$src_hash" ] || [ ! -f build/index.html ]; then
  echo "==> building the dashboard (npm run build)"
  log=$(mktemp)
  if ! npm run build >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "building the dashboard failed (npm run build in dashboard/); log above" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
  echo "$src_hash" > "$stamps/build"
fi
