#!/usr/bin/env bash
# Benchmark: extract / apply vs copying the same bytes.
#
# Workload: a synthesized Qwen2-shaped bf16 model (hidden 2048, intermediate
# 5632, vocab 32000; RV_BENCH_LAYERS layers, default 21: ~2.1 GiB; 10 gives
# the ~1 GiB of issue 18's numbers), its "GRPO" relative, and the vector
# between them. Baseline, in the same run: `cp -r` of the model directory,
# with and without a final `sync` (our outputs are fsynced), and for the f32
# vector (twice the model's bytes) a copy of the vector itself. extract and
# apply also run with --no-sync (no fsync, like cp): compare those with
# plain cp -r.
# RV_BENCH_RUNS rounds (default 3) each run every operation once; each
# timing is a median, each ratio the median of the per-round ratios.
# RV_BENCH_BEFORE=/path/to/older/reasonvec adds its apply runs to every round
# (before/after side by side, same machine state).
# Prints wall times, ratios, the targets of issue 18 (apply --no-sync <=
# 1.5x cp -r, apply <= 1.3x cp -r && sync) and peak RSS (/usr/bin/time -v).
#
# usage: bench/vector_vs_cp.sh [BUILD_DIR] [WORK_DIR]
set -euo pipefail
build=${1:-build}
work=${2:-$(mktemp -d /tmp/rv-bench-XXXXXX)}
mkdir -p "$work"
rv="$build/src/cli/reasonvec"
[ -x "$rv" ] || { echo "build first: $rv not found" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (Debian package 'time')" >&2; exit 1; }
trap 'rm -rf "$work"' EXIT
layers=${RV_BENCH_LAYERS:-21}
before=${RV_BENCH_BEFORE:-}
[ -z "$before" ] || [ -x "$before" ] || { echo "RV_BENCH_BEFORE: $before is not executable" >&2; exit 1; }
shape=(--arch qwen2 --layers "$layers" --hidden 2048 --heads 16 --kv-heads 4 --intermediate 5632 --vocab 32000 --dtype bf16 --seed 1 -q)
echo "synthesizing two bf16 models of $layers layers in $work ..."
"$rv" synth "${shape[@]}" -o "$work/sft"
"$rv" synth "${shape[@]}" --delta-scale 0.001 --delta-seed 7 -o "$work/grpo"
size=$(du -sb "$work/sft" | cut -f1)
# Warm the page cache for everyone alike.
cat "$work"/sft/* "$work"/grpo/* > /dev/null

runs=${RV_BENCH_RUNS:-3}
# The inputs of apply: an f32 vector (the default) and a bf16 one.
"$rv" -q extract --base "$work/sft" --tuned "$work/grpo" -o "$work/v.safetensors"
"$rv" -q extract --base "$work/sft" --tuned "$work/grpo" --dtype bf16 -o "$work/v16.safetensors"
cat "$work/v.safetensors" "$work/v16.safetensors" > /dev/null

# Operations: NAME|OUTPUT|COMMAND. Every round runs each one once, in this
# order, so baseline and tool see the same machine state: on a shared VM the
# cost of writing fresh page cache swings by several times over minutes, and
# timing all baseline runs before all tool runs would compare two states.
ops=(
  "cp|$work/copy|cp -r '$work/sft' '$work/copy'"
  "cpsync|$work/copy|cp -r '$work/sft' '$work/copy' && sync"
  "ex16|$work/o.safetensors|'$rv' -q extract --base '$work/sft' --tuned '$work/grpo' --dtype bf16 -o '$work/o.safetensors'"
  "ex32|$work/o.safetensors|'$rv' -q extract --base '$work/sft' --tuned '$work/grpo' -o '$work/o.safetensors'"
  # The f32 vector is twice the model's bytes: copying those bytes is its baseline.
  "cpv|$work/vcopy|cp '$work/v.safetensors' '$work/vcopy' && sync"
  "apply|$work/out|'$rv' -q apply --model '$work/sft' --vector '$work/v.safetensors' --alpha 1 -o '$work/out'"
  "apply16|$work/out|'$rv' -q apply --model '$work/sft' --vector '$work/v16.safetensors' --alpha 1 -o '$work/out'"
  # --no-sync: no fsync before publishing, the like-for-like match for plain cp -r.
  "ex16n|$work/o.safetensors|'$rv' -q --no-sync extract --base '$work/sft' --tuned '$work/grpo' --dtype bf16 -o '$work/o.safetensors'"
  "applyn|$work/out|'$rv' -q --no-sync apply --model '$work/sft' --vector '$work/v.safetensors' --alpha 1 -o '$work/out'"
  "applyn16|$work/out|'$rv' -q --no-sync apply --model '$work/sft' --vector '$work/v16.safetensors' --alpha 1 -o '$work/out'"
)
if [ -n "$before" ]; then
  ops+=(
    "b_apply|$work/out|'$before' -q apply --model '$work/sft' --vector '$work/v.safetensors' --alpha 1 -o '$work/out'"
    "b_applyn|$work/out|'$before' -q --no-sync apply --model '$work/sft' --vector '$work/v.safetensors' --alpha 1 -o '$work/out'"
  )
fi
# The VM hands freed guest memory back to its host after a few seconds, and
# the next process to fill that memory pays for the host faulting it back in:
# a cp -r right after an idle pause measured 3-6 s, the same cp right after
# another writer 0.7-1.7 s. So before every timed operation, write and delete
# a model-sized scratch file: each operation, baseline and tool alike, then
# starts from memory the host has just backed.
warm_page_cache() {
  dd if=/dev/zero of="$work/warm" bs=8M count=$(( size / 8388608 + 1 )) status=none
  rm -f "$work/warm"
}
source "$(dirname "$0")/lib/timing.sh"
before_op() { sync; warm_page_cache; }
time_ops

largest=$(python3 - "$work/sft/model.safetensors" <<'PY'
import json, struct, sys
f = open(sys.argv[1], 'rb'); n = struct.unpack('<Q', f.read(8))[0]; h = json.loads(f.read(n))
print(max(v['data_offsets'][1] - v['data_offsets'][0] for k, v in h.items() if k != '__metadata__') // 1024)
PY
)
printf "\nmodel: %.2f GiB bf16, largest tensor %d MiB, %s threads, %d rounds; medians, ratios paired per round\n" "$(awk "BEGIN{print $size/1073741824}")" $((largest/1024)) "$(nproc)" "$runs"
printf "%-48s %8s %10s %12s\n" "operation" "seconds" "vs cp -r" "vs cp+sync"
row() {
  printf "%-48s %8.2f %9.2fx %11.2fx   peak RSS %d MiB   (runs: %s)\n" "$1" "$(t "$2")" "$(ratio "$2" cp)" \
    "$(ratio "$2" cpsync)" $(( ${rss[$2]} / 1024 )) "$(echo ${walls[$2]})"
}
row "cp -r model (baseline)" cp
row "cp -r model && sync (baseline)" cpsync
row "extract --dtype bf16 (reads 2x, writes 1x)" ex16
row "extract (f32: reads 2x, writes 2x)" ex32
printf "%-48s %8.2f   f32 extract / this = %.2fx\n" "cp f32 vector && sync (its bytes)" "$(t cpv)" "$(ratio ex32 cpv)"
row "apply bf16 + f32 vector (reads 3x, writes 1x)" apply
row "apply bf16 + bf16 vector (reads 2x, writes 1x)" apply16
row "extract --dtype bf16 --no-sync" ex16n
row "apply --no-sync" applyn
row "apply --no-sync, bf16 vector" applyn16
if [ -n "$before" ]; then
  row "before: apply (f32 vector)" b_apply
  row "before: apply --no-sync (f32 vector)" b_applyn
fi
echo
echo "issue 18 targets (median of per-round ratios):"
target() {
  local r
  r=$(ratio "$2" "$3")
  printf "  %-44s %6.2fx  (target <= %s: %s)\n" "$1" "$r" "$4" \
    "$(awk -v r="$r" -v t="$4" 'BEGIN { print (r <= t ? "met" : "NOT met") }')"
}
target "apply --no-sync / cp -r, f32 vector" applyn cp 1.5
target "apply / (cp -r && sync), f32 vector" apply cpsync 1.3
target "apply --no-sync / cp -r, bf16 vector" applyn16 cp 1.5
target "apply / (cp -r && sync), bf16 vector" apply16 cpsync 1.3
echo "RSS target: 512 MiB + largest tensor = $(( 512 + largest/1024 )) MiB"
