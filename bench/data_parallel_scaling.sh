#!/usr/bin/env bash
# Tokens/s of data-parallel training on CPU (Gloo), 1 -> 2 ranks, on the bundled tiny Llama and
# the demo data (models/): the same spec and global batch each time, the trainer's own
# tokens_per_sec of its last progress line (all ranks' tokens over the wall time).
#   bench/data_parallel_scaling.sh [STEPS]     (default 60; ctest label bench runs it with 10)
# Environment: BUILD_DIR (default build). Runs:
#   1 rank x 1 thread, 1 rank x 2 threads, 2 ranks x 1 thread each.
set -euo pipefail
cd "$(dirname "$0")/.."

steps=${1:-60}
build=${BUILD_DIR:-build}
trainer="$build/bin/tuneledger-train"
[[ -x $trainer ]] || { echo "data_parallel_scaling: $trainer not built" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/dp-scaling.XXXXXX")
trap 'rm -rf "$work"' EXIT

cat >"$work/spec.json" <<EOF
{"model_path": "$PWD/models/tiny-llama", "train_path": "$PWD/models/demo/train.jsonl",
 "lora": {"r": 16, "alpha": 32, "dropout": 0.05,
          "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]},
 "training": {"max_steps": $steps, "batch_size": 16, "learning_rate": 0.001, "seq_len": 128,
              "checkpoint_every_steps": 0, "seed": 3}}
EOF

# tokens_per_sec of the last progress line of rank 0's stdout.
rate() { grep '"type":"progress"' "$1" | tail -n1 | sed 's/.*"tokens_per_sec":\([0-9.e+]*\).*/\1/'; }

echo "date: $(date -u +%FT%TZ); host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown); $steps steps, global batch 16 x 128"

"$trainer" --spec "$work/spec.json" --out "$work/one-1" --threads 1 >"$work/one-1.out" 2>"$work/one-1.err"
echo "1 rank  x 1 thread : $(rate "$work/one-1.out") tokens/s"
"$trainer" --spec "$work/spec.json" --out "$work/one-2" --threads 2 >"$work/one-2.out" 2>"$work/one-2.err"
echo "1 rank  x 2 threads: $(rate "$work/one-2.out") tokens/s"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$trainer" --spec "$work/spec.json" --out "$work/two" --threads 1 --rank 1 --world-size 2 \
  --rendezvous "127.0.0.1:$port" >"$work/two-1.out" 2>"$work/two-1.err" &
rank1=$!
"$trainer" --spec "$work/spec.json" --out "$work/two" --threads 1 --rank 0 --world-size 2 \
  --rendezvous "127.0.0.1:$port" >"$work/two-0.out" 2>"$work/two-0.err"
wait "$rank1"
echo "2 ranks x 1 thread : $(rate "$work/two-0.out") tokens/s"
