#!/usr/bin/env bash
# Shared by scripts/test.sh and scripts/demo.sh: make sure npm dependencies and redis-server are present.
# Sourced, not run. Installs only what is missing, so a second run costs nothing.

ensure_node_modules() {
  # npm ci when node_modules is missing or older than the lockfile (a fresh clone, or a changed lockfile).
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "==> npm ci" >&2
    # No `npm install` fallback: it would resolve versions anew and rewrite package-lock.json. A lockfile that
    # `npm ci` refuses is a bug to fix in the lockfile (test/packaging/production-install.test.ts installs from it).
    npm ci --no-audit --no-fund --loglevel=error >&2 || {
      echo "npm ci refused package-lock.json: it must match package.json. Fix it with" \
        "\`npm install --package-lock-only\` and commit the lockfile." >&2
      return 1
    }
  fi
}

# Debian packages the suite needs: redis-server (queues; `redis-server --sentinel` is the Sentinel of the failover
# test, so no redis-sentinel package), rsync (gitlab-ci-local copies the repo with it), promtool (checks
# deploy/prometheus/; package prometheus, about 19 MB to fetch and 25 s to install). Each argument is a command,
# or `command=package` when the package is named otherwise. Recommends are left out (prometheus would bring
# node-exporter and ipmitool along).
ensure_debian_packages() {
  local missing=()
  for entry in "$@"; do
    command -v "${entry%%=*}" >/dev/null 2>&1 || missing+=("${entry#*=}")
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
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}
