#!/usr/bin/env bash
# One call on a lent GPU machine does everything that needs the GPU (docs/gpu.md): configure for the GPU's own
# architecture, build with -j16, run the whole test suite, compute-sanitizer over the GPU tests, `culstm check`,
# and record it all (device, driver, commit, commands, raw output) under $OUT (or bench/results/ when OUT is unset).
# Carry a GoogleTest source copy as third_party/googletest when the machine has no GoogleTest package.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-bench/results}"
mkdir -p "$out"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
log="$out/gpu-session-$stamp.txt"
exec > >(tee "$log") 2>&1

echo "== culstm GPU session $stamp"
echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv || true
nvcc --version | tail -2 || true
cmake --version | head -1 || true
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())' || true

gtest_flag=()
if [[ -d third_party/googletest ]] && ! dpkg-query -W libgtest-dev >/dev/null 2>&1; then
  gtest_flag=(-DCULSTM_GTEST_SOURCE_DIR="$PWD/third_party/googletest")
fi
set -x
cmake -S . -B build/gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCULSTM_BUILD_TESTS=ON "${gtest_flag[@]}" &&
  cmake --build build/gpu -j16 || { echo "BUILD FAILED"; exit 1; }
build/gpu/tools/culstm info
ctest --test-dir build/gpu --output-on-failure -j4 2>&1 | tail -40
# memcheck over the whole GPU suite; racecheck and synccheck (slow: shared-memory tracking) over the tests that run
# the persistent engine's shared memory and barriers at several sizes, plus a slice of the covering grid.
race_filter='CudaBackendPersistent.*:CudaBackendMedium.*:CudaBackend.RepeatedRunsAreBitwiseIdentical:Covering/CudaBackendGrid.MatchesReference/c1?_*'
compute-sanitizer --tool memcheck --error-exitcode 1 build/gpu/tests/culstm_gpu_tests 2>&1 | tail -15
echo "compute-sanitizer memcheck exit: ${PIPESTATUS[0]}"
for tool in racecheck synccheck; do
  timeout 400 compute-sanitizer --tool "$tool" --error-exitcode 1 build/gpu/tests/culstm_gpu_tests \
    --gtest_filter="$race_filter" 2>&1 | tail -15
  echo "compute-sanitizer $tool exit: ${PIPESTATUS[0]}"
done
build/gpu/tools/culstm check
set +x
echo "== done; log: $log"
