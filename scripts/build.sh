#!/usr/bin/env bash
# Builds everything the stack runs: the frontend bundle, the Worker wasm and the VM API.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
bash scripts/ensure-tools.sh
log "building the frontend (static/dist)"
node static/build.mjs
log "building the Worker (build/)"
worker-build --release
log "building the VM API"
cargo build -p vm-api ${VM_API_PROFILE:+--profile "$VM_API_PROFILE"}
