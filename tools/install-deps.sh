#!/usr/bin/env bash
# Installs what building and testing culstm needs from Debian's packages, when it is missing. The CUDA 13 toolkit
# (nvcc, cuBLAS, cuDNN 9) is expected to be installed already; this script says so clearly when it is not.
set -euo pipefail

# clang-14 + libclang-rt-14-dev: the libFuzzer targets in tests/fuzz (built and run briefly by ctest when present).
# python3-venv + python3-dev: the venv below and the headers the Python extension (python/) compiles against.
packages=(cmake ninja-build g++ libgtest-dev googletest python3 python3-venv python3-dev clang-14 libclang-rt-14-dev)
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
# The Python package's build and test environment: build/venv (git-ignored; the test preset's Python), made with
# Debian's python3 and python/requirements-ci.txt, a complete pinned list installed with --no-deps (torch's own
# metadata names NVIDIA wheels the CUDA toolkit already provides). Rebuilt only when that list changes.
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/build/venv"
requirements="$root/python/requirements-ci.txt"
stamp="$venv/culstm-requirements.txt"
if [[ -x "$venv/bin/python" ]] && cmp -s "$requirements" "$stamp"; then
  echo "install-deps: $venv is up to date"
else
  echo "install-deps: making $venv from python/requirements-ci.txt"
  rm -rf "$venv"
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    -r "$requirements"
  cp "$requirements" "$stamp"
fi
echo "install-deps: ok"
