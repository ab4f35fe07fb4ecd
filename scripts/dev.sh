#!/usr/bin/env bash
# `make dev`: installs what is missing, builds, starts Azurite, the VM API and `wrangler dev`
# on 127.0.0.1, waits for each health check and prints the URL.
#
# Stopping: Ctrl-C, SIGTERM or SIGHUP (to the process group or to this script alone), a service
# exiting, or even SIGKILL of this script, stop every service and everything they started
# (dev servers in sandboxes included). Each service is the leader of its own session, and a
# watcher in yet another session stops those sessions once this script is gone, however it went.
#
# Environment: PORT, VM_API_PORT, AZURITE_PORT, PREVIEW_PORT, INSPECTOR_PORT (wrangler's
# inspector; wrangler picks one when unset), OPEN_REPLIT_STATE_DIR (default .state),
# OPEN_REPLIT_DEV_VARS (default .dev.vars), OPEN_REPLIT_PREBUILT=1 (use the existing build
# instead of running scripts/build.sh), STOP_GRACE_S (seconds between SIGTERM and SIGKILL, 5).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

PORT="${PORT:-8787}"
VM_API_PORT="${VM_API_PORT:-8000}"
AZURITE_PORT="${AZURITE_PORT:-10000}"
PREVIEW_PORT="${PREVIEW_PORT:-8001}"
STATE="${OPEN_REPLIT_STATE_DIR:-$ROOT/.state}"
DEV_VARS="${OPEN_REPLIT_DEV_VARS:-$ROOT/.dev.vars}"
mkdir -p "$STATE/azurite" "$STATE/vm-api" "$STATE/logs"

if [ -n "${OPEN_REPLIT_PREBUILT:-}" ] && [ -f build/index.js ] && [ -f static/dist/index.html ] \
  && [ -x target/debug/vm-api ]; then
  log "OPEN_REPLIT_PREBUILT is set: using the existing build"
else
  bash scripts/build.sh
fi

# .dev.vars holds secrets for wrangler; create it from the example on first run.
if [ ! -f "$DEV_VARS" ]; then
  cp .dev.vars.example "$DEV_VARS"
  chmod 600 "$DEV_VARS"
  log "created $DEV_VARS from .dev.vars.example (git-ignored)"
fi
devvar() { sed -n "s/^$1=//p" "$DEV_VARS" | tail -n 1; }
# The VM API secret is generated once and kept in .dev.vars, where wrangler reads it too.
if [ -z "$(devvar VM_API_SECRET)" ]; then
  secret="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  grep -v '^VM_API_SECRET=' "$DEV_VARS" > "$DEV_VARS.tmp" || true
  echo "VM_API_SECRET=$secret" >> "$DEV_VARS.tmp"
  mv "$DEV_VARS.tmp" "$DEV_VARS"
  chmod 600 "$DEV_VARS"
fi
# So is the key that seals people's own OpenRouter keys at rest.
if [ -z "$(devvar KEY_ENCRYPTION_SECRET)" ]; then
  secret="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  grep -v '^KEY_ENCRYPTION_SECRET=' "$DEV_VARS" > "$DEV_VARS.tmp" || true
  echo "KEY_ENCRYPTION_SECRET=$secret" >> "$DEV_VARS.tmp"
  mv "$DEV_VARS.tmp" "$DEV_VARS"
  chmod 600 "$DEV_VARS"
fi

# The watcher reads from a pipe whose write end only this script holds: the services report
# their session ids into it, and when it closes (this script exiting by any means, SIGKILL
# included) the watcher stops those sessions. It runs in its own session, out of reach of a
# signal to this script's process group.
# shellcheck disable=SC2016 # $1 is the inner bash's
exec {watch_fd}> >(exec setsid bash -c 'source "$1"; session_watcher' watcher "$ROOT/scripts/lib.sh")
watcher=$!
pids=()
stopping=""
# shellcheck disable=SC2317 # run by the traps
cleanup() {
  [ -z "$stopping" ] || return 0
  stopping=1
  # Nothing may cut the stop short. (Under make, SIGTERM to the process group reaches this
  # script twice: make forwards it. The second one used to kill the script before its SIGKILL
  # round, leaving wrangler and workerd, and at times Azurite and the VM API, running.)
  trap '' INT TERM HUP QUIT
  log "stopping"
  exec {watch_fd}>&-
  if ! wait "$watcher"; then
    # The watcher failed or was killed: stop the sessions from here.
    local sessions="" p
    for p in "${pids[@]}"; do sessions+=" $(session_key "$p")"; done
    stop_sessions "$sessions" || true
  fi
  log "stopped"
}
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
trap 'cleanup; exit 129' HUP
trap 'cleanup; exit 131' QUIT
trap cleanup EXIT

# start NAME CMD...: runs CMD as the leader of a new session (and process group), logging to
# $STATE/logs/NAME.log. CMD reports its own session id to the watcher before it runs, so a
# service is never missed, even if this script dies the moment it forked. The watcher's pipe
# is passed on only as fd 3, and closed before CMD runs: no service holds it open. Disowned:
# the watcher stops services, and bash would only add a "Killed" line per SIGKILLed one.
start() {
  local name="$1"; shift
  setsid bash -c 'echo "$$" >&3 && exec 3>&- && exec "$@"' "$name" "$@" \
    3>&"$watch_fd" {watch_fd}>&- > "$STATE/logs/$name.log" 2>&1 < /dev/null &
  pids+=("$!")
  disown "$!"
}
wait_for() { # NAME URL SECONDS: waits for the service started last to answer at URL
  local deadline=$(( SECONDS + $3 )) pid="${pids[-1]}"
  while [ "$SECONDS" -lt "$deadline" ]; do
    if curl -s -o /dev/null --max-time 2 "$2"; then log "$1 is up: $2"; return 0; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  tail -n 50 "$STATE/logs/$1.log" >&2 || true
  die "$1 did not answer at $2 within $3 s (log: $STATE/logs/$1.log)"
}

worker_vars=(--var "VM_API_URL:http://127.0.0.1:$VM_API_PORT")
if [ -z "$(devvar AZURE_STORAGE_CONNECTION_STRING)" ]; then
  # Without --disableTelemetry, Azurite that has served a request ignores SIGTERM (its
  # telemetry client keeps it alive): every stop would wait for the SIGKILL.
  start azurite azurite-blob --blobHost 127.0.0.1 --blobPort "$AZURITE_PORT" --location "$STATE/azurite" \
    --disableTelemetry
  wait_for azurite "http://127.0.0.1:$AZURITE_PORT/devstoreaccount1" 60
  # Azurite's well-known development account; not a secret.
  worker_vars+=(--var "AZURE_STORAGE_CONNECTION_STRING:UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://127.0.0.1:$AZURITE_PORT")
else
  log "using AZURE_STORAGE_CONNECTION_STRING from $DEV_VARS (Azurite not started)"
fi

worker_vars+=(--var "PREVIEW_URL:http://{id}.preview.localhost:$PREVIEW_PORT/")
# Published apps get their own host on the Worker's port (*.localhost resolves to loopback).
worker_vars+=(--var "PUBLISH_URL:http://{slug}.apps.localhost:$PORT/")
# wrangler reads .dev.vars next to wrangler.toml by itself; another file must be named.
[ "$DEV_VARS" -ef "$ROOT/.dev.vars" ] || worker_vars+=(--env-file "$DEV_VARS")
[ -z "${INSPECTOR_PORT:-}" ] || worker_vars+=(--inspector-port "$INSPECTOR_PORT")
az_conn="$(devvar AZURE_STORAGE_CONNECTION_STRING)"
[ -n "$az_conn" ] || az_conn="UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://127.0.0.1:$AZURITE_PORT"
VM_API_SECRET="$(devvar VM_API_SECRET)" AZURE_STORAGE_CONNECTION_STRING="$az_conn" \
  start vm-api "$ROOT/target/debug/vm-api" \
  --host 127.0.0.1 --port "$VM_API_PORT" --preview-port "$PREVIEW_PORT" --data-dir "$STATE/vm-api"
wait_for vm-api "http://127.0.0.1:$VM_API_PORT/health" 60

OPEN_REPLIT_PREBUILT=1 start wrangler wrangler dev --ip 127.0.0.1 --port "$PORT" \
  --persist-to "$STATE/wrangler" --show-interactive-dev-session=false "${worker_vars[@]}"
wait_for wrangler "http://127.0.0.1:$PORT/api/config" 180

if curl -s --max-time 10 "http://127.0.0.1:$PORT/api/config" | grep -q '"configured":false'; then
  log "no LLM configured: set OPENROUTER_API_KEY (or LLM_BASE_URL for Ollama/llama.cpp/vLLM) in $DEV_VARS and rerun"
fi
printf '\n  open-replit is running:  \033[1mhttp://127.0.0.1:%s/\033[0m\n  logs: %s/logs/   stop: Ctrl-C\n\n' "$PORT" "$STATE"
# Until a service exits. (A signal ends the wait at once and runs its trap.)
while :; do
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || break 2; done
  sleep 1 {watch_fd}>&- &
  wait "$!" || true
done
log "a service exited on its own; see $STATE/logs/ (stopping the others)"
exit 1
