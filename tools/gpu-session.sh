#!/usr/bin/env bash
# The GPU plan of docs/gpu.md: one device-tool call per phase, run from the repository root on the lent machine with
# the carry built here by tools/gpu-carry.sh (carry: ["gpu-carry"]). Nothing is built there unless the carried
# binaries cannot load.
#
#   tools/gpu-session.sh tests              culstm info; culstm check on the default model and on bf16 B=1 H=512;
#                                           the GPU suite in three processes (cuda engines + cell math, cudnn, the
#                                           covering grid + per-backend memory/concurrency), each under the suite's
#                                           watchdog                                   (~4 min; timeout_s 420)
#   tools/gpu-session.sh sanitize           compute-sanitizer: memcheck on a focused filter, racecheck on the
#                                           persistent kernel at small shapes, synccheck on culstm's kernels
#                                                                                      (~5 min; timeout_s 330)
#   tools/gpu-session.sh memcheck FILTER    memcheck of FILTER alone, with the whole call (after a crash in call 1)
#   tools/gpu-session.sh bench              bench/run_gpu.sh: sync_microbench, culstm_bench on the headline grid
#                                                                                      (~3 min; timeout_s 200)
#   tools/gpu-session.sh filters            here, no GPU: every filter below names tests of the binary
#                                           ($CULSTM_GPU_TESTS, default gpu-carry/bin/culstm_gpu_tests), and the
#                                           three test processes together run each test exactly once
#
# Every phase first makes the libraries findable (LD_LIBRARY_PATH: the CUDA toolkit's, then python3's
# site-packages nvidia/*/lib, where cuDNN is) and checks with `ldd -r` that the carried binaries load; only when
# they do not, it rebuilds the four targets there (-j16, from gpu-carry/googletest) into build/gpu-fallback, which
# a later call on the still-warm machine reuses.
# Output: $OUT/<date>-<device>/ (bench/results/<date>-<device>/ when OUT is unset), at most 4 files per phase:
#   tests:    tests.log (this script's output: versions, checks, per-process summaries), gpu-cuda.log,
#             gpu-cudnn.log, gpu-grid.log (each process's whole output)
#   sanitize: sanitize.log, memcheck.log, racecheck.log, synccheck.log  (memcheck FILTER: sanitize.log, memcheck.log)
#   bench:    bench.log, culstm_bench.json, sync_microbench.json, culstm_bench_plan.txt
# tools/gpu-collect.sh copies them into bench/results/ here and makes the benchmark report.
# Environment: CULSTM_PHASE_S (this phase's time, default: the call's timeout_s of docs/gpu.md minus 20 s),
# CULSTM_REBUILD_JOBS (the fallback rebuild's parallelism, default 16: the GPU machine's cores).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

# ---- The test filters (gtest --gtest_filter), checked by `filters` against the binary built here.
# The GPU suite in three processes, in priority order, so that a hang or a sticky CUDA error in one cannot hide
# the others.
suites=(cuda cudnn grid)
filter_cuda='CellMathGpu.*:CudaBackend.*:CudaBackendPersistent.*:Precisions/CudaBackendMedium.*'
filter_cuda+=':Engines/CudaBackendEngine.*'
filter_cudnn='CudnnBackendGpu.*'
filter_grid='CudaBackendGridSelection.*:Covering/CudaBackendGrid.*:GpuBackends/ConcurrencyGpuTest.*'
filter_grid+=':GpuBackends/ForwardMemoryGpuTest.*'
# memcheck: every culstm kernel (stepwise ones and the persistent one in f32, tf32, f16, bf16; projection, reverse,
# bidirectional, zero lengths, omitted outputs, graphs) with its cuBLAS calls, and the cudnn backend's kernels and
# cudnnRNNForward over every dtype and direction, auto's timed runs into workspace scratch, capture. Left out: the
# tests that time the caller's stream (ForwardDoesNotSynchronizeTheCallersStream) or measure device memory
# (ForwardMemoryGpuTest): the sanitizer changes both.
grid_case='Covering/CudaBackendGrid.MatchesReference'
filter_memcheck="CellMathGpu.*:Precisions/CudaBackendMedium.*:$grid_case/c1_*:$grid_case/c15_*:$grid_case/c25_*"
filter_memcheck+=':CudaBackend.GraphReplayEqualsDirectLaunchBitForBit:CudaBackend.OptionalOutputsMayBeOmitted'
filter_memcheck+=':CudaBackend.AllLengthsZeroPassStatesThroughExactly'
filter_memcheck+=':Engines/CudaBackendEngine.CallerCanCaptureForwardIntoItsOwnGraph/*'
filter_memcheck+=':CudnnBackendGpu.MatchesReferenceAcrossSupportedConfigurations'
filter_memcheck+=':CudnnBackendGpu.OmittedYUnalignedWorkspaceAndOwnStream'
filter_memcheck+=':CudnnBackendGpu.AutoTunesOncePerShapeAndReportsIt:CudnnBackendGpu.StreamCapture'
# racecheck: the persistent kernel (culstm's only kernel with shared memory) at small shapes, every dtype, with
# projection, bidirectional and reverse stacks; the other kernels run uninstrumented (--kernel-name).
filter_race="$grid_case/c1_*:$grid_case/c5_*:$grid_case/c12_*:$grid_case/c14_*:$grid_case/c17_*:$grid_case/c24_*"
filter_race+=":$grid_case/c27_*"
# synccheck: the same cases for culstm's kernels (all of them: mangled names contain "culstm"), plus the cudnn
# backend's own kernels (length upload, sequence reversal).
filter_sync="$filter_race:CudnnBackendGpu.EdgeShapesAndMathModes"

phase="${1:-}"
case "$phase" in
  tests | sanitize | bench | filters) ;;
  memcheck) [[ -n "${2:-}" ]] || { echo "usage: tools/gpu-session.sh memcheck 'Suite.Test'" >&2; exit 2; } ;;
  *)
    echo "usage: tools/gpu-session.sh tests|sanitize|memcheck FILTER|bench|filters" >&2
    exit 2
    ;;
esac

# ---- filters: here, on the CPU machine.
list_tests() {  # $1: filter -> "Suite.Test" lines
  "$gpu_tests" --gtest_list_tests --gtest_filter="$1" 2>/dev/null |
    awk '/^[^ ]/ { suite = $1 } /^  / { print suite $1 }'
}
check_filters() {
  gpu_tests=${CULSTM_GPU_TESTS:-gpu-carry/bin/culstm_gpu_tests}
  [[ -x "$gpu_tests" ]] || { echo "filters: no test binary at $gpu_tests" >&2; return 1; }
  local bad=0 name pattern n all covered twice
  for name in cuda cudnn grid memcheck race sync; do
    local var="filter_$name"
    IFS=: read -r -a patterns <<< "${!var}"
    for pattern in "${patterns[@]}"; do
      n=$(list_tests "$pattern" | wc -l)
      if (( n == 0 )); then
        echo "filters: $name: '$pattern' names no test"
        bad=1
      fi
    done
    echo "filters: $name: $(list_tests "${!var}" | wc -l) tests"
  done
  all=$(list_tests '*' | sort)
  covered=$(for s in "${suites[@]}"; do var="filter_$s"; list_tests "${!var}"; done | sort)
  twice=$(uniq -d <<< "$covered")
  if [[ "$all" != "$(uniq <<< "$covered")" ]]; then
    echo "filters: the three test processes do not run every test:"
    comm -23 <(echo "$all") <(uniq <<< "$covered") | head -20
    bad=1
  fi
  if [[ -n "$twice" ]]; then
    echo "filters: tests run by two processes:"
    echo "$twice" | head -20
    bad=1
  fi
  for excluded in ForwardMemoryGpuTest ForwardDoesNotSynchronizeTheCallersStream; do
    if list_tests "$filter_memcheck:$filter_race:$filter_sync" | grep -q "$excluded"; then
      echo "filters: a sanitizer filter runs $excluded (it times the stream or measures device memory)"
      bad=1
    fi
  done
  (( bad == 0 )) && echo "filters: ok ($(wc -l <<< "$all") tests in the suite)"
  return $bad
}
if [[ "$phase" == filters ]]; then
  check_filters
  exit $?
fi

# ---- On the GPU machine from here on.
case "$phase" in
  tests) phase_s=${CULSTM_PHASE_S:-400} ;;
  sanitize | memcheck) phase_s=${CULSTM_PHASE_S:-310} ;;
  bench) phase_s=${CULSTM_PHASE_S:-180} ;;
esac
t0=$(date +%s)
deadline=$((t0 + phase_s))
left() { echo $((deadline - $(date +%s))); }
elapsed() { echo "[+$(($(date +%s) - t0)) s]"; }
# Seconds for a step: at most `cap`, leaving `reserve` for the steps after it.
budget() {
  local t=$(($(left) - $2))
  (( t > $1 )) && t=$1
  echo $t
}

gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
device_slug=$(echo "${gpu_name:-unknown-gpu}" | tr 'A-Z' 'a-z' | sed -E 's/[^a-z0-9]+/-/g; s/^-+//; s/-+$//')
res="${OUT:-bench/results}/$(date -u +%Y-%m-%d)-$device_slug"
mkdir -p "$res"
log_name=$phase
[[ "$phase" == memcheck ]] && log_name=sanitize
exec 3>&1 4>&2
exec > >(tee "$res/$log_name.log") 2>&1
tee_pid=$!
finish() {
  echo "== $phase done $(elapsed); files: $res/ ($(ls "$res" | tr '\n' ' '))"
  exec 1>&3 2>&4
  wait "$tee_pid" 2>/dev/null || true
  exit "$1"
}

commit=$(sed -n 's/^commit: //p' gpu-carry/BUILD_INFO 2>/dev/null)
echo "== culstm GPU session: phase $phase, $(date -u +%Y-%m-%dT%H:%M:%SZ), budget ${phase_s} s"
echo "command: tools/gpu-session.sh $*"
echo "carried binaries built from: ${commit:-unknown (no gpu-carry/BUILD_INFO: run tools/gpu-carry.sh here first)}"
nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total,clocks.sm,clocks.max.sm,temperature.gpu \
  --format=csv 2>&1 || true
# The machine's runtime decides whether compute-sanitizer works there (device KINDS.md: on gVisor, kernel 4.4.0, it
# refused the device on 2026-11-04; on Firecracker it ran).
echo "kernel: $(uname -r)"
export PATH="/usr/local/cuda/bin:$PATH"

# ---- Libraries: the CUDA toolkit's (cudart, cuBLAS for this driver), then PyTorch's nvidia/* wheels (cuDNN).
toolkit_libs=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda/lib; do
  [[ -d "$d" ]] && toolkit_libs+="${toolkit_libs:+:}$d"
done
wheel_libs=$(python3 - <<'PY' 2>/dev/null
import glob, os, site
roots = site.getsitepackages() + [site.getusersitepackages()]
dirs = []
for root in roots:
    for d in sorted(glob.glob(os.path.join(root, "nvidia", "*", "lib"))):
        if d not in dirs:
            dirs.append(d)
print(":".join(dirs))
PY
)
export LD_LIBRARY_PATH="${toolkit_libs}${wheel_libs:+:$wheel_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"

binaries=(culstm_gpu_tests culstm culstm_bench sync_microbench)
# Whether the four binaries in $1 load here (ldd -r: libraries and symbols) and start (no GPU needed for that).
binaries_load() {
  local dir=$1 ok=0 b out
  for b in "${binaries[@]}"; do
    if [[ ! -x "$dir/$b" ]]; then
      echo "  $b: missing in $dir"
      ok=1
      continue
    fi
    out=$(ldd -r "$dir/$b" 2>&1)
    if grep -qE 'not found|undefined symbol' <<< "$out"; then
      echo "  $b: does not load here:"
      grep -E 'not found|undefined symbol' <<< "$out" | head -5 | sed 's/^/    /'
      ok=1
    else
      echo "  $b: $(awk '$1 ~ /^lib(cudart|cublas|cublasLt|cudnn)\./ { printf "%s => %s  ", $1, $3 }' <<< "$out")"
    fi
  done
  if ((ok == 0)) && ! "$dir/culstm_gpu_tests" --gtest_list_tests > /dev/null 2>&1; then
    echo "  culstm_gpu_tests does not start"
    ok=1
  fi
  return $ok
}

# The four targets, built here from this tree (the same commit as the carry when it is fresh).
rebuild() {
  local dir=build/gpu-fallback
  echo "== rebuilding here into $dir $(elapsed)"
  local cfg=(cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90-real
             -DCULSTM_WITH_CUDNN=ON -DCULSTM_BUILD_TESTS=ON -DCULSTM_BUILD_BENCH=ON -DCULSTM_BUILD_TOOLS=ON
             -DCULSTM_BUILD_FUZZERS=OFF -DCULSTM_TSAN=OFF -DCULSTM_GTEST_SOURCE_DIR="$PWD/gpu-carry/googletest"
             -DCULSTM_BENCH_COMMIT="${commit:-unknown}-rebuilt-on-gpu-machine")
  echo "+ ${cfg[*]}"
  "${cfg[@]}" > "$dir.configure.log" 2>&1 || { tail -20 "$dir.configure.log"; return 1; }
  local jobs=${CULSTM_REBUILD_JOBS:-16}
  echo "+ cmake --build $dir --target culstm_gpu_tests culstm_cli culstm_bench sync_microbench -j$jobs"
  timeout 240 cmake --build "$dir" --target culstm_gpu_tests culstm_cli culstm_bench sync_microbench -j"$jobs" \
    > "$dir.build.log" 2>&1
  local rc=$?
  if ((rc != 0)); then
    ((rc == 124)) && echo "the build was stopped by its 240 s limit: $(tail -1 "$dir.build.log")"
    grep -E 'error|FAILED' "$dir.build.log" | head -20
    return 1
  fi
  mkdir -p "$dir/culstm-bin"
  ln -sf ../tests/culstm_gpu_tests ../tools/culstm ../bench/culstm_bench ../bench/sync_microbench "$dir/culstm-bin/"
  echo "== rebuilt $(elapsed)"
}

echo "== do the carried binaries load here?"
if binaries_load gpu-carry/bin; then
  bin=gpu-carry/bin
elif [[ -d build/gpu-fallback/culstm-bin ]] && binaries_load build/gpu-fallback/culstm-bin; then
  bin=build/gpu-fallback/culstm-bin
  echo "== using the binaries an earlier call rebuilt on this machine"
elif rebuild && binaries_load build/gpu-fallback/culstm-bin; then
  bin=build/gpu-fallback/culstm-bin
else
  echo "== NO RUNNABLE BINARIES: see above"
  finish 1
fi
echo "binaries: $bin $(elapsed)"

# ---- culstm check: the pass verdict of one configuration (both cuda engines must pass; cudnn's row is reported).
check_config() {  # $1: config ("" = the default model)
  local args=(check) out rc
  [[ -n "$1" ]] && args+=(--config "$1")
  echo "+ culstm ${args[*]}"
  out=$(CULSTM_CUDNN_TUNE_LOG=1 timeout 90 "$bin/culstm" "${args[@]}" 2>&1)
  rc=$?
  echo "$out"
  local cuda_pass
  cuda_pass=$(awk '$1 ~ /^cuda\// && $6 == "pass" { n++ } END { print n + 0 }' <<< "$out")
  if [[ $rc -ne 0 || $cuda_pass -lt 2 ]]; then
    echo "culstm check ${1:-(default)}: FAIL (exit $rc, cuda rows passing: $cuda_pass of 2)"
    return 1
  fi
  echo "culstm check ${1:-(default)}: pass (cudnn: $(awk '$1 == "cudnn" { print $6 }' <<< "$out"))"
}

# ---- One process of the GPU suite, under the watchdog (tests/gpu/gpu_test_listeners.cpp) and a time limit.
declare -A suite_rc
run_suite() {  # name filter cap reserve
  local name=$1 filter=$2 t
  t=$(budget "$3" "$4")
  if ((t < 20)); then
    echo "== gpu-$name: NOT RUN, ${t} s left"
    suite_rc[$name]=not-run
    return
  fi
  local watchdog=$((t < 150 ? t : 150))
  echo "== gpu-$name (limit ${t} s, watchdog ${watchdog} s per test): --gtest_filter='$filter' $(elapsed)"
  CULSTM_REQUIRE_GPU=1 CULSTM_TEST_TIMEOUT_S=$watchdog timeout -k 5 "$t" "$bin/culstm_gpu_tests" \
    --gtest_filter="$filter" > "$res/gpu-$name.log" 2>&1
  local rc=$?
  suite_rc[$name]=$rc
  echo "gpu-$name exit $rc (0 ok; 1 a test failed; 3 the watchdog; 124 the time limit; else a crash) $(elapsed)"
  if ((rc == 124 || rc == 137)); then
    echo "  running when stopped: $(grep '^\[ RUN      \]' "$res/gpu-$name.log" | tail -1)"
  fi
  # gtest's closing summary (counts, then each failed or skipped test once), the watchdog, errors left pending,
  # the measured-error table, cuDNN's refusals.
  sed -n '/tests\? from .* ran/,$p' "$res/gpu-$name.log" | grep -E '^\[(==========|  PASSED  |  FAILED  |  SKIPPED )\]' |
    sed 's/, where GetParam() = .*//' | head -40 | sed 's/^/  /'
  grep -E 'culstm watchdog|left a CUDA error|^\[culstm measured\]|\[cudnn refuses\]' "$res/gpu-$name.log" | head -40 |
    sed 's/^/  /'
  # A crash leaves no gtest summary: the last test that started is the one to memcheck alone (docs/gpu.md).
  if ! grep -q 'tests\? from .* ran' "$res/gpu-$name.log"; then
    echo "  NO SUMMARY (crash?): last test started: $(grep '^\[ RUN      \]' "$res/gpu-$name.log" | tail -1)"
    tail -5 "$res/gpu-$name.log" | sed 's/^/  | /'
  fi
}

phase_tests() {
  echo "== culstm info"
  timeout 60 "$bin/culstm" info
  local checks=pass
  check_config "" || checks=FAIL
  check_config input=512,hidden=512,layers=1,dir=fwd,dtype=bf16,batch=1,steps=100,lengths=full || checks=FAIL
  echo "culstm check: $checks $(elapsed)"
  # Priority order (docs/gpu.md): cuda engines, cudnn, the covering grid; each leaves time for those after it.
  run_suite cuda "$filter_cuda" 150 150
  run_suite cudnn "$filter_cudnn" 170 60
  run_suite grid "$filter_grid" 150 5
  echo "== summary: culstm check $checks; exit codes: gpu-cuda ${suite_rc[cuda]}, gpu-cudnn ${suite_rc[cudnn]}," \
    "gpu-grid ${suite_rc[grid]}"
  [[ $checks == pass && ${suite_rc[cuda]} == 0 && ${suite_rc[cudnn]} == 0 && ${suite_rc[grid]} == 0 ]]
}

# ---- compute-sanitizer.
sanitizer() {  # tool seconds filter kernel-filter(or "") -> $res/<tool>.log
  local tool=$1 t=$2 filter=$3 kernels=$4
  local cs
  cs=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null | head -1)
  [[ -n "$cs" ]] || { echo "no compute-sanitizer on PATH or in /usr/local/cuda/bin"; return 1; }
  if ((t < 30)); then
    echo "== $tool: NOT RUN, ${t} s left"
    return 1
  fi
  local args=(--tool "$tool" --error-exitcode 1
              # The suite and the library make CUDA calls fail on purpose (a 2^62-byte cudaMalloc, the legacy-stream
              # query under capture, cudaGraphExecUpdate on a new topology) and check those results themselves.
              --report-api-errors no)
  [[ -n "$kernels" ]] && args+=(--kernel-name "$kernels")
  echo "== $tool (limit ${t} s)${kernels:+ kernels $kernels}: --gtest_filter='$filter' $(elapsed)"
  CULSTM_REQUIRE_GPU=1 CULSTM_TEST_TIMEOUT_S=$t timeout -k 10 "$t" "$cs" "${args[@]}" \
    "$bin/culstm_gpu_tests" --gtest_filter="$filter" > "$res/$tool.log" 2>&1
  local rc=$?
  echo "$tool exit $rc (0 clean; 1 errors found or a test failed; 124 the time limit) $(elapsed)"
  # The sanitizer's summary and its kinds of reports (counted), then gtest's closing summary.
  grep -E '^========= (ERROR SUMMARY|RACECHECK SUMMARY|[A-Z][a-z]+ [a-z]+ .*(read|write|access|barrier|race|hazard))' \
    "$res/$tool.log" | sed -E 's/0x[0-9a-f]+/0x../g' | sort | uniq -c | sort -rn | head -15 | sed 's/^/  /'
  sed -n '/tests\? from .* ran/,$p' "$res/$tool.log" | grep -E '^\[(==========|  PASSED  |  FAILED  )\]' |
    sed 's/, where GetParam() = .*//' | head -20 | sed 's/^/  /'
  if ((rc == 124 || rc == 137)); then
    echo "  running when stopped: $(grep '^\[ RUN      \]' "$res/$tool.log" | tail -1)"
  fi
  return $((rc != 0))
}

phase_bench() {
  CULSTM_BIN_DIR="$bin" CULSTM_COMMIT="${commit:-unknown}" CULSTM_BENCH_TOTAL_S="$(left)" CULSTM_RESULTS_DIR="$res" \
    bash bench/run_gpu.sh
}

phase_sanitize() {
  "$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)" --version 2>&1 | tail -1
  local bad=0
  sanitizer memcheck "$(budget 150 140)" "$filter_memcheck" "" || bad=1
  # Where the sanitizer cannot use the device at all (seen on gVisor machines: "Device not supported"), racecheck
  # and synccheck would fail the same way: this call's time goes to the benchmark instead, and call 3 is not needed.
  if grep -q 'Device not supported' "$res/memcheck.log" 2>/dev/null; then
    echo "== SANITIZERS UNAVAILABLE on this machine (compute-sanitizer: Device not supported; kernel $(uname -r))."
    echo "== Running the benchmark phase in this call instead $(elapsed)"
    phase_bench || bad=1
    return $bad
  fi
  sanitizer racecheck "$(budget 90 50)" "$filter_race" "kns=culstm_lstm_persistent_layer" || bad=1
  sanitizer synccheck "$(budget 60 5)" "$filter_sync" "kns=culstm" || bad=1
  return $bad
}

rc=0
case "$phase" in
  tests) phase_tests || rc=1 ;;
  sanitize) phase_sanitize || rc=1 ;;
  memcheck) sanitizer memcheck "$(budget 100000 5)" "$2" "" || rc=1 ;;
  bench) phase_bench || rc=1 ;;
esac
finish $rc
