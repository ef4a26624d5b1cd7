"""``spikedyn sweep CONFIG``: a grid / random / Optuna search, here or on a Ray cluster (``--ray``)."""
from __future__ import annotations

from pathlib import Path

import typer

from . import app
from .common import device_option, emit, json_option


@app.command("sweep")
def sweep_command(
    config: Path = typer.Argument(..., help="Sweep file (TOML or YAML) with the tables base, grid and space; "
                                             "see docs/sweeps.md."),
    out_dir: Path = typer.Option(None, help="Sweep directory (default: the file's out_dir, else runs/sweeps/<name>)."),
    ray: str = typer.Option(None, "--ray", help="Run on Ray: 'auto' (a running cluster, else a local instance) "
                                                 "or a cluster address (ray://host:10001)."),
    ray_cpus: int = typer.Option(None, help="CPUs of a local Ray instance started for this sweep (default: all)."),
    retry_failed: bool = typer.Option(False, help="Run trials that failed in an earlier run again."),
    dry_run: bool = typer.Option(False, help="Only list the trials (key and swept values); run nothing."),
    device: str = device_option(None),
    progress: bool = typer.Option(True, help="Progress bar on a terminal, log lines otherwise."),
    as_json: bool = json_option(),
) -> None:
    """Train every trial of a sweep (one run directory each) and write one table, sweep.parquet.

    Re-running skips finished trials; a killed sweep resumes where it stopped; a failing trial is recorded
    with its error (exit code 1 at the end) and the others still run.
    """
    from ..sweeps import expand, load_sweep_config
    from ..sweeps import sweep as run_sweep

    if ray_cpus is not None and ray_cpus < 1:
        raise ValueError("--ray-cpus must be a positive integer")
    cfg = load_sweep_config(config)
    if device is not None:  # every trial on this device (part of each trial's config, hence of its key)
        from ..device import resolve_device

        if ray is None:
            resolve_device(device)  # here, a missing GPU is one line before anything runs
        cfg = cfg.model_copy(update={"base": {**cfg.base, "device": device}})
    if dry_run:
        trials = expand(cfg)
        emit({t.key: ", ".join(f"{k}={v}" for k, v in t.labels.items()) for t in trials}, as_json,
             f"sweep {cfg.name}: {len(trials)} trials")  # fmt: skip
        return
    result = run_sweep(cfg, out_dir=out_dir, ray=ray, ray_num_cpus=ray_cpus, retry_failed=retry_failed,
                       progress=progress and not as_json)  # fmt: skip
    summary = result.summary()
    if result.failed:
        errors = result.table.set_index("trial").loc[result.failed, "error"]
        summary["errors"] = {k[:8]: v for k, v in errors.items()}
    emit(summary, as_json, f"sweep {cfg.name}: {summary['trials']} trials -> {summary['table']}")
    if result.failed:
        raise typer.Exit(1)
