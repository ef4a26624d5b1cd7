"""``spikedyn analyze pta-map``: the (alpha, theta) region maps of Park et al.'s Fig. 5A-B."""
from __future__ import annotations

import time
from pathlib import Path

import typer

from .common import emit, json_option, out_option
from .groups import analyze_app


@analyze_app.command("pta-map")
def pta_map(
    out: Path = out_option("analyze_pta_map", "figures/analysis_pta_map.png"),
    recompute: bool = typer.Option(False, help="Recompute the maps (about a minute) instead of reading the "
                                   "cache shipped with the package (which is left as it is)."),
    as_json: bool = json_option(),
) -> None:
    """Leading Lyapunov exponent of the 2x2 rotation block over (alpha, theta) for the discrete, continuous
    and GRU regimes, the zero-exponent region PTA samples from, and a figure of it."""
    from ..experiments import fig3 as X

    t0 = time.perf_counter()
    maps = X.pta_maps(recompute)
    figure = X.plot_pta_maps(out / "figures" / "analysis_pta_map.png", maps)
    summary = {**X.pta_summary(maps), "figure": str(figure), "seconds": round(time.perf_counter() - t0, 1)}
    emit(summary, as_json, "PTA region maps")
