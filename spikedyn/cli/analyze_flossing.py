"""``spikedyn analyze flossing-romo``: local gradient flossing before e-prop (Liu et al., Fig. 4)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from .common import device_option, emit, json_option, out_option
from .groups import analyze_app


@analyze_app.command("flossing-romo")
def flossing_romo(
    seeds: int = typer.Option(3, help="Network seeds (both arms share each initial network)."),
    gain: float = typer.Option(0.2, help="Initial recurrent gain: W_rec ~ N(0, gain^2/N)."),
    steps: int = typer.Option(1500, help="e-prop training iterations per arm."),
    floss_steps: int = typer.Option(100, help="Local flossing iterations before training."),
    floss_k: int = typer.Option(16, help="Exponents pushed towards zero."),
    floss_lr: float = typer.Option(1e-3, help="Adam learning rate of the flossing pretraining."),
    rule: str = typer.Option("eprop", help="eprop (online rule) | bptt-detach (same gradient by autograd)."),
    out: Path = out_option("analyze_flossing_romo", "results/flossing_romo.json and figures/"),
    report_only: bool = typer.Option(False, help="Only redraw the figure from OUT/results/flossing_romo.json."),
    device: str = device_option(),
    as_json: bool = json_option(),
) -> None:
    """Train a gain-0.2 ReLU rate RNN on Romo with e-prop, with and without local flossing pretraining,
    and plot both learning curves and the exponents before/after flossing."""
    from ..experiments import flossing as X

    t0 = time.perf_counter()
    results_path = out / "results" / "flossing_romo.json"
    if report_only:
        if not results_path.exists():
            raise FileNotFoundError(f"{results_path} not found; run without --report-only first")
        results = json.loads(results_path.read_text())
    else:
        cfg = X.FlossingRomoConfig(seeds=seeds, gain=gain, steps=steps, floss_steps=floss_steps, floss_k=floss_k,
                                   floss_lr=floss_lr, rule=rule)  # fmt: skip
        results = X.run(cfg, results_path, log=lambda s: typer.echo(s, err=True), device=device)
    figure = X.plot(results, out / "figures" / "analysis_flossing_romo.png")
    summary = {"figure": str(figure), **X.summary(results), "seconds": round(time.perf_counter() - t0, 1)}
    emit(summary, as_json, "local gradient flossing before e-prop on Romo")
