"""``spikedyn demo``: the main job of ``make demo`` — a rate net and its spiking twin on RDM."""
from __future__ import annotations

from pathlib import Path

import typer

from . import app
from .common import cpu_threads, device_option, emit, json_option, threads_option


@app.command()
def demo(
    task: str = typer.Option("rdm", help="Decision task (rdm, cdi, ...)."),
    steps: int = typer.Option(400, help="Max BPTT steps for the rate net (stops at 90% held-out accuracy)."),
    finetune_steps: int = typer.Option(20, help="Surrogate-gradient BPTT steps on the spiking twin."),
    hidden: int = typer.Option(64, help="Units N (rate and spiking)."),
    seed: int = typer.Option(0, help="Seed."),
    run_dir: Path = typer.Option(None, help="Optional run directory for the rate net's training."),
    device: str = device_option(),
    threads: int = threads_option(),
    as_json: bool = json_option(),
) -> None:
    """Train a small rate RNN with BPTT, mirror it into a spiking (LIF) twin, fine-tune the twin briefly,
    and print both accuracies on the same held-out trials (a few seconds on one CPU core)."""
    from ..experiments import demo as X

    cfg = X.DemoConfig(task=task, steps=steps, finetune_steps=finetune_steps, hidden=hidden, seed=seed)
    with cpu_threads(threads):
        result = X.run(cfg, run_dir=run_dir, device=device, log=lambda s: typer.echo(s, err=True))
    emit(result, as_json, "spikedyn demo: rate RNN vs its spiking twin (same held-out trials)")
