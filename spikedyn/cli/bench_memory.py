"""``spikedyn bench memory``: seed 003's long-memory benchmark (Table S1): PTA vs standard initialisations."""
from __future__ import annotations

from pathlib import Path

import typer

from .common import comma_list, emit, json_option
from .groups import bench_app


@bench_app.command("memory")
def memory(
    task: str = typer.Option("copy_memory", help="copy_memory | temporal_order | random_delay_copy (comma list ok)."),
    delay: int = typer.Option(100, help="Copy-memory delay k in steps (random_delay_copy: k..k+20)."),
    models: str = typer.Option("tanh,tanh-pta,tanh-orth,gru,gru-pta,lstm", help="Comma list of benchmark models."),
    hidden: int = typer.Option(128, help="Units N for every model (seed 003 used 250)."),
    seeds: int = typer.Option(3, help="Model realisations (seeds 0..seeds-1)."),
    steps: int = typer.Option(1500, help="Training steps (the same budget for every model)."),
    batch_size: int = typer.Option(64, help="Trials per step."),
    lr: float = typer.Option(1e-3, help="Adam learning rate (the same for every model)."),
    clip: float = typer.Option(1.0, help="Max gradient norm."),
    eval_every: int = typer.Option(50, help="Steps between held-out evaluations."),
    eval_trials: int = typer.Option(500, help="Held-out trials per evaluation."),
    out_dir: Path = typer.Option(Path("runs/bench_memory"), help="Run directories (resumable) and tables."),
    figure_dir: Path = typer.Option(Path("docs/figures"), help="Where analysis_memory_<task>.png goes."),
    report_only: bool = typer.Option(False, help="Only rebuild table and figures from finished runs."),
    progress: bool = typer.Option(True, help="Progress bars on stderr."),
    as_json: bool = json_option(),
) -> None:
    """Train tanh / GRU / LSTM RNNs with default, orthogonal and PTA initialisations on long-memory tasks
    (same size and budget, BPTT), then write a Table-S1-shaped table and learning curves."""

    from ..analysis.memory_benchmark import (
        BenchmarkConfig,
        plot_curves,
        run_benchmark,
        summarize,
        table_markdown,
    )
    from ..learning.checkpoint import atomic_write_bytes, atomic_write_json

    if min(hidden, seeds, steps, batch_size, eval_every, eval_trials) < 1:
        raise ValueError("hidden, seeds, steps, batch_size, eval_every and eval_trials must be positive")
    summaries = []
    for name in comma_list(task, "--task"):
        cfg = BenchmarkConfig(task=name, delay=delay, models=comma_list(models, "--models"),
                              hidden=hidden, seeds=seeds, steps=steps, batch_size=batch_size, lr=lr, clip=clip,
                              eval_every=eval_every, eval_trials=eval_trials)  # fmt: skip
        root = out_dir / name
        if report_only:
            summary = summarize(root, cfg)
        else:
            summary = run_benchmark(cfg, out_dir, progress=progress, log=lambda s: typer.echo(s, err=True))
        atomic_write_json(root / "summary.json", summary)
        plot_curves(root, cfg, figure_dir / f"analysis_memory_{name}.png")
        summaries.append(summary)
    table = table_markdown(summaries)
    atomic_write_bytes(out_dir / "table.md", table.encode())
    result = {"table": str(out_dir / "table.md"), "figures": [str(figure_dir / f"analysis_memory_{s['task']}.png")
                                                              for s in summaries]}  # fmt: skip
    for s in summaries:
        for m, r in s["models"].items():
            result[f"{s['task']}/{m}"] = (f"CE {r['ce_early_mean']:.4g} ± {r['ce_early_std']:.2g} early-stopped, "
                                          f"{r['ce_final_mean']:.4g} ± {r['ce_final_std']:.2g} final "
                                          f"({r['seeds']} seeds)")  # fmt: skip
    if not as_json:
        print(table)
    emit(result, as_json, "spikedyn bench memory: test cross-entropy (nats), mean over seeds")
