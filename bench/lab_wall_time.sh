#!/usr/bin/env bash
# The lab's wall time, stage by stage, and its GRPO step split into sampling
# (the engine over in-memory weights) and training (forward, backward,
# AdamW), from a fresh run of a preset (default: quick, the demo's).
# Stage times come from the run's own log lines; GRPO's split from each
# step's train_log.jsonl entry.
#
# Usage: bench/lab_wall_time.sh [BUILD_DIR] [-- --preset NAME --threads N]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-build}"
shift || true
[ "${1:-}" = "--" ] && shift
preset=quick
threads=$(nproc)
while [ $# -gt 0 ]; do
  case "$1" in
    --preset) preset="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    *) echo "lab_wall_time.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
cli="$root/$build/src/cli/reasonvec"
cmake --build "$root/$build" --target reasonvec >/dev/null
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $threads thread(s); preset $preset"
start=$(date +%s.%N)
"$cli" lab --preset "$preset" -t "$threads" -o "$out/lab" 2>&1 >/dev/null |
  while IFS= read -r line; do
    printf '%s %s\n' "$(date +%s.%N)" "$line"
  done >"$out/log"
end=$(date +%s.%N)
python3 - "$out" "$start" "$end" <<'PY'
import json, sys, glob, os
out, start, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
stages, cur, t0 = [], None, start
for line in open(os.path.join(out, "log")):
    t, _, msg = line.rstrip("\n").partition(" ")
    t = float(t)
    if msg.startswith("[run   ] ") or msg.startswith("experiment "):
        if cur: stages.append((cur, t - t0))
        cur, t0 = msg.replace("[run   ] ", ""), t
if cur: stages.append((cur, end - t0))
print(f"{'stage':<52} {'seconds':>8}")
for name, s in stages:
    print(f"{name[:52]:<52} {s:8.1f}")
print(f"{'total':<52} {end - start:8.1f}")
for log in sorted(glob.glob(os.path.join(out, "lab", "seed-*", "grpo-*", "train_log.jsonl"))):
    rows = [json.loads(l) for l in open(log)]
    smp = sum(r["sample_seconds"] for r in rows) / len(rows)
    trn = sum(r["train_seconds"] for r in rows) / len(rows)
    print(f"GRPO step ({os.path.basename(os.path.dirname(log))}, {len(rows)} steps): "
          f"sampling {smp:.2f} s + training {trn:.2f} s = {smp + trn:.2f} s "
          f"(sampling {100 * smp / (smp + trn):.0f} %)")
PY
