"""Population speed: E networks trained as one ``spikedyn.Population`` vs the same E trained one after another.

Every side runs ``spikedyn.train`` with BPTT (Adam, clip 1, lr 1e-3) on the same task and settings:
McMahan et al. 2024's CTRNN (``mcmahan2024`` preset: N = 50, 1 + tanh, alpha = 0.1), ``rdm`` at 10 ms
steps cut to T = 75 steps (740 ms), batch 64, ``--steps`` training steps per network, one evaluation on
64 held-out trials at the last step. The sides:

- ``population``: the E networks as one ``Population`` (one batched rollout and backward for all);
- ``sequential``: one after another, ``train(net)``: spikedyn's default and fastest single-network path
  for this body (BPTT runs a lone ``RateRNN`` through the population kernel with one member: the same
  fused rollout and hand-written backward with E = 1); the baseline the speed-up claim rests on;
- ``autograd``: one after another, ``train(net, rule_kwargs={"fused": False})``: autograd through
  ``RateRNN``'s own step loop (the single-model path before the kernel was used for lone nets), for
  reference.

Throughput is network-steps per second (networks x training steps / time), in wall time and in CPU
time (``time.process_time``: all threads of the process). Each side runs in its own subprocess after an
untimed one-step warm-up (so each reports its own peak memory); sides and thread counts alternate within
every round (the order rotates between rounds) and the median ratio over rounds is reported, with the
load average before and after each side. The one-after-another sides time at most
``--sequential-members`` networks (default: all of them up to 128; the networks are independent and of
equal cost, so network-steps/s over a subset is the rate of the whole).

    .venv/bin/python benchmarks/population.py                      # 64 members, threads 1 and 2, CPU
    .venv/bin/python benchmarks/population.py --members 1024 --device cuda    # 128 of them one by one
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

SIDES = ("population", "sequential", "autograd")


def _task():
    import spikedyn.tasks as tasks

    return tasks.make("rdm", dt=10.0, duration_ms=740.0)  # t = 0..740 ms: 75 steps


def _train_side(mode: str, nets: list, task, kw: dict) -> None:
    import spikedyn
    from spikedyn.models.population import Population

    if mode == "population":
        spikedyn.train(Population.stack(nets), task, **kw)
    else:
        options = {"rule_kwargs": {"fused": False}} if mode == "autograd" else {}
        for net in nets:
            spikedyn.train(net, task, **kw, **options)


def child(mode: str, args: argparse.Namespace) -> dict:
    """Time one side in this process: ``{"wall_s", "cpu_s", "network_steps", "peak_rss_mb", ...}``."""
    import torch

    from spikedyn.learning.presets import get

    torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    task = _task()
    p = get("mcmahan2024")
    rss_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n = args.members if mode == "population" else min(args.members, args.sequential_members)
    nets = [p.build_model(task, seed=i).to(args.device) for i in range(n)]
    kw = dict(rule="bptt", steps=args.steps, batch_size=args.batch, lr=1e-3, seed=0, eval_every=args.steps,
              eval_trials=args.batch, progress=False)  # fmt: skip
    # untimed warm-up on copies (lazy imports, first calls): one step of the same side, two networks
    warm = [p.build_model(task, seed=10_000 + i).to(args.device) for i in range(2)]
    _train_side(mode, warm, task, {**kw, "steps": 1, "eval_every": 1})
    del warm
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0, c0 = time.perf_counter(), time.process_time()
    _train_side(mode, nets, task, kw)
    if cuda:
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    out = {"mode": mode, "threads": args.threads, "networks": n, "wall_s": wall, "cpu_s": cpu,
           "network_steps": n * args.steps, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "rss_after_import_mb": rss_import, "T": task.n_steps}  # fmt: skip
    if cuda:
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _rate(side: dict, clock: str) -> float:
    return side["network_steps"] / side[f"{clock}_s"]


def summarise(rounds: list[dict], threads: list[int], sides: list[str]) -> dict:
    """Median speed-ups of the population over each one-after-another side, per thread count."""
    out: dict = {}
    for th in threads:
        rows = [r[str(th)] for r in rounds]
        entry: dict = {}
        for side in sides:
            entry[f"{side}_network_steps_per_s_wall"] = statistics.median(_rate(r[side], "wall") for r in rows)
            entry[f"{side}_network_steps_per_s_cpu"] = statistics.median(_rate(r[side], "cpu") for r in rows)
            entry[f"{side}_peak_rss_mb"] = max(r[side]["peak_rss_mb"] for r in rows)
            if "peak_cuda_mb" in rows[0][side]:
                entry[f"{side}_peak_cuda_mb"] = max(r[side]["peak_cuda_mb"] for r in rows)
        for side in sides:
            if side == "population" or "population" not in sides:
                continue
            for clock in ("wall", "cpu"):
                entry[f"speedup_vs_{side}_{clock}"] = statistics.median(
                    _rate(r["population"], clock) / _rate(r[side], clock) for r in rows)
        out[str(th)] = entry
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5, help="training steps per network")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=None,
                    help="torch thread counts, each side at each (default: 1 and 2 on a CPU, 1 on a GPU)")
    ap.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    ap.add_argument("--sequential-members", type=int, default=128,
                    help="networks the one-after-another sides time (at most --members)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    ap.add_argument("--mode", choices=SIDES, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads is None:
        args.threads = [1] if args.device.startswith("cuda") else [1, 2]
    if args.mode:
        args.threads = args.threads[0]
        print(json.dumps(child(args.mode, args)))
        return
    if min(args.members, args.batch, args.steps, args.rounds, args.sequential_members, *args.threads) < 1:
        ap.error("--members, --batch, --steps, --rounds, --sequential-members and --threads must be >= 1")
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            ap.error(f"--device {args.device}: torch sees no CUDA device here; run on a GPU machine or use cpu")
    base = [sys.executable, __file__, "--members", str(args.members), "--batch", str(args.batch), "--steps",
            str(args.steps), "--device", args.device, "--sequential-members", str(args.sequential_members)]  # fmt: skip
    rounds = []
    for r in range(args.rounds):
        row: dict = {}
        for th in args.threads if r % 2 == 0 else args.threads[::-1]:
            k = r % len(args.sides)
            order = args.sides[k:] + args.sides[:k]
            cell: dict = {}
            for mode in order:
                load0 = os.getloadavg()[0]
                done = subprocess.run([*base, "--threads", str(th), "--mode", mode], check=True,
                                      capture_output=True, text=True)  # fmt: skip
                cell[mode] = {**json.loads(done.stdout.strip().splitlines()[-1]), "load_before": load0,
                              "load_after": os.getloadavg()[0]}  # fmt: skip
            row[str(th)] = cell
            parts = [f"{m} {_rate(cell[m], 'wall'):.1f}/s wall {_rate(cell[m], 'cpu'):.1f}/s cpu "
                     f"({cell[m]['peak_rss_mb']:.0f} MB)" for m in args.sides]  # fmt: skip
            ratios = [f"x{_rate(cell['population'], c) / _rate(cell[m], c):.1f} {c} vs {m}"
                      for m in args.sides if m != "population" and "population" in cell for c in ("wall", "cpu")]
            lo, hi = min(c["load_before"] for c in cell.values()), max(c["load_after"] for c in cell.values())
            loads = f"load {lo:.1f}-{hi:.1f}"
            print(f"round {r + 1}, {th} thread(s): {'; '.join(parts)}: {', '.join(ratios)}; {loads}", flush=True)
        rounds.append(row)
    from provenance import git_commit  # benchmarks/provenance.py

    summary = {"members": args.members, "batch": args.batch, "steps": args.steps, "threads": args.threads,
               "sides": args.sides, "sequential_members": min(args.members, args.sequential_members),
               "device": args.device, "cpus": os.cpu_count(), "commit": git_commit(),
               "medians": summarise(rounds, args.threads, args.sides),
               "rounds": rounds}  # fmt: skip
    for th, entry in summary["medians"].items():
        ratios = [f"x{v:.1f} {k.removeprefix('speedup_vs_').replace('_', ' ')}" for k, v in entry.items()
                  if k.startswith("speedup_vs_")]  # fmt: skip
        print(f"median over {args.rounds} rounds, {th} thread(s): {', '.join(ratios)}")
    if args.out is not None:
        from spikedyn.atomic import atomic_write_json

        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.out, summary)


if __name__ == "__main__":
    main()
