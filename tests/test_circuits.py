"""Tests of spikedyn.circuits: the delay-line head-direction circuit, its phase model, the ring-attractor
baseline, the delay-network simulators (numpy reference, torch, Lava) and ``spikedyn circuit hd``.

Fast versions of docs/circuits.md's measurements: seconds instead of a minute, a few realisations."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from spikedyn.hardware.delay_network import DelayNetwork, _layers, simulate_reference
from spikedyn.tasks.head_direction import circular_error, ou_velocity, saccadic_velocity

from spikedyn.circuits import HeadDirectionCircuit, RingAttractor, phase_model
from spikedyn.circuits.delay_sim import simulate
from spikedyn.circuits.phase import coincidence_tuning, oscillator_phases, relative_phase
from spikedyn.circuits.readout import drift_deg_per_s
from spikedyn.experiments import hd_measure as X

DT = 1.0


@pytest.fixture(scope="module")
def circuit() -> HeadDirectionCircuit:
    return HeadDirectionCircuit()


@pytest.fixture(scope="module")
def ring() -> RingAttractor:
    return RingAttractor()


def rmse_deg(a: np.ndarray, b: np.ndarray, start: int = 0) -> np.ndarray:
    return np.rad2deg(np.sqrt(np.nanmean(circular_error(a[start:], b[start:]) ** 2, axis=0)))


# ---------------------------------------------------------------------------------- delay-network simulators
def random_network(rng: np.random.Generator, n: int = 12, s: int = 60) -> DelayNetwork:
    du = rng.choice([0.0, 1.0, 0.3], n)
    dv = rng.choice([1.0, 0.2, 0.0], n)
    return DelayNetwork([f"n{i}" for i in range(n)], du, dv, rng.uniform(0.5, 1.5, n), rng.uniform(-0.1, 0.3, n),
                        rng.integers(0, n, s), rng.integers(0, n, s), rng.normal(0.3, 0.8, s),
                        rng.integers(1, 9, s), axonal=rng.random(s) < 0.5)


def test_torch_simulator_matches_numpy_reference() -> None:
    rng = np.random.default_rng(0)
    net = random_network(rng)
    T, B = 400, 3
    weights = net.weight * (1 + 0.3 * rng.standard_normal((B, net.n_synapses)))
    ext = rng.uniform(0, 0.4, (T, B, net.n_neurons))
    idx = list(range(net.n_neurons))
    out = simulate(net, T, weight=weights, drive=ext, drive_index=idx, record=idx, dtype=torch.float64,
                   chunk=128)
    for b in range(B):
        ref = simulate_reference(net.with_weights(weights[b]), ext[:, b])
        assert ref.sum() > 100  # a busy network, not a silent one
        np.testing.assert_array_equal(out.spikes[:, b].numpy(), ref)
    # held drive (hold > 1) is the same as the repeated input
    held = simulate(net, 2 * T, weight=weights[:1], drive=ext[:, :1], drive_index=idx, hold=2, record=idx,
                    dtype=torch.float64)
    ref = simulate_reference(net.with_weights(weights[0]), np.repeat(ext[:, 0], 2, axis=0))
    np.testing.assert_array_equal(held.spikes[:, 0].numpy(), ref)


def test_pure_step_function_matches_fused_loop() -> None:
    from spikedyn.circuits.delay_sim import delay_lif_step, init_state, to_torch

    rng = np.random.default_rng(1)
    net = random_network(rng)
    T, B = 150, 2
    weights = torch.as_tensor(net.weight * (1 + 0.2 * rng.standard_normal((B, net.n_synapses))))
    ext = torch.as_tensor(rng.uniform(0, 0.4, (T, B, net.n_neurons)))
    tn = to_torch(net, dtype=torch.float64)
    state, z = init_state(tn, B), []
    for t in range(T):
        state = delay_lif_step(tn, weights, state, ext[t])
        z.append(state.z)
    idx = list(range(net.n_neurons))
    fused = simulate(net, T, weight=weights, drive=ext, drive_index=idx, record=idx, dtype=torch.float64)
    np.testing.assert_array_equal(torch.stack(z).numpy(), fused.spikes.numpy())


def test_delay_network_validation_and_layers() -> None:
    with pytest.raises(ValueError, match="latencies must be >= 1"):
        DelayNetwork(["a"], 1, 1, 0.5, 0, [0], [0], [1.0], [0])
    with pytest.raises(ValueError, match="neuron indices"):
        DelayNetwork(["a"], 1, 1, 0.5, 0, [0], [3], [1.0], [1])
    # DelayDense holds one (weight, delay) per pair: duplicated pairs go to separate layers
    layers = _layers(np.array([0, 0, 1, 0]), np.array([1, 1, 1, 1]))
    assert [sorted(x.tolist()) for x in layers] == [[0, 2], [1], [3]]


# ------------------------------------------------------------------------------------------ the mechanism
def test_encoder_is_an_exact_phase_accumulator_and_matches_spiking_rnn(circuit: HeadDirectionCircuit) -> None:
    """A+ (non-leaky IF, reset by subtraction) emits its k-th spike when the integral of its drive crosses
    k - 1/2, and is SpikingRNN's IF neuron (tau_mem = inf, reset="subtract")."""
    from spikedyn.models import SpikingRNN

    w = np.deg2rad(ou_velocity(400, DT, 3, std_deg_s=300.0))
    res = circuit.run(w, DT, record="all", dtype=torch.float64, progress=False)
    spikes = res.spikes["A+"]
    drive = np.repeat(circuit.velocity_drive(w)[:, 0], round(DT / circuit.dt))
    count = np.cumsum(spikes)
    # the spike of step t is decided on the charge up to t; it is subtracted at t + 1
    np.testing.assert_array_equal(count, np.floor(np.cumsum(drive) + 0.5).astype(int))
    rnn = SpikingRNN(1, 1, 1, tau_mem=float("inf"), tau_syn=0.0, v_th=1.0, reset="subtract", tau_out=0.0)
    with torch.no_grad():
        rnn.W_in.fill_(1.0)
        rnn.W_rec.zero_()
        rnn.b.zero_()
        x = torch.as_tensor(drive, dtype=torch.float64)[:, None, None].clone()
        x[0] += 0.5
        z = rnn.double()(x).r[:, 0, 0].numpy()
    np.testing.assert_array_equal(z > 0, spikes)


def test_period_is_set_by_delays_not_by_weights(circuit: HeadDirectionCircuit) -> None:
    """In darkness every oscillator neuron fires exactly every D steps for any weights that keep each
    spike above threshold; the period follows the delays (a circuit with another period), and the loop
    dies when the relay weight falls below threshold (the test can fail)."""
    dark = np.zeros(60)
    net = circuit.network()
    scaled = [net.weight * f for f in (0.6, 1.0, 1.4)] + list(circuit.perturbed_weights(0.2, 5, seed=1))
    res = circuit.run(np.zeros((60, len(scaled))), DT, theta0=2.0, weights=np.stack(scaled), record="oscillators",
                      progress=False)
    for name in ("PL+", "PR+", "PL-", "PR-"):
        isi = np.diff(np.flatnonzero(res.spikes[name][:, 0]))
        assert isi.size > 3 and np.all(isi == circuit.D)
        for b in range(1, len(scaled)):
            assert np.array_equal(res.spikes[name][:, b], res.spikes[name][:, 0])
    other = HeadDirectionCircuit(period=6.0)
    isi = np.diff(np.flatnonzero(other.run(dark, DT, record="oscillators", progress=False).spikes["PL+"]))
    assert np.all(isi == other.D) and other.D != circuit.D
    weak = net.weight.copy()
    weak[(net.weight == 1.0) & net.axonal] = 0.4  # relay below threshold 0.5: each spike no longer triggers
    dead = circuit.run(dark, DT, weights=weak[None], record="oscillators", progress=False)
    assert dead.spikes["PL+"].sum() == 1  # only the initial kick
    assert np.isnan(dead.phase_heading[-1]) and np.isnan(dead.decoded[-1])  # a dead circuit holds nothing


def test_each_quantum_advances_the_phase_by_one_step(circuit: HeadDirectionCircuit) -> None:
    """A turn of exactly k quanta moves the relative phase by exactly k steps (k * 360 / D deg)."""
    k = 7
    dur = 400
    w = np.zeros(dur)
    # deliver k quanta over 100 ms: the encoder's drive (period / 2 pi) omega integrates to k
    rate = k / (100 * round(DT / circuit.dt))  # quanta per simulation step
    w[100:200] = rate / (circuit.period / 1000.0 / (2 * np.pi))
    res = circuit.run(w, DT, theta0=1.0, progress=False)
    before, after = res.phase_heading[90], res.phase_heading[-1]
    step = np.rad2deg(circular_error(np.array([after]), np.array([before]))[0]) / circuit.quantum_deg
    assert step == pytest.approx(k, abs=1e-9)


def test_path_integration_and_agreement_with_phase_model(circuit: HeadDirectionCircuit) -> None:
    out = X.path_integration(circuit, None, duration_s=2.0, n=2, seed=1)
    assert out["max_speed_deg_s"] > 200
    assert np.all(out["circuit_rmse_deg"] < 10.0)
    assert np.all(out["circuit_phase_rmse_deg"] < 5.0)
    assert np.all(out["circuit_vs_phase_model_deg"] < 5.0)
    assert np.all(out["phase_vs_phase_model_deg"] < 4.0)


def test_constant_rotation_and_valid_velocity_range(circuit: HeadDirectionCircuit) -> None:
    """360 deg/s (and 720) is integrated at the right speed; beyond max_speed_deg_s the heading lags."""
    T = 1000
    speeds = [360.0, -720.0, 2.0 * circuit.max_speed_deg_s]
    w = np.deg2rad(np.broadcast_to(np.array(speeds), (T, len(speeds))))
    res = circuit.run(w, DT, progress=False)
    k0 = int(X.settle_ms(circuit))
    path = np.unwrap(res.phase_heading[k0:], axis=0)
    measured = np.rad2deg(path[-1] - path[0]) / ((T - 1 - k0) * DT / 1000.0)
    assert measured[0] == pytest.approx(360.0, rel=0.02)
    assert measured[1] == pytest.approx(-720.0, rel=0.02)
    assert circuit.max_speed_deg_s < abs(measured[2]) < 1.01 * circuit.saturation_speed_deg_s  # quanta lost
    # the decoded bump lags the phase by the readout filter: omega * readout_tau
    lag = np.rad2deg(np.angle(np.mean(np.exp(1j * circular_error(res.decoded[k0:, :2], res.heading[k0:, :2])), 0)))
    np.testing.assert_allclose(lag, -np.array(speeds[:2]) * circuit.readout_tau / 1000.0, atol=2.5)


def test_darkness_weight_noise_circuit_holds_ring_drifts(circuit: HeadDirectionCircuit, ring: RingAttractor) -> None:
    """sigma = 0.1 weight noise: the circuit's phase does not move at all in the dark; the ring drifts."""
    n, T = 6, 2000
    th0 = X.initial_headings(n, 0)
    dark = np.zeros((T, n))
    c = circuit.run(dark, DT, th0, weight_noise=0.1, seed=4, progress=False)
    k0 = X.settle_ms(circuit)
    c_drift = np.abs(drift_deg_per_s(c.decoded, DT, k0))
    assert np.all(c_drift < 0.5)
    k = int(k0)
    assert np.all(c.phase_heading[k:] == c.phase_heading[k])  # not a single step of phase drift
    r = ring.run(dark, DT, th0, weight_noise=0.1, seed=4)
    r_drift = np.abs(drift_deg_per_s(r.decoded, DT, k0))
    assert np.median(r_drift) > 0.05  # an absolute drift: no ratio against the circuit's (exactly 0 steps)
    clean = ring.run(dark, DT, th0)
    assert np.all(np.abs(drift_deg_per_s(clean.decoded, DT, k0)) < 0.05)  # without noise the ring holds


def test_path_integration_under_weight_noise(circuit: HeadDirectionCircuit) -> None:
    w = X.ou(2.0, 3, seed=5)
    res = circuit.run(w, DT, X.initial_headings(3, 5), weight_noise=0.1, seed=6, progress=False)
    assert np.all(res.rmse_deg(X.settle_ms(circuit)) < 10.0)


def test_ring_attractor_is_a_fair_integrator(ring: RingAttractor) -> None:
    assert np.rad2deg(ring.speed_grid[-1]) >= 1000.0
    np.testing.assert_allclose(ring.gamma_for(-ring.speed_grid[5]), -ring.gamma_grid[5])
    w = X.ou(3.0, 2, seed=2)
    res = ring.run(w, DT, theta0=np.array([0.3, 4.0]))
    assert np.all(res.rmse_deg(100) < 2.0)
    with pytest.raises(ValueError, match="multiple"):
        ring.run(w, 0.3)


# ----------------------------------------------------------------------------------------- the phase model
def test_phase_model_equations() -> None:
    period, dt = 10.0, 1.0
    w = ou_velocity(3000, dt, 0)
    plus, minus = oscillator_phases(w, dt, period, theta0=0.7)
    dphi = relative_phase(plus, minus, period)
    expect = np.mod(period / (2 * np.pi) * (np.cumsum(w) * dt / 1000 + 0.7), period)  # Eq. 26
    np.testing.assert_allclose(np.exp(2j * np.pi * dphi / period), np.exp(2j * np.pi * expect / period), atol=1e-9)
    t = dt * np.arange(1, 3001)
    still = oscillator_phases(np.zeros(3000), dt, period)[0]
    np.testing.assert_allclose(still, np.mod(t, period))  # without input: phase = t mod tau
    positions = np.arange(80) * period / 80
    f = coincidence_tuning(np.array([2.5]), positions, period, window=0.7)[0]
    np.testing.assert_array_equal(np.flatnonzero(f), np.arange(15, 26))  # |e| <= 0.7 ms: 2.5 +- 5 positions
    assert np.all(f[15:26] == 1 / period)
    res = phase_model(w, dt, period, theta0=0.7)
    assert rmse_deg(res.decoded, res.heading, 200) < 4.0
    assert rmse_deg(res.heading, np.mod(np.cumsum(w) * dt / 1000 + 0.7, 2 * np.pi)) < 1e-6


# ---------------------------------------------------------------------------------------------- S-type noise
def test_conduction_jitter_diffuses_the_phase_linearly_in_time(circuit: HeadDirectionCircuit) -> None:
    d = X.phase_diffusion(circuit, None, [0.05], [], [], n=16, duration_s=2.0, seed=3)
    c = d["conditions"][0]
    assert 0.5 < c["msd_per_s"] / c["predicted_msd_per_s"] < 2.0
    assert 0.6 < c["loglog_slope"] < 1.4


# ----------------------------------------------------------------------------------------- interface, I/O
def test_run_shapes_errors_and_determinism(circuit: HeadDirectionCircuit) -> None:
    w = X.ou(0.3, 2, seed=0)
    a = circuit.run(w, DT, weight_noise=0.05, seed=3, progress=False)
    b = circuit.run(w, DT, weight_noise=0.05, seed=3, progress=False)
    assert a.bump.shape == (300, 2, 8) and a.decoded.shape == (300, 2) and a.heading.shape == (300, 2)
    np.testing.assert_array_equal(a.bump, b.bump)
    one = circuit.run(w[:, 0], DT, record="oscillators", progress=False)
    assert one.bump.shape == (300, 8) and one.spikes["PL+"].shape == (300 * 8,)
    for bad, match in (({"period": 10.1}, "even integer"), ({"n_segments": 7}, "divisible"),
                       ({"cd_window": 5.0}, "cd_window")):
        with pytest.raises(ValueError, match=match):
            HeadDirectionCircuit(**bad)
    with pytest.raises(ValueError, match="multiple"):
        circuit.run(w, 0.3)
    with pytest.raises(ValueError, match="record"):
        circuit.run(w, DT, record="everything")
    assert "max_speed" in repr(circuit) and circuit.max_speed_deg_s > 360


def test_saccadic_velocity_generator() -> None:
    w = saccadic_velocity(200_000, 1.0, 0, std_deg_s=0.0, rate_hz=2.0, amplitude_deg=15.0, duration_ms=100.0)
    n_saccades = np.rad2deg(np.abs(w).sum() * 1e-3) / 15.0
    assert 300 < n_saccades < 500  # 2 Hz over 200 s, each turning by 15 deg
    assert np.rad2deg(np.abs(w).max()) >= 2 * 15.0 / 0.1 * 0.99
    batch = saccadic_velocity(100, 10.0, 1, batch=3)
    assert batch.shape == (100, 3)
    np.testing.assert_array_equal(saccadic_velocity(50, 1.0, 7), saccadic_velocity(50, 1.0, 7))


@pytest.mark.lava
def test_lava_float_run_matches_torch_spike_for_spike(lava_python: str) -> None:
    """2 s of simulated time (8,000 steps of 0.25 ms) with weight noise: every spike of every neuron."""
    circuit = HeadDirectionCircuit(period=10.0, dt=0.25)
    w = X.ou(2.0, 1, seed=8, std_deg_s=240.0)[:, 0]
    weights = circuit.perturbed_weights(0.05, 1, seed=9)
    lava_res, lava_spikes = circuit.run_lava(w, DT, 1.0, weights=weights[0], python=lava_python)
    res = circuit.run(w, DT, 1.0, weights=weights, record="all", dtype=torch.float64, progress=False)
    torch_spikes = np.stack([res.spikes[n] for n in circuit.network().names], axis=1)
    assert lava_spikes.shape == (8000, circuit.network().n_neurons)
    assert lava_spikes.sum() > 10_000
    np.testing.assert_array_equal(lava_spikes, torch_spikes)
    np.testing.assert_allclose(lava_res.bump, res.bump, atol=1e-9)


# ------------------------------------------------------ robustness: perturbations, variants, realisations
def test_refractory_latency_and_neuron_heterogeneity_match_numpy_reference() -> None:
    """The torch simulator with refractory periods, per-instance latencies and per-instance du/dv/bias equals
    the pull-based numpy reference instance by instance (Lava's LIFRefractory semantics: v held at 0)."""
    rng = np.random.default_rng(3)
    base = random_network(rng)
    net = base.replace(refractory=rng.integers(0, 4, base.n_neurons))
    T, B = 300, 3
    lat = np.maximum(net.latency + rng.integers(-2, 3, (B, net.n_synapses)), 1)
    neurons = {"du": np.clip(net.du * rng.uniform(0.8, 1.2, (B, net.n_neurons)), 0, 1),
               "dv": np.clip(net.dv * rng.uniform(0.8, 1.2, (B, net.n_neurons)), 0, 1),
               "bias": net.bias + rng.uniform(-0.05, 0.05, (B, net.n_neurons))}
    ext = rng.uniform(0, 0.4, (T, B, net.n_neurons))
    idx = list(range(net.n_neurons))
    out = simulate(net, T, batch=B, drive=ext, drive_index=idx, record=idx, dtype=torch.float64, latency=lat,
                   neurons=neurons, chunk=64)
    for b in range(B):
        one = net.replace(latency=lat[b], **{k: v[b] for k, v in neurons.items()})
        ref = simulate_reference(one, ext[:, b])
        assert ref.sum() > 100
        np.testing.assert_array_equal(out.spikes[:, b].numpy(), ref)
    from spikedyn.circuits.delay_sim import delay_lif_step, init_state, to_torch  # the pure step, too

    tn = to_torch(net, dtype=torch.float64)
    state, z = init_state(tn, 1), []
    for t in range(T):
        state = delay_lif_step(tn, torch.as_tensor(net.weight)[None], state, torch.as_tensor(ext[t, :1]))
        z.append(state.z[0].numpy())
    np.testing.assert_array_equal(np.stack(z), simulate_reference(net, ext[:, 0]))
    with pytest.raises(ValueError, match="neurons may set"):
        simulate(net, 5, neurons={"tau": np.ones(net.n_neurons)})


@pytest.fixture(scope="module")
def intrinsic():
    from spikedyn.circuits import IntrinsicHeadDirectionCircuit

    return IntrinsicHeadDirectionCircuit()


def test_intrinsic_oscillators_lock_to_the_delay_loop_within_their_margins(intrinsic) -> None:
    """Park et al. Fig. 6A-B: bias-driven pacemakers locked by tau/2 delays fire every D steps, for weights
    scaled by 0.6 and 1.4 and sigma = 0.2 noise (inside the coupling and quantum margins); a pacemaker bias
    1.5 margins too high makes its oscillator run at D - 1 steps (the test can fail)."""
    net = intrinsic.network()
    scaled = [net.weight * f for f in (0.6, 1.0, 1.4)] + list(intrinsic.perturbed_weights(0.2, 3, seed=1))
    res = intrinsic.run(np.zeros((60, len(scaled))), DT, theta0=2.0, weights=np.stack(scaled),
                        record="oscillators", progress=False)
    for name in ("PL+", "PR+", "PL-", "PR-"):
        isi = np.diff(np.flatnonzero(res.spikes[name][:, 0]))
        assert isi.size > 3 and np.all(isi == intrinsic.D)
        for b in range(1, len(scaled)):
            assert np.array_equal(res.spikes[name][:, b], res.spikes[name][:, 0])
    bias = np.stack([net.bias, net.bias])
    bias[0, intrinsic.index["PL-"]] *= 1 + 0.5 * intrinsic.bias_margin  # inside the margin: no change
    bias[1, intrinsic.index["PL-"]] *= 1 + 1.5 * intrinsic.bias_margin  # outside: PL- fires a step early
    fast = intrinsic.run(np.zeros((100, 2)), DT, theta0=2.0, neurons={"bias": bias}, record="oscillators",
                         progress=False)
    assert np.all(np.diff(np.flatnonzero(fast.spikes["PL-"][:, 0])) == intrinsic.D)
    assert np.all(np.diff(np.flatnonzero(fast.spikes["PL-"][:, 1]))[1:] == intrinsic.D - 1)


def test_intrinsic_realisation_integrates_velocity_like_the_phase_model(intrinsic) -> None:
    """A quantum advances both pacemakers by one step (constant phase-response curve); OU path integration
    over 2 s agrees with Eq. 22-28; 360 deg/s is integrated at the right speed."""
    k = 7
    w = np.zeros(400)
    w[100:200] = k / (100 * round(DT / intrinsic.dt)) / (intrinsic.period / 1000.0 / (2 * np.pi))
    res = intrinsic.run(w, DT, theta0=1.0, progress=False)
    step = np.rad2deg(circular_error(res.phase_heading[-1:], res.phase_heading[90:91])[0]) / intrinsic.quantum_deg
    assert step == pytest.approx(k, abs=1e-9)
    out = X.path_integration(intrinsic, None, duration_s=2.0, n=2, seed=1)
    assert np.all(out["circuit_rmse_deg"] < 10.0) and np.all(out["phase_vs_phase_model_deg"] < 4.0)
    T = 800
    turn = intrinsic.run(np.full(T, np.deg2rad(360.0)), DT, progress=False)
    k0 = int(X.settle_ms(intrinsic))
    path = np.unwrap(turn.phase_heading[k0:])
    assert np.rad2deg(path[-1] - path[0]) / ((T - 1 - k0) / 1000.0) == pytest.approx(360.0, rel=0.03)


def test_period_mismatch_makes_the_phase_drift_by_one_quantum_per_period(circuit, intrinsic) -> None:
    """Park et al. Sec. 2.10: the relative-phase memory is structurally unstable to a period mismatch. A - loop
    one step longer drifts the digital circuit's phase by 360/D deg every D steps (450 deg/s); the intrinsic
    pacemakers absorb a longer loop (their own period takes over) but not a shorter one."""
    from spikedyn.experiments.hd_robustness import phase_drift_deg_s

    T, k0 = 1000, X.settle_ms(circuit)
    for model, m, expect in ((circuit, 1, 1), (circuit, -1, -1), (intrinsic, 1, 0), (intrinsic, -1, -1)):
        lat = model.mismatched_latencies(m)
        res = model.run(np.zeros((T, 1)), DT, 1.0, latencies=lat[None], progress=False)
        per_period = model.quantum_deg / (model.period / 1000.0)
        assert phase_drift_deg_s(res.phase_heading, k0)[0] == pytest.approx(expect * per_period, rel=0.03)


def test_finite_time_constant_relays_let_weights_move_spikes() -> None:
    """Variant with a leaky relay stage: inside ``relay_weight_margin`` the spikes equal the noise-free ones;
    one relay weight below it delays that relay's spike, changing its oscillator's period: drift."""
    c = HeadDirectionCircuit(relay_tau=1.0, relay_latency=2)
    lo, hi = c.relay_weight_margin
    assert 0.8 < lo < 1 < hi < 1.25
    net = c.network()
    relay = np.flatnonzero((net.pre == c.index["JL-"]) & (net.post == c.index["PL-"]))
    weights = np.stack([net.weight] * 3)
    weights[1, relay] *= (1 + lo) / 2  # inside the margin
    weights[2, relay] *= 0.97 * lo  # below it: latency + 1 step, the - period becomes D + 1
    res = c.run(np.zeros((1000, 3)), DT, 1.0, weights=weights, record="oscillators", progress=False)
    assert np.array_equal(res.spikes["PL-"][:, 1], res.spikes["PL-"][:, 0])
    assert np.all(np.diff(np.flatnonzero(res.spikes["PL-"][:, 2]))[2:] == c.D + 1)
    out = X.path_integration(c, None, duration_s=1.0, n=1, seed=2)  # and it still integrates
    assert out["circuit_rmse_deg"][0] < 10.0


def test_ring_heterogeneity_analogues(ring: RingAttractor) -> None:
    """Time constants and axonal delays do not move the ring's fixed points (no drift in darkness);
    heterogeneous drive breaks the continuum (drift); a constant velocity offset rotates it."""
    n, T = 3, 1500
    rng = np.random.default_rng(0)
    th0 = X.initial_headings(n, 1)
    dark = np.zeros((T, n))
    kw = {"tau": ring.tau * (1 + 0.2 * rng.standard_normal((n, ring.n))),
          "delays": 0.5 * np.abs(rng.standard_normal((n, ring.n)))}
    still = ring.run(dark, DT, th0, **kw)
    assert np.all(np.abs(drift_deg_per_s(still.decoded, DT, 110)) < 0.01)
    biased = ring.run(dark, DT, th0, drive=ring.drive * (1 + 0.02 * rng.standard_normal((n, ring.n))))
    assert np.median(np.abs(drift_deg_per_s(biased.decoded, DT, 110))) > 0.5
    offset = ring.run(dark[:, :1], DT, 0.0, gamma_offset=0.0125)
    assert abs(drift_deg_per_s(offset.decoded, DT, 110)[0]) > 20.0


def test_robustness_study_summary() -> None:
    """Two classes, two models, 2 realisations x 1 s: every row has a CI and a floor; no ratio anywhere."""
    from spikedyn.experiments import hd_robustness as Rb

    med, lo, hi = Rb.bootstrap_median_ci(np.array([1.0, 2.0, 3.0, np.nan]))
    assert med == 2.0 and 1.0 <= lo <= med <= hi <= 3.0
    cfg = Rb.RobustnessConfig(duration=1.0, realisations=2, classes=("mismatch",), models=("digital", "ring"),
                              levels={"mismatch": (0.0, 1.0)})
    res = Rb.run(cfg, log=lambda s: None)
    rows = {(r["model"], r["level"]): r for r in res["rows"]}
    assert rows[("digital", 0.0)]["below_floor"] and not rows[("digital", 1.0)]["below_floor"]
    assert rows[("digital", 1.0)]["drift_median"] == pytest.approx(450.0, rel=0.05)
    assert rows[("ring", 1.0)]["drifting"] == 2
    md = Rb.markdown(res)
    assert "95% CI" in md and "below one quantum" in md and "x |" not in md



@pytest.mark.lava
def test_lava_intrinsic_realisation_matches_torch_spike_for_spike(lava_python: str) -> None:
    """The paper's realisation (LIFRefractory pacemakers) on Lava = torch float64, every spike, 0.5 s of OU."""
    from spikedyn.circuits import IntrinsicHeadDirectionCircuit

    c = IntrinsicHeadDirectionCircuit(dt=0.25)
    w = X.ou(0.5, 1, seed=4, std_deg_s=240.0)[:, 0]
    weights = c.perturbed_weights(0.1, 1, seed=5)
    lava_res, lava_spikes = c.run_lava(w, DT, 2.0, weights=weights[0], python=lava_python)
    res = c.run(w, DT, 2.0, weights=weights, record="all", dtype=torch.float64, progress=False)
    torch_spikes = np.stack([res.spikes[n] for n in c.network().names], axis=1)
    assert lava_spikes.sum() > 300
    np.testing.assert_array_equal(lava_spikes, torch_spikes)
    np.testing.assert_allclose(lava_res.phase_heading, res.phase_heading, atol=1e-12)
