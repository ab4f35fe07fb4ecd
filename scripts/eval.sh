#!/usr/bin/env bash
# `make eval`: the evaluation harness (tests/eval/eval.mjs). With OPENROUTER_API_KEY set it
# builds each app request with real models (EVAL_MODELS or --models, comma-separated) and prints
# the results table; `--ci` runs the todo request against the scripted model instead (no key).
# Needs the stack built (`bash scripts/build.sh`, or `make build`); installs chromium with apt
# when it is missing, as the browser tests do. Arguments go to eval.mjs (`--help`).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
for needed in build/index.js static/dist/index.html target/debug/vm-api; do
  [ -e "$needed" ] || die "$needed is missing: run \`make build\` first"
done
if [ ! -x /usr/bin/chromium ]; then
  log "installing chromium (apt)"
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null || die "could not install chromium"
fi
[ -d node_modules/playwright-core ] || npm install --no-audit --no-fund >/dev/null || die "npm install failed"
log "building the stack binary"
cargo build -q -p e2e --bin stack || die "cargo build of the stack binary failed"
STACK_PREBUILT=1 exec node tests/eval/eval.mjs "$@"
