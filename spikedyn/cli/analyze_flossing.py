"""``spikedyn analyze flossing-romo``: seed 001 Fig. 4 (local gradient flossing before e-prop)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from .common import emit, json_option
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
    out_dir: Path = typer.Option(Path("runs/flossing_romo"), help="Where results.json goes."),
    out: Path = typer.Option(Path("docs/figures/analysis_flossing_romo.png"), help="Output PNG."),
    report_only: bool = typer.Option(False, help="Only redraw the figure from out_dir/results.json."),
    as_json: bool = json_option(),
) -> None:
    """Train a gain-0.2 ReLU rate RNN on Romo with e-prop, with and without local flossing pretraining,
    and plot both learning curves and the exponents before/after flossing."""
    import numpy as np

    from ..analysis.flossing_experiment import FlossingRomoConfig, plot_flossing_romo, run_flossing_romo

    t0 = time.perf_counter()
    if report_only:
        path = out_dir / "results.json"
        if not path.exists():
            raise FileNotFoundError(f"{path} not found; run without --report-only first")
        results = json.loads(path.read_text())
    else:
        if rule not in ("eprop", "bptt-detach"):
            raise ValueError(f"rule must be eprop or bptt-detach, got {rule!r}")
        cfg = FlossingRomoConfig(seeds=seeds, gain=gain, steps=steps, floss_steps=floss_steps, floss_k=floss_k,
                                 floss_lr=floss_lr, rule=rule)  # fmt: skip
        results = run_flossing_romo(cfg, out_dir, log=lambda s: typer.echo(s, err=True))
    plot_flossing_romo(results, out)
    summary = {"figure": str(out)}
    tail = max(1, results["config"]["steps"] // 10)
    for arm in ("e-prop", "flossing + e-prop"):
        last = [float(np.mean(r["curves"][arm]["loss"][-tail:])) for r in results["runs"]]
        final = [r["curves"][arm]["eval_loss"][-1] for r in results["runs"]]
        summary[f"{arm}: train loss, last 10%"] = f"{np.mean(last):.4f} ± {np.std(last):.4f}"
        summary[f"{arm}: held-out loss"] = f"{np.mean(final):.4f} ± {np.std(final):.4f}"
        acc = [r["curves"][arm]["accuracy"][-1] for r in results["runs"]]
        per_seed = ", ".join(f"{a:.3f}" for a in acc)
        summary[f"{arm}: held-out accuracy"] = f"{np.mean(acc):.3f} ± {np.std(acc):.3f} ({per_seed})"
    summary["lambda_1 before / after flossing"] = " ".join(
        f"{r['lambda_before'][0]:.3f}/{r['lambda_after'][0]:.3f}" for r in results["runs"])
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    emit(summary, as_json, "local gradient flossing before e-prop on Romo")
