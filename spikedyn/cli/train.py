"""``spikedyn train``: train one model on one task and write a run directory."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from . import app
from .common import device_option, emit, json_option


@app.command()
def train(
    ctx: typer.Context,
    task: str = typer.Option("rdm", help="Task name (spikedyn.tasks.available()) or neurogym:<EnvId>."),
    model: str = typer.Option("rate", help="rate | gru | lstm | lif | alif"),
    rule: str = typer.Option("bptt", help="Learning rule: bptt, eprop (LIF/ALIF or rate), rflo (rate), ga (genetic "
                             "algorithm), hebbian (Miconi 2017, tanh rate) or full_force (DePasquale et al. 2018)."),
    steps: int = typer.Option(500, help="Optimiser steps."),
    batch_size: int = typer.Option(64, help="Trials per batch."),
    lr: float = typer.Option(None, help="Adam learning rate (default 1e-3; resuming: the run's; a new value "
                             "takes effect from the resume step, recorded in config.json)."),
    hidden: int = typer.Option(64, help="Recurrent units N."),
    seed: int = typer.Option(0, help="Seed of the model init, batches and noise."),
    clip: float = typer.Option(1.0, help="Max gradient norm."),
    eval_every: int = typer.Option(50, help="Steps between held-out evaluations."),
    eval_trials: int = typer.Option(1000, help="Held-out trials per evaluation."),
    target_accuracy: float = typer.Option(None, help="Stop once held-out accuracy reaches this (e.g. 0.9)."),
    task_param: list[str] = typer.Option([], help="Task parameter key=value (repeatable), e.g. dt=10."),
    model_param: list[str] = typer.Option([], help="Model parameter key=value (repeatable), e.g. alpha=0.1."),
    run_dir: Path = typer.Option(None, help="Run directory (config, checkpoints, metrics.jsonl); resumes an "
                                 "interrupted run with the same settings. A directory holding files with "
                                 "those names that is not a spikedyn run is refused (never written over)."),
    restart: bool = typer.Option(False, "--restart", help="Start the run in --run-dir over (deletes the "
                                 "checkpoints and results spikedyn wrote there) instead of resuming it."),
    config: Path = typer.Option(None, help="TOML/YAML file with these options (flags given here win)."),
    population: int = typer.Option(None, help="Train E networks at once as one Population (seeds seed..seed+E-1); "
                                   "with --rule ga: the size of generation zero (default 50)."),
    preset: str = typer.Option(None, help="A paper's network and training settings: mcmahan2024 (alias seed002, "
                               "McMahan et al. 2024), bellec2020 (Bellec et al. 2020: --model lif|alif, "
                               "--rule eprop|bptt); flags given here win."),
    rule_param: list[str] = typer.Option([], help="Rule option key=value (repeatable), e.g. sigma_is=std for ga."),
    device: str = device_option(None),
    progress: bool = typer.Option(True, help="Progress on stderr: a bar on a terminal, a log line every 30 s "
                                  "otherwise (SPIKEDYN_PROGRESS_EVERY)."),
    as_json: bool = json_option(),
) -> None:
    """Train a rate, GRU, LIF or ALIF network on a task (BPTT with surrogate gradients for spikes)."""
    from ..config import TrainConfig, load_config_file, parse_key_values, validate
    from ..device import resolve_device
    from ..experiments.build import build_model, build_task
    from ..learning import make_rule
    from ..learning import train as run_train
    from ..learning.presets import build_training_model

    given = dict(
        task=task, model=model, rule=rule, steps=steps, batch_size=batch_size, lr=lr, hidden=hidden,
        seed=seed, clip=clip, eval_every=eval_every, eval_trials=eval_trials,
        target_accuracy=target_accuracy, run_dir=run_dir, device=device, population=population, preset=preset,
    )  # fmt: skip
    data: dict[str, Any] = load_config_file(config) if config is not None else {}
    for key, value in given.items():  # flags typed on the command line override the file
        source = ctx.get_parameter_source(key)
        if key not in data or (source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")):
            data[key] = value
    for key, items, flag in (("task_params", task_param, "--task-param"), ("model_params", model_param,
                                                                           "--model-param"),
                             ("rule_params", rule_param, "--rule-param")):
        if items or key in data:  # a wrong type in the file (task_params = "dt=10") is reported by validate
            extra = parse_key_values(items, flag)
            data[key] = {**data[key], **extra} if isinstance(data.get(key), dict) else data.get(key, extra)
    if data.get("preset"):  # the preset's settings, under the flags given and the config file's values
        from ..learning.presets import cli_defaults

        explicit = {k for k in given if k in data and (ctx.get_parameter_source(k) is None or
                    ctx.get_parameter_source(k).name not in ("DEFAULT", "DEFAULT_MAP"))} | set(
                    load_config_file(config) if config is not None else {})  # fmt: skip
        for key, value in cli_defaults(data["preset"], data.get("rule", "bptt"), data.get("model", "rate")).items():
            if isinstance(value, dict):
                data[key] = {**value, **(data.get(key) or {})}
            elif key not in explicit:
                data[key] = value
    cfg = validate(TrainConfig, data)
    dev = resolve_device(cfg.device)  # before building anything: a missing GPU is one line, not a traceback

    make_rule(cfg.rule, **cfg.rule_params)  # a bad rule or rule option fails here, before any work
    task_obj = build_task(cfg.task, cfg.task_params)
    net = build_training_model(cfg, task_obj, build_model)
    t0 = time.perf_counter()
    result = run_train(
        net, task_obj, rule=cfg.rule, steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed,
        run_dir=cfg.run_dir, clip=cfg.clip, eval_every=cfg.eval_every, eval_trials=cfg.eval_trials,
        target_accuracy=cfg.target_accuracy, progress=progress, restart=restart, device=dev,
        rule_kwargs=cfg.rule_params,
    )  # fmt: skip
    summary = {
        "task": cfg.task, "model": cfg.model, "rule": cfg.rule, "hidden": cfg.hidden, "preset": cfg.preset,
        "population": cfg.population,
        "steps_run": result.history[-1]["step"] if result.history else 0,
        "stopped_early": result.stopped_early, "seconds": round(time.perf_counter() - t0, 2),
        **{k: v for k, v in result.final.items() if k != "step"},
        "run_dir": str(cfg.run_dir) if cfg.run_dir else None,
    }  # fmt: skip
    emit(summary, as_json, f"trained {cfg.model} on {cfg.task}")
