#!/usr/bin/env bash
# Engine vs llama.cpp side by side (see bench/engine_vs_llamacpp.cpp for the
# shapes, workloads, both engines' settings and the %peak / %bw formulas).
# Usage: bench/engine_vs_llamacpp.sh [BUILD_DIR] [-- ARGS...]
#   e.g. bench/engine_vs_llamacpp.sh build -- --shapes 0.5b --prompts 512
#        bench/engine_vs_llamacpp.sh build -- --threads-sweep
# With RV_BENCH_MACHINE set to bench_machine_info's JSON (bench/run-all.sh
# sets it) the fractions use that measurement instead of measuring again.
# RV_BENCH_ENGINE_ARGS adds arguments when no ARGS are given (run-all.sh).
# Needs the npm oracles (scripts/install-oracles.sh) for node-llama-cpp.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-build}"
shift || true
[ "${1:-}" = "--" ] && shift
explicit=$#
if [ $# -eq 0 ] && [ -n "${RV_BENCH_ENGINE_ARGS:-}" ]; then
  # shellcheck disable=SC2086  # a list of arguments
  set -- $RV_BENCH_ENGINE_ARGS
fi
"$root/scripts/install-oracles.sh"
cmake --build "$root/$build" --target bench_engine_vs_llamacpp bench_machine_info
machine=()
[ -n "${RV_BENCH_MACHINE:-}" ] && machine=(--machine "$RV_BENCH_MACHINE")
"$root/$build/bench/bench_engine_vs_llamacpp" ${machine[@]+"${machine[@]}"} "$@"
# Thread scaling, unless the caller chose its own arguments.
if [ "$explicit" -eq 0 ]; then
  "$root/$build/bench/bench_engine_vs_llamacpp" ${machine[@]+"${machine[@]}"} --threads-sweep
fi
