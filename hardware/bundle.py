"""A deployment bundle: the directory the torch side hands to the Lava interpreter and gets back.

    graph.nir       the network (NIR, with spikedyn's metadata: exact constants)
    inputs.npz      u [T, B, I] float64
    options.json    {"precision": "float"|"fixed", "hardware": "sim"|"loihi", "chunk": int >= 1|null,
                     "progress": bool}
    result.npz      written by ``python -m spikedyn.hardware.run``: spikes [T*substeps, B, N] uint8
    result.json     {"ok": bool, "error": str|null, "seconds": float, "steps": int, "trials": int}

Every run gets its own bundle directory (``new_bundle_dir``: a fresh ``tempfile.mkdtemp`` under the
work directory), so concurrent runs sharing a work directory never read each other's files. Options
and inputs are checked (``validation.py``) before anything is written; every file is written
atomically (temporary file + rename). numpy + nir only.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from spikedyn.atomic import atomic_write_bytes, atomic_write_json

from .validation import check_inputs, check_options

GRAPH, INPUTS, OPTIONS, RESULT, RESULT_INFO = "graph.nir", "inputs.npz", "options.json", "result.npz", "result.json"
BUNDLE_PREFIX = "bundle-"


def new_bundle_dir(workdir: str | Path) -> Path:
    """A fresh, empty directory for one run's bundle under ``workdir`` (created if missing)."""
    import tempfile

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=BUNDLE_PREFIX, dir=workdir))


def atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def write_bundle(directory: Path, graph: Any, u: np.ndarray, options: dict[str, Any]) -> Path:
    """Write graph, inputs and options into ``directory`` (created). ``options`` and the inputs are
    checked first (a ``ValueError`` names the bad one), so a refused bundle writes nothing."""
    from .nir_io import graph_bytes

    options = check_options(options)
    u = check_inputs(u, None, "bundle inputs")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(directory / GRAPH, graph_bytes(graph))
    atomic_savez(directory / INPUTS, u=np.asarray(u, dtype=np.float64))
    atomic_write_json(directory / OPTIONS, options)
    for stale in (RESULT, RESULT_INFO):
        (directory / stale).unlink(missing_ok=True)
    return directory


def read_bundle(directory: Path) -> tuple[Any, np.ndarray, dict[str, Any]]:
    """Graph, inputs and (checked) options of a bundle; one-line errors naming the unreadable file."""
    from .nir_io import read_graph

    directory = Path(directory)
    missing = [n for n in (GRAPH, INPUTS, OPTIONS) if not (directory / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{directory} is not a spikedyn bundle (missing {', '.join(missing)})")
    graph = read_graph(directory / GRAPH)
    try:
        with np.load(directory / INPUTS, allow_pickle=False) as data:
            u = data["u"]
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise ValueError(f"cannot read the inputs {directory / INPUTS}: {_first_line(e)}") from None
    try:
        options = json.loads((directory / OPTIONS).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read the options {directory / OPTIONS}: {_first_line(e)}") from None
    return graph, u, check_options(options)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def write_result(directory: Path, spikes: np.ndarray | None, info: dict[str, Any]) -> None:
    if spikes is not None:
        atomic_savez(Path(directory) / RESULT, spikes=spikes.astype(np.uint8))
    atomic_write_json(Path(directory) / RESULT_INFO, info)


def read_result(directory: Path) -> tuple[np.ndarray | None, dict[str, Any]]:
    directory = Path(directory)
    if not (directory / RESULT_INFO).is_file():
        return None, {"ok": False, "error": None}
    try:
        info = json.loads((directory / RESULT_INFO).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read the Lava result {directory / RESULT_INFO}: {_first_line(e)}") from None
    if not isinstance(info, dict):
        raise ValueError(f"{directory / RESULT_INFO} is not a result object")
    spikes = None
    if info.get("ok") and (directory / RESULT).is_file():
        with np.load(directory / RESULT, allow_pickle=False) as data:
            spikes = data["spikes"]
    return spikes, info
