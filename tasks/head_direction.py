"""Angular-velocity integration for the head-direction circuit (Park et al. Sec. 2.11; FIELD_NOTES).

Conventions: heading ``theta`` in rad, measured clockwise (compass convention), so a positive angular
velocity ``omega`` (rad/s) is a clockwise turn; ``theta_t = theta_0 + sum_{s <= t} omega_s * dt`` (the
target at step t already includes the velocity fed at step t). Velocity inputs are split into the
clockwise and counter-clockwise channels ``[max(omega, 0), max(-omega, 0)]`` (rad/s), the ``V_a^+`` and
``-V_a^-`` of Park et al. Eq. 22-23. Targets are ``[cos theta, sin theta]`` at every step (loss "mse").

The velocity generators are pure functions that return rad/s (their parameters are in deg/s, seconds and
ms, as named) with shape ``[n_steps]`` or, with ``batch=B``, ``[n_steps, B]``.
"""

from __future__ import annotations

import numpy as np

from .base import Task, TaskBatch, as_rng, check_choice, check_nonnegative, check_positive, make_batch, n_steps

VELOCITIES = ("ou", "constant", "darkness", "saccades")


def _shape(n_steps: int, batch: int | None) -> tuple[int, ...]:
    return (n_steps,) if batch is None else (n_steps, batch)


def ou_velocity(n_steps: int, dt_ms: float, rng: int | np.random.Generator | None,
                std_deg_s: float = 120.0, tau_s: float = 0.08, max_deg_s: float | None = None,
                batch: int | None = None) -> np.ndarray:
    """Ornstein-Uhlenbeck angular velocity (rad/s), stationary from the first step.

    Exact discretisation ``w_{t+1} = a w_t + std * sqrt(1 - a^2) * xi``, ``a = exp(-dt / tau)``, with
    ``w_0 ~ N(0, std^2)``: standard deviation ``std_deg_s`` (deg/s) and correlation time ``tau_s`` (s)
    (defaults 120 deg/s and 0.08 s, matched to rats as in RatInABox). ``max_deg_s`` clips |w| after each
    step (None: no clipping). ``dt_ms`` is the step in ms.
    """
    check_positive(dt_ms, "dt_ms")
    check_positive(tau_s, "tau_s")
    check_nonnegative(std_deg_s, "std_deg_s")
    rng = as_rng(rng)
    std = np.deg2rad(std_deg_s)
    bound = np.inf if max_deg_s is None else np.deg2rad(max_deg_s)
    a = np.exp(-dt_ms / 1000.0 / tau_s)
    xi = rng.standard_normal(_shape(n_steps, batch))
    omega = np.empty_like(xi)
    if n_steps == 0:
        return omega
    omega[0] = np.clip(std * xi[0], -bound, bound)
    kick = std * np.sqrt(1.0 - a * a)
    for t in range(1, n_steps):
        omega[t] = np.clip(a * omega[t - 1] + kick * xi[t], -bound, bound)
    return omega


def constant_velocity(n_steps: int, dt_ms: float, rng: int | np.random.Generator | None = None,
                      velocity_deg_s: float | None = None, max_deg_s: float = 120.0,
                      batch: int | None = None) -> np.ndarray:
    """Constant angular velocity (rad/s): ``velocity_deg_s`` if given, else one draw per trial from
    ``U[-max_deg_s, +max_deg_s]`` deg/s. ``dt_ms`` is accepted for a uniform signature and not used."""
    if velocity_deg_s is None:
        w = as_rng(rng).uniform(-max_deg_s, max_deg_s, size=() if batch is None else (batch,))
    else:
        w = np.full(() if batch is None else (batch,), float(velocity_deg_s))
    return np.broadcast_to(np.deg2rad(w), _shape(n_steps, batch)).copy()


def darkness(n_steps: int, dt_ms: float, rng: int | np.random.Generator | None = None,
             batch: int | None = None) -> np.ndarray:
    """No turning (the heading must be held): zeros (rad/s)."""
    return np.zeros(_shape(n_steps, batch))


def saccadic_velocity(n_steps: int, dt_ms: float, rng: int | np.random.Generator | None,
                      std_deg_s: float = 120.0, tau_s: float = 0.08, rate_hz: float = 1.0,
                      amplitude_deg: float = 15.0, duration_ms: float = 100.0, max_deg_s: float | None = None,
                      batch: int | None = None) -> np.ndarray:
    """Fly-like angular velocity (rad/s): :func:`ou_velocity` plus body saccades (FIELD_NOTES: ~15 deg
    turns within 0.1 s). Saccade onsets are Poisson (``rate_hz``); each adds a raised-cosine velocity
    pulse of ``duration_ms`` that turns by ``amplitude_deg`` in a random direction (peak velocity
    ``2 * amplitude / duration``). ``max_deg_s`` clips |w| of the sum (None: no clipping)."""
    check_positive(duration_ms, "duration_ms")
    check_nonnegative(rate_hz, "rate_hz")
    rng = as_rng(rng)
    omega = ou_velocity(n_steps, dt_ms, rng, std_deg_s, tau_s, None, batch)
    L = max(1, int(round(duration_ms / dt_ms)))
    kernel = 1.0 - np.cos(2 * np.pi * (np.arange(L) + 0.5) / L)
    kernel *= np.deg2rad(amplitude_deg) / (kernel.sum() * dt_ms / 1000.0)  # integrates to the amplitude
    shape = _shape(n_steps, batch)
    kicks = (rng.random(shape) < rate_hz * dt_ms / 1000.0) * rng.choice([-1.0, 1.0], size=shape)
    for j in range(min(L, n_steps)):  # causal convolution along time
        omega[j:] += kernel[j] * kicks[: n_steps - j]
    if max_deg_s is not None:
        omega = np.clip(omega, -np.deg2rad(max_deg_s), np.deg2rad(max_deg_s))
    return omega


def integrate_heading(omega: np.ndarray, dt_ms: float, theta0: np.ndarray | float = 0.0) -> np.ndarray:
    """Heading (rad, unwrapped) ``theta0 + cumsum(omega) * dt`` along axis 0; omega in rad/s, dt in ms."""
    return np.asarray(theta0) + np.cumsum(omega, axis=0) * (dt_ms / 1000.0)


def circular_error(decoded: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Signed angular difference ``decoded - theta`` wrapped to [-pi, pi) (rad)."""
    return np.mod(decoded - theta + np.pi, 2 * np.pi) - np.pi


class HeadDirection(Task):
    """Integrate angular velocity into a heading read out as ``[cos theta, sin theta]``.

    Inputs ``[cw, ccw]`` = ``[max(omega, 0), max(-omega, 0)]`` in rad/s, followed, when ``cue_ms > 0``, by
    ``[cos theta_0, sin theta_0]`` during the first ``cue_ms`` ms (0 afterwards): the initial heading is
    drawn from U[0, 2 pi) and must be shown to the network, and the velocity is 0 during the cue. With
    ``cue_ms = 0`` there are only the two velocity inputs and ``theta_0 = 0``.

    Args:
        duration_ms: trial length (ms); ``duration_ms / dt`` steps.
        dt: ms per step.
        velocity: "ou" (:func:`ou_velocity`), "constant" (:func:`constant_velocity`, one speed per trial
            from U[-max, max], max = ``max_deg_s`` or else ``std_deg_s``), "darkness" (zeros) or
            "saccades" (:func:`saccadic_velocity`: OU plus fly-like body saccades, default saccade shape).
        std_deg_s, tau_s, max_deg_s: OU parameters (deg/s, s, deg/s).
        cue_ms: duration of the initial-heading cue (ms).
        tolerance_deg: circular error (deg) below which a step counts as correct.
    """

    name = "head_direction"
    loss = "mse"
    n_outputs = 2

    def __init__(self, duration_ms: float = 2000.0, dt: float = 10.0, velocity: str = "ou",
                 std_deg_s: float = 120.0, tau_s: float = 0.08, max_deg_s: float | None = None,
                 cue_ms: float = 100.0, tolerance_deg: float = 10.0) -> None:
        check_positive(dt, "dt")
        check_positive(tau_s, "tau_s")
        check_positive(tolerance_deg, "tolerance_deg")
        self.velocity = check_choice(velocity, "velocity", VELOCITIES)
        self.dt = float(dt)
        self.n_steps = n_steps(duration_ms, dt, "duration_ms")
        self.n_cue = n_steps(cue_ms, dt, "cue_ms")
        if self.n_cue >= self.n_steps:
            raise ValueError(f"cue_ms={cue_ms} must be shorter than duration_ms={duration_ms}")
        check_nonnegative(std_deg_s, "std_deg_s")
        if max_deg_s is not None:
            check_positive(max_deg_s, "max_deg_s")
        if std_deg_s < 0 or (max_deg_s is not None and max_deg_s <= 0):
            raise ValueError("std_deg_s must be >= 0 and max_deg_s None or > 0")
        self.std_deg_s, self.tau_s, self.max_deg_s = float(std_deg_s), float(tau_s), max_deg_s
        self.tolerance = np.deg2rad(tolerance_deg)
        self.n_inputs = 4 if self.n_cue > 0 else 2
        self._remember(duration_ms=duration_ms, dt=dt, velocity=velocity, std_deg_s=std_deg_s, tau_s=tau_s,
                       max_deg_s=max_deg_s, cue_ms=cue_ms, tolerance_deg=tolerance_deg)

    def _velocity(self, n: int, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        if self.velocity == "ou":
            return ou_velocity(n, self.dt, rng, self.std_deg_s, self.tau_s, self.max_deg_s, batch=batch_size)
        if self.velocity == "constant":
            bound = self.max_deg_s if self.max_deg_s is not None else self.std_deg_s
            return constant_velocity(n, self.dt, rng, max_deg_s=bound, batch=batch_size)
        if self.velocity == "saccades":
            return saccadic_velocity(n, self.dt, rng, self.std_deg_s, self.tau_s, max_deg_s=self.max_deg_s,
                                     batch=batch_size)
        return darkness(n, self.dt, batch=batch_size)

    def _sample(self, batch_size: int, rng: np.random.Generator, split: str) -> TaskBatch:
        B, T, C = batch_size, self.n_steps, self.n_cue
        theta0 = rng.uniform(0.0, 2 * np.pi, size=B) if C > 0 else np.zeros(B)
        omega = np.zeros((T, B))
        omega[C:] = self._velocity(T - C, B, rng)
        theta = integrate_heading(omega, self.dt, theta0)
        inputs = np.zeros((T, B, self.n_inputs))
        inputs[..., 0], inputs[..., 1] = np.maximum(omega, 0.0), np.maximum(-omega, 0.0)
        if C > 0:
            inputs[:C, :, 2], inputs[:C, :, 3] = np.cos(theta0), np.sin(theta0)
        targets = np.stack([np.cos(theta), np.sin(theta)], axis=-1)
        return make_batch(inputs, targets, np.ones_like(targets), theta0=theta0, heading=theta.T,
                          angular_velocity=omega.T)

    def _score(self, outputs: np.ndarray, batch: TaskBatch) -> dict[str, float]:
        decoded = np.arctan2(outputs[..., 1], outputs[..., 0])
        err = circular_error(decoded, batch.meta["heading"].T)
        counted = batch.mask[..., 0] > 0
        err = err[counted]
        return {"accuracy": np.mean(np.abs(err) < self.tolerance),
                "circular_rmse_deg": np.rad2deg(np.sqrt(np.mean(err ** 2)))}
