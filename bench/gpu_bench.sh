#!/usr/bin/env bash
# tuneledger-train beside Hugging Face transformers + PEFT on one NVIDIA GPU, in one command:
# builds tuneledger-train (trainer only, CUDA) against the torch of PYTHON, then runs
# bench/gpu_bench.py: random-init Llama models of 1.1B (TinyLlama shape) and 7B (Llama-2
# shape) in bf16, 8 x 1024-token batches, LoRA r 16 / alpha 32 / dropout 0.1 on all seven
# projections, AdamW, clip 1.0; prints tokens/s after warm-up, peak GPU memory and the
# PEFT-load loss check side by side, and writes everything measured to OUT.
#
#   bench/gpu_bench.sh [--python PY] [--models 1b,7b] [--out FILE] [--build-dir DIR]
#                      [--fp32-reference] [--tests]
#
# --models also takes 7b-qlora (NF4 base + gradient checkpointing, batch 1 x 2048: its peak
# memory) and 7b-qlora-dq (the same with double quantization, NF4_DQ); --fp32-reference runs each case again in fp32 and reports the eval-loss difference;
# --tests first builds and runs the GPU checks of the trainer's own tests (the CUDA kernels
# against their CPU references, bf16 activations, quantization): OUT with -tests.xml. They need
# GoogleTest's CMake package too (libgtest-dev and libgmock-dev, unpacked into DEPS_PREFIX as
# below).
#
# Needs: nvcc (PATH or /usr/local/cuda/bin), cmake, a C++ compiler, and a Python whose torch
# has CUDA and that has transformers, peft and safetensors. nlohmann-json's CMake package must
# be findable: Debian's nlohmann-json3-dev, or DEPS_PREFIX=<folder> holding usr/ of that .deb
# unpacked (`apt-get download nlohmann-json3-dev; dpkg -x nlohmann-json3-dev_*.deb DIR`).
# The models and data go under TMPDIR (about 16 GB for 7B, removed after each model).
set -euo pipefail
cd "$(dirname "$0")/.."

python=python3
models=1b,7b
out=gpu-bench-$(date -u +%Y%m%dT%H%M%SZ).json
build_dir=build-gpu-bench
extra=()
tests=0
while [ $# -gt 0 ]; do
  case $1 in
    --python) python=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --build-dir) build_dir=$2; shift 2 ;;
    --fp32-reference) extra+=(--fp32-reference); shift ;;
    --tests) tests=1; shift ;;
    -h | --help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_bench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

started=$(date +%s)
prefix=()
if [ -n "${DEPS_PREFIX:-}" ]; then prefix=(-DCMAKE_PREFIX_PATH="$(cd "$DEPS_PREFIX" && pwd)/usr"); fi
generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
echo "== build tuneledger-train against $("$python" -c 'import torch; print(torch.__version__)')"
mkdir -p "$build_dir"
build_dir=$(cd "$build_dir" && pwd)
cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DTUNELEDGER_TRAINER_ONLY=ON -DTUNELEDGER_BUILD_TESTS=OFF -DTUNELEDGER_BUILD_BENCH=OFF \
  -DTUNELEDGER_PYTHON="$(realpath -s "$(command -v "$python")")" "${prefix[@]}" >"$build_dir/configure.log" 2>&1 ||
  { cat "$build_dir/configure.log"; exit 1; }
grep -E 'LibTorch .* CUDA' "$build_dir/configure.log" || true
cmake --build "$build_dir" --target tuneledger-train -j "$(nproc)"
echo "== build took $(( $(date +%s) - started )) s"

if [ "$tests" = 1 ]; then
  echo "== build and run the trainer's GPU checks"
  cmake -S . -B "$build_dir" -DTUNELEDGER_BUILD_TESTS=ON >>"$build_dir/configure.log" 2>&1 ||
    { tail -40 "$build_dir/configure.log"; exit 1; }
  cmake --build "$build_dir" --target trainer_model_tests -j "$(nproc)"
  # Not fatal: the benchmark below still runs; the XML says what failed.
  "$build_dir/bin/trainer_model_tests" --gtest_output="xml:${out%.json}-tests.xml" \
    --gtest_filter='*Cuda*:*FusedOps*:*QuantScheme*:*ActivationDtype*:*LowPrecision*:*Lora*:*Dropout*' ||
    echo "== GPU checks FAILED (see ${out%.json}-tests.xml)"
fi

"$python" bench/gpu_bench.py run --trainer "$build_dir/bin/tuneledger-train" \
  --models "$models" --out "$out" "${extra[@]}"
echo "== total $(( $(date +%s) - started )) s"
