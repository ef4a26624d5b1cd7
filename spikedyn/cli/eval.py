"""``spikedyn eval``: held-out scores of a finished run (``spikedyn.load_run`` + ``spikedyn.runs.evaluate_run``)."""
from __future__ import annotations

from pathlib import Path

import typer

from . import app
from .common import device_option, emit, json_option


@app.command("eval")
def eval_run(
    run_dir: Path = typer.Option(..., help="Run directory of a finished `spikedyn train` run."),
    task: str = typer.Option(None, help="Task to evaluate on (default: the run's; same input/output sizes)."),
    task_param: list[str] = typer.Option([], help="Task parameter key=value (repeatable), e.g. dt=10."),
    trials: int = typer.Option(None, help="Held-out trials (default: the run's eval_trials)."),
    seed: int = typer.Option(None, help="Seed of the held-out stream (default: the run's training seed; a "
                             "Population trained with one seed per member: each member's own)."),
    device: str = device_option(),
    as_json: bool = json_option(),
) -> None:
    """Score a trained run on held-out trials. With the defaults this reproduces the run's final
    evaluation (summary.json); --task/--trials/--seed evaluate it on other trials. Writes nothing."""
    from ..config import parse_key_values
    from ..device import resolve_device
    from ..experiments.build import build_task
    from ..runs import evaluate_run, load_run

    if trials is not None and trials < 1:
        raise ValueError(f"--trials must be a positive integer, got {trials}")
    dev = resolve_device(device)
    run = load_run(run_dir)
    run.model.to(dev)
    params = parse_key_values(task_param, "--task-param")
    task_obj = None
    if task is not None or params:
        base = dict(run.config["task"]) if task in (None, run.config["task"].get("name")) else {"name": task}
        task_params = {**base, **params}
        task_obj = build_task(task_params.pop("name"), task_params)
    scores = evaluate_run(run, task=task_obj, trials=trials, seed=seed)
    final = run.summary.get("final", {})
    summary = {"run_dir": str(run_dir), **scores}
    if "accuracy" in final:
        summary["accuracy_at_end_of_training"] = final["accuracy"]
    emit(summary, as_json, f"evaluated {run_dir}")
