#!/usr/bin/env bash
# Benchmark: sparsify and sparsifying merges vs a plain apply.
#
# Workload: the model of bench/vector_vs_cp.sh (a synthesized Qwen2-shaped
# bf16 model of ~2.1 GiB: 21 layers, hidden 2048, intermediate 5632, vocab
# 32000), its "GRPO" relative and the f32 vector between them. Baseline, in
# the same run: `apply --alpha 1` of that vector (linear, streaming). Timed:
#   sparsify --method dare/ties --density 0.1   (writes a sparse vector file)
#   apply --method dare_linear / ties --density 0.1 (sparsify + merge + apply)
#   apply of the sparse vector file
# Every command runs with --no-sync (page cache writes only) so the numbers
# measure the work, not the disk. RV_BENCH_RUNS rounds (default 1); each
# timing is a median, each ratio the median of the per-round ratios vs apply.
#
# usage: bench/sparsify_vs_apply.sh [BUILD_DIR] [WORK_DIR]
set -euo pipefail
build=${1:-build}
work=${2:-$(mktemp -d /tmp/rv-bench-XXXXXX)}
mkdir -p "$work"
rv="$build/src/cli/reasonvec"
[ -x "$rv" ] || { echo "build first: $rv not found" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (Debian package 'time')" >&2; exit 1; }
trap 'rm -rf "$work"' EXIT
shape=(--arch qwen2 --layers 21 --hidden 2048 --heads 16 --kv-heads 4 --intermediate 5632 --vocab 32000 --dtype bf16 --seed 1 -q)
echo "synthesizing two ~2.1 GiB bf16 models in $work ..."
"$rv" synth "${shape[@]}" -o "$work/sft"
"$rv" synth "${shape[@]}" --delta-scale 0.001 --delta-seed 7 -o "$work/grpo"
"$rv" -q --no-sync extract --base "$work/sft" --tuned "$work/grpo" -o "$work/v.safetensors"
"$rv" -q --no-sync sparsify "$work/v.safetensors" --method dare --density 0.1 -o "$work/vs.safetensors"
cat "$work"/sft/* "$work/v.safetensors" "$work/vs.safetensors" > /dev/null

runs=${RV_BENCH_RUNS:-1}
q="'$rv' -q --no-sync"
ops=(
  "apply|$work/out|$q apply --model '$work/sft' --vector '$work/v.safetensors' -o '$work/out'"
  "sp_dare|$work/o.safetensors|$q sparsify '$work/v.safetensors' --method dare --density 0.1 -o '$work/o.safetensors'"
  "sp_ties|$work/o.safetensors|$q sparsify '$work/v.safetensors' --method ties --density 0.1 -o '$work/o.safetensors'"
  "ap_dare|$work/out|$q apply --model '$work/sft' --vector '$work/v.safetensors' --method dare_linear --density 0.1 -o '$work/out'"
  "ap_ties|$work/out|$q apply --model '$work/sft' --vector '$work/v.safetensors' --method ties --density 0.1 -o '$work/out'"
  "ap_sparse|$work/out|$q apply --model '$work/sft' --vector '$work/vs.safetensors' -o '$work/out'"
)
source "$(dirname "$0")/lib/timing.sh"
time_ops
printf "\nvector %.2f GiB f32, sparse (dare 0.1) %.2f GiB; %s threads, %d round(s)\n" \
  "$(awk "BEGIN{print $(stat -c %s "$work/v.safetensors")/1073741824}")" \
  "$(awk "BEGIN{print $(stat -c %s "$work/vs.safetensors")/1073741824}")" "$(nproc)" "$runs"
printf "%-52s %8s %10s\n" "operation" "seconds" "vs apply"
row() {
  printf "%-52s %8.2f %9.2fx   peak RSS %d MiB\n" "$1" "$(t "$2")" "$(ratio "$2" apply)" $(( ${rss[$2]} / 1024 ))
}
row "apply --alpha 1 (linear, baseline)" apply
row "sparsify --method dare --density 0.1" sp_dare
row "sparsify --method ties --density 0.1" sp_ties
row "apply --method dare_linear --density 0.1" ap_dare
row "apply --method ties --density 0.1" ap_ties
row "apply of the sparse (dare 0.1) vector file" ap_sparse
