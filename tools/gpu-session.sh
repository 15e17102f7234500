#!/usr/bin/env bash
# Everything that needs the GPU except the benchmark (docs/gpu.md), in phases that each fit one device-tool call
# (10 minutes at most); the build in build/gpu stays on the warm machine between calls:
#   tools/gpu-session.sh build-test   configure for the GPU's own architecture, build (-j16), culstm info, the whole
#                                     ctest suite, culstm check                                   (~4-6 min)
#   tools/gpu-session.sh sanitize     compute-sanitizer memcheck (GPU suite), racecheck and synccheck (the tests
#                                     that run the persistent engine's shared memory and barriers)  (~5-8 min)
#   tools/gpu-session.sh all          both, for a machine with time to spare
# Each phase writes one log with device, driver, commit and commands to $OUT (bench/results/ when OUT is unset).
# Carry a GoogleTest source copy as third_party/googletest when the machine has no GoogleTest package.
set -uo pipefail
cd "$(dirname "$0")/.."
phase="${1:-all}"
case "$phase" in build-test | sanitize | all) ;; *)
  echo "usage: tools/gpu-session.sh [build-test|sanitize|all]" >&2
  exit 2
  ;;
esac
out="${OUT:-bench/results}"
mkdir -p "$out"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
log="$out/gpu-session-$phase-$stamp.txt"
exec > >(tee "$log") 2>&1
t0=$(date +%s)
elapsed() { echo "[+$(($(date +%s) - t0)) s]"; }

echo "== culstm GPU session, phase $phase, $stamp"
echo "command: tools/gpu-session.sh $*"
echo "commit: $(git rev-parse HEAD 2>/dev/null || echo "${CULSTM_COMMIT:-unknown}")$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv || true
nvcc --version | tail -2 || true

build_and_test() {
  cmake --version | head -1 || true
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())' || true
  local gtest_flag=()
  if [[ -d third_party/googletest ]] && ! dpkg-query -W libgtest-dev >/dev/null 2>&1; then
    gtest_flag=(-DCULSTM_GTEST_SOURCE_DIR="$PWD/third_party/googletest")
  fi
  set -x
  cmake -S . -B build/gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCULSTM_BUILD_TESTS=ON "${gtest_flag[@]}" &&
    cmake --build build/gpu -j16 || { echo "BUILD FAILED"; return 1; }
  { set +x; } 2>/dev/null
  elapsed
  build/gpu/tools/culstm info
  # The CPU-labelled tests through ctest (the fuzzers run in CI); the GPU tests as ONE process, so that the suite's
  # "[culstm measured]" table (worst error per engine and precision over all cases) and cuDNN's refusals come out
  # whole (ctest would run each case in its own process).
  timeout 200 ctest --test-dir build/gpu --output-on-failure -j8 -LE gpu -E '^fuzz\.' 2>&1 | tail -25
  echo "ctest (cpu tests) exit: ${PIPESTATUS[0]}"
  elapsed
  timeout 240 build/gpu/tests/culstm_gpu_tests --gtest_brief=1 > build/gpu/gpu-tests.log 2>&1
  echo "culstm_gpu_tests exit: $? (124: stopped by the time limit)"
  grep -E "^\[  (PASSED|FAILED|SKIPPED) |tests? ran|culstm measured|cudnn refuses|Failure|FAILED" build/gpu/gpu-tests.log | head -120
  cp build/gpu/gpu-tests.log "$out/gpu-tests-$stamp.log"
  build/gpu/tools/culstm check
  elapsed
}

sanitize() {
  [[ -x build/gpu/tests/culstm_gpu_tests ]] || { echo "no build/gpu: run the build-test phase first"; return 1; }
  # racecheck and synccheck track shared memory and barriers (slow): the persistent engine's tests at several sizes
  # and a slice of the covering grid (both engines run in each case).
  local race_filter='CudaBackendPersistent.*:CudaBackendMedium.*:CudaBackend.RepeatedRunsAreBitwiseIdentical:Covering/CudaBackendGrid.MatchesReference/c1?_*'
  timeout 240 compute-sanitizer --tool memcheck --error-exitcode 1 build/gpu/tests/culstm_gpu_tests --gtest_brief=1 2>&1 |
    tail -15
  echo "compute-sanitizer memcheck exit: ${PIPESTATUS[0]} (124: stopped by the time limit)"
  elapsed
  for tool in racecheck synccheck; do
    timeout 150 compute-sanitizer --tool "$tool" --error-exitcode 1 build/gpu/tests/culstm_gpu_tests --gtest_brief=1 \
      --gtest_filter="$race_filter" 2>&1 | tail -15
    echo "compute-sanitizer $tool exit: ${PIPESTATUS[0]} (124: stopped by the time limit)"
    elapsed
  done
}

rc=0
if [[ "$phase" == build-test || "$phase" == all ]]; then build_and_test || rc=1; fi
if [[ "$phase" == sanitize || "$phase" == all ]]; then sanitize || rc=1; fi
echo "== done ($(elapsed)); log: $log"
exit $rc
