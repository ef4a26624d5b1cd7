"""Why default GRU and LSTM stay at chance in the long-memory benchmark (Park et al. Table S1): a horizon check.

The same default-initialised bodies as ``spikedyn bench memory`` (PyTorch's U(-1/sqrt(N), 1/sqrt(N))),
the same task code and the same training loop, on temporal order (Hochreiter & Schmidhuber 1997, 6a) at
three horizons: short (length 30-33), medium (60-66) and the benchmark's (100-110); plus the benchmark's
horizon trained 3x longer, and an LSTM with its forget-gate bias set to 1 (Jozefowicz et al. 2015; Park et
al. used PyTorch's default). If the short task learns and the long one does not, the pipeline (loss,
mask, readout, gradients) works and the limit is the horizon within the budget. The numbers in
docs/analysis.md come from:

    python benchmarks/memory_horizon.py --out docs/results/memory_horizon.json

Validation cross-entropy (nats; chance log 4 = 1.386) on 256 held-out trials every 100 steps, one seed.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

torch.set_num_threads(1)

HORIZONS = {
    "short": dict(length_min=30, length_max=33, t1_min=3, t1_max=6, t2_min=14, t2_max=17),
    "medium": dict(length_min=60, length_max=66, t1_min=5, t1_max=10, t2_min=25, t2_max=30),
    "benchmark": {},
}


def one(body: str, horizon: str, steps: int, lr: float, hidden: int,
        forget_bias: float | None = None) -> dict[str, Any]:  # fmt: skip
    from spikedyn.experiments.build import build_task
    from spikedyn.experiments.long_memory import build_benchmark_model
    from spikedyn.learning import train

    task = build_task("temporal_order", HORIZONS[horizon])
    model = build_benchmark_model(body, task.n_inputs, task.n_outputs, hidden, seed=100)
    if forget_bias is not None:
        with torch.no_grad():
            model.b[hidden : 2 * hidden] = forget_bias  # gate order i, f, g, o
    t0 = time.perf_counter()
    r = train(model, task, steps=steps, batch_size=32, lr=lr, clip=1.0, seed=100, eval_every=100, eval_trials=256,
              progress=False)  # fmt: skip
    s, v = r.curve("eval_loss")
    _, acc = r.curve("accuracy")
    return {"body": body, "horizon": horizon, "steps": steps, "lr": lr, "forget_bias": forget_bias,
            "step": s.tolist(), "val_ce": v.tolist(), "val_accuracy": acc.tolist(), "min_val_ce": float(v.min()),
            "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/memory_horizon.json"))
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--long-steps", type=int, default=3000, help="0: skip the long runs")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--horizons", default=",".join(HORIZONS), help="comma list of " + ", ".join(HORIZONS))
    ap.add_argument("--bodies", default="gru,lstm")
    a = ap.parse_args()
    runs = []
    for horizon in a.horizons.split(","):
        for body in a.bodies.split(","):
            runs.append(one(body, horizon, a.steps, a.lr, a.hidden))
            print(f"{body} {horizon}: min validation CE {runs[-1]['min_val_ce']:.3g}", flush=True)
    for body, fb in (("gru", None), ("lstm", None), ("lstm", 1.0)) if a.long_steps else ():
        runs.append(one(body, "benchmark", a.long_steps, a.lr, a.hidden, forget_bias=fb))
        print(f"{body} (forget bias {fb}) {a.long_steps} steps: min validation CE {runs[-1]['min_val_ce']:.3g}",
              flush=True)  # fmt: skip
    from spikedyn.atomic import atomic_write_json

    atomic_write_json(a.out, {"hidden": a.hidden, "batch_size": 32, "lr": a.lr, "clip": 1.0, "runs": runs})
    print(a.out)


if __name__ == "__main__":
    main()
