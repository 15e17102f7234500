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
exec 3>&1 4>&2
exec > >(tee "$log") 2>&1
tee_pid=$!
t0=$(date +%s)
elapsed() { echo "[+$(($(date +%s) - t0)) s]"; }

echo "== culstm GPU session, phase $phase, $stamp"
echo "command: tools/gpu-session.sh $*"
if [[ -n "${CULSTM_COMMIT:-}" ]]; then commit="$CULSTM_COMMIT"
elif git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  commit="$(git rev-parse HEAD)$(git diff --quiet HEAD -- 2>/dev/null || echo ' (dirty)')"
else commit="unknown (no .git here: pass CULSTM_COMMIT)"; fi
echo "commit: $commit"
nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv || true
nvcc --version | tail -2 || true

configure_and_build() {
  cmake --version | head -1 || true
  local gtest_flag=()
  # The carried copy wins whenever it is there (no guessing from dpkg which GoogleTest CMake would find).
  if [[ -d third_party/googletest ]]; then
    gtest_flag=(-DCULSTM_GTEST_SOURCE_DIR="$PWD/third_party/googletest")
  fi
  # CPU-only extras that CI runs anyway (libFuzzer targets with clang, the ThreadSanitizer build): off here.
  set -x
  cmake -S . -B build/gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCULSTM_BUILD_TESTS=ON -DCULSTM_BUILD_FUZZERS=OFF \
    -DCULSTM_TSAN=OFF "${gtest_flag[@]}" ${CULSTM_CMAKE_ARGS:-} &&
    cmake --build build/gpu -j"$(nproc)"
  local rc=$?
  { set +x; } 2>/dev/null
  [[ $rc -eq 0 ]] || { echo "BUILD FAILED"; return 1; }
  grep -q '^CULSTM_WITH_CUDNN:BOOL=ON' build/gpu/CMakeCache.txt ||
    echo "WARNING: built WITHOUT cuDNN (set CUDNN_ROOT=<site-packages>/nvidia/cudnn)"
  elapsed
}

build_and_test() {
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())' || true
  configure_and_build || return 1
  build/gpu/tools/culstm info
  # The CPU-labelled tests through ctest (the fuzzers run in CI); the GPU tests as ONE process, so that the suite's
  # "[culstm measured]" table (worst error per engine and precision over all cases) and cuDNN's refusals come out
  # whole (ctest would run each case in its own process).
  timeout 200 ctest --test-dir build/gpu --output-on-failure -j8 -LE gpu -E '^fuzz\.' > "$out/ctest-cpu-$stamp.log" 2>&1
  local ctest_rc=$?
  echo "ctest (cpu tests) exit: $ctest_rc (full output: ctest-cpu-$stamp.log)"
  sed -n '/tests passed, /,$p' "$out/ctest-cpu-$stamp.log" | head -40
  elapsed
  # CULSTM_REQUIRE_GPU: a test that cannot reach the GPU fails instead of skipping. Not brief: the "[ RUN ]" lines
  # name a test that hangs (the suite's watchdog, tests/gpu/gpu_test_listeners.cpp, ends it after 180 s).
  CULSTM_REQUIRE_GPU=1 timeout -k 10 240 build/gpu/tests/culstm_gpu_tests > build/gpu/gpu-tests.log 2>&1
  local gpu_rc=$?
  echo "culstm_gpu_tests exit: $gpu_rc (124: stopped by the time limit; 3: the watchdog)"
  if [[ $gpu_rc -eq 124 ]]; then echo "still running then:"; grep '^\[ RUN      \]' build/gpu/gpu-tests.log | tail -1; fi
  grep -E "^\[  (PASSED|FAILED|SKIPPED) |test suites? ran|culstm measured|culstm watchdog|left a CUDA error|cudnn refuses|Failure|FAILED" build/gpu/gpu-tests.log | head -120
  cp build/gpu/gpu-tests.log "$out/gpu-tests-$stamp.log"
  build/gpu/tools/culstm check
  local check_rc=$?
  elapsed
  ((ctest_rc == 0 && gpu_rc == 0 && check_rc == 0))
}

sanitize() {
  # A cold machine (the warm one went back) has no build/gpu: build it here (~1 min on 16 cores).
  [[ -x build/gpu/tests/culstm_gpu_tests ]] || configure_and_build || return 1
  local cs
  cs=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer 2>/dev/null | head -1)
  [[ -n "$cs" ]] || { echo "no compute-sanitizer on PATH or in /usr/local/cuda"; return 1; }
  "$cs" --version | tail -1
  local bad=0
  # racecheck and synccheck track shared memory and barriers (slow): the persistent engine's tests at several sizes
  # and a slice of the covering grid (both engines run in each case).
  local race_filter='CudaBackendPersistent.*:Precisions/CudaBackendMedium.*:CudaBackend.RepeatedRunsAreBitwiseIdentical:Covering/CudaBackendGrid.MatchesReference/c1?_*'
  # Time left in this call (540 s of the tool's 600, the build included) split 45/55 between memcheck and the others.
  local left=$((540 - ($(date +%s) - t0)))
  (( left >= 120 )) || { echo "only ${left} s left in this call: run the sanitize phase in a call of its own"; return 1; }
  local mem_s=$((left * 45 / 100)) race_s=$((left * 55 / 200))
  # ForwardMemoryGpuTest compares cudaMemGetInfo before and after: the sanitizer's own allocations would fail it.
  # --report-api-errors no: the suite and the library make CUDA calls fail on purpose (a 2^62-byte cudaMalloc, the
  # legacy-stream query under capture, cudaGraphExecUpdate on a new topology) and check those results themselves.
  CULSTM_REQUIRE_GPU=1 CULSTM_TEST_TIMEOUT_S=600 timeout "$mem_s" "$cs" --tool memcheck --report-api-errors no --error-exitcode 1 \
    build/gpu/tests/culstm_gpu_tests --gtest_brief=1 \
    --gtest_filter='-*ForwardMemoryGpuTest.*' > "$out/memcheck-$stamp.log" 2>&1
  local st=$?
  tail -15 "$out/memcheck-$stamp.log"
  echo "compute-sanitizer memcheck exit: $st (124: stopped by the time limit of ${mem_s} s)"
  [[ $st -eq 0 ]] || bad=1
  elapsed
  for tool in racecheck synccheck; do
    # Only culstm's own kernels (their mangled names contain "culstm"): cuBLAS's are not ours to fix, and slow.
    CULSTM_REQUIRE_GPU=1 CULSTM_TEST_TIMEOUT_S=600 timeout "$race_s" "$cs" --tool "$tool" --kernel-name kns=culstm --report-api-errors no \
      --error-exitcode 1 \
      build/gpu/tests/culstm_gpu_tests --gtest_brief=1 --gtest_filter="$race_filter" > "$out/$tool-$stamp.log" 2>&1
    st=$?
    tail -15 "$out/$tool-$stamp.log"
    echo "compute-sanitizer $tool exit: $st (124: stopped by the time limit of ${race_s} s)"
    [[ $st -eq 0 ]] || bad=1
    elapsed
  done
  return $bad
}

rc=0
if [[ "$phase" == build-test || "$phase" == all ]]; then build_and_test || rc=1; fi
if [[ "$phase" == sanitize || "$phase" == all ]]; then sanitize || rc=1; fi
echo "== done ($(elapsed)); log: $log"
exec 1>&3 2>&4
wait "$tee_pid" 2>/dev/null || true
exit $rc
