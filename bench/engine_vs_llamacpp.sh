#!/usr/bin/env bash
# Engine vs llama.cpp side by side (see bench/engine_vs_llamacpp.cpp for the
# workloads). Usage: bench/engine_vs_llamacpp.sh [BUILD_DIR] [-- ARGS...]
#   e.g. bench/engine_vs_llamacpp.sh build -- --threads 2
# Needs the npm oracles (scripts/install-oracles.sh) for node-llama-cpp.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-build}"
shift || true
[ "${1:-}" = "--" ] && shift
"$root/scripts/install-oracles.sh"
cmake --build "$root/$build" --target bench_engine_vs_llamacpp
exec "$root/$build/bench/bench_engine_vs_llamacpp" "$@"
