#!/usr/bin/env bash
# `make eval`: the evaluation harness (tests/eval/eval.mjs, docs/eval.md). With
# OPENROUTER_API_KEY set (or in .dev.vars) it builds each app request with real models
# (EVAL_MODELS or --models, comma-separated) and prints the results table; `--ci` runs the todo
# request against the scripted model instead (no key needed).
# Needs the stack built (`bash scripts/build.sh`, or `make build`); installs chromium with apt
# when it is missing, as the browser tests do. Arguments go to eval.mjs (`--help`).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
# The key `make dev` uses, when the environment has none (never printed; only the harness's
# metering proxy holds it).
if [ -z "${OPENROUTER_API_KEY:-}" ] && [ -f .dev.vars ]; then
  key="$(sed -n 's/^OPENROUTER_API_KEY=//p' .dev.vars | tail -n 1 | sed 's/^"\(.*\)"$/\1/')"
  [ -z "$key" ] || export OPENROUTER_API_KEY="$key"
  unset key
fi
for needed in build/index.js static/dist/index.html target/debug/vm-api; do
  [ -e "$needed" ] || die "$needed is missing: run \`make build\` first"
done
if [ ! -x /usr/bin/chromium ]; then
  log "installing chromium (apt)"
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null || die "could not install chromium"
fi
[ -d node_modules/playwright-core ] || npm install --no-audit --no-fund >/dev/null || die "npm install failed"
log "the harness's own unit tests"
node --test --test-reporter=dot tests/eval/units.test.mjs || die "the eval harness's unit tests failed"
log "building the stack binary"
cargo build -q -p e2e --bin stack || die "cargo build of the stack binary failed"
STACK_PREBUILT=1 exec node tests/eval/eval.mjs "$@"
