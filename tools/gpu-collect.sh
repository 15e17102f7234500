#!/usr/bin/env bash
# Here, on the CPU machine, after device calls (docs/gpu.md): copies what each call returned into bench/results/
# and makes the benchmark report there.
#
#   tools/gpu-collect.sh FILES_AT [FILES_AT...]
#
# FILES_AT: the `files_at` folder of a device call's reply, holding one <date>-<device>/ folder (tools/gpu-session.sh
# writes there). Each such folder is merged into bench/results/<date>-<device>/; a file already there of the same
# name is kept and the new one is stored as <name>.2, <name>.3, ... (a re-run in the same lease). When the results
# folder then holds culstm_bench.json, bench/report.py writes results.md and speedup.png into it, with the verdict of
# phase 1's `culstm check` (the "culstm check:" line of tests.log; "not-run" without one). matplotlib, for the plot,
# is installed into build/report-venv with pip when python3 lacks it. CULSTM_RESULTS_ROOT replaces bench/results
# (for a trial run).
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
(( $# >= 1 )) || { echo "usage: tools/gpu-collect.sh FILES_AT [FILES_AT...]" >&2; exit 2; }

targets=()
for files_at in "$@"; do
  found=0
  for src in "$files_at"/*/; do
    [[ -d "$src" ]] || continue
    found=1
    name=$(basename "$src")
    dst="${CULSTM_RESULTS_ROOT:-$repo/bench/results}/$name"
    mkdir -p "$dst"
    for f in "$src"*; do
      [[ -f "$f" ]] || continue
      base=$(basename "$f") out="$dst/$(basename "$f")" k=2
      while [[ -e "$out" ]]; do
        out="$dst/$base.$k"
        k=$((k + 1))
      done
      cp "$f" "$out"
      echo "gpu-collect: $out"
    done
    [[ " ${targets[*]-} " == *" $dst "* ]] || targets+=("$dst")
  done
  ((found)) || echo "gpu-collect: nothing under $files_at (expected a <date>-<device>/ folder)" >&2
done

python=python3
if ! python3 -c 'import matplotlib' 2>/dev/null; then
  venv="$repo/build/report-venv"
  if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
    echo "gpu-collect: installing matplotlib into $venv (for the plot)"
    python3 -m venv "$venv" && "$venv/bin/pip" install -q matplotlib ||
      echo "gpu-collect: no matplotlib: the report is written without the plot" >&2
  fi
  "$venv/bin/python" -c 'import matplotlib' 2>/dev/null && python="$venv/bin/python"
fi

for dst in "${targets[@]}"; do
  [[ -s "$dst/culstm_bench.json" ]] || continue
  verdict=not-run
  if [[ -f "$dst/tests.log" ]]; then
    line=$(grep -E '^culstm check: (pass|FAIL)' "$dst/tests.log" | tail -1)
    [[ -n "$line" ]] && verdict=$(awk '{ print $3 }' <<< "$line")
  fi
  inputs=("$dst/culstm_bench.json")
  for f in sync_microbench.json torch_lstm.json; do [[ -s "$dst/$f" ]] && inputs+=("$dst/$f"); done
  planned=()
  [[ -s "$dst/culstm_bench_plan.txt" ]] && planned=(--planned "$dst/culstm_bench_plan.txt")
  cmd=$(grep -m1 '^command: ' "$dst/bench.log" 2>/dev/null | sed 's/^command: //')
  echo "gpu-collect: report for $dst (culstm check: $verdict)"
  "$python" "$repo/bench/report.py" "${inputs[@]}" --out-dir "$dst" --no-copy --check-status "$verdict" \
    "${planned[@]}" --command "${cmd:-tools/gpu-session.sh bench}"
done
