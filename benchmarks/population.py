"""Population speed: E networks trained as one ``spikedyn.Population`` vs the same E trained one after another.

Both sides run ``spikedyn.train`` with BPTT on the same task and settings: McMahan et al. 2024's CTRNN
(``mcmahan2024`` preset: N = 50, 1 + tanh), ``rdm`` at 10 ms steps cut to T = 75 steps (740 ms), batch 64,
``--steps`` training steps per network. Throughput is network-steps per second (members x training steps /
wall time). Each side runs in its own subprocess (so each reports its own peak resident memory), the two
alternating for ``--rounds`` rounds; the ratio is computed per round and the median reported.

    .venv/bin/python benchmarks/population.py                      # 64 members, the issue's case
    .venv/bin/python benchmarks/population.py --members 1024 --device cuda

The machine's load average is recorded beside the numbers: on a shared machine both sides slow down.
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


def _task():
    import spikedyn.tasks as tasks

    return tasks.make("rdm", dt=10.0, duration_ms=740.0)  # t = 0..740 ms: 75 steps


def child(mode: str, args: argparse.Namespace) -> dict:
    import torch

    import spikedyn
    from spikedyn.learning.presets import get

    torch.set_num_threads(args.threads)
    task = _task()
    p = get("mcmahan2024")
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    nets = [p.build_model(task, seed=i).to(args.device) for i in range(args.members)]
    kw = dict(rule="bptt", steps=args.steps, batch_size=args.batch, lr=1e-3, seed=0, eval_every=args.steps,
              eval_trials=args.batch, progress=False)  # fmt: skip
    t0, c0 = time.perf_counter(), time.process_time()
    if mode == "population":
        from spikedyn.models.population import Population

        spikedyn.train(Population.stack(nets), task, **kw)
    else:
        for net in nets:
            spikedyn.train(net, task, **kw)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    out = {"mode": mode, "wall_s": wall, "cpu_s": cpu, "network_steps": args.members * args.steps,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_after_import_mb": rss0,
           "T": task.n_steps}  # fmt: skip
    if args.device.startswith("cuda"):
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5, help="training steps per network")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    ap.add_argument("--mode", choices=["population", "sequential"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:
        print(json.dumps(child(args.mode, args)))
        return
    base = [sys.executable, __file__, "--members", str(args.members), "--batch", str(args.batch), "--steps",
            str(args.steps), "--threads", str(args.threads), "--device", args.device]  # fmt: skip
    rounds = []
    for r in range(args.rounds):
        row = {"load_before": os.getloadavg()[0]}
        for mode in ("population", "sequential") if r % 2 == 0 else ("sequential", "population"):
            done = subprocess.run([*base, "--mode", mode], check=True, capture_output=True, text=True)
            row[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        row["load_after"] = os.getloadavg()[0]
        pop, seq = row["population"], row["sequential"]
        row["speedup_wall"] = (pop["network_steps"] / pop["wall_s"]) / (seq["network_steps"] / seq["wall_s"])
        row["speedup_cpu"] = (pop["network_steps"] / pop["cpu_s"]) / (seq["network_steps"] / seq["cpu_s"])
        rounds.append(row)
        print(f"round {r + 1}: population {pop['network_steps'] / pop['wall_s']:.1f} network-steps/s "
              f"(peak RSS {pop['peak_rss_mb']:.0f} MB), sequential {seq['network_steps'] / seq['wall_s']:.1f} "
              f"(peak RSS {seq['peak_rss_mb']:.0f} MB): x{row['speedup_wall']:.1f} wall, "
              f"x{row['speedup_cpu']:.1f} CPU time; load {row['load_before']:.1f} -> {row['load_after']:.1f}",
              flush=True)  # fmt: skip
    summary = {"members": args.members, "batch": args.batch, "steps": args.steps, "threads": args.threads,
               "device": args.device, "cpus": os.cpu_count(),
               "median_speedup_wall": statistics.median(r["speedup_wall"] for r in rounds),
               "median_speedup_cpu": statistics.median(r["speedup_cpu"] for r in rounds), "rounds": rounds}  # fmt: skip
    print(f"median speed-up: x{summary['median_speedup_wall']:.1f} (wall), x{summary['median_speedup_cpu']:.1f} "
          "(CPU time)")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
