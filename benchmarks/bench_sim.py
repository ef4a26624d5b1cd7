"""Simulation speed: one training step of a recurrent spiking layer, spikedyn (each kernel path) vs
snntorch vs norse vs a plain torch loop (eager and ``torch.compile``d) vs torch's fused tanh RNN, in one run.

A training step = forward over T input steps + MSE on a linear readout at every step + backward (or
e-prop's online gradient) + Adam. Every case has the same sizes (I = 64 inputs, H units, B trials, T
steps). All cases of one shape are built first and then timed *interleaved*, round by round (one step of
each case per round), so that load from other jobs on the machine hits every case alike; the medians over
the rounds are reported, as wall time and as this process's CPU time (``time.process_time``, which other
jobs inflate less than wall time on a shared machine). Ratios are to ``spikedyn_lif`` (auto path).

    .venv/bin/python benchmarks/bench_sim.py                    # CPU: H = 128, 256; B = 32; T = 200, 500
    .venv/bin/python benchmarks/bench_sim.py --device cuda      # GPU: H = 256, 1024; B = 128; T = 500
    .venv/bin/python benchmarks/bench_sim.py --small            # a quick check (H = 64, B = 8, T = 50)

Options: ``--threads`` (CPU threads, default 1; a list such as ``1,2`` times every case at each count,
interleaved, and adds each case at its fastest count), ``--rounds``, ``--cases a,b`` (a subset), ``--shape H,B,T``
(repeatable: these shapes only), ``--no-compile``
(skip ``torch.compile``), ``--out FILE`` (JSON lines; default: stdout only), ``--memory-shape H,B,T``.
Peak memory, measured for each case in a fresh Python process at one shape (default the largest): on
CUDA ``torch.cuda.max_memory_allocated`` over the first training step minus the memory allocated before
it; on the CPU the growth of the process's peak resident memory (VmHWM, reset with
``/proc/self/clear_refs``) over the first step (models and inputs built before it).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

N_IN = 64


# -- the cases: each returns step() (one whole training step) -----------------------------------------
def _adam_step(params, loss_fn):
    opt = torch.optim.Adam(params, 1e-3)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn().backward()
        opt.step()

    return step


def _spikedyn_model(H, dev, **kw):
    from spikedyn.models import SpikingRNN

    cfg = dict(neuron="lif", dv=0.1, tau_out=0.0)  # beta = 0.9 as the snntorch/norse cases, readout of the spikes
    return SpikingRNN(N_IN, H, 1, **{**cfg, **kw}).to(dev)


def spikedyn_bptt(path: str = "auto", **kw):
    def make(H, dev, x, y):
        m = _spikedyn_model(H, dev, **kw)
        m.spike_path = path
        return _adam_step(list(m.parameters()), lambda: torch.nn.functional.mse_loss(m(x).y, y))

    return make


def spikedyn_eprop(**kw):
    def make(H, dev, x, y):
        from spikedyn.learning import EProp

        m = _spikedyn_model(H, dev, **kw)
        rule, opt, mask = EProp(), torch.optim.Adam(m.parameters(), 1e-3), torch.ones_like(y)
        params = dict(m.named_parameters())

        def step() -> None:
            _, grads = rule.loss_and_gradients(m, x, y, mask, "mse")
            for name, g in grads.items():
                params[name].grad = g
            opt.step()

        return step

    return make


def snntorch_forward(fc, lif, out, x: torch.Tensor, loop: str) -> torch.Tensor:
    """One forward pass of snntorch's ``RLeaky`` over ``x`` ``[T, B, I]`` in one of the three loops of
    ``snntorch_rleaky`` (the one definition; ``recurrent_step.py`` uses it too)."""
    spk, mem = lif.reset_mem()
    zs = []
    if loop == "documented":
        for x_t in x.unbind(0):
            spk, mem = lif(fc(x_t), spk, mem)
            zs.append(spk)
    else:
        cur = fc(x)
        for t, cur_t in enumerate(cur.unbind(0)):
            spk, mem = lif(cur[t] if loop == "indexed" else cur_t, spk, mem)
            zs.append(spk)
    return out(torch.stack(zs))


def snntorch_rleaky(loop: str = "hoisted"):
    """snntorch's ``RLeaky(beta=0.9, linear_features=H, all_to_all=True)`` (its defaults otherwise: threshold 1,
    subtractive reset, atan surrogate, learnable recurrent ``nn.Linear`` with bias), states from ``reset_mem()``.
    ``loop``: "documented" applies ``fc`` inside the time loop, as the ``RLeaky`` docstring's example does;
    "hoisted" runs ``fc`` once over the sequence and ``unbind``s it (the peer's best case); "indexed" is the
    hoisted loop of the issue's anchor script (``../shared/bench/anchors.py``) and of ``recurrent_step.py`` before
    this audit, which indexes ``fc(x)[t]`` (each index's backward writes a zero ``[T, B, H]``: O(T^2))."""

    def make(H, dev, x, y):
        import snntorch as snn

        fc, out = torch.nn.Linear(N_IN, H).to(dev), torch.nn.Linear(H, 1).to(dev)
        lif = snn.RLeaky(beta=0.9, linear_features=H, all_to_all=True).to(dev)

        def run():
            return snntorch_forward(fc, lif, out, x, loop)

        params = [*fc.parameters(), *lif.parameters(), *out.parameters()]
        return _adam_step(params, lambda: torch.nn.functional.mse_loss(run(), y))

    return make


def norse_lif_recurrent(H, dev, x, y):
    """norse's ``LIFRecurrentCell(I, H)`` with its defaults (``LIFParameters()``: synaptic current with
    tau_syn_inv = 200 and tau_mem_inv = 100 per s at dt = 1 ms, i.e. du = 0.2 and dv = 0.1; reset to zero;
    SuperSpike surrogate, alpha = 100; no autapses), stepped in a Python loop as norse's cell examples do."""
    import norse.torch as nt

    cell, out = nt.LIFRecurrentCell(N_IN, H).to(dev), torch.nn.Linear(H, 1).to(dev)

    def run():
        s, zs = None, []
        for x_t in x.unbind(0):
            z, s = cell(x_t, s)
            zs.append(z)
        return out(torch.stack(zs))

    return _adam_step([*cell.parameters(), *out.parameters()], lambda: torch.nn.functional.mse_loss(run(), y))


def norse_lif_recurrent_layer(H, dev, x, y):
    """norse's ``LIFRecurrent(I, H)``: the same neuron as the cell, as norse's module over the whole sequence
    (it loops over time inside)."""
    import norse.torch as nt

    layer, out = nt.LIFRecurrent(N_IN, H).to(dev), torch.nn.Linear(H, 1).to(dev)
    return _adam_step([*layer.parameters(), *out.parameters()],
                      lambda: torch.nn.functional.mse_loss(out(layer(x)[0]), y))  # fmt: skip


def _spike(x):
    """Heaviside ``x > 0`` whose gradient is the fast-sigmoid surrogate ``1 / (1 + 25 |x|)^2`` (spikedyn's
    default), written without an autograd.Function so that ``torch.compile`` can take it: ``f - f`` is 0
    in value and has the derivative of ``f = x / (1 + 25 |x|)``."""
    f = x / (1.0 + 25.0 * x.abs())
    return (x > 0).to(x.dtype) + (f - f.detach())


def _lif_step(i_t, v, z, W_rec, b):
    """The LIF of the spikedyn cases (dv = 0.1, subtractive reset detached), written plainly."""
    v = 0.9 * v + (i_t + z @ W_rec.T) + b - z.detach()
    return v, _spike(v - 1.0)


def torch_lif_loop(compiled: bool = False):
    def make(H, dev, x, y):
        W_in = torch.nn.Parameter(torch.randn(H, N_IN, device=dev) / N_IN**0.5)
        W_rec = torch.nn.Parameter(torch.randn(H, H, device=dev) / H**0.5)
        b = torch.nn.Parameter(torch.zeros(H, device=dev))
        out = torch.nn.Linear(H, 1).to(dev)
        step_fn = torch.compile(_lif_step, dynamic=False) if compiled else _lif_step

        def run():
            zs = []
            v = z = x.new_zeros(x.shape[1], H)
            for i_t in (x @ W_in.T).unbind(0):  # the input projection as one GEMM; unbind, not [t]
                v, z = step_fn(i_t, v, z, W_rec, b)
                zs.append(z)
            return out(torch.stack(zs))

        return _adam_step([W_in, W_rec, b, *out.parameters()], lambda: torch.nn.functional.mse_loss(run(), y))

    return make


def torch_rnn_tanh(H, dev, x, y):
    rnn, out = torch.nn.RNN(N_IN, H).to(dev), torch.nn.Linear(H, 1).to(dev)
    return _adam_step([*rnn.parameters(), *out.parameters()], lambda: torch.nn.functional.mse_loss(out(rnn(x)[0]), y))


# the e-prop benchmark's model (docs/benchmarks.md, e-prop section): readout filter 20 ms, triangle, refractory
EPROP_MODEL = dict(tau_mem=20.0, dv=None, tau_out=20.0, surrogate="triangle", refractory=2.0, self_connections=False)

CASES: dict[str, Callable] = {
    "spikedyn_lif": spikedyn_bptt("auto"),
    "spikedyn_lif_dense": spikedyn_bptt("dense"),
    "spikedyn_lif_sparse": spikedyn_bptt("sparse"),
    "spikedyn_lif_eprop": spikedyn_eprop(),
    "spikedyn_lif_filtered_bptt": spikedyn_bptt("auto", **EPROP_MODEL),
    "spikedyn_lif_filtered_eprop": spikedyn_eprop(**EPROP_MODEL),
    "spikedyn_alif": spikedyn_bptt("auto", neuron="alif"),
    "spikedyn_alif_eprop": spikedyn_eprop(neuron="alif"),
    "spikedyn_alif_filtered_bptt": spikedyn_bptt("auto", neuron="alif", **EPROP_MODEL),
    "spikedyn_alif_filtered_eprop": spikedyn_eprop(neuron="alif", **EPROP_MODEL),
    # norse's neuron map in spikedyn (module doc of models/spiking.py): synaptic current du = 0.2, dv = 0.1,
    # reset to zero, no self-connections, SuperSpike = fast_sigmoid with slope 100; no bias as norse's cell
    "spikedyn_lif_norse_map": spikedyn_bptt("auto", du=0.2, reset="zero", self_connections=False,
                                            surrogate_slope=100.0, bias=False),
    "snntorch_rleaky": snntorch_rleaky("hoisted"),
    "snntorch_rleaky_documented": snntorch_rleaky("documented"),
    "snntorch_rleaky_indexed": snntorch_rleaky("indexed"),
    "norse_lif_recurrent": norse_lif_recurrent,
    "norse_lif_recurrent_layer": norse_lif_recurrent_layer,
    "torch_lif_loop": torch_lif_loop(False),
    "torch_lif_loop_compiled": torch_lif_loop(True),
    "torch_rnn_tanh": torch_rnn_tanh,
}


# -- GPU-only cases (issue 13 item 1): on CUDA, spikedyn_lif / spikedyn_alif / spikedyn_rate_leaky run the Triton
# kernels (spikedyn/models/triton_lif.py, triton_rate.py; SPIKEDYN_TRITON=auto); "_torch_ops" is the same
# model with the kernels switched off (the fused path as torch ops, or the rate step loop under autograd)
def spikedyn_rate(population_kernel: bool = False):
    """The leaky RateRNN (alpha = 0.1, ReLU) by ``forward`` or, ``population_kernel``, by the one-member
    population kernel that ``BPTT`` uses for a lone rate net (``population.lone_rate_rollout``)."""

    def make(H, dev, x, y):
        from spikedyn.models import RateRNN
        from spikedyn.models.population import lone_rate_rollout
        from spikedyn.models.triton_support import use_triton

        m = RateRNN(N_IN, H, 1, alpha=0.1, activation="relu").to(dev)

        def lone():
            with use_triton("off"):  # where Triton is wanted, lone_rate_rollout defers to it (returns None)
                return lone_rate_rollout(m, x)

        run = lone if population_kernel else (lambda: m(x))
        return _adam_step(list(m.parameters()), lambda: torch.nn.functional.mse_loss(run().y, y))

    return make


def spikedyn_eval(**kw):
    """Evaluation throughput, not a training step: ``model(x)`` under ``torch.no_grad()`` (what ``evaluate`` and
    the training loop's evaluation run; no loss, no backward, no Adam). On CUDA the forward-only Triton kernel
    (``triton_lif.forward_only``); under ``triton_mode("off", ...)`` the neuron map's loop on torch ops."""

    def make(H, dev, x, y):
        m = _spikedyn_model(H, dev, **kw)

        def step() -> None:
            with torch.no_grad():
                m(x)

        return step

    return make


def triton_mode(mode: str, make: Callable, precision: str | None = None) -> Callable:
    """The case ``make`` with every step run under ``spikedyn.models.triton_support.use_triton(mode, ...)``."""

    def wrapped(H, dev, x, y):
        from spikedyn.models.triton_support import use_triton

        step = make(H, dev, x, y)

        def run() -> None:
            with use_triton(mode, precision=precision):
                step()

        return run

    return wrapped


GPU_CASES: dict[str, Callable] = {
    "spikedyn_lif_torch_ops": triton_mode("off", spikedyn_bptt("auto")),
    "spikedyn_lif_tf32x3": triton_mode("auto", spikedyn_bptt("auto"), "tf32x3"),
    "spikedyn_alif_tf32x3": triton_mode("auto", spikedyn_bptt("auto", neuron="alif"), "tf32x3"),
    "spikedyn_alif_torch_ops": triton_mode("off", spikedyn_bptt("auto", neuron="alif")),
    "spikedyn_rate_leaky": spikedyn_rate(),
    "spikedyn_rate_leaky_torch_ops": triton_mode("off", spikedyn_rate()),
    "spikedyn_rate_leaky_population_kernel": spikedyn_rate(population_kernel=True),
    # evaluation without gradients (a forward only; compare the two with each other, not with spikedyn_lif)
    "spikedyn_lif_eval": spikedyn_eval(),
    "spikedyn_lif_eval_torch_ops": triton_mode("off", spikedyn_eval()),
}
CASES.update(GPU_CASES)  # run by default only with --device cuda
CPU_SHAPES = [(128, 32, 200), (256, 32, 200), (128, 32, 500), (256, 32, 500)]  # (H, B, T)
GPU_SHAPES = [(256, 128, 500), (1024, 128, 500)]
SMALL_SHAPES = [(64, 8, 50)]


# -- measurement --------------------------------------------------------------------------------------
def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _timed(step: Callable[[], None], dev: torch.device) -> tuple[float, float]:
    c0, t0 = time.process_time(), time.perf_counter()
    step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, time.process_time() - c0


def memory_worker(name: str, H: int, B: int, T: int, device: str, threads: int) -> float | None:
    """Peak memory (MB) of the first training step of one case, in this (fresh) process."""
    torch.set_num_threads(threads)
    dev = torch.device(device)
    torch.manual_seed(0)
    x, y = torch.randn(T, B, N_IN, device=dev), torch.randn(T, B, 1, device=dev)
    step = CASES[name](H, dev, x, y)
    return _peak_mb(step, dev)


def measure_memory(name: str, H: int, B: int, T: int, device: str, threads: int) -> float | None:
    import subprocess

    code = ("import json, sys; sys.path.insert(0, sys.argv[2]); import bench_sim; "
            "print(json.dumps(bench_sim.memory_worker(*json.loads(sys.argv[1]))))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code, json.dumps([name, H, B, T, device, threads]),
                           str(Path(__file__).parent)], capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def _peak_mb(step: Callable[[], None], dev: torch.device) -> float | None:
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    try:
        with open("/proc/self/clear_refs", "w") as fh:  # reset VmHWM to the current RSS (Linux)
            fh.write("5")
    except OSError:
        return None
    base = _status_kb("VmRSS")
    step()
    peak = _status_kb("VmHWM")
    return None if base is None or peak is None else (peak - base) / 1024


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}"


def run_shape(H: int, B: int, T: int, cases: dict[str, Callable], rounds: int, dev: torch.device,
              log: Callable[[str], None], memory: bool = False, threads: tuple[int, ...] = (1,)) -> list[dict]:
    """Time every case at every thread count, interleaved: each round runs one step of each case at each
    thread count, so that load from other jobs hits every (case, threads) pair alike."""
    torch.manual_seed(0)
    x = torch.randn(T, B, N_IN, device=dev)
    y = torch.randn(T, B, 1, device=dev)
    steps, setup = {}, {}
    torch.set_num_threads(threads[0])
    for name, make in cases.items():
        t0 = time.perf_counter()
        try:
            torch.manual_seed(0)
            steps[name] = make(H, dev, x, y)
            steps[name]()  # warm-up (and, for torch.compile, the compilation)
        except Exception as e:  # a peer library missing or failing: say so in its row
            log(f"{name}: skipped ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
            steps.pop(name, None)
            continue
        setup[name] = time.perf_counter() - t0
    for n in threads[1:]:  # one untimed step at every other thread count (its thread pool starts here)
        torch.set_num_threads(n)
        for step in steps.values():
            step()
    wall = {(name, n): [] for name in steps for n in threads}
    cpu = {(name, n): [] for name in steps for n in threads}
    for _ in range(rounds):
        for n in threads:
            torch.set_num_threads(n)
            for name, step in steps.items():
                w, c = _timed(step, dev)
                wall[name, n].append(w)
                cpu[name, n].append(c)
    torch.set_num_threads(threads[0])
    peak = {name: measure_memory(name, H, B, T, str(dev), threads[0]) if memory else None for name in steps}
    rows = []
    ref = "spikedyn_lif"
    for n in threads:
        for name in steps:
            w, c = statistics.median(wall[name, n]), statistics.median(cpu[name, n])
            row = {"case": name, "H": H, "B": B, "T": T, "I": N_IN, "device": str(dev), "threads": n,
                   "rounds": rounds, "median_s": round(w, 5), "median_cpu_s": round(c, 5),
                   "peak_mb": None if peak[name] is None or n != threads[0] else round(peak[name], 1),
                   "first_step_s": round(setup[name], 2), "load_average": round(os.getloadavg()[0], 2)}
            if ref in steps:
                row["ratio_to_spikedyn_lif"] = round(w / statistics.median(wall[ref, n]), 3)
                row["cpu_ratio_to_spikedyn_lif"] = round(c / statistics.median(cpu[ref, n]), 3)
            rows.append(row)
    if len(threads) > 1 and ref in steps:  # each case at its own fastest thread count (wall time)
        best = {name: min(threads, key=lambda n, name=name: statistics.median(wall[name, n])) for name in steps}
        ref_w = statistics.median(wall[ref, best[ref]])
        for name in steps:
            w = statistics.median(wall[name, best[name]])
            rows.append({"case": name, "H": H, "B": B, "T": T, "device": str(dev), "best_threads": best[name],
                         "rounds": rounds, "median_s": round(w, 5),
                         "ratio_to_spikedyn_lif_best": round(w / ref_w, 3),
                         "load_average": round(os.getloadavg()[0], 2)})
    return rows


def table(path: str) -> str:
    """The markdown tables of a JSON-lines file this script wrote (one per shape and thread count, then
    each case at its fastest thread count when several were timed)."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    head, rows = rows[0], [r for r in rows[1:] if "case" in r]
    out = [f"Machine: {head['machine']}; torch {head['torch']}; load average at the start "
           f"{head['load_average_start']}. Command: `{head['command']}`.", ""]
    timed = [r for r in rows if "best_threads" not in r]
    for key in dict.fromkeys((r["H"], r["B"], r["T"], r.get("threads")) for r in timed):
        block = [r for r in timed if (r["H"], r["B"], r["T"], r.get("threads")) == key]
        load = block[-1]["load_average"]
        out += [f"H = {key[0]}, B = {key[1]}, T = {key[2]}, {key[3]} thread(s) ({block[0]['rounds']} "
                f"interleaved rounds; load average {load} at the end)", "",
                "| case | median s/step (wall) | wall vs spikedyn_lif | median s/step (CPU) | CPU vs spikedyn_lif | "
                "peak MB | build + first step s |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in block:
            peak = "" if r.get("peak_mb") is None else f"{r['peak_mb']:.0f}"
            out.append(f"| {r['case']} | {r['median_s']:.4g} | {r.get('ratio_to_spikedyn_lif', float('nan')):.2f}x | "
                       f"{r['median_cpu_s']:.4g} | {r.get('cpu_ratio_to_spikedyn_lif', float('nan')):.2f}x | {peak} | "
                       f"{r['first_step_s']:.3g} |")
        out.append("")
    best = [r for r in rows if "best_threads" in r]
    for shape in dict.fromkeys((r["H"], r["B"], r["T"]) for r in best):
        block = [r for r in best if (r["H"], r["B"], r["T"]) == shape]
        out += [f"H = {shape[0]}, B = {shape[1]}, T = {shape[2]}: each case at its fastest thread count (wall)", "",
                "| case | fastest at threads | median s/step (wall) | vs spikedyn_lif at its fastest |",
                "| --- | ---: | ---: | ---: |"]
        out += [f"| {r['case']} | {r['best_threads']} | {r['median_s']:.4g} | {r['ratio_to_spikedyn_lif_best']:.2f}x |"
                for r in block]
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--threads", default="1",
                    help="torch CPU threads, or a comma-separated list timed interleaved, e.g. 1,2 (default 1: "
                         "torch's own default, one per core, ran up to 50x slower on the loaded shared machine)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (default 5)")
    ap.add_argument("--shape", action="append", default=[],
                    help="H,B,T to run (repeatable; default: the device's shapes, module doc)")
    ap.add_argument("--cases", default="", help="comma-separated subset of: " + ", ".join(CASES))
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile case")
    ap.add_argument("--small", action="store_true", help="one small shape (a quick check)")
    ap.add_argument("--out", default="", help="also write the JSON lines to this file")
    ap.add_argument("--table", default="", help="print the markdown table of a JSON-lines file and exit")
    ap.add_argument("--memory-shape", default="", help="H,B,T of the peak-memory measurement (default: the largest)")
    args = ap.parse_args(argv)
    if args.table:
        print(table(args.table))
        return
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device is visible to torch")
    try:
        threads = tuple(int(v) for v in str(args.threads).split(","))
    except ValueError:
        sys.exit(f"--threads takes a count or a comma-separated list of counts, got {args.threads!r}")
    if not threads or min(threads) < 1:
        sys.exit(f"--threads takes positive counts, got {args.threads!r}")
    cases = {k: v for k, v in CASES.items() if dev.type == "cuda" or k not in GPU_CASES}
    if args.cases:
        unknown = set(args.cases.split(",")) - set(CASES)
        if unknown:
            sys.exit(f"unknown case(s) {sorted(unknown)}; choose from {list(CASES)}")
        cases = {k: v for k, v in CASES.items() if k in args.cases.split(",")}
    if args.no_compile:
        cases.pop("torch_lif_loop_compiled", None)
    shapes = SMALL_SHAPES if args.small else GPU_SHAPES if dev.type == "cuda" else CPU_SHAPES
    if args.shape:
        try:
            shapes = [tuple(int(v) for v in spec.split(",")) for spec in args.shape]
        except ValueError:
            sys.exit(f"--shape takes H,B,T (three integers), got {args.shape}")
        if any(len(sh) != 3 or min(sh) < 1 for sh in shapes):
            sys.exit(f"--shape takes H,B,T (three positive integers), got {args.shape}")
    device_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else machine()
    out = open(args.out, "w") if args.out else None  # noqa: SIM115
    command = " ".join([".venv/bin/python benchmarks/bench_sim.py", *(argv or sys.argv[1:])])
    from provenance import git_commit  # benchmarks/provenance.py

    from spikedyn.models.triton_support import triton_available

    head = {"machine": device_name, "torch": torch.__version__, "command": command,
            "triton_kernels": dev.type == "cuda" and triton_available(),  # spikedyn_* cases run them
            "load_average_start": [round(v, 2) for v in os.getloadavg()],  # 1, 5 and 15 min
            "commit": git_commit()}
    for line in [json.dumps(head)]:
        print(line, flush=True)
        if out:
            out.write(line + "\n")
    mem_shape = tuple(int(v) for v in args.memory_shape.split(",")) if args.memory_shape else shapes[-1]
    for H, B, T in shapes:
        log = lambda s: print("#", s, file=sys.stderr, flush=True)  # noqa: E731
        for row in run_shape(H, B, T, cases, args.rounds, dev, log, memory=(H, B, T) == mem_shape,
                             threads=threads):
            line = json.dumps({**row, "machine": device_name})
            print(line, flush=True)
            if out:
                out.write(line + "\n")
                out.flush()
    if out:
        out.close()
        print(f"# wrote {Path(args.out)}", file=sys.stderr)


if __name__ == "__main__":
    main()
