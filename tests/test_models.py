"""Models: forward equals the step loop, and each body equals an independent reference."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from spikedyn.models import GRURNN, RateRNN, SpikingRNN, build, from_config, pseudo_derivative, spike


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _inputs(T=30, B=5, I=3, scale=1.0, dtype=torch.float32):
    return scale * torch.randn(T, B, I, dtype=dtype)


@pytest.mark.parametrize("activation", ["tanh", "relu", "shifted_tanh", "softplus"])
@pytest.mark.parametrize("alpha", [1.0, 0.1])
def test_rate_forward_equals_step_loop(activation, alpha):
    m = RateRNN(3, 16, 2, alpha=alpha, activation=activation)
    u = _inputs()
    a, b = m(u), m.loop(u)
    torch.testing.assert_close(a.y, b.y)
    torch.testing.assert_close(a.r, b.r)
    torch.testing.assert_close(a.state.x, b.state.x)


def test_rate_alpha_one_tanh_is_torch_rnn():
    """alpha = 1 with tanh is the vanilla RNN: r_t equals torch.nn.RNN's hidden state."""
    ref = torch.nn.RNN(3, 16, nonlinearity="tanh")
    m = RateRNN(3, 16, 2, alpha=1.0, activation="tanh")
    with torch.no_grad():
        m.W_in.copy_(ref.weight_ih_l0)
        m.W_rec.copy_(ref.weight_hh_l0)
        m.b.copy_(ref.bias_ih_l0 + ref.bias_hh_l0)
    u = _inputs()
    h, _ = ref(u)
    torch.testing.assert_close(m(u).r, h, atol=1e-6, rtol=1e-5)


def test_rate_leaky_matches_numpy_euler():
    m = RateRNN(2, 8, 1, alpha=0.2, activation="shifted_tanh").double()
    u = _inputs(T=20, B=3, I=2, dtype=torch.float64)
    W_in, W_rec, b = (p.detach().numpy() for p in (m.W_in, m.W_rec, m.b))
    x = np.zeros((3, 8))
    for t in range(20):
        x = 0.8 * x + 0.2 * ((1 + np.tanh(x)) @ W_rec.T + u[t].numpy() @ W_in.T + b)
    np.testing.assert_allclose(m(u).state.x.detach().numpy(), x, rtol=1e-12, atol=1e-12)


def test_rate_noise_and_initial_state_are_seeded():
    m = RateRNN(3, 16, 2, alpha=0.1, noise_std=0.1, x0_std=0.5)
    u = _inputs()
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    torch.testing.assert_close(m(u, generator=g1).y, m(u, generator=g2).y)
    assert not torch.allclose(m(u).y, m(u).y)


def test_rate_bptt_equals_hand_derived_adjoint():
    """Autograd BPTT vs a hand-written adjoint recursion for the leaky tanh RNN (float64)."""
    T, B, I, N, O, a = 15, 2, 2, 6, 1, 0.3
    m = RateRNN(I, N, O, alpha=a, activation="tanh").double()
    u = _inputs(T, B, I, dtype=torch.float64)
    tgt = torch.randn(T, B, O, dtype=torch.float64)
    loss = ((m(u).y - tgt) ** 2).sum()
    loss.backward()
    W_in, W_rec, b, W_out, b_out = (p.detach().numpy() for p in (m.W_in, m.W_rec, m.b, m.W_out, m.b_out))
    un, tn = u.numpy(), tgt.numpy()
    xs = [np.zeros((B, N))]
    for t in range(T):
        xs.append((1 - a) * xs[-1] + a * (np.tanh(xs[-1]) @ W_rec.T + un[t] @ W_in.T + b))
    g = {k: 0.0 for k in ("W_in", "W_rec", "b", "W_out", "b_out")}
    lam = np.zeros((B, N))  # dL/dx_{t+1}, accumulated backwards
    for t in reversed(range(T)):
        x1, x0 = xs[t + 1], xs[t]
        err = 2 * (np.tanh(x1) @ W_out.T + b_out - tn[t])
        g["W_out"] = g["W_out"] + err.T @ np.tanh(x1)
        g["b_out"] = g["b_out"] + err.sum(0)
        lam = lam + (err @ W_out) * (1 - np.tanh(x1) ** 2)
        g["W_rec"] = g["W_rec"] + a * lam.T @ np.tanh(x0)
        g["W_in"] = g["W_in"] + a * lam.T @ un[t]
        g["b"] = g["b"] + a * lam.sum(0)
        lam = lam * (1 - a) + (a * lam @ W_rec) * (1 - np.tanh(x0) ** 2)
    for name, p in m.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), g[name], rtol=1e-9, atol=1e-12, err_msg=name)


def test_gru_equals_torch_gru():
    ref = torch.nn.GRU(3, 16)
    m = GRURNN(3, 16, 2).load_torch_gru(ref)
    u = _inputs()
    h, _ = ref(u)
    torch.testing.assert_close(m(u).r, h, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(m(u).y, m.loop(u).y)


SPIKING_VARIANTS = [
    dict(neuron="lif"),
    dict(neuron="lif", reset="zero", tau_syn=5.0, delay_in=1),
    dict(neuron="alif", refractory=2.0, self_connections=False),
    dict(neuron="alif", n_adaptive=4, substeps=3, delay_rec=2, surrogate="triangle"),
    dict(neuron="lif", substeps=4, surrogate="atan", tau_mem=float("inf")),
]


@pytest.mark.parametrize("kw", SPIKING_VARIANTS)
def test_spiking_forward_equals_step_loop(kw):
    m = SpikingRNN(3, 16, 2, **kw)
    u = _inputs(scale=3.0)
    a, b = m(u), m.loop(u)
    assert a.r.sum() > 0, "the test input must make the network spike"
    torch.testing.assert_close(a.r, b.r)
    torch.testing.assert_close(a.y, b.y)
    for x, y in zip(a.state, b.state):
        torch.testing.assert_close(x, y)
    # the readout sees the filtered spikes: y = r̄ W_outᵀ + b_out, and r̄ at the last step is the state's
    rbar = m.filtered_spikes(u)
    torch.testing.assert_close(rbar @ m.W_out.T + m.b_out, a.y.detach())
    torch.testing.assert_close(rbar[-1], a.state.rbar.detach())


def test_spike_surrogates_forward_strict_and_backward_is_pseudo_derivative():
    x = torch.tensor([-0.5, 0.0, 1e-9, 0.3], requires_grad=True)
    for name in ("fast_sigmoid", "triangle", "atan"):
        z = spike(x, name, None, 1.0)
        assert z.tolist() == [0.0, 0.0, 1.0, 1.0]
        (g,) = torch.autograd.grad(z.sum(), x)
        torch.testing.assert_close(g, pseudo_derivative(x.detach(), name, {"fast_sigmoid": 25.0,
                                   "triangle": 0.3, "atan": 2.0}[name], 1.0))
    # e-prop's pseudo-derivative: gamma / v_th * max(0, 1 - |x| / v_th)
    torch.testing.assert_close(pseudo_derivative(torch.tensor([0.0, 0.3, 0.9]), "triangle", 0.3, 0.6),
                               torch.tensor([0.5, 0.25, 0.0]))


def _lava_float_reference(W_in, W_rec, bias, du, dv, vth, x):
    """Lava 0.10 semantics, written from its source description (FIELD_NOTES): float LIF
    ``u = u(1-du) + a_in; v = v(1-dv) + u + bias; s = v > vth; v[s] = 0`` with every Dense sending the
    previous step's accumulation (input path: one step late; recurrent path: z(t-1))."""
    T, N = x.shape[0], W_rec.shape[0]
    u, v, s = np.zeros(N), np.zeros(N), np.zeros(N)
    a_in_buf, a_rec_buf = np.zeros(N), np.zeros(N)
    out = []
    for t in range(T):
        a_in = a_in_buf + a_rec_buf
        u = u * (1 - du) + a_in
        v = v * (1 - dv) + u + bias
        s = (v > vth).astype(float)
        v[s > 0] = 0.0
        out.append(s)
        a_in_buf, a_rec_buf = W_in @ x[t], W_rec @ s
    return np.array(out)


def test_lif_expresses_lava_float_lif_exactly():
    torch.set_default_dtype(torch.float64)
    try:
        N, I, T = 40, 4, 300
        m = SpikingRNN(I, N, 1, du=0.1, dv=0.05, v_th=1.0, reset="zero", delay_in=1, gain=3.0)
        with torch.no_grad():
            m.b.uniform_(0.0, 0.06)
        x = (torch.rand(T, 1, I) < 0.2).double()
        got = m.spike_trains(x)[:, 0].numpy()
        ref = _lava_float_reference(m.W_in.detach().numpy(), m.W_rec.detach().numpy(), m.b.detach().numpy(),
                                    0.1, 0.05, 1.0, x[:, 0].numpy())
        assert ref.sum() > 100
        np.testing.assert_array_equal(got, ref)
    finally:
        torch.set_default_dtype(torch.float32)


def test_alif_threshold_adapts_and_refractory_holds():
    m = SpikingRNN(1, 1, 1, neuron="alif", tau_mem=10.0, beta_adapt=0.5, tau_adapt=500.0, refractory=3.0)
    with torch.no_grad():
        m.W_rec.zero_()
        m.W_in.fill_(0.6)
    z = m.spike_trains(torch.ones(400, 1, 1))[:, 0, 0].numpy()
    t = np.flatnonzero(z)
    isi = np.diff(t)
    assert len(t) > 5 and isi.min() > 3, "refractory period: at least 3 silent steps after each spike"
    assert isi[-1] > isi[0], "adaptation lengthens inter-spike intervals"
    m_lif = SpikingRNN(1, 1, 1, neuron="lif", tau_mem=10.0)
    with torch.no_grad():
        m_lif.W_rec.zero_()
        m_lif.W_in.fill_(0.6)
    isi_lif = np.diff(np.flatnonzero(m_lif.spike_trains(torch.ones(400, 1, 1))[:, 0, 0].numpy()))
    assert isi_lif.max() == isi_lif.min(), "a LIF neuron under constant drive fires regularly"


def test_input_delay_shifts_spikes_by_one_step():
    base = SpikingRNN(2, 10, 1, gain=0.0)
    delayed = SpikingRNN(2, 10, 1, gain=0.0, delay_in=1)
    delayed.load_state_dict(base.state_dict())
    x = 3 * torch.rand(50, 2, 2)
    z0, z1 = base.spike_trains(x), delayed.spike_trains(x)
    assert z0.sum() > 0
    torch.testing.assert_close(z1[1:], z0[:-1])


def test_self_connections_are_excluded_when_asked():
    m = SpikingRNN(2, 10, 1, self_connections=False)
    assert torch.all(torch.diagonal(m.W_rec_eff) == 0)
    with torch.no_grad():
        m.W_rec.add_(1.0)  # an optimiser step on the diagonal must not leak into the dynamics
    assert torch.all(torch.diagonal(m.W_rec_eff) == 0)


@pytest.mark.parametrize("name", ["rate", "gru", "lif", "alif"])
def test_config_round_trip(name):
    m = build(name, 3, 2, n_hidden=12)
    m2 = from_config(m.config())
    m2.load_state_dict(m.state_dict())
    u = _inputs(scale=2.0)
    torch.testing.assert_close(m(u).y, m2(u).y)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="activation"):
        RateRNN(2, 4, 1, activation="sigmoid")
    with pytest.raises(ValueError, match="alpha"):
        RateRNN(2, 4, 1, alpha=0.0)
    with pytest.raises(ValueError, match="neuron"):
        SpikingRNN(2, 4, 1, neuron="hh")
    with pytest.raises(ValueError, match="surrogate"):
        SpikingRNN(2, 4, 1, surrogate="relu")
    with pytest.raises(ValueError, match=r"shape \[T, B, 2\]"):
        RateRNN(2, 4, 1)(torch.zeros(5, 2, 3))
