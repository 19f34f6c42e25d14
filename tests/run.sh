#!/usr/bin/env bash
# The one test command: installs what is missing, configures, builds, runs every test.
#   ./tests/run.sh                 everything (unit, integration, slow), then a short fuzzing run
#                                  of each fuzz target (tests/fuzz/run.sh) and the ASan + UBSan
#                                  build of the unit and integration tests that need no LibTorch
#                                  (tests/sanitizers.sh)
#   ./tests/run.sh -L unit         only tests with a label (any ctest arguments pass through;
#                                  with arguments, no fuzzing and no sanitizer build)
# Environment: BUILD_DIR (default build), JOBS (default: cores), CMAKE_BUILD_TYPE (Release);
# TUNELEDGER_SKIP_FUZZ=1 and TUNELEDGER_SKIP_SANITIZERS=1 skip those two steps locally (CI
# runs both); FUZZ_SECONDS (tests/fuzz/run.sh, default 20 per target).
# Each step prints its wall time ("== time: ..."), so a CI log shows where its budget goes.
set -euo pipefail
cd "$(dirname "$0")/.."

step_start=$SECONDS
step_done() {
  echo "== time: $1 took $((SECONDS - step_start)) s"
  step_start=$SECONDS
}

./deploy/install-deps.sh --test
step_done install-deps

build_dir=${BUILD_DIR:-build}
jobs=${JOBS:-$(nproc)}
generator=()
if command -v ninja >/dev/null 2>&1 && [ ! -f "$build_dir/Makefile" ]; then generator=(-G Ninja); fi

echo "== configure ($build_dir)"
cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-Release}"
echo "== build (-j$jobs)"
cmake --build "$build_dir" -j "$jobs"
step_done "configure + build"
echo "== test"
# Benchmarks (label "bench") measure time and are never gated here.
ctest --test-dir "$build_dir" --output-on-failure --timeout 900 -LE bench "$@"
step_done tests

if [ $# -eq 0 ] && [ "${TUNELEDGER_SKIP_FUZZ:-0}" != 1 ]; then
  JOBS=$jobs ./tests/fuzz/run.sh
  step_done "fuzz (tests/fuzz/run.sh)"
fi
if [ $# -eq 0 ] && [ "${TUNELEDGER_SKIP_SANITIZERS:-0}" != 1 ]; then
  JOBS=$jobs ./tests/sanitizers.sh
  step_done "sanitizers (tests/sanitizers.sh)"
fi
echo "== time: all took $SECONDS s"
