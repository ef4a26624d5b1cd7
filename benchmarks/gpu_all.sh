#!/usr/bin/env bash
# One-shot GPU measurement of issue 13 (about 5-8 min on one H100/H200), everything written under OUT_DIR:
#   check.jsonl          benchmarks/gpu_check.py: the Triton kernels vs the neuron map / autograd on the GPU
#   bench_sim_cuda.jsonl benchmarks/bench_sim.py --device cuda: one training step at H = 256 and 1024, B = 128,
#                        T = 500 (I = 64): spikedyn's Triton LIF / ALIF / leaky rate kernels (IEEE float32 and
#                        TF32x3 products), the same models on
#                        torch ops, snntorch RLeaky, norse LIFRecurrentCell, a plain torch LIF loop, its
#                        torch.compile, cuDNN's nn.RNN; interleaved rounds, medians, peak memory
#   bench_sim_cuda.md    the markdown table of bench_sim_cuda.jsonl
#   env.txt              nvidia-smi, torch / triton versions
#   population.json      with --population: benchmarks/population.py --members 1024 --device cuda
# Usage: bash benchmarks/gpu_all.sh [--population] OUT_DIR     (OUT_DIR must not exist yet)
# Exit code 2 for a usage error or a machine without a CUDA device.
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
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "gpu_all.sh: no CUDA device is visible to torch ($PY); run it on a GPU machine" >&2; exit 2
fi
if ! "$PY" -c 'import triton' 2>/dev/null; then
  echo "gpu_all.sh: triton does not import ($PY): pip install triton" >&2; exit 2
fi
if [ -e "$out" ]; then echo "gpu_all.sh: $out exists; give a new directory" >&2; exit 2; fi
mkdir -p "$out"
start=$(date +%s)
{ nvidia-smi 2>&1; "$PY" -c 'import torch, triton; print("torch", torch.__version__, "cuda", torch.version.cuda, "triton", triton.__version__)'; } > "$out/env.txt"
rc=0
# 1. correctness on the GPU (the kernels compile here for the first time: a failure is recorded per check)
timeout 150 "$PY" benchmarks/gpu_check.py --out "$out/check.jsonl" || { echo "gpu_check failed or timed out (rc $?)" >&2; rc=1; }
# 2. the training-step benchmark, all cases interleaved per shape
cases=spikedyn_lif,spikedyn_lif_tf32x3,spikedyn_lif_torch_ops,spikedyn_alif,spikedyn_alif_tf32x3,spikedyn_alif_torch_ops,spikedyn_rate_leaky,spikedyn_rate_leaky_torch_ops,snntorch_rleaky,norse_lif_recurrent,torch_lif_loop,torch_lif_loop_compiled,torch_rnn_tanh
timeout 330 "$PY" benchmarks/bench_sim.py --device cuda --rounds 5 --cases "$cases" --out "$out/bench_sim_cuda.jsonl" \
  > "$out/bench_sim_cuda.log" 2>&1 || { echo "bench_sim failed or timed out (rc $?; see $out/bench_sim_cuda.log)" >&2; rc=1; }
[ -s "$out/bench_sim_cuda.jsonl" ] && "$PY" benchmarks/bench_sim.py --table "$out/bench_sim_cuda.jsonl" > "$out/bench_sim_cuda.md"
# 3. optional: a population of 1,024 CTRNNs vs one at a time (benchmarks/population.py)
if [ "$population" -eq 1 ]; then
  timeout 120 "$PY" benchmarks/population.py --members 1024 --steps 2 --rounds 1 --device cuda --out "$out/population.json" \
    > "$out/population.log" 2>&1 || { echo "population.py failed or timed out (rc $?)" >&2; rc=1; }
fi
echo "gpu_all.sh: wrote $out in $(( $(date +%s) - start )) s" >&2
exit "$rc"
