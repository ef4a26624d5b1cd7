"""``spikedyn analyze fig3``: Park et al.'s Fig. 3, regenerated from the reference systems."""
from __future__ import annotations

import time
from pathlib import Path

import typer

from .common import emit, json_option, out_option
from .groups import analyze_app


@analyze_app.command("fig3")
def fig3(
    out: Path = out_option("analyze_fig3", "figures/analysis_fig3.png"),
    duration: float = typer.Option(60.0, help="Simulated time shown (units of tau)."),
    spectrum_duration: float = typer.Option(300.0, help="Trajectory length for the spectra (units of tau)."),
    trials: int = typer.Option(10, help="Initial conditions per system."),
    seed: int = typer.Option(0, help="Seed of the initial conditions and tangent vectors."),
    as_json: bool = json_option(),
) -> None:
    """Activity, adjoint norm and top-6 Lyapunov spectrum of the five reference systems (fading memory,
    two fixed points, line attractor, chaos, limit cycle), as Park et al.'s Fig. 3 (about a minute)."""
    from ..experiments import fig3 as X

    t0 = time.perf_counter()
    data = X.run(X.Fig3Config(duration=duration, spectrum_duration=spectrum_duration, trials=trials, seed=seed))
    figure = X.plot(data, out / "figures" / "analysis_fig3.png")
    summary = {name: " ".join(f"{s:.3f}" for s in d["spectrum"]) for name, d in data.items()}
    summary.update(figure=str(figure), seconds=round(time.perf_counter() - t0, 1))
    emit(summary, as_json, "top-6 Lyapunov exponents (per unit of time)")
