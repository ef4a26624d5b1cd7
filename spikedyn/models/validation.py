"""Argument checks at the models' API boundary: one ``ValueError`` naming the argument.

Why: a spiking network hides bad numbers. ``NaN > v_th`` is false, so NaN inputs used to give a
silent, spike-free rollout; ``tau_mem = nan`` gave a NaN decay and no spikes; ``T = 0`` failed deep
inside with an ``IndexError``. The checks are called from the model constructors and from
``RecurrentModel._check_input`` (every ``forward``/``loop``), not from the per-step kernels.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor


def _number(value: Any, what: str) -> float:
    """``value`` as a float: ints, floats, numpy scalars and one-element tensors (not bools or strings)."""
    if value is None or isinstance(value, (bool, str, bytes)):
        raise ValueError(f"{what} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{what} must be a number, got {value!r}") from None


def check_sizes(**sizes: Any) -> None:
    """Every size is a whole number >= 1 (``n_in=3``, not 0, -1, 2.5, NaN or True)."""
    for name, value in sizes.items():
        try:
            x = _number(value, name)
        except ValueError:
            x = math.nan
        if not math.isfinite(x) or int(x) != x or x < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_dt(dt: Any, what: str = "dt") -> float:
    """A time step in ms: finite and > 0."""
    x = _number(dt, what)
    if not (math.isfinite(x) and x > 0):
        raise ValueError(f"{what} must be a finite number of ms > 0, got {x}")
    return x


def check_time_constants(**taus: Any) -> None:
    """Time constants in ms: >= 0 (0: no memory) or ``inf`` (no decay); NaN and negatives refused."""
    for name, value in taus.items():
        x = _number(value, name)
        if math.isnan(x) or x < 0:
            raise ValueError(f"{name} must be >= 0 ms (0 = no memory, inf = no decay), got {x}")


def check_finite(**values: Any) -> None:
    """Each value (None allowed: "default") is a finite number."""
    for name, value in values.items():
        if value is None:
            continue
        x = _number(value, name)
        if not math.isfinite(x):
            raise ValueError(f"{name} must be a finite number, got {x}")


def check_spiking_args(dt: Any, refractory: Any, v_th: Any, gain: Any, beta_adapt: Any,
                       surrogate_slope: Any, v_leak: Any = 0.0, v_reset: Any = 0.0, **taus: Any) -> None:
    """``SpikingRNN``'s numbers: ``dt`` finite > 0 ms, time constants and ``refractory`` >= 0 ms
    (inf allowed for time constants), the rest finite."""
    check_dt(dt)
    check_time_constants(refractory=refractory, **taus)
    if math.isinf(float(refractory)):
        raise ValueError("refractory must be a finite number of ms, got inf")
    check_finite(v_th=v_th, gain=gain, beta_adapt=beta_adapt, surrogate_slope=surrogate_slope, v_leak=v_leak,
                 v_reset=v_reset)


def check_rollout_input(u: Tensor, n_in: int) -> Tensor:
    """Inputs ``u [T, B, I]`` with ``T >= 1``, ``B >= 1``, ``I = n_in`` and no NaN/Inf."""
    if u.dim() != 3 or u.shape[-1] != n_in:
        raise ValueError(f"input must have shape [T, B, {n_in}] (time, batch, inputs), got {tuple(u.shape)}")
    T, B = u.shape[:2]
    if T < 1 or B < 1:
        raise ValueError(f"input has {T} time steps and {B} trials; both must be >= 1 (shape {tuple(u.shape)})")
    if u.is_floating_point() or u.is_complex():
        with torch.no_grad():
            finite = torch.isfinite(u)
            if not bool(finite.all()):
                t, b, i = (int(k) for k in torch.nonzero(~finite)[0])
                raise ValueError(f"input holds {int((~finite).sum())} non-finite value(s) (NaN or Inf), first at "
                                 f"step {t}, trial {b}, input {i}; networks need finite inputs")
    return u
