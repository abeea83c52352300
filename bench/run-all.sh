#!/usr/bin/env bash
# Runs every benchmark against a build directory: first the machine header
# (bench_machine_info: CPU, cores, ISA flags, measured peak FLOP/s and memory
# bandwidth, load average), then the scripts in bench/ (each runs its own
# baseline side by side) and the benchmark programs that have no script of
# their own. One failing benchmark does not stop the others.
set -uo pipefail
build=${1:-build}
cd "$(dirname "$0")/.." || exit 1
machine_json=$(mktemp /tmp/rv_bench_machine.XXXXXX.json)
trap 'rm -f "$machine_json"' EXIT
echo "### machine ($(date -u '+%Y-%m-%d %H:%M UTC'))"
if "$build/bench/bench_machine_info" --json-out "$machine_json"; then
  export RV_BENCH_MACHINE="$machine_json"
else
  echo "($build/bench/bench_machine_info failed)"
fi
for b in bench/*.sh; do
  [ "$b" = bench/run-all.sh ] && continue
  echo "### $b"
  "$b" "$build" || echo "($b failed)"
done
cli="$build/src/cli/reasonvec"
for p in tokenizer matmul_kernels engine_kernels eval_overhead experiment_inmemory; do
  exe="$build/bench/bench_$p"
  echo "### $exe"
  case $p in
    eval_overhead) "$exe" --cli "$cli" || echo "($exe failed)" ;;
    *) "$exe" || echo "($exe failed)" ;;
  esac
  # Decode's product: one token, weights from memory rather than a warm L3.
  if [ "$p" = matmul_kernels ]; then
    "$exe" --tokens 1 --cold --shapes 0.5b,1.5b,7b || echo "($exe --cold failed)"
  fi
  # Decode from the mapped file against a copy in RAM (--no-mmap), turn about.
  if [ "$p" = engine_kernels ]; then
    "$exe" --no-mmap-ab 16 || echo "($exe --no-mmap-ab failed)"
  fi
done
