#!/usr/bin/env bash
# `make bench`: builds the stack, runs every benchmark and prints one table (also saved to
# docs/benchmarks.md with the date and machine).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
bash scripts/build.sh
cargo build --profile native-release -p bench -p vm-api
out="$(mktemp)"
./target/native-release/bench | tee "$out"
{
  echo "# Benchmarks"
  echo
  echo "Last run: $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -sr)."
  echo "Produced by \`make bench\`; values are medians, baselines come from the same run."
  echo
  cat "$out"
} > docs/benchmarks.md
