"""Plots of spiking activity: ``raster``, ``membrane`` and ``rates`` (matplotlib).

Each takes arrays (numpy or torch) shaped ``[T, N]`` or ``[T, B, N]`` (time, [trial,] neuron) — what
``SpikingRNN.spike_trains(u)`` (``[T * substeps, B, N]``), ``Rollout.r`` (spike counts per input
step) or ``Deployment.run(u).spikes`` return — draws into ``ax`` (a new figure when None) and
returns the ``matplotlib.axes.Axes`` (``ax.figure`` is the figure; save it with
``spikedyn.atomic.atomic_save_figure``). Time runs along x: in ms when ``dt`` (ms per row) is
given, else in steps.

    import spikedyn.plot as splot
    z = model.spike_trains(u)                                   # [T * substeps, B, N]
    ax = splot.raster(z, dt=model.dt / model.substeps, trial=0)
    splot.rates(z, dt=model.dt / model.substeps, window_ms=50)  # Hz, mean over trials
"""
from __future__ import annotations

from typing import Any

import numpy as np


def _array(x: Any, what: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim not in (2, 3):
        raise ValueError(f"{what} must be [T, N] or [T, B, N] (time, [trial,] neuron), got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[-1] < 1:
        raise ValueError(f"{what} has no time steps or no neurons (shape {arr.shape})")
    return arr


def _trial(arr: np.ndarray, trial: int | None, what: str) -> np.ndarray:
    """``[T, N]`` of one trial (``[T, B, N]`` input) or the array itself (``[T, N]``)."""
    if arr.ndim == 2:
        return arr
    B = arr.shape[1]
    t = 0 if trial is None else int(trial)
    if not -B <= t < B:
        raise ValueError(f"trial {trial} is out of range: {what} has {B} trials")
    return arr[:, t]


def _neurons(n: int, neurons: Any) -> np.ndarray:
    idx = np.arange(n) if neurons is None else np.atleast_1d(np.asarray(neurons, dtype=np.int64))
    if idx.size == 0 or idx.min() < -n or idx.max() >= n:
        raise ValueError(f"neurons must index 0..{n - 1}, got {neurons!r}")
    return idx


def _time(T: int, dt: float | None) -> tuple[np.ndarray, str]:
    if dt is None:
        return np.arange(T, dtype=np.float64), "time (steps)"
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a finite number of ms > 0, got {dt}")
    return np.arange(T) * float(dt), "time (ms)"


def _axes(ax: Any, figsize: tuple[float, float]) -> Any:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def raster(spikes: Any, dt: float | None = None, trial: int = 0, neurons: Any = None, ax: Any = None,
           color: str = "black", title: str | None = None) -> Any:
    """Spike raster of one trial: a tick at (time, neuron) for every spike.

    Args:
        spikes: ``[T, N]`` or ``[T, B, N]``, nonzero where a neuron spiked (counts > 1 draw one tick).
        dt: ms per row (``model.dt / model.substeps`` for ``spike_trains``); None: steps.
        trial: which trial of a ``[T, B, N]`` array. neurons: indices to show (default all).
    """
    z = _trial(_array(spikes, "spikes"), trial, "spikes")
    idx = _neurons(z.shape[1], neurons)
    t, xlabel = _time(z.shape[0], dt)
    ax = _axes(ax, (7.0, 0.25 * min(len(idx), 40) + 1.5))
    events = [t[z[:, i] != 0] for i in idx]
    ax.eventplot(events, lineoffsets=np.arange(len(idx)), linelengths=0.8, colors=color, linewidths=1.0)
    ax.set_xlim(t[0] - (dt or 1.0) / 2, t[-1] + (dt or 1.0) / 2)
    ax.set_ylim(-0.5, len(idx) - 0.5)
    if len(idx) <= 20:
        ax.set_yticks(np.arange(len(idx)), [str(int(i)) for i in idx])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("neuron")
    n_spikes = int(np.count_nonzero(z[:, idx]))
    ax.set_title(title if title is not None else f"spike raster ({n_spikes} spikes, {len(idx)} neurons)")
    return ax


def membrane(v: Any, dt: float | None = None, trial: int = 0, neurons: Any = None, v_th: float | None = None,
             spikes: Any = None, ax: Any = None, title: str | None = None) -> Any:
    """Membrane potentials of a few neurons over time, with the threshold and spike times.

    Args:
        v: ``[T, N]`` or ``[T, B, N]`` membrane potentials (e.g. ``state.v`` collected from
            ``model.step``; spikedyn's ``v`` is the value before its own spike's reset).
        dt: ms per row; None: steps. neurons: indices (default: the first 5).
        v_th: draw the threshold as a dashed line. spikes: same shape as ``v``; marks each spike.
    """
    vt = _trial(_array(v, "v"), trial, "v")
    idx = _neurons(vt.shape[1], list(range(min(5, vt.shape[1]))) if neurons is None else neurons)
    t, xlabel = _time(vt.shape[0], dt)
    ax = _axes(ax, (7.0, 3.0))
    z = None
    if spikes is not None:
        z = _trial(_array(spikes, "spikes"), trial, "spikes")
        if z.shape != vt.shape:
            raise ValueError(f"spikes have shape {z.shape} per trial, v has {vt.shape}")
    for i in idx:
        (line,) = ax.plot(t, vt[:, i], lw=1.0, label=f"neuron {int(i)}")
        if z is not None:
            hit = z[:, i] != 0
            ax.plot(t[hit], vt[hit, i], "v", color=line.get_color(), ms=4)
    if v_th is not None:
        ax.axhline(float(v_th), color="gray", ls="--", lw=1.0, label="threshold")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("membrane potential v")
    ax.legend(loc="upper right", fontsize="small", ncols=min(len(idx) + (v_th is not None), 3))
    ax.set_title(title if title is not None else "membrane potential")
    return ax


def firing_rates(spikes: Any, dt: float, window_ms: float = 50.0, trial: int | None = None) -> np.ndarray:
    """Firing rates in Hz ``[T, N]``: spikes per ms times 1000, averaged over trials (``trial=None``)
    or of one trial, smoothed by a centred boxcar of ``window_ms`` (at least one step; near the ends
    of the trial it averages over the steps that exist)."""
    z = _array(spikes, "spikes")
    if not (np.isfinite(window_ms) and window_ms > 0):
        raise ValueError(f"window_ms must be a finite number of ms > 0, got {window_ms}")
    _time(1, dt)  # checks dt
    z = z.mean(axis=1) if (z.ndim == 3 and trial is None) else _trial(z, trial, "spikes")
    k = max(1, int(round(window_ms / dt)))
    box = np.ones(k)
    steps = np.convolve(np.ones(z.shape[0]), box, mode="same")  # steps inside the window (fewer at the ends)
    counts = np.stack([np.convolve(z[:, i], box, mode="same") for i in range(z.shape[1])], axis=1)
    return counts / (steps[:, None] * dt) * 1000.0  # spikes per ms -> Hz


def rates(spikes: Any, dt: float, window_ms: float = 50.0, trial: int | None = None, neurons: Any = None,
          population: bool = True, ax: Any = None, title: str | None = None) -> Any:
    """Firing rates (Hz) over time: each selected neuron (thin lines) and the population mean (thick).

    Args:
        spikes: ``[T, N]`` or ``[T, B, N]`` spikes or counts per row; dt: ms per row (required: a
            rate needs a time unit). window_ms: boxcar smoothing. trial: None = mean over trials.
        neurons: indices drawn individually (default: up to 10). population: draw the mean of all.
    """
    z = _array(spikes, "spikes")
    r = firing_rates(z, dt, window_ms, trial)
    idx = _neurons(r.shape[1], list(range(min(10, r.shape[1]))) if neurons is None else neurons)
    t, xlabel = _time(r.shape[0], dt)
    ax = _axes(ax, (7.0, 3.0))
    for i in idx:
        ax.plot(t, r[:, i], lw=0.8, alpha=0.6)
    if population:
        ax.plot(t, r.mean(axis=1), color="black", lw=2.0, label=f"mean of {r.shape[1]} neurons")
        ax.legend(loc="upper right", fontsize="small")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("firing rate (Hz)")
    ax.set_ylim(bottom=0.0)
    what = "mean over trials" if (z.ndim == 3 and trial is None) else "one trial"
    ax.set_title(title if title is not None else f"firing rates ({what}, {window_ms:g} ms window)")
    return ax
