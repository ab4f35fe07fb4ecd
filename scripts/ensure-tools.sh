#!/usr/bin/env bash
# Installs whatever the stack and the tests need and is missing. Idempotent: a second run on a
# ready machine only checks versions and exits.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

[ -f Cargo.lock ] || cargo generate-lockfile

# worker-build is released together with the worker crate: use the same version.
want_wb="$(lock_version worker)"
if [ "$(worker-build --version 2>/dev/null | awk '{print $NF}')" != "$want_wb" ]; then
  log "installing worker-build $want_wb"
  cargo install worker-build --version "$want_wb" --locked
fi

# wasm-bindgen's CLI must match the library version in Cargo.lock exactly.
want_bg="$(lock_version wasm-bindgen)"
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $NF}')" != "$want_bg" ]; then
  log "installing wasm-bindgen-cli $want_bg"
  cargo install wasm-bindgen-cli --version "$want_bg" --locked
fi

# npm packages: wrangler, azurite, binaryen (wasm-opt), Node.js 22, esbuild, TypeScript, ...
stamp="node_modules/.package-lock.sha256"
want_npm="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want_npm" ]; then
  log "installing npm packages (npm ci)"
  /usr/bin/env npm ci --no-audit --no-fund
  echo "$want_npm" > "$stamp"
fi

# Python test tools (Microsoft's Azure SDK for the compatibility tests) in a private venv.
venv="$ROOT/.state/venv-test"
want_py="$(sha256sum tests/python/requirements.txt | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want_py" ]; then
  log "installing Python test tools into .state/venv-test"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r tests/python/requirements.txt
  echo "$want_py" > "$venv/.requirements.sha256"
fi

# Debian packages.
missing=()
command -v bwrap >/dev/null || missing+=(bubblewrap)
command -v slirp4netns >/dev/null || missing+=(slirp4netns)
# What people run in the IDE's terminal (the sandbox sees the host's /usr).
command -v vi >/dev/null || missing+=(vim-tiny)
command -v htop >/dev/null || missing+=(htop)
# chromium: the VM API's headless browser (the agent's check_preview) and the browser tests.
command -v chromium >/dev/null || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
