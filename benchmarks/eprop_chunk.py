"""e-prop's trace chunk size: time of one e-prop gradient (``eprop_rollout``) per chunk size, LIF and ALIF, beside
BPTT's forward + backward on the same model, interleaved round by round in one process (CPU time).

    .venv/bin/python benchmarks/eprop_chunk.py                    # H = 256, B = 32, T = 500, one thread
    .venv/bin/python benchmarks/eprop_chunk.py --chunks 32,64 --rounds 5

The model is the e-prop benchmark's (tau_out = 20 ms, triangle surrogate, 2 ms refractory, no
self-connections); ``spikedyn.learning.eprop.TRACE_CHUNK`` is the default the rollout uses.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", default="16,32,64,128,256", help="chunk sizes in substeps (default 16,32,64,128,256)")
    ap.add_argument("--shape", default="256,32,500", help="H,B,T (default 256,32,500)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from spikedyn.learning.eprop import eprop_rollout
    from spikedyn.models import SpikingRNN

    H, B, T = (int(v) for v in args.shape.split(","))
    chunks = [int(c) for c in args.chunks.split(",")]
    torch.manual_seed(0)
    cfg = dict(tau_mem=20.0, tau_out=20.0, surrogate="triangle", refractory=2.0, self_connections=False)
    models = {n: SpikingRNN(64, H, 1, neuron=n, **cfg) for n in ("lif", "alif")}
    x, y = torch.randn(T, B, 64), torch.randn(T, B, 1)
    mask = torch.ones_like(y)
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for name, m in models.items():
            for c in chunks:
                with torch.no_grad():
                    t0 = time.process_time()
                    eprop_rollout(m, x, y, mask, "mse", m.W_out.detach(), chunk=c)
                    times.setdefault((name, f"eprop_chunk_{c}"), []).append(time.process_time() - t0)
            t0 = time.process_time()
            torch.nn.functional.mse_loss(m(x).y, y).backward()
            times.setdefault((name, "bptt"), []).append(time.process_time() - t0)
    for (name, case), ts in times.items():
        bptt = statistics.median(times[(name, "bptt")])
        med = statistics.median(ts)
        print(json.dumps({"neuron": name, "case": case, "H": H, "B": B, "T": T, "median_cpu_s": round(med, 4),
                          "vs_bptt": round(med / bptt, 3), "threads": args.threads,
                          "load_average": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
