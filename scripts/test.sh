#!/usr/bin/env bash
# `make test`: every check and every test, in order of cost. Exits non-zero on any failure.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
start=$(date +%s)

NEED_CHROMIUM=1 bash scripts/ensure-tools.sh

log "cargo fmt --check"
cargo fmt --all -- --check

log "clippy (native)"
cargo clippy --locked -p open-replit-core -p azure-native -p vm-api -p e2e -p bench --all-targets -- -D warnings

log "clippy (wasm32)"
cargo clippy --locked --target wasm32-unknown-unknown -p open-replit -p open-replit-core -- -D warnings

log "frontend type check"
tsc -p static/tsconfig.json

bash scripts/build.sh

log "wrangler deploy --dry-run (validates the config and bundle offline)"
OPEN_REPLIT_PREBUILT=1 wrangler deploy --dry-run --outdir "$(mktemp -d)" > /tmp/open-replit-dry-run.log 2>&1 \
  || { cat /tmp/open-replit-dry-run.log; die "wrangler deploy --dry-run failed"; }

log "templates: build, test and run each one for real"
bash scripts/test-templates.sh

log "unit, service and end-to-end tests"
cargo test --locked -p open-replit-core -p azure-native -p vm-api -p e2e

log "browser tests (playwright-core + Debian chromium)"
bash tests/browser/run.sh

log "evaluation harness, CI mode (scripted todo app + a broken one it must catch)"
bash scripts/eval.sh --ci

log "all green in $(( $(date +%s) - start )) s"
