#!/usr/bin/env bash
# Kernel correctness under every instruction set this CPU has (scalar, AVX2,
# AVX-512 BF16) against a double-precision reference, plus a single-thread
# timing per ISA; see bench/kernel_isa_check.cpp. Exits non-zero on a failure.
# Usage: bench/kernel_isa_check.sh [BUILD_DIR] [-- --no-timing]
#
# The program is statically linked: to check a CPU this machine lacks, copy
# BUILD_DIR/bench/kernel_isa_check to that host and run it there (nothing
# else is needed). RV_ISA does not restrict it; every supported ISA is run.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-build}"
shift || true
[ "${1:-}" = "--" ] && shift
cmake --build "$root/$build" --target kernel_isa_check
exec "$root/$build/bench/kernel_isa_check" "$@"
