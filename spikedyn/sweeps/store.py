"""The results store of a sweep: one run directory per trial and one Parquet table.

Layout of a sweep directory::

    sweep.json            the sweep configuration and the trial keys, in order
    sweep.parquet         one row per trial (``load_sweep``)
    trials/<key>/         one ``spikedyn.train`` run directory per trial: config.json, metrics.jsonl,
                          model.pt, summary.json, learning_curve.png, result.json (+ lyapunov.json,
                          error.txt)

``<key>`` is ``trial_key(trial)``, a hash of the trial's resolved configuration, so re-running a sweep
finds the trials that are already done, and two sweeps that share a trial share its result.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

TABLE_FILE = "sweep.parquet"
SWEEP_FILE = "sweep.json"
TRIALS_DIR = "trials"

#: columns every sweep table has, in this order (axis columns and the held-out scores follow)
FIXED_COLUMNS = ("trial", "status", "error")
TAIL_COLUMNS = ("steps_run", "stopped_early", "lyapunov_max", "seconds", "run_dir", "config")


def table_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flatten trial records (``result.json`` contents) into table rows."""
    rows = []
    for rec in records:
        row: dict[str, Any] = {"trial": rec["key"], "status": rec["status"], "error": rec.get("error")}
        row.update(rec.get("labels", {}))
        row.update({k: v for k, v in rec.get("final", {}).items()})
        row.update({"steps_run": rec.get("steps_run"), "stopped_early": rec.get("stopped_early"),
                    "lyapunov_max": rec.get("lyapunov_max"), "seconds": rec.get("seconds"),
                    "run_dir": f"{TRIALS_DIR}/{rec['key']}",
                    "config": json.dumps(rec["config"], sort_keys=True)})  # fmt: skip
        rows.append(row)
    return rows


def build_table(records: list[dict[str, Any]], axes: list[str]) -> Any:
    """A pandas DataFrame with one row per record: fixed columns, the axes, the scores, the rest."""
    import pandas as pd

    rows = table_rows(records)
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=[*FIXED_COLUMNS, *axes, *TAIL_COLUMNS])
    scores = sorted(c for c in df.columns if c not in (*FIXED_COLUMNS, *axes, *TAIL_COLUMNS))
    order = [*FIXED_COLUMNS, *[a for a in axes if a in df.columns], *scores, *TAIL_COLUMNS]
    df = df[order]
    for col in axes:  # mixed-type axis values (e.g. null and a number) are stored as text
        if col in df.columns and df[col].map(type).nunique() > 1 and not _numeric(df[col]):
            df[col] = df[col].map(lambda v: None if v is None else str(v))
    return df.reset_index(drop=True)


def _numeric(col: Any) -> bool:
    import numbers

    return all(isinstance(v, numbers.Number) and not isinstance(v, bool) for v in col if v is not None)


def write_table(df: Any, path: Path) -> None:
    """Write the table as Parquet atomically (readers see the old or the new table, never a torn one)."""
    from ..atomic import atomic_write_bytes

    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    atomic_write_bytes(Path(path), buf.getvalue())


def load_sweep(path: str | Path) -> Any:
    """The sweep table (a pandas DataFrame, one row per trial) of a sweep directory or Parquet file.

    Columns: ``trial`` (the config hash, also the run directory ``trials/<trial>``), ``status`` ("ok" or
    "failed"), ``error``, one column per swept axis (dotted names such as ``model_params.gain``), the
    held-out scores at the end of training (``accuracy``, ``eval_loss``, the task's other scores),
    ``steps_run``, ``stopped_early``, ``lyapunov_max`` (largest exponent per step, when asked),
    ``seconds`` (wall time of the trial), ``run_dir`` (relative to the sweep) and ``config`` (the
    trial's resolved configuration as JSON).
    """
    import pandas as pd

    p = Path(path)
    table = p / TABLE_FILE if p.is_dir() else p
    if not table.is_file():
        raise FileNotFoundError(f"no sweep table at {table}; run `spikedyn sweep CONFIG` first")
    return pd.read_parquet(table)


def is_sweep_dir(path: str | Path) -> bool:
    return (Path(path) / TABLE_FILE).is_file() or (Path(path) / SWEEP_FILE).is_file()
