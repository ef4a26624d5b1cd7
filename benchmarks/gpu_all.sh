#!/usr/bin/env bash
# One-shot GPU measurement of issue 13 (at most about 9 min on one H100/H200), everything written under OUT_DIR:
#   check.jsonl          benchmarks/gpu_check.py: the Triton kernels vs the neuron map / autograd on the GPU, and
#                        the chunked e-prop forward, a rate Population, evaluation without gradients and
#                        Population.outputs on the kernels vs their torch paths
#   bench_sim_cuda.jsonl benchmarks/bench_sim.py --device cuda: one training step at H = 256 and 1024, B = 128,
#                        T = 500 (I = 64): spikedyn's Triton LIF / ALIF / leaky rate kernels (IEEE float32 and
#                        TF32x3 products), the same models on torch ops, snntorch RLeaky, norse
#                        LIFRecurrentCell, a plain torch LIF loop, its torch.compile, cuDNN's nn.RNN; and
#                        LIF evaluation without gradients (the forward-only kernel vs the map's loop on torch
#                        ops); interleaved rounds, medians, peak memory (+ bench_sim_cuda.md, its table; .log)
#   pytest_cuda.log      the `cuda`-marked tests of tests/test_triton.py and test_kernels.py
#   env.txt              nvidia-smi, python / torch / triton versions
#   population.json      with --population: benchmarks/population.py --members 1024 --device cuda (+ .log)
# Usage: bash benchmarks/gpu_all.sh [--population] OUT_DIR     (OUT_DIR must not exist yet)
# Python: $PYTHON, else .venv/bin/python, else python3 (an image with torch + triton). Wheels in .whl/ (from
# benchmarks/gpu_wheels.sh, for a machine without a registry) are installed into a temporary folder first.
# spikedyn runs from a copy of this tree laid out as installed (tasks/ and hardware/ inside spikedyn/).
# Exit code 2 for a usage error, a missing package or a machine without a CUDA device.
set -uo pipefail
cd "$(dirname "$0")/.."
usage="usage: bash benchmarks/gpu_all.sh [--population] OUT_DIR   (a new directory; needs a CUDA GPU)"
population=0
args=()
for a in "$@"; do
  case "$a" in
    -h|--help) echo "$usage"; exit 0 ;;
    --population) population=1 ;;
    -*) echo "$usage" >&2; exit 2 ;;
    *) args+=("$a") ;;
  esac
done
if [ "${#args[@]}" -ne 1 ]; then echo "$usage" >&2; exit 2; fi
out="${args[0]}"
if [ -e "$out" ]; then echo "gpu_all.sh: $out exists; give a new directory" >&2; exit 2; fi
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if compgen -G ".whl/*.whl" >/dev/null; then
  PIP_ROOT_USER_ACTION=ignore "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$tmp/site" .whl/*.whl \
    || { echo "gpu_all.sh: could not install .whl/*.whl" >&2; exit 2; }
fi
cp -r spikedyn "$tmp/spikedyn" && cp -r tasks "$tmp/spikedyn/tasks" && cp -r hardware "$tmp/spikedyn/hardware"
export PYTHONPATH="$tmp:$tmp/site${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONSAFEPATH=1  # the copy, not ./spikedyn (which lacks tasks/ and hardware/)
export PYTHONUNBUFFERED=1
if ! missing=$("$PY" -c 'import spikedyn.models, spikedyn.hardware, triton' 2>&1); then
  echo "gpu_all.sh: $PY cannot import spikedyn's needs: ${missing##*$'\n'} (it needs torch and triton; spikedyn's array-api-compat and the peers: pip install, or carry .whl from benchmarks/gpu_wheels.sh)" >&2
  exit 2
fi
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "gpu_all.sh: no CUDA device is visible to torch ($PY); run it on a GPU machine with a CUDA build of torch" >&2
  exit 2
fi
mkdir -p "$out"
start=$(date +%s)
{ nvidia-smi 2>&1; "$PY" -c 'import sys, torch, triton; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "triton", triton.__version__)'; } > "$out/env.txt"
rc=0
# 1. correctness on the GPU (the kernels compile here for the first time: a failure is recorded per check)
timeout 200 "$PY" benchmarks/gpu_check.py --out "$out/check.jsonl" || { echo "gpu_check failed or timed out (rc $?)" >&2; rc=1; }
# 2. the training-step benchmark, all cases interleaved per shape
cases=spikedyn_lif,spikedyn_lif_tf32x3,spikedyn_lif_torch_ops,spikedyn_alif,spikedyn_alif_tf32x3,spikedyn_alif_torch_ops,spikedyn_rate_leaky,spikedyn_rate_leaky_torch_ops,spikedyn_rate_leaky_population_kernel,spikedyn_lif_eval,spikedyn_lif_eval_torch_ops,snntorch_rleaky,norse_lif_recurrent,torch_lif_loop,torch_lif_loop_compiled,torch_rnn_tanh
timeout 290 "$PY" benchmarks/bench_sim.py --device cuda --rounds 5 --cases "$cases" --out "$out/bench_sim_cuda.jsonl" \
  > "$out/bench_sim_cuda.log" 2>&1 || { echo "bench_sim failed or timed out (rc $?; see $out/bench_sim_cuda.log)" >&2; rc=1; }
[ -s "$out/bench_sim_cuda.jsonl" ] && "$PY" benchmarks/bench_sim.py --table "$out/bench_sim_cuda.jsonl" > "$out/bench_sim_cuda.md"
# 3. the GPU tests (compiled kernels against the neuron map, the rate step loop and the CPU kernel, float64)
timeout 60 "$PY" -m pytest -q -p no:cacheprovider -m cuda tests/test_triton.py tests/test_kernels.py > "$out/pytest_cuda.log" 2>&1 \
  || { echo "the cuda tests failed or timed out (rc $?; see $out/pytest_cuda.log)" >&2; rc=1; }
# 4. optional (adds up to 2 min): a population of 1,024 CTRNNs vs one at a time (benchmarks/population.py)
if [ "$population" -eq 1 ]; then
  timeout 120 "$PY" benchmarks/population.py --members 1024 --steps 2 --rounds 1 --device cuda --out "$out/population.json" \
    > "$out/population.log" 2>&1 || { echo "population.py failed or timed out (rc $?)" >&2; rc=1; }
fi
echo "gpu_all.sh: wrote $out in $(( $(date +%s) - start )) s" >&2
exit "$rc"
