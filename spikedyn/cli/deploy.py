"""``spikedyn deploy``: run a trained spiking run on Lava and add a torch-vs-Lava table to the run dir."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from . import CLIError, app
from .common import emit, json_option


def load_run(run_dir: Path) -> tuple[Any, Any, dict[str, Any]]:
    """(model, task, run config) of a finished ``spikedyn train`` run of a spiking model
    (``spikedyn.load_run``: model.pt is read with ``weights_only=True``)."""
    from spikedyn.runs import load_run as load

    run = load(run_dir)
    if run.model.kind != "spiking":
        raise ValueError(f"run {run_dir} trained a {run.model.kind} model; deploy needs a spiking one "
                         "(train --model lif)")
    return run.model, run.task, run.config


@app.command()
def deploy(
    ctx: typer.Context,
    run_dir: Path = typer.Option(None, help="Run directory written by `spikedyn train` (a lif model)."),
    backend: str = typer.Option("lava-sim", help="lava-sim (Lava's CPU simulator) | lava-loihi (needs lava-loihi)."),
    precision: str = typer.Option("auto", help="auto (fixed when the network allows it, else float) | fixed "
                                  "(bit-accurate Loihi 2 fixed point) | float (floating_pt)."),
    trials: int = typer.Option(500, help="Held-out trials to run (from the run's evaluation stream)."),
    chunk: int = typer.Option(None, min=1, help="Trials per Lava run (default: fit a memory budget)."),
    lava_python: str = typer.Option(None, help="Lava interpreter (default: SPIKEDYN_LAVA_PYTHON, .venv-lava, ...)."),
    config: Path = typer.Option(None, help="TOML/YAML file with these options (flags given here win)."),
    as_json: bool = json_option(),
) -> None:
    """Deploy a trained spiking network to Lava (build it first: make lava), run held-out trials on it and on
    torch, and write the comparison (accuracy, spike agreement) to RUN/deploy.json and RUN/deploy.md."""
    from ..config import DeployConfig, load_config_file, validate
    from ..experiments import deploy_compare as X

    options = dict(run_dir=run_dir, backend=backend, precision=precision, trials=trials, chunk=chunk,
                   lava_python=lava_python)
    if config is not None:
        data = load_config_file(config)
        for key in options:  # the file fills what was not typed here
            source = ctx.get_parameter_source(key)
            if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):
                data[key] = options[key]
        options = {**options, **data}
    cfg = validate(DeployConfig, options)
    if cfg.run_dir is None:
        raise ValueError("--run-dir is required (a `spikedyn train` run directory)")
    run_dir = cfg.run_dir
    model, task, run_config = load_run(run_dir)
    from ..hardware.runtime import LavaNotFound, LavaRunFailed

    try:
        result = X.run(model, task, run_config, **cfg.model_dump(exclude={"run_dir"}))
    except LavaNotFound as e:  # Lava (or lava-loihi) to install: a user error, exit 2
        raise CLIError(str(e)) from None
    except LavaRunFailed as e:  # the run failed: one line, exit 1
        typer.echo(f"spikedyn: error: {e}", err=True)
        raise typer.Exit(1) from None
    table = X.write(run_dir, result)
    rows = result["rows"]
    lava_row, torch_row = rows[-1], rows[-2]
    summary = {
        "run_dir": str(run_dir), "backend": result["backend"], "precision": result["precision"],
        "trials": result["trials"], "accuracy_torch_float32": rows[0]["accuracy"],
        "torch_reference": torch_row["body"], "accuracy_torch_reference": torch_row["accuracy"],
        "accuracy_lava": lava_row["accuracy"], "spike_agreement": lava_row["spike_agreement"],
        "trials_identical": lava_row["trials_identical"], "lava_seconds": lava_row["seconds"], "table": str(table),
        **({"note": result["note"]} if result["note"] else {}),
    }  # fmt: skip
    emit(summary, as_json, f"deployed {run_dir} to {result['backend']} ({result['precision']})")
