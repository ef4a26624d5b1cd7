"""Checks of a NIR graph on import (numpy only): each failure is one ``ValueError`` naming the node.

``spec_from_nir`` reads a network from the graph's nodes and, for spikedyn's own graphs, exact
discrete constants from metadata. These checks make sure the two never silently disagree: a graph
whose ``tau`` was edited after export, or whose Input/Output sizes do not match its weights, is
refused with the node's name, instead of the metadata winning quietly or numpy failing to broadcast.
"""
from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

#: relative tolerance between a constant read from NIR's continuous-time fields (forward Euler,
#: ``dt / (dt / dv)``) and the exact one in metadata: float rounding only
RTOL = 1e-9
METADATA_HINT = ("the graph was changed after export; delete graph.metadata['spikedyn'] (and "
                 "'spikedyn_model') to import the graph's own constants")


def metadata_json(graph: Any, key: str) -> dict[str, Any] | None:
    """``graph.metadata[key]`` (spikedyn's JSON object) parsed, None when absent; one ``ValueError`` that
    names the entry and says what to do when it is not a JSON object (a damaged or foreign file)."""
    meta = graph.metadata if isinstance(getattr(graph, "metadata", None), dict) else {}
    raw = meta.get(key)
    if raw is None:
        return None
    try:
        value = json.loads(raw) if isinstance(raw, (str, bytes)) else None
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ValueError(f"graph.metadata[{key!r}] is not spikedyn's JSON object; delete that entry to import the "
                         "graph's own constants")
    return value


def time_constant(values: Any, node: str, field: str, scale: float = 1.0) -> float:
    """One shared, finite, positive time constant (seconds) of ``node.field``, times ``scale``."""
    arr = np.asarray(values, dtype=np.float64).reshape(-1) * float(scale)
    if arr.size == 0:
        raise ValueError(f"NIR node {node!r}: {field} is empty")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        bad = arr[~(np.isfinite(arr) & (arr > 0))][0]
        raise ValueError(f"NIR node {node!r}: {field} must be a finite time constant > 0 s, got {bad}")
    if not np.all(arr == arr[0]):
        raise ValueError(f"NIR node {node!r}: spikedyn needs one {field} shared by all neurons; "
                         f"got {np.unique(arr)[:5]}")
    return float(arr[0])


def finite_array(values: Any, node: str, field: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"NIR node {node!r}: {field} holds NaN or Inf values")
    return arr


def check_shape(arr: np.ndarray, shape: tuple[int, ...], node: str, field: str, why: str) -> None:
    """``ValueError`` naming ``node`` unless ``arr`` has ``shape`` (or is a scalar/size-1 broadcastable
    per-neuron parameter when ``shape`` is 1-D)."""
    arr = np.asarray(arr)
    if arr.shape == shape or (len(shape) == 1 and arr.size == 1):
        return
    raise ValueError(f"NIR node {node!r}: {field} has shape {arr.shape}, expected {shape} ({why})")


def io_size(node: Any, attr: str) -> int | None:
    """The size an Input/Output node declares (``input_type``/``output_type``), None if it says none."""
    types = getattr(node, attr, None)
    if not isinstance(types, dict) or not types:
        return None
    shape = np.asarray(next(iter(types.values()))).reshape(-1)
    if shape.size == 0:
        return None
    return int(np.prod(shape))


def check_io(nodes: dict[str, Any], name: str, attr: str, expected: int, what: str) -> None:
    """The Input (or Output) node ``name`` must declare the size the weights next to it have."""
    size = io_size(nodes[name], attr)
    if size is not None and size != expected:
        raise ValueError(f"NIR node {name!r} declares {size} {what}, but the weights next to it have "
                         f"{expected}")


def agree(graph_value: float, exact_value: Any, node: str, field: str) -> float:
    """The exact metadata value, after checking that the graph's own constant says the same."""
    exact = float(exact_value)
    if not (math.isfinite(exact) and math.isclose(graph_value, exact, rel_tol=RTOL, abs_tol=1e-12)):
        raise ValueError(f"NIR node {node!r} gives {field} = {graph_value:.12g}, but the spikedyn metadata "
                         f"says {exact:.12g}: {METADATA_HINT}")
    return exact


def agree_arrays(graph_values: np.ndarray, exact_values: Any, node: str, field: str) -> np.ndarray:
    exact = np.asarray(exact_values, dtype=np.float64)
    graph_values = np.asarray(graph_values, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(exact), initial=0.0)))
    if exact.shape != graph_values.shape or not np.allclose(graph_values, exact, rtol=RTOL, atol=1e-12 * scale):
        raise ValueError(f"NIR node {node!r}: its {field} differs from the spikedyn metadata's: {METADATA_HINT}")
    return exact
