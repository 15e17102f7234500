#!/usr/bin/env bash
# The benchmark of issue 6 in one call on a lent GPU machine (bench/README.md): configure and build for the GPU's
# own architecture (-j16), `culstm check` (are the backends right before we time them?), sync_microbench,
# culstm_bench over the issue's grid (target points first, stopped cleanly by a time budget), torch_lstm_bench.py
# on the configurations culstm_bench reached, report.py. Everything lands in $OUT (bench/results/ when OUT is
# unset), in at most 7 files (the device tool returns 8):
#   $OUT/<date>-<device>/{results.md, speedup.png, culstm_bench.json, torch_lstm.json, sync_microbench.json,
#                         session.log}      <- copy this folder to bench/results/ and commit it
#   $OUT/bench-<stamp>.tar.gz                  everything, build log included (build/bench-gpu/ when OUT is unset)
#
#   CULSTM_COMMIT=$(git rev-parse HEAD) bash bench/run_gpu.sh [extra cmake args, e.g. -DCULSTM_GTEST_SOURCE_DIR=...]
#
# Environment: CULSTM_COMMIT (recorded commit; default git rev-parse, else "unknown"), CULSTM_BENCH_TOTAL_S
# (whole script's time, default 540: the device tool allows 600 per command), CULSTM_BENCH_ARGS (extra
# culstm_bench flags, e.g. "--quick" or "--batch 1,8"), TORCH_BENCH_ARGS, SYNC_BENCH_ARGS, CULSTM_BENCH_SKIP_TORCH=1.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
t_start=$(date +%s)
total=${CULSTM_BENCH_TOTAL_S:-540}
elapsed() { echo $(($(date +%s) - t_start)); }
left() { echo $((total - $(elapsed))); }

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out_root="${OUT:-bench/results}"
bundle_dir="${OUT:-build/bench-gpu}"
work="build/bench-gpu/run-$stamp"
mkdir -p "$work" "$out_root" "$bundle_dir"
exec 3>&1 4>&2
exec > >(tee "$work/session.log") 2>&1
tee_pid=$!

commit="${CULSTM_COMMIT:-}"
if [[ -z "$commit" ]]; then
  commit=$(git rev-parse HEAD 2>/dev/null || true)
  if [[ -n "$commit" ]] && ! git diff --quiet HEAD -- 2>/dev/null; then commit="$commit-dirty"; fi
fi
commit="${commit:-unknown}"
driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1 | tr -d ' ')
gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
device_slug=$(echo "${gpu_name:-unknown-gpu}" | tr 'A-Z' 'a-z' | sed -E 's/[^a-z0-9]+/-/g; s/^-+//; s/-+$//')
res="$out_root/$(date -u +%Y-%m-%d)-$device_slug"
[[ -e "$res" ]] && res="$res-$(date -u +%H%M%S)"
mkdir -p "$res"

echo "== culstm benchmark session $stamp (budget ${total}s)"
echo "command: bench/run_gpu.sh $*"
echo "commit: $commit"
echo "device: ${gpu_name:-none}; driver: ${driver:-none}"
nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total,clocks.sm,clocks.max.sm,temperature.gpu,power.draw \
  --format=csv 2>&1 || true
nvcc --version 2>&1 | tail -2 || true
cmake --version 2>&1 | head -1 || true
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())' 2>&1 || true

# ---- build: only what the benchmark needs (library, culstm_bench, sync_microbench, the culstm program).
build=build/bench-gpu/build
set -x
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCULSTM_BUILD_BENCH=ON -DCULSTM_BUILD_TESTS=OFF \
  -DCULSTM_BUILD_TOOLS=ON -DCULSTM_BENCH_COMMIT="$commit" "$@" > "$work/configure.log" 2>&1
configure_rc=$?
{ set +x; } 2>/dev/null
tail -n 15 "$work/configure.log"
built=0
if [[ $configure_rc -eq 0 ]]; then
  set -x
  cmake --build "$build" -j16 --target culstm_bench sync_microbench culstm_cli > "$work/build.log" 2>&1
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

bench_json="$work/culstm_bench.json"
sync_json="$work/sync_microbench.json"
torch_json="$work/torch_lstm.json"
if [[ $built == 1 ]]; then
  # ---- are the backends right? (a wrong kernel's speed means nothing)
  set -x
  timeout 90 "$build/tools/culstm" check
  rc=$?
  { set +x; } 2>/dev/null
  echo "== culstm check exit: $rc ($(elapsed)s)"

  # ---- the recurrence's per-step floor.
  set -x
  timeout 150 "$build/bench/sync_microbench" --json "$sync_json" --commit "$commit" --driver "${driver:-unknown}" \
    ${SYNC_BENCH_ARGS:-}
  rc=$?
  { set +x; } 2>/dev/null
  echo "== sync_microbench exit: $rc ($(elapsed)s)"

  # ---- culstm vs cuDNN: what is left, minus ~120 s for torch, the report and the tarball.
  budget=$(( $(left) - 120 ))
  if [[ ${CULSTM_BENCH_SKIP_TORCH:-0} == 1 ]]; then budget=$(( $(left) - 40 )); fi
  (( budget < 60 )) && budget=60
  set -x
  timeout --signal=INT $((budget + 60)) "$build/bench/culstm_bench" --budget-s "$budget" --target-ms 100 \
    --json "$bench_json" --sync-json "$sync_json" --commit "$commit" --driver "${driver:-unknown}" \
    ${CULSTM_BENCH_ARGS:-}
  rc=$?
  { set +x; } 2>/dev/null
  echo "== culstm_bench exit: $rc ($(elapsed)s)"
fi

# ---- torch.nn.LSTM on exactly the configurations culstm_bench reached (the default grid's start otherwise).
if [[ ${CULSTM_BENCH_SKIP_TORCH:-0} != 1 ]]; then
  torch_budget=$(( $(left) - 35 ))
  (( torch_budget < 20 )) && torch_budget=20
  from=()
  if [[ -s "$bench_json" ]] && python3 -c "import json,sys; sys.exit(0 if json.load(open('$bench_json')) else 1)" 2>/dev/null; then
    from=(--configs-from "$bench_json")
  fi
  set -x
  PYTHONUNBUFFERED=1 timeout --signal=INT $((torch_budget + 30)) python3 bench/torch_lstm_bench.py ${from[@]+"${from[@]}"} \
    --budget-s "$torch_budget" --target-ms 100 --json "$torch_json" --commit "$commit" --driver "${driver:-unknown}" \
    ${TORCH_BENCH_ARGS:-}
  rc=$?
  { set +x; } 2>/dev/null
  echo "== torch_lstm_bench exit: $rc ($(elapsed)s)"
fi

# ---- the table and the plot.
inputs=()
for f in "$bench_json" "$torch_json" "$sync_json"; do [[ -s "$f" ]] && inputs+=("$f"); done
if (( ${#inputs[@]} )); then
  python3 bench/report.py ${inputs[@]+"${inputs[@]}"} --out-dir "$res" \
    --command "CULSTM_COMMIT=$commit bench/run_gpu.sh $* (CULSTM_BENCH_ARGS='${CULSTM_BENCH_ARGS:-}')"
else
  echo "== no results to report"
fi
echo "== done ($(elapsed)s); results: $res"

# Close the log, then bundle: the results folder gets the log, the tarball gets everything.
exec 1>&3 2>&4
wait "$tee_pid" 2>/dev/null || true
cp "$work/session.log" "$res/session.log"
for f in ${inputs[@]+"${inputs[@]}"}; do [[ -e "$res/$(basename "$f")" ]] || cp "$f" "$res/"; done
tar -czf "$bundle_dir/bench-$stamp.tar.gz" -C build/bench-gpu "run-$stamp" -C "$(cd "$res/.." && pwd)" "$(basename "$res")" \
  2>/dev/null || echo "tar failed"
echo "results: $res ($(ls "$res" | tr '\n' ' '))"
echo "bundle: $bundle_dir/bench-$stamp.tar.gz"
if [[ -s "$res/results.md" ]]; then
  sed -n '1,/^## Cross-block/p' "$res/results.md" | head -n 70
fi
# Non-zero when no result came out of the run (the printed "exit:" lines say which step).
[[ $built == 1 && -s "$res/results.md" ]]
