"""Figures for docs/circuits.md (matplotlib, Agg backend): written atomically as PNGs."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import atomic_save_figure
from ..circuits.head_direction import OSCILLATOR_NEURONS, HeadDirectionCircuit


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    return atomic_save_figure(fig, path, dpi=130, bbox_inches="tight")


def raster(circuit: HeadDirectionCircuit, res, path: Path, periods: int = 2) -> Path:
    """Fig. 6B: the four oscillator neurons over a few periods at two moments that hold different
    headings (early in the run, and at the end)."""
    plt = _plt()
    spikes = res.spikes
    n_sim = spikes[OSCILLATOR_NEURONS[0]].shape[0]
    span = periods * circuit.D
    starts = [circuit.D * 2, n_sim - span]
    fig, axes = plt.subplots(1, 2, figsize=(10, 2.8), sharey=True)
    for ax, s0 in zip(axes, starts, strict=True):
        k = min(res.heading.shape[0] - 1, int((s0 + span) * circuit.dt / res.dt))
        for row, name in enumerate(OSCILLATOR_NEURONS):
            t = np.flatnonzero(spikes[name][s0:s0 + span]) * circuit.dt
            ax.vlines(t, row + 0.6, row + 1.4, color="tab:red" if "+" in name else "tab:blue", lw=2)
        plus = np.flatnonzero(spikes["PL+"][s0:s0 + span]) * circuit.dt
        minus = np.flatnonzero(spikes["PL-"][s0:s0 + span]) * circuit.dt
        for x in plus:  # guides at the '+' phase: P_L- lags them by dphi (and P_R- by dphi + tau/2)
            ax.axvline(x, color="tab:red", ls=":", lw=0.8)
            ax.axvline(x + circuit.period / 2, color="tab:red", ls=":", lw=0.4)
        later = minus[minus >= plus[0]] if plus.size else minus[:0]
        lag = f", dphi = {later[0] - plus[0]:.3f} ms" if later.size else ""
        ax.set_yticks(range(1, 5), [n.replace("PL", "P_L").replace("PR", "P_R") for n in OSCILLATOR_NEURONS])
        ax.set_xlabel(f"time (ms) from t = {s0 * circuit.dt / 1000:.2f} s")
        ax.set_title(f"held heading {np.rad2deg(res.phase_heading[k]):.0f} deg "
                     f"(true {np.rad2deg(res.heading[k]):.0f} deg){lag}", fontsize=9)
        ax.set_ylim(0.4, 4.6)
        ax.invert_yaxis()
    fig.suptitle(f"oscillator spikes: period {circuit.period:g} ms set by the {circuit.D // 2}-step "
                 "conduction delays; the heading is the lag of '-' behind '+'", fontsize=9, y=1.04)
    return _save(fig, path)


def kymograph(circuit_res, ring_res, velocity_deg_s: np.ndarray, path: Path) -> Path:
    """Bump over time (segments x time) for the circuit and the ring, true heading overlaid."""
    plt = _plt()
    T = circuit_res.heading.shape[0]
    t = np.arange(T) * circuit_res.dt / 1000.0
    fig, axes = plt.subplots(3, 1, figsize=(10, 6.5), sharex=True, height_ratios=[1, 2, 2])
    axes[0].plot(t, velocity_deg_s, color="k", lw=0.8)
    axes[0].set_ylabel("velocity\n(deg/s)")
    for ax, res, title in ((axes[1], circuit_res, "delay-line oscillator circuit (spiking)"),
                           (axes[2], ring_res, "ring attractor (Zhang 1996)")):
        n_seg = res.bump.shape[-1]
        norm = res.bump / np.maximum(res.bump.max(axis=1, keepdims=True), 1e-12)
        ax.imshow(norm.T, aspect="auto", origin="lower", cmap="viridis", interpolation="nearest",
                  extent=(t[0], t[-1], 0, 360))
        for y, style, label in ((res.heading, "w-", "true heading"), (res.decoded, "r--", "decoded")):
            deg = np.rad2deg(y).copy()
            deg[1:][np.abs(np.diff(deg)) > 180] = np.nan  # break the line where it wraps
            ax.plot(t, deg, style, lw=1.0, label=label)
        ax.set_ylabel(f"heading (deg)\n{n_seg} segments")
        ax.set_title(title, fontsize=9)
    axes[1].legend(loc="upper right", fontsize=8)
    axes[2].set_xlabel("time (s)")
    return _save(fig, path)


def tuning(t: dict, path: Path) -> Path:
    """Fig. 6D-E: tuning curve of each segment vs heading (spiking solid, phase model dashed) and the
    population bump at four headings."""
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.6))
    h = t["heading_deg"]
    colors = plt.cm.hsv(np.linspace(0, 1, t["spiking"].shape[1], endpoint=False))
    for s in range(t["spiking"].shape[1]):
        a.plot(h, t["spiking"][:, s], color=colors[s], lw=1.5)
        a.plot(h, t["phase_model"][:, s], color=colors[s], lw=1, ls="--")
    a.set_xlabel("heading (deg)")
    a.set_ylabel("smoothed rate (Hz per detector)")
    a.set_title("segment tuning curves (solid: spiking, dashed: phase model Eq. 28)", fontsize=9)
    seg = t["segment_deg"]
    for target in (0, 90, 180, 270):
        i = int(np.argmin(np.abs((h - target + 180) % 360 - 180)))
        b.plot(seg, t["spiking"][i], "o-", label=f"heading {h[i]:.0f} deg")
    b.set_xlabel("segment preferred heading (deg)")
    b.set_ylabel("rate (Hz per detector)")
    b.set_title("population bump over the 8 segments", fontsize=9)
    b.legend(fontsize=8)
    return _save(fig, path)


def robustness(r: dict, circuit_bounds: tuple[float, float], path: Path) -> Path:
    """Drift in darkness and path-integration error vs weight-noise sigma, both circuits, all
    realisations (dots) and medians (lines)."""
    plt = _plt()
    sig = np.asarray(r["sigmas"])
    x = np.arange(len(sig))
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    floor = 1e-4
    for ax, key, bound, ylabel, unit in ((a, "drift_deg_s", circuit_bounds[0], "drift in darkness (deg/s)", "deg/s"),
                                         (b, "rmse_deg", circuit_bounds[1], "path-integration RMSE (deg)", "deg")):
        for off, name, color in ((-0.12, "circuit", "tab:red"), (0.12, "ring", "tab:blue")):
            vals = np.maximum(r[f"{name}_{key}"], floor)
            for i in range(len(sig)):
                ax.scatter(np.full(vals.shape[1], x[i] + off), vals[i], s=8, color=color, alpha=0.5)
            ax.plot(x + off, np.median(vals, axis=1), "-o", color=color,
                    label="oscillator circuit" if name == "circuit" else "ring attractor")
        ax.axhline(bound, color="k", ls=":", lw=1, label=f"target for the circuit: below {bound:g} {unit}")
        ax.set_yscale("log")
        ax.set_xticks(x, [f"{s:g}" for s in sig])
        ax.set_xlabel("weight noise sigma: w (1 + sigma xi)")
        ax.set_ylabel(ylabel)
    a.set_title(f"{r['realisations']} realisations x {r['duration_s']:g} s; values below {floor:g} drawn at "
                f"{floor:g}", fontsize=8)
    b.legend(fontsize=8)
    return _save(fig, path)


def diffusion(d: dict, path: Path) -> Path:
    """S-type noise: mean squared drift vs time (log-log), with the jitter prediction."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    t = d["t_s"]
    for c in d["conditions"]:
        m = c["msd"]
        ok = (t > 0) & (m > 0)
        label = f"{c['noise']} = {c['level']:g} (slope {c['loglog_slope']:.2f})"
        line, = ax.loglog(t[ok], m[ok], label=label)
        if c["predicted_msd_per_s"]:
            ax.loglog(t[ok], c["predicted_msd_per_s"] * t[ok], ls=":", color=line.get_color())
    ax.set_xlabel("time in darkness (s)")
    ax.set_ylabel("mean squared drift (deg$^2$)")
    ax.set_title("phase diffusion under S-type noise (dotted: 4 p t / tau quantum$^2$)", fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, path)
