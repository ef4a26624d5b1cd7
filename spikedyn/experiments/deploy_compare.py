"""Torch vs Lava on a trained spiking run: ``spikedyn deploy``'s measurement and its table.

``choose_precision`` picks Loihi 2 fixed point when the network can run on Lava's fixed-point LIF and
float otherwise (saying which training options allow fixed point); ``run`` deploys, runs held-out trials
on Lava and on the matching torch body, and returns table rows; ``write`` merges them into
``RUN/deploy.json`` and ``RUN/deploy.md``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

TABLE_JSON, TABLE_MD = "deploy.json", "deploy.md"
PRECISIONS = ("auto", "fixed", "float")
_COLUMNS = (
    ("body", "body"), ("accuracy", "accuracy"), ("spike_agreement", "spike agreement vs torch"),
    ("trials_identical", "identical trials"), ("spikes", "spikes"), ("seconds", "seconds"),
)  # fmt: skip
FIXED_HINT = "train with --model-param reset=zero --model-param refractory=0 for Loihi 2 fixed point"


def choose_precision(model: Any, precision: str = "auto") -> tuple[str, str | None]:
    """(precision, note): ``"auto"`` -> "fixed" when Lava's fixed-point LIF can run ``model``, else "float"
    with a note saying why and how to get fixed point. An explicit "fixed" the model cannot run is a
    one-line ``ValueError`` naming the flag to use."""
    from ..export.nir import spec_from_model

    if precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "float":
        return "float", None
    spec = spec_from_model(model)
    if spec.lava_lif_compatible():
        return "fixed", None
    if precision == "fixed":
        raise ValueError(f"--precision fixed runs Lava's fixed-point LIF, which has no {spec.lava_lif_reason()}; "
                         f"use --precision float (or auto), or {FIXED_HINT}")  # fmt: skip
    return "float", f"float precision: Lava's fixed-point LIF has no {spec.lava_lif_reason()} ({FIXED_HINT})"


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
    ``results`` maps a label to ``(deployment, rollout)``."""
    import numpy as np

    from ..export.deploy import spike_agreement, torch_reference
    from ..learning import evaluate

    rows = [{"body": "torch float32 (as trained)", "accuracy": float(evaluate(model, task, batch)["accuracy"]),
             "spikes": ""}]
    for label, (dep, out) in results.items():
        spikes_t, _, y_t = torch_reference(model, batch.inputs, dep.precision)
        agree = spike_agreement(spikes_t, out.spikes)
        torch_body = "torch float64" if dep.precision == "float" else "torch Loihi 2 fixed point"
        rows.append({"body": torch_body, "accuracy": float(task.score(y_t.astype(np.float32), batch)["accuracy"]),
                     "spikes": int(spikes_t.sum())})
        rows.append({"body": label, "accuracy": float(task.score(out.y.astype(np.float32), batch)["accuracy"]),
                     "spike_agreement": agree["spike_agreement"], "trials_identical": agree["trials_identical"],
                     "first_mismatch_step": agree["first_mismatch_step"], "spikes": int(out.spikes.sum()),
                     "seconds": round(out.seconds, 2)})
    return rows


def run(model: Any, task: Any, config: dict[str, Any], backend: str = "lava-sim", precision: str = "auto",
        trials: int = 500, chunk: int | None = None, lava_python: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Deploy ``model``, run ``trials`` held-out trials (the run's evaluation stream) on Lava and torch."""
    import numpy as np

    from ..export.deploy import deploy
    from ..learning.train import EVAL_SEED_OFFSET

    if trials < 1:
        raise ValueError("--trials must be a positive integer")
    precision, note = choose_precision(model, precision)
    seed = int(config.get("train", {}).get("seed", 0))
    batch = task.sample(trials, np.random.default_rng([seed, EVAL_SEED_OFFSET]), split="test")
    dep = deploy(model, backend=backend, precision=precision, chunk=chunk, lava_python=lava_python)
    label = f"{backend} {precision}"
    rows = comparison_rows(model, task, batch, {label: (dep, dep.run(batch.inputs))})
    return {"label": label, "backend": backend, "precision": precision, "note": note, "trials": trials,
            "rows": rows}  # fmt: skip


def write(run_dir: Path, result: dict[str, Any]) -> Path:
    """Merge ``result`` into ``run_dir/deploy.json`` and rewrite ``run_dir/deploy.md``; returns the .md path."""
    from ..atomic import atomic_write_bytes, atomic_write_json
    from ..learning.checkpoint import load_json, run_lock

    with run_lock(Path(run_dir), timeout=60):  # one writer of the run directory at a time (read-modify-write)
        table_path = Path(run_dir) / TABLE_JSON
        table = load_json(table_path) if table_path.is_file() else {}
        table.setdefault("runs", {})[result["label"]] = {"trials": result["trials"], "rows": result["rows"]}
        atomic_write_json(table_path, table)
        merged, seen = [], set()
        for entry in table["runs"].values():
            for row in entry["rows"]:
                if row["body"] not in seen:
                    seen.add(row["body"])
                    merged.append(row)
        atomic_write_bytes(Path(run_dir) / TABLE_MD, markdown_table(merged).encode())
    return Path(run_dir) / TABLE_MD
