"""``spikedyn bench eprop-gain``: e-prop and BPTT loss curves on Romo per initial gain (Liu et al., Fig. 1) and
the maximum Lyapunov exponent before and after training (Liu et al., Fig. 3)."""
from __future__ import annotations

import os
from pathlib import Path

import typer

from .common import comma_list, device_option, emit, json_option, out_option
from .groups import bench_app


@bench_app.command("eprop-gain")
def eprop_gain(
    gains: str = typer.Option("0.2,0.5,1.0,1.5", help="Initial recurrent gains g (W_rec ~ N(0, g^2/N))."),
    lrs: str = typer.Option("1e-4,3e-4,1e-3,3e-3", help="Adam learning rates to choose from."),
    seeds: int = typer.Option(5, help="Seeds per gain."),
    iterations: int = typer.Option(1500, help="Training iterations per run (> 200)."),
    bptt_iterations: int = typer.Option(None, help="BPTT's iterations per run (default: --iterations)."),
    lyapunov: bool = typer.Option(True, help="Max Lyapunov exponent before/after training (Fig. 3 figure)."),
    hidden: int = typer.Option(64, help="Units."),
    batch: int = typer.Option(32, help="Trials per batch."),
    dt: float = typer.Option(20.0, help="Task step in ms."),
    tau: float = typer.Option(100.0, help="Unit time constant in ms (alpha = dt / tau)."),
    mask: str = typer.Option("decision", help="Romo's loss mask: decision (Schuessler et al.) or all."),
    full_grid: bool = typer.Option(False, help="Run every seed at every lr (else choose the lr on seed 0)."),
    workers: int = typer.Option(max(1, min(2, os.cpu_count() or 1)), help="Parallel training processes."),
    cache: Path = typer.Option(Path("runs/eprop_gain/cache"), help="Per-run JSON cache (resumes; delete to rerun)."),
    device: str = device_option(),
    out: Path = out_option("bench_eprop_gain"),
    as_json: bool = json_option(),
) -> None:
    """Liu et al.'s headline: e-prop and BPTT loss curves on Romo for several initial gains (figure + table)."""
    from ..experiments import eprop_gain as X

    cfg = X.EpropGainConfig(gains=comma_list(gains, "--gains", float, 0.0), lrs=comma_list(lrs, "--lrs", float, 0.0),
                            seeds=seeds, iterations=iterations, hidden=hidden, batch=batch, dt=dt, tau=tau,
                            mask=mask, full_grid=full_grid, bptt_iterations=bptt_iterations,
                            lyapunov=lyapunov)  # fmt: skip
    sweep = X.run(cfg, cache=cache, workers=workers, device=device)
    figures = X.plot(sweep, out)
    _, rows = X.write(sweep, out)

    def line(r: dict) -> str:
        text = (f"lr {r['lr']:g}, loss(end) {r['final_loss']:.3f} ± {r['final_loss_std']:.3f}, {r['seeds_at_90']}/"
                f"{r['seeds']} seeds >= 90%, iterations to loss < {r['loss_threshold']:g}: "
                f"{r['iterations_to_threshold']}")  # fmt: skip
        if "lyapunov_after" in r:
            text += (f", max LE before {r['lyapunov_before']:.3f} ± {r['lyapunov_before_std']:.3f} -> after "
                     f"{r['lyapunov_after']:.3f} ± {r['lyapunov_after_std']:.3f} per step")  # fmt: skip
        return text

    emit({f"{r['rule']}/gain={r['gain']:g}": line(r) for r in rows}, as_json,
         f"initial-gain sweep (Liu et al.) -> {', '.join(map(str, figures))}")
