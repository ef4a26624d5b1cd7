"""Run directories: atomic writes, checkpoints and the metrics log."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write_bytes
from ..atomic import atomic_write_json as _atomic_write_json

CKPT_DIR = "checkpoints"
KEEP = 2  # checkpoints kept; older ones are deleted after a new one is safely on disk


def atomic_write_json(path: Path, obj: Any) -> None:
    """``obj`` as JSON, written atomically; tensors and numpy values are converted."""
    _atomic_write_json(path, obj, default=_json_default)


def atomic_torch_save(path: Path, obj: Any) -> None:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def write_metrics(path: Path, history: list[dict]) -> None:
    """Rewrite metrics.jsonl from the in-memory history (atomic; used at every checkpoint)."""
    atomic_write_bytes(path, "".join(json.dumps(r, default=_json_default) + "\n" for r in history).encode())


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CKPT_DIR / f"step_{step:07d}.pt"


def save_checkpoint(run_dir: Path, step: int, payload: dict[str, Any]) -> Path:
    path = checkpoint_path(run_dir, step)
    atomic_torch_save(path, payload)
    for old in list_checkpoints(run_dir)[:-KEEP]:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(run_dir: Path) -> list[Path]:
    d = Path(run_dir) / CKPT_DIR
    return sorted(d.glob("step_*.pt")) if d.is_dir() else []


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def load_checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)
