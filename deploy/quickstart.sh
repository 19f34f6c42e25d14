#!/usr/bin/env bash
# One command from a fresh checkout to a fine-tuned LoRA adapter with its bill:
#   1. installs the Debian packages that are missing (deploy/install-deps.sh),
#   2. configures and builds the four executables (Release, Ninja),
#   3. starts tuneledger-server with one local worker on free loopback ports,
#   4. submits the demo LoRA job on the bundled tiny model with a budget,
#   5. watches it live to the end, then prints its cost report and where the adapter is,
#   6. stops everything it started (also on Ctrl-C or an error).
#
# Environment: BUILD_DIR (default build), JOBS (default: cores), QUICKSTART_DIR (where the
# database, work dir and logs go; default a new folder under /tmp, kept afterwards because the
# adapter lives there), PRICE_PER_GPU_HOUR (default 2.50, what the local worker charges),
# BUDGET_USD (default 1.00).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

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
say "build (-j$jobs): tuneledger-server tuneledger-worker tuneledger-train tunectl"
cmake --build "$build_dir" -j "$jobs" --target tuneledger-server tuneledger-worker \
  tuneledger-train tunectl
bin="$build_dir/bin"

model="$root/models/tiny-llama"
train="$root/models/demo/train.jsonl"
valid="$root/models/demo/valid.jsonl"
for path in "$model/config.json" "$train" "$valid"; do
  if [ ! -e "$path" ]; then
    echo "quickstart: $path is missing; rebuild the bundled model with models/build_tiny_llama.sh" >&2
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

say "submit the demo LoRA job (budget \$${BUDGET_USD:-1.00})"
spec_args=()
if [ -f "$root/models/demo/spec.json" ]; then spec_args=(--spec "$root/models/demo/spec.json"); fi
submitted=$("${tunectl[@]}" --output json submit "${spec_args[@]}" --model "$model" \
  --train "$train" --valid "$valid" --name quickstart-demo --budget-usd "${BUDGET_USD:-1.00}")
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
say "done"
echo "adapter (PEFT format): $adapter"
ls -l "$adapter"
