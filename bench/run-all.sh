#!/usr/bin/env bash
# Runs every benchmark script in bench/ against a build directory.
set -uo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
for b in bench/*.sh; do
  [ "$b" = bench/run-all.sh ] && continue
  echo "### $b"
  "$b" "$build" || echo "($b failed)"
done
