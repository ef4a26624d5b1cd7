"""The abstract phase model of the oscillator head-direction circuit (Park et al. Eq. 22-28), numpy only.

Phases are in ms (``[0, period)``), angular velocity in rad/s (clockwise positive), ``dt`` in ms::

    phi+(t) = (tau / 2 pi) int_0^t [V(s)]_+ ds + t            mod tau       (Eq. 22)
    phi-(t) = (tau / 2 pi) int_0^t [-V(s)]_+ ds + t - dphi0   mod tau       (Eq. 23)
    dphi(t) = phi+(t) - phi-(t) = (tau / 2 pi) int_0^t V ds + dphi0  mod tau   (Eq. 24-26)

so the heading is ``2 pi dphi / tau``. Readout (Eq. 27-28): a coincidence detector at delay-line position
``varphi`` (ms) receives the two oscillators' spike trains filtered by ``h``; its cycle-averaged response
depends only on ``e = (dphi - varphi)`` wrapped to ``(-tau/2, tau/2]``. For the spiking circuit's
detectors (``h`` = leaky membrane, ``Phi`` = one spike when the summed input crosses threshold), the
second spike of a pair crosses threshold iff it arrives within the window ``|e| <= w`` of the first, so

    f0(dphi, varphi) = (1 / tau) 1[|e| <= w]        spikes per ms, once per cycle             (Eq. 28)

Positions are dense (``n_positions`` per period), pooled into ``n_segments`` and low-pass filtered into
the bump, decoded by population vector -- the same readout as ``HeadDirectionCircuit``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .readout import lowpass, population_vector, wrap


@dataclass
class PhaseModelResult:
    """Eq. 22-28 along a velocity trace (time on axis 0, one sample per input step)."""

    phi_plus: np.ndarray  # ms in [0, period)
    phi_minus: np.ndarray  # ms in [0, period)
    delta_phi: np.ndarray  # ms in [0, period)
    heading: np.ndarray  # rad in [0, 2 pi): 2 pi delta_phi / period
    bump: np.ndarray  # [T, (B,) n_segments] smoothed detector rate per segment (Hz per detector)
    decoded: np.ndarray  # rad: population vector of the bump
    segment_angles: np.ndarray  # rad


def oscillator_phases(angular_velocity: np.ndarray, dt: float, period: float,
                      theta0: float | np.ndarray = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(phi+, phi-) in ms, Eq. 22-23, at the end of each step of ``angular_velocity`` (rad/s, dt ms)."""
    w = np.asarray(angular_velocity, dtype=np.float64)
    t = dt * (np.arange(1, w.shape[0] + 1)).reshape((-1,) + (1,) * (w.ndim - 1))
    k = period / (2 * np.pi) * dt / 1000.0  # ms of phase per (rad/s) per step
    dphi0 = period * np.asarray(theta0, dtype=np.float64) / (2 * np.pi)
    plus = k * np.cumsum(np.maximum(w, 0.0), axis=0) + t
    minus = k * np.cumsum(np.maximum(-w, 0.0), axis=0) + t - dphi0  # Eq. 23: -V^- = [-V]_+
    return np.mod(plus, period), np.mod(minus, period)


def relative_phase(phi_plus: np.ndarray, phi_minus: np.ndarray, period: float) -> np.ndarray:
    """dphi = phi+ - phi- mod period (Eq. 24), ms."""
    return np.mod(np.asarray(phi_plus) - np.asarray(phi_minus), period)


def heading_of(delta_phi: np.ndarray, period: float) -> np.ndarray:
    """The heading (rad, [0, 2 pi)) held in a relative phase (ms)."""
    return wrap(2 * np.pi * np.asarray(delta_phi) / period)


def coincidence_tuning(delta_phi: np.ndarray, positions: np.ndarray, period: float,
                       window: float) -> np.ndarray:
    """Cycle-averaged detector response f0 (Eq. 28), spikes per ms: ``[..., P]`` for relative phases
    ``delta_phi`` [...] (ms) and detector positions ``positions`` [P] (ms of delay)."""
    e = np.mod(np.asarray(delta_phi)[..., None] - np.asarray(positions) + period / 2, period) - period / 2
    return (np.abs(e) <= window) / period


def phase_model(angular_velocity: np.ndarray, dt: float, period: float, n_positions: int = 80,
                n_segments: int = 8, theta0: float | np.ndarray = 0.0,
                coincidence_window: float | None = None, readout_tau: float = 20.0) -> PhaseModelResult:
    """Run the phase model along ``angular_velocity`` ([T] or [T, B] rad/s, one sample per ``dt`` ms).

    Args:
        period: tau (ms). n_positions: detectors on the delay line (dense, one per ``period /
            n_positions`` ms). n_segments: pooling into the ellipsoid-body segments.
        theta0: initial heading (rad). coincidence_window: w in Eq. 28 (ms; default half a segment).
        readout_tau: low-pass filter of the pooled detector rates (ms).
    """
    if n_positions % n_segments:
        raise ValueError(f"n_positions ({n_positions}) must be divisible by n_segments ({n_segments})")
    window = period / n_segments / 2 if coincidence_window is None else float(coincidence_window)
    plus, minus = oscillator_phases(angular_velocity, dt, period, theta0)
    dphi = relative_phase(plus, minus, period)
    positions = period * np.arange(n_positions) / n_positions
    m = n_positions // n_segments
    rate = coincidence_tuning(dphi, positions, period, window) * 1000.0  # Hz per detector
    pooled = rate.reshape(rate.shape[:-1] + (n_segments, m)).mean(-1)
    bump = lowpass(pooled, dt, readout_tau)
    angles = 2 * np.pi * (np.arange(n_segments) * m + (m - 1) / 2) / n_positions
    decoded = population_vector(bump, angles)
    return PhaseModelResult(plus, minus, dphi, heading_of(dphi, period), bump, decoded, angles)
