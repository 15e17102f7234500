#!/usr/bin/env bash
# The benchmark phase on a lent GPU machine, with binaries built beforehand (bench/README.md, docs/gpu.md). Run it
# through `tools/gpu-session.sh bench`, which finds and checks the binaries (the carry, or a rebuild there), sets
# the library path and the variables below, and logs everything to <results>/bench.log:
#   1. sync_microbench (the recurrence's per-step floor: grid sync, flags, clusters);
#   2. culstm_bench on the headline grid: batch 1, 8, 64 x hidden 512, 1024 x T 100 x 1 layer x uni, bi x f32,
#      bf16; each culstm engine (default, stepwise, persistent) against cuDNN's fastest algorithm, every runner's
#      outputs verified before it is timed (a wrong one is `wrong_output`, never a number that counts). No CPU gate
#      here: phase 1's `culstm check` is the gate. Stopped cleanly by a time budget (the JSON is rewritten after
#      every configuration, so a cut run keeps what it measured).
# Files in <results>: culstm_bench.json, sync_microbench.json, culstm_bench_plan.txt (the grid `--dry-run` planned
# with the same flags, for report.py's coverage count). The report (results.md, speedup.png) is made afterwards,
# on the CPU machine, by tools/gpu-collect.sh with bench/report.py: no device time.
#
# Environment (all set by tools/gpu-session.sh): CULSTM_BIN_DIR (culstm_bench, sync_microbench), CULSTM_RESULTS_DIR,
# CULSTM_COMMIT (recorded in every record), CULSTM_BENCH_TOTAL_S (this script's time). Knobs for later leases:
# CULSTM_BENCH_ARGS (replaces the headline grid flags, e.g. the whole default grid: "--steps 100,1000"),
# SYNC_BENCH_ARGS (replaces "--hidden 512,1024"), CULSTM_BENCH_TORCH=1 (also torch_lstm_bench.py on the
# configurations culstm_bench reached).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
: "${CULSTM_BIN_DIR:?set by tools/gpu-session.sh bench}" "${CULSTM_RESULTS_DIR:?set by tools/gpu-session.sh bench}"
t_start=$(date +%s)
total=${CULSTM_BENCH_TOTAL_S:-180}
commit=${CULSTM_COMMIT:-unknown}
res=$CULSTM_RESULTS_DIR
left() { echo $((total - ($(date +%s) - t_start))); }
elapsed() { echo "[+$(($(date +%s) - t_start)) s]"; }
driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1 | tr -d ' ')

# The issue's headline grid (docs/gpu.md): the 3x and 1.5x target classes at T = 100, one layer.
headline="--batch 1,8,64 --hidden 512,1024 --steps 100 --layers 1 --dirs uni,bi --dtypes f32,bf16"
grid_args=${CULSTM_BENCH_ARGS:-$headline}
# sync_microbench for the headline's hidden sizes only (the recurrence floor of a record uses its own H); it writes
# its JSON at the end, so it must finish inside its limit.
sync_args=${SYNC_BENCH_ARGS:---hidden 512,1024}

# Clocks, temperature, power and throttle reasons around each step: a number taken while the GPU was throttled or
# still clocking up shows here (nothing here changes clocks).
gpu_state() {
  echo "-- gpu state $1:"
  nvidia-smi --query-gpu=clocks.sm,clocks.mem,temperature.gpu,power.draw,clocks_event_reasons.active --format=csv \
    2>&1 || true
}
echo "== benchmark: budget ${total} s; commit $commit; driver ${driver:-unknown}; grid: $grid_args"
lscpu 2>/dev/null | grep -E '^(Model name|CPU\(s\))' || true  # latency numbers include host launch time
gpu_state "before"

# ---- 1. sync_microbench: at most 60 s, and never the time culstm_bench needs.
sync_json="$res/sync_microbench.json"
t=$(( $(left) - 100 ))
(( t > 60 )) && t=60
if (( t >= 15 )); then
  set -x
  timeout --signal=INT "$t" "$CULSTM_BIN_DIR/sync_microbench" --json "$sync_json" --commit "$commit" \
    --driver "${driver:-unknown}" $sync_args
  rc=$?
  { set +x; } 2>/dev/null
  echo "== sync_microbench exit $rc $(elapsed)"
  gpu_state "after sync_microbench"
else
  echo "== sync_microbench skipped: ${t} s for it"
fi

# ---- 2. culstm_bench: what is left, less 20 s (its stop is checked between measurements; and 60 s for torch when
# asked).
plan="$res/culstm_bench_plan.txt"
"$CULSTM_BIN_DIR/culstm_bench" --dry-run --target-ms 100 $grid_args > "$plan" 2>&1 || true
tail -n 1 "$plan"
bench_json="$res/culstm_bench.json"
budget=$(( $(left) - 20 ))
[[ ${CULSTM_BENCH_TORCH:-0} == 1 ]] && budget=$(( budget - 60 ))
sync_arg=()
[[ -s "$sync_json" ]] && sync_arg=(--sync-json "$sync_json")
bench_rc=1
if (( budget < 30 )); then
  echo "== culstm_bench skipped: ${budget} s of budget (< 30)"
else
  set -x
  timeout --signal=INT $((budget + 15)) "$CULSTM_BIN_DIR/culstm_bench" $grid_args --budget-s "$budget" \
    --target-ms 100 --json "$bench_json" ${sync_arg[@]+"${sync_arg[@]}"} --commit "$commit" \
    --driver "${driver:-unknown}"
  bench_rc=$?
  { set +x; } 2>/dev/null
  echo "== culstm_bench exit $bench_rc $(elapsed)"
  gpu_state "after culstm_bench"
fi

# ---- 3. torch.nn.LSTM (later leases only): the configurations culstm_bench reached, same math and timing mode.
if [[ ${CULSTM_BENCH_TORCH:-0} == 1 && -s "$bench_json" ]]; then
  t=$(( $(left) - 5 ))
  set -x
  PYTHONUNBUFFERED=1 timeout --signal=INT "$t" python3 bench/torch_lstm_bench.py --configs-from "$bench_json" \
    --budget-s $((t - 10)) --target-ms 100 --json "$res/torch_lstm.json" --commit "$commit" \
    --driver "${driver:-unknown}" ${TORCH_BENCH_ARGS:-}
  rc=$?
  { set +x; } 2>/dev/null
  echo "== torch_lstm_bench exit $rc $(elapsed)"
fi
[[ $bench_rc -eq 0 && -s "$bench_json" ]]
