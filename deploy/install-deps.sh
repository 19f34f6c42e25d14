#!/usr/bin/env bash
# Installs every Debian 12 package tuneledger builds, tests and runs with.
# Idempotent and quick when everything is present: it asks dpkg first and only calls apt-get
# for what is missing. Needs root (or sudo) only when something is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git clang-format
  libgrpc++-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev libabsl-dev
  prometheus-cpp-dev libsqlite3-dev sqlite3 libtorch-dev libopenblas0-pthread
  libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev libsentencepiece-dev
  prometheus prometheus-alertmanager
  python3 python3-torch python3-grpcio python3-numpy python3-yaml procps
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"

# LibTorch links the reference BLAS unless OpenBLAS is the selected alternative: that is a
# 40x difference in training speed on CPU.
for alt in libblas.so.3-x86_64-linux-gnu liblapack.so.3-x86_64-linux-gnu; do
  target=$(update-alternatives --list "$alt" 2>/dev/null | grep openblas-pthread | head -n1 || true)
  if [ -n "$target" ]; then "${sudo_cmd[@]}" update-alternatives --set "$alt" "$target" >/dev/null; fi
done
echo "install-deps: done"
