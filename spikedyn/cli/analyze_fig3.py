"""``spikedyn analyze fig3``: seed 003 Fig. 3 regenerated from the reference systems."""
from __future__ import annotations

import time
from pathlib import Path

import typer

from .common import emit, json_option
from .groups import analyze_app


@analyze_app.command("fig3")
def fig3(
    out: Path = typer.Option(Path("docs/figures/analysis_fig3.png"), help="Output PNG."),
    duration: float = typer.Option(60.0, help="Simulated time shown (units of tau)."),
    spectrum_duration: float = typer.Option(300.0, help="Trajectory length for the spectra (units of tau)."),
    trials: int = typer.Option(10, help="Initial conditions per system."),
    seed: int = typer.Option(0, help="Seed of the initial conditions and tangent vectors."),
    as_json: bool = json_option(),
) -> None:
    """Activity, adjoint norm and top-6 Lyapunov spectrum of the five reference systems (fading memory,
    two fixed points, line attractor, chaos, limit cycle), as seed 003 Fig. 3 (about a minute)."""
    from ..analysis.figures import fig3_data, plot_fig3

    if duration <= 0 or spectrum_duration <= 0 or trials < 1:
        raise ValueError("duration and spectrum_duration must be > 0 and trials >= 1")
    t0 = time.perf_counter()
    data = fig3_data(duration, spectrum_duration, trials, seed)
    plot_fig3(data, out)
    summary = {name: " ".join(f"{s:.3f}" for s in d["spectrum"]) for name, d in data.items()}
    summary.update(figure=str(out), seconds=round(time.perf_counter() - t0, 1))
    emit(summary, as_json, "top-6 Lyapunov exponents (per unit of time)")
