#!/usr/bin/env bash
# Runs every benchmark against a build directory: the scripts in bench/ (each
# runs its own baseline side by side) and the benchmark programs that have no
# script of their own. One failing benchmark does not stop the others.
set -uo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
for b in bench/*.sh; do
  [ "$b" = bench/run-all.sh ] && continue
  echo "### $b"
  "$b" "$build" || echo "($b failed)"
done
cli="$build/src/cli/reasonvec"
for p in tokenizer engine_kernels eval_overhead experiment_inmemory; do
  exe="$build/bench/bench_$p"
  echo "### $exe"
  case $p in
    eval_overhead) "$exe" --cli "$cli" || echo "($exe failed)" ;;
    *) "$exe" || echo "($exe failed)" ;;
  esac
done
