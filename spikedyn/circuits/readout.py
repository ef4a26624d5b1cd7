"""Readout and scores shared by the head-direction circuits (numpy only).

Angles are in rad, headings measured clockwise (the ``head_direction`` task's convention); time steps
``dt`` in ms. Arrays carry time on axis 0.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from ..tasks.head_direction import circular_error


@dataclass
class HDResult:
    """What a head-direction circuit's ``run`` returns (time on axis 0, one sample per input step).

    Attributes:
        heading: true heading, rad in [0, 2 pi), [T] or [T, B].
        decoded: population-vector readout of ``bump``, rad in [0, 2 pi); NaN while the bump is silent.
        bump: smoothed activity per segment, [T, (B,) n_segments] (Hz per neuron).
        spikes: recorded spike trains ``name -> [T_sim, (B)]`` bool at the simulation step, or None.
        dt: ms per sample of heading / decoded / bump; ``sim_dt``: ms per step of ``spikes``.
        phase_heading: the heading held in the oscillators' relative phase (rad; circuit only, else None).
        segment_angles: preferred heading of each segment (rad).
    """

    heading: np.ndarray
    decoded: np.ndarray
    bump: np.ndarray
    spikes: dict[str, np.ndarray] | None
    dt: float
    sim_dt: float
    segment_angles: np.ndarray
    phase_heading: np.ndarray | None = None

    def error(self, start_ms: float = 0.0) -> np.ndarray:
        """Signed circular error ``decoded - heading`` (rad) from ``start_ms`` on."""
        k = int(round(start_ms / self.dt))
        return circular_error(self.decoded[k:], self.heading[k:])

    def rmse_deg(self, start_ms: float = 0.0) -> np.ndarray:
        """Circular RMSE (deg) of the decoded heading from ``start_ms`` on (one value per instance)."""
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column (a dead circuit) -> NaN
            return np.rad2deg(np.sqrt(np.nanmean(self.error(start_ms) ** 2, axis=0)))


def lowpass(x: np.ndarray, dt: float, tau: float) -> np.ndarray:
    """Exponential filter along axis 0: ``y_k = a y_{k-1} + (1 - a) x_k``, ``a = exp(-dt / tau)`` (ms);
    tau = 0 returns ``x``."""
    if tau <= 0:
        return np.asarray(x, dtype=np.float64)
    a = np.exp(-dt / tau)
    return lfilter([1.0 - a], [1.0, -a], np.asarray(x, dtype=np.float64), axis=0)


def population_vector(bump: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Angle (rad, [0, 2 pi)) of ``sum_s bump_s exp(i angle_s)`` over the last axis; NaN when all zero."""
    z = np.tensordot(np.asarray(bump, dtype=np.float64), np.exp(1j * np.asarray(angles)), axes=([-1], [0]))
    out = np.mod(np.angle(z), 2 * np.pi)
    return np.where(np.abs(z) > 1e-12, out, np.nan)


def wrap(theta: np.ndarray) -> np.ndarray:
    return np.mod(theta, 2 * np.pi)


def circular_mean(theta: np.ndarray, axis: int = 0) -> np.ndarray:
    return np.angle(np.nanmean(np.exp(1j * theta), axis=axis))


def drift_deg_per_s(decoded: np.ndarray, dt: float, start_ms: float, window_ms: float = 100.0) -> np.ndarray:
    """Bump drift (deg/s): the net change of the decoded heading between a window at ``start_ms`` and
    the last window of the run (means over ``window_ms``), unwrapped through every sample in between so
    that full turns count, divided by the time between the two windows. Signed, per instance; NaN where
    the decoded heading is never defined (a silent bump)."""
    k0, w = int(round(start_ms / dt)), max(1, int(round(window_ms / dt)))
    x = np.asarray(decoded[k0:], dtype=np.float64)
    if x.shape[0] < 2 * w:
        raise ValueError(f"the run is too short to measure drift after {start_ms} ms "
                         f"with {window_ms} ms windows")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column (a dead circuit) -> NaN
        filled = np.where(np.isnan(x), np.nanmean(x, axis=0), x)
    path = np.unwrap(filled, axis=0)
    first = np.mean(path[:w], axis=0)
    last = np.mean(path[-w:], axis=0)
    seconds = (x.shape[0] - w) * dt / 1000.0
    return np.rad2deg(last - first) / seconds


def tuning_curves(bump: np.ndarray, heading: np.ndarray, n_bins: int = 72) -> tuple[np.ndarray, np.ndarray]:
    """Mean activity of each segment as a function of the true heading: (bin centres [n_bins] rad,
    curves [n_bins, n_segments]); bins never visited are NaN. ``bump`` [T, S], ``heading`` [T]."""
    edges = np.linspace(0, 2 * np.pi, n_bins + 1)
    which = np.clip(np.digitize(wrap(heading), edges) - 1, 0, n_bins - 1)
    sums = np.zeros((n_bins, bump.shape[-1]))
    np.add.at(sums, which, bump)
    n = np.bincount(which, minlength=n_bins)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return 0.5 * (edges[:-1] + edges[1:]), np.where(n > 0, sums / np.maximum(n, 1), np.nan)
