#!/usr/bin/env bash
# Makes sure the browser tests and benchmarks/dashboard.py have Debian's Chromium at
# /usr/bin/chromium (Playwright drives it by that path; no browser is ever downloaded by
# `playwright install`). Installs the `chromium` package when it is missing and we are root on
# Debian/Ubuntu; otherwise says so and carries on (the browser tests then skip with that
# reason, or fail under CI=true / KOMBIFY_TESTS_NEED_DOCKER=1).
set -euo pipefail
CHROMIUM=/usr/bin/chromium
[ -x "$CHROMIUM" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "==> installing chromium (headless browser for the dashboard tests)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  [ -x "$CHROMIUM" ] || { echo "apt-get installed chromium but $CHROMIUM is missing" >&2; exit 1; }
else
  echo "the browser tests need Debian's Chromium at $CHROMIUM: apt-get install chromium" >&2
fi
