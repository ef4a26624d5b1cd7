"""``spikedyn circuit hd``: the delay-line head-direction circuit beside a ring attractor."""
from __future__ import annotations

import time
from pathlib import Path

import typer

from .common import comma_list, emit, json_option
from .groups import circuit_app


def _markdown(pi: dict, rows: list[dict], diff: dict, lava: dict | None, circuit, ring,
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


@circuit_app.command("hd")
def hd(
    duration: float = typer.Option(60.0, help="Seconds per run (path integration and darkness)."),
    realisations: int = typer.Option(20, help="Weight-noise realisations per sigma."),
    sigmas: str = typer.Option("0,0.01,0.05,0.1,0.2", help="Weight-noise levels sigma (comma-separated)."),
    diffusion_duration: float = typer.Option(20.0, help="Seconds per S-type-noise run."),
    diffusion_realisations: int = typer.Option(40, help="Noise realisations per S-type-noise level."),
    jitters: str = typer.Option("0.001,0.01,0.05", help="Conduction-jitter probabilities (S-type)."),
    input_noises: str = typer.Option("0.01,0.03", help="Input-current noise std (S-type)."),
    period: float = typer.Option(10.0, help="Oscillation period (ms)."),
    dt: float = typer.Option(0.125, help="Simulation step of the circuit (ms)."),
    lava: bool = typer.Option(True, help="Compare Lava with torch (skipped, with a note, without Lava)."),
    lava_seconds: float = typer.Option(2.0, help="Simulated seconds for the Lava comparison."),
    quick: bool = typer.Option(False, help="Small settings (5 s runs, 4 realisations) for a quick look."),
    out_dir: str = typer.Option("docs", help="Writes figures/hd_*.png and results/hd.{json,md} here."),
    seed: int = typer.Option(0, help="Seed."),
    device: str = typer.Option(None, help="torch device (default: cuda if available, else cpu)."),
    as_json: bool = json_option(),
) -> None:
    """Measure the delay-line oscillator circuit (seed 003 Sec. 2.11) beside a calibrated ring attractor:
    path integration, drift in darkness, weight-noise robustness, S-type phase diffusion, Lava parity;
    write the figures and tables of docs/circuits.md (a full run takes tens of minutes on 2 CPU cores)."""
    import numpy as np

    from ..circuits import HeadDirectionCircuit, RingAttractor
    from ..circuits import experiments as X
    from ..circuits import figures as F
    from ..learning.checkpoint import atomic_write_bytes, atomic_write_json

    if quick:
        duration, realisations, diffusion_duration, lava_seconds = 5.0, 4, 5.0, 0.5
        diffusion_realisations = 8
    sig = list(comma_list(sigmas, "--sigmas", float, 0.0))
    if duration < 1 or diffusion_duration < 1 or min(realisations, diffusion_realisations) < 1:
        raise ValueError("duration and diffusion-duration must be >= 1 s and realisations >= 1")
    dev = device or str(X.default_device())
    t_start = time.perf_counter()
    circuit, ring = HeadDirectionCircuit(period=period, dt=dt), RingAttractor()
    fig_dir, res_dir = Path(out_dir) / "figures", Path(out_dir) / "results"
    settings = {"duration_s": duration, "realisations": realisations, "diffusion_s": diffusion_duration,
                "diffusion_realisations": diffusion_realisations, "seed": seed, "device": dev}

    print(f"[1/6] path integration, {duration:g} s of OU velocity ...", flush=True)
    pi = X.path_integration(circuit, ring, duration, n=4, seed=seed, device=dev)
    print(f"[2/6] weight noise: {len(sig)} sigmas x {realisations} realisations, dark and OU ...", flush=True)
    rob = X.robustness(circuit, ring, sig, realisations, duration, seed=seed, device=dev)
    rows = X.robustness_table(rob)
    print(f"[3/6] S-type noise, {diffusion_duration:g} s in darkness ...", flush=True)
    diff = X.phase_diffusion(circuit, ring, list(comma_list(jitters, "--jitters", float, 0.0)),
                             list(comma_list(input_noises, "--input-noises", float, 0.0)), [0.02, 0.05],
                             n=diffusion_realisations, duration_s=diffusion_duration, seed=seed, device=dev)
    print("[4/6] tuning curves and example trial ...", flush=True)
    tun = X.tuning(circuit, seconds=min(10.0, duration), device=dev)
    show = X.showcase(circuit, ring, duration_s=min(4.0, duration), seed=seed, device=dev)
    lava_out = None
    if lava:
        print(f"[5/6] Lava: {lava_seconds:g} s simulated, float mode ...", flush=True)
        lava_out = _lava_check(circuit, lava_seconds, seed)
    print("[6/6] figures ...", flush=True)
    figs = [F.raster(circuit, show["circuit"], fig_dir / "hd_raster.png"),
            F.kymograph(show["circuit"], show["ring"], show["velocity_deg_s"], fig_dir / "hd_kymograph.png"),
            F.tuning(tun, fig_dir / "hd_tuning.png"),
            F.robustness(rob, (0.5, 10.0), fig_dir / "hd_robustness.png"),
            F.diffusion(diff, fig_dir / "hd_diffusion.png")]
    md = _markdown(pi, rows, diff, lava_out if lava_out and "identical" in lava_out else None, circuit, ring,
                   settings)
    atomic_write_bytes(res_dir / "hd.md", md.encode())
    atomic_write_json(res_dir / "hd.json", {
        "settings": settings, "circuit": repr(circuit), "ring": repr(ring),
        "path_integration": {k: np.asarray(v).tolist() for k, v in pi.items()},
        "robustness": rows, "robustness_raw": {k: np.asarray(v).tolist() for k, v in rob.items()},
        "diffusion": [{k: v for k, v in c.items() if k != "msd"} for c in diff["conditions"]],
        "lava": lava_out,
    })  # fmt: skip
    at = {r["sigma"]: r for r in rows}
    ok_sig = [s for s in sig if s <= 0.1]
    summary = {
        "circuit_rmse_deg": float(np.mean(pi["circuit_rmse_deg"])),
        "ring_rmse_deg": float(np.mean(pi["ring_rmse_deg"])),
        "circuit_vs_phase_model_deg": float(np.mean(pi["circuit_vs_phase_model_deg"])),
        "max_speed_deg_s": pi["max_speed_deg_s"],
        "circuit_worst_drift_deg_s_sigma<=0.1": max((at[s]["circuit_drift_max"] for s in ok_sig), default=None),
        "circuit_worst_rmse_deg_sigma<=0.1": max((at[s]["circuit_rmse_max"] for s in ok_sig), default=None),
        "ring_drift_median_deg_s_sigma=0.1": at[0.1]["ring_drift_median"] if 0.1 in at else None,
        "lava": (None if lava_out is None else
                 lava_out.get("note") or f"identical={lava_out['identical']} over {lava_out['steps']} steps"),
        "figures": ", ".join(str(f) for f in figs),
        "tables": str(res_dir / "hd.md"),
        "seconds": round(time.perf_counter() - t_start, 1),
    }  # fmt: skip
    emit(summary, as_json, "spikedyn circuit hd: delay-line oscillators vs ring attractor")


def _lava_check(circuit, seconds: float, seed: int) -> dict:
    """Run one instance (weight noise sigma = 0.05, OU velocity) on Lava and on torch float64; compare."""
    import numpy as np
    import torch

    from ..circuits import experiments as X
    from ..hardware.runtime import lava_python_or_none

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
            "identical": mism == 0, "mismatches": mism, "wall_s": wall, "python": python}
