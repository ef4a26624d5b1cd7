"""``spikedyn deploy``: run a trained spiking run on Lava and add a torch-vs-Lava table to the run dir."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from . import app
from .common import emit, json_option

TABLE_JSON, TABLE_MD = "deploy.json", "deploy.md"
_COLUMNS = (
    ("body", "body"), ("accuracy", "accuracy"), ("spike_agreement", "spike agreement vs torch"),
    ("trials_identical", "identical trials"), ("spikes", "spikes"), ("seconds", "seconds"),
)  # fmt: skip


def load_run(run_dir: Path) -> tuple[Any, Any, dict[str, Any]]:
    """(model, task, run config) of a finished ``spikedyn train`` run of a spiking model
    (``spikedyn.load_run``: model.pt is read with ``weights_only=True``)."""
    from spikedyn.runs import load_run as load

    run = load(run_dir)
    if run.model.kind != "spiking":
        raise ValueError(f"run {run_dir} trained a {run.model.kind} model; deploy needs a spiking one "
                         "(train --model lif)")
    return run.model, run.task, run.config


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(title for _, title in _COLUMNS) + " |", "|" + " --- |" * len(_COLUMNS)]
    for row in rows:
        cells = []
        for key, _ in _COLUMNS:
            value = row.get(key, "")
            cells.append(f"{value:.4f}" if isinstance(value, float) else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def comparison_rows(model: Any, task: Any, batch: Any, results: dict[str, tuple[Any, Any]]) -> list[dict[str, Any]]:
    """Table rows: torch float32 (as trained), then for each Lava run its matching torch run and itself.
    ``results`` maps a label to ``(deployment, HardwareRollout)``."""
    import numpy as np

    from spikedyn.export.deploy import spike_agreement, torch_reference
    from spikedyn.learning import evaluate

    rows = [{"body": "torch float32 (as trained)", "accuracy": float(evaluate(model, task, batch)["accuracy"]),
             "spikes": ""}]
    for label, (dep, out) in results.items():
        spikes_t, _, y_t = torch_reference(model, batch.inputs, dep.precision)
        agree = spike_agreement(spikes_t, out.spikes)
        torch_body = "torch float64" if dep.precision == "float" else 'torch quantize="loihi2"'
        rows.append({"body": torch_body, "accuracy": float(task.score(y_t.astype(np.float32), batch)["accuracy"]),
                     "spikes": int(spikes_t.sum())})
        rows.append({"body": label, "accuracy": float(task.score(out.y.astype(np.float32), batch)["accuracy"]),
                     "spike_agreement": agree["spike_agreement"], "trials_identical": agree["trials_identical"],
                     "first_mismatch_step": agree["first_mismatch_step"], "spikes": int(out.spikes.sum()),
                     "seconds": round(out.seconds, 2)})
    return rows


@app.command()
def deploy(
    ctx: typer.Context,
    run_dir: Path = typer.Option(None, help="Run directory written by `spikedyn train` (a lif model)."),
    backend: str = typer.Option("lava-sim", help="lava-sim (Lava's CPU simulator) | lava-loihi (needs lava-loihi)."),
    precision: str = typer.Option("fixed", help="float (floating_pt) | fixed (bit-accurate Loihi 2 fixed point)."),
    trials: int = typer.Option(500, help="Held-out trials to run (from the run's evaluation stream)."),
    chunk: int = typer.Option(None, help="Trials per Lava run (default: fit a memory budget)."),
    lava_python: str = typer.Option(None, help="Lava interpreter (default: SPIKEDYN_LAVA_PYTHON, .venv-lava, ...)."),
    config: Path = typer.Option(None, help="TOML/YAML file with these options (flags given here win)."),
    as_json: bool = json_option(),
) -> None:
    """Deploy a trained spiking network to Lava, run held-out trials on it and on torch, and write the
    comparison (accuracy, spike agreement) to RUN/deploy.json and RUN/deploy.md."""
    import numpy as np

    from spikedyn.export.deploy import deploy as make_deployment
    from spikedyn.learning.checkpoint import atomic_write_bytes, atomic_write_json, load_json, run_lock
    from spikedyn.learning.train import EVAL_SEED_OFFSET

    options = dict(run_dir=run_dir, backend=backend, precision=precision, trials=trials, chunk=chunk,
                   lava_python=lava_python)
    if config is not None:
        from spikedyn.config import load_config_file

        data = load_config_file(config)
        unknown = sorted(set(data) - set(options))
        if unknown:
            raise ValueError(f"{config}: unknown deploy option(s) {unknown}; known: {sorted(options)}")
        for key, value in data.items():  # the file fills what was not typed on the command line
            source = ctx.get_parameter_source(key)
            if source is None or source.name in ("DEFAULT", "DEFAULT_MAP"):
                options[key] = value
    run_dir, backend, precision = options["run_dir"], options["backend"], options["precision"]
    trials, chunk, lava_python = int(options["trials"]), options["chunk"], options["lava_python"]
    if run_dir is None:
        raise ValueError("--run-dir is required (a `spikedyn train` run directory)")
    run_dir = Path(run_dir)
    if trials < 1:
        raise ValueError("--trials must be a positive integer")
    model, task, config = load_run(run_dir)
    seed = int(config.get("train", {}).get("seed", 0))
    batch = task.sample(trials, np.random.default_rng([seed, EVAL_SEED_OFFSET]), split="test")
    dep = make_deployment(model, backend=backend, precision=precision, chunk=chunk, lava_python=lava_python)
    out = dep.run(batch.inputs)
    label = f"{backend} {precision}"
    rows = comparison_rows(model, task, batch, {label: (dep, out)})

    with run_lock(run_dir, timeout=60):  # one writer of the run directory at a time (read-modify-write)
        table_path = Path(run_dir) / TABLE_JSON
        table = load_json(table_path) if table_path.is_file() else {}
        table.setdefault("runs", {})[label] = {"trials": trials, "rows": rows}
        atomic_write_json(table_path, table)
        merged, seen = [], set()
        for entry in table["runs"].values():
            for row in entry["rows"]:
                if row["body"] not in seen:
                    seen.add(row["body"])
                    merged.append(row)
        atomic_write_bytes(Path(run_dir) / TABLE_MD, markdown_table(merged).encode())
    lava_row, torch_row = rows[-1], rows[-2]
    summary = {
        "run_dir": str(run_dir), "backend": backend, "precision": precision, "trials": trials,
        "accuracy_torch_float32": rows[0]["accuracy"],
        "torch_reference": torch_row["body"], "accuracy_torch_reference": torch_row["accuracy"],
        "accuracy_lava": lava_row["accuracy"], "spike_agreement": lava_row["spike_agreement"],
        "trials_identical": lava_row["trials_identical"], "lava_seconds": lava_row["seconds"],
        "table": str(Path(run_dir) / TABLE_MD),
    }  # fmt: skip
    emit(summary, as_json, f"deployed {run_dir} to {backend} ({precision})")
