#!/usr/bin/env bash
# The one test command: installs what is missing, configures, builds, runs every test.
#   ./tests/run.sh                 everything (unit, integration, slow)
#   ./tests/run.sh -L unit         only tests with a label (any ctest arguments pass through)
# Environment: BUILD_DIR (default build), JOBS (default: cores), CMAKE_BUILD_TYPE (Release).
set -euo pipefail
cd "$(dirname "$0")/.."

./deploy/install-deps.sh

build_dir=${BUILD_DIR:-build}
jobs=${JOBS:-$(nproc)}
generator=()
if command -v ninja >/dev/null 2>&1 && [ ! -f "$build_dir/Makefile" ]; then generator=(-G Ninja); fi

echo "== configure ($build_dir)"
cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-Release}"
echo "== build (-j$jobs)"
cmake --build "$build_dir" -j "$jobs"
echo "== test"
# Benchmarks (label "bench") measure time and are never gated here.
ctest --test-dir "$build_dir" --output-on-failure --timeout 900 -LE bench "$@"
