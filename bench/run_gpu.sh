#!/usr/bin/env bash
# The benchmark of issue 6 in one call on a lent GPU machine (bench/README.md): configure and build for the GPU's
# own architecture (-j16), `culstm check` on benchmark shapes (the correctness gate: are the backends right before we
# time them?), sync_microbench, culstm_bench over the issue's grid (target points first, stopped cleanly by a time
# budget), torch_lstm_bench.py on the configurations culstm_bench reached, report.py. Everything lands in $OUT
# (bench/results/ when OUT is unset), in at most 7 files (the device tool returns 8):
#   $OUT/<date>-<device>/{results.md, speedup.png, culstm_bench.json, torch_lstm.json, sync_microbench.json,
#                         session.log}      <- copy this folder to bench/results/ and commit it
#   $OUT/bench-<stamp>.tar.gz                  everything, build log included (build/bench-gpu/ when OUT is unset)
# The JSON files and session.log are written into that folder as the run goes, so a call cut at the tool's 600 s
# limit still returns everything measured until then.
#
#   CULSTM_COMMIT=$(git rev-parse HEAD) bash bench/run_gpu.sh [extra cmake args, e.g. -DCULSTM_GTEST_SOURCE_DIR=...]
#
# Environment: CULSTM_COMMIT (recorded commit; default git rev-parse, "-dirty" when `git status --porcelain` shows
# anything, else "unknown"), CULSTM_BENCH_TOTAL_S (whole script's time, default 540: the device tool allows 600 per
# command), CULSTM_BENCH_ARGS (extra culstm_bench flags, e.g. "--quick" or "--batch 1,8"), TORCH_BENCH_ARGS,
# SYNC_BENCH_ARGS, CULSTM_BENCH_SKIP_TORCH=1. All of them are written into results.md's command line.
# Exit status: non-zero when no results.md came out or `culstm check` failed (results.md then says so on top).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
t_start=$(date +%s)
total=${CULSTM_BENCH_TOTAL_S:-540}
elapsed() { echo $(($(date +%s) - t_start)); }
left() { echo $((total - $(elapsed))); }

commit="${CULSTM_COMMIT:-}"
if [[ -z "$commit" ]]; then
  commit=$(git rev-parse HEAD 2>/dev/null || true)
  # Untracked files travel to the device too, so they count as changes (git diff would miss them).
  if [[ -n "$commit" && -n "$(git status --porcelain 2>/dev/null)" ]]; then commit="$commit-dirty"; fi
fi
commit="${commit:-unknown}"
driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1 | tr -d ' ')
gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
device_slug=$(echo "${gpu_name:-unknown-gpu}" | tr 'A-Z' 'a-z' | sed -E 's/[^a-z0-9]+/-/g; s/^-+//; s/-+$//')

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out_root="${OUT:-bench/results}"
bundle_dir="${OUT:-build/bench-gpu}"
work="build/bench-gpu/run-$stamp"  # configure/build logs, check output, the planned grid: the tarball only
res="$out_root/$(date -u +%Y-%m-%d)-$device_slug"
[[ -e "$res" ]] && res="$res-$(date -u +%H%M%S)"
mkdir -p "$work" "$res" "$bundle_dir"
exec 3>&1 4>&2
exec > >(tee "$res/session.log") 2>&1
tee_pid=$!

# The exact command, every knob included, for session.log and results.md.
command_line="CULSTM_COMMIT=$commit"
for knob in CULSTM_BENCH_TOTAL_S CULSTM_BENCH_ARGS TORCH_BENCH_ARGS SYNC_BENCH_ARGS CULSTM_BENCH_SKIP_TORCH; do
  [[ -n "${!knob:-}" ]] && command_line+=" $knob='${!knob}'"
done
command_line+=" bash bench/run_gpu.sh${*:+ $*}"

# Clocks, temperature, power and throttle reasons around each phase: a number taken while the GPU was throttled or
# still clocking up shows here (the script never changes clocks). Failures are ignored.
gpu_state() {
  echo "-- gpu state $1:"
  nvidia-smi --query-gpu=clocks.sm,clocks.mem,temperature.gpu,power.draw,clocks_event_reasons.active --format=csv \
    2>&1 || true
}

echo "== culstm benchmark session $stamp (budget ${total}s)"
echo "command: $command_line"
echo "commit: $commit"
echo "device: ${gpu_name:-none}; driver: ${driver:-none}"
nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total,clocks.sm,clocks.max.sm,temperature.gpu,power.draw \
  --format=csv 2>&1 || true
# Latency-mode numbers include host launch time, so the host CPU matters.
lscpu 2>/dev/null | grep -E '^(Model name|CPU\(s\)|CPU max MHz|CPU MHz)' || true
nvcc --version 2>&1 | tail -2 || true
cmake --version 2>&1 | head -1 || true
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())' 2>&1 || true

# ---- build: only what the benchmark needs (library, culstm_bench, sync_microbench, the culstm program). Bounded, so
# that a slow cold build cannot eat the whole call.
build=build/bench-gpu/build
set -x
timeout 120 cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCULSTM_BUILD_BENCH=ON \
  -DCULSTM_BUILD_TESTS=OFF -DCULSTM_BUILD_TOOLS=ON -DCULSTM_BENCH_COMMIT="$commit" "$@" > "$work/configure.log" 2>&1
configure_rc=$?
{ set +x; } 2>/dev/null
tail -n 15 "$work/configure.log"
built=0
if [[ $configure_rc -eq 0 ]]; then
  set -x
  timeout 300 cmake --build "$build" -j16 --target culstm_bench sync_microbench culstm_cli > "$work/build.log" 2>&1
  build_rc=$?
  { set +x; } 2>/dev/null
  grep -E "error|warning: .*bench|FAILED" "$work/build.log" | head -40
  [[ $build_rc -eq 0 ]] && built=1
fi
echo "== build: $([[ $built == 1 ]] && echo ok || echo FAILED, see build.log in the tarball) ($(elapsed)s)"
if ! grep -q '^CULSTM_WITH_CUDNN:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
  echo "== WARNING: built WITHOUT cuDNN: no cuDNN baseline column (set CUDNN_ROOT=<site-packages>/nvidia/cudnn)"
fi
# cuDNN from PyTorch's wheel: let it find its sub-libraries (libcudnn_adv.so.9 ...) next to libcudnn.so.9.
cudnn_lib=$(sed -n 's/^CUDNN_LIBRARY:FILEPATH=//p' "$build/CMakeCache.txt" 2>/dev/null)
if [[ -n "$cudnn_lib" ]]; then
  cudnn_dir=$(dirname "$cudnn_lib")
  export LD_LIBRARY_PATH="$cudnn_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

bench_json="$res/culstm_bench.json"
sync_json="$res/sync_microbench.json"
torch_json="$res/torch_lstm.json"
plan="$work/culstm_bench_plan.txt"
check_status=not-run
if [[ $built == 1 ]]; then
  # ---- the correctness gate: `culstm check` (every GPU backend and engine against the float64 reference) on
  # benchmark shapes: bf16 at a 3x target point (persistent candidate), f32 at H=2048 (weights too large for the
  # chip), f32 at batch 64, a 4-layer bidirectional bf16 stack. A wrong kernel's speed means nothing: on FAIL,
  # results.md opens with a banner and gives no target counts. (Each costs seconds of CPU reference time.)
  gpu_state "before culstm check"
  check_status=pass
  for cfg in input=512,hidden=512,layers=1,dir=fwd,dtype=bf16,batch=1,steps=100,lengths=full \
             input=2048,hidden=2048,layers=1,dir=fwd,dtype=f32,batch=1,steps=100,lengths=full \
             input=256,hidden=256,layers=1,dir=fwd,dtype=f32,batch=64,steps=100,lengths=full \
             input=512,hidden=512,layers=4,dir=bi,dtype=bf16,batch=8,steps=100,lengths=full; do
    set -x
    timeout 60 "$build/tools/culstm" check --config "$cfg" > "$work/check.txt" 2>&1
    rc=$?
    { set +x; } 2>/dev/null
    cat "$work/check.txt"
    # `culstm check` exits 0 when no GPU backend could run (only the CPU reference was checked then): here that is
    # a failure too, so a cuda row must also say "pass" (column 6 of its table).
    if [[ $rc -ne 0 ]] || grep -q "no GPU backend ran" "$work/check.txt" ||
       ! awk '$1 ~ /^cuda\// && $6 == "pass" { found = 1 } END { exit !found }' "$work/check.txt"; then
      check_status=FAIL
    fi
    echo "== culstm check --config $cfg: exit $rc, $check_status so far ($(elapsed)s)"
    [[ $check_status == FAIL ]] && break  # one failure decides; keep the time for the numbers
  done
  echo "== culstm check on benchmark shapes: $check_status"
  gpu_state "after culstm check"

  # ---- the recurrence's per-step floor.
  set -x
  timeout 150 "$build/bench/sync_microbench" --json "$sync_json" --commit "$commit" --driver "${driver:-unknown}" \
    ${SYNC_BENCH_ARGS:-}
  rc=$?
  { set +x; } 2>/dev/null
  echo "== sync_microbench exit: $rc ($(elapsed)s)"
  gpu_state "after sync_microbench"

  # ---- the grid culstm_bench will walk, with its flags (no GPU needed): report.py counts what was not reached.
  "$build/bench/culstm_bench" --dry-run --target-ms 100 ${CULSTM_BENCH_ARGS:-} > "$plan" 2>&1 || true
  tail -n 1 "$plan"

  # ---- culstm vs cuDNN: what is left, minus ~120 s for torch, the report and the tarball. Too little left: skip it
  # rather than overrun the call (which would lose everything).
  budget=$(( $(left) - 120 ))
  if [[ ${CULSTM_BENCH_SKIP_TORCH:-0} == 1 ]]; then budget=$(( $(left) - 40 )); fi
  if (( budget < 60 )); then
    echo "== culstm_bench skipped: ${budget}s of budget left (< 60)"
  else
    set -x
    timeout --signal=INT $((budget + 60)) "$build/bench/culstm_bench" --budget-s "$budget" --target-ms 100 \
      --json "$bench_json" --sync-json "$sync_json" --commit "$commit" --driver "${driver:-unknown}" \
      ${CULSTM_BENCH_ARGS:-}
    rc=$?
    { set +x; } 2>/dev/null
    echo "== culstm_bench exit: $rc ($(elapsed)s)"
    gpu_state "after culstm_bench"
  fi
fi

# ---- torch.nn.LSTM on exactly the configurations culstm_bench reached (the default grid's start otherwise); it
# takes the f32 math and timing mode from those records.
if [[ ${CULSTM_BENCH_SKIP_TORCH:-0} != 1 ]]; then
  torch_budget=$(( $(left) - 35 ))
  if (( torch_budget < 20 )); then
    echo "== torch_lstm_bench skipped: ${torch_budget}s of budget left (< 20)"
  else
    from=()
    if [[ -s "$bench_json" ]] && python3 -c "import json,sys; sys.exit(0 if json.load(open('$bench_json')) else 1)" 2>/dev/null; then
      from=(--configs-from "$bench_json")
    fi
    set -x
    PYTHONUNBUFFERED=1 timeout --signal=INT $((torch_budget + 30)) python3 bench/torch_lstm_bench.py \
      ${from[@]+"${from[@]}"} --budget-s "$torch_budget" --target-ms 100 --json "$torch_json" --commit "$commit" \
      --driver "${driver:-unknown}" ${TORCH_BENCH_ARGS:-}
    rc=$?
    { set +x; } 2>/dev/null
    echo "== torch_lstm_bench exit: $rc ($(elapsed)s)"
    gpu_state "after torch_lstm_bench"
  fi
fi

# ---- the table and the plot.
inputs=()
for f in "$bench_json" "$torch_json" "$sync_json"; do [[ -s "$f" ]] && inputs+=("$f"); done
planned=()
[[ -s "$plan" ]] && planned=(--planned "$plan")
if (( ${#inputs[@]} )); then
  python3 bench/report.py ${inputs[@]+"${inputs[@]}"} --out-dir "$res" --check-status "$check_status" \
    ${planned[@]+"${planned[@]}"} --command "$command_line"
else
  echo "== no results to report"
fi
echo "== done ($(elapsed)s); results: $res"

# Close the log (it is already in the results folder), then bundle everything with the build logs.
exec 1>&3 2>&4
wait "$tee_pid" 2>/dev/null || true
tar -czf "$bundle_dir/bench-$stamp.tar.gz" -C build/bench-gpu "run-$stamp" -C "$(cd "$res/.." && pwd)" "$(basename "$res")" \
  2>/dev/null || echo "tar failed"
echo "results: $res ($(ls "$res" | tr '\n' ' '))"
echo "bundle: $bundle_dir/bench-$stamp.tar.gz"
if [[ -s "$res/results.md" ]]; then
  sed -n '1,/^## Cross-block/p' "$res/results.md" | head -n 70
fi
echo "culstm check on benchmark shapes: $check_status"
# Non-zero when no result came out of the run or the correctness gate failed (the "exit:" lines say which step).
[[ $built == 1 && -s "$res/results.md" && $check_status == pass ]]
