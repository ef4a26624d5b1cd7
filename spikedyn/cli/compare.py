"""``spikedyn compare RUN_DIR...``: one table for several trained runs on the same held-out trials."""
from __future__ import annotations

import json
from pathlib import Path

import typer

from . import app
from .common import json_option


@app.command("compare")
def compare_runs(
    run_dirs: list[Path] = typer.Argument(..., help="Finished `spikedyn train` run directories (one task)."),
    lava: str = typer.Option(None, "--lava", help="Also run every spiking body on Lava's simulator: float | "
                             "fixed (Loihi 2 fixed point) | auto (fixed where possible). Needs `make lava`."),
    mirror: bool = typer.Option(False, "--mirror", help="Add the spiking twin (spikedyn.mirror) of every rate run."),
    mirror_substeps: int = typer.Option(10, min=1, help="Substeps of the --mirror twins."),
    mirror_tau_mem: float = typer.Option(None, help="Membrane time constant (ms) of the --mirror twins (default: "
                                         "none, non-leaky, which Lava cannot run; e.g. 10000 to deploy them)."),
    trials: int = typer.Option(200, min=2, help="Held-out trials every body runs."),
    seed: int = typer.Option(0, help="Seed of the held-out trials and of the analyses."),
    lyapunov_k: int = typer.Option(3, min=1, help="Lyapunov exponents per body (per second)."),
    n_inits: int = typer.Option(128, min=1, help="Initial states of the fixed-point search at zero input."),
    out: Path = typer.Option(Path("runs") / "compare", "--out", help="Output directory: comparison.txt, .json, "
                             ".csv, .png (never overwritten: pick a new directory per comparison)."),
    as_json: bool = json_option(),
) -> None:
    """Compare trained bodies (rate, spiking twins, other rules) on the same held-out trials: accuracy, loss,
    top Lyapunov exponents, fixed points at zero input and integrator type, firing rate and SynOps of spiking
    bodies, SVCCA/CKA between every pair, and with --lava each spiking body's Lava run and its agreement."""
    from ..experiments import compare as X

    if lava is not None and lava not in X.LAVA_PRECISIONS:
        raise ValueError(f"--lava must be one of {', '.join(X.LAVA_PRECISIONS)}, got {lava!r}")
    table, paths = X.run(run_dirs, out, n_trials=trials, seed=seed, lava=lava, mirror=mirror,
                         mirror_substeps=mirror_substeps, mirror_tau_mem=mirror_tau_mem, lyapunov_k=lyapunov_k,
                         n_inits=n_inits,
                         progress=not as_json)  # fmt: skip
    if as_json:
        print(json.dumps({"rows": table.to_dict()["rows"], "labels": table.labels,
                          "svcca": table.similarity["svcca"].tolist(), "cka": table.similarity["cka"].tolist(),
                          "files": paths}, indent=2))  # fmt: skip
        return
    print(table)
    print(f"\nwritten: {', '.join(paths.values())}")
