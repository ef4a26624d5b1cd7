"""Adjoint (backward sensitivity) of Park et al. Eq. 5 and 11, for a loss at the final step.

For ``L = <c, s_T>`` (any loss of the final state has ``dL/ds_T = c`` for its own ``c``), the adjoint
``a_t = dL/ds_t`` obeys ``a_t = J_t^T a_{t+1}`` backwards in time (the discrete form of
``dPsi/dt = -Df^T Psi``, Eq. 11). Its norm shows whether learning signals from the end of a trial
reach early times: vanishing (fading memory, fixed points), constant (line attractor), periodic
(limit cycle) or exploding (chaos).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from .jacobian import dynamics_for
from .lyapunov import as_input, in_dtype, initial_astate, seeded_rng


def transpose_apply(tangent, a: Tensor, dim: int) -> Tensor:
    """``J^T a`` for the linear map ``tangent(Q) = J Q`` (one reverse-mode pass; ``a [..., n]``)."""
    with torch.enable_grad():
        Q = torch.zeros((*a.shape, 1), dtype=a.dtype, device=a.device, requires_grad=True)
        out = tangent(Q)
        (g,) = torch.autograd.grad(out, Q, grad_outputs=a[..., None])
    return g[..., 0]


def adjoint_norms(
    model: Any,
    u: Any,
    direction: Any = None,
    state: Any = None,
    x0_std: float = 0.1,
    seed: int = 0,
    dtype: torch.dtype | None = torch.float64,
    normalize: bool = True,
) -> np.ndarray:
    """``||dL/ds_t||`` for t = 1..T (the state after each input step) with ``L = <c, s_T>``.

    Args:
        model, u, state, x0_std, seed, dtype: as in ``lyapunov_spectrum`` (``u [T, B, I]`` or ``[T, I]``).
        direction: ``c`` (``[n]`` or ``[B, n]``); default a random unit vector per trial (seeded).
        normalize: scale ``c`` to unit norm, so that the last entry is 1.

    Returns:
        ``[T]`` for a single-trial input ``[T, I]``, else ``[T, B]``; entry t is the adjoint norm at the
        state reached after input step t (the last entry is ``||c||``).
    """
    model = in_dtype(model, dtype)
    u, single = as_input(model, u, dtype)
    T, B = u.shape[:2]
    dyn = dynamics_for(model)
    gen = torch.Generator().manual_seed(seed)
    tangents = []
    with torch.no_grad(), seeded_rng(seed):
        start = model.init_state(B, generator=gen) if state is None else state
        astate = initial_astate(dyn, start, x0_std, gen)
        x = dyn.vector(astate)
        for t in range(T):
            astate, tangent = dyn.step(astate, u[t])
            tangents.append(tangent)
    if direction is None:
        a = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
    else:
        a = torch.as_tensor(direction, dtype=x.dtype, device=x.device).expand(x.shape).clone()
        if a.shape[-1] != dyn.dim:
            raise ValueError(f"direction must have {dyn.dim} entries (the state dimension)")
    if normalize:
        a = a / a.norm(dim=-1, keepdim=True).clamp(min=1e-300)
    norms = [a.norm(dim=-1)]
    for t in range(T - 1, 0, -1):  # a_{t} = J_t^T a_{t+1}, where J_t maps the state after step t to t+1
        a = transpose_apply(tangents[t], a, dyn.dim)
        norms.append(a.norm(dim=-1))
    out = torch.stack(norms[::-1]).detach().cpu().numpy()
    return out[:, 0] if single else out
