"""``spikedyn bench memory``: the long-memory benchmark of Park et al. (Table S1), every body tuned alike."""
from __future__ import annotations

from pathlib import Path

import typer

from .common import comma_list, device_option, emit, json_option, out_option
from .groups import bench_app


@bench_app.command("memory")
def memory(
    task: str = typer.Option("copy_memory", help="copy_memory | temporal_order | random_delay_copy | psdigits "
                             "(comma list ok)."),
    delay: int = typer.Option(100, help="Copy-memory delay k in steps (random_delay_copy: k..k+20)."),
    models: str = typer.Option("tanh,tanh-pta,tanh-orth,gru,gru-pta,lstm", help="Comma list of benchmark bodies."),
    hidden: int = typer.Option(64, min=2, help="Units N for every body (Park et al. used 250)."),
    seeds: int = typer.Option(5, min=1, help="Reported realisations per body (seeds 0..seeds-1)."),
    steps: int = typer.Option(600, min=1, help="Training steps of every reported run (the same for every body)."),
    batch_size: int = typer.Option(32, min=1, help="Trials per step."),
    search_trials: int = typer.Option(6, min=0, help="Optuna trials per body over lr, clip (and PTA's alpha cap), "
                                      "scored on validation; 0: no search, use --lr and --clip."),
    search_steps: int = typer.Option(0, min=0, help="Steps of a search trial (0: --steps)."),
    search_seed: int = typer.Option(0, help="Seed of the Optuna sampler (the same for every body)."),
    lr: float = typer.Option(1e-3, help="Adam learning rate, only with --search-trials 0."),
    clip: float = typer.Option(1.0, help="Max gradient norm, only with --search-trials 0."),
    eval_every: int = typer.Option(50, min=1, help="Steps between validation (and test) evaluations."),
    eval_trials: int = typer.Option(300, min=1, help="Validation trials per evaluation."),
    test_trials: int = typer.Option(1000, min=1, help="Test trials (synthetic tasks; psdigits: its test split)."),
    out: Path = out_option("bench_memory", "run directories (resumable), table.md and figures/"),
    include: Path = typer.Option(None, help="An earlier results.json (of other tasks) whose rows join this run's in "
                                 "table.md and results.json, marked included_from (not rerun)."),
    report_only: bool = typer.Option(False, help="Only rebuild table and figures from finished runs."),
    progress: bool = typer.Option(True, help="Progress bars on stderr."),
    device: str = device_option(),
    as_json: bool = json_option(),
) -> None:
    """Tune and train tanh / GRU / LSTM RNNs with default, orthogonal and PTA initialisations on
    long-memory tasks (same size, budget and search for every body; BPTT), then write a Table-S1-shaped
    table with the chosen settings and learning curves."""
    from ..experiments import long_memory as X

    if clip <= 0 or lr <= 0:
        raise typer.BadParameter("--lr and --clip must be > 0")
    names = comma_list(task, "--task")
    included = []
    if include is not None:
        try:
            included = X.included_summaries(include, names)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--include") from e
    summaries, figures = [], []
    for name in names:
        if name not in X.TASKS:
            raise typer.BadParameter(f"unknown task {name!r}; choose from {', '.join(X.TASKS)}", param_hint="--task")
        cfg = X.BenchmarkConfig(task=name, delay=delay, models=comma_list(models, "--models"), hidden=hidden,
                                seeds=seeds, steps=steps, batch_size=batch_size, search_trials=search_trials,
                                search_steps=search_steps or None, search_seed=search_seed, lr=lr, clip=clip,
                                eval_every=eval_every, eval_trials=eval_trials, test_trials=test_trials)  # fmt: skip
        if report_only:
            summary = X.report(cfg, out)
        else:
            summary = X.run(cfg, out, progress=progress, log=lambda s: typer.echo(s, err=True), device=device)
        figures.append(X.plot_curves(out / name, cfg, out / "figures" / f"analysis_memory_{name}.png"))
        summaries.append(summary)
    table_path, table = X.write_table(included + summaries, out)
    result = {"table": str(table_path), "figures": [str(f) for f in figures], **X.result_lines(summaries)}
    if not as_json:
        print(table)
    emit(result, as_json, "spikedyn bench memory: test cross-entropy (nats), mean over seeds")
