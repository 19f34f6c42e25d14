#!/usr/bin/env bash
# Rebuilds the bundled tiny base model (models/tiny-llama/) and the demo LoRA data
# (models/demo/train.jsonl, valid.jsonl) from nothing but this repository: no downloads.
#
#   models/build_tiny_llama.sh [BUILD_DIR]        (default BUILD_DIR: <repo>/build)
#   TUNELEDGER_PRETRAIN=/path/to/tuneledger-pretrain models/build_tiny_llama.sh   (no build)
#
# 1. models/generate_data.py writes the pre-training corpus (to a temp folder) and the demo
#    data, deterministically from a fixed seed;
# 2. tuneledger-pretrain trains the architecture in models/tiny_llama_config.json from random
#    weights (every weight trainable) with the byte-level tokenizer;
# 3. the result (config.json, model.safetensors in bf16, byte_tokenizer.json, and
#    pretrain_summary.json with steps, tokens, seconds and losses) replaces models/tiny-llama/.
# Same seed, same data, 2 threads: the run is deterministic on one machine and BLAS build.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$repo/build}
steps=${TINY_LLAMA_STEPS:-400}

pretrain=${TUNELEDGER_PRETRAIN:-}
if [ -z "$pretrain" ]; then
  if [ ! -f "$build/build.ninja" ] && [ ! -f "$build/Makefile" ]; then
    cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
  fi
  cmake --build "$build" --target tuneledger-pretrain
  pretrain=$build/bin/tuneledger-pretrain
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

/usr/bin/python3 "$repo/models/generate_data.py" \
  --pretrain-dir "$work/data" --demo-dir "$repo/models/demo"

start=$(date +%s)
"$pretrain" \
  --config "$repo/models/tiny_llama_config.json" \
  --train "$work/data/pretrain_train.jsonl" --valid "$work/data/pretrain_valid.jsonl" \
  --out "$work/tiny-llama" --steps "$steps" --batch-size 16 --seq-len 96 --lr 3e-3 \
  --warmup 30 --seed 1 --threads 2 --eval-every 100 --storage bf16 \
  | tee "$work/pretrain.log" \
  | /usr/bin/python3 -u -c '
import json, sys
for raw in sys.stdin:
    line = json.loads(raw)
    if line["type"] == "eval" or line["type"] == "done" or line["type"] == "error" or (
            line["type"] == "progress" and line["step"] % 50 == 0):
        print(raw.strip(), flush=True)
'
end=$(date +%s)

/usr/bin/python3 - "$work/pretrain.log" "$work/tiny-llama/pretrain_summary.json" \
  "$((end - start))" <<'PY'
import json, sys
lines = [json.loads(raw) for raw in open(sys.argv[1])]
done = [l for l in lines if l["type"] == "done"]
if not done:
    sys.exit("tuneledger-pretrain did not finish: " + json.dumps(lines[-1]))
progress = [l for l in lines if l["type"] == "progress"]
summary = {
    "steps": done[0]["step"],
    "tokens": progress[-1]["tokens"],
    "wall_seconds": int(sys.argv[3]),
    "final_train_loss": done[0]["train_loss"],
    "final_eval_loss": done[0]["eval_loss"],
    "hardware": "CPU, 2 threads",
}
json.dump(summary, open(sys.argv[2], "w"), indent=2)
print(json.dumps(summary))
PY

# The model card (licence and source, read for every job's cost card) is kept across rebuilds.
cp "$repo/models/tiny-llama/README.md" "$work/tiny-llama/README.md"
rm -rf "$repo/models/tiny-llama"
mv "$work/tiny-llama" "$repo/models/tiny-llama"
du -sh "$repo/models/tiny-llama"
