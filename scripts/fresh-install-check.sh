#!/usr/bin/env bash
# The kit installs and runs on another CPython: `pip install .` (not editable, not the
# Makefile's venv) into a fresh venv of CPython $1 (default 3.12), then the tutorial's
# model through `quantkit run` across the oneDNN, ONNX and ARM targets. The side
# environments (Paddle Lite on CPython 3.10, Paddle 3) are the shared ones `make
# side-envs` made; this checks the kit reaches them from another interpreter.
#
#   scripts/fresh-install-check.sh [3.12]      (CI runs it after `make test`)
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-3.12}"

python=""
for candidate in "python$version" $(pyenv root 2>/dev/null)/versions/"$version"*/bin/"python$version" \
                 "$HOME"/.pyenv/versions/"$version"*/bin/"python$version" "/usr/bin/python$version"; do
    if "$candidate" -c "import sys, venv; assert sys.version_info[:2] == tuple(map(int, '$version'.split('.')))" >/dev/null 2>&1; then
        python="$candidate"; break
    fi
done
if [ -z "$python" ]; then
    echo "fresh-install-check: no CPython $version found (pyenv install $version)" >&2
    exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/quantkit-py$version.XXXXXX")"
trap 'rm -rf "$work"' EXIT
echo "fresh-install-check: CPython $version ($python) in $work"
start=$(date +%s)
"$python" -m venv "$work/venv"
# From a copy of what a wheel is built from: setuptools' build/ in the checkout could hold
# modules of an earlier build and put them in the wheel.
mkdir "$work/src"
cp -r pyproject.toml README.md quantkit "$work/src/"
find "$work/src" -name __pycache__ -prune -exec rm -rf {} +
if ! "$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$work/src" \
        > "$work/pip.log" 2>&1; then
    grep -v "^WARNING: Location" "$work/pip.log" | tail -20 >&2
    echo "fresh-install-check: pip install failed on CPython $version" >&2
    exit 1
fi
echo "fresh-install-check: pip install . took $(( $(date +%s) - start )) s"
"$work/venv/bin/python" -m quantkit.environment_check

cd "$work"  # nothing of the checkout on the path: the installed kit only
venv/bin/quantkit doctor | grep -E "^(python|side env|paddlepaddle|onnxruntime) " || true
# The tutorial's model (short training: this checks the install, not the accuracy).
venv/bin/quantkit demo --steps 200 --eval-limit 1000 --out demo
venv/bin/quantkit run demo/fp32 --model-filename fp32.pdmodel --params-filename fp32.pdiparams \
    --calib mnist-train --calib-limit 320 --eval mnist --eval-limit 1000 \
    --targets intel-onednn-fp32,intel-onednn-int8,onnxruntime-int8,arm-lite-int8 \
    --iterations 20 --out run
venv/bin/python - <<'PY'
import json
records = json.load(open("run/results.json"))["records"]
status = {r["target"]: r["status"] for r in records}
print("fresh-install-check: statuses", status)
assert all(status[t] == "ok" for t in ("intel-onednn-fp32", "intel-onednn-int8",
                                      "onnxruntime-int8")), status
assert status["arm-lite-int8"] == "skipped", status  # converted; runs on an ARM board
assert __import__("pathlib").Path("run/artifacts/arm-lite-int8/model.nb").stat().st_size > 0
PY
echo "fresh-install-check: ok in $(( $(date +%s) - start )) s"
