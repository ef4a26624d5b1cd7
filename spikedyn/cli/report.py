"""``spikedyn report RUN_OR_SWEEP``: one self-contained report.html for a run or a sweep directory."""
from __future__ import annotations

from pathlib import Path

import typer

from . import app
from .common import emit, json_option


@app.command("report")
def report_command(
    path: Path = typer.Argument(..., help="A run directory (spikedyn train --run-dir) or a sweep directory."),
    out: Path = typer.Option(None, help="Where to write the page: a file name, or an existing directory (the "
                             "page is then DIR/report.html); default: PATH/report.html."),
    as_json: bool = json_option(),
) -> None:
    """Write one HTML page (figures embedded, no network needed): learning curves with seed bands, the
    accuracy table, the trained model's outputs and spike raster, Lyapunov spectra, failed trials."""
    from ..report import write_report

    target = write_report(path, out)
    emit({"report": str(target), "bytes": target.stat().st_size}, as_json, f"report of {path}")
