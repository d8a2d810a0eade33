#!/usr/bin/env bash
# Shared by scripts/test.sh and scripts/demo.sh: make sure npm dependencies and redis-server are present.
# Sourced, not run. Installs only what is missing, so a second run costs nothing.

ensure_node_modules() {
  # npm ci when node_modules is missing or older than the lockfile (a fresh clone, or a changed lockfile).
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "==> npm ci" >&2
    npm ci --no-audit --no-fund --loglevel=error >&2
  fi
}

ensure_redis_server() {
  if command -v redis-server >/dev/null 2>&1; then return 0; fi
  echo "==> installing redis-server (Debian package)" >&2
  local sudo=""
  if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "redis-server is missing and this user cannot install it: apt-get install -y redis-server" >&2
      return 1
    fi
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >&2
}
