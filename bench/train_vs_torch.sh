#!/usr/bin/env bash
# Training throughput, reasonvec vs PyTorch CPU, side by side on the same
# model and batch shape: the default lab model (vocab 1024, hidden 128, 4
# layers, 4/2 heads, intermediate 384, tied), 16 rows x 128 tokens, one
# step = forward + cross-entropy + backward + AdamW, the same thread count.
# reasonvec: bench/train_throughput.cpp (OpenBLAS sgemm + its thread pool).
# PyTorch: tests/train/torch_reference.py bench (Debian python3-torch 1.13,
# whose BLAS is the system libblas alternative, i.e. Debian's OpenBLAS here;
# torch.set_num_threads(N)). Prints both, the ratio and the CPU model.
#
# Usage: bench/train_vs_torch.sh [BUILD_DIR] [-- --threads N --steps N]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-build}"
shift || true
[ "${1:-}" = "--" ] && shift
threads=$(nproc)
steps=10
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    *) echo "train_vs_torch.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
rows=16 T=128
cmake --build "$root/$build" --target bench_train_throughput >/dev/null

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
blas=$(readlink -f /etc/alternatives/libblas.so.3-x86_64-linux-gnu 2>/dev/null || echo unknown)
echo "CPU: $cpu ($(nproc) online), threads $threads, steps $steps, batch ${rows}x${T}"
echo "torch BLAS (libblas alternative): $blas"

ours_out=$("$root/$build/bench/bench_train_throughput" --threads "$threads" --steps "$steps" \
  --rows "$rows" --T "$T")
echo "$ours_out"
ours=$(echo "$ours_out" | awk '/^tokens_per_s/ {print $2}')
# PyTorch's best configuration here: its own intra-op threads with OpenBLAS
# single-threaded inside them. Left to its default, the pthreads OpenBLAS
# spawns threads within torch's threads and 2-thread training runs at about
# half the speed (measured: 3,500 against 6,800 tokens/s).
torch=$(OPENBLAS_NUM_THREADS=1 /usr/bin/python3 "$root/tests/train/torch_reference.py" bench "$threads" "$steps" \
  "$rows" "$T" 1024 128 4 4 2 384 | awk '/^tokens_per_s/ {print $2}')
echo "torch: torch.set_num_threads($threads), OPENBLAS_NUM_THREADS=1"

printf '%-34s %14s\n' "training step (fwd+bwd+AdamW)" "tokens/s"
printf '%-34s %14.1f\n' "reasonvec TrainModel" "$ours"
printf '%-34s %14.1f\n' "PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)')" "$torch"
awk -v a="$ours" -v b="$torch" 'BEGIN { printf "ratio reasonvec / torch: %.2fx\n", a / b }'
