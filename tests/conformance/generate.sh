#!/usr/bin/env bash
# Regenerates one framework's conformance fixtures: creates build/conformance/venv-FRAMEWORK (once) from
# tests/conformance/requirements-FRAMEWORK.txt, then runs gen_FRAMEWORK.py, which rewrites
# tests/conformance/fixtures/FRAMEWORK/.
#   tests/conformance/generate.sh pytorch|onnxruntime|keras|mindspore
# PYTHON picks the interpreter for the virtual environment (default: python3.11, else python3; 3.10-3.12 work).
set -euo pipefail
framework="${1:-}"
case "$framework" in
  pytorch|onnxruntime|keras|mindspore) ;;
  *) echo "usage: $0 pytorch|onnxruntime|keras|mindspore" >&2; exit 2 ;;
esac
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/build/conformance/venv-$framework"
python="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [[ ! -x "$venv/bin/python" ]]; then
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements-$framework.txt"
cd "$here"
"$venv/bin/python" "gen_$framework.py"
echo "wrote $(ls "$here/fixtures/$framework" | wc -l) files to tests/conformance/fixtures/$framework"
