"""Initialisations (gaussian, orthogonal, zeros, torch_default, PTA), the PTA region maps, the LSTM body
and the long-memory benchmark plumbing."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spikedyn.analysis.pta_map import block_exponents, pta_region_map
from spikedyn.init import DEFAULT_ALPHA_MAX, gaussian, orthogonal, pta, pta_matrix, torch_default, zeros
from spikedyn.models import GRURNN, LSTMRNN, RateRNN, SpikingRNN

pytestmark = pytest.mark.usefixtures("one_thread_seeded")


def test_gaussian_orthogonal_zeros_default_statistics():
    m = gaussian(RateRNN(2, 400, 1), gain=0.7, seed=1)
    assert abs(float(m.W_rec.detach().std()) - 0.7 / 20) < 0.002
    torch.testing.assert_close(gaussian(RateRNN(2, 400, 1), 0.7, seed=1).W_rec, m.W_rec)  # seeded
    g = orthogonal(GRURNN(2, 30, 1), gain=1.3, seed=0)
    for blk in g.W_rec.detach().double().split(30):
        torch.testing.assert_close(blk @ blk.T, 1.69 * torch.eye(30, dtype=torch.float64), atol=1e-5, rtol=0)
    assert float(zeros(RateRNN(2, 10, 1)).W_rec.detach().abs().max()) == 0.0
    d = torch_default(LSTMRNN(2, 300, 1), seed=0).W_rec.detach()
    assert float(d.abs().max()) <= 1 / math.sqrt(300) and abs(float(d.var()) - 1 / 900) < 1e-4


def test_spiking_mask_kept():
    m = gaussian(SpikingRNN(2, 12, 1, self_connections=False), gain=2.0, seed=0)
    assert float(torch.diagonal(m.W_rec.detach()).abs().max()) == 0.0


def test_pta_matrix_is_block_rotation():
    W = pta_matrix(7, [1.2, 0.5, 2.0], [0.3, 1.0, 2.5])
    eig = np.sort_complex(np.linalg.eigvals(W.numpy()))
    expected = np.sort_complex(np.array([a * np.exp(s * 1j * t) for a, t in ((1.2, 0.3), (0.5, 1.0), (2.0, 2.5))
                                         for s in (1, -1)] + [0]))  # fmt: skip
    np.testing.assert_allclose(eig, expected, atol=1e-12)
    assert float(W[:2, 2:].abs().max()) == 0.0 and float(W[6].abs().max()) == 0.0  # blocks only; odd unit zero


@pytest.mark.parametrize("model,regime", [(RateRNN(1, 32, 1), "discrete"), (RateRNN(1, 32, 1, alpha=0.2), "continuous"),
                                          (GRURNN(1, 32, 1), "gru")])  # fmt: skip
def test_pta_samples_blocks_with_zero_exponent(model, regime):
    """Each sampled block, re-simulated from scratch (not read from the cached map), has lambda_1 ~ 0."""
    pta(model, seed=3)
    N = model.n_hidden
    W = model.W_rec.detach().double()[-N:]  # GRU: the candidate block
    alphas = np.array([float(torch.linalg.matrix_norm(W[i : i + 2, i : i + 2], 2)) for i in range(0, N, 2)])
    thetas = np.array([math.atan2(float(W[i + 1, i]), float(W[i, i])) for i in range(0, N, 2)])
    assert np.all(alphas <= DEFAULT_ALPHA_MAX[regime] + 1e-9) and np.all((thetas > 0) & (thetas < math.pi))
    steps = 2000 if regime == "continuous" else 3000  # continuous: RK4 steps of 0.1 tau
    lam, moving = block_exponents(alphas, thetas, regime, steps=steps, warmup=500, seed=7)
    assert np.all(moving)
    assert np.all(np.abs(lam[:, 0]) < 0.02)


def test_pta_gru_rests_as_independent_oscillators():
    m = pta(GRURNN(3, 8, 1).double(), seed=0)
    assert float(m.W_rec[:16].detach().abs().max()) == 0.0 and float(m.b.detach().abs().max()) == 0.0
    h = torch.randn(5, 8, dtype=torch.float64)
    h_next = m.step(m.init_state(5)._replace(h=h), torch.zeros(5, 3, dtype=torch.float64))[0].h
    Wn = m.W_rec[16:]
    torch.testing.assert_close(h_next, 0.5 * h + 0.5 * torch.tanh(0.5 * h @ Wn.T))


def test_pta_region_map_cache_matches_fresh_simulation():
    r = pta_region_map("discrete")
    rng = np.random.default_rng(0)
    ia, it = rng.integers(len(r.alphas), size=40), rng.integers(len(r.thetas), size=40)
    lam, moving = block_exponents(r.alphas[ia], r.thetas[it], "discrete", steps=3000, warmup=1000, seed=11)
    clear = np.abs(np.abs(r.lam[ia, it, 0]) - 0.01) > 0.01  # points far from the tolerance edge
    cached_zero = r.zero_mask()[ia, it]
    fresh_zero = (np.abs(lam[:, 0]) < 0.01) & moving
    assert clear.sum() > 20
    np.testing.assert_array_equal(cached_zero[clear], fresh_zero[clear])


def test_pta_region_map_reads_the_shipped_cache_and_writes_nothing_by_default(tmp_path, monkeypatch):
    from spikedyn.analysis import pta_map

    def no_compute(*args, **kwargs):
        raise AssertionError("the shipped cache should have been used")

    with monkeypatch.context() as m:  # the shipped cache is used as it is: nothing computed
        m.setattr(pta_map, "compute_region_map", no_compute)
        assert pta_map.pta_region_map("gru").lam.shape == (60, 60, 2)
    # a missing (or stale) cache: the map is computed, and not written into the package unless save=True
    monkeypatch.setattr(pta_map, "DATA_DIR", tmp_path)
    monkeypatch.setitem(pta_map.DEFAULTS, "discrete", dict(alpha_max=3.0, n_alpha=4, n_theta=3, steps=40, warmup=10,
                                                            dt=1.0))  # fmt: skip
    r = pta_map.pta_region_map("discrete")
    assert r.lam.shape == (4, 3, 2) and list(tmp_path.iterdir()) == []
    pta_map.pta_region_map("discrete", save=True)  # regenerating the cache is asked for explicitly
    assert [p.name for p in tmp_path.iterdir()] == ["pta_region_discrete.npz"]
    monkeypatch.setattr(pta_map, "compute_region_map", no_compute)
    np.testing.assert_array_equal(pta_map.pta_region_map("discrete").lam, r.lam)


def test_one_coherence_max():
    import spikedyn.tasks.decision as decision

    import spikedyn.experiments.pulse as pulse

    assert pulse.COHERENCE_MAX is decision.COHERENCE_MAX == 0.1857  # McMahan et al. 2024 Sec. 2.2, defined once


def test_pta_errors():
    with pytest.raises(ValueError, match="tanh"):
        pta(RateRNN(1, 8, 1, activation="relu"))
    with pytest.raises(ValueError, match="N // 2"):
        pta(RateRNN(1, 8, 1), alphas=[1.2, 1.2], thetas=[0.5, 0.5])
    with pytest.raises(ValueError, match="both"):
        pta(RateRNN(1, 8, 1), alphas=1.2)
    with pytest.raises(ValueError, match="supports"):
        pta(LSTMRNN(1, 8, 1))


def test_lstm_equals_torch_lstm_and_step_loop():
    ref = torch.nn.LSTM(3, 10).double()
    m = LSTMRNN(3, 10, 2).double().load_torch_lstm(ref)
    u = torch.randn(20, 4, 3, dtype=torch.float64)
    a, b = m(u), m.loop(u)
    torch.testing.assert_close(a.r, ref(u)[0])
    torch.testing.assert_close(a.y, b.y)
    torch.testing.assert_close(a.state.c, b.state.c)


def test_gru_native_forward_equals_step_loop_and_gradients():
    from spikedyn.models import GRURNN

    m = GRURNN(3, 9, 2).double()
    u = torch.randn(15, 4, 3, dtype=torch.float64)
    a, b = m(u), m.loop(u)
    torch.testing.assert_close(a.y, b.y)
    ga = torch.autograd.grad(a.y.sum(), list(m.parameters()))
    gb = torch.autograd.grad(b.y.sum(), list(m.parameters()))
    for x, y in zip(ga, gb, strict=True):
        torch.testing.assert_close(x, y)


def test_benchmark_models_share_size_and_differ_only_in_w_rec():
    from spikedyn.experiments.long_memory import MODELS, build_benchmark_model

    models = {name: build_benchmark_model(name, 10, 9, 16, seed=0) for name in MODELS}
    assert {m.n_hidden for m in models.values()} == {16}
    torch.testing.assert_close(models["tanh"].W_in, models["tanh-pta"].W_in)
    W = models["tanh-pta"].W_rec.detach()
    assert float(W[:2, 2:].abs().max()) == 0.0
    assert float(models["tanh"].W_in.detach().abs().max()) <= 0.25  # PyTorch's U(-1/sqrt(N), 1/sqrt(N))
