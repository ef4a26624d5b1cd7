"""Where the sparse-spike kernels beat the dense GEMMs: CPU time of the recurrence ``z @ W^T`` of one
substep and of ``dW = du^T z`` over a whole rollout, dense vs sparse, at firing rates from 0.5% to 30%.
The crossovers set ``SPARSE_RATE`` / ``SPARSE_DW_RATE`` in ``spikedyn/models/kernels.py``.

    .venv/bin/python benchmarks/sparse_threshold.py [--hidden 256] [--batch 32] [--steps 500]

Prints one JSON line per rate (process CPU time, so that other jobs on the machine inflate it less than
wall time) and the crossover rates.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch

from spikedyn.models import kernels as K

RATES = (0.005, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3)


def cpu_time(fn, reps: int) -> float:
    fn()
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        for _ in range(reps):
            fn()
        best = min(best, (time.process_time() - t0) / reps)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=500)
    args = ap.parse_args()
    torch.set_num_threads(1)
    H, B, S = args.hidden, args.batch, args.steps
    gen = torch.Generator().manual_seed(0)
    W_T = torch.randn(H, H, generator=gen)
    du = torch.randn(S * B, H, generator=gen)
    rec_cross = dw_cross = None
    for rate in RATES:
        z = (torch.rand(B, H, generator=gen) < rate).float()
        Z = (torch.rand(S * B, H, generator=gen) < rate).float()
        rec = {"dense": cpu_time(lambda z=z: z @ W_T, 200),
               "sparse": cpu_time(lambda z=z: K.sparse_recurrence(z, W_T), 200)}
        dw = {"dense": cpu_time(lambda Z=Z: du.T @ Z, 2),
              "sparse": cpu_time(lambda Z=Z: K.sparse_weight_gradient(du, Z), 2)}
        if rec["sparse"] < rec["dense"]:
            rec_cross = rate
        if dw["sparse"] < dw["dense"]:
            dw_cross = rate
        print(json.dumps({"rate": rate, "H": H, "B": B, "S": S,
                          "recurrence_us": {k: round(v * 1e6, 1) for k, v in rec.items()},
                          "dW_ms": {k: round(v * 1e3, 2) for k, v in dw.items()}}), flush=True)
    print(json.dumps({"sparse_recurrence_wins_up_to_rate": rec_cross, "sparse_dW_wins_up_to_rate": dw_cross,
                      "load_average": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
