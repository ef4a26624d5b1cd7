"""Profile one spikedyn LIF training step (forward + MSE on a readout every step + backward + Adam) with
torch.profiler on one CPU thread (``--threads``); prints the ops that take the most self CPU time.

    .venv/bin/python benchmarks/profile_step.py [--hidden 256] [--batch 32] [--steps 500] [--path auto] [--threads 1]
"""
from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--path", default="auto", choices=["auto", "dense", "sparse"])
    ap.add_argument("--rows", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from spikedyn.models import SpikingRNN

    torch.manual_seed(0)
    m = SpikingRNN(64, args.hidden, 1, neuron="lif", dv=0.1, tau_out=0.0)
    m.spike_path = args.path
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    x, y = torch.randn(args.steps, args.batch, 64), torch.randn(args.steps, args.batch, 1)

    def one() -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(m(x).y, y).backward()
        opt.step()

    one()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        one()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
