"""A deployment bundle: the directory the torch side hands to the Lava interpreter and gets back.

    graph.nir       the network (NIR, with spikedyn's metadata: exact constants)
    inputs.npz      u [T, B, I] float64
    options.json    {"precision": "float"|"fixed", "hardware": "sim"|"loihi", "chunk": int|null}
    result.npz      written by ``python -m spikedyn.hardware.run``: spikes [T*substeps, B, N] uint8
    result.json     {"ok": bool, "error": str|null, "seconds": float, "steps": int, "trials": int}

Everything is written atomically (temporary file + rename). numpy + nir only.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from spikedyn.atomic import atomic_write_bytes, atomic_write_json

GRAPH, INPUTS, OPTIONS, RESULT, RESULT_INFO = "graph.nir", "inputs.npz", "options.json", "result.npz", "result.json"


def atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def write_bundle(directory: Path, graph: Any, u: np.ndarray, options: dict[str, Any]) -> Path:
    """Write graph, inputs and options into ``directory`` (created)."""
    import nir

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    nir.write(buf, graph)
    atomic_write_bytes(directory / GRAPH, buf.getvalue())
    atomic_savez(directory / INPUTS, u=np.asarray(u, dtype=np.float64))
    atomic_write_json(directory / OPTIONS, options)
    for stale in (RESULT, RESULT_INFO):
        (directory / stale).unlink(missing_ok=True)
    return directory


def read_bundle(directory: Path) -> tuple[Any, np.ndarray, dict[str, Any]]:
    import nir

    directory = Path(directory)
    missing = [n for n in (GRAPH, INPUTS, OPTIONS) if not (directory / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{directory} is not a spikedyn bundle (missing {', '.join(missing)})")
    graph = nir.read(str(directory / GRAPH))
    with np.load(directory / INPUTS) as data:
        u = data["u"]
    options = json.loads((directory / OPTIONS).read_text())
    return graph, u, options


def write_result(directory: Path, spikes: np.ndarray | None, info: dict[str, Any]) -> None:
    if spikes is not None:
        atomic_savez(Path(directory) / RESULT, spikes=spikes.astype(np.uint8))
    atomic_write_json(Path(directory) / RESULT_INFO, info)


def read_result(directory: Path) -> tuple[np.ndarray | None, dict[str, Any]]:
    directory = Path(directory)
    if not (directory / RESULT_INFO).is_file():
        return None, {"ok": False, "error": None}
    info = json.loads((directory / RESULT_INFO).read_text())
    spikes = None
    if info.get("ok") and (directory / RESULT).is_file():
        with np.load(directory / RESULT) as data:
            spikes = data["spikes"]
    return spikes, info
