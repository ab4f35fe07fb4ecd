#!/usr/bin/env bash
# wrangler's [build] command: compiles the Worker to wasm with worker-build into build/.
# The test harness builds once and sets OPEN_REPLIT_PREBUILT=1 so parallel `wrangler dev`
# instances do not rebuild over each other.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
if [ -n "${OPEN_REPLIT_PREBUILT:-}" ] && [ -f build/index.js ]; then
  exit 0
fi
worker-build --release
