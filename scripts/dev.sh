#!/usr/bin/env bash
# `make dev`: installs what is missing, builds, starts Azurite, the VM API and `wrangler dev`
# on 127.0.0.1, waits for each health check and prints the URL. Ctrl-C stops every child.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

PORT="${PORT:-8787}"
VM_API_PORT="${VM_API_PORT:-8000}"
AZURITE_PORT="${AZURITE_PORT:-10000}"
STATE="$ROOT/.state"
mkdir -p "$STATE/azurite" "$STATE/vm-api" "$STATE/logs"

bash scripts/build.sh

# .dev.vars holds secrets for wrangler; create it from the example on first run.
if [ ! -f .dev.vars ]; then
  cp .dev.vars.example .dev.vars
  chmod 600 .dev.vars
  log "created .dev.vars from .dev.vars.example (git-ignored)"
fi
devvar() { sed -n "s/^$1=//p" .dev.vars | tail -n 1; }
# The VM API secret is generated once and kept in .dev.vars, where wrangler reads it too.
if [ -z "$(devvar VM_API_SECRET)" ]; then
  secret="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  grep -v '^VM_API_SECRET=' .dev.vars > .dev.vars.tmp || true
  echo "VM_API_SECRET=$secret" >> .dev.vars.tmp
  mv .dev.vars.tmp .dev.vars
  chmod 600 .dev.vars
fi

pids=()
cleanup() {
  trap - INT TERM EXIT
  log "stopping"
  for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
  sleep 1
  for p in "${pids[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
}
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

# start NAME CMD...: runs CMD in its own process group, logging to .state/logs/NAME.log
start() {
  local name="$1"; shift
  setsid "$@" > "$STATE/logs/$name.log" 2>&1 < /dev/null &
  pids+=("$!")
}
wait_for() { # NAME URL
  for _ in $(seq 1 300); do
    if curl -s -o /dev/null "$2"; then log "$1 is up: $2"; return 0; fi
    sleep 0.2
  done
  tail -n 50 "$STATE/logs/$1.log" >&2 || true
  die "$1 did not answer at $2 (log: .state/logs/$1.log)"
}

worker_vars=(--var "VM_API_URL:http://127.0.0.1:$VM_API_PORT")
if [ -z "$(devvar AZURE_STORAGE_CONNECTION_STRING)" ]; then
  start azurite azurite-blob --blobHost 127.0.0.1 --blobPort "$AZURITE_PORT" --location "$STATE/azurite"
  wait_for azurite "http://127.0.0.1:$AZURITE_PORT/devstoreaccount1"
  # Azurite's well-known development account; not a secret.
  worker_vars+=(--var "AZURE_STORAGE_CONNECTION_STRING:UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://127.0.0.1:$AZURITE_PORT")
else
  log "using AZURE_STORAGE_CONNECTION_STRING from .dev.vars (Azurite not started)"
fi

PREVIEW_PORT="${PREVIEW_PORT:-8001}"
worker_vars+=(--var "PREVIEW_URL:http://{id}.preview.localhost:$PREVIEW_PORT/")
az_conn="$(devvar AZURE_STORAGE_CONNECTION_STRING)"
[ -n "$az_conn" ] || az_conn="UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://127.0.0.1:$AZURITE_PORT"
VM_API_SECRET="$(devvar VM_API_SECRET)" AZURE_STORAGE_CONNECTION_STRING="$az_conn" \
  start vm-api "$ROOT/target/debug/vm-api" \
  --host 127.0.0.1 --port "$VM_API_PORT" --preview-port "$PREVIEW_PORT" --data-dir "$STATE/vm-api"
wait_for vm-api "http://127.0.0.1:$VM_API_PORT/health"

OPEN_REPLIT_PREBUILT=1 start wrangler wrangler dev --ip 127.0.0.1 --port "$PORT" \
  --persist-to "$STATE/wrangler" --show-interactive-dev-session=false "${worker_vars[@]}"
wait_for wrangler "http://127.0.0.1:$PORT/api/config"

if curl -s "http://127.0.0.1:$PORT/api/config" | grep -q '"configured":false'; then
  log "no LLM configured: set OPENROUTER_API_KEY (or LLM_BASE_URL for Ollama/llama.cpp/vLLM) in .dev.vars and rerun"
fi
printf '\n  open-replit is running:  \033[1mhttp://127.0.0.1:%s/\033[0m\n  logs: .state/logs/   stop: Ctrl-C\n\n' "$PORT"
wait -n "${pids[@]}" || true
log "a service exited on its own; see .state/logs/ (stopping the others)"
