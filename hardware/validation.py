"""Checks at the API boundary of the hardware layer (numpy only; no torch, no Lava).

Every option a user (or a bundle file) hands to ``deploy``, ``Deployment.run``, ``run_lava`` or
``python -m spikedyn.hardware.run`` is checked here, so that a bad value is one ``ValueError`` saying
which option and what is allowed, instead of a numpy broadcast error deep in a simulator or, worse, a
run that reports ``ok`` with wrong results (``chunk=-1`` used to run zero trials; NaN inputs used to
give a spike-free network, since ``NaN > v_th`` is false).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

PRECISIONS = ("float", "fixed")
HARDWARE = ("sim", "loihi")
OPTION_KEYS = ("precision", "hardware", "chunk", "progress")


def check_chunk(chunk: Any) -> int | None:
    """``chunk`` (trials per Lava run) as an int >= 1, or None (automatic)."""
    if chunk is None:
        return None
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)):
        raise ValueError(f"chunk (trials per Lava run) must be a whole number >= 1 or None, got {chunk!r}")
    if chunk < 1:
        raise ValueError(f"chunk (trials per Lava run) must be >= 1, got {int(chunk)}")
    return int(chunk)


def check_choice(value: Any, what: str, options: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"unknown {what} {value!r}; choose one of {list(options)}")
    return value


def check_finite_number(value: Any, what: str, low: float | None = None, low_inclusive: bool = False,
                        allow_inf: bool = False) -> float:
    """``value`` as a float; ``ValueError`` unless it is a real number (not NaN; not inf unless
    ``allow_inf``) above ``low`` (``>= low`` when ``low_inclusive``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{what} must be a number, got {value!r}")
    x = float(value)
    if math.isnan(x) or (math.isinf(x) and not (allow_inf and x > 0)):
        raise ValueError(f"{what} must be a finite number, got {x}")
    if low is not None and (x < low or (x == low and not low_inclusive)):
        raise ValueError(f"{what} must be {'>=' if low_inclusive else '>'} {low:g}, got {x:g}")
    return x


def check_inputs(x: Any, n_in: int | None, what: str = "input") -> np.ndarray:
    """Inputs ``x [T, B, I]`` as float64: three axes, ``I = n_in`` (any when None), ``T >= 1``,
    ``B >= 1``, all finite."""
    size = "I" if n_in is None else n_in
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} must be a numeric array [T, B, {size}] (time, batch, inputs): {e}") from None
    if arr.ndim != 3 or (n_in is not None and arr.shape[-1] != n_in):
        raise ValueError(f"{what} must have shape [T, B, {size}] (time, batch, inputs), got {arr.shape}")
    T, B, _ = arr.shape
    if T < 1 or B < 1:
        raise ValueError(f"{what} has {T} time steps and {B} trials; both must be >= 1 (shape {arr.shape})")
    bad = ~np.isfinite(arr)
    if bad.any():
        t, b, i = (int(k) for k in np.argwhere(bad)[0])
        raise ValueError(f"{what} holds {int(bad.sum())} non-finite value(s) (NaN or Inf), first at step {t}, "
                         f"trial {b}, input {i}: {arr[t, b, i]}; spiking networks need finite inputs")
    return arr


def check_options(options: Any) -> dict[str, Any]:
    """A bundle's ``options.json``: known keys only, precision, hardware, chunk and progress valid."""
    if not isinstance(options, dict):
        raise ValueError(f"options must be a JSON object, got {type(options).__name__}")
    unknown = sorted(set(options) - set(OPTION_KEYS))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown}; known: {list(OPTION_KEYS)}")
    progress = options.get("progress", False)
    if not isinstance(progress, bool):
        raise ValueError(f"option progress must be true or false, got {progress!r}")
    return {
        "precision": check_choice(options.get("precision", "float"), "precision", PRECISIONS),
        "hardware": check_choice(options.get("hardware", "sim"), "hardware", HARDWARE),
        "chunk": check_chunk(options.get("chunk")),
        "progress": progress,
    }


def check_spec_numbers(spec: Any) -> None:
    """A ``NetworkSpec``'s weights and constants are finite, ``v_th > 0`` and ``dt_ms > 0`` (NaN weights
    or a NaN threshold would give a silent, spike-free network)."""
    for name in ("W_in", "W_rec", "bias", "W_out", "b_out", "beta"):
        if not np.all(np.isfinite(getattr(spec, name))):
            raise ValueError(f"the network's {name} holds NaN or Inf values")
    check_finite_number(spec.v_th, "v_th", low=0.0)
    check_finite_number(spec.dt_ms, "dt_ms (ms per input step)", low=0.0)
    for name in ("v_leak", "v_reset"):
        check_finite_number(getattr(spec, name), name)
