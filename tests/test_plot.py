"""spikedyn.plot: raster, membrane and rate plots of a real spiking run, rendered to PNG atomically."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import spikedyn  # noqa: E402
import spikedyn.plot as splot  # noqa: E402
from spikedyn.atomic import atomic_save_figure  # noqa: E402
from spikedyn.models import SpikingRNN  # noqa: E402


@pytest.fixture(scope="module")
def run():
    torch.manual_seed(0)
    m = SpikingRNN(2, 12, 1, dt=2.0, substeps=2, tau_mem=10.0, reset="zero")
    with torch.no_grad():
        m.W_in.mul_(4.0)
    u = torch.rand(50, 3, 2, generator=torch.Generator().manual_seed(0))
    z = m.spike_trains(u)  # [100, 3, 12], substeps of 1 ms
    state, vs = m.init_state(3), []
    with torch.no_grad():
        for u_t in u:
            state, _ = m.step(state, u_t)
            vs.append(state.v)
    return m, z, torch.stack(vs)


def _png(fig, path) -> None:
    atomic_save_figure(fig, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 2000
    assert not list(path.parent.glob("*.tmp"))


def test_raster_draws_every_spike_in_ms(run, tmp_path):
    m, z, _ = run
    dt_sub = m.dt / m.substeps
    ax = splot.raster(z, dt=dt_sub, trial=1)
    assert ax.get_xlabel() == "time (ms)" and ax.get_ylabel() == "neuron"
    coll = ax.collections
    assert len(coll) == m.n_hidden
    drawn = sum(len(c.get_positions()) for c in coll)
    assert drawn == int(z[:, 1].sum()) > 20  # one tick per spike of trial 1
    first = coll[0].get_positions()
    np.testing.assert_allclose(first, np.flatnonzero(z[:, 1, 0].numpy()) * dt_sub)  # times in ms
    _png(ax.figure, tmp_path / "raster.png")
    ax = splot.raster(z[:, 0].numpy(), neurons=[3, 5])  # [T, N] numpy, steps, a subset
    assert ax.get_xlabel() == "time (steps)" and len(ax.collections) == 2
    plt.close(ax.figure)
    assert spikedyn.plot.raster is splot.raster  # reachable as spikedyn.plot


def test_membrane_and_rates(run, tmp_path):
    m, z, v = run
    ax = splot.membrane(v, dt=m.dt, v_th=m.v_th, neurons=[0, 1], spikes=(v > m.v_th).float())
    assert ax.get_ylabel() == "membrane potential v" and ax.get_xlabel() == "time (ms)"
    np.testing.assert_allclose(ax.lines[0].get_ydata(), v[:, 0, 0].numpy())
    _png(ax.figure, tmp_path / "membrane.png")
    dt_sub = m.dt / m.substeps
    r = splot.firing_rates(z, dt=dt_sub, window_ms=1000.0)  # window >> trial: the mean rate, in Hz
    mid = r.shape[0] // 2
    want = z.double().mean(dim=1).sum(dim=0).numpy() / (z.shape[0] * dt_sub) * 1000.0  # spikes per second
    np.testing.assert_allclose(r[mid], want, rtol=1e-12)
    ax = splot.rates(z, dt=dt_sub, window_ms=10.0)
    assert ax.get_ylabel() == "firing rate (Hz)"
    np.testing.assert_allclose(ax.lines[-1].get_ydata(), splot.firing_rates(z, dt_sub, 10.0).mean(axis=1))
    _png(ax.figure, tmp_path / "rates.png")


def test_plot_inputs_are_checked():
    with pytest.raises(ValueError, match=r"\[T, N\] or \[T, B, N\]"):
        splot.raster(np.zeros(5))
    with pytest.raises(ValueError, match="trial 4 is out of range"):
        splot.raster(np.zeros((5, 2, 3)), trial=4)
    with pytest.raises(ValueError, match="dt must be"):
        splot.raster(np.zeros((5, 3)), dt=float("nan"))
    with pytest.raises(ValueError, match="neurons must index"):
        splot.raster(np.zeros((5, 3)), neurons=[7])
    with pytest.raises(ValueError, match="no time steps"):
        splot.rates(np.zeros((0, 3)), dt=1.0)
    plt.close("all")
