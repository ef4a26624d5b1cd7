"""Tangent dynamics of the bodies: the state Jacobian ``J_t = d s_{t+1} / d s_t`` along a trajectory.

Every body provides its own through a method, ``model.tangent_dynamics()``, so the analyses
(``spikedyn.analysis``: Lyapunov spectra, adjoints, flossing) need no list of model classes. A
``Dynamics`` exposes

- ``start(state) -> astate`` and ``step(astate, u_t) -> (astate', tangent)``, where ``tangent(Q)``
  applies ``J_t`` to tangent vectors ``Q [..., n, k]`` (column vectors: ``J Q``, never ``J^T Q``);
- ``vector(astate) -> [..., n]`` and ``with_vector(astate, v)``: the continuous state as one vector
  (used for random initial states and the two-trajectory estimate);
- ``dt``: the duration of one step, in ms for the bodies (``time_unit = "ms"``); reference ODE systems
  use their own dimensionless time (``time_unit = "model"``).

| body | s | Jacobian |
| --- | --- | --- |
| ``RateRNN`` | pre-activation ``x`` | ``(1 - alpha) I + alpha W_rec diag(f'(x))`` (closed form) |
| ``GRURNN`` | ``h`` | closed form through the gates r, z and the candidate n |
| ``SpikingRNN`` | ``[u if du < 1, v, a if ALIF]`` | surrogate Jacobian from the map's ``partials`` (below) |
| anything else (``LSTMRNN``, user models) | all floating state fields | forward-mode autograd through ``step`` |

Spiking bodies: the spike ``z = H(v - A)`` has zero derivative almost everywhere, so the true Jacobian
of the membrane map ignores the recurrent network entirely. We use the *surrogate* Jacobian, in which
``dz/dv`` is the body's pseudo-derivative ``psi(v - A)`` (zero on refractory steps) -- the Jacobian
that surrogate-gradient BPTT propagates errors through (resets detached when the body detaches them).
Its exponents describe the learning signal, not the chaos of the spike trains; for the latter use
``max_lyapunov_perturbation`` (two nearby trajectories).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from spikedyn.hardware.neuron import not_refractory, partials, threshold_distance

from .rate import activation_derivative, leaky_update
from .spiking import _XP
from .surrogate import pseudo_derivative

Tangent = Callable[[Tensor], Tensor]


class Dynamics:
    """Base adapter; see the module docstring."""

    dt: float = 1.0
    time_unit: str = "ms"
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


def _col(v: Any) -> Any:
    return v[..., :, None] if isinstance(v, Tensor) else v


# -- rate RNN ---------------------------------------------------------------------------------------------
class RateDynamics(Dynamics):
    """``x' = (1 - a) x + a (W f(x) + W_in u + b) [+ noise]``; tangent ``(1-a) Q + a W (f'(x) * Q)``.

    ``detach_recurrent=True`` builds the step with ``f(x)`` detached in the recurrence (e-prop's
    truncation): the tangent map is unchanged, but gradients of anything computed from the trajectory
    no longer flow through other units' states (used by local flossing).
    """

    def __init__(self, model: Any, detach_recurrent: bool = False) -> None:
        self.model, self.dim, self.dt = model, model.n_hidden, float(model.dt)
        self.detach_recurrent = detach_recurrent

    def step(self, astate, u_t):
        m = self.model
        x = astate.x
        r = m.f(x)
        r_rec = r.detach() if self.detach_recurrent else r
        x_next = leaky_update(x, r_rec @ m.W_rec.T, u_t @ m.W_in.T + m.b, m.alpha)
        if m.noise_std > 0:
            x_next = x_next + m.noise_scale * torch.randn_like(x_next)
        d = activation_derivative(m.activation, x)

        def tangent(Q: Tensor) -> Tensor:
            # the leaky update is linear in x and f(x): J Q = leaky_update(Q, W (f'(x) Q), 0)
            return leaky_update(Q, m.W_rec @ (d[..., :, None] * Q), 0.0, m.alpha)

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
        self.dim, self.dt = first.n_hidden, float(first.dt)

    def step(self, astate, u_t):
        x = astate  # [M, B, N]
        x_next = leaky_update(x, self.f(x) @ self.W_rec.transpose(1, 2),
                              u_t @ self.W_in.transpose(1, 2) + self.b[:, None], self.alpha)  # fmt: skip
        d = activation_derivative(self.activation, x)

        def tangent(Q: Tensor) -> Tensor:  # Q [M, B, N, k]
            return leaky_update(Q, self.W_rec[:, None] @ (d[..., :, None] * Q), 0.0, self.alpha)

        return x_next, tangent

    def vector(self, astate):
        return astate

    def with_vector(self, astate, v):
        return v


# -- GRU --------------------------------------------------------------------------------------------------
class GRUDynamics(Dynamics):
    """GRU ``h' = (1 - z) n + z h`` with the closed-form tangent through r, z and n."""

    def __init__(self, model: Any) -> None:
        self.model, self.dim, self.dt = model, model.n_hidden, float(model.dt)

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
            dr = _col(r * (1 - r)) * WQ[..., :N, :]
            dz = _col(z * (1 - z)) * WQ[..., N : 2 * N, :]
            dn = _col(1 - n**2) * (_col(r) * WQ[..., 2 * N :, :] + _col(hn) * dr)
            return _col(1 - z) * dn + _col(z) * Q + _col(h - n) * dz

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
    ``substeps`` neuron updates, and the tangent is their product, built from the map's ``partials``."""

    def __init__(self, model: Any) -> None:
        if model.delay_rec:
            raise ValueError("Lyapunov analysis of spiking models with delay_rec > 0 is not supported "
                             "(the delay line would be part of the state); use delay_rec=0")  # fmt: skip
        self.model, self.p = model, model.params
        self.has_u, self.has_a = self.p.du < 1.0, self.p.adaptive
        N = model.n_hidden
        self.dim = N * (1 + int(self.has_u) + int(self.has_a))
        self.dt = float(model.dt)

    def _psi(self, s: Any, ref_prev: Any) -> Tensor:
        p = self.p
        psi = pseudo_derivative(threshold_distance(p, s.v, s.a, self.model.beta), p.surrogate, p.slope, p.v_th)
        return psi * not_refractory(p, _XP, ref_prev, psi.dtype) if p.n_ref else psi

    def start(self, state):
        # dz/dv of the spike stored in ``state``: exact along a trajectory from the first step on; for a
        # given start state the refractory mask is taken as "not refractory unless ref > 0"
        ref = torch.where(state.z > 0, torch.zeros_like(state.ref), state.ref) if self.p.n_ref else state.ref
        return SpikingAnalysisState(state, self._psi(state, ref))

    def model_state(self, astate):
        return astate.state

    def _sub(self, astate: SpikingAnalysisState, i_ext: Tensor) -> tuple[SpikingAnalysisState, Tangent]:
        m, p, s, P = self.model, self.p, astate.state, astate.psi
        W, beta = m.W_rec_eff, m.beta
        s_next = m.substep(s, i_ext)
        P_next = self._psi(s_next, s.ref)
        d = partials(p, s.z, s.v)  # substep s_next w.r.t. s, at fixed spikes
        N = m.n_hidden
        has_u, has_a = self.has_u, self.has_a

        def tangent(Q: Tensor) -> Tensor:
            i = 0
            if has_u:
                du_, i = Q[..., i : i + N, :], i + N
            dv, i = Q[..., i : i + N, :], i + N
            da = Q[..., i : i + N, :] if has_a else None
            dz = _col(P) * (dv - _col(beta) * da if has_a else dv)  # d z(s-1) = psi (dv - beta da)
            du_next = W @ dz + (d.u_u * du_ if has_u else 0.0)
            dv_next = _col(d.v_v) * dv + du_next
            if d.v_z is not None:  # the reset's own path (undetached reset)
                dv_next = dv_next + _col(d.v_z) * dz
            parts = ([du_next] if has_u else []) + [dv_next] + ([d.a_a * da + dz] if has_a else [])
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
