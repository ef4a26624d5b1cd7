"""The intrinsically-oscillating head-direction circuit (Park et al. Fig. 6A) on Lava and on torch: one OU trial.

    .venv/bin/python benchmarks/hd_intrinsic_lava.py [--seconds 60] [--dt 0.125] [--out runs/hd_intrinsic_lava.json]

Runs :class:`spikedyn.circuits.IntrinsicHeadDirectionCircuit` (bias-driven pacemakers locked by tau/2
delays, velocity quanta with a constant phase-response curve, Jeffress readout) on ``--seconds`` of OU
angular velocity (120 deg/s std, 0.08 s; seed 0) twice: in Lava's CPU simulator (float LIF / LIFRefractory
+ DelayDense, ``Loihi2SimCfg(select_tag="floating_pt")``, through the Lava interpreter) and in the torch
simulator (float64). Reports the number of mismatching spikes (every neuron, every step), the circular
RMSE of the decoded heading and of the oscillator phase on both, and the wall times. Writes a JSON file.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from spikedyn.hardware.runtime import find_lava_python, lava_runtime

from spikedyn.circuits import IntrinsicHeadDirectionCircuit
from spikedyn.experiments import hd_measure as X


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="simulated seconds of OU velocity")
    ap.add_argument("--dt", type=float, default=0.125, help="simulation step (ms)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/hd_intrinsic_lava.json")
    ap.add_argument("--instances", type=int, default=0,
                    help="also path-integrate this many OU trials on torch with both realisations")
    ap.add_argument("--no-lava", action="store_true", help="torch only")
    args = ap.parse_args()
    torch.set_num_threads(1)
    circuit = IntrinsicHeadDirectionCircuit(dt=args.dt)
    extra = {}
    if args.instances:
        from spikedyn.circuits import HeadDirectionCircuit

        for name, c in (("intrinsic", circuit), ("digital", HeadDirectionCircuit(dt=args.dt))):
            pi = X.path_integration(c, None, args.seconds, n=args.instances, seed=args.seed + 1)
            extra[name] = {k: np.round(np.asarray(v, dtype=float), 3).tolist() for k, v in pi.items()}
            print(name, extra[name], flush=True)
    if args.no_lava:
        _write(Path(args.out), {"circuit": repr(circuit), "seconds": args.seconds, "path_integration": extra})
        return
    w = X.ou(args.seconds, 1, args.seed)[:, 0]
    theta0 = float(X.initial_headings(1, args.seed)[0])
    k0 = X.settle_ms(circuit)
    t0 = time.perf_counter()
    res = circuit.run(w, X.DT, theta0, record="all", dtype=torch.float64, device="cpu", progress=None)
    torch_wall = time.perf_counter() - t0
    torch_spikes = np.stack([res.spikes[n] for n in circuit.network().names], axis=1)
    python = find_lava_python()
    print(f"torch: {torch_wall:.1f} s; Lava ({python}): {torch_spikes.shape[0]:,} steps ...", flush=True)
    t0 = time.perf_counter()
    lava_res, lava_spikes = circuit.run_lava(w, X.DT, theta0, python=python, timeout=6 * 3600)
    lava_wall = time.perf_counter() - t0
    mism = int(np.sum(lava_spikes != torch_spikes))

    def rmse(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.rad2deg(np.sqrt(np.nanmean(
            np.angle(np.exp(1j * (a[int(k0):] - b[int(k0):]))) ** 2))))

    out = {
        "circuit": repr(circuit), "seconds": args.seconds, "seed": args.seed, "steps": int(torch_spikes.shape[0]),
        "spikes": int(torch_spikes.sum()), "mismatching_spikes": mism, "identical": mism == 0,
        "max_speed_deg_s": float(np.rad2deg(np.abs(w).max())),
        "torch_rmse_deg": rmse(res.decoded, res.heading), "torch_phase_rmse_deg": rmse(res.phase_heading, res.heading),
        "lava_rmse_deg": rmse(lava_res.decoded, lava_res.heading),
        "lava_phase_rmse_deg": rmse(lava_res.phase_heading, lava_res.heading),
        "torch_wall_s": torch_wall, "lava_wall_s": lava_wall, **lava_runtime(python),  # no local path
        "path_integration": extra,
    }  # fmt: skip
    print(json.dumps(out, indent=2))
    _write(Path(args.out), out)


def _write(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    tmp.replace(path)


if __name__ == "__main__":
    main()
