"""The head-direction study (Park et al., Sec. 2.11): the delay-line oscillator circuit beside a calibrated
ring attractor: path integration, drift in darkness, weight-noise robustness, S-type phase diffusion and
Lava parity. ``run(cfg, device=...)`` measures, ``plot(results, out)`` draws ``out/figures/hd_*.png`` and
``write(results, out)`` writes ``out/results/hd.{json,md}`` (``--out docs`` regenerates docs/circuits.md's).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .base import ExperimentConfig


class HDStudyConfig(ExperimentConfig):
    """Durations in s, noise levels (weight noise sigma, conduction jitter probability, input-current noise
    std), oscillation period and simulation step in ms, the Lava comparison's length in s."""

    duration: float = 60.0
    realisations: int = 20
    sigmas: tuple[float, ...] = (0.0, 0.01, 0.05, 0.1, 0.2)
    diffusion_duration: float = 20.0
    diffusion_realisations: int = 40
    jitters: tuple[float, ...] = (0.001, 0.01, 0.05)
    input_noises: tuple[float, ...] = (0.01, 0.03)
    period: float = 10.0
    dt: float = 0.125
    lava: bool = True
    lava_seconds: float = 2.0
    seed: int = 0

    @classmethod
    def quick(cls, **kwargs: Any) -> HDStudyConfig:
        """Small settings (5 s runs, 4 realisations) for a quick look."""
        return cls(**{"duration": 5.0, "realisations": 4, "diffusion_duration": 5.0, "lava_seconds": 0.5,
                      "diffusion_realisations": 8, **kwargs})  # fmt: skip


def run(cfg: HDStudyConfig = HDStudyConfig(), device: Any = "auto", log: Callable[[str], None] = print) -> dict:
    """Every measurement of the study (``device``: cpu, cuda, cuda:N or auto)."""
    from ..circuits import HeadDirectionCircuit, RingAttractor
    from ..device import resolve_device
    from . import hd_measure as X

    if cfg.duration < 1 or cfg.diffusion_duration < 1 or min(cfg.realisations, cfg.diffusion_realisations) < 1:
        raise ValueError("duration and diffusion-duration must be >= 1 s and realisations >= 1")
    if min(cfg.sigmas + cfg.jitters + cfg.input_noises) < 0:
        raise ValueError("noise levels (sigmas, jitters, input noises) must be >= 0")
    dev = str(resolve_device(device))
    t_start = time.perf_counter()
    circuit, ring = HeadDirectionCircuit(period=cfg.period, dt=cfg.dt), RingAttractor()
    settings = {"duration_s": cfg.duration, "realisations": cfg.realisations, "diffusion_s": cfg.diffusion_duration,
                "diffusion_realisations": cfg.diffusion_realisations, "seed": cfg.seed, "device": dev}  # fmt: skip
    log(f"[1/5] path integration, {cfg.duration:g} s of OU velocity ...")
    pi = X.path_integration(circuit, ring, cfg.duration, n=4, seed=cfg.seed, device=dev)
    log(f"[2/5] weight noise: {len(cfg.sigmas)} sigmas x {cfg.realisations} realisations, dark and OU ...")
    rob = X.robustness(circuit, ring, list(cfg.sigmas), cfg.realisations, cfg.duration, seed=cfg.seed, device=dev)
    log(f"[3/5] S-type noise, {cfg.diffusion_duration:g} s in darkness ...")
    diff = X.phase_diffusion(circuit, ring, list(cfg.jitters), list(cfg.input_noises), [0.02, 0.05],
                             n=cfg.diffusion_realisations, duration_s=cfg.diffusion_duration, seed=cfg.seed,
                             device=dev)  # fmt: skip
    log("[4/5] tuning curves and example trial ...")
    tun = X.tuning(circuit, seconds=min(10.0, cfg.duration), device=dev)
    show = X.showcase(circuit, ring, duration_s=min(4.0, cfg.duration), seed=cfg.seed, device=dev)
    lava_out = None
    if cfg.lava:
        log(f"[5/5] Lava: {cfg.lava_seconds:g} s simulated, float mode ...")
        lava_out = lava_check(circuit, cfg.lava_seconds, cfg.seed)
    return {"circuit": circuit, "ring": ring, "settings": settings, "path_integration": pi, "robustness": rob,
            "robustness_rows": X.robustness_table(rob), "diffusion": diff, "tuning": tun, "showcase": show,
            "lava": lava_out, "seconds": time.perf_counter() - t_start}  # fmt: skip


def plot(res: dict, out_dir: Path) -> list[Path]:
    """The five figures of docs/circuits.md under ``out_dir/figures``."""
    from . import hd_figures as F

    fig_dir, show = Path(out_dir) / "figures", res["showcase"]
    return [F.raster(res["circuit"], show["circuit"], fig_dir / "hd_raster.png"),
            F.kymograph(show["circuit"], show["ring"], show["velocity_deg_s"], fig_dir / "hd_kymograph.png"),
            F.tuning(res["tuning"], fig_dir / "hd_tuning.png"),
            F.robustness(res["robustness"], (0.5, 10.0), fig_dir / "hd_robustness.png"),
            F.diffusion(res["diffusion"], fig_dir / "hd_diffusion.png")]  # fmt: skip


def write(res: dict, out_dir: Path) -> Path:
    """``out_dir/results/hd.md`` (the tables of docs/circuits.md) and ``hd.json``; returns the .md path."""
    import numpy as np

    from ..atomic import atomic_write_bytes, atomic_write_json

    res_dir, lava = Path(out_dir) / "results", res["lava"]
    md = markdown(res["path_integration"], res["robustness_rows"], res["diffusion"],
                  lava if lava and "identical" in lava else None, res["circuit"], res["ring"], res["settings"])
    atomic_write_bytes(res_dir / "hd.md", md.encode())
    atomic_write_json(res_dir / "hd.json", {
        "settings": res["settings"], "circuit": repr(res["circuit"]), "ring": repr(res["ring"]),
        "path_integration": {k: np.asarray(v).tolist() for k, v in res["path_integration"].items()},
        "robustness": res["robustness_rows"],
        "robustness_raw": {k: np.asarray(v).tolist() for k, v in res["robustness"].items()},
        "diffusion": [{k: v for k, v in c.items() if k != "msd"} for c in res["diffusion"]["conditions"]],
        "lava": lava,
    })  # fmt: skip
    return res_dir / "hd.md"


def summary(res: dict) -> dict[str, Any]:
    """The headline numbers (mean path-integration errors, worst drift for sigma <= 0.1, Lava parity)."""
    import numpy as np

    pi, rows, lava = res["path_integration"], res["robustness_rows"], res["lava"]
    at = {r["sigma"]: r for r in rows}
    ok_sig = [s for s in at if s <= 0.1]
    return {
        "circuit_rmse_deg": float(np.mean(pi["circuit_rmse_deg"])),
        "ring_rmse_deg": float(np.mean(pi["ring_rmse_deg"])),
        "circuit_vs_phase_model_deg": float(np.mean(pi["circuit_vs_phase_model_deg"])),
        "max_speed_deg_s": pi["max_speed_deg_s"],
        "circuit_worst_drift_deg_s_sigma<=0.1": max((at[s]["circuit_drift_max"] for s in ok_sig), default=None),
        "circuit_worst_rmse_deg_sigma<=0.1": max((at[s]["circuit_rmse_max"] for s in ok_sig), default=None),
        "ring_drift_median_deg_s_sigma=0.1": at[0.1]["ring_drift_median"] if 0.1 in at else None,
        "lava": (None if lava is None else
                 lava.get("note") or f"identical={lava['identical']} over {lava['steps']} steps"),
    }  # fmt: skip


def markdown(pi: dict, rows: list[dict], diff: dict, lava: dict | None, circuit, ring,
              settings: dict) -> str:
    import numpy as np

    L = [f"<!-- written by `spikedyn circuit hd` ({settings}) -->", "",
         f"Circuit: {circuit!r}", "", f"Ring: {ring!r}", "",
         f"**Path integration** ({pi['instances']} x {pi['duration_s']:g} s of OU velocity, 120 deg/s std, "
         f"peak {pi['max_speed_deg_s']:.0f} deg/s), circular RMSE in deg (mean over instances, worst):", "",
         "| | RMSE (deg) | worst |", "| --- | --- | --- |"]
    for key, label in (("circuit_rmse_deg", "spiking circuit, decoded bump"),
                       ("circuit_phase_rmse_deg", "spiking circuit, oscillator phase"),
                       ("phase_model_rmse_deg", "phase model (Eq. 22-28), decoded bump"),
                       ("ring_rmse_deg", "ring attractor, decoded bump"),
                       ("circuit_vs_phase_model_deg", "spiking vs phase model, decoded (difference)"),
                       ("phase_vs_phase_model_deg", "spiking vs phase model, phase (difference)")):
        if key in pi:
            L.append(f"| {label} | {np.mean(pi[key]):.2f} | {np.max(pi[key]):.2f} |")
    L += ["", f"**Weight noise** w (1 + sigma xi) on every synapse, {settings['realisations']} realisations x "
          f"{settings['duration_s']:g} s; drift in darkness (deg/s) and path-integration RMSE (deg), median [max] "
          "over realisations; 'failed': realisations in which an oscillator stopped (a relay weight fell below "
          "threshold), counted as inf:",
          "",
          "| sigma | circuit drift | circuit RMSE | circuit failed | ring drift | ring RMSE |",
          "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        L.append(f"| {r['sigma']:g} | {r['circuit_drift_median']:.4f} [{r['circuit_drift_max']:.4f}] | "
                 f"{r['circuit_rmse_median']:.2f} [{r['circuit_rmse_max']:.2f}] | "
                 f"{r['circuit_failed']}/{settings['realisations']} | "
                 f"{r['ring_drift_median']:.3f} [{r['ring_drift_max']:.3f}] | "
                 f"{r['ring_rmse_median']:.1f} [{r['ring_rmse_max']:.1f}] |")
    L += ["", f"**S-type noise** in darkness ({diff['realisations']} x {diff['duration_s']:g} s): "
          "mean squared drift of the held heading grows as t^slope:", "",
          "| noise | level | MSD/t (deg^2/s) | predicted | log-log slope | RMS drift at end (deg) |",
          "| --- | --- | --- | --- | --- | --- |"]
    for c in diff["conditions"]:
        pred = "" if c["predicted_msd_per_s"] is None else f"{c['predicted_msd_per_s']:.3g}"
        L.append(f"| {c['noise']} | {c['level']:g} | {c['msd_per_s']:.3g} | {pred} | "
                 f"{c['loglog_slope']:.2f} | {c['rms_after_deg']:.1f} |")
    if lava is not None:
        L += ["", f"**Lava** (float LIF + DelayDense, Loihi2SimCfg): {lava['seconds']:g} s simulated = "
              f"{lava['steps']} steps, {lava['spikes']} spikes, identical to torch float64: "
              f"{lava['identical']} (mismatching spikes: {lava['mismatches']}); "
              f"Lava wall time {lava['wall_s']:.0f} s."]
    return "\n".join(L) + "\n"


def lava_check(circuit, seconds: float, seed: int) -> dict:
    """Run one instance (weight noise sigma = 0.05, OU velocity) on Lava and on torch float64; compare."""
    import numpy as np
    import torch

    from ..hardware.runtime import lava_python_or_none, lava_runtime
    from . import hd_measure as X

    python = lava_python_or_none()
    if python is None:
        return {"note": "skipped: no Lava runtime (run 'make lava')"}
    w = X.ou(seconds, 1, seed + 11, std_deg_s=240.0)[:, 0]
    weights = circuit.perturbed_weights(0.05, 1, seed=seed + 12)
    t0 = time.perf_counter()
    _, lava_spikes = circuit.run_lava(w, X.DT, 1.0, weights=weights[0], python=python)
    wall = time.perf_counter() - t0
    res = circuit.run(w, X.DT, 1.0, weights=weights, record="all", dtype=torch.float64, device="cpu",
                      progress=False)
    torch_spikes = np.stack([res.spikes[n] for n in circuit.network().names], axis=1)
    mism = int(np.sum(torch_spikes != lava_spikes))
    return {"seconds": seconds, "steps": int(lava_spikes.shape[0]), "spikes": int(lava_spikes.sum()),
            "identical": mism == 0, "mismatches": mism, "wall_s": wall, **lava_runtime(python)}
