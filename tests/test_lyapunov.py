"""Lyapunov spectra, tangent maps and adjoints against systems with known answers and against autograd."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from spikedyn.analysis import (
    LinearSystem,
    adjoint_norms,
    chaotic_network,
    dynamics_for,
    fading_memory_network,
    limit_cycle_network,
    line_attractor,
    lyapunov_spectrum,
    max_lyapunov_perturbation,
    two_fixed_points,
)
from spikedyn.analysis.jacobian import AutogradDynamics
from spikedyn.models import GRURNN, LSTMRNN, RateRNN, SpikingRNN

pytestmark = pytest.mark.usefixtures("one_thread_seeded")


# -- reference systems with known spectra ------------------------------------------------------------------
def test_line_attractor_spectrum():
    m = line_attractor()
    T = int(60 / m.dt)
    spec = lyapunov_spectrum(m, m.autonomous_input(T, 2), warmup=T // 3)
    assert abs(spec[0]) < 0.02
    np.testing.assert_allclose(spec, [0, -2, -3, -3, -3, -3], atol=0.02)


def test_linear_system_spectrum_is_real_part_of_eigenvalues():
    rng = np.random.default_rng(3)
    A = 0.6 * rng.normal(size=(5, 5)) - 0.5 * np.eye(5)  # mixes real eigenvalues and a complex pair
    eig = np.sort(np.linalg.eigvals(A).real)[::-1]
    assert np.iscomplex(np.linalg.eigvals(A)).any()
    m = LinearSystem(A, dt=0.1)
    spec = lyapunov_spectrum(m, m.autonomous_input(4000, 1), warmup=1000, reortho_every=4, x0_std=0.0)
    np.testing.assert_allclose(spec, eig, atol=1e-3)


def test_two_fixed_points_all_negative():
    m = two_fixed_points(dt=0.1)
    T = int(40 / m.dt)
    spec = lyapunov_spectrum(m, m.autonomous_input(T, 3), warmup=T // 2)
    assert spec[0] < -0.5  # theory: -0.65 at either fixed point


def test_limit_cycle_has_exactly_one_zero_exponent():
    m = limit_cycle_network(dt=0.1)
    T = int(300 / m.dt)
    spec = lyapunov_spectrum(m, m.autonomous_input(T, 1), k=6, warmup=T // 3, reortho_every=2)
    near_zero = np.abs(spec) < 0.02
    assert near_zero.sum() == 1 and near_zero[0]
    assert np.all(spec[1:] < -0.02)


def test_chaotic_network_has_positive_exponent():
    m = chaotic_network(dt=0.1)
    T = int(300 / m.dt)
    spec = lyapunov_spectrum(m, m.autonomous_input(T, 1), k=3, warmup=T // 3, reortho_every=4)
    assert spec[0] > 0.02
    assert abs(spec[1]) < 0.02  # the flow direction of an autonomous ODE


def test_two_trajectory_estimate_matches_qr_on_chaotic_rate_net():
    torch.manual_seed(1)
    m = RateRNN(1, 60, 1, alpha=1.0, gain=2.0)
    u = torch.zeros(1500, 2, 1)
    qr = lyapunov_spectrum(m, u, k=1, warmup=500, unit="per_step")[0]
    two = max_lyapunov_perturbation(m, u, warmup=500, eps=1e-8, renorm_every=5, unit="per_step")
    assert qr > 0.05
    assert abs(two - qr) < 0.02 * qr


# -- tangent maps against autograd -------------------------------------------------------------------------
def _compare_tangent(model, state, u_t):
    model = model.double()
    closed = dynamics_for(model)
    auto = AutogradDynamics(model)
    Q = torch.randn(state[0].shape[0], closed.dim, 4, dtype=torch.float64)
    _, t_closed = closed.step(closed.start(state), u_t)
    _, t_auto = auto.step(state, u_t)
    torch.testing.assert_close(t_closed(Q), t_auto(Q), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("activation", ["tanh", "relu", "softplus", "shifted_tanh"])
def test_rate_jacobian_matches_autograd(activation):
    m = RateRNN(3, 12, 2, alpha=0.3, activation=activation)
    state = m.double().init_state(5)._replace(x=torch.randn(5, 12, dtype=torch.float64))
    _compare_tangent(m, state, torch.randn(5, 3, dtype=torch.float64))


def test_gru_jacobian_matches_autograd():
    m = GRURNN(3, 10, 2)
    state = m.double().init_state(4)._replace(h=torch.randn(4, 10, dtype=torch.float64))
    _compare_tangent(m, state, torch.randn(4, 3, dtype=torch.float64))


def test_ode_jacobian_matches_autograd():
    m = chaotic_network(n=15, seed=2)
    state = m.double().init_state(3)._replace(x=torch.randn(3, 15, dtype=torch.float64))
    _compare_tangent(m, state, torch.zeros(3, 1, dtype=torch.float64))


@pytest.mark.parametrize("neuron,reset,tau_syn,detach", [("lif", "subtract", 0.0, True), ("alif", "zero", 5.0, False),
                                                         ("alif", "subtract", 5.0, False)])
def test_spiking_surrogate_jacobian_matches_autograd(neuron, reset, tau_syn, detach):
    """The hand-written surrogate tangent equals autograd through the model's own substep, with the
    previous spike written as a straight-through function of (v, a) that carries psi."""
    from spikedyn.models.spiking import spiking_substep

    torch.manual_seed(2)
    m = SpikingRNN(2, 8, 1, neuron=neuron, reset=reset, tau_syn=tau_syn, detach_reset=detach, substeps=1,
                   surrogate="triangle", v_th=0.5, beta_adapt=0.3).double()  # fmt: skip
    dyn = dynamics_for(m)
    u = torch.rand(40, 3, 2, dtype=torch.float64) * 2
    astate = dyn.start(m.init_state(3))
    for t in range(40):
        astate, _ = dyn.step(astate, u[t])
    p, s = m.params, astate.state
    x = dyn.vector(astate)

    def flat(vec):
        a = dyn.with_vector(astate, vec)
        st = a.state
        g = st.v - (m.beta * st.a if p.adaptive else 0.0)
        z = st.z + astate.psi * (g - g.detach())  # value z, derivative psi (0 on refractory steps)
        nxt = spiking_substep(p, m.W_rec_eff, m.b, m.beta, st._replace(z=z), u[0] @ m.W_in.T)
        return dyn.vector(dyn.with_vector(a, torch.cat([f for f in (nxt.u if dyn.has_u else None, nxt.v,
                                                                      nxt.a if dyn.has_a else None)
                                                          if f is not None], -1)))  # fmt: skip

    J_auto = torch.autograd.functional.jacobian(lambda v: flat(v).sum(0), x).permute(1, 0, 2)
    _, tangent = dyn.step(astate, u[0])
    eye = torch.eye(dyn.dim, dtype=torch.float64).expand(3, dyn.dim, dyn.dim)
    torch.testing.assert_close(tangent(eye), J_auto, rtol=1e-10, atol=1e-12)
    assert s.z.sum() > 0  # the trajectory did spike


# -- models and batching ------------------------------------------------------------------------------------
def test_pta_tanh_rnn_has_zero_leading_exponent_default_does_not():
    from spikedyn.init import pta, torch_default

    u = torch.zeros(1500, 2, 1)
    m = pta(RateRNN(1, 64, 1, alpha=1.0), seed=0)
    spec = lyapunov_spectrum(m, u, k=8, warmup=500, unit="per_step")
    assert abs(spec[0]) < 0.02 and np.all(spec < 0.02)
    # Park et al.'s "default" is PyTorch's U(-1/sqrt(N), 1/sqrt(N)) (gain ~0.58): a global stable fixed point.
    # (RateRNN's own N(0, 1/N) init sits at the edge of chaos, where lambda_1 -> 0 from below.)
    default = torch_default(RateRNN(1, 64, 1), seed=0)
    spec = lyapunov_spectrum(default, u, k=8, warmup=500, unit="per_step")
    assert spec[0] < -0.3


def test_many_networks_in_one_batch_equal_one_by_one():
    torch.manual_seed(4)
    models = [RateRNN(2, 10, 1, alpha=0.5, gain=g) for g in (0.5, 1.5, 2.5)]
    u = torch.randn(300, 2, 2) * 0.3
    together = lyapunov_spectrum(models, u, k=3)
    one_by_one = np.stack([lyapunov_spectrum(m, u, k=3) for m in models])
    np.testing.assert_allclose(together, one_by_one, rtol=1e-9, atol=1e-12)
    assert together.shape == (3, 3)
    assert lyapunov_spectrum(models, u, k=3, reduce="none").shape == (3, 2, 3)


def test_units_per_time():
    """Exponents are per second by default (dt in ms), per step or per ms on request; an explicit dt
    (here alpha: per tau) overrides the unit."""
    m = RateRNN(1, 20, 1, alpha=0.1, gain=0.5, dt=10.0)
    u = torch.zeros(400, 1, 1)
    per_step = lyapunov_spectrum(m, u, k=2, unit="per_step")
    np.testing.assert_allclose(lyapunov_spectrum(m, u, k=2), per_step / 0.010)  # 10 ms = 0.01 s per step
    np.testing.assert_allclose(lyapunov_spectrum(m, u, k=2, unit="per_ms"), per_step / 10.0)
    np.testing.assert_allclose(lyapunov_spectrum(m, u, k=2, dt=m.alpha), per_step / 0.1)
    two = max_lyapunov_perturbation(m, u)
    np.testing.assert_allclose(max_lyapunov_perturbation(m, u, unit="per_step") / 0.010, two)
    assert per_step[0] < 0
    with pytest.raises(ValueError, match="unit"):
        lyapunov_spectrum(m, u, k=2, unit="per_hour")


def test_rate_net_and_its_mirror_report_the_same_unit_by_default():
    """The core workflow: a rate net and its spiking twin, analysed with defaults, both come out per
    second (the twin keeps the rate net's dt); per-step values differ from them by the same 1000 / dt."""
    from spikedyn import mirror

    torch.manual_seed(6)
    rate = RateRNN(1, 16, 1, alpha=0.2, activation="relu", gain=0.5, dt=5.0)
    twin = mirror(rate, inputs=torch.rand(50, 4, 1), substeps=2)
    assert twin.dt == rate.dt == 5.0
    u = torch.rand(300, 1, 1)
    for model in (rate, twin):
        per_s, per_step = lyapunov_spectrum(model, u, k=2), lyapunov_spectrum(model, u, k=2, unit="per_step")
        np.testing.assert_allclose(per_s, per_step * 1000.0 / 5.0)
    # a contracting leaky net (gain 0.5): lambda_1 < 0, and no faster than its leak, log(1 - alpha) per step
    assert np.log(1 - 0.2) * 1000.0 / 5.0 < lyapunov_spectrum(rate, u, k=1)[0] < 0


def test_spiking_and_lstm_spectra_run_and_are_sorted():
    torch.manual_seed(5)
    snn = SpikingRNN(2, 20, 1, neuron="alif", dt=1.0, tau_mem=20.0, gain=2.0, refractory=2.0)
    u = torch.rand(300, 2, 2) * 1.5
    spec = lyapunov_spectrum(snn, u, k=5)
    assert spec.shape == (5,) and np.all(np.isfinite(spec)) and np.all(np.diff(spec) <= 0)
    assert np.isfinite(max_lyapunov_perturbation(snn, u))
    lstm = LSTMRNN(2, 12, 1)
    spec = lyapunov_spectrum(lstm, torch.randn(200, 2, 2), k=4)
    assert spec.shape == (4,) and np.all(spec < 0.05)


def test_bad_arguments_are_one_line_errors():
    m = RateRNN(2, 8, 1)
    with pytest.raises(ValueError, match="warmup"):
        lyapunov_spectrum(m, torch.zeros(10, 1, 2), warmup=10)
    with pytest.raises(ValueError, match="input must have shape"):
        lyapunov_spectrum(m, torch.zeros(10, 1, 3))
    with pytest.raises(ValueError, match="k must be"):
        lyapunov_spectrum(m, torch.zeros(10, 1, 2), k=9)


# -- adjoint ----------------------------------------------------------------------------------------------
def test_adjoint_equals_autograd_through_rollout():
    torch.manual_seed(6)
    m = RateRNN(2, 10, 1, alpha=0.4, gain=1.2).double()
    u = torch.randn(25, 2, dtype=torch.float64)
    c = torch.randn(10, dtype=torch.float64)
    norms = adjoint_norms(m, u, direction=c, x0_std=0.0, normalize=False)
    x, xs = m.init_state(1).x, []
    for t in range(25):
        x = m.step(m.init_state(1)._replace(x=x), u[t : t + 1])[0].x
        x.retain_grad()
        xs.append(x)
    (xs[-1][0] @ c).backward()
    expected = np.array([float(x.grad.norm()) for x in xs])
    np.testing.assert_allclose(norms, expected, rtol=1e-10)


def test_adjoint_shapes_follow_reference_behaviour():
    la, fm = line_attractor(), fading_memory_network()
    T = int(30 / la.dt)
    a_line = adjoint_norms(la, la.autonomous_input(T, 2))
    a_fade = adjoint_norms(fm, fm.autonomous_input(T, 2))
    assert a_line.shape == (T, 2)
    assert np.all(a_line[: T // 2] > 0.05)  # persists (the zero exponent) ...
    assert np.all(a_fade[: T // 2] < 1e-3)  # ... or vanishes backwards in time


def test_noisy_model_is_seeded_and_both_trajectories_share_noise():
    m = RateRNN(1, 30, 1, alpha=0.2, gain=0.5, noise_std=0.1)
    u = torch.zeros(400, 2, 1)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = lyapunov_spectrum(m, u, k=2)
    assert torch.equal(torch.rand(1), before)  # the caller's RNG is untouched
    np.testing.assert_array_equal(a, lyapunov_spectrum(m, u, k=2))
    # with shared noise the separation of a contracting net shrinks: lambda_1 < 0 as in the QR method
    two = max_lyapunov_perturbation(m, u, eps=1e-8)
    assert two < 0 and abs(two - a[0]) < 0.2 * abs(a[0])
