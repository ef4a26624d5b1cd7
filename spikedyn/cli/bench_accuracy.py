"""``spikedyn bench accuracy``: held-out accuracy of rate / LIF / ALIF nets trained with BPTT."""
from __future__ import annotations

from pathlib import Path

import typer

from .common import cpu_threads, device_option, emit, json_option, out_option, threads_option
from .groups import bench_app


@bench_app.command("accuracy")
def accuracy(
    out: Path = out_option("bench_accuracy", "results/training_accuracy.json"),
    held_out: int = typer.Option(4000, min=1, help="Held-out trials per evaluation."),
    seed: int = typer.Option(0, help="Seed."),
    device: str = device_option(),
    threads: int = threads_option(),
    as_json: bool = json_option(),
) -> None:
    """Train rate / LIF / ALIF nets with BPTT on the decision tasks and tabulate held-out accuracy."""
    from ..experiments import foundation as X

    with cpu_threads(threads):
        rows = X.run_accuracy(held_out, seed, device=device)
    path = X.write_accuracy(rows, held_out, seed, out)
    emit({f"{r['model']}/{r['task']}": r["accuracy"] for r in rows}, as_json, f"held-out accuracy -> {path}")
