"""Tangent dynamics of spikedyn models: the state Jacobian ``J_t = d s_{t+1} / d s_t`` along a trajectory.

Every analysis (Lyapunov spectra, adjoints, flossing) goes through one adapter per model kind,
``dynamics_for(model)``, which exposes

- ``start(state) -> astate`` and ``step(astate, u_t) -> (astate', tangent)``, where ``tangent(Q)``
  applies ``J_t`` to tangent vectors ``Q [..., n, k]`` (column vectors: ``J Q``, never ``J^T Q``);
- ``vector(astate) -> [..., n]`` and ``with_vector(astate, v)``: the continuous state as one vector
  (used for random initial states and the two-trajectory estimate);
- ``dt``: the duration of one model step in the model's time unit (see ``lyapunov.py``).

The state vector ``s`` is:

| model | s | Jacobian |
| --- | --- | --- |
| ``RateRNN`` | pre-activation ``x`` | ``(1 - alpha) I + alpha W_rec diag(f'(x))`` (closed form) |
| ``GRURNN`` | ``h`` | closed form through the gates r, z and the candidate n |
| ``SpikingRNN`` | ``[u if du < 1, v, a if ALIF]`` | surrogate Jacobian of the membrane dynamics (below) |
| ``ODESystem`` | ``x`` | exact Jacobian of the RK4 step |
| anything else | all floating state fields | forward-mode autograd through ``model.step`` |

Spiking models: the spike ``z = H(v - A)`` has zero derivative almost everywhere, so the true Jacobian
of the membrane map ignores the recurrent network entirely. We use the *surrogate* Jacobian, in which
``dz/dv`` is the model's pseudo-derivative ``psi(v - A)`` (zero on refractory steps) -- the Jacobian
that surrogate-gradient BPTT propagates errors through (resets detached when the model detaches them).
Its exponents describe the learning signal, not the chaos of the spike trains; for the latter use
``max_lyapunov_perturbation`` (two nearby trajectories).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

Tangent = Callable[[Tensor], Tensor]


# -- activation derivatives -------------------------------------------------------------------------------
def activation_derivative(name: str, x: Tensor) -> Tensor:
    """f'(x) for the RateRNN activations."""
    if name == "tanh":
        return 1.0 - torch.tanh(x) ** 2
    if name == "shifted_tanh":
        return 1.0 - torch.tanh(x) ** 2
    if name == "relu":
        return (x > 0).to(x.dtype)
    if name == "softplus":
        return torch.sigmoid(x)
    raise ValueError(f"no derivative known for activation {name!r}")


class Dynamics:
    """Base adapter; see the module docstring."""

    dt: float = 1.0
    dim: int

    def start(self, state: Any) -> Any:
        return state

    def step(self, astate: Any, u_t: Tensor) -> tuple[Any, Tangent]:
        raise NotImplementedError

    def vector(self, astate: Any) -> Tensor:
        raise NotImplementedError

    def with_vector(self, astate: Any, v: Tensor) -> Any:
        raise NotImplementedError

    def model_state(self, astate: Any) -> Any:
        return astate


# -- rate RNN ---------------------------------------------------------------------------------------------
class RateDynamics(Dynamics):
    """``x' = (1 - a) x + a (W f(x) + W_in u + b) [+ noise]``; tangent ``(1-a) Q + a W (f'(x) * Q)``.

    ``detach_recurrent=True`` builds the step with ``f(x)`` detached in the recurrence (e-prop's
    truncation): the tangent map is unchanged, but gradients of anything computed from the trajectory
    no longer flow through other units' states (used by local flossing).
    """

    def __init__(self, model: Any, detach_recurrent: bool = False) -> None:
        self.model, self.dim, self.dt = model, model.n_hidden, 1.0
        self.detach_recurrent = detach_recurrent

    def step(self, astate, u_t):
        m = self.model
        x = astate.x
        r = m.f(x)
        r_rec = r.detach() if self.detach_recurrent else r
        x_next = (1.0 - m.alpha) * x + m.alpha * (r_rec @ m.W_rec.T + u_t @ m.W_in.T + m.b)
        if m.noise_std > 0:
            x_next = x_next + (2.0 * m.alpha) ** 0.5 * m.noise_std * torch.randn_like(x_next)
        d = activation_derivative(m.activation, x)

        def tangent(Q: Tensor) -> Tensor:
            # column masking: J = (1-a) I + a W diag(f'(x)), so J Q = (1-a) Q + a W (f'(x)[:, None] * Q)
            return (1.0 - m.alpha) * Q + m.alpha * (m.W_rec @ (d[..., :, None] * Q))

        return type(astate)(x_next), tangent

    def vector(self, astate):
        return astate.x

    def with_vector(self, astate, v):
        return type(astate)(v)


class StackedRateDynamics(Dynamics):
    """Many RateRNNs of one shape, stepped together: state ``x [M, B, N]``, weights ``[M, ...]``."""

    def __init__(self, models: list[Any]) -> None:
        first = models[0]
        self.alpha, self.f, self.activation = first.alpha, first.f, first.activation
        self.W_rec = torch.stack([m.W_rec for m in models])
        self.W_in = torch.stack([m.W_in for m in models])
        self.b = torch.stack([m.b for m in models])
        self.dim, self.dt = first.n_hidden, 1.0

    def step(self, astate, u_t):
        x = astate  # [M, B, N]
        drive = self.f(x) @ self.W_rec.transpose(1, 2) + u_t @ self.W_in.transpose(1, 2) + self.b[:, None]
        x_next = (1.0 - self.alpha) * x + self.alpha * drive
        d = activation_derivative(self.activation, x)

        def tangent(Q: Tensor) -> Tensor:  # Q [M, B, N, k]
            return (1.0 - self.alpha) * Q + self.alpha * (self.W_rec[:, None] @ (d[..., :, None] * Q))

        return x_next, tangent

    def vector(self, astate):
        return astate

    def with_vector(self, astate, v):
        return v


# -- GRU --------------------------------------------------------------------------------------------------
class GRUDynamics(Dynamics):
    """GRU ``h' = (1 - z) n + z h`` with the closed-form tangent through r, z and n."""

    def __init__(self, model: Any) -> None:
        self.model, self.dim, self.dt = model, model.n_hidden, 1.0

    def step(self, astate, u_t):
        m, N = self.model, self.model.n_hidden
        h = astate.h
        gi = u_t @ m.W_in.T + m.b
        gh = h @ m.W_rec.T
        r = torch.sigmoid(gi[..., :N] + gh[..., :N])
        z = torch.sigmoid(gi[..., N : 2 * N] + gh[..., N : 2 * N])
        hn = gh[..., 2 * N :] + m.b_hn
        n = torch.tanh(gi[..., 2 * N :] + r * hn)
        h_next = (1.0 - z) * n + z * h
        W = m.W_rec

        def tangent(Q: Tensor) -> Tensor:
            WQ = W @ Q  # [B, 3N, k]
            col = lambda v: v[..., :, None]  # noqa: E731
            dr = col(r * (1 - r)) * WQ[..., :N, :]
            dz = col(z * (1 - z)) * WQ[..., N : 2 * N, :]
            dn = col(1 - n**2) * (col(r) * WQ[..., 2 * N :, :] + col(hn) * dr)
            return col(1 - z) * dn + col(z) * Q + col(h - n) * dz

        return type(astate)(h_next), tangent

    def vector(self, astate):
        return astate.h

    def with_vector(self, astate, v):
        return type(astate)(v)


# -- spiking (surrogate Jacobian of the membrane dynamics) ------------------------------------------------
class SpikingAnalysisState(NamedTuple):
    state: Any  # the model's SpikingState
    psi: Tensor  # dz/dv of the last spike (pseudo-derivative, 0 on refractory steps) [B, N]


class SpikingDynamics(Dynamics):
    """Membrane state ``s = [u (if du < 1), v, a (if ALIF)]`` of a ``SpikingRNN``; one model step is
    ``substeps`` neuron updates, and the tangent is their product (see the module docstring)."""

    def __init__(self, model: Any) -> None:
        from ..models.spiking import spiking_substep
        from ..models.surrogate import pseudo_derivative

        if model.delay_rec:
            raise ValueError("Lyapunov analysis of spiking models with delay_rec > 0 is not supported "
                             "(the delay line would be part of the state); use delay_rec=0")  # fmt: skip
        self.model, self.p = model, model.params
        self._substep, self._psi = spiking_substep, pseudo_derivative
        self.has_u, self.has_a = self.p.du < 1.0, self.p.adaptive
        N = model.n_hidden
        self.dim = N * (1 + int(self.has_u) + int(self.has_a))
        self.dt = model.dt

    def start(self, state):
        # dz/dv of the spike stored in ``state``: exact along a trajectory from the first step on; for a
        # given start state the refractory mask is taken as "not refractory unless ref > 0"
        p = self.p
        threshold = p.v_th + self.model.beta * state.a if p.adaptive else p.v_th
        active = ((state.ref <= 0) | (state.z > 0)).to(state.v.dtype) if p.n_ref else 1.0
        return SpikingAnalysisState(state, self._psi(state.v - threshold, p.surrogate, p.slope, p.v_th) * active)

    def model_state(self, astate):
        return astate.state

    def _sub(self, astate: SpikingAnalysisState, i_ext: Tensor) -> tuple[SpikingAnalysisState, Tangent]:
        m, p, s, P = self.model, self.p, astate.state, astate.psi
        W, beta = m.W_rec_eff, m.beta
        s_next = self._substep(p, W, m.b, beta, s, i_ext)
        threshold = p.v_th + beta * s_next.a if p.adaptive else p.v_th
        active = (s.ref <= 0).to(s.v.dtype) if p.n_ref else 1.0  # the mask applied to the new spike
        P_next = self._psi(s_next.v - threshold, p.surrogate, p.slope, p.v_th) * active
        z_prev, v_prev = s.z, s.v
        N = m.n_hidden
        has_u, has_a = self.has_u, self.has_a

        def tangent(Q: Tensor) -> Tensor:
            col = lambda v: v[..., :, None] if isinstance(v, Tensor) else v  # noqa: E731
            i = 0
            if has_u:
                du_, i = Q[..., i : i + N, :], i + N
            dv, i = Q[..., i : i + N, :], i + N
            da = Q[..., i : i + N, :] if has_a else None
            dz = col(P) * (dv - col(beta) * da if has_a else dv)  # d z_{s-1}
            du_next = W @ dz + ((1.0 - p.du) * du_ if has_u else 0.0)
            if p.reset == "zero":
                dv_next = (1.0 - p.dv) * col(1.0 - z_prev) * dv + du_next
                if not p.detach_reset:
                    dv_next = dv_next - (1.0 - p.dv) * col(v_prev) * dz
            else:
                dv_next = (1.0 - p.dv) * dv + du_next
                if not p.detach_reset:
                    dv_next = dv_next - p.v_th * dz
            parts = ([du_next] if has_u else []) + [dv_next] + ([p.rho * da + dz] if has_a else [])
            return torch.cat(parts, dim=-2)

        return SpikingAnalysisState(s_next, P_next), tangent

    def step(self, astate, u_t):
        i_ext = u_t @ self.model.W_in.T
        tangents = []
        for _ in range(self.model.substeps):
            astate, tan = self._sub(astate, i_ext)
            tangents.append(tan)

        def tangent(Q: Tensor) -> Tensor:
            for tan in tangents:
                Q = tan(Q)
            return Q

        return astate, tangent

    def vector(self, astate):
        s = astate.state
        return torch.cat(([s.u] if self.has_u else []) + [s.v] + ([s.a] if self.has_a else []), dim=-1)

    def with_vector(self, astate, v):
        N, i, s = self.model.n_hidden, 0, astate.state
        fields = {}
        if self.has_u:
            fields["u"], i = v[..., :N], N
        fields["v"], i = v[..., i : i + N], i + N
        if self.has_a:
            fields["a"] = v[..., i : i + N]
        return SpikingAnalysisState(s._replace(**fields), astate.psi)


# -- ODE systems (reference systems) ----------------------------------------------------------------------
class ODEDynamics(Dynamics):
    """RK4 step of an ``ODESystem`` with its exact tangent (the RK4 scheme applied to the variational
    equation ``dQ/dt = Df(x) Q`` along the same stages)."""

    def __init__(self, model: Any) -> None:
        self.model, self.dim, self.dt = model, model.n_hidden, model.dt

    def step(self, astate, u_t):
        m, h = self.model, self.model.dt
        x = astate.x
        drive = m.input_drive(u_t)
        k1 = m.field(x, drive)
        x2 = x + 0.5 * h * k1
        k2 = m.field(x2, drive)
        x3 = x + 0.5 * h * k2
        k3 = m.field(x3, drive)
        x4 = x + h * k3
        k4 = m.field(x4, drive)
        x_next = x + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)

        def tangent(Q: Tensor) -> Tensor:
            d1 = m.field_jvp(x, drive, Q)
            d2 = m.field_jvp(x2, drive, Q + 0.5 * h * d1)
            d3 = m.field_jvp(x3, drive, Q + 0.5 * h * d2)
            d4 = m.field_jvp(x4, drive, Q + h * d3)
            return Q + h / 6.0 * (d1 + 2 * d2 + 2 * d3 + d4)

        return type(astate)(x_next), tangent

    def vector(self, astate):
        return astate.x

    def with_vector(self, astate, v):
        return type(astate)(v)


# -- anything else: autograd ------------------------------------------------------------------------------
class AutogradDynamics(Dynamics):
    """Any model following the protocol: the state vector is the concatenation of its floating
    ``[B, ...]`` state fields, and ``J Q`` is computed by forward-mode autograd (``torch.func.jvp``,
    vectorised over the columns of Q). Works for LSTMRNN and user models made of differentiable ops."""

    def __init__(self, model: Any) -> None:
        self.model, self.dt = model, float(getattr(model, "dt", 1.0))
        probe = model.init_state(1)
        self._fields = [name for name, t in probe._asdict().items() if t.is_floating_point()]
        self._sizes = [int(getattr(probe, f)[0].numel()) for f in self._fields]
        self.dim = sum(self._sizes)

    def vector(self, astate):
        B = getattr(astate, self._fields[0]).shape[0]
        return torch.cat([getattr(astate, f).reshape(B, -1) for f in self._fields], dim=-1)

    def with_vector(self, astate, v):
        out, i = {}, 0
        for f, size in zip(self._fields, self._sizes):
            ref = getattr(astate, f)
            out[f] = v[..., i : i + size].reshape(ref.shape)
            i += size
        return astate._replace(**out)

    def step(self, astate, u_t):
        from torch.func import jvp, vmap

        next_state, _ = self.model.step(astate, u_t)

        def flat_step(v: Tensor) -> Tensor:
            return self.vector(self.model.step(self.with_vector(astate, v), u_t)[0])

        x = self.vector(astate)

        def tangent(Q: Tensor) -> Tensor:
            push = lambda q: jvp(flat_step, (x,), (q,))[1]  # noqa: E731
            return vmap(push, in_dims=-1, out_dims=-1)(Q)

        return next_state, tangent


def dynamics_for(model: Any, detach_recurrent: bool = False) -> Dynamics:
    """The tangent-dynamics adapter of ``model`` (see the module docstring)."""
    from ..models.gru import GRURNN
    from ..models.rate import RateRNN
    from ..models.spiking import SpikingRNN
    from .reference_systems import ODESystem

    if isinstance(model, RateRNN):
        return RateDynamics(model, detach_recurrent=detach_recurrent)
    if detach_recurrent:
        raise ValueError(f"detach_recurrent (local flossing) is implemented for RateRNN only, "
                         f"not {type(model).__name__}")
    if isinstance(model, GRURNN):
        return GRUDynamics(model)
    if isinstance(model, SpikingRNN):
        return SpikingDynamics(model)
    if isinstance(model, ODESystem):
        return ODEDynamics(model)
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
