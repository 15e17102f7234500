#!/usr/bin/env bash
# Installs what building and testing culstm needs from Debian's packages, when it is missing. The CUDA 13 toolkit
# (nvcc, cuBLAS, cuDNN 9) is expected to be installed already; this script says so clearly when it is not.
set -euo pipefail

# clang-14 + libclang-rt-14-dev: the libFuzzer targets in tests/fuzz (built and run briefly by ctest when present).
packages=(cmake ninja-build g++ libgtest-dev googletest python3 clang-14 libclang-rt-14-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  sudo_cmd=""
  if [[ $(id -u) -ne 0 ]]; then sudo_cmd="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v nvcc >/dev/null 2>&1 && [[ ! -x /usr/local/cuda/bin/nvcc ]]; then
  echo "install-deps: error: the CUDA toolkit (nvcc) was not found; install CUDA 13 (nvcc, cuBLAS) first" >&2
  exit 1
fi
echo "install-deps: ok"
