"""Reference dynamical systems of Park et al. (Supp. S1, Fig. 3) as ready-made spikedyn models.

Each is an ``ODESystem``: a continuous-time vector field ``dx/dt = F(x, W_in u)`` integrated with
fixed-step RK4 (as in Park et al. S1.1), following the model protocol (``init_state``, ``step``,
``forward``), so ``lyapunov_spectrum`` and ``adjoint_norms`` work on them directly and report
exponents per unit of time (``model.dt`` is the RK4 step in those units).

| factory | equation | size | spectrum (theory) |
| --- | --- | --- | --- |
| ``fading_memory_network`` | Eq. S2 with g = 0.5 (our stand-in for Fig. 3A) | 20 | all negative |
| ``two_fixed_points`` | Eq. S1, W of S1 with 0.35 / -1 block, b = 1 | 6 | all negative (bistable) |
| ``line_attractor`` | Eq. S1, W of S1 with 0 / -1 block and -2 diagonal, b = 1 | 6 | [0, -2, -3, -3, -3, -3] |
| ``chaotic_network`` | Eq. S2, sparse Gaussian W (Eq. S3), g = 1.8, p_c = 0.1 | 100 | lambda_1 > 0 |
| ``limit_cycle_network`` | Eq. S2, n = 20, g = 1.8, p_c = 0.1, a seed whose network oscillates | 20 | one 0, rest < 0 |
| ``LinearSystem(A)`` | dx/dt = A x | any | Re(eig(A)) |

Time units: Eq. S1 has no time constant (units of its unit leak). Eq. S2 is ``tau dx/dt = -x + W tanh(x)``
with Park et al.'s tau = 10 ms; the factories default to ``tau = 1`` so that time, and the exponents,
are in units of tau (pass ``tau=10.0`` for exponents per ms).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from ..models.base import RecurrentModel, Rollout
from ..models.tangent import Dynamics

# Park et al. Supp. S1, Eq. S1 connectivity
TWO_FIXED_POINTS_W = (
    (0.35, -1.0, 0, 0, 0, 0),
    (-1.0, 0.35, 0, 0, 0, 0),
    (0, 0, -0.01, 0, 0, 0),
    (0, 0, 0, -0.02, 0, 0),
    (0, 0, 0, 0, -0.03, 0),
    (0, 0, 0, 0, 0, -0.01),
)
LINE_ATTRACTOR_W = (
    (0, -1.0, 0, 0, 0, 0),
    (-1.0, 0, 0, 0, 0, 0),
    (0, 0, -2.0, 0, 0, 0),
    (0, 0, 0, -2.0, 0, 0),
    (0, 0, 0, 0, -2.0, 0),
    (0, 0, 0, 0, 0, -2.0),
)
# Seeds of ``sparse_gaussian`` used by default (tests/test_lyapunov.py re-checks both). Park et al. says small
# random networks are "frequently stable limit cycles": with our draws of Eq. S3 most n = 20 networks
# decay to a fixed point (each unit has only ~2 inputs); 16 is the first seed whose network settles on a
# limit cycle from N(0, 1) initial values. At n = 100, most draws are not chaotic either (fixed points,
# limit cycles, tori): of seeds 0..29, only 14, 21, 22, 27, 28 have lambda_1 > 0.01 per tau; 22 has the
# largest (0.056 per tau, over 600 tau).
DEFAULT_LIMIT_CYCLE_SEED = 16
DEFAULT_CHAOTIC_SEED = 22


class ODEState(NamedTuple):
    x: Tensor  # [B, N]


class ODESystem(RecurrentModel):
    """Base class: ``dx/dt = field(x, W_in u)`` integrated by RK4 with step ``dt`` (time units).

    Subclasses implement ``field(x, drive)`` and its Jacobian-vector product ``field_jvp(x, drive, Q)``
    (``Q [..., N, k]``: tangent vectors as columns). The readout is the identity (``y = x``), so rollouts
    show the activity itself. ``x0`` (default 0) and ``x0_std`` set the initial state ``x0 + x0_std * N(0, 1)``.
    """

    kind = "ode"

    def __init__(self, n_hidden: int, dt: float = 0.05, n_in: int = 1, x0: Any = None, x0_std: float = 0.0) -> None:
        super().__init__(n_in, n_hidden, n_hidden)
        if not dt > 0:
            raise ValueError(f"dt (the RK4 step, in time units) must be > 0, got {dt}")
        self.dt, self.x0_std = float(dt), float(x0_std)
        self.W_in = nn.Parameter(torch.zeros(n_hidden, n_in))
        with torch.no_grad():
            self.W_out.copy_(torch.eye(n_hidden))
        x0 = torch.zeros(n_hidden) if x0 is None else torch.as_tensor(x0, dtype=torch.float32).reshape(n_hidden)
        self.register_buffer("x0", x0.clone())

    def field(self, x: Tensor, drive: Tensor) -> Tensor:
        raise NotImplementedError

    def field_jvp(self, x: Tensor, drive: Tensor, Q: Tensor) -> Tensor:
        raise NotImplementedError

    def input_drive(self, u_t: Tensor) -> Tensor:
        return u_t @ self.W_in.T

    def init_state(self, batch: int, generator: torch.Generator | None = None) -> ODEState:
        x = self.x0.to(self.dtype).expand(batch, self.n_hidden).clone()
        if self.x0_std > 0:
            x = x + self.x0_std * torch.randn(x.shape, generator=generator, dtype=self.dtype).to(self.device)
        return ODEState(x)

    def step(self, state: ODEState, u_t: Tensor) -> tuple[ODEState, Tensor]:
        h, x, drive = self.dt, state.x, self.input_drive(u_t)
        k1 = self.field(x, drive)
        k2 = self.field(x + 0.5 * h * k1, drive)
        k3 = self.field(x + 0.5 * h * k2, drive)
        k4 = self.field(x + h * k3, drive)
        x = x + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        return ODEState(x), x

    def output(self, state: ODEState) -> Tensor:
        return state.x @ self.W_out.T + self.b_out

    def forward(self, u: Tensor, state: ODEState | None = None) -> Rollout:
        return self.loop(u, state)

    def autonomous_input(self, n_steps: int, batch: int = 1) -> Tensor:
        """All-zero input ``[n_steps, batch, n_in]`` for free-running simulations."""
        return torch.zeros(n_steps, batch, self.n_in, dtype=self.dtype, device=self.device)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "dt": self.dt, "x0_std": self.x0_std}

    def tangent_dynamics(self, detach_recurrent: bool = False) -> Dynamics:
        """The RK4 step with its exact tangent (``ODEDynamics``)."""
        if detach_recurrent:
            raise ValueError("detach_recurrent (local flossing) is implemented for RateRNN only")
        return ODEDynamics(self)


# -- tangent dynamics (exact RK4 tangent) ----------------------------------------------------------------------
class ODEDynamics(Dynamics):
    """RK4 step of an ``ODESystem`` with its exact tangent (the RK4 scheme applied to the variational
    equation ``dQ/dt = Df(x) Q`` along the same stages)."""

    def __init__(self, model: Any) -> None:
        self.model, self.dim, self.dt = model, model.n_hidden, model.dt
        self.time_unit = "model"  # the ODE's own (dimensionless) time, not ms

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



class ReLUNetwork(ODESystem):
    """Park et al. Eq. S1: ``dx/dt = -x + ReLU(W x + b + W_in u)``."""

    kind = "ode_relu"

    def __init__(self, W: Any, b: Any, dt: float = 0.05, x0: Any = None, x0_std: float = 0.0) -> None:
        W = torch.as_tensor(np.asarray(W, dtype=np.float64), dtype=torch.float32)
        super().__init__(W.shape[0], dt=dt, x0=x0, x0_std=x0_std)
        self.W_rec = nn.Parameter(W.clone())
        self.b = nn.Parameter(torch.as_tensor(np.broadcast_to(np.asarray(b, dtype=np.float32), (W.shape[0],)).copy()))

    def field(self, x, drive):
        return -x + torch.relu(x @ self.W_rec.T + self.b + drive)

    def field_jvp(self, x, drive, Q):
        active = (x @ self.W_rec.T + self.b + drive > 0).to(x.dtype)
        return -Q + active[..., :, None] * (self.W_rec @ Q)  # ReLU after W: rows are masked


class TanhNetwork(ODESystem):
    """Park et al. Eq. S2: ``tau dx/dt = -x + W tanh(x) + W_in u``."""

    kind = "ode_tanh"

    def __init__(self, W: Any, tau: float = 1.0, dt: float = 0.05, x0: Any = None, x0_std: float = 0.0) -> None:
        W = torch.as_tensor(np.asarray(W, dtype=np.float64), dtype=torch.float32)
        super().__init__(W.shape[0], dt=dt, x0=x0, x0_std=x0_std)
        if not tau > 0:
            raise ValueError(f"tau must be > 0, got {tau}")
        self.tau = float(tau)
        self.W_rec = nn.Parameter(W.clone())

    def field(self, x, drive):
        return (-x + torch.tanh(x) @ self.W_rec.T + drive) / self.tau

    def field_jvp(self, x, drive, Q):
        d = 1.0 - torch.tanh(x) ** 2
        return (-Q + self.W_rec @ (d[..., :, None] * Q)) / self.tau  # tanh before W: columns are masked


class LinearSystem(ODESystem):
    """``dx/dt = A x + W_in u``: its Lyapunov spectrum is the real parts of A's eigenvalues."""

    kind = "ode_linear"

    def __init__(self, A: Any, dt: float = 0.05, x0: Any = None, x0_std: float = 0.0) -> None:
        A = torch.as_tensor(np.asarray(A, dtype=np.float64), dtype=torch.float32)
        if A.dim() != 2 or A.shape[0] != A.shape[1]:
            raise ValueError(f"A must be a square matrix, got shape {tuple(A.shape)}")
        super().__init__(A.shape[0], dt=dt, x0=x0, x0_std=x0_std)
        self.W_rec = nn.Parameter(A.clone())

    def field(self, x, drive):
        return x @ self.W_rec.T + drive

    def field_jvp(self, x, drive, Q):
        return self.W_rec @ Q


# -- factories ---------------------------------------------------------------------------------------------
def sparse_gaussian(n: int, g: float = 1.8, p_c: float = 0.1, seed: int = 0) -> np.ndarray:
    """Park et al. Eq. S3: each entry is nonzero with probability ``p_c``, drawn from N(0, g^2 / (p_c n))."""
    rng = np.random.default_rng(seed)
    mask = rng.random((n, n)) < p_c
    return np.where(mask, rng.normal(0.0, g / np.sqrt(p_c * n), (n, n)), 0.0)


def two_fixed_points(dt: float = 0.05, x0_std: float = 1.0) -> ReLUNetwork:
    """Bistable 6-unit ReLU network (Eq. S1, b = 1); initial values 0.5 + N(0, x0_std^2)."""
    return ReLUNetwork(TWO_FIXED_POINTS_W, 1.0, dt=dt, x0=np.full(6, 0.5), x0_std=x0_std)


def line_attractor(dt: float = 0.05, x0_std: float = 0.3) -> ReLUNetwork:
    """6-unit ReLU line attractor (Eq. S1, b = 1): the segment x1 + x2 = 1 of fixed points."""
    return ReLUNetwork(LINE_ATTRACTOR_W, 1.0, dt=dt, x0=np.full(6, 0.5), x0_std=x0_std)


def chaotic_network(n: int = 100, g: float = 1.8, p_c: float = 0.1, seed: int | None = None, tau: float = 1.0,
                    dt: float = 0.05, x0_std: float = 1.0) -> TanhNetwork:  # fmt: skip
    """Sparse random tanh network in the chaotic regime (Eq. S2-S3, Park et al. Fig. 3D).

    ``seed=None`` uses ``DEFAULT_CHAOTIC_SEED``, a draw that is chaotic at the default n, g, p_c (many
    draws at n = 100 are not; see the comment at ``DEFAULT_CHAOTIC_SEED``).
    """
    seed = DEFAULT_CHAOTIC_SEED if seed is None else seed
    return TanhNetwork(sparse_gaussian(n, g, p_c, seed), tau=tau, dt=dt, x0_std=x0_std)


def limit_cycle_network(n: int = 20, g: float = 1.8, p_c: float = 0.1, seed: int | None = None, tau: float = 1.0,
                        dt: float = 0.05, x0_std: float = 1.0) -> TanhNetwork:  # fmt: skip
    """Small sparse random tanh network that oscillates on a stable limit cycle (Park et al. Fig. 3E).

    ``seed=None`` uses ``DEFAULT_LIMIT_CYCLE_SEED`` (valid for the default n, g, p_c); for other
    sizes find one with ``find_limit_cycle_seed``.
    """
    seed = DEFAULT_LIMIT_CYCLE_SEED if seed is None else seed
    return TanhNetwork(sparse_gaussian(n, g, p_c, seed), tau=tau, dt=dt, x0_std=x0_std)


def fading_memory_network(n: int = 20, g: float = 0.5, p_c: float = 0.1, seed: int = 0, tau: float = 1.0,
                          dt: float = 0.05, x0_std: float = 1.0) -> TanhNetwork:  # fmt: skip
    """A low-gain tanh network (Eq. S2 with g = 0.5) with one global stable fixed point at 0 (Fig. 3A)."""
    return TanhNetwork(sparse_gaussian(n, g, p_c, seed), tau=tau, dt=dt, x0_std=x0_std)


def classify_orbit(model: ODESystem, t_total: float = 400.0, t_transient: float = 200.0, seed: int = 0) -> str:
    """"fixed_point", "periodic" or "irregular": how the free-running orbit from ``init_state`` ends up.

    A limit cycle is recognised by its zero exponent: of the top four exponents exactly one has
    |lambda| < 0.02 and the others are < -0.02 (and the orbit moves). Times are in the model's units.
    """
    from .lyapunov import lyapunov_spectrum

    steps = int(round(t_total / model.dt))
    u = model.autonomous_input(steps)
    spec = lyapunov_spectrum(model, u, k=min(4, model.n_hidden), warmup=int(round(t_transient / model.dt)),
                             reortho_every=2, seed=seed, x0_std=0.0)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed)
        x = model.loop(u, model.init_state(1, generator=gen)).r[-int(20 / model.dt):, 0]
    speed = float(x.std(0).max())
    if speed < 1e-4:
        return "fixed_point"
    near_zero = np.abs(spec) < 0.02
    if near_zero.sum() == 1 and np.all(spec[~near_zero] < -0.02):
        return "periodic"
    return "irregular"


def find_limit_cycle_seed(n: int = 20, g: float = 1.8, p_c: float = 0.1, start: int = 0, tries: int = 50,
                          tau: float = 1.0) -> int:  # fmt: skip
    """The first seed >= ``start`` whose ``sparse_gaussian(n, g, p_c, seed)`` network is periodic."""
    for seed in range(start, start + tries):
        model = TanhNetwork(sparse_gaussian(n, g, p_c, seed), tau=tau, x0_std=1.0).double()
        if classify_orbit(model) == "periodic":
            return seed
    raise ValueError(f"no limit-cycle network among seeds {start}..{start + tries - 1}; try other g or n")


REFERENCE_SYSTEMS: dict[str, Callable[..., ODESystem]] = {
    "fading_memory": fading_memory_network,
    "two_fixed_points": two_fixed_points,
    "line_attractor": line_attractor,
    "chaotic": chaotic_network,
    "limit_cycle": limit_cycle_network,
}
