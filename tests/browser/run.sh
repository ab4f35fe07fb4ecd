#!/usr/bin/env bash
# Runs the browser tests (tests/browser/*.test.mjs) against the real local stack with Debian's
# chromium, installing chromium with apt when it is missing. Needs `bash scripts/build.sh` first
# (static/dist, build/ and target/debug/vm-api). Failure screenshots and consoles go to
# test-artifacts/browser/. Ends with one line: `N passed, M failed`.
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
cd "$ROOT"
if [ ! -x /usr/bin/chromium ]; then
  log "installing chromium (apt)"
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null || die "could not install chromium"
fi
[ -d node_modules/playwright-core ] || npm install --no-audit --no-fund >/dev/null || die "npm install failed"
log "building the stack binary"
cargo build -q -p e2e --bin stack || die "cargo build of the stack binary failed"
mkdir -p test-artifacts/browser
out="test-artifacts/browser/run.log"
STACK_PREBUILT=1 node --test --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$out.tap" tests/browser/*.test.mjs | tee "$out"
status=${PIPESTATUS[0]}
pass=$(grep -c '^ok ' "$out.tap" || true)
skip=$(grep -c '^ok .*# SKIP' "$out.tap" || true)
fail=$(grep -c '^not ok ' "$out.tap" || true)
echo "$((pass - skip)) passed, $fail failed, $skip skipped"
exit "$status"
