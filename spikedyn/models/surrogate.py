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

import math

import torch
from torch import Tensor

SURROGATES = ("fast_sigmoid", "triangle", "atan")
DEFAULT_SLOPE = {"fast_sigmoid": 25.0, "triangle": 0.3, "atan": 2.0}


def check_surrogate(name: str) -> str:
    if name not in SURROGATES:
        raise ValueError(f"unknown surrogate {name!r}; choose one of {list(SURROGATES)}")
    return name


def pseudo_derivative(x: Tensor, name: str, slope: float, v_th: float = 1.0) -> Tensor:
    """psi(x): the surrogate of dH(x)/dx at distance ``x = v - A`` above threshold."""
    if name == "fast_sigmoid":
        return 1.0 / (1.0 + slope * x.abs()) ** 2
    if name == "triangle":
        return (slope / v_th) * torch.clamp(1.0 - x.abs() / v_th, min=0.0)
    if name == "atan":
        return (slope / 2.0) / (1.0 + (math.pi / 2.0 * slope * x) ** 2)
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
