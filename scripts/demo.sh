#!/usr/bin/env bash
# The README's demo command (`npm run demo`): installs what it needs, then plays the whole trust workflow
# against the bundled GitLab simulator and a private redis-server, printing what a committer would see.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup-env.sh
ensure_node_modules
ensure_debian_packages redis-server
exec npx tsx src/cli.ts demo "$@"
