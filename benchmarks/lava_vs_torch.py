"""Lava's simulator vs torch on CPU for the same spiking network, measured side by side in one run.

    .venv/bin/python benchmarks/lava_vs_torch.py [--run-dir RUN] [--out docs/results/lava_vs_torch.json]

Network: the LIF net of a ``spikedyn train`` run (``--run-dir``), else a random Lava-style LIF net
(64 neurons, du = 0.25, dv = 0.125, reset "zero", delay_in = 1). For each body it reports neuron
steps per second for one trial (B = 1) and trial-steps per second for a batch (B = 64):

* Lava ``Loihi2SimCfg`` float and fixed point, through ``spikedyn.deploy`` (the Lava interpreter in a
  subprocess). Lava's cost has a fixed part (compilation, starting its runtime processes) and a
  per-step part: the runner times ``run(RunSteps(1))`` (setup) and the remaining steps separately, and
  the rate is steps over stepping time; the setup seconds are reported beside it.
* torch (CPU, ``torch.no_grad``, ``--torch-threads`` intra-op threads, default 1) float32 and
  ``quantize="loihi2"``, same inputs, same step counts.

With ``--run-dir`` it also runs the trained network on long held-out inputs (>= 500 neuron steps) on
Lava float and fixed point and checks every spike against torch float64 / ``quantize="loihi2"``.
It also times reading spikes out of Lava (``readout`` in the JSON): spikedyn's memory-mapped
``SpikeRecorder`` against Lava's ``RingBuffer`` sink read with ``Var.get()`` (64 trials x 64 neurons x
100 steps). Writes a JSON file and prints a markdown table (the one in ``docs/benchmarks.md``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from spikedyn.atomic import atomic_save_figure

ROOT = Path(__file__).resolve().parent.parent


def _portable(path: str | None) -> str | None:
    """``path`` relative to the checkout (or the working directory) for the results file, never a local
    absolute path; else only its name."""
    if path is None:
        return None
    p = Path(path).resolve()
    for base in (ROOT, Path.cwd()):
        try:
            return str(p.relative_to(base.resolve()))
        except ValueError:
            pass
    return p.name


def _network(run_dir: str | None):
    from spikedyn.models import SpikingRNN

    if run_dir:
        from spikedyn.cli.deploy import load_run

        model, task, _ = load_run(Path(run_dir))
        return model, task
    torch.manual_seed(0)
    m = SpikingRNN(1, 64, 1, du=0.25, dv=0.125, reset="zero", delay_in=1, gain=1.5)
    with torch.no_grad():
        m.b.fill_(0.02)
    return m, None


def _torch_rate(model, x: torch.Tensor, quantized: bool, repeats: int = 2) -> float:
    """Neuron updates per second (times trials) of torch's forward pass on CPU."""
    import copy

    m = copy.deepcopy(model).cpu()
    m = m.quantized("loihi2") if quantized else m
    m._q_cache = None
    with torch.no_grad():
        m(x[:5])  # warm-up (and the quantiser's cache)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            m(x)
            best = min(best, time.perf_counter() - t0)
    return x.shape[0] * m.substeps * x.shape[1] / best


def _lava_rate(dep, x: torch.Tensor, substeps: int) -> tuple[float, float]:
    """(neuron steps/s x trials while stepping, seconds to compile/start Lava and run the first step)."""
    out = dep.run(x, progress=False)
    steps = out.timing["steps"] * x.shape[1]  # chunks of a batch run one after another
    return steps / out.timing["step_s"], out.timing["setup_s"]


def speed_table(model, python: str | None, steps: int, batch: int, rounds: int) -> list[dict]:
    """Rows (body, B, steps/s): every body measured ``rounds`` times, interleaved, best kept, so that the
    load of a shared machine hits all bodies alike."""
    import spikedyn

    rows = []
    deps = {p: spikedyn.deploy(model, precision=p, lava_python=python) for p in ("float", "fixed")}
    for B in (1, batch):
        T = max(4, steps // model.substeps)
        x = torch.randn(T, B, model.n_in, generator=torch.Generator().manual_seed(0)) * 0.5
        best: dict[str, dict] = {}
        for _ in range(rounds):
            for precision, dep in deps.items():
                rate, setup = _lava_rate(dep, x, model.substeps)
                body = f"Lava Loihi2SimCfg {precision}"
                if rate > best.get(body, {}).get("steps_per_s", 0):
                    best[body] = {"body": body, "B": B, "steps_per_s": rate, "setup_s": setup}
            for quantized in (False, True):
                rate = _torch_rate(model, x, quantized, repeats=1)
                body = "torch CPU " + ('quantize="loihi2"' if quantized else "float32")
                if rate > best.get(body, {}).get("steps_per_s", 0):
                    best[body] = {"body": body, "B": B, "steps_per_s": rate, "setup_s": 0.0}
        rows += list(best.values())
    return rows


def identity_check(model, task, python: str | None, min_steps: int, trials: int,
                   figure: Path | None = None) -> list[dict]:
    """The trained network on long held-out inputs: every spike of Lava vs torch, both precisions."""
    import spikedyn.tasks as tasks

    import spikedyn
    from spikedyn.export.deploy import spike_agreement, torch_reference

    cfg = task.config()
    duration = float(cfg.get("duration_ms", 0.0))
    steps_per_trial = (task.n_steps if hasattr(task, "n_steps") else None) or 1
    if duration and steps_per_trial * model.substeps < min_steps:  # a longer trial of the same task
        factor = int(np.ceil(min_steps / (steps_per_trial * model.substeps)))
        cfg = {**cfg, "duration_ms": duration * factor}
        task = tasks.make(**cfg)
    batch = task.sample(trials, np.random.default_rng([7, 7]), split="test")
    rows, runs = [], {}
    for precision in ("float", "fixed"):
        out = spikedyn.deploy(model, precision=precision, lava_python=python).run(batch.inputs, progress=False)
        spikes = torch_reference(model, batch.inputs, precision)[0]
        agree = spike_agreement(spikes, out.spikes)
        rows.append({"precision": precision, "neurons": model.n_hidden, "steps": int(spikes.shape[0]),
                     "trials": trials, "spikes": int(spikes.sum()), **{k: agree[k] for k in
                     ("spike_agreement", "trials_identical", "first_mismatch_step")}})  # fmt: skip
        runs[f"torch {precision}"], runs[f"Lava {precision}"] = spikes, out.spikes
    if figure is not None:
        _figure(runs, model.dt / model.substeps, figure)
    return rows


def _figure(runs: dict[str, np.ndarray], dt_ms: float, path: Path) -> None:
    """Left: trial 0, torch float64 and Lava float spikes (first 300 ms). Right: per step, how many
    spikes (all trials) differ between Lava and torch in each precision, and between the precisions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [1, 1.3]})
    window = int(300 / dt_ms)
    for label, marker, size, color in (("torch float", "o", 10, "tab:blue"), ("Lava float", "x", 7, "tab:red")):
        t, n = np.nonzero(runs[label][:window, 0])
        ax.scatter(t * dt_ms, n, s=size, marker=marker, color=color, label=label.replace("float", "float64"),
                   linewidths=0.7)
    ax.set(xlabel="time (ms)", ylabel="neuron", title="trial 0: every torch spike has its Lava twin")
    ax.legend(loc="upper right", fontsize=7)
    time_ms = np.arange(runs["torch float"].shape[0]) * dt_ms
    pairs = (("Lava float", "torch float", "Lava float vs torch float64"),
             ("Lava fixed", "torch fixed", 'Lava fixed vs torch quantize="loihi2"'),
             ("torch fixed", "torch float", "fixed point vs float (torch)"))
    for a, b, label in pairs:
        diff = (runs[a] != runs[b]).sum(axis=(1, 2))
        bx.plot(time_ms, diff, label=f"{label}: {int(diff.sum())} differing spikes")
    bx.set(xlabel="time (ms)", ylabel="differing (trial, neuron) spikes per step",
           title=f"{runs['torch float'].shape[1]} trials, {runs['torch float'].shape[2]} neurons")
    bx.legend(fontsize=7)
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=120)


_SINK_SCRIPT = r"""
import json, time, warnings
import numpy as np
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.io.sink import RingBuffer as Sink
from lava.proc.io.source import RingBuffer as Source
from lava.proc.lif.process import LIF
from lava.proc.sparse.process import Sparse
from scipy import sparse
from spikedyn.hardware.spec import NetworkSpec
from spikedyn.hardware.lava_backend import run_lava

warnings.simplefilter("ignore")
rng = np.random.default_rng(0)
N, B, S = 64, 64, 100
W_rec = rng.normal(size=(N, N)) / np.sqrt(N)
x = rng.normal(size=(S, B, 1))
spec = NetworkSpec(W_in=rng.normal(size=(N, 1)), W_rec=W_rec, bias=np.full(N, 0.02), W_out=np.ones((1, N)),
                   b_out=np.zeros(1), du=0.25, dv=0.125, reset="zero", delay_in=1)
t0 = time.perf_counter(); run_lava(spec, x); recorder = time.perf_counter() - t0
# the same network with Lava's RingBuffer sink, read back with Var.get()
t0 = time.perf_counter()
src = Source(data=x[:, :, 0].T.copy())
syn_in = Sparse(weights=sparse.block_diag([sparse.csr_matrix(spec.W_in)] * B, format="csr"), num_message_bits=24)
lif = LIF(shape=(B * N,), du=0.25, dv=0.125, vth=1.0, bias_mant=np.full(B * N, 0.02))
syn_rec = Sparse(weights=sparse.block_diag([sparse.csr_matrix(W_rec)] * B, format="csr"), num_message_bits=1)
sink = Sink(shape=(B * N,), buffer=S)
src.s_out.connect(syn_in.s_in); syn_in.a_out.connect(lif.a_in); lif.s_out.connect(syn_rec.s_in)
syn_rec.a_out.connect(lif.a_in); lif.s_out.connect(sink.a_in)
lif.run(condition=RunSteps(num_steps=S), run_cfg=Loihi2SimCfg(select_tag="floating_pt"))
t1 = time.perf_counter(); sink.data.get(); t2 = time.perf_counter(); lif.stop()
print(json.dumps({"trials": B, "neurons": N, "steps": S, "spikedyn_recorder_total_s": recorder,
                  "ringbuffer_total_s": time.perf_counter() - t0, "ringbuffer_get_s": t2 - t1}))
"""


def sink_comparison(python: str) -> dict:
    """Reading spikes out of Lava: spikedyn's memory-mapped recorder vs RingBuffer + ``Var.get()``."""
    import subprocess

    out = subprocess.run([python, "-c", _SINK_SCRIPT], capture_output=True, text=True, timeout=600, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"sink comparison failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def markdown(rows: list[dict]) -> str:
    lines = ["| body | trials B | neuron steps/s (x B) | vs torch float32 (same B) | setup s |",
             "| --- | --- | --- | --- | --- |"]
    for row in rows:
        ref = next(r for r in rows if r["B"] == row["B"] and r["body"] == "torch CPU float32")
        lines.append(f"| {row['body']} | {row['B']} | {row['steps_per_s']:,.0f} | "
                     f"{row['steps_per_s'] / ref['steps_per_s']:.3g}x | {row['setup_s']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default=None, help="a `spikedyn train` run of a LIF network")
    parser.add_argument("--steps", type=int, default=2000, help="neuron steps of the long run")
    parser.add_argument("--batch", type=int, default=64, help="trials of the batched rows")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved measurements per body (best kept)")
    parser.add_argument("--identity-trials", type=int, default=100, help="long trials for the spike check")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch intra-op threads (on a shared 2-core machine 2 threads made B=64 30x slower)")
    parser.add_argument("--lava-python", default=None)
    parser.add_argument("--out", default=str(ROOT / "docs" / "results" / "lava_vs_torch.json"))
    args = parser.parse_args(argv)

    from spikedyn.hardware.runtime import find_lava_python

    python = args.lava_python or find_lava_python()
    torch.set_num_threads(args.torch_threads)
    model, task = _network(args.run_dir)
    result = {
        "machine": {"platform": platform.platform(), "torch_threads": torch.get_num_threads(),
                    "python": sys.version.split()[0]},
        "network": {"neurons": model.n_hidden, "inputs": model.n_in, "substeps": model.substeps,
                    "run_dir": _portable(args.run_dir)},
        "load_before": os.getloadavg(),
        "speed": speed_table(model, python, args.steps, args.batch, args.rounds),
        "load_after": os.getloadavg(),
    }  # fmt: skip
    result["readout"] = sink_comparison(python)
    if task is not None:
        result["identity"] = identity_check(model, task, python, 500, args.identity_trials,
                                            figure=ROOT / "docs" / "figures" / "lava_vs_torch_raster.png")
    from spikedyn.learning.checkpoint import atomic_write_json

    atomic_write_json(Path(args.out), result)
    print(markdown(result["speed"]))
    print(json.dumps(result["readout"]))
    for row in result.get("identity", []):
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
