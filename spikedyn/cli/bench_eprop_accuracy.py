"""``spikedyn bench eprop-accuracy``: held-out accuracy of e-prop (LIF/ALIF) and RFLO (rate) nets."""
from __future__ import annotations

from pathlib import Path

import typer

from .common import cpu_threads, device_option, emit, json_option, out_option, threads_option
from .groups import bench_app


@bench_app.command("eprop-accuracy")
def eprop_accuracy(
    seeds: int = typer.Option(3, min=1, help="Seeds per case."),
    first_seed: int = typer.Option(0, min=0, help="First seed (runs first_seed .. first_seed + seeds - 1)."),
    held_out: int = typer.Option(4000, min=1, help="Fresh test trials per evaluation."),
    cases: str = typer.Option("", help="Comma-separated case-name prefixes to run, e.g. bellec2020/ (default: all)."),
    device: str = device_option(),
    threads: int = threads_option("small nets: a second thread only adds contention (10 steps: 5 s vs 300 s "
                                  "on a loaded machine)"),
    out: Path = out_option("bench_eprop_accuracy", "results/eprop_accuracy.json"),
    as_json: bool = json_option(),
) -> None:
    """Train the e-prop (LIF, ALIF; Bellec et al. 2020) and RFLO (rate) cases of the tests, and the e-prop
    cases with Bellec et al. 2020's preset (bellec2020/...), for several seeds and report their held-out
    accuracy. Rows of cases not run are kept in an existing results file."""
    from ..experiments import eprop_accuracy as X

    cfg = X.EpropAccuracyConfig(seeds=seeds, first_seed=first_seed, held_out=held_out,
                                cases=tuple(c for c in cases.split(",") if c))
    try:
        X.selected_cases(cfg)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--cases") from None
    with cpu_threads(threads):
        rows = X.run(cfg, device=device)
    path = X.write(rows, cfg, out)
    emit(X.summary(rows), as_json, f"online rules, held-out accuracy -> {path}")
