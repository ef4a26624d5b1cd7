"""Where a 2x2 scaled-rotation block oscillates: the PTA region map of Park et al., Fig. 5A-B.

One block of Eq. 19 is ``W(alpha, theta) = alpha [[cos t, -sin t], [sin t, cos t]]``. For each point of a
grid over (alpha, theta) we compute both Lyapunov exponents of the free-running block with the same
QR method as ``lyapunov_spectrum`` (vectorised over the whole grid), in one of three regimes:

| regime | map | time unit |
| --- | --- | --- |
| ``"discrete"`` | ``x(t+1) = tanh(W x(t))`` (Eq. 21, vanilla tanh RNN) | step |
| ``"continuous"`` | ``dx/dt = -x + tanh(W x)`` (Eq. 20, CTRNN; RK4, dt = 0.1) | tau |
| ``"gru"`` | ``h' = (1 - z) tanh(r W h) + z h``, ``r = z = 1/2`` (a GRU at rest, see ``spikedyn.init.pta``) | step |

The block carries a learning signal when its leading exponent is zero: ``|lambda_1| < tol``. For
the continuous regime that is the limit cycle (the flow direction has exponent 0); for the maps it is a
quasi-periodic invariant circle (phase-locked periodic orbits of a map have lambda_1 < 0 and are
excluded, which is why the discrete region has Arnold-tongue holes). Fig. 5B's "oscillates" mask is
``oscillates``: the orbit keeps moving after the transient.

Maps are cached in ``spikedyn/analysis/data/pta_region_<regime>.npz`` (shipped with the package, read,
never written unless asked); ``pta_region_map(regime, recompute=True)`` recomputes one (a few seconds to a
minute on a CPU) and ``save=True`` (a developer regenerating the shipped cache) writes it there.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .jacobian import Dynamics
from .lyapunov import qr_exponents

REGIMES = ("discrete", "continuous", "gru")
DATA_DIR = Path(__file__).parent / "data"
# grid and integration settings of the shipped maps (part of the cache key)
DEFAULTS = {
    "discrete": dict(alpha_max=3.0, n_alpha=60, n_theta=60, steps=3000, warmup=1000, dt=1.0),
    "continuous": dict(alpha_max=4.0, n_alpha=60, n_theta=60, steps=6000, warmup=1000, dt=0.1),
    "gru": dict(alpha_max=8.0, n_alpha=60, n_theta=60, steps=3000, warmup=1000, dt=1.0),
}
# |lambda_1| below this counts as zero (per step / per tau); the finite-time error of a true zero exponent
# over the 2000 counted steps (500 tau) is a few 1e-3
ZERO_TOL = 0.01


@dataclass
class RegionMap:
    """Exponents of the 2x2 block on a grid: ``lam [n_alpha, n_theta, 2]`` (descending), ``oscillates``."""

    regime: str
    alphas: np.ndarray
    thetas: np.ndarray
    lam: np.ndarray
    oscillates: np.ndarray
    settings: dict

    def zero_mask(self, tol: float = ZERO_TOL) -> np.ndarray:
        """Grid points whose leading exponent is zero within ``tol``, and that oscillate."""
        return (np.abs(self.lam[..., 0]) < tol) & self.oscillates

    def zero_points(self, tol: float = ZERO_TOL, alpha_max: float | None = None) -> np.ndarray:
        """``[P, 2]`` (alpha, theta) grid points of the zero region (optionally alpha <= alpha_max)."""
        mask = self.zero_mask(tol)
        if alpha_max is not None:
            mask &= self.alphas[:, None] <= alpha_max
        ia, it = np.nonzero(mask)
        return np.stack([self.alphas[ia], self.thetas[it]], axis=1)


def rotation_blocks(alphas: Tensor, thetas: Tensor) -> Tensor:
    """Scaled rotations ``alpha R(theta)`` ``[..., 2, 2]`` (Eq. 19's blocks)."""
    c, s = torch.cos(thetas), torch.sin(thetas)
    R = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    return alphas[..., None, None] * R


class BlockDynamics(Dynamics):
    """A batch of independent 2x2 blocks ``W [G, 2, 2]`` in one regime (see the module docstring)."""

    def __init__(self, W: Tensor, regime: str, dt: float) -> None:
        self.W, self.regime, self.dim = W, regime, 2
        self.dt = dt

    def _mv(self, x: Tensor) -> Tensor:
        return (self.W @ x[..., None])[..., 0]

    def step(self, x, u_t):
        W = self.W
        if self.regime == "discrete":
            x_next = torch.tanh(self._mv(x))
            return x_next, lambda Q: (1 - x_next**2)[..., None] * (W @ Q)
        if self.regime == "gru":
            a = torch.tanh(0.5 * self._mv(x))
            return 0.5 * x + 0.5 * a, lambda Q: 0.5 * Q + 0.25 * (1 - a**2)[..., None] * (W @ Q)
        h = self.dt

        def f(y):
            return -y + torch.tanh(self._mv(y))

        def jvp(y, Q):
            return -Q + (1 - torch.tanh(self._mv(y)) ** 2)[..., None] * (W @ Q)

        k1 = f(x)
        x2 = x + 0.5 * h * k1
        k2 = f(x2)
        x3 = x + 0.5 * h * k2
        k3 = f(x3)
        x4 = x + h * k3
        k4 = f(x4)
        x_next = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)

        def tangent(Q):
            d1 = jvp(x, Q)
            d2 = jvp(x2, Q + 0.5 * h * d1)
            d3 = jvp(x3, Q + 0.5 * h * d2)
            d4 = jvp(x4, Q + h * d3)
            return Q + h / 6 * (d1 + 2 * d2 + 2 * d3 + d4)

        return x_next, tangent

    def vector(self, astate):
        return astate

    def with_vector(self, astate, v):
        return v


def block_exponents(alphas: np.ndarray, thetas: np.ndarray, regime: str, steps: int = 3000, warmup: int = 1000,
                    dt: float | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Both exponents ``[..., 2]`` of the blocks ``alpha R(theta)`` (broadcast shapes) and whether each
    orbit still moves after the transient (``oscillates``)."""
    if regime not in REGIMES:
        raise ValueError(f"regime must be one of {list(REGIMES)}, got {regime!r}")
    dt = DEFAULTS[regime]["dt"] if dt is None else float(dt)
    a, t = np.broadcast_arrays(np.asarray(alphas, dtype=np.float64), np.asarray(thetas, dtype=np.float64))
    shape = a.shape
    W = rotation_blocks(torch.as_tensor(a.ravel()), torch.as_tensor(t.ravel()))
    dyn = BlockDynamics(W, regime, dt)
    gen = torch.Generator().manual_seed(seed)
    x0 = 0.5 * torch.randn((W.shape[0], 2), generator=gen, dtype=torch.float64)
    u = torch.zeros(steps, 1, dtype=torch.float64)
    with torch.no_grad():
        lam, x_end = qr_exponents(dyn, x0, u, 2, warmup, reortho_every=1, generator=gen)
        # "still moving": compare the state with itself a little later (a fixed point does not move)
        x_later = x_end
        for _ in range(max(1, int(round(5.0 / dt)))):
            x_later, _ = dyn.step(x_later, u[0])
        moving = (x_later - x_end).norm(dim=-1) > 1e-4
    lam = -np.sort(-lam.numpy(), axis=-1)
    return lam.reshape(*shape, 2), moving.numpy().reshape(shape)


def compute_region_map(regime: str, alpha_max: float, n_alpha: int, n_theta: int, steps: int, warmup: int,
                       dt: float) -> RegionMap:  # fmt: skip
    """The map on the grid alpha in (0, alpha_max], theta in (0, pi) (cell centres)."""
    alphas = (np.arange(n_alpha) + 0.5) * alpha_max / n_alpha
    thetas = (np.arange(n_theta) + 0.5) * math.pi / n_theta
    lam, moving = block_exponents(alphas[:, None], thetas[None, :], regime, steps, warmup, dt)
    settings = dict(alpha_max=alpha_max, n_alpha=n_alpha, n_theta=n_theta, steps=steps, warmup=warmup, dt=dt)
    return RegionMap(regime, alphas, thetas, lam, moving, settings)


def cache_path(regime: str) -> Path:
    return DATA_DIR / f"pta_region_{regime}.npz"


def pta_region_map(regime: str = "discrete", recompute: bool = False, save: bool = False, **settings) -> RegionMap:
    """The (alpha, theta) region map of one regime: from the shipped cache, or computed when ``recompute``
    is set, the cache is missing or ``settings`` (alpha_max, n_alpha, n_theta, steps, warmup, dt) differ.
    ``save=True`` writes a computed map of the default settings into the shipped cache (inside the
    installed package: for regenerating it, not for users); by default nothing is written."""
    if regime not in REGIMES:
        raise ValueError(f"regime must be one of {list(REGIMES)}, got {regime!r}")
    unknown = set(settings) - set(DEFAULTS[regime])
    if unknown:
        raise ValueError(f"unknown region-map setting(s) {sorted(unknown)}; use {sorted(DEFAULTS[regime])}")
    wanted = {**DEFAULTS[regime], **settings}
    path = cache_path(regime)
    if not recompute and path.exists():
        with np.load(path) as z:
            cached = {k: z[k].item() for k in wanted if k in z.files}
            if cached == {k: type(cached.get(k, v))(v) for k, v in wanted.items()}:
                return RegionMap(regime, z["alphas"], z["thetas"], z["lam"], z["oscillates"].astype(bool), wanted)
    rmap = compute_region_map(regime, **wanted)
    if save and wanted == DEFAULTS[regime]:
        try:
            save_region_map(rmap, path)
        except OSError:  # a read-only install: use the map without caching it
            pass
    return rmap


def save_region_map(rmap: RegionMap, path: Path) -> None:
    """Write a map as .npz atomically."""
    from ..atomic import atomic_write_npz

    atomic_write_npz(Path(path), alphas=rmap.alphas, thetas=rmap.thetas, lam=rmap.lam, oscillates=rmap.oscillates,
                     **{k: np.asarray(v) for k, v in rmap.settings.items()})  # fmt: skip
