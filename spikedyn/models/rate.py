"""Leaky rate RNN (continuous-time RNN, Euler-discretised; alpha = 1 gives the vanilla RNN).

    x_{t+1} = (1 - alpha) x_t + alpha (W_rec f(x_t) + W_in u_t + b) + sqrt(2 alpha) sigma xi_t
    r_{t+1} = f(x_{t+1}),     y_{t+1} = W_out r_{t+1} + b_out

(McMahan et al. 2024 Eq. 1-2 with a bias; Liu et al. Eq. 1 writes the same map with its leak 1 - alpha).
``sigma = noise_std`` is the stationary standard deviation an isolated linear unit would have,
so the noise level does not change when ``alpha = dt / tau`` does.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from .base import RecurrentModel, Rollout, rollout
from .triton_support import run_triton, wants_triton
from .validation import check_finite


def shifted_tanh(x: Tensor) -> Tensor:
    """1 + tanh(x): the non-negative rate nonlinearity of McMahan et al. 2024, computed as the identical
    ``2 sigmoid(2x)`` (torch's CPU sigmoid is several times faster than its tanh)."""
    return 2.0 * torch.sigmoid(2.0 * x)


def _tanh_derivative(x: Tensor) -> Tensor:
    return 1.0 - torch.tanh(x) ** 2


def _relu_derivative(x: Tensor) -> Tensor:
    return (x > 0).to(x.dtype)  # 0 at x = 0, as autograd


def _softplus_derivative(x: Tensor) -> Tensor:
    # torch's softplus is linear above its threshold 20: its derivative there is exactly 1
    return torch.where(x > 20.0, torch.ones_like(x), torch.sigmoid(x))


class Activation(NamedTuple):
    """A rate nonlinearity ``f`` and its derivative ``df = f'`` in closed form."""

    f: Callable[[Tensor], Tensor]
    df: Callable[[Tensor], Tensor]


#: The one table of rate activations and their derivatives (used by the rate step, RFLO and the Jacobians).
ACTIVATION_TABLE: dict[str, Activation] = {
    "tanh": Activation(torch.tanh, _tanh_derivative),
    "relu": Activation(torch.relu, _relu_derivative),
    "shifted_tanh": Activation(shifted_tanh, _tanh_derivative),
    "softplus": Activation(nn.functional.softplus, _softplus_derivative),
}
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {name: a.f for name, a in ACTIVATION_TABLE.items()}


def activation(name: str) -> Activation:
    try:
        return ACTIVATION_TABLE[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATION_TABLE)}") from None


def activation_fn(name: str) -> Callable[[Tensor], Tensor]:
    return activation(name).f


def activation_derivative(name: str, x: Tensor) -> Tensor:
    """``f'(x)`` of a rate activation, in closed form (``ACTIVATION_TABLE``)."""
    return activation(name).df(x)


def leaky_update(x: Tensor, recurrent: Tensor, drive: Tensor, alpha: float) -> Tensor:
    """The one leaky rate update ``x' = (1 - alpha) x + alpha (recurrent + drive)`` with ``recurrent =
    W_rec f(x)`` and ``drive = W_in u + b`` (noise, when any, is added by the caller)."""
    return (1.0 - alpha) * x + alpha * (recurrent + drive)


class RateState(NamedTuple):
    x: Tensor  # pre-activation [B, N]


class RateRNN(RecurrentModel):
    """Leaky (continuous-time) rate RNN.

    Args:
        n_in, n_hidden, n_out: sizes I, N, O.
        alpha: dt / tau, the Euler step over the time constant (1.0 = discrete vanilla RNN); stored as
            given (``tau`` is derived: ``dt / alpha``).
        activation: "tanh" | "relu" | "shifted_tanh" (1 + tanh) | "softplus".
        noise_std: recurrent noise (stationary std, see module doc); 0 = deterministic.
        gain: W_rec ~ N(0, gain^2 / N) at initialisation (Liu et al.'s "initial gain").
        x0_std: initial state x_0 ~ N(0, x0_std^2) per trial (McMahan et al. 2024 uses variance 0.3); 0 = zeros.
        bias: learn a bias b (else b is a fixed zero buffer).
        dt: the length of one step in ms (the task's dt; sets the unit of Lyapunov exponents).
        tau: the time constant in ms; if given, ``alpha = dt / tau`` (overrides ``alpha``).
    """

    kind = "rate"

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        n_out: int,
        alpha: float = 1.0,
        activation: str = "tanh",
        noise_std: float = 0.0,
        gain: float = 1.0,
        x0_std: float = 0.0,
        bias: bool = True,
        dt: float = 1.0,
        tau: float | None = None,
    ) -> None:
        super().__init__(n_in, n_hidden, n_out)
        if not dt > 0:
            raise ValueError(f"dt must be > 0 ms, got {dt}")
        if tau is not None:  # alpha is stored (the map uses it); tau is derived from it
            if not tau >= dt:
                raise ValueError(f"tau must be >= dt = {dt} ms (alpha = dt/tau <= 1), got {tau}")
            alpha = dt / tau
        check_finite(dt=dt, alpha=alpha, noise_std=noise_std, gain=gain, x0_std=x0_std)
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha = dt/tau must be in (0, 1], got {alpha}")
        if noise_std < 0 or x0_std < 0:
            raise ValueError("noise_std and x0_std must be >= 0")
        self.alpha, self.dt = float(alpha), float(dt)
        self.activation = activation
        self.f = activation_fn(activation)
        self.noise_std = float(noise_std)
        self.gain = float(gain)
        self.x0_std = float(x0_std)
        self.has_bias = bool(bias)
        self._init_input_and_recurrent(gain, bias)

    @property
    def tau(self) -> float:
        """The time constant in ms, ``dt / alpha``."""
        return self.dt / self.alpha

    @property
    def noise_scale(self) -> float:
        """``sqrt(2 alpha) sigma``: the std of the noise added per step."""
        return (2.0 * self.alpha) ** 0.5 * self.noise_std

    def extra_repr(self) -> str:
        return (f"{self.n_in}, {self.n_hidden}, {self.n_out}, activation={self.activation!r}, "
                f"alpha={self.alpha:g}, dt={self.dt:g} ms, noise_std={self.noise_std:g}")

    def tangent_dynamics(self, detach_recurrent: bool = False) -> Any:
        """The tangent map of one step (``spikedyn.models.tangent.RateDynamics``)."""
        from .tangent import RateDynamics

        return RateDynamics(self, detach_recurrent=detach_recurrent)

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "alpha": self.alpha,
            "dt": self.dt,
            "activation": self.activation,
            "noise_std": self.noise_std,
            "gain": self.gain,
            "x0_std": self.x0_std,
            "bias": self.has_bias,
        }

    def init_state(self, batch: int, generator: torch.Generator | None = None) -> RateState:
        x = torch.zeros(batch, self.n_hidden, device=self.device, dtype=self.dtype)
        if self.x0_std > 0:
            x = self.x0_std * torch.randn(x.shape, generator=generator, device=self.device, dtype=self.dtype)
        return RateState(x)

    def step(self, state: RateState, u_t: Tensor, noise: Tensor | None = None) -> tuple[RateState, Tensor]:
        """One Euler step; ``noise`` is a standard-normal sample [B, N] (drawn if None and noise_std > 0)."""
        x = leaky_update(state.x, self.f(state.x) @ self.W_rec.T, u_t @ self.W_in.T + self.b, self.alpha)
        if self.noise_std > 0:
            noise = torch.randn_like(x) if noise is None else noise
            x = x + self.noise_scale * noise
        return RateState(x), self.f(x)

    def output(self, state: RateState) -> Tensor:
        return self.f(state.x) @ self.W_out.T + self.b_out

    def forward(
        self,
        u: Tensor,
        state: RateState | None = None,
        generator: torch.Generator | None = None,
        detach_recurrent: bool = False,
    ) -> Rollout:
        """Roll out over ``u [T, B, I]``; input projections are computed for all steps at once.

        ``detach_recurrent=True`` cuts the gradient through the recurrent input ``W_rec f(x)`` while
        keeping each unit's own leak: autograd then computes exactly the RFLO / e-prop truncation
        (Liu et al. App. B), which online rules are tested against.
        """
        u = self._check_input(u)
        T, B = u.shape[:2]
        state = self.init_state(B, generator) if state is None else state
        if self.alpha == 1.0 and self.activation in ("tanh", "relu") and self.noise_std == 0 and not detach_recurrent:
            return self._forward_fused(u, state)
        drive_in = u @ self.W_in.T + self.b  # [T, B, N]
        noise = None
        if self.noise_std > 0:
            noise = torch.randn(
                (T, B, self.n_hidden), generator=generator, device=self.device, dtype=self.dtype
            ) * self.noise_scale
        f, W_rec, alpha = self.f, self.W_rec, self.alpha
        if wants_triton(drive_in):  # the Triton kernels (triton_rate.py): on CUDA, or SPIKEDYN_TRITON=on
            from .triton_rate import rate_rollout

            xs_all = run_triton(lambda: rate_rollout(state.x, drive_in, noise, W_rec, alpha, self.activation,
                                                     detach_recurrent))  # fmt: skip
            if xs_all is not None:  # None: it failed under "auto" (warned once); the step loop below
                r = f(xs_all)
                return Rollout(r @ self.W_out.T + self.b_out, r, RateState(xs_all[-1]))

        def step(x: Tensor, inp: tuple[Tensor, Tensor | None]) -> tuple[Tensor, Tensor]:
            drive_t, noise_t = inp
            r_rec = f(x).detach() if detach_recurrent else f(x)
            x = leaky_update(x, r_rec @ W_rec.T, drive_t, alpha)
            if noise_t is not None:
                x = x + noise_t
            return x, x

        # unbind, not drive_in[t]: each indexing's backward would allocate a zero [T, B, N] (O(T^2) time)
        steps = zip(drive_in.unbind(0), noise.unbind(0) if noise is not None else [None] * T)
        _, xs, x = rollout(step, None, steps, state.x)
        r = f(torch.stack(xs))
        return Rollout(r @ self.W_out.T + self.b_out, r, RateState(x))

    def _forward_fused(self, u: Tensor, state: RateState) -> Rollout:
        """alpha = 1 is the vanilla RNN h_t = f(W_in u_t + W_rec h_{t-1} + b) with h = f(x): run it with
        torch's native RNN kernel (cuDNN on GPU; about 3x faster than the Python loop on CPU)."""
        rnn = torch._VF.rnn_tanh if self.activation == "tanh" else torch._VF.rnn_relu
        weights = [self.W_in, self.W_rec, self.b, torch.zeros_like(self.b)]
        r, _ = rnn(u, self.f(state.x)[None], weights, True, 1, 0.0, self.training, False, False)
        r_prev = torch.cat([self.f(state.x)[None], r[:-1]])[-1]
        x_last = r_prev @ self.W_rec.T + u[-1] @ self.W_in.T + self.b  # the pre-activation of the last step
        return Rollout(r @ self.W_out.T + self.b_out, r, RateState(x_last))
