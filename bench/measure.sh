#!/usr/bin/env bash
# Runs every benchmark the way bench/README.md's table was measured and keeps the raw output.
#   bench/measure.sh [server|trainer|all]       (default all)
# Environment: BUILD_DIR (default build), OUT (default $BUILD_DIR/bench-results/<UTC time>),
#   MIN_TIME (seconds per server benchmark, default 2), STEPS (timed steps of the 110M case, 3),
#   TMPDIR (where the SQLite files go: the disk being measured).
# The trainer part runs trainer_step_bench and then the eager PyTorch baseline (PYTHON, default
# .venv/bin/python3: the same torch) right after it, so both see the same machine load, in each
# of two thread environments (~7 minutes on 2 cores);
# load.txt records the load average around every run.
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-all}
build=${BUILD_DIR:-build}
out=${OUT:-$build/bench-results/$(date -u +%Y%m%dT%H%M%SZ)}
min_time=${MIN_TIME:-2}
steps=${STEPS:-3}
mkdir -p "$out"

note_load() { echo "$(date -u +%FT%TZ) $1 loadavg $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/load.txt"; }

run_bench() {
  local name=$1
  shift
  note_load "$name start"
  # Server code logs to stderr; the table goes to stdout and the JSON to a file.
  "$build/bin/$name" "$@" --benchmark_out="$out/$name.json" --benchmark_out_format=json \
    2>"$out/$name.stderr" | tee "$out/$name.txt"
  note_load "$name end"
}

{
  echo "date: $(date -u +%FT%TZ)"
  echo "host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
    "$(free -g | awk '/Mem:/ {print $2}') GiB"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "tmpdir: ${TMPDIR:-/tmp} on $(df --output=source "${TMPDIR:-/tmp}" | tail -n1)"
} >"$out/machine.txt"
cat "$out/machine.txt"

if [ "$what" = server ] || [ "$what" = all ]; then
  run_bench job_store_bench --benchmark_min_time="$min_time"
  run_bench rpc_bench --benchmark_min_time="$min_time"
  run_bench control_plane_bench --seconds=3
  run_bench metrics_bench --benchmark_min_time="$min_time"
fi
if [ "$what" = trainer ] || [ "$what" = all ]; then
  # Two thread environments (LibTorch's bundled libgomp reads it when it loads):
  #   defaults  libgomp's threads spin after every parallel region
  #   passive   OMP_WAIT_POLICY=PASSIVE (threads sleep between regions; tuneledger-train set it
  #             for itself with LibTorch 1.13 + OpenBLAS, where it paid, and no longer does:
  #             bench/README.md, finding 7)
  python=${PYTHON:-.venv/bin/python3}
  for variant in defaults passive; do
    case $variant in
      defaults) environment=(env -u OMP_WAIT_POLICY) ;;
      passive) environment=(env OMP_WAIT_POLICY=PASSIVE) ;;
    esac
    echo "== thread environment: $variant"
    note_load "trainer_step_bench ($variant) start"
    "${environment[@]}" "$build/bin/trainer_step_bench" --llama110m --steps="$steps" \
      --benchmark_min_time=5 --benchmark_out="$out/trainer_step_bench.$variant.json" \
      --benchmark_out_format=json 2>"$out/trainer_step_bench.$variant.stderr" |
      tee "$out/trainer_step_bench.$variant.txt"
    note_load "trainer_step_bench ($variant) end; eager_lora_step.py ($variant) start"
    "${environment[@]}" "$python" bench/reference/eager_lora_step.py --llama110m \
      --steps "$steps" --min-seconds 5 | tee "$out/eager_lora_step.$variant.jsonl"
    note_load "eager_lora_step.py ($variant) end"
  done
fi
echo "results in $out"
cat "$out/load.txt"
