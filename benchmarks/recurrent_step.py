"""One training step of a recurrent layer, spikedyn vs snntorch vs norse vs torch's native RNN, in one run.

A step = forward over T input steps + MSE on a linear readout at every step + backward + Adam.
Every case has the same sizes (I inputs, H units, B trials, T steps); each prints one JSON line with the
median seconds per step over `reps` repetitions and its ratio to spikedyn's LIF.

    .venv/bin/python benchmarks/recurrent_step.py [--small] [--threads 1] [--device cuda] [--snntorch-loop hoisted]

The cases are built and timed one after another (not interleaved); ``benchmarks/bench_sim.py`` is the
interleaved successor with more cases, whose figures docs/benchmarks.md reports.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from bench_sim import snntorch_forward  # this script's folder is on sys.path


def spikedyn_lif(I, H, dev):
    from spikedyn.models import SpikingRNN

    m = SpikingRNN(I, H, 1, neuron="lif", dv=0.1, tau_out=0.0).to(dev)
    return lambda x: m(x).y, list(m.parameters())


def spikedyn_rate_leaky(I, H, dev):
    from spikedyn.models import RateRNN

    m = RateRNN(I, H, 1, alpha=0.1, activation="relu").to(dev)
    return lambda x: m(x).y, list(m.parameters())


def spikedyn_rate_vanilla(I, H, dev):
    from spikedyn.models import RateRNN

    m = RateRNN(I, H, 1, alpha=1.0, activation="tanh").to(dev)
    return lambda x: m(x).y, list(m.parameters())


SNNTORCH_LOOP = "hoisted"  # set by --snntorch-loop


def snntorch_rleaky(I, H, dev):
    """snntorch's RLeaky; the loops as ``benchmarks/bench_sim.py``'s ``snntorch_rleaky`` (docstring there):
    "hoisted" (``fc(x).unbind(0)``, the default), "documented" (``fc`` inside the time loop) or "indexed"
    (``fc(x)[t]``, whose backward grows as T^2: the loop of the Foundation table in docs/benchmarks.md)."""
    import snntorch as snn

    fc, out = torch.nn.Linear(I, H).to(dev), torch.nn.Linear(H, 1).to(dev)
    lif = snn.RLeaky(beta=0.9, linear_features=H, all_to_all=True).to(dev)
    loop = SNNTORCH_LOOP

    def run(x):
        return snntorch_forward(fc, lif, out, x, loop)

    return run, [*fc.parameters(), *lif.parameters(), *out.parameters()]


def norse_lif_recurrent(I, H, dev):
    import norse.torch as nt

    cell, out = nt.LIFRecurrentCell(I, H).to(dev), torch.nn.Linear(H, 1).to(dev)

    def run(x):
        s, zs = None, []
        for t in range(x.shape[0]):
            z, s = cell(x[t], s)
            zs.append(z)
        return out(torch.stack(zs))

    return run, [*cell.parameters(), *out.parameters()]


def torch_native_rnn(I, H, dev):
    rnn, out = torch.nn.RNN(I, H).to(dev), torch.nn.Linear(H, 1).to(dev)
    return lambda x: out(rnn(x)[0]), [*rnn.parameters(), *out.parameters()]


CASES = {
    "spikedyn_lif": spikedyn_lif,
    "snntorch_rleaky": snntorch_rleaky,
    "norse_lif_recurrent": norse_lif_recurrent,
    "spikedyn_rate_leaky": spikedyn_rate_leaky,
    "spikedyn_rate_vanilla(native)": spikedyn_rate_vanilla,
    "torch_rnn_tanh(native)": torch_native_rnn,
}


def time_case(make, I, H, B, T, reps, dev):
    torch.manual_seed(0)
    run, params = make(I, H, dev)
    opt = torch.optim.Adam(params, 1e-3)
    x, y = torch.randn(T, B, I, device=dev), torch.randn(T, B, 1, device=dev)

    def one():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(run(x), y).backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()

    one()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        one()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="H=128, B=16, T=100 (quick)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (default 1; 0 = torch's default, one per core, which ran up to 50x "
                         "slower on the loaded shared machine)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--snntorch-loop", default="hoisted", choices=["hoisted", "documented", "indexed"],
                    help="how the snntorch case feeds RLeaky (default hoisted; see snntorch_rleaky)")
    args = ap.parse_args()
    global SNNTORCH_LOOP
    SNNTORCH_LOOP = args.snntorch_loop
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    grid = [(64, 128, 16, 100)] if args.small else [(64, 256, 32, 500)]
    for I, H, B, T in grid:
        results = {name: time_case(make, I, H, B, T, args.reps, dev) for name, make in CASES.items()}
        base = results["spikedyn_lif"]
        for name, sec in results.items():
            print(json.dumps({"case": name, "I": I, "H": H, "B": B, "T": T, "device": str(dev),
                              "threads": torch.get_num_threads(), "snntorch_loop": args.snntorch_loop,
                              "median_s": round(sec, 5),
                              "ratio_to_spikedyn_lif": round(sec / base, 3)}), flush=True)


if __name__ == "__main__":
    main()
