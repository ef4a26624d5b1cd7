"""Figures of the analysis docs: Park et al.'s Fig. 3 (reference systems) and Fig. 5A-B (PTA region maps).

``run(Fig3Config(...))`` -> data, ``plot(data, path)``; ``pta_maps(recompute)`` -> maps,
``plot_pta_maps(path, maps)``. Recomputed maps are not written into the installed package.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_save_figure
from .base import ExperimentConfig


def _save(fig: Any, path: Path) -> Path:
    return atomic_save_figure(fig, path, dpi=110)


FIG3_SYSTEMS = (
    ("fading_memory", "A  fading memory (one stable fixed point)"),
    ("two_fixed_points", "B  two stable fixed points"),
    ("line_attractor", "C  line attractor"),
    ("chaotic", "D  chaotic network (N = 100)"),
    ("limit_cycle", "E  limit cycle (N = 20)"),
)


class Fig3Config(ExperimentConfig):
    """Simulated time shown and trajectory length of the spectra (units of tau), initial conditions, seed."""

    duration: float = 60.0
    spectrum_duration: float = 300.0
    trials: int = 10
    seed: int = 0


def run(cfg: Fig3Config = Fig3Config()) -> dict[str, dict[str, Any]]:
    """``fig3_data`` with ``cfg``'s settings (the reference systems are small: CPU, float64)."""
    if cfg.duration <= 0 or cfg.spectrum_duration <= 0 or cfg.trials < 1:
        raise ValueError("duration and spectrum_duration must be > 0 and trials >= 1")
    return fig3_data(cfg.duration, cfg.spectrum_duration, cfg.trials, cfg.seed)


def fig3_data(duration: float = 60.0, spectrum_duration: float = 300.0, trials: int = 10,
              seed: int = 0) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Activity of one unit over ``trials`` initial conditions, the adjoint norm for a loss at the end
    (one trial), and the top-6 Lyapunov spectrum of each reference system (time in the system's units)."""
    from ..analysis.adjoint import adjoint_norms
    from ..analysis.lyapunov import lyapunov_spectrum
    from ..analysis.reference_systems import REFERENCE_SYSTEMS

    out = {}
    for name, _ in FIG3_SYSTEMS:
        m = REFERENCE_SYSTEMS[name]().double()
        T = int(round(duration / m.dt))
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            x = m.loop(m.autonomous_input(T, trials), m.init_state(trials, generator=gen)).r.numpy()
        unit = int(np.argmax(x.std(axis=(0, 1))))  # the most variable unit
        adj = adjoint_norms(m, m.autonomous_input(T, 1)[:, 0], seed=seed)
        Ts = int(round(spectrum_duration / m.dt))
        spec = lyapunov_spectrum(m, m.autonomous_input(Ts, 1), k=6, warmup=Ts // 3, reortho_every=2, seed=seed)
        out[name] = {"t": np.arange(1, T + 1) * m.dt, "activity": x[:, :, unit], "unit": unit, "adjoint": adj,
                     "spectrum": spec}  # fmt: skip
    return out


def plot(data: dict[str, dict[str, Any]], path: Path) -> Path:
    """Park et al.'s Fig. 3 (see ``plot_fig3``)."""
    return plot_fig3(data, path)


def plot_fig3(data: dict[str, dict[str, Any]], path: Path) -> Path:
    """Park et al.'s Fig. 3: activity, adjoint and top-6 spectrum for each reference system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(FIG3_SYSTEMS), 3, figsize=(10.5, 2.1 * len(FIG3_SYSTEMS)))
    for row, (name, title) in zip(axes, FIG3_SYSTEMS, strict=True):
        d = data[name]
        row[0].plot(d["t"], d["activity"], lw=0.8)
        row[0].set_ylabel(f"x_{d['unit']}")
        row[0].set_title(title, fontsize=9, loc="left")
        row[1].semilogy(d["t"], np.maximum(d["adjoint"], 1e-300), color="k", lw=1)
        row[1].set_ylabel("||dL/dx(t)||")
        lo = max(1e-12, float(np.min(d["adjoint"])) / 3)
        row[1].set_ylim(lo, max(10.0, float(np.max(d["adjoint"])) * 3))
        spec = d["spectrum"]
        colors = ["tab:red" if s > 0.02 else ("tab:green" if abs(s) <= 0.02 else "tab:blue") for s in spec]
        row[2].axhline(0, color="k", lw=0.8)
        row[2].scatter(np.arange(1, 7), spec, c=colors, zorder=3)
        for i, s in enumerate(spec):
            row[2].annotate(f"{s:.2f}", (i + 1, s), textcoords="offset points", xytext=(0, 5), ha="center", fontsize=7)
        lo, hi = min(spec.min(), 0.0), max(spec.max(), 0.0)
        row[2].set_ylim(lo - 0.15 * (hi - lo + 1e-3), hi + 0.25 * (hi - lo + 1e-3))
        row[2].set_ylabel("lambda_i (1/time)")
    axes[-1, 0].set_xlabel("time (units of tau)")
    axes[-1, 1].set_xlabel("time (loss at the end; read right to left)")
    axes[-1, 2].set_xlabel("index i (green |lambda| <= 0.02, red > 0.02)")
    fig.tight_layout()
    return _save(fig, path)


def pta_maps(recompute: bool = False) -> dict[str, Any]:
    """The region map of every regime: the shipped cache, or recomputed (not saved into the package)."""
    from ..analysis.pta_map import REGIMES, pta_region_map

    return {regime: pta_region_map(regime, recompute=recompute, save=False) for regime in REGIMES}


def pta_summary(maps: dict[str, Any]) -> dict[str, str]:
    """Per regime: how many grid points have lambda_1 = 0, and how many below the default alpha bound."""
    from ..init import DEFAULT_ALPHA_MAX

    out = {}
    for regime, r in maps.items():
        zero = r.zero_mask()
        out[regime] = (f"{int(zero.sum())} of {zero.size} grid points have lambda_1 = 0; "
                       f"{len(r.zero_points(alpha_max=DEFAULT_ALPHA_MAX[regime]))} with alpha <= "
                       f"{DEFAULT_ALPHA_MAX[regime]}")  # fmt: skip
    return out


def plot_pta_maps(path: Path, maps: dict[str, Any] | None = None) -> Path:
    """Park et al.'s Fig. 5A-B for the three regimes: lambda_1 of the 2x2 block over (theta, alpha), the zero
    region outlined, the default sampling bound dashed; bottom row: where the block oscillates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..analysis.pta_map import REGIMES, ZERO_TOL, pta_region_map
    from ..init import DEFAULT_ALPHA_MAX

    fig, axes = plt.subplots(2, 3, figsize=(12, 7))
    for j, regime in enumerate(REGIMES):
        r = maps[regime] if maps is not None else pta_region_map(regime)
        ext = [r.thetas[0], r.thetas[-1], r.alphas[0], r.alphas[-1]]
        lam1 = np.clip(r.lam[..., 0], -1.0, 0.3)
        im = axes[0, j].imshow(lam1, origin="lower", aspect="auto", extent=ext, cmap="RdBu_r", vmin=-1.0, vmax=1.0)
        axes[0, j].contour(r.thetas, r.alphas, r.zero_mask().astype(float), levels=[0.5], colors="k",
                           linestyles="--", linewidths=0.8)  # fmt: skip
        axes[0, j].axhline(DEFAULT_ALPHA_MAX[regime], color="k", lw=0.8, ls=":")
        unit = "per step" if regime != "continuous" else "per tau"
        axes[0, j].set_title(f"{regime}: lambda_1 ({unit})", fontsize=10)
        fig.colorbar(im, ax=axes[0, j], fraction=0.046)
        axes[1, j].imshow(r.oscillates.astype(float) + r.zero_mask(), origin="lower", aspect="auto", extent=ext,
                          cmap="Greys", vmin=0, vmax=2.5)  # fmt: skip
        axes[1, j].set_title(f"{regime}: oscillates (grey), |lambda_1| < {ZERO_TOL} (black)", fontsize=9)
        for i in range(2):
            axes[i, j].set_xlabel("theta (rad)")
            axes[i, j].set_ylabel("alpha")
    fig.suptitle("PTA region maps: 2x2 block alpha R(theta); dashed: zero-exponent region, dotted: default alpha_max",
                 fontsize=10)  # fmt: skip
    fig.tight_layout()
    return _save(fig, path)
