"""``spikedyn bench memory``: the long-memory benchmark of Park et al. (Table S1): PTA vs standard inits."""
from __future__ import annotations

from pathlib import Path

import typer

from .common import comma_list, device_option, emit, json_option, out_option
from .groups import bench_app


@bench_app.command("memory")
def memory(
    task: str = typer.Option("copy_memory", help="copy_memory | temporal_order | random_delay_copy (comma list ok)."),
    delay: int = typer.Option(100, help="Copy-memory delay k in steps (random_delay_copy: k..k+20)."),
    models: str = typer.Option("tanh,tanh-pta,tanh-orth,gru,gru-pta,lstm", help="Comma list of benchmark models."),
    hidden: int = typer.Option(128, min=1, help="Units N for every model (Park et al. used 250)."),
    seeds: int = typer.Option(3, min=1, help="Model realisations (seeds 0..seeds-1)."),
    steps: int = typer.Option(1500, min=1, help="Training steps (the same budget for every model)."),
    batch_size: int = typer.Option(64, min=1, help="Trials per step."),
    lr: float = typer.Option(1e-3, help="Adam learning rate (the same for every model)."),
    clip: float = typer.Option(1.0, help="Max gradient norm."),
    eval_every: int = typer.Option(50, min=1, help="Steps between held-out evaluations."),
    eval_trials: int = typer.Option(500, min=1, help="Held-out trials per evaluation."),
    out: Path = out_option("bench_memory", "run directories (resumable), table.md and figures/"),
    report_only: bool = typer.Option(False, help="Only rebuild table and figures from finished runs."),
    progress: bool = typer.Option(True, help="Progress bars on stderr."),
    device: str = device_option(),
    as_json: bool = json_option(),
) -> None:
    """Train tanh / GRU / LSTM RNNs with default, orthogonal and PTA initialisations on long-memory tasks
    (same size and budget, BPTT), then write a Table-S1-shaped table and learning curves."""
    from ..experiments import long_memory as X

    summaries, figures = [], []
    for name in comma_list(task, "--task"):
        cfg = X.BenchmarkConfig(task=name, delay=delay, models=comma_list(models, "--models"), hidden=hidden,
                                seeds=seeds, steps=steps, batch_size=batch_size, lr=lr, clip=clip,
                                eval_every=eval_every, eval_trials=eval_trials)  # fmt: skip
        if report_only:
            summary = X.report(cfg, out)
        else:
            summary = X.run(cfg, out, progress=progress, log=lambda s: typer.echo(s, err=True), device=device)
        figures.append(X.plot_curves(out / name, cfg, out / "figures" / f"analysis_memory_{name}.png"))
        summaries.append(summary)
    table_path, table = X.write_table(summaries, out)
    result = {"table": str(table_path), "figures": [str(f) for f in figures], **X.result_lines(summaries)}
    if not as_json:
        print(table)
    emit(result, as_json, "spikedyn bench memory: test cross-entropy (nats), mean over seeds")
