"""Tangent dynamics of spikedyn models: the state Jacobian ``J_t = d s_{t+1} / d s_t`` along a trajectory.

Every body provides its own tangent dynamics (``model.tangent_dynamics()``, defined with the bodies in
``spikedyn/models/tangent.py``; the reference ODE systems in ``reference_systems.py``); ``dynamics_for``
asks the model for it, and falls back to forward-mode autograd through ``step`` for any other model that
follows the protocol. See ``spikedyn/models/tangent.py`` for the state vector of each body and the
surrogate Jacobian of spiking bodies.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..models.rate import activation_derivative
from ..models.tangent import (
    AutogradDynamics,
    Dynamics,
    GRUDynamics,
    RateDynamics,
    SpikingAnalysisState,
    SpikingDynamics,
    StackedRateDynamics,
    Tangent,
)

__all__ = [
    "AutogradDynamics", "Dynamics", "GRUDynamics", "RateDynamics", "SpikingAnalysisState", "SpikingDynamics",
    "StackedRateDynamics", "Tangent", "activation_derivative", "dynamics_for", "step_jacobian",
]  # fmt: skip


def dynamics_for(model: Any, detach_recurrent: bool = False) -> Dynamics:
    """The tangent dynamics of ``model``: its own ``tangent_dynamics()``, else autograd through ``step``."""
    own = getattr(model, "tangent_dynamics", None)
    if own is not None:
        return own(detach_recurrent=detach_recurrent)
    if detach_recurrent:
        raise ValueError(f"detach_recurrent (local flossing) is implemented for RateRNN only, "
                         f"not {type(model).__name__}")
    if not hasattr(model, "init_state") or not hasattr(model, "step"):
        raise ValueError(f"{type(model).__name__} does not follow the spikedyn protocol (init_state, step)")
    return AutogradDynamics(model)


def step_jacobian(model: Any, state: Any, u_t: Tensor) -> Tensor:
    """The dense state Jacobian ``J [B, n, n]`` of one model step from ``state`` with input ``u_t [B, I]``."""
    dyn = dynamics_for(model)
    astate = dyn.start(state)
    x = dyn.vector(astate)
    _, tangent = dyn.step(astate, u_t)
    eye = torch.eye(dyn.dim, dtype=x.dtype, device=x.device).expand(*x.shape[:-1], dyn.dim, dyn.dim)
    return tangent(eye)
