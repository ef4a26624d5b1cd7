"""Lyapunov spectra by the QR method (Benettin et al. 1980; Shimada & Nagashima 1979; Park et al. S1.2).

Along a trajectory ``s_{t+1} = F(s_t, u_t)`` with Jacobians ``J_t``, propagate ``k`` orthonormal tangent
vectors ``Q`` as ``Q <- J_t Q`` and re-orthonormalise ``Q R = Q`` every ``reortho_every`` steps; then

    lambda_i = sum_{blocks after warm-up} log |R_ii| / (steps counted * time per step)

(natural log; the warm-up steps, in which the state settles on its attractor and Q aligns with the
Oseledets directions, are propagated but excluded from both the sum and the count).

Units: one for every body. Each body has ``dt``, the length of one input step in ms (``RateRNN``,
``GRURNN``, ``LSTMRNN``, ``SpikingRNN``, ``Loihi2RNN``; default 1 ms), and ``lyapunov_spectrum`` /
``max_lyapunov_perturbation`` report exponents **per second** by default (``unit="per_s"``:
``sum log|R_ii| / (steps * dt / 1000)``), so a rate net and its spiking twin (``mirror`` keeps the rate
net's ``dt``) give numbers in the same unit. ``unit="per_step"`` gives them per input step,
``unit="per_ms"`` per ms; an explicit ``dt=`` (any unit of time per step, e.g. ``dt=model.alpha`` for
exponents per tau of a leaky RateRNN) overrides ``unit``. Spiking exponents are those of the surrogate
Jacobian (see ``spikedyn/models/tangent.py``).

The reference ``ODESystem``s (Park et al.'s systems) have a dimensionless time (``model.dt`` is the RK4 step
in units of their time constant): for them "per_s" and "per_ms" both mean per unit of that time.

The state is the model's own (pre-activation ``x`` for RateRNN, ``h`` for GRU, ...), see ``spikedyn/models/tangent.py``.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .jacobian import Dynamics, StackedRateDynamics, dynamics_for

REDUCE = ("mean", "none")
UNITS = ("per_s", "per_ms", "per_step")


def time_per_step(dyn: Dynamics, unit: str = "per_s", dt: float | None = None) -> float:
    """The duration of one step in the unit the exponents are reported per (see the module doc)."""
    if dt is not None:
        return float(dt)
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {list(UNITS)}, got {unit!r}")
    if unit == "per_step":
        return 1.0
    if getattr(dyn, "time_unit", "ms") != "ms":  # a reference ODE system: its own time unit
        return float(dyn.dt)
    return float(dyn.dt) / 1000.0 if unit == "per_s" else float(dyn.dt)


def as_input(model: Any, u: Any, dtype: torch.dtype | None) -> tuple[Tensor, bool]:
    """``u`` as a float tensor [T, B, I] and whether it was a single trial [T, I]."""
    u = torch.as_tensor(u)
    single = u.dim() == 2
    if single:
        u = u[:, None]
    n_in = model.n_in
    if u.dim() != 3 or u.shape[-1] != n_in:
        raise ValueError(f"input must have shape [T, B, {n_in}] or [T, {n_in}], got {tuple(u.shape)}")
    return u.to(dtype=dtype or model.W_out.dtype, device=model.W_out.device), single


def in_dtype(model: Any, dtype: torch.dtype | None) -> Any:
    """``model`` itself, or a copy of it in ``dtype`` (analysis in float64 leaves the original untouched)."""
    if dtype is None or model.W_out.dtype == dtype:
        return model
    return copy.deepcopy(model).to(dtype)


def random_orthonormal(shape: tuple[int, ...], n: int, k: int, generator: torch.Generator, dtype, device) -> Tensor:
    """Random orthonormal columns ``[*shape, n, k]`` (QR of a Gaussian matrix)."""
    A = torch.randn((*shape, n, k), generator=generator, dtype=dtype).to(device)
    return torch.linalg.qr(A)[0]


def initial_astate(dyn: Dynamics, model_state: Any, x0_std: float, generator: torch.Generator) -> Any:
    """Start state of the analysis: ``model_state`` plus N(0, x0_std^2) on the continuous state vector."""
    astate = dyn.start(model_state)
    if x0_std > 0:
        v = dyn.vector(astate)
        noise = torch.randn(v.shape, generator=generator, dtype=v.dtype).to(v.device)
        astate = dyn.with_vector(astate, v + x0_std * noise)
    return astate


class seeded_rng:
    """Context manager: run with the global torch RNG seeded (model noise drawn by ``step``) and restore
    the caller's RNG state afterwards, so analyses are reproducible and side-effect free (CPU RNG; models
    with recurrent noise on a GPU draw from the CUDA RNG, which this does not seed)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __enter__(self) -> None:
        self._fork = torch.random.fork_rng(devices=[])
        self._fork.__enter__()
        torch.manual_seed(self.seed)

    def __exit__(self, *exc: Any) -> None:
        self._fork.__exit__(*exc)


def qr_exponents(
    dyn: Dynamics,
    astate: Any,
    u: Tensor,
    k: int,
    warmup: int,
    reortho_every: int = 1,
    Q: Tensor | None = None,
    generator: torch.Generator | None = None,
    dt: float | None = None,
    bar: Any = None,
) -> tuple[Tensor, Any]:
    """The QR-method core: exponents ``[..., k]`` (per ``dt``, default ``dyn.dt``: per ms for the bodies; in
    QR order, not sorted) and the final analysis state. Differentiable when called with grad enabled (used
    by gradient flossing). ``bar``: a ``spikedyn.progress`` reporter, advanced once per step."""
    T = u.shape[0]
    if not 0 <= warmup < T:
        raise ValueError(f"warmup must be in [0, T) = [0, {T}) steps, got {warmup}")
    if reortho_every < 1:
        raise ValueError(f"reortho_every must be >= 1, got {reortho_every}")
    if not 1 <= k <= dyn.dim:
        raise ValueError(f"k must be in 1..{dyn.dim} (the state dimension), got {k}")
    x = dyn.vector(astate)
    if Q is None:
        generator = generator or torch.Generator().manual_seed(0)
        Q = random_orthonormal(tuple(x.shape[:-1]), dyn.dim, k, generator, x.dtype, x.device)
    log_sum = torch.zeros((*x.shape[:-1], k), dtype=x.dtype, device=x.device)
    counted, block_start = 0, 0
    for t in range(T):
        astate, tangent = dyn.step(astate, u[t])
        Q = tangent(Q)
        if (t + 1) % reortho_every == 0 or t == T - 1:
            Q, R = torch.linalg.qr(Q)
            if block_start >= warmup:
                log_sum = log_sum + torch.log(torch.diagonal(R, dim1=-2, dim2=-1).abs())
                counted += t + 1 - block_start
            block_start = t + 1
        if bar is not None:
            bar.update(1)
    if counted == 0:
        raise ValueError(f"no steps left after the warm-up ({warmup} of {T}); use a longer input or less warmup")
    return log_sum / (counted * (dyn.dt if dt is None else dt)), astate


def _stackable(models: Sequence[Any]) -> bool:
    from ..models.rate import RateRNN

    first = models[0]
    return all(
        type(m) is RateRNN and m.n_hidden == first.n_hidden and m.n_in == first.n_in and m.alpha == first.alpha
        and m.dt == first.dt
        and m.activation == first.activation and m.noise_std == 0
        for m in models
    )  # fmt: skip


def lyapunov_spectrum(
    model: Any,
    u: Any,
    k: int | None = None,
    warmup: int | None = None,
    reortho_every: int = 1,
    dt: float | None = None,
    state: Any = None,
    x0_std: float = 0.1,
    seed: int = 0,
    dtype: torch.dtype | None = torch.float64,
    reduce: str = "mean",
    unit: str = "per_s",
    progress: bool = False,
) -> np.ndarray:
    """The ``k`` largest Lyapunov exponents of ``model`` driven by ``u``, in descending order.

    Args:
        model: a spikedyn model (RateRNN, GRURNN, LSTMRNN, SpikingRNN, an ``ODESystem``, any protocol
            model), or a list of models (RateRNNs of one shape are stepped together in one batch).
        u: input ``[T, B, I]`` (B trials, analysed in parallel) or ``[T, I]``; zeros for free-running.
        k: number of exponents (default: all, the state dimension).
        warmup: leading steps excluded from the average (default ``T // 4``).
        reortho_every: steps between QR re-orthonormalisations (1 is safest; larger is faster).
        dt: duration of one model step in the unit wanted (overrides ``unit``).
        state: start state (default ``model.init_state(B)``).
        x0_std: std of a Gaussian perturbation added to the start state, so that trajectories do not sit
            on an unstable fixed point such as the origin of an input-free tanh network (0 = none).
        seed: seeds the perturbation, the initial tangent vectors and ``init_state``'s own randomness.
        dtype: analysis precision (default float64; the model is copied, never modified). None = as is.
        reduce: "mean" averages the per-trial spectra (shape ``[k]``; ``[M, k]`` for M models),
            "none" keeps them (``[B, k]``; ``[M, B, k]``).
        unit: "per_s" (default), "per_ms" or "per_step" (module doc).
        progress: report progress over the time steps (``spikedyn.progress``: a bar on a terminal, a log
            line every 30 s otherwise; silent under the CLI's ``--json``).

    Returns:
        numpy float64 array of exponents in ``unit`` (see the module docstring), sorted descending.
    """
    if reduce not in REDUCE:
        raise ValueError(f"reduce must be one of {list(REDUCE)}, got {reduce!r}")
    if isinstance(model, (list, tuple)):
        if not model:
            raise ValueError("empty list of models")
        if _stackable(model):
            return _stacked_spectrum(list(model), u, k, warmup, reortho_every, dt, x0_std, seed, dtype, reduce,
                                     unit, progress)  # fmt: skip
        return np.stack([lyapunov_spectrum(m, u, k, warmup, reortho_every, dt, state, x0_std, seed, dtype, reduce,
                                           unit, progress) for m in model])  # fmt: skip
    model = in_dtype(model, dtype)
    u, _ = as_input(model, u, dtype)
    T, B = u.shape[:2]
    warmup = T // 4 if warmup is None else int(warmup)
    dyn = dynamics_for(model)
    k = dyn.dim if k is None else int(k)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad(), seeded_rng(seed), _bar(T, progress) as bar:
        start = model.init_state(B, generator=gen) if state is None else state
        astate = initial_astate(dyn, start, x0_std, gen)
        exps, _ = qr_exponents(dyn, astate, u, k, warmup, reortho_every, generator=gen,
                               dt=time_per_step(dyn, unit, dt), bar=bar)  # fmt: skip
    return _finish(exps, reduce)


def _bar(T: int, enabled: bool) -> Any:
    from ..progress import progress

    return progress(T, "Lyapunov spectrum", unit="step", enabled=enabled)


def _finish(exps: Tensor, reduce: str) -> np.ndarray:
    out = exps.detach().double().cpu().numpy()
    out = -np.sort(-out, axis=-1)
    return out.mean(axis=-2) if reduce == "mean" else out


def _stacked_spectrum(models, u, k, warmup, reortho_every, dt, x0_std, seed, dtype, reduce, unit,
                      progress=False) -> np.ndarray:
    models = [in_dtype(m, dtype) for m in models]
    u, _ = as_input(models[0], u, dtype)
    T, B = u.shape[:2]
    warmup = T // 4 if warmup is None else int(warmup)
    k = models[0].n_hidden if k is None else int(k)
    with torch.no_grad():
        dyn = StackedRateDynamics(models)
        starts, Qs = [], []
        for m in models:  # the same random draws, in the same order, as one model at a time
            gen = torch.Generator().manual_seed(seed)
            one = dynamics_for(m)
            astate = initial_astate(one, m.init_state(B, generator=gen), x0_std, gen)
            starts.append(one.vector(astate))
            Qs.append(random_orthonormal((B,), one.dim, k, gen, u.dtype, u.device))
        with _bar(T, progress) as bar:
            exps, _ = qr_exponents(dyn, torch.stack(starts), u, k, warmup, reortho_every, Q=torch.stack(Qs),
                                   dt=time_per_step(dyn, unit, dt), bar=bar)  # fmt: skip
    return _finish(exps, reduce)


def max_lyapunov_perturbation(
    model: Any,
    u: Any,
    eps: float = 1e-7,
    renorm_every: int = 1,
    warmup: int | None = None,
    dt: float | None = None,
    state: Any = None,
    x0_std: float = 0.1,
    seed: int = 0,
    dtype: torch.dtype | None = torch.float64,
    reduce: str = "mean",
    unit: str = "per_s",
) -> np.ndarray | float:
    """Largest Lyapunov exponent from two nearby trajectories (finite-perturbation estimate).

    A copy of the trajectory is started ``eps`` away (random direction) in the continuous state
    vector; every ``renorm_every`` steps the separation ``d`` is measured, ``log(d / eps)`` accumulated
    (after ``warmup``) and the copy pulled back to distance ``eps`` along the separation. The copy's
    discrete state (spikes, refractory counters, buffers) is reset to the reference's at each pull-back,
    so for spiking models a spike-time difference is carried only through the membrane variables.
    Works for any model with the protocol; needs no Jacobian. Same units as ``lyapunov_spectrum``.

    Returns a float (``reduce="mean"``) or one estimate per trial ``[B]``.
    """
    if reduce not in REDUCE:
        raise ValueError(f"reduce must be one of {list(REDUCE)}, got {reduce!r}")
    if not eps > 0 or renorm_every < 1:
        raise ValueError("eps must be > 0 and renorm_every >= 1")
    model = in_dtype(model, dtype)
    u, _ = as_input(model, u, dtype)
    T, B = u.shape[:2]
    warmup = T // 4 if warmup is None else int(warmup)
    if not 0 <= warmup < T:
        raise ValueError(f"warmup must be in [0, T) = [0, {T}) steps, got {warmup}")
    dyn = dynamics_for(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad(), seeded_rng(seed):
        start = model.init_state(B, generator=gen) if state is None else state
        ref = initial_astate(dyn, start, x0_std, gen)
        x = dyn.vector(ref)
        direction = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
        pert = dyn.with_vector(ref, x + eps * direction / direction.norm(dim=-1, keepdim=True))
        log_sum = torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)
        counted, block_start = 0, 0
        for t in range(T):
            rng = torch.get_rng_state()
            ref, _ = dyn.step(ref, u[t])
            torch.set_rng_state(rng)  # both copies see the same noise (for models with recurrent noise)
            pert, _ = dyn.step(pert, u[t])
            if (t + 1) % renorm_every == 0 or t == T - 1:
                xr, xp = dyn.vector(ref), dyn.vector(pert)
                diff = xp - xr
                d = diff.norm(dim=-1).clamp(min=1e-300)
                if block_start >= warmup:
                    log_sum = log_sum + torch.log(d / eps)
                    counted += t + 1 - block_start
                pert = dyn.with_vector(ref, xr + eps * diff / d[..., None])
                block_start = t + 1
    if counted == 0:
        raise ValueError(f"no steps left after the warm-up ({warmup} of {T})")
    lam = (log_sum / (counted * time_per_step(dyn, unit, dt))).cpu().numpy()
    return float(lam.mean()) if reduce == "mean" else lam
