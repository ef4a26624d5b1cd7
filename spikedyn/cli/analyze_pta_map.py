"""``spikedyn analyze pta-map``: the (alpha, theta) region maps of seed 003 Fig. 5A-B."""
from __future__ import annotations

import time
from pathlib import Path

import typer

from .common import emit, json_option
from .groups import analyze_app


@analyze_app.command("pta-map")
def pta_map(
    out: Path = typer.Option(Path("docs/figures/analysis_pta_map.png"), help="Output PNG."),
    recompute: bool = typer.Option(False, help="Recompute the maps (and rewrite the shipped cache)."),
    as_json: bool = json_option(),
) -> None:
    """Leading Lyapunov exponent of the 2x2 rotation block over (alpha, theta) for the discrete, continuous
    and GRU regimes, the zero-exponent region PTA samples from, and a figure of it."""
    from ..analysis.figures import plot_pta_maps
    from ..analysis.pta_map import REGIMES, cache_path, pta_region_map
    from ..init import DEFAULT_ALPHA_MAX

    t0 = time.perf_counter()
    summary = {}
    for regime in REGIMES:
        r = pta_region_map(regime, recompute=recompute)
        zero = r.zero_mask()
        summary[regime] = (f"{int(zero.sum())} of {zero.size} grid points have lambda_1 = 0; "
                           f"{len(r.zero_points(alpha_max=DEFAULT_ALPHA_MAX[regime]))} with alpha <= "
                           f"{DEFAULT_ALPHA_MAX[regime]} ({cache_path(regime).name})")  # fmt: skip
    plot_pta_maps(out)
    summary.update(figure=str(out), seconds=round(time.perf_counter() - t0, 1))
    emit(summary, as_json, "PTA region maps")
