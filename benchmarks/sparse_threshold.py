"""Where the sparse-spike kernels beat the dense GEMMs: CPU time of the recurrence ``z @ W^T`` of one
substep and of ``dW = du^T z`` over a whole rollout, dense vs sparse, at firing rates from 0.1% to 30%.
The crossovers set ``SPARSE_RATE`` / ``SPARSE_DW_RATE`` in ``spikedyn/models/kernels.py``.

    .venv/bin/python benchmarks/sparse_threshold.py [--hidden 256] [--batch 32] [--steps 500] [--threads 1]

Prints one JSON line per rate (process CPU time, so that other jobs on the machine inflate it less than
wall time) and, for each kernel, the crossover: the first rate (lowest first) at which the sparse kernel
no longer wins, the last rate below it at which it won, and any higher rates at which it won again (noise
or a non-monotone cost).
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch

from spikedyn.models import kernels as K

RATES = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3)


def cpu_time(fn, reps: int) -> float:
    fn()
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        for _ in range(reps):
            fn()
        best = min(best, (time.process_time() - t0) / reps)
    return best


def crossover(rates: list[float], sparse_wins: list[bool]) -> dict:
    """Where the sparse kernel stops winning, over ``rates`` in increasing order: the first rate at which it
    does not win (None: it wins everywhere), the last rate below that at which it won (None: it lost at the
    lowest rate), and the rates above the first loss at which it won again."""
    first_loss = next((r for r, w in zip(rates, sparse_wins) if not w), None)
    below = [r for r, w in zip(rates, sparse_wins) if w and (first_loss is None or r < first_loss)]
    again = [r for r, w in zip(rates, sparse_wins) if w and first_loss is not None and r > first_loss]
    return {"sparse_first_loses_at": first_loss, "sparse_wins_up_to": below[-1] if below else None,
            "sparse_wins_again_at": again}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=256, help="H (default 256)")
    ap.add_argument("--batch", type=int, default=32, help="B (default 32)")
    ap.add_argument("--steps", type=int, default=500, help="substeps of the dW rollout (default 500)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (default 1; the kernels' thresholds are for one thread)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    H, B, S = args.hidden, args.batch, args.steps
    gen = torch.Generator().manual_seed(0)
    W_T = torch.randn(H, H, generator=gen)
    du = torch.randn(S * B, H, generator=gen)
    rec_wins, dw_wins = [], []
    for rate in RATES:
        z = (torch.rand(B, H, generator=gen) < rate).float()
        Z = (torch.rand(S * B, H, generator=gen) < rate).float()
        rec = {"dense": cpu_time(lambda z=z: z @ W_T, 200),
               "sparse": cpu_time(lambda z=z: K.sparse_recurrence(z, W_T), 200)}
        dw = {"dense": cpu_time(lambda Z=Z: du.T @ Z, 2),
              "sparse": cpu_time(lambda Z=Z: K.sparse_weight_gradient(du, Z), 2)}
        rec_wins.append(rec["sparse"] < rec["dense"])
        dw_wins.append(dw["sparse"] < dw["dense"])
        print(json.dumps({"rate": rate, "H": H, "B": B, "S": S, "threads": torch.get_num_threads(),
                          "recurrence_us": {k: round(v * 1e6, 1) for k, v in rec.items()},
                          "dW_ms": {k: round(v * 1e3, 2) for k, v in dw.items()}}), flush=True)
    print(json.dumps({"recurrence": crossover(list(RATES), rec_wins), "dW": crossover(list(RATES), dw_wins),
                      "load_average": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
