#!/usr/bin/env bash
# Download, on a machine with internet, the few pure-Python wheels that benchmarks/gpu_all.sh needs beyond an
# image holding torch, triton and numpy (array-api-compat for spikedyn; snntorch, norse and its nir /
# nirtorch for the peer cases) into .whl/ (git-ignored), for a GPU machine that cannot reach a registry:
#   bash benchmarks/gpu_wheels.sh          then carry .whl to the GPU machine and run gpu_all.sh there,
#                                          which installs .whl/*.whl into a temporary folder first.
# norse 1.1.0 is published as a source archive only; it is pure Python, so it is built into a wheel here.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
exclude="$(git rev-parse --git-path info/exclude)"
grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >> "$exclude"
mkdir -p .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: -d .whl \
  "array-api-compat==1.16.0" "snntorch==1.0.0" "nir==1.0.8" "nirtorch==2.6"
"$PY" -m pip wheel -q --no-deps -w .whl "norse==1.1.0"
ls -la .whl
