"""``spikedyn bench eprop-memory``: peak memory and time per step, online e-prop/RFLO vs BPTT."""
from __future__ import annotations

from pathlib import Path

import typer

from .common import comma_list, device_option, emit, json_option, out_option
from .groups import bench_app


@bench_app.command("eprop-memory")
def eprop_memory(
    models: str = typer.Option("lif,alif,rate", help="Comma-separated models (lif, alif: e-prop; rate: RFLO)."),
    lengths: str = typer.Option("100,1000,10000", help="Comma-separated sequence lengths T (steps)."),
    hidden: int = typer.Option(256, help="Units H."),
    batch: int = typer.Option(32, help="Batch size B."),
    device: str = device_option(),
    threads: int = typer.Option(1, help="torch CPU threads per measurement."),
    out: Path = out_option("bench_eprop_memory", "results/eprop_memory.json"),
    docs: Path = typer.Option(None, help="Markdown file whose e-prop section to replace (docs/benchmarks.md "
                              "when regenerating the docs; default: none)."),
    as_json: bool = json_option(),
) -> None:
    """Peak memory and time per step of one gradient computation, e-prop/RFLO vs BPTT, for growing T
    (every measurement in a fresh process)."""
    from ..experiments import eprop_memory as X

    cfg = X.EpropMemoryConfig(models=comma_list(models, "--models"), lengths=comma_list(lengths, "--lengths", int, 1),
                              hidden=hidden, batch=batch, threads=threads)  # fmt: skip
    rows = X.run(cfg, device=device)
    command = "spikedyn bench eprop-memory" + ("" if device == "cpu" else f" --device {device}")
    path = X.write(rows, out, docs, command)
    summary = {f"{r['model']}/{r['rule']}/T={r['T']}": f"{r['peak_mb']:.0f} MB peak, {r['extra_mb']:.1f} MB "
               f"extra, {r['ms_per_step']:.2f} ms/step" for r in rows}  # fmt: skip
    summary.update({k: round(v, 3) for k, v in X.flatness(rows).items()})
    emit(summary, as_json, f"e-prop vs BPTT memory -> {path}")
