#!/usr/bin/env bash
# The README's test command (`npm test`): installs what it needs, starts a private redis-server,
# type-checks, lints and runs the whole suite. Nothing has to be run before it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup-env.sh
# Nothing the README's commands run may change a tracked file (an `npm install` would rewrite package-lock.json):
# the tracked files' state now, compared at the end. Outside a git checkout there is nothing to compare.
tracked_state() { git --no-optional-locks diff HEAD --binary 2>/dev/null | sha256sum; }
tracked_before=""
git rev-parse --is-inside-work-tree >/dev/null 2>&1 && tracked_before=$(tracked_state)
ensure_node_modules
ensure_debian_packages redis-server rsync curl git promtool=prometheus

# A private redis-server on a free port, removed on exit (tests use unique key prefixes inside it).
redis_dir=$(mktemp -d)
port=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$redis_dir" --daemonize yes \
  --pidfile "$redis_dir/redis.pid" --logfile "$redis_dir/redis.log"
cleanup() { kill "$(cat "$redis_dir/redis.pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$redis_dir"; }
trap cleanup EXIT
for _ in $(seq 1 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
export REDIS_URL="redis://127.0.0.1:$port"

echo "==> type-check" >&2
npx tsc --noEmit -p tsconfig.json
echo "==> lint" >&2
npx biome lint --error-on-warnings
echo "==> tests" >&2
# Node 20's test runner does not expand globs: pass the file list. Filter with TEST_FILES='test/x.test.ts ...'.
files=${TEST_FILES:-$(find test -name '*.test.ts' | sort)}
# shellcheck disable=SC2086
node --import tsx --test --test-concurrency=2 $files
if [ -n "$tracked_before" ] && [ "$(tracked_state)" != "$tracked_before" ]; then
  echo "the run changed tracked files (or they were edited meanwhile); nothing it runs may:" >&2
  git --no-optional-locks status --short --untracked-files=no >&2
  exit 1
fi
