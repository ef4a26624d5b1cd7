"""Initialisations of the recurrent weights, and gradient-flossing pretraining.

All functions change ``model`` in place (under ``torch.no_grad``) and return it, so they chain:
``pta(RateRNN(10, 128, 9))``. "Recurrent weights" means ``W_rec`` of RateRNN / SpikingRNN, and each
gate block of ``W_rec`` for GRURNN (3 blocks: r, z, n) and LSTMRNN (4 blocks: i, f, g, o).

| function | W_rec | source |
| --- | --- | --- |
| ``gaussian(model, gain)`` | N(0, gain^2 / N) | Liu et al.'s "initial gain" |
| ``orthogonal(model, gain=1)`` | gain x Haar-random orthogonal | Park et al. Table S1 "W^T W = I" |
| ``zeros(model)`` | 0 (a continuous attractor at rest, Park et al. Sec. 2.6) | |
| ``torch_default(model)`` | U(-1/sqrt(N), 1/sqrt(N)) as ``torch.nn.RNN`` | Park et al. Table S1 "def." |
| ``pta(model, ...)`` | block-diagonal scaled rotations (Eq. 19) | Park et al. Sec. 2.8 |
| ``flossing(model, inputs, steps, k)`` | top-k exponents pushed to 0 | Liu et al. App. B, Engelken 2023 |
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .analysis.pta_map import REGIMES, ZERO_TOL, pta_region_map, rotation_blocks

__all__ = [
    "DEFAULT_ALPHA_MAX", "FlossingResult", "flossing", "flossing_loss", "gaussian", "orthogonal", "pta",
    "pta_matrix", "torch_default", "zeros",
]  # fmt: skip


def _generator(seed: int | None) -> torch.Generator | None:
    return None if seed is None else torch.Generator().manual_seed(int(seed))


def _n_blocks(model: Any) -> int:
    """Gate blocks stacked in W_rec (1 for RateRNN/SpikingRNN, 3 for GRU, 4 for LSTM)."""
    W, N = model.W_rec, model.n_hidden
    if W.dim() != 2 or W.shape[1] != N or W.shape[0] % N:
        raise ValueError(f"{type(model).__name__}.W_rec has shape {tuple(W.shape)}; expected [k*N, N]")
    return W.shape[0] // N


def _finish(model: Any) -> Any:
    mask = getattr(model, "rec_mask", None)  # SpikingRNN without self-connections
    if mask is not None and mask.numel():
        model.W_rec.mul_(mask)
    return model


@torch.no_grad()
def gaussian(model: Any, gain: float = 1.0, seed: int | None = None) -> Any:
    """``W_rec ~ N(0, gain^2 / N)`` (each gate block independently)."""
    N = model.n_hidden
    W = torch.randn(model.W_rec.shape, generator=_generator(seed), dtype=torch.float64) * (gain / math.sqrt(N))
    model.W_rec.copy_(W)
    return _finish(model)


def haar_orthogonal(n: int, generator: torch.Generator | None = None) -> Tensor:
    """A Haar-random n x n orthogonal matrix (QR of a Gaussian matrix with the sign of diag(R) fixed)."""
    Q, R = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
    return Q * torch.sign(torch.diagonal(R))[None, :]


@torch.no_grad()
def orthogonal(model: Any, gain: float = 1.0, seed: int | None = None) -> Any:
    """``W_rec = gain * O`` with O Haar-random orthogonal (each gate block independently)."""
    gen, N = _generator(seed), model.n_hidden
    model.W_rec.copy_(torch.cat([gain * haar_orthogonal(N, gen) for _ in range(_n_blocks(model))]))
    return _finish(model)


@torch.no_grad()
def zeros(model: Any) -> Any:
    """``W_rec = 0``."""
    model.W_rec.zero_()
    return model


@torch.no_grad()
def torch_default(model: Any, seed: int | None = None) -> Any:
    """``W_rec ~ U(-1/sqrt(N), 1/sqrt(N))``: PyTorch's default for ``nn.RNN``/``nn.GRU``/``nn.LSTM``."""
    k = 1.0 / math.sqrt(model.n_hidden)
    W = torch.rand(model.W_rec.shape, generator=_generator(seed), dtype=torch.float64) * (2 * k) - k
    model.W_rec.copy_(W)
    return _finish(model)


# -- PTA (Park et al. Eq. 19) ---------------------------------------------------------------------------------
def pta_matrix(n: int, alphas: Any, thetas: Any) -> Tensor:
    """Eq. 19: block-diagonal ``alpha_i R(theta_i)`` (n // 2 blocks; an odd last unit gets a zero row)."""
    m = n // 2
    a = torch.as_tensor(np.broadcast_to(np.asarray(alphas, dtype=np.float64), (m,)).copy())
    t = torch.as_tensor(np.broadcast_to(np.asarray(thetas, dtype=np.float64), (m,)).copy())
    W = torch.zeros(n, n, dtype=torch.float64)
    blocks = rotation_blocks(a, t)
    for i in range(m):
        W[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = blocks[i]
    return W


def default_regime(model: Any) -> str:
    """"discrete" for alpha = 1 rate nets (Eq. 21), "continuous" for leaky ones (Eq. 20), "gru" for GRUs."""
    from .models.gru import GRURNN
    from .models.rate import RateRNN

    if isinstance(model, GRURNN):
        return "gru"
    if isinstance(model, RateRNN):
        return "discrete" if model.alpha == 1.0 else "continuous"
    raise ValueError(f"pta supports RateRNN (tanh) and GRURNN, not {type(model).__name__}")


# Default upper bound on the sampled block gains: blocks just past the onset of oscillation (discrete
# alpha > 1, continuous alpha cos(theta) > 1, GRU alpha > 2). The maps extend further (strongly saturated
# oscillators), but in a copy-memory pilot (N = 128, delay 100, lr 1e-3) sampling discrete blocks up to
# alpha = 3 left the loss at 1.1-1.4 nats after 600 steps, against 0.35 after 250 steps with alpha <= 1.5.
DEFAULT_ALPHA_MAX = {"discrete": 1.5, "continuous": 2.0, "gru": 3.5}


def sample_pta_parameters(m: int, regime: str, seed: int | None = None, alpha_max: float | None = None,
                          tol: float = ZERO_TOL) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``m`` (alpha, theta) pairs drawn uniformly from the grid points of the regime's zero-exponent region
    with alpha <= ``alpha_max`` (default ``DEFAULT_ALPHA_MAX[regime]``; ``math.inf`` for the whole map)."""
    alpha_max = DEFAULT_ALPHA_MAX[regime] if alpha_max is None else alpha_max
    points = pta_region_map(regime).zero_points(tol, alpha_max)
    if not len(points):
        raise ValueError(f"the {regime} region map has no zero-exponent points (alpha_max={alpha_max}, tol={tol})")
    idx = np.random.default_rng(seed).integers(len(points), size=m)
    return points[idx, 0], points[idx, 1]


@torch.no_grad()
def pta(model: Any, alphas: Any = None, thetas: Any = None, regime: str | None = None, seed: int | None = None,
        alpha_max: float | None = None, tol: float = ZERO_TOL) -> Any:  # fmt: skip
    """Periodic/quasi-periodic toroidal attractor initialisation (Park et al. Eq. 19-21).

    ``W_rec`` becomes block-diagonal with N/2 scaled rotations ``alpha_i R(theta_i)`` (theta in rad),
    i.e. N/2 independent oscillators. Without ``alphas``/``thetas`` each pair is drawn uniformly from
    the grid points where the 2x2 block's leading Lyapunov exponent is zero (``pta_region_map``):

    - RateRNN (tanh): ``regime="discrete"`` (alpha = 1, Eq. 21) or ``"continuous"`` (leaky, Eq. 20); the
      default follows the model's alpha. RateRNN's ``x' = -x + W tanh(x)`` is conjugate to Eq. 20's
      ``x' = -x + tanh(W x)`` (``y = W x``), so the same map applies.
    - GRURNN: the candidate weights ``W_rec[2N:]`` (W_hn) get the rotations; the gate recurrent weights
      ``W_rec[:2N]`` and all hidden biases (``b``, ``b_hn``) are set to 0, so that at rest the gates sit at
      r = z = 1/2 and each pair is the independent oscillator ``h' = h/2 + tanh(W_i h / 2)/2`` (regime
      ``"gru"``, its own map). Input weights are untouched; training may then use the gates freely.

    Args:
        alphas, thetas: per-block gains and angles (scalars broadcast; length N // 2).
        regime: "discrete" | "continuous" | "gru" (which region map to sample from).
        seed: seeds the sampling. alpha_max: only sample blocks with alpha <= alpha_max (default
            ``DEFAULT_ALPHA_MAX[regime]``: 1.5 discrete, 2.0 continuous, 3.5 GRU; ``math.inf``: all).
        tol: |lambda_1| below this counts as zero.
    """
    from .models.gru import GRURNN
    from .models.rate import RateRNN

    regime = default_regime(model) if regime is None else regime
    if regime not in REGIMES:
        raise ValueError(f"regime must be one of {list(REGIMES)}, got {regime!r}")
    if isinstance(model, RateRNN) and model.activation != "tanh":
        raise ValueError(f"pta's region maps are for tanh units; this RateRNN uses {model.activation!r}")
    if not isinstance(model, (RateRNN, GRURNN)):
        raise ValueError(f"pta supports RateRNN (tanh) and GRURNN, not {type(model).__name__}")
    N, m = model.n_hidden, model.n_hidden // 2
    if m == 0:
        raise ValueError("pta needs at least 2 hidden units")
    if (alphas is None) != (thetas is None):
        raise ValueError("give both alphas and thetas, or neither (then they are sampled from the region map)")
    if alphas is None:
        alphas, thetas = sample_pta_parameters(m, regime, seed, alpha_max, tol)
    for name, v in (("alphas", alphas), ("thetas", thetas)):
        if np.ndim(v) not in (0, 1) or (np.ndim(v) == 1 and len(v) != m):
            raise ValueError(f"{name} must be a scalar or have N // 2 = {m} entries, got shape {np.shape(v)}")
    W = pta_matrix(N, alphas, thetas)
    if isinstance(model, GRURNN):
        model.W_rec.zero_()
        model.W_rec[2 * N :].copy_(W)
        model.b.zero_()
        model.b_hn.zero_()
    else:
        model.W_rec.copy_(W)
    return model


# -- gradient flossing -------------------------------------------------------------------------------------
@dataclass
class FlossingResult:
    """``history``: one record per step: ``step``, ``loss`` (sum of squared exponents), ``lambdas`` (top k)."""

    history: list[dict[str, Any]] = field(default_factory=list)
    model: Any = None

    @property
    def lambdas(self) -> np.ndarray:
        """``[steps, k]`` exponents (per step / time unit) during flossing."""
        return np.array([r["lambdas"] for r in self.history])


def flossing_loss(model: Any, u: Tensor, k: int, warmup: int, local: bool = False, seed: int = 0,
                  target: float = 0.0) -> tuple[Tensor, Tensor]:  # fmt: skip
    """``mean_trials sum_{i<=k} (lambda_i - target)^2`` and the exponents ``[B, k]``, differentiable.

    The exponents come from a differentiable QR along the trajectory (re-orthonormalised every step,
    the first ``warmup`` steps excluded), as in Engelken's reference code. ``local=True`` (RateRNN
    only) rolls the trajectory out with the recurrent input detached (Liu et al.'s ``hidden.detach()``):
    gradients then reach ``W_rec`` only through the Jacobians' explicit ``W_rec`` and each unit's own
    state, never through other units' states (e-prop's truncation).
    """
    from .analysis.jacobian import dynamics_for
    from .analysis.lyapunov import qr_exponents

    dyn = dynamics_for(model, detach_recurrent=local)
    gen = torch.Generator().manual_seed(seed)
    astate = dyn.start(model.init_state(u.shape[1]))
    lam, _ = qr_exponents(dyn, astate, u, k, warmup, reortho_every=1, generator=gen)
    return ((lam - target) ** 2).sum(-1).mean(), lam


def flossing(
    model: Any,
    task_or_inputs: Any,
    steps: int = 100,
    k: int = 1,
    local: bool = False,
    lr: float = 1e-3,
    batch_size: int = 16,
    warmup: int | None = None,
    target: float = 0.0,
    seed: int = 0,
    progress: bool = True,
    callback: Callable[[int, dict], None] | None = None,
) -> FlossingResult:
    """Gradient-flossing pretraining (Engelken 2023; Liu et al. App. B): Adam on ``W_in, W_rec, b`` to
    minimise ``sum_{i<=k} lambda_i^2``, the top-k Lyapunov exponents along trajectories driven by the
    task's inputs (per step; see ``lyapunov_spectrum`` for units).

    Args:
        model: RateRNN (``local`` supported) or GRURNN (any model with a differentiable tangent map).
        task_or_inputs: a ``spikedyn.tasks`` Task (a fresh batch of ``batch_size`` trials every step,
            rng ``[seed, step]``) or a fixed input tensor ``[T, B, I]``.
        steps: optimiser steps. k: number of exponents pushed to ``target`` (0).
        local: e-prop-local gradients (see ``flossing_loss``). lr: Adam learning rate.
        warmup: leading steps of each trajectory excluded from the exponents (default T // 4).
    """
    if steps < 1 or k < 1:
        raise ValueError("steps and k must be positive integers")
    params = [p for name, p in model.named_parameters() if name in ("W_in", "W_rec", "b") and p.requires_grad]
    if not params:
        raise ValueError(f"{type(model).__name__} has no W_in / W_rec / b parameters to floss")
    optimizer = torch.optim.Adam(params, lr=lr)
    is_task = hasattr(task_or_inputs, "sample")
    fixed = None if is_task else torch.as_tensor(task_or_inputs, dtype=model.W_out.dtype, device=model.W_out.device)
    if fixed is not None and (fixed.dim() != 3 or fixed.shape[-1] != model.n_in):
        raise ValueError(f"inputs must have shape [T, B, {model.n_in}], got {tuple(fixed.shape)}")
    result = FlossingResult(model=model)
    from .progress import progress as make_progress

    bar = make_progress(steps, "flossing" + (" (local)" if local else ""), unit="step", enabled=progress)
    for step in range(1, steps + 1):
        if is_task:
            batch = task_or_inputs.sample(batch_size, np.random.default_rng([seed, step]))
            u = torch.as_tensor(batch.inputs, dtype=model.W_out.dtype, device=model.W_out.device)
        else:
            u = fixed
        w = u.shape[0] // 4 if warmup is None else warmup
        loss, lam = flossing_loss(model, u, k, w, local=local, seed=seed * 100_003 + step, target=target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        record = {"step": step, "loss": float(loss.detach()), "lambdas": lam.detach().mean(0).cpu().numpy().tolist()}
        result.history.append(record)
        if callback is not None:
            callback(step, record)
        bar.update(1, loss=record["loss"], lambda1=record["lambdas"][0])
    bar.close()
    optimizer.zero_grad(set_to_none=True)
    return result
