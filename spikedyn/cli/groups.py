"""Sub-command groups (``spikedyn bench ...``, ``spikedyn analyze ...``, ``spikedyn circuit ...``).

Command modules add their commands with ``@bench_app.command("name")`` etc.
"""
from __future__ import annotations

import typer

from . import app

bench_app = typer.Typer(
    no_args_is_help=True,
    help="Benchmarks and paper reproductions (tables and figures, under runs/ unless --out says otherwise).",
)
analyze_app = typer.Typer(
    no_args_is_help=True,
    help="Dynamics analysis: Lyapunov spectra, adjoints, figures (under runs/ unless --out says otherwise).",
)
circuit_app = typer.Typer(
    no_args_is_help=True, help="Hand-built circuits (head-direction oscillators, ring attractor)."
)

app.add_typer(bench_app, name="bench")
app.add_typer(analyze_app, name="analyze")
app.add_typer(circuit_app, name="circuit")
