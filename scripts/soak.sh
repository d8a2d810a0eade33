#!/usr/bin/env bash
# The README's soak command (`npm run soak -- [--duration SECONDS] ...`): installs what it needs, then runs
# bench/soak.ts, which starts its own redis-server, the GitLab simulator and the bot's processes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup-env.sh
ensure_node_modules
ensure_debian_packages redis-server
exec npx tsx bench/soak.ts "$@"
