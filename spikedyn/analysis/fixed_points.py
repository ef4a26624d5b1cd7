"""Fixed points and slow points of a network under constant input (Golub & Sussillo 2018; McMahan et al.
2024 Sec. 2.4).

For one input step ``s' = F(s, u)`` of a body and a constant input ``u``, ``fixed_points`` minimises the
speed ``q(s) = 1/2 ||F(s) - s||^2`` from many initial states at once, with a batched Levenberg-Marquardt
iteration on the residual ``F(s) - s`` (the step Jacobian comes from the body's own tangent map,
``model.tangent_dynamics()``: one definition of each equation). States with ``q < tol`` are fixed points;
with ``slow_tol`` set, the local minima with ``q < slow_tol`` are returned as slow points too. Candidates
closer than ``unique_tol`` are merged (the slowest kept), and each point gets the eigenvalues of the step
Jacobian (a discrete map: stable when every ``|lambda| < 1``, up to ``1e-6``, so the neutral direction of a
line attractor counts as stable).

The state ``s`` is the body's own: ``x`` (pre-activation) for ``RateRNN``, ``h`` for ``GRURNN``, ``[h, c]``
for ``LSTMRNN``, ``x`` for the reference ODE systems (the RK4 map of ``dx/dt``, whose fixed points are
the field's zeros). ``FixedPoints.activity`` gives the points in the space ``analysis.activity`` records
(``f(x)``, ``h``), where topologies and similarities are compared.

**Spiking bodies.** Spikes have no fixed points: the membrane map is discontinuous and never settles.
For a ``SpikingRNN`` (or ``Loihi2RNN``, through its float twin) we define the fixed points as those of its
*rate-equivalent map* (``RateEquivalentMap``), a mean-field reduction on the readout's filtered rate
``r̄`` (spikes per substep, the signal ``W_out`` reads and ``activity`` records). In steady state every
neuron fires at a constant rate ``r``; the synaptic current then settles at ``u* = (W_rec r + W_in x)/du``
(``du = 1``: ``u* = W_rec r + W_in x``) and the neuron fires at ``phi(u* + b)``, where ``phi`` is the
neuron's own f-I curve (spikes per substep under a constant drive into ``v``, with its leak, reset,
refractory period and adaptation). For integrate-and-fire neurons with a subtractive reset (``dv = 0``,
what ``spikedyn.mirror`` builds) ``phi(c) = clip(c / v_th, 0, 1)`` exactly; otherwise ``phi`` is
tabulated by simulating isolated neurons with the body's own neuron update and interpolated. The map
over one input step is ``r' = (1 - a) r + a phi(u*(r) + b)`` with ``a = 1 - (1 - d)^substeps`` and ``d`` the
synaptic decay ``du`` (or, with ``du = 1``, the membrane decay ``dv``; with neither, the readout's
``1 - kappa``); its fixed points ``r*`` do not depend on ``a``, its eigenvalues do. For a ``mirror`` twin
``d = du`` gives ``a = alpha``: the twin's map is the rate parent's map through the mirror's linearisation
``f(x) ~= lam clip(k x + c, 0, 1)``, and its fixed points are ``r* = f(x*) / lam`` wherever that
linearisation is exact (relu units below ``lam``). ``tests/test_fixed_points.py`` checks this and that the
spiking network's own ``r̄`` settles at the stable ``r*``. Delays (``delay_in``, ``delay_rec``) do not
move steady states and are ignored by the map.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["FixedPoints", "RateEquivalentMap", "fixed_points"]

_STABLE_TOL = 1e-6  # |lambda| < 1 + this counts as stable (a line attractor's neutral direction)


# f-I tables of the rate-equivalent map, shared by all maps of the same neuron constants (a fixed lattice of
# drives, so a table read from here gives the same values as one built afresh); at most _FI_MAX of them
_FI_TABLES: dict[tuple, tuple[int, Tensor]] = {}
_FI_MAX = 16
_MAX_DRIVE = 64  # drives beyond +-64 v_th read the table's edge (the f-I curve is flat there)
_BLOCK = 1024  # tables span whole blocks of lattice points (4 thresholds at 256 points per threshold)


@dataclass(frozen=True)
class FixedPoints:
    """Fixed points of one network at one constant input (``fixed_points``).

    Attributes:
        points: ``[K, n]`` states (the body's state vector; see the module doc), slowest first.
        speed: ``[K]`` ``q = 1/2 ||F(s) - s||^2`` per input step.
        eigenvalues: ``[K, n]`` complex eigenvalues of the step Jacobian, largest modulus first.
        stable: ``[K]`` every ``|lambda| < 1`` (+1e-6).
        activity: ``[K, N]`` the points in activity space (rates ``f(x)``, ``h``, or ``r̄``).
        u_const: ``[I]`` the input.
        space: what ``points`` holds ("x", "h", "h,c", "rbar").
        tol: the speed below which a point counts as fixed.
        slow: the slow points (``q < slow_tol``, fixed points included) when ``slow_tol`` was given.
        n_inits, n_converged: initial states used; of them, how many reached ``q < tol`` (before merging).
    """

    points: Tensor
    speed: Tensor
    eigenvalues: Tensor
    stable: Tensor
    activity: Tensor
    u_const: Tensor
    space: str
    tol: float
    slow: FixedPoints | None = None
    n_inits: int = 0
    n_converged: int = 0

    def __len__(self) -> int:
        return int(self.points.shape[0])

    @property
    def n_stable(self) -> int:
        """How many of the points are stable (attractors)."""
        return int(self.stable.sum())

    @property
    def attractors(self) -> Tensor:
        """``[K_s, N]`` the stable points in activity space."""
        return self.activity[self.stable]

    @property
    def spectral_radius(self) -> Tensor:
        """``[K]`` the largest eigenvalue modulus at each point."""
        return self.eigenvalues.abs().amax(-1) if len(self) else self.speed.new_zeros(0)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers (JSON-ready): points, speed, stability, spectral radius, the slow points."""
        out = {
            "u_const": self.u_const.tolist(), "space": self.space, "tol": self.tol, "n_points": len(self),
            "n_stable": self.n_stable, "points": self.points.tolist(), "activity": self.activity.tolist(),
            "speed": self.speed.tolist(), "stable": self.stable.tolist(),
            "spectral_radius": self.spectral_radius.tolist(), "n_inits": self.n_inits,
            "n_converged": self.n_converged,
        }  # fmt: skip
        if self.slow is not None:
            out["slow"] = self.slow.to_dict()
        return out


# -- the maps ---------------------------------------------------------------------------------------------
class _BodyMap:
    """``F(s)`` and its Jacobian for a non-spiking body, through its tangent dynamics."""

    def __init__(self, model: Any) -> None:
        from .jacobian import dynamics_for

        self.model = model
        self.dyn = dynamics_for(model)
        self.dim = int(self.dyn.dim)
        kind = type(model).__name__
        self.space = {"RateRNN": "x", "GRURNN": "h", "LSTMRNN": "h,c"}.get(kind, "x")

    def __call__(self, s: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
        B = s.shape[0]
        base = self.dyn.start(self.model.init_state(B))
        nxt, tangent = self.dyn.step(self.dyn.with_vector(base, s), u.expand(B, -1))
        eye = torch.eye(self.dim, dtype=s.dtype, device=s.device).expand(B, self.dim, self.dim)
        return self.dyn.vector(nxt), tangent(eye)

    def activity(self, s: Tensor) -> Tensor:
        m, N = self.model, self.model.n_hidden
        if hasattr(m, "f") and self.space == "x" and hasattr(m, "activation"):
            return m.f(s)
        return s[..., :N]

    def trajectories(self, u: Tensor, T: int, B: int, gen: torch.Generator) -> Tensor:
        """States ``[T, B, n]`` under ``u [T, B, I]`` from the model's initial states, jittered."""
        base = self.dyn.start(self.model.init_state(B, generator=gen))
        v = self.dyn.vector(base)
        v = v + torch.randn(v.shape, generator=gen, dtype=v.dtype).to(v.device)
        state, out = self.dyn.with_vector(base, v), []
        for t in range(T):
            state, _ = self.dyn.step(state, u[t])
            out.append(self.dyn.vector(state))
        return torch.stack(out)


class RateEquivalentMap:
    """The rate-equivalent (mean-field) map of a spiking body on its filtered rate ``r̄`` (module doc).

    ``phi(c)`` is the f-I curve of one neuron (spikes per substep for a constant drive ``c`` into ``v``);
    ``closed_form`` tells whether it is the exact ``clip(c / v_th, 0, 1)`` of an integrate-and-fire
    neuron with a subtractive reset or a table simulated with the body's own neuron update.
    """

    space = "rbar"

    def __init__(self, model: Any, per_threshold: int = 256, sim_substeps: int = 4000) -> None:
        if hasattr(model, "as_float"):  # Loihi2RNN: the float body with the same constants
            model = model.as_float()
        p = model.params
        if p.du <= 0.0:
            raise ValueError("the rate-equivalent map needs a decaying synaptic current (du > 0); "
                             "with du = 0 the current integrates forever and has no steady state")  # fmt: skip
        self.model, self.p = model, p
        self.dim = model.n_hidden
        self.scale = 1.0 / p.du  # steady-state current per unit of input per substep
        d = p.du if p.du < 1.0 else (p.dv if p.dv > 0.0 else 1.0 - p.kappa)
        d = min(max(d, 1e-12), 1.0)
        self.a = 1.0 - (1.0 - d) ** model.substeps  # the map's step over one input step
        beta = model.beta.detach()
        self.adaptive = (beta > 0) if p.adaptive else torch.zeros(model.n_hidden, dtype=torch.bool)
        self.closed_form = p.dv == 0.0 and p.reset == "subtract" and p.n_ref == 0 and not p.v_leak and not p.adaptive
        self.h = p.v_th / int(per_threshold)  # the table's lattice: drives c_k = k h
        self.per_threshold, self.sim_substeps = int(per_threshold), int(sim_substeps)
        self._table: tuple[int, Tensor] | None = None  # (k0, rates [kinds, G]) for c = (k0 + i) h

    # f-I curve
    def _table_key(self) -> tuple:
        kinds = (False, True) if bool(self.adaptive.any()) else (False,)
        return (self.p, float(self.model.beta_adapt) if kinds[-1] else None, kinds, self.per_threshold,
                self.sim_substeps)  # fmt: skip

    def _build_table(self, k0: int, k1: int, dtype: torch.dtype, device: Any) -> None:
        """The f-I table on the lattice points ``k0..k1`` (``k0`` a multiple of ``_BLOCK`` and <= 0, so that
        the running maximum below starts where no neuron fires and every table agrees where they overlap),
        shared through ``_FI_TABLES`` by every map of the same neuron constants."""
        from spikedyn.hardware.neuron import neuron_update

        from ..models.spiking import torch_ops

        key = self._table_key()
        cached = _FI_TABLES.get(key)
        if cached is not None:
            ck0, crates = cached
            if ck0 <= k0 and k1 <= ck0 + crates.shape[-1] - 1:
                self._table = (ck0, crates.to(device=device, dtype=dtype))
                return
            k0, k1 = min(k0, ck0), max(k1, ck0 + crates.shape[-1] - 1)
        p, m = self.p, self.model
        c = torch.arange(k0, k1 + 1, dtype=torch.float64) * self.h
        ops = torch_ops(p.surrogate, p.slope, p.v_th)
        rates = []
        with torch.no_grad():
            for adaptive in key[2]:
                beta = torch.full_like(c, float(m.beta_adapt) if adaptive else 0.0)
                z = v = a = ref = torch.zeros_like(c)
                u0 = torch.zeros_like(c)  # drive enters v directly: the current is part of c
                count = torch.zeros_like(c)
                warm = self.sim_substeps // 4
                for s in range(warm + self.sim_substeps):
                    _, v, z, a, ref = neuron_update(p, ops, u0, v, z, a, ref, torch.zeros_like(c), c, beta)
                    if s >= warm:
                        count = count + z
                r = count / self.sim_substeps
                rates.append(torch.cummax(r, 0).values)  # f-I curves are non-decreasing
        table = torch.stack(rates)  # [kinds, G]
        if len(_FI_TABLES) >= _FI_MAX:
            _FI_TABLES.pop(next(iter(_FI_TABLES)))
        _FI_TABLES[key] = (k0, table)
        self._table = (k0, table.to(device=device, dtype=dtype))

    def phi(self, c: Tensor) -> tuple[Tensor, Tensor]:
        """``phi(c)`` and ``phi'(c)`` for drives ``c [B, N]`` (the table interpolated linearly)."""
        if self.closed_form:
            x = c / self.p.v_th
            inside = (x > 0) & (x < 1)
            return x.clamp(0.0, 1.0), inside.to(c.dtype) / self.p.v_th
        cap = _MAX_DRIVE * self.per_threshold  # beyond +-64 thresholds the curve is taken as flat
        pos = (c / self.h).clamp(-cap, cap)  # lattice coordinate
        lo, hi = math.floor(float(pos.min())), math.ceil(float(pos.max())) + 1
        have = self._table
        if have is None or lo < have[0] or hi > have[0] + have[1].shape[-1] - 1:
            span = max(hi - lo, self.per_threshold)  # room around the drives seen so far
            k0 = min(0, math.floor((lo - span) / _BLOCK) * _BLOCK)
            k1 = math.ceil((hi + span) / _BLOCK) * _BLOCK
            if have is not None:
                k0, k1 = min(k0, have[0]), max(k1, have[0] + have[1].shape[-1] - 1)
            self._build_table(k0, k1, c.dtype, c.device)
        k0, rates = self._table
        kind = self.adaptive.to(device=c.device).long() if rates.shape[0] > 1 else torch.zeros(
            c.shape[-1], dtype=torch.long, device=c.device)  # fmt: skip
        G = rates.shape[-1]
        pos = (pos - k0).clamp(0, G - 1 - 1e-9)
        i0 = pos.floor().long()
        w = pos - i0
        table = rates[kind]  # [N, G]
        N = c.shape[-1]
        idx = torch.arange(N, device=c.device)
        r0, r1 = table[idx, i0], table[idx, i0 + 1]
        slope = (r1 - r0) / self.h
        return r0 + w * (r1 - r0), slope

    def drive(self, r: Tensor, u: Tensor) -> Tensor:
        m = self.model
        return (r @ m.W_rec_eff.T + u @ m.W_in.T) * self.scale + m.b

    def __call__(self, r: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
        m = self.model
        c = self.drive(r, u.expand(r.shape[0], -1))
        rho, dphi = self.phi(c)
        F = (1.0 - self.a) * r + self.a * rho
        eye = torch.eye(self.dim, dtype=r.dtype, device=r.device)
        J = (1.0 - self.a) * eye + self.a * (dphi[..., :, None] * m.W_rec_eff * self.scale)
        return F, J

    def activity(self, r: Tensor) -> Tensor:
        return r

    def trajectories(self, u: Tensor, T: int, B: int, gen: torch.Generator) -> Tensor:
        """The spiking network's own filtered rate ``r̄ [T, B, N]`` under ``u`` (real trajectories), from
        membrane potentials drawn uniformly in ``[0, v_th)`` and synaptic currents in ``[-v_th, v_th)``
        per substep (so that the trajectories start at rates anywhere from silent to saturated)."""
        m = self.model
        state = m.init_state(B)

        def uniform(lo: float, hi: float) -> Tensor:
            r = torch.rand(state.v.shape, generator=gen, dtype=state.v.dtype).to(state.v.device)
            return lo + (hi - lo) * r

        th = self.p.v_th
        with torch.no_grad():
            rbars, _, _ = m._rollout(u.to(m.dtype), state._replace(v=uniform(0.0, th), u=uniform(-th, th)))
        return torch.stack(rbars)


# -- the solver -------------------------------------------------------------------------------------------
def _levenberg_marquardt(fmap: Any, s: Tensor, u: Tensor, max_iter: int, q_stop: float,
                         bar: Any) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Batched LM on ``r(s) = F(s) - s``: returns the final states, their speed q and Jacobians ``dF/ds``."""
    n = s.shape[-1]
    eye = torch.eye(n, dtype=s.dtype, device=s.device)

    def evaluate(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        F, J = fmap(x, u)
        r = F - x
        return r, J, 0.5 * (r * r).sum(-1)

    r, J, q = evaluate(s)
    lam = torch.full_like(q, 1e-3)
    done = q < q_stop  # each state stops once it is slower than q_stop
    for _ in range(max_iter):
        if bool(done.all()):
            break
        Jr = J - eye
        g = (Jr.transpose(-1, -2) @ r[..., None])[..., 0]
        H = Jr.transpose(-1, -2) @ Jr
        scale = H.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(1e-12)
        A = H + (lam * scale)[:, None, None] * eye
        step = torch.linalg.solve(A, -g)
        bad = ~torch.isfinite(step).all(-1)
        step = torch.where(bad[:, None], torch.zeros_like(step), step)
        r_new, J_new, q_new = evaluate(s + step)
        accept = (q_new < q) & torch.isfinite(q_new) & ~bad & ~done
        s = torch.where(accept[:, None], s + step, s)
        r = torch.where(accept[:, None], r_new, r)
        J = torch.where(accept[:, None, None], J_new, J)
        q = torch.where(accept, q_new, q)
        lam = torch.where(accept, lam / 3.0, torch.where(done, lam, lam * 4.0)).clamp(1e-12, 1e12)
        gnorm = g.norm(dim=-1)
        done = done | (q < q_stop) | (lam >= 1e12) | (gnorm < 1e-14 * (1.0 + s.norm(dim=-1)))
        bar.update(1, converged=int((q < q_stop).sum()))
    return s, q, J


def _unique(s: Tensor, q: Tensor, tol: float) -> Tensor:
    """Indices of the candidates kept after merging those closer than ``tol`` (the slowest of a group)."""
    order = torch.argsort(q)
    kept: list[int] = []
    if order.numel() == 0:
        return order
    D = torch.cdist(s[order], s[order])
    alive = torch.ones(order.numel(), dtype=torch.bool, device=s.device)
    for i in range(order.numel()):
        if alive[i]:
            kept.append(i)
            alive &= D[i] > tol
    return order[torch.tensor(kept, dtype=torch.long, device=s.device)]


def _as_input(model: Any, u_const: Any, dtype: torch.dtype, device: Any) -> Tensor:
    u = torch.as_tensor(u_const, dtype=dtype).to(device).reshape(-1)
    if u.numel() == 1 and model.n_in > 1:
        raise ValueError(f"u_const must give all {model.n_in} inputs of this model, e.g. [0.2] + [0.0] * "
                         f"{model.n_in - 1}")  # fmt: skip
    if u.numel() != model.n_in:
        raise ValueError(f"u_const has {u.numel()} values; the model has {model.n_in} inputs")
    if not torch.isfinite(u).all():
        raise ValueError("u_const must be finite")
    return u[None]  # [1, I]


def _analysis_copy(model: Any) -> Any:
    """A float64, noise-free copy (fixed points are those of the deterministic map)."""
    m = copy.deepcopy(model).to(torch.float64)
    if getattr(m, "noise_std", 0.0):
        m.noise_std = 0.0
    return m.requires_grad_(False)


def _check_body(model: Any) -> None:
    if type(model).__name__ == "Population":
        raise TypeError("fixed_points analyses one network: pass pop.member(i) for each member of a Population")


def _map_for(model: Any) -> Any:
    if hasattr(model, "filtered_spikes"):
        return RateEquivalentMap(model)
    if not hasattr(model, "init_state") or not hasattr(model, "step"):
        raise TypeError(f"{type(model).__name__} is not a spikedyn body (init_state, step)")
    return _BodyMap(model)


def _sample_states(fmap: Any, u: Tensor, n: int, states: Any, inputs: Any, steps: int, gen: torch.Generator,
                   dtype: torch.dtype, device: Any) -> Tensor:  # fmt: skip
    """``n`` initial states: from ``states``, else sampled along trajectories under ``inputs`` (trials) or
    under the constant input from jittered initial states."""
    if states is not None:
        S = torch.as_tensor(states if not hasattr(states, "detach") else states.detach(), dtype=dtype).to(device)
        S = S.reshape(-1, S.shape[-1])
        if S.shape[-1] != fmap.dim:
            raise ValueError(f"states must have {fmap.dim} values per row ({fmap.space}), got {S.shape[-1]}")
    else:
        if inputs is not None:
            U = torch.as_tensor(getattr(inputs, "inputs", inputs), dtype=dtype).to(device)
            if U.ndim != 3:
                raise ValueError(f"inputs must be trials [T, B, I], got shape {tuple(U.shape)}")
            if U.shape[-1] != fmap.model.n_in:
                raise ValueError(f"inputs have {U.shape[-1]} channels; the model has {fmap.model.n_in} inputs")
        else:
            B = max(8, min(n, 64))
            U = u.expand(steps, B, -1).contiguous()
        traj = fmap.trajectories(U, U.shape[0], U.shape[1], gen)
        S = traj.reshape(-1, traj.shape[-1])
    S = S[torch.isfinite(S).all(-1)]
    if S.shape[0] == 0:
        raise ValueError("no finite initial states to start from")
    idx = torch.randint(0, S.shape[0], (n,), generator=gen).to(S.device) if S.shape[0] > n else torch.arange(
        S.shape[0], device=S.device)  # fmt: skip
    return S[idx].clone()


def _collect(fmap: Any, s: Tensor, q: Tensor, J: Tensor, thresh: float, unique_tol: float, u: Tensor,
             tol: float, n_inits: int) -> FixedPoints:  # fmt: skip
    ok = q < thresh
    s, q, J = s[ok], q[ok], J[ok]
    keep = _unique(s, q, unique_tol)
    s, q, J = s[keep], q[keep], J[keep]
    if s.shape[0]:
        ev = torch.linalg.eigvals(J)
        ev = torch.gather(ev, -1, torch.argsort(ev.abs(), dim=-1, descending=True))
    else:
        ev = torch.zeros(0, s.shape[-1], dtype=torch.complex128)
    stable = ev.abs().amax(-1) < 1.0 + _STABLE_TOL if s.shape[0] else torch.zeros(0, dtype=torch.bool)
    act = fmap.activity(s) if s.shape[0] else s.new_zeros(0, fmap.model.n_hidden)
    return FixedPoints(points=s.cpu(), speed=q.cpu(), eigenvalues=ev.cpu(), stable=stable.cpu(), activity=act.cpu(),
                       u_const=u[0].cpu(), space=fmap.space, tol=float(tol), n_inits=n_inits,
                       n_converged=int(ok.sum()))  # fmt: skip


def _polish(fmap: Any, s: Tensor, u: Tensor) -> Tensor:
    """scipy's ``least_squares`` (trust region, our Jacobian) from each LM end point."""
    from scipy.optimize import least_squares

    out = s.clone()
    for i in range(s.shape[0]):

        def fun(x: np.ndarray) -> np.ndarray:
            xt = torch.as_tensor(x, dtype=s.dtype, device=s.device)[None]
            F, _ = fmap(xt, u)
            return (F - xt)[0].cpu().numpy()

        def jac(x: np.ndarray) -> np.ndarray:
            xt = torch.as_tensor(x, dtype=s.dtype, device=s.device)[None]
            _, J = fmap(xt, u)
            return (J[0] - torch.eye(J.shape[-1], dtype=J.dtype, device=J.device)).cpu().numpy()

        res = least_squares(fun, s[i].cpu().numpy(), jac=jac, xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=200)
        out[i] = torch.as_tensor(res.x, dtype=s.dtype, device=s.device)
    return out


@torch.no_grad()
def fixed_points(
    model: Any,
    u_const: Any,
    n_inits: int = 256,
    tol: float = 1e-8,
    slow_tol: float | None = None,
    *,
    states: Any = None,
    inputs: Any = None,
    seed: int = 0,
    max_iter: int = 200,
    init_noise: float = 0.0,
    unique_tol: float = 1e-3,
    steps: int = 200,
    polish: bool = False,
    progress: bool = True,
) -> FixedPoints:
    """Fixed points (and slow points) of ``model`` under the constant input ``u_const`` (module doc).

    Args:
        model: a ``RateRNN``, ``GRURNN``, ``LSTMRNN``, reference ``ODESystem`` or any body with
            ``tangent_dynamics``; a ``SpikingRNN`` / ``Loihi2RNN`` (its rate-equivalent map on ``r̄``). For a
            ``Population``, call it on ``pop.member(i)``.
        u_const: the input, ``[I]`` (a number for one input).
        n_inits: initial states, minimised all at once (batched on the model's device).
        tol: speed ``q = 1/2 ||F(s) - s||^2`` (per input step) below which a point is fixed (McMahan et al.
            2024: 1e-8).
        slow_tol: also return the slow points as ``.slow``: a second minimisation from the same initial
            states that stops each one as soon as ``q < slow_tol`` (McMahan et al.: 1 on a line attractor),
            so states on a slow manifold stay there instead of sliding to its fixed points.
        states: initial states ``[M, n]`` (or ``[T, B, n]``) to start from; by default they are sampled
            along real trajectories: under ``inputs`` (trials ``[T, B, I]`` or a TaskBatch) if given, else
            ``steps`` steps under ``u_const`` from the model's initial states jittered by N(0, 1).
        seed: seeds the sampling of initial states and ``init_noise``. max_iter: LM iterations.
        init_noise: std of Gaussian noise added to the initial states (state units).
        unique_tol: candidates closer than this (Euclidean, state units) are one point.
        steps: length of the constant-input trajectories (input steps).
        polish: refine each end point with scipy's ``least_squares`` (slower; LM alone reaches 1e-20).
        progress: show a progress bar (``spikedyn.progress``).
    """
    from spikedyn.progress import progress as _progress

    if n_inits < 1 or max_iter < 1:
        raise ValueError(f"n_inits and max_iter must be >= 1, got {n_inits}, {max_iter}")
    if not tol > 0 or (slow_tol is not None and not slow_tol >= tol):
        raise ValueError(f"need tol > 0 and slow_tol >= tol (or None), got tol={tol}, slow_tol={slow_tol}")
    if not unique_tol > 0:
        raise ValueError(f"unique_tol must be > 0, got {unique_tol}")
    _check_body(model)
    m = _analysis_copy(model)
    fmap = _map_for(m)
    device = next(iter(m.parameters())).device
    dtype = torch.float64
    u = _as_input(m, u_const, dtype, device)
    gen = torch.Generator().manual_seed(int(seed))
    s0 = _sample_states(fmap, u, int(n_inits), states, inputs, int(steps), gen, dtype, device)
    if init_noise:
        s0 = s0 + init_noise * torch.randn(s0.shape, generator=gen, dtype=dtype).to(device)
    runs = [("fixed points", min(tol, 1e-16) * 1e-4, tol)]  # converge far below tol
    if slow_tol is not None:  # stop each state as soon as it is slower than slow_tol (McMahan et al.'s slow points)
        runs.append(("slow points", slow_tol, slow_tol))
    found = []
    for desc, q_stop, thresh in runs:
        with _progress(max_iter, desc, unit="iter", enabled=progress) as bar:
            s, q, J = _levenberg_marquardt(fmap, s0, u, int(max_iter), q_stop, bar)
        if polish and thresh == tol:
            s = _polish(fmap, s, u)
            F, J = fmap(s, u)
            q = 0.5 * ((F - s) ** 2).sum(-1)
        found.append(_collect(fmap, s, q, J, thresh, unique_tol, u, thresh, s0.shape[0]))
    return replace(found[0], slow=found[1]) if slow_tol is not None else found[0]

