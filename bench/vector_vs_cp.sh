#!/usr/bin/env bash
# Benchmark: extract / apply vs copying the same bytes.
#
# Workload: a synthesized Qwen2-shaped bf16 model of ~2.1 GiB (21 layers,
# hidden 2048, intermediate 5632, vocab 32000), its "GRPO" relative, and the
# vector between them. Baseline, in the same run: `cp -r` of the model
# directory, with and without a final `sync` (our outputs are fsynced), and
# for the f32 vector (twice the model's bytes) a copy of the vector itself.
# extract and apply also run with --no-sync (no fsync, like cp): compare
# those with plain cp -r.
# Each timing is the median of RV_BENCH_RUNS runs (default 3).
# Prints wall times, ratios and peak RSS (from /usr/bin/time -v).
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
shape=(--arch qwen2 --layers 21 --hidden 2048 --heads 16 --kv-heads 4 --intermediate 5632 --vocab 32000 --dtype bf16 --seed 1 -q)
echo "synthesizing two ~2.1 GiB bf16 models in $work ..."
"$rv" synth "${shape[@]}" -o "$work/sft"
"$rv" synth "${shape[@]}" --delta-scale 0.001 --delta-seed 7 -o "$work/grpo"
size=$(du -sb "$work/sft" | cut -f1)
# Warm the page cache for everyone alike.
cat "$work"/sft/* "$work"/grpo/* > /dev/null

runs=${RV_BENCH_RUNS:-3}
# measure NAME OUTPUT CMD... -> "median_seconds max_peak_rss_kib" over $runs
# runs; OUTPUT is removed before each run and after the last.
measure() {
  local name=$1 out=$2; shift 2
  local walls=() rss=0 i wall r
  for ((i = 0; i < runs; i++)); do
    rm -rf "$out"
    sync
    /usr/bin/time -v -o "$work/time.$name" "$@" > /dev/null
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time.$name" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
    r=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.$name")
    walls+=("$wall")
    (( r > rss )) && rss=$r
  done
  rm -rf "$out"
  echo "$(printf '%s\n' "${walls[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}') $rss"
}

read -r cp_t cp_rss < <(measure cp "$work/copy" cp -r "$work/sft" "$work/copy")
read -r cps_t cps_rss < <(measure cpsync "$work/copy" sh -c "cp -r '$work/sft' '$work/copy' && sync")
read -r ex16_t ex16_rss < <(measure ex16 "$work/v16.safetensors" "$rv" -q extract --base "$work/sft" --tuned "$work/grpo" --dtype bf16 -o "$work/v16.safetensors")
read -r ex_t ex_rss < <(measure ex32 "$work/v_tmp.safetensors" "$rv" -q extract --base "$work/sft" --tuned "$work/grpo" -o "$work/v_tmp.safetensors")
"$rv" -q extract --base "$work/sft" --tuned "$work/grpo" -o "$work/v.safetensors"
cat "$work/v.safetensors" > /dev/null
# The f32 vector is twice the model's bytes: copying those bytes is its baseline.
read -r cpv_t cpv_rss < <(measure cpv "$work/vcopy" sh -c "cp '$work/v.safetensors' '$work/vcopy' && sync")
read -r ap_t ap_rss < <(measure apply "$work/out" "$rv" -q apply --model "$work/sft" --vector "$work/v.safetensors" --alpha 1 -o "$work/out")
# --no-sync: no fsync before publishing, the like-for-like match for plain cp -r.
read -r ex16n_t ex16n_rss < <(measure ex16n "$work/v16.safetensors" "$rv" -q --no-sync extract --base "$work/sft" --tuned "$work/grpo" --dtype bf16 -o "$work/v16.safetensors")
read -r apn_t apn_rss < <(measure applyn "$work/out" "$rv" -q --no-sync apply --model "$work/sft" --vector "$work/v.safetensors" --alpha 1 -o "$work/out")

largest=$(python3 - "$work/sft/model.safetensors" <<'PY'
import json, struct, sys
f = open(sys.argv[1], 'rb'); n = struct.unpack('<Q', f.read(8))[0]; h = json.loads(f.read(n))
print(max(v['data_offsets'][1] - v['data_offsets'][0] for k, v in h.items() if k != '__metadata__') // 1024)
PY
)
printf "\nmodel: %.2f GiB bf16, largest tensor %d MiB, %s threads, median of %d runs\n" "$(awk "BEGIN{print $size/1073741824}")" $((largest/1024)) "$(nproc)" "$runs"
printf "%-38s %9s %12s %14s\n" "operation" "seconds" "vs cp -r" "vs cp+sync" 
row() { printf "%-38s %9.2f %11.2fx %13.2fx   peak RSS %d MiB\n" "$1" "$2" "$(awk "BEGIN{print $2/$cp_t}")" "$(awk "BEGIN{print $2/$cps_t}")" $(( $3 / 1024 )); }
row "cp -r model (baseline)" "$cp_t" "$cp_rss"
row "cp -r model && sync (baseline)" "$cps_t" "$cps_rss"
row "extract --dtype bf16 (reads 2x, writes 1x)" "$ex16_t" "$ex16_rss"
row "extract (f32: reads 2x, writes 2x)" "$ex_t" "$ex_rss"
printf "%-38s %9.2f   f32 extract / this = %.2fx\n" "cp f32 vector && sync (its bytes)" "$cpv_t" "$(awk "BEGIN{print $ex_t/$cpv_t}")"
row "apply bf16 + f32 vector (reads 3x, writes 1x)" "$ap_t" "$ap_rss"
row "extract --dtype bf16 --no-sync" "$ex16n_t" "$ex16n_rss"
row "apply --no-sync" "$apn_t" "$apn_rss"
echo "RSS target: 512 MiB + largest tensor = $(( 512 + largest/1024 )) MiB"
