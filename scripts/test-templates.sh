#!/usr/bin/env bash
# Builds and tests every app template for real, the way the agent will use it: compose the template
# into a temp dir, install (npm ci / venv + pip, through shared caches), run the checks its
# template.json lists, start its dev processes on free ports and probe them (health, the /api proxy,
# a preview host name, the HMR WebSocket). Kills everything it started on exit.
#
#   scripts/test-templates.sh                 # all templates
#   scripts/test-templates.sh fullstack       # just some
#   KEEP_WORK=1 scripts/test-templates.sh     # keep the temp dir for inspection
#
# Caches: NPM_CACHE (default .state/cache/npm) and PIP_CACHE (default .state/cache/pip), both
# git-ignored; a warm run installs nothing from the network.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TEMPLATES_DIR="$ROOT/templates"
NPM_CACHE="${NPM_CACHE:-$ROOT/.state/cache/npm}"
PIP_CACHE="${PIP_CACHE:-$ROOT/.state/cache/pip}"
PYTHON="${PYTHON:-python3}"
READY_TIMEOUT="${READY_TIMEOUT:-60}"
mkdir -p "$NPM_CACHE" "$PIP_CACHE"

T0="$EPOCHREALTIME"
elapsed() { awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%6.1fs", b - a }'; }
log() { printf '\033[1;34m==>\033[0m %s %s\n' "$(elapsed)" "$*" >&2; }
warn() { printf '\033[1;31m!!\033[0m %s %s\n' "$(elapsed)" "$*" >&2; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/test-templates.XXXXXX")"
PIDS=()

# Ends the dev processes started so far (each template's subshell calls this too, on its own exit).
stop_procs() {
  local pid
  for pid in "${PIDS[@]}"; do
    # Each dev process was started with setsid, so its pid is its process group: this also ends
    # the children it spawned (vite's workers, uvicorn's reloader child).
    kill -TERM -- "-$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 30); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  PIDS=()
}

cleanup() {
  stop_procs
  if [[ -n "${KEEP_WORK:-}" ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Runs a command, its output to a log file; on failure prints the log's tail and returns non-zero.
run_logged() {
  local name="$1" dir="$2"; shift 2
  local logf="$WORK/logs/$name.log"
  local t0=$SECONDS
  if (cd "$dir" && "$@") >"$logf" 2>&1; then
    log "  ok   $name ($((SECONDS - t0)) s)"
  else
    warn "  FAIL $name; last lines of $logf:"
    tail -n 40 "$logf" >&2
    return 1
  fi
}

# Reads template.json with Python (always present: the backend needs it) and prints rows for the
# shell, fields split by US (\x1f): not tab, which `read` treats as whitespace and would merge
# empty fields. $1: manifest, $2: what (install | check | dev | compose | preview).
manifest() {
  "$PYTHON" - "$1" "$2" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
def row(*fields):
    print("\x1f".join(str(f) for f in fields))
what = sys.argv[2]
if what == "compose":
    for dest, src in m.get("compose", {}).items():
        row(dest, src)
elif what == "preview":
    print(m.get("preview", ""))
elif what == "install":
    for name, e in m.get("install", {}).items():
        row(name, e["cwd"])
elif what == "check":
    for e in m.get("check", []):
        row(e["name"], e["cwd"], e["command"])
elif what == "publish_build":
    for e in m.get("publish", {}).get("build", []):
        row(e.get("cwd", "."), e["command"])
elif what == "publish_static":
    print(m.get("publish", {}).get("static_dir", ""))
elif what == "publish_backend":
    b = m.get("publish", {}).get("backend")
    if b:
        row(b.get("cwd", "."), b.get("port_env", "PORT"), b["health_path"], b["command"])
elif what == "dev":
    # Processes another depends on start first.
    dev = m.get("dev", {})
    order = sorted(dev, key=lambda n: len(dev[n].get("depends_on", [])))
    for name in order:
        e = dev[name]
        env = " ".join(f"{k}={v}" for k, v in e.get("env", {}).items())
        row(name, e["cwd"], e.get("port_env", "PORT"), e.get("ready_path", "/"), env, e["command"])
PY
}

# Copies a template directory's files (no build output, no manifest) into $2.
copy_tree() {
  mkdir -p "$2"
  tar -C "$1" -cf - \
    --exclude=./template.json --exclude=node_modules --exclude=dist --exclude=.venv \
    --exclude=__pycache__ --exclude=.pytest_cache --exclude='*.tsbuildinfo' --exclude='data/*.db' \
    . | tar -C "$2" -xf -
}

# Composes template $1 into $2: first each component of "compose", then the template's own files.
compose() {
  local src="$TEMPLATES_DIR/$1" dest="$2" sub from
  mkdir -p "$dest"
  while IFS=$'\x1f' read -r sub from; do
    [[ -n "$sub" ]] || continue
    copy_tree "$src/$from" "$dest/$sub"
  done < <(manifest "$src/template.json" compose)
  copy_tree "$src" "$dest"
}

install_deps() {
  local tname="$1" app="$2" name cwd dir
  while IFS=$'\x1f' read -r name cwd; do
    dir="$app/$cwd"
    if [[ -f "$dir/package.json" ]]; then
      # The lockfile must carry no registry URLs (the committed files never name a registry host).
      if grep -q '"resolved"' "$dir/package-lock.json"; then
        warn "  $cwd/package-lock.json has \"resolved\" URLs; regenerate it with omit-lockfile-registry-resolved=true"
        return 1
      fi
      run_logged "$tname.install.$name" "$dir" \
        npm ci --prefer-offline --no-audit --no-fund --cache "$NPM_CACHE"
    elif [[ -f "$dir/requirements.txt" ]]; then
      # A wheelhouse per requirements.txt content, filled once through the pip cache; installing
      # from it is offline and, with a venv without its own pip, takes ~3 s instead of ~15 s.
      local wheels="$PIP_CACHE/wheelhouse/$(sha256sum "$dir/requirements.txt" | cut -c1-16)"
      if [[ ! -f "$wheels/.complete" ]]; then
        run_logged "$tname.wheelhouse.$name" "$dir" bash -c \
          "'$PYTHON' -m pip wheel --disable-pip-version-check --cache-dir '$PIP_CACHE' -w '$wheels' -r requirements.txt && touch '$wheels/.complete'"
      fi
      run_logged "$tname.install.$name" "$dir" bash -c \
        "'$PYTHON' -m venv --without-pip .venv && '$PYTHON' -m pip --python .venv/bin/python install --disable-pip-version-check --no-compile --no-index --find-links '$wheels' -r requirements.txt"
    else
      warn "  install entry $name: neither package.json nor requirements.txt in $cwd"; return 1
    fi
  done < <(manifest "$TEMPLATES_DIR/$tname/template.json" install)
}

run_checks() {
  local tname="$1" app="$2" name cwd cmd
  while IFS=$'\x1f' read -r name cwd cmd; do
    run_logged "$tname.check.$name" "$app/$cwd" bash -c "$cmd"
  done < <(manifest "$TEMPLATES_DIR/$tname/template.json" check)
}

wait_ready() {
  local url="$1" pid="$2" logf="$3" deadline=$((SECONDS + READY_TIMEOUT))
  until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      warn "  process exited before $url answered; last lines of $logf:"; tail -n 40 "$logf" >&2; return 1
    fi
    if ((SECONDS > deadline)); then
      warn "  $url not ready after ${READY_TIMEOUT}s; last lines of $logf:"; tail -n 40 "$logf" >&2; return 1
    fi
    sleep 0.2
  done
}

# expect_http NAME URL EXPECTED_STATUS BODY_SUBSTRING [curl args...]
expect_http() {
  local name="$1" url="$2" want="$3" needle="$4"; shift 4
  local out status body
  out="$(curl -sS --max-time 10 -w '\n%{http_code}' "$@" "$url" 2>&1)" || true
  status="${out##*$'\n'}"
  body="${out%$'\n'*}"
  if [[ "$status" != "$want" || "$body" != *"$needle"* ]]; then
    warn "  FAIL $name: $url -> $status (want $want, body containing '$needle'): ${body:0:300}"
    return 1
  fi
  log "  ok   $name"
}

# The HMR client connects to ws(s)://<page host>/?token=<token from /@vite/client>; a preview proxy
# forwards the upgrade with the public Host and Origin. Vite must accept both (allowedHosts: true).
expect_hmr_upgrade() {
  local name="$1" port="$2" host="$3" token status
  token="$(curl -fsS --max-time 10 -H "Host: $host" "http://127.0.0.1:$port/@vite/client" \
    | sed -n 's/.*const wsToken = "\([^"]*\)".*/\1/p' | head -n 1)"
  if [[ -z "$token" ]]; then warn "  FAIL $name: no wsToken in /@vite/client"; return 1; fi
  # A raw handshake: curl would keep the upgraded connection open until its timeout.
  status="$("$PYTHON" - "$port" "$host" "$token" <<'PY'
import socket, sys
port, host, token = sys.argv[1:4]
s = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
s.sendall((
    f"GET /?token={token} HTTP/1.1\r\nHost: {host}\r\nOrigin: https://{host}\r\n"
    "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: vite-hmr\r\n\r\n"
).encode())
data = b""
while b"\r\n" not in data:
    chunk = s.recv(1024)
    if not chunk:
        break
    data += chunk
print(data.split(b"\r\n", 1)[0].decode(errors="replace"))
PY
)" || true
  if [[ "$status" != *" 101 "* ]]; then
    warn "  FAIL $name: wanted 101 Switching Protocols, got: ${status:-nothing}"; return 1
  fi
  log "  ok   $name"
}

# Starts the template's dev processes (commands from template.json) and probes them.
run_dev() {
  local tname="$1" app="$2" name cwd port_env ready env cmd port pid logf
  local -A ports=()
  local web_port="" api_port="" stub_port=""

  if [[ "$(manifest "$TEMPLATES_DIR/$tname/template.json" dev)" != *"uvicorn"* && -f "$app/vite.config.ts" ]]; then
    # Frontend alone: stand a static stub in for the backend so the proxy can be checked.
    stub_port="$(free_port)"
    mkdir -p "$WORK/stub/api"
    printf '{"status":"ok"}' >"$WORK/stub/api/health"
    setsid "$PYTHON" -m http.server "$stub_port" --bind 127.0.0.1 --directory "$WORK/stub" \
      >"$WORK/logs/$tname.stub.log" 2>&1 &
    PIDS+=("$!")
    wait_ready "http://127.0.0.1:$stub_port/api/health" "$!" "$WORK/logs/$tname.stub.log"
  fi

  while IFS=$'\x1f' read -r name cwd port_env ready env cmd; do
    port="$(free_port)"
    ports[$name]="$port"
    # {{dev.NAME.port}} in env values: the port given to dev process NAME.
    local resolved=() kv k v
    for kv in $env; do
      k="${kv%%=*}"; v="${kv#*=}"
      while [[ "$v" =~ \{\{dev\.([a-zA-Z0-9_-]+)\.port\}\} ]]; do
        v="${v//"${BASH_REMATCH[0]}"/${ports[${BASH_REMATCH[1]}]:-}}"
      done
      resolved+=("$k=$v")
    done
    [[ -n "$stub_port" ]] && resolved+=("BACKEND_PORT=$stub_port")
    logf="$WORK/logs/$tname.dev.$name.log"
    (cd "$app/$cwd" && exec setsid env "$port_env=$port" "${resolved[@]}" bash -c "exec $cmd") >"$logf" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    log "  started $name: $cmd (port $port, pid $pid)"
    wait_ready "http://127.0.0.1:$port$ready" "$pid" "$logf"
    if [[ "$cmd" == *uvicorn* ]]; then api_port="$port"; fi
    if [[ "$cmd" == *"npm run dev"* ]]; then web_port="$port"; fi
  done < <(manifest "$TEMPLATES_DIR/$tname/template.json" dev)

  if [[ -n "$api_port" ]]; then
    local api="http://127.0.0.1:$api_port"
    expect_http "$tname.api.health" "$api/api/health" 200 '"status":"ok"'
    expect_http "$tname.api.create" "$api/api/items" 201 '"name":"from-curl"' \
      -H 'Content-Type: application/json' -d '{"name":"from-curl"}'
    expect_http "$tname.api.list" "$api/api/items" 200 '"from-curl"'
    expect_http "$tname.api.422" "$api/api/items" 422 'detail' -H 'Content-Type: application/json' -d '{}'
  fi
  if [[ -n "$web_port" ]]; then
    local web="http://127.0.0.1:$web_port" host="t$RANDOM.preview.localhost"
    expect_http "$tname.web.index" "$web/" 200 '<div id="root">'
    expect_http "$tname.web.module" "$web/src/main.tsx" 200 'createRoot'
    expect_http "$tname.web.proxy-health" "$web/api/health" 200 '"status":"ok"'
    expect_http "$tname.web.preview-host" "$web/" 200 '<div id="root">' -H "Host: $host"
    expect_http "$tname.web.preview-host-proxy" "$web/api/health" 200 '"status":"ok"' -H "Host: $host"
    if [[ -n "$api_port" ]]; then
      expect_http "$tname.web.proxy-items" "$web/api/items" 200 '"from-curl"'
    fi
    expect_hmr_upgrade "$tname.web.hmr-websocket" "$web_port" "$host"
  fi

  # Stop this template's processes now, so the next template starts on a quiet machine.
  stop_procs
}

# The production recipe (template.json `publish`): the build commands, the static folder they
# leave (with an index.html), and the backend's production command answering its health path
# without a reloader.
run_publish() {
  local tname="$1" app="$2" cwd cmd static port_env health port pid logf
  local tj="$TEMPLATES_DIR/$tname/template.json"
  if ! grep -q '"publish"' "$tj"; then log "  (no publish recipe)"; return 0; fi
  while IFS=$'\x1f' read -r cwd cmd; do
    run_logged "$tname.publish.build" "$app/$cwd" bash -c "$cmd"
  done < <(manifest "$tj" publish_build)
  static="$(manifest "$tj" publish_static)"
  if [[ -n "$static" ]]; then
    if [[ ! -f "$app/$static/index.html" ]]; then
      warn "  FAIL $tname.publish.static: $static/index.html is missing after the build"; return 1
    fi
    log "  ok   $tname.publish.static ($(find "$app/$static" -type f | wc -l) files in $static)"
  fi
  while IFS=$'\x1f' read -r cwd port_env health cmd; do
    port="$(free_port)"
    logf="$WORK/logs/$tname.publish.backend.log"
    (cd "$app/$cwd" && exec setsid env "$port_env=$port" DATABASE_PATH="$WORK/$tname-prod.db" bash -c "exec $cmd") >"$logf" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_ready "http://127.0.0.1:$port$health" "$pid" "$logf"
    expect_http "$tname.publish.health" "http://127.0.0.1:$port$health" 200 '"status":"ok"'
    if [[ "$cmd" == *--reload* ]]; then warn "  FAIL $tname.publish.backend runs with --reload"; return 1; fi
    [[ -f "$WORK/$tname-prod.db" ]] || { warn "  FAIL $tname.publish.backend ignored DATABASE_PATH"; return 1; }
    log "  ok   $tname.publish.backend (DATABASE_PATH honoured)"
  done < <(manifest "$tj" publish_backend)
  stop_procs
}

test_template() {
  local tname="$1" app="$WORK/apps/$1"
  # Runs in a subshell, which does not inherit the traps: end this template's processes here.
  trap stop_procs EXIT
  trap 'exit 130' INT TERM
  log "template $tname"
  compose "$tname" "$app"
  install_deps "$tname" "$app"
  run_checks "$tname" "$app"
  run_dev "$tname" "$app"
  run_publish "$tname" "$app"
}

mkdir -p "$WORK/logs" "$WORK/apps"
if (($#)); then names=("$@"); else
  names=()
  for d in "$TEMPLATES_DIR"/*/template.json; do names+=("$(basename "$(dirname "$d")")"); done
fi

log "node $(node --version), npm $(npm --version), $("$PYTHON" --version); work dir $WORK"
passed=0 failed=0 failed_names=()
start=$SECONDS
for t in "${names[@]}"; do
  t0=$SECONDS
  if [[ ! -f "$TEMPLATES_DIR/$t/template.json" ]]; then
    warn "no template $t"; failed=$((failed + 1)); failed_names+=("$t"); continue
  fi
  # A subshell, so one template's failure does not stop the others. Not in an `if` condition: bash
  # ignores set -e inside one.
  set +e
  (set -e; test_template "$t")
  rc=$?
  set -e
  if ((rc == 0)); then
    passed=$((passed + 1)); log "template $t passed in $((SECONDS - t0)) s"
  else
    failed=$((failed + 1)); failed_names+=("$t"); warn "template $t FAILED after $((SECONDS - t0)) s"
  fi
done

log "total $((SECONDS - start)) s${failed_names:+; failed: ${failed_names[*]}}"
echo "templates: $passed passed, $failed failed"
((failed == 0))
