"""Speed of the head-direction circuit: batched torch, TorchScript vs eager, torch vs Lava, side by side.

    .venv/bin/python benchmarks/hd_circuit.py [--seconds 1.0] [--out docs/results/hd_bench.json]

All timings in one run on the same machine (CPU unless --device cuda), on the default circuit
(period 10 ms, dt 0.125 ms: 94 neurons, 192 synapses) driven by OU angular velocity:

* torch, TorchScript loop: B = 1, 10, 100 instances (weight-noise realisations) in one batched run;
  instance-steps per second shows what batching buys;
* torch, the same loop without TorchScript (B = 10);
* Lava (float LIF + DelayDense, Loihi2SimCfg, one instance, through the Lava interpreter): two runs of
  different length, so that the per-step rate excludes Lava's start-up (reported separately);
* the ring attractor (128 rate neurons, Euler dt 0.5 ms) at B = 1 and 100, for scale.
Prints a markdown table (docs/benchmarks.md, section "circuits") and writes a JSON file.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from spikedyn.hardware.delay_network import run_lava_subprocess
from spikedyn.hardware.runtime import lava_python_or_none
from spikedyn.tasks.head_direction import ou_velocity

from spikedyn.circuits import HeadDirectionCircuit, RingAttractor
from spikedyn.circuits.delay_sim import simulate


def _torch_rate(circuit: HeadDirectionCircuit, seconds: float, batch: int, scripted: bool, device: str) -> dict:
    w = ou_velocity(int(seconds * 1000), 1.0, 0, batch=batch)
    hold = round(1.0 / circuit.dt)
    net = circuit.network()
    drive = circuit.velocity_drive(w)
    kw = dict(weight=circuit.perturbed_weights(0.05, batch, 1), drive=drive,
              drive_index=[circuit.index["A+"], circuit.index["A-"]], hold=hold, device=device,
              scripted=scripted)
    simulate(net, 200, **kw)  # warm-up (TorchScript compiles on the first call)
    steps = w.shape[0] * hold
    t0 = time.perf_counter()
    simulate(net, steps, **kw)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    return {"body": f"torch {'TorchScript' if scripted else 'eager'}", "B": batch, "steps": steps,
            "wall_s": wall, "steps_per_s": steps / wall, "instance_steps_per_s": batch * steps / wall}


def _lava_rate(circuit: HeadDirectionCircuit, seconds: float, python: str) -> dict:
    w = ou_velocity(int(seconds * 1000), 1.0, 0)
    runs = []
    for frac in (0.2, 1.0):
        ext = circuit.external_input(w[: max(1, int(len(w) * frac))], 1.0)
        t0 = time.perf_counter()
        run_lava_subprocess(circuit.network(), ext, python=python)
        runs.append((ext.shape[0], time.perf_counter() - t0))
    (n0, t0_), (n1, t1_) = runs
    rate = (n1 - n0) / max(t1_ - t0_, 1e-9)
    return {"body": "Lava float (Loihi2SimCfg)", "B": 1, "steps": n1, "wall_s": t1_, "steps_per_s": rate,
            "instance_steps_per_s": rate, "startup_s": max(0.0, t0_ - n0 / rate),
            "overall_steps_per_s": n1 / t1_}


def _ring_rate(seconds: float, batch: int, device: str) -> dict:
    ring = RingAttractor()
    w = ou_velocity(int(seconds * 1000), 1.0, 0, batch=batch)
    ring.run(w[:50], 1.0, weight_noise=0.05, device=device)
    t0 = time.perf_counter()
    ring.run(w, 1.0, weight_noise=0.05, cue_ms=0.0, device=device)
    wall = time.perf_counter() - t0
    steps = int(seconds * 1000 / ring.dt)
    return {"body": "ring attractor (torch)", "B": batch, "steps": steps, "wall_s": wall,
            "steps_per_s": steps / wall, "instance_steps_per_s": batch * steps / wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="simulated seconds per timing")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--out", default="docs/results/hd_bench.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    circuit = HeadDirectionCircuit()
    rows = [_torch_rate(circuit, args.seconds, b, True, args.device) for b in (1, 10, 100)]
    rows.append(_torch_rate(circuit, args.seconds, 10, False, args.device))
    python = lava_python_or_none()
    if python is not None:
        rows.append(_lava_rate(circuit, args.seconds, python))
    rows += [_ring_rate(args.seconds, b, args.device) for b in (1, 100)]
    base = rows[0]["instance_steps_per_s"]
    print(f"| body | B | steps/s | instance-steps/s | vs torch B=1 |  (host: {platform.processor() or 'cpu'}, "
          f"{torch.get_num_threads()} torch threads, device {args.device})")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        extra = (f" (+{r['startup_s']:.0f} s start-up; {r['overall_steps_per_s']:,.0f} steps/s overall)"
                 if "startup_s" in r else "")
        print(f"| {r['body']}{extra} | {r['B']} | {r['steps_per_s']:,.0f} | {r['instance_steps_per_s']:,.0f} | "
              f"{r['instance_steps_per_s'] / base:.3g}x |")
    if python is None:
        print("Lava: not timed (no Lava runtime; run 'make lava')")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"seconds": args.seconds, "device": args.device, "rows": rows}, indent=2) + "\n")
    tmp.replace(out)


if __name__ == "__main__":
    main()
