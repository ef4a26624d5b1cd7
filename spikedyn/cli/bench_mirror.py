"""``spikedyn bench mirror``: a rate net beside its spiking twin on RDM (figure)."""
from __future__ import annotations

from pathlib import Path

import typer

from .common import cpu_threads, device_option, emit, json_option, out_option, threads_option
from .groups import bench_app


@bench_app.command("mirror")
def mirror_figure(
    out: Path = out_option("bench_mirror", "figures/mirror_rdm.png"),
    seed: int = typer.Option(0, help="Seed."),
    device: str = device_option(),
    threads: int = threads_option(),
    as_json: bool = json_option(),
) -> None:
    """Train a ReLU rate net on RDM, mirror it into spikes and plot rates, outputs and accuracy vs substeps."""
    from ..experiments import foundation as X

    with cpu_threads(threads):
        m = X.run_mirror(seed, device=device)
    figure = X.plot_mirror(m, out)
    emit({"rate_accuracy": m["rate_accuracy"],
          **{f"twin_substeps_{k}": a for k, a in zip(m["substeps"], m["twin_accuracy"])}, "figure": str(figure)},
         as_json, "mirror: rate net vs spiking twin on RDM")  # fmt: skip
