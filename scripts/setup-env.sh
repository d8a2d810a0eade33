#!/usr/bin/env bash
# Shared by scripts/test.sh and scripts/demo.sh: make sure npm dependencies and redis-server are present.
# Sourced, not run. Installs only what is missing, so a second run costs nothing.

ensure_node_modules() {
  # npm ci when node_modules is missing or older than the lockfile (a fresh clone, or a changed lockfile).
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "==> npm ci" >&2
    # The lockfile can lack other platforms' optional binaries (a registry mirror without them answers 404), which
    # `npm ci` refuses as "missing from lock file"; `npm install` then installs the same locked versions.
    npm ci --no-audit --no-fund --loglevel=error >&2 2>/dev/null || {
      echo "==> npm ci refused the lockfile; npm install" >&2
      npm install --no-audit --no-fund --loglevel=error >&2
    }
  fi
}

# Debian packages the suite needs: redis-server (queues), rsync (gitlab-ci-local copies the repo with it).
ensure_debian_packages() {
  local missing=()
  for pkg in "$@"; do
    command -v "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "==> installing ${missing[*]} (Debian packages)" >&2
  local sudo=""
  if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "missing ${missing[*]} and this user cannot install them: apt-get install -y ${missing[*]}" >&2
      return 1
    fi
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
}
