#!/usr/bin/env bash
# Makes sure KombiSim can build its images offline: debootstrap (node image root filesystem)
# and busybox-static (the kombify-test/httpd image); and that the gateway tests have
# redis-server (rate limits shared by two API instances), and that `kombify graph --format svg`
# has graphviz's `dot`. Installs them when missing and we are
# root on Debian/Ubuntu; otherwise says what is missing and carries on (the tests that need
# them then fail with that message).
set -euo pipefail
missing=()
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if ! { command -v busybox >/dev/null 2>&1 && ! ldd "$(command -v busybox)" >/dev/null 2>&1; }; then
  missing+=(busybox-static)
fi
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v dot >/dev/null 2>&1 || missing+=(graphviz)
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "==> installing ${missing[*]} (KombiSim image tools, redis-server for the tests, graphviz)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "KombiSim and the tests need ${missing[*]}: apt-get install ${missing[*]}" >&2
fi
