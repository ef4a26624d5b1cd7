"""Spike nonlinearity with surrogate gradients.

Forward: ``z = H(x)`` with strict inequality (``x > 0`` spikes; ``x = v - A`` is the distance of the
membrane above threshold), as Lava, snntorch and norse do. Backward: ``dz/dx`` is replaced by a
pseudo-derivative ``psi(x)``. ``pseudo_derivative`` is the single place each shape is defined; the
autograd function and e-prop's eligibility traces both call it.

| name         | psi(x)                                 | default slope | reference                           |
|--------------|----------------------------------------|---------------|-------------------------------------|
| fast_sigmoid | 1 / (1 + slope |x|)^2                  | 25            | SuperSpike (Zenke & Ganguli 2018)   |
| triangle     | (slope / v_th) max(0, 1 - |x| / v_th)  | 0.3           | e-prop (Bellec et al. 2020), gamma  |
| atan         | (slope / 2) / (1 + (pi slope x / 2)^2) | 2             | snntorch ``atan`` (Fang et al. 2021) |
"""
from __future__ import annotations

import functools
import math

import torch
from torch import Tensor


@functools.lru_cache(maxsize=256)
def _const(value: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    return torch.tensor(value, dtype=dtype, device=device)


def scalar(value: float, like: Tensor) -> Tensor:
    """``value`` as a cached 0-dim tensor of ``like``'s dtype and device: the same arithmetic as a Python
    float operand, without the per-op conversion of the float to a tensor (~1.5 us per op on a CPU)."""
    return _const(float(value), like.dtype, like.device)

SURROGATES = ("fast_sigmoid", "triangle", "atan")
DEFAULT_SLOPE = {"fast_sigmoid": 25.0, "triangle": 0.3, "atan": 2.0}


def check_surrogate(name: str) -> str:
    if name not in SURROGATES:
        raise ValueError(f"unknown surrogate {name!r}; choose one of {list(SURROGATES)}")
    return name


def pseudo_derivative(x: Tensor, name: str, slope: float, v_th: float = 1.0) -> Tensor:
    """psi(x): the surrogate of dH(x)/dx at distance ``x = v - A`` above threshold (a new tensor). Few
    temporaries, in place where autograd allows it (the fused backward calls this once per substep)."""
    if name == "fast_sigmoid":  # 1 / (1 + slope |x|)^2
        t = x.abs().mul_(scalar(slope, x)).add_(scalar(1.0, x))
        return (t * t).reciprocal_()
    if name == "triangle":  # (slope / v_th) max(0, 1 - |x| / v_th)
        t = x.abs().div_(scalar(-v_th, x)).add_(scalar(1.0, x)).clamp_(min=0.0)
        return t * scalar(slope / v_th, x)
    if name == "atan":  # (slope / 2) / (1 + (pi slope x / 2)^2)
        t = x * scalar(math.pi / 2.0 * slope, x)
        return scalar(slope / 2.0, x) / (t * t).add_(scalar(1.0, x))
    raise ValueError(f"unknown surrogate {name!r}; choose one of {list(SURROGATES)}")


class _SpikeFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, name: str, slope: float, v_th: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.spec = (name, slope, v_th)
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * pseudo_derivative(x, *ctx.spec), None, None, None


def spike(x: Tensor, name: str = "fast_sigmoid", slope: float | None = None, v_th: float = 1.0) -> Tensor:
    """Heaviside ``x > 0`` with the named surrogate gradient."""
    slope = DEFAULT_SLOPE[check_surrogate(name)] if slope is None else float(slope)
    return _SpikeFn.apply(x, name, slope, v_th)
