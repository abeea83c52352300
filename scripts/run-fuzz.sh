#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs them for a bounded total
# time (seconds, default 60, split evenly between the targets). Fails if a
# fuzzer finds a crash.
set -euo pipefail
secs=${1:-60}
cd "$(dirname "$0")/.."
cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DRV_FUZZ=ON -DRV_BENCH=OFF -DRV_TESTS=ON >/dev/null
cmake --build build-fuzz --target safetensors_header_fuzz math_verify_fuzz | tail -n 2
each=$(( secs / 2 > 0 ? secs / 2 : 1 ))
mkdir -p build-fuzz/corpus build-fuzz/math_corpus
cp -n fuzz/corpus/* build-fuzz/corpus/ 2>/dev/null || true
cp -n fuzz/math_corpus/* build-fuzz/math_corpus/ 2>/dev/null || true
build-fuzz/fuzz/safetensors_header_fuzz -max_total_time="$each" -max_len=4096 -print_final_stats=1 \
  build-fuzz/corpus 2>&1 | tail -n 3
# -timeout: one input taking over a second is a finding (the checker promises bounded work).
build-fuzz/fuzz/math_verify_fuzz -max_total_time="$each" -max_len=2048 -timeout=2 \
  -print_final_stats=1 build-fuzz/math_corpus 2>&1 | tail -n 3
