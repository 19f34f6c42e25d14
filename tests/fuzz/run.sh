#!/usr/bin/env bash
# Builds the fuzz targets (tests/fuzz/CMakeLists.txt) with clang, libFuzzer, ASan and UBSan in a
# build folder of their own, fuzzes each for a bounded time starting from its seeds, then
# replays every seed and regression input once (ctest -L fuzz). tests/run.sh calls it.
#   tests/fuzz/run.sh                     every target
#   tests/fuzz/run.sh jsonl_dataset ...   only these
# Environment: FUZZ_SECONDS (per target, default 20; 0 = replay only), FUZZ_BUILD_DIR (default
# build-fuzz), FUZZ_CXX (default clang++-14, Debian's clang-14), JOBS (default: cores).
# On a crash libFuzzer prints the stack and saves the input under
# $FUZZ_BUILD_DIR/artifacts/<target>/; the script prints the log's tail and fails. README.md
# says how to turn that input into a regression case.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)

build_dir=${FUZZ_BUILD_DIR:-build-fuzz}
case $build_dir in /*) ;; *) build_dir=$repo/$build_dir ;; esac
seconds=${FUZZ_SECONDS:-20}
jobs=${JOBS:-$(nproc)}
cxx=${FUZZ_CXX:-clang++-14}
all_targets=(safetensors_header jsonl_dataset hf_tokenizer job_spec job_spec_validator)
targets=("${@:-${all_targets[@]}}")

echo "== fuzz: configure ($build_dir, $cxx)"
mkdir -p "$build_dir"
# -O1 -g without NDEBUG: assertions (nlohmann's JSON_ASSERT, libstdc++'s) stay on.
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
  -DTUNELEDGER_FUZZ=ON -DTUNELEDGER_BUILD_TRAINER=OFF -DTUNELEDGER_BUILD_TESTS=OFF \
  -DTUNELEDGER_BUILD_BENCH=OFF >"$build_dir/configure.log" 2>&1 ||
  { cat "$build_dir/configure.log"; exit 1; }
echo "== fuzz: build (-j$jobs)"
cmake --build "$build_dir" -j "$jobs" --target "${targets[@]/%/_fuzzer}"

# Scratch files of the targets (fuzz_scratch_file.h) stay inside the build folder.
export TMPDIR=$build_dir/tmp
mkdir -p "$TMPDIR"
export UBSAN_OPTIONS=print_stacktrace=1
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ]; then
  for symbolizer in /usr/lib/llvm-14/bin/llvm-symbolizer llvm-symbolizer; do
    if command -v "$symbolizer" >/dev/null 2>&1; then
      export ASAN_SYMBOLIZER_PATH=$(command -v "$symbolizer")
      break
    fi
  done
fi

if [ "$seconds" -gt 0 ]; then
  for target in "${targets[@]}"; do
    corpus=$build_dir/corpus/$target
    artifacts=$build_dir/artifacts/$target
    log=$build_dir/logs/$target.log
    mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
    inputs=("$corpus" "tests/fuzz/$target/seeds")
    if [ -d "tests/fuzz/$target/regressions" ]; then inputs+=("tests/fuzz/$target/regressions"); fi
    # tokenizer.json seeds are a few KB; the others a few hundred bytes.
    max_len=4096
    if [ "$target" = hf_tokenizer ]; then max_len=16384; fi
    echo "== fuzz: $target for ${seconds}s"
    # New inputs go to the first folder (in the build folder); the checked-in ones are read only.
    if ! "$build_dir/bin/${target}_fuzzer" -max_total_time="$seconds" -max_len="$max_len" \
      -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/" \
      "${inputs[@]}" >"$log" 2>&1; then
      tail -n 80 "$log"
      echo "fuzz: $target FAILED; the input is in $artifacts/ (tests/fuzz/README.md)" >&2
      exit 1
    fi
    grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$log" | tr '\n' ' '
    echo
  done
fi

echo "== fuzz: replay seeds and regressions"
pattern="^fuzz\.($(IFS='|'; echo "${targets[*]}"))\$"
ctest --test-dir "$build_dir" --output-on-failure -L fuzz -R "$pattern"
