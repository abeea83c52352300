#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for a bounded time
# (seconds, default 60). Fails if the fuzzer finds a crash.
set -euo pipefail
secs=${1:-60}
cd "$(dirname "$0")/.."
cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DRV_FUZZ=ON -DRV_BENCH=OFF -DRV_TESTS=ON >/dev/null
cmake --build build-fuzz --target safetensors_header_fuzz | tail -n 2
mkdir -p build-fuzz/corpus
cp -n fuzz/corpus/* build-fuzz/corpus/ 2>/dev/null || true
build-fuzz/fuzz/safetensors_header_fuzz -max_total_time="$secs" -max_len=4096 -print_final_stats=1 \
  build-fuzz/corpus 2>&1 | tail -n 3
