#!/usr/bin/env bash
# Builds, here on the CPU machine, what a lent GPU machine runs, and puts it into one git-ignored folder that the
# device tool's `carry` names (docs/gpu.md):
#
#   tools/gpu-carry.sh           Release build for sm_90 (H100 and H200) in build/gpu-carry of culstm_gpu_tests,
#                                culstm, culstm_bench and sync_microbench; copies them to gpu-carry/bin, a
#                                GoogleTest source copy to gpu-carry/googletest (for tools/gpu-session.sh's
#                                fallback rebuild there), and gpu-carry/BUILD_INFO (the commit they were built from,
#                                toolchain, cuDNN, what each binary links); checks the test filters against the
#                                binary built here; prints the carry's size and the travelling tree's (< 64 MiB)
#   tools/gpu-carry.sh --check   only checks that gpu-carry/ exists, was built from HEAD with a clean tree, and that
#                                the travelling tree fits: run it right before the device calls
#
# Environment: JOBS (build parallelism, default 2), CULSTM_GTEST_SOURCE (default /usr/src/googletest).
# The carry holds binaries built on this machine's image (Debian 12: glibc 2.36, libstdc++ of GCC 12); each phase
# of tools/gpu-session.sh checks with ldd that they load there, and rebuilds there only when they do not.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
carry=gpu-carry
build=build/gpu-carry
limit_bytes=$((64 * 1024 * 1024))
targets=(culstm_gpu_tests culstm_cli culstm_bench sync_microbench)

die() {
  echo "gpu-carry: $*" >&2
  exit 1
}

# The commit the working tree is at, "-dirty" when anything that travels differs from it (untracked files travel
# too, so they count).
current_commit() {
  local c
  c=$(git rev-parse HEAD 2>/dev/null) || {
    echo unknown
    return
  }
  [[ -n "$(git status --porcelain 2>/dev/null)" ]] && c="$c-dirty"
  echo "$c"
}

# Bytes of what the device tool sends: tracked and untracked-not-ignored files, shared/ when the checkout has one,
# and the carry folder.
travelling_bytes() {
  local tree carried shared=0
  tree=$(git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
  carried=$(du -sb "$carry" 2>/dev/null | cut -f1)
  [[ -d shared ]] && shared=$(du -sb shared | cut -f1)
  echo $(( ${tree:-0} + ${carried:-0} + shared ))
}

check_size() {
  local total carried
  carried=$(du -sb "$carry" | cut -f1)
  total=$(travelling_bytes)
  awk -v c="$carried" -v t="$total" -v d="$carry" 'BEGIN {
    printf "gpu-carry: %s is %.1f MiB; the travelling tree with it %.1f MiB (limit 64 MiB)\n", d, c / 2^20, t / 2^20
  }'
  (( total < limit_bytes )) || die "the travelling tree is over the device tool's 64 MiB: carry less"
}

check_fresh() {
  [[ -f "$carry/BUILD_INFO" ]] || die "no $carry/BUILD_INFO: run tools/gpu-carry.sh first"
  local built now
  built=$(sed -n 's/^commit: //p' "$carry/BUILD_INFO")
  now=$(current_commit)
  echo "gpu-carry: built from $built; the working tree is at $now"
  [[ "$built" == "$now" && "$now" != *-dirty ]] ||
    die "the carry is not from a clean HEAD: commit, then run tools/gpu-carry.sh again"
  for b in culstm_gpu_tests culstm culstm_bench sync_microbench; do
    [[ -x "$carry/bin/$b" ]] || die "$carry/bin/$b is missing"
  done
  [[ -f "$carry/googletest/CMakeLists.txt" ]] || die "$carry/googletest is missing"
}

if [[ "${1:-}" == --check ]]; then
  check_fresh
  check_size
  echo "gpu-carry: ok"
  exit 0
fi
[[ $# -eq 0 ]] || die "usage: tools/gpu-carry.sh [--check]"

commit=$(current_commit)
[[ "$commit" == *-dirty ]] && echo "gpu-carry: WARNING: the working tree is dirty; the binaries record $commit"
gtest_src=${CULSTM_GTEST_SOURCE:-/usr/src/googletest}
[[ -f "$gtest_src/CMakeLists.txt" ]] || die "no GoogleTest sources at $gtest_src (apt-get install googletest)"
export PATH=/usr/local/cuda/bin:$PATH
launchers=()
if command -v ccache >/dev/null; then
  launchers=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache
             -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
# The GPU machines are Hopper (compute capability 9.0): SASS for sm_90 only. cuDNN is required: without it there is
# no cudnn backend to test and no cuDNN baseline to measure against.
configure=(cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90-real
           -DCULSTM_WITH_CUDNN=ON -DCULSTM_BUILD_TESTS=ON -DCULSTM_BUILD_BENCH=ON -DCULSTM_BUILD_TOOLS=ON
           -DCULSTM_BUILD_FUZZERS=OFF -DCULSTM_TSAN=OFF -DCULSTM_BENCH_COMMIT="$commit" "${launchers[@]}")
echo "+ ${configure[*]}"
"${configure[@]}" > /tmp/gpu-carry-configure.log 2>&1 || {
  tail -30 /tmp/gpu-carry-configure.log
  die "configure failed"
}
echo "+ cmake --build $build --target ${targets[*]} -j${JOBS:-2}"
cmake --build "$build" --target "${targets[@]}" -j"${JOBS:-2}" || die "build failed"

rm -rf "$carry"
mkdir -p "$carry/bin"
cp "$build/tests/culstm_gpu_tests" "$build/tools/culstm" "$build/bench/culstm_bench" "$build/bench/sync_microbench" \
  "$carry/bin/" || die "copying the binaries failed"
cp -r "$gtest_src" "$carry/googletest"
{
  echo "commit: $commit"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(. /etc/os-release && echo "$PRETTY_NAME")," \
    "$(ldd --version | head -1)"
  echo "compilers: $(nvcc --version | tail -1); $(c++ --version | head -1)"
  echo "configure: ${configure[*]}"
  grep -E '^(CMAKE_CUDA_ARCHITECTURES|CUDNN_LIBRARY|CUDNN_INCLUDE_DIR|CULSTM_WITH_CUDNN):' "$build/CMakeCache.txt"
  echo "googletest: copy of $gtest_src"
  echo "-- what the binaries need (ldd here):"
  for b in "$carry"/bin/*; do
    echo "$(basename "$b"): $(ldd "$b" | awk '$1 ~ /^lib(cudart|cublas|cublasLt|cudnn)\./ { printf "%s ", $1 }')"
  done
  echo "-- culstm info here:"
  "$carry/bin/culstm" info 2>&1 | grep -E '^(culstm|cuda_toolkit|cuda_runtime|cuda_architectures|cublas|cudnn):'
} > "$carry/BUILD_INFO"
cat "$carry/BUILD_INFO"

# The filters the device phases run must name tests of this binary (no GPU needed to list them).
CULSTM_GPU_TESTS="$carry/bin/culstm_gpu_tests" bash tools/gpu-session.sh filters || die "the test filters do not fit"
check_size
echo "gpu-carry: ready; name \"$carry\" in each device call's carry (docs/gpu.md)"
