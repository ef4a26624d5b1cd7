"""Fixed points (spikedyn.analysis.fixed_points) on systems whose fixed points are known in closed form,
checked against each body's own step (not the tangent code the solver uses) and, for spiking twins,
against the spiking network's own filtered rate."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import spikedyn
from spikedyn.analysis import ReLUNetwork, line_attractor, two_fixed_points
from spikedyn.analysis.fixed_points import RateEquivalentMap, fixed_points
from spikedyn.analysis.reference_systems import LINE_ATTRACTOR_W

torch.set_num_threads(1)


def test_two_fixed_point_system_gives_both_attractors_and_the_saddle():
    # Park et al. Eq. S1: dx/dt = -x + relu(W x + 1); units 3-6 sit at 1 / (1 + c)
    net = two_fixed_points()
    fp = fixed_points(net, [0.0], n_inits=128, progress=False)
    tail = 1.0 / (1.0 + np.array([0.01, 0.02, 0.03, 0.01]))
    expected = {  # (x1, x2) -> stable; x1 = 1 / 0.65 on one branch, x1 = x2 = 1 / 1.65 at the saddle
        (1 / 0.65, 0.0): True, (0.0, 1 / 0.65): True, (1 / 1.65, 1 / 1.65): False,
    }  # fmt: skip
    assert len(fp) == 3 and fp.n_stable == 2
    for (a, b), stable in expected.items():
        i = int(torch.argmin((fp.points[:, :2] - torch.tensor([a, b], dtype=torch.float64)).norm(dim=1)))
        np.testing.assert_allclose(fp.points[i].numpy(), np.r_[a, b, tail], atol=1e-6)
        assert bool(fp.stable[i]) is stable
        assert fp.speed[i] < 1e-8
    # the RK4 map's eigenvalues are exp(dt * field eigenvalue): -0.65 at the attractors, +0.35 at the saddle
    rho = fp.spectral_radius.numpy()
    np.testing.assert_allclose(np.sort(rho), np.sort([np.exp(-0.65 * net.dt)] * 2 + [np.exp(0.35 * net.dt)]), rtol=1e-6)


def test_exact_line_attractor_gives_a_line_of_fixed_points():
    fp = fixed_points(line_attractor(), [0.0], n_inits=128, progress=False)
    x = fp.points.numpy()
    assert len(fp) > 10
    np.testing.assert_allclose(x[:, 0] + x[:, 1], 1.0, atol=1e-6)  # the segment x1 + x2 = 1
    np.testing.assert_allclose(x[:, 2:], 1 / 3, atol=1e-6)
    assert x[:, 0].min() < 0.2 and x[:, 0].max() > 0.8
    # inside the segment: one neutral direction (|lambda| = 1 along the line), the others contracting
    inner = (x[:, 0] > 1e-3) & (x[:, 1] > 1e-3)  # (at its ends a relu switches off: all contracting)
    assert inner.sum() > 10
    np.testing.assert_allclose(fp.spectral_radius.numpy()[inner], 1.0, atol=1e-9)
    assert fp.stable.all()


def test_near_line_attractor_gives_one_attractor_and_a_line_of_slow_points():
    W = np.array(LINE_ATTRACTOR_W)
    W[0, 1] = W[1, 0] = -0.98  # the line breaks: one attractor at x1 = x2 = 1 / 1.98, a slow direction
    net = ReLUNetwork(W, 1.0, x0=np.full(6, 0.5), x0_std=0.3)
    fp = fixed_points(net, [0.0], n_inits=128, slow_tol=1e-6, progress=False)
    assert len(fp) == 1 and fp.n_stable == 1
    np.testing.assert_allclose(fp.points[0, :2].numpy(), 1 / 1.98, atol=1e-7)
    slow = fp.slow
    assert slow is not None and len(slow) > 20
    x = slow.points.numpy()
    assert (slow.speed < 1e-6).all()
    assert x[:, 0].max() - x[:, 0].min() > 0.7  # spread along the former line ...
    np.testing.assert_allclose(x[:, 0] + 0.98 * x[:, 1], 1.0, atol=0.03)  # ... x1 + 0.98 x2 = 1


def _body(kind: str) -> torch.nn.Module:
    torch.manual_seed(1)
    if kind == "rate":
        return spikedyn.RateRNN(2, 12, 1, alpha=0.2, activation="tanh", gain=2.0)
    if kind == "gru":
        return spikedyn.GRURNN(2, 10, 1)
    return spikedyn.LSTMRNN(2, 8, 1)


def _state(kind: str, s: torch.Tensor, N: int):
    """The model state whose vector is ``s`` (built by hand, not through the tangent adapters)."""
    if kind == "rate":
        return spikedyn.models.rate.RateState(s[None])
    if kind == "gru":
        return spikedyn.models.gru.GRUState(s[None])
    return spikedyn.models.lstm.LSTMState(s[None, :N], s[None, N:])


@pytest.mark.parametrize("kind", ["rate", "gru", "lstm"])
def test_points_are_fixed_under_the_models_own_step(kind):
    model = _body(kind)
    u = torch.tensor([0.3, -0.2])
    fp = fixed_points(model, u, n_inits=64, progress=False)
    assert len(fp) >= 1
    m = model.double()
    N = m.n_hidden
    for k in range(len(fp)):
        s = fp.points[k]
        nxt, _ = m.step(_state(kind, s, N), u.double()[None])
        flat = torch.cat([t.reshape(1, -1) for t in nxt if t.is_floating_point()], -1)[0]
        np.testing.assert_allclose(flat.detach().numpy(), s.numpy(), atol=1e-9)

        def F(v: torch.Tensor) -> torch.Tensor:
            out = m.step(_state(kind, v, N), u.double()[None])[0]
            return torch.cat([t.reshape(-1) for t in out])

        J = torch.autograd.functional.jacobian(F, s)
        ref = np.sort(np.abs(np.linalg.eigvals(J.numpy())))[::-1]
        np.testing.assert_allclose(fp.eigenvalues[k].abs().numpy(), ref, atol=1e-8)
        assert bool(fp.stable[k]) == (ref[0] < 1 + 1e-6)
    # activity space: f(x) for the rate net, h for the gated ones
    expect = torch.tanh(fp.points) if kind == "rate" else fp.points[:, :N]
    np.testing.assert_allclose(fp.activity.numpy(), expect.numpy())


def test_same_seed_same_result_and_bad_inputs():
    model = _body("rate")
    a = fixed_points(model, [0.1, 0.0], n_inits=32, seed=3, progress=False)
    b = fixed_points(model, [0.1, 0.0], n_inits=32, seed=3, progress=False)
    assert torch.equal(a.points, b.points)
    with pytest.raises(ValueError, match="2 inputs"):
        fixed_points(model, 0.1, progress=False)
    with pytest.raises(ValueError, match="slow_tol"):
        fixed_points(model, [0.0, 0.0], tol=1e-8, slow_tol=1e-9, progress=False)
    pop = spikedyn.Population.stack([model, _body("rate")])
    with pytest.raises(TypeError, match="pop.member"):
        fixed_points(pop, [0.0, 0.0], progress=False)
    # states= are used as given
    fp = fixed_points(model, [0.0, 0.0], states=torch.zeros(5, 12), progress=False)
    assert fp.n_inits == 5


def _bistable_relu_net() -> spikedyn.RateRNN:
    """x = W relu(x) + b with attractors (2, -1), (-1, 2) and a saddle at 2/3 (units 3-4 at 1/3)."""
    rate = spikedyn.RateRNN(1, 4, 1, activation="relu", alpha=0.1, x0_std=3.0)
    with torch.no_grad():
        rate.W_rec.copy_(torch.tensor([[0.5, -1, 0, 0], [-1, 0.5, 0, 0], [0, 0, -0.5, 0], [0, 0, 0, -0.5]]))
        rate.b.copy_(torch.tensor([1.0, 1.0, 0.5, 0.5]))
        rate.W_in.copy_(torch.tensor([[1.0], [-1.0], [0.0], [0.0]]))
    return rate


def test_mirror_twin_has_the_rate_parents_points_scaled_and_its_spikes_settle_there():
    torch.manual_seed(0)
    rate = _bistable_relu_net()
    fp = fixed_points(rate, [0.0], n_inits=64, progress=False)
    assert len(fp) == 3 and fp.n_stable == 2
    np.testing.assert_allclose(sorted(fp.activity[:, 0].tolist()), [0.0, 2 / 3, 2.0], atol=1e-9)
    twin = spikedyn.mirror(rate, inputs=torch.zeros(100, 32, 1), substeps=10, percentile=100.0)
    lam = twin.mirror_scale[0]
    assert lam > 2.0  # the relu linearisation is exact over every point
    ft = fixed_points(twin, [0.0], n_inits=64, progress=False)
    assert ft.space == "rbar" and len(ft) == 3
    for k in range(3):  # r* = f(x*) / lam, same stability, same spectral radius (a = alpha)
        j = int(torch.argmin((ft.points - fp.activity[k] / lam).norm(dim=1)))
        np.testing.assert_allclose(ft.points[j].numpy(), (fp.activity[k] / lam).numpy(), atol=1e-9)
        assert bool(ft.stable[j]) == bool(fp.stable[k])
        assert float(ft.spectral_radius[j]) == pytest.approx(float(fp.spectral_radius[k]), abs=1e-6)  # float32 weights
    # the spiking network itself: after a +-1 pulse its readout r̄ settles at the matching attractor
    U = torch.zeros(400, 2, 1)
    U[:50, 0], U[:50, 1] = 1.0, -1.0
    rbar = twin.filtered_spikes(U)[-100:].mean(0).double()
    attr = ft.points[ft.stable]
    for b in range(2):
        assert float((attr - rbar[b]).norm(dim=1).min()) < 2e-3


def test_rate_equivalent_map_f_i_curve_and_leaky_twin():
    twin = spikedyn.mirror(_bistable_relu_net(), inputs=torch.zeros(50, 8, 1), substeps=10)
    fmap = RateEquivalentMap(twin.double())
    assert fmap.closed_form
    c = torch.linspace(-0.5, 1.5, 41, dtype=torch.float64)[:, None].expand(41, 4).contiguous()
    exact, _ = fmap.phi(c)
    fmap.closed_form = False  # the tabulated f-I curve, simulated with the body's own neuron update
    table, _ = fmap.phi(c)
    np.testing.assert_allclose(table.numpy(), exact.numpy(), atol=3e-3)


@pytest.mark.parametrize("neuron", ["lif", "alif"])
def test_leaky_twin_rates_settle_where_the_rate_equivalent_map_predicts(neuron):
    # leaky LIF / adaptive ALIF neurons (tabulated f-I curves), weak coupling, rates 0-0.3 per substep
    torch.manual_seed(2)
    net = spikedyn.SpikingRNN(1, 6, 1, neuron=neuron, dt=1.0, substeps=4, tau_mem=10.0, tau_syn=5.0, tau_out=50.0,
                              tau_adapt=20.0, beta_adapt=0.5)  # fmt: skip
    du = net.params.du
    with torch.no_grad():
        net.W_rec.mul_(0.5 * du)
        net.W_in.mul_(0.02 * du)
        net.b.copy_(torch.linspace(0.02, 0.2, 6))
    ft = fixed_points(net, [0.5], n_inits=32, progress=False)
    assert len(ft) == 1 and ft.n_stable == 1
    assert 0.05 < float(ft.points.max()) < 0.5  # active, far from saturation (1 spike per substep)
    rbar = net.filtered_spikes(torch.full((3000, 1, 1), 0.5))[-2000:].mean((0, 1)).double()
    np.testing.assert_allclose(ft.points[0].numpy(), rbar.numpy(), atol=5e-3)


# -- attractor topology (Maheswaranathan et al. 2019 as McMahan et al. 2024 used it) ---------------------
def _topology(counts, edges):
    from spikedyn.analysis import Topology

    node_probe = tuple(j for j, c in enumerate(counts) for _ in range(c))
    return Topology(probes=tuple(range(len(counts))), inputs=torch.zeros(len(counts), 1), fixed_points=(),
                    counts=tuple(counts), node_probe=node_probe, edges=tuple(sorted(edges)))  # fmt: skip


def test_topology_of_a_bistable_net_its_permutation_and_its_spiking_twin():
    from spikedyn.analysis import attractor_topology, topology_distance

    rate = _bistable_relu_net()
    # x1 = 2 (1 + p) with x2 < 0 exists for p > -1/3, its mirror image for p < 1/3
    T = attractor_topology(rate, n_inits=64, progress=False)
    assert T.counts == (1, 2, 2, 2, 1) and T.count_at(0.0) == 2
    for fp, p in zip(T.fixed_points, T.probes):
        a = sorted(fp.attractors[:, 0].tolist())
        expect = [2 * (1 + p)] if p > 1 / 3 else [0.0] if p < -1 / 3 else [0.0, 2 * (1 + p)]
        np.testing.assert_allclose(a, expect, atol=1e-9)
    assert topology_distance(T, T) == 0.0
    # relabelling the units (a permutation of activity space) keeps the topology
    perm = torch.tensor([3, 1, 0, 2])
    shuffled = _bistable_relu_net()
    with torch.no_grad():
        shuffled.W_rec.copy_(rate.W_rec[perm][:, perm])
        shuffled.b.copy_(rate.b[perm])
        shuffled.W_in.copy_(rate.W_in[perm])
    assert topology_distance(T, attractor_topology(shuffled, n_inits=64, progress=False)) == 0.0
    # the spiking twin (calibrated over the probes' range) has the same topology in r̄
    calib = torch.cat([torch.full((100, 16, 1), 0.5), torch.full((100, 16, 1), -0.5)], dim=1)
    twin = spikedyn.mirror(rate, inputs=calib, substeps=10, percentile=100.0)
    assert twin.mirror_scale[0] > 3.0  # the largest attractor, f = 2 (1 + 0.5)
    Ttwin = attractor_topology(twin, n_inits=64, progress=False)
    assert Ttwin.counts == T.counts and topology_distance(T, Ttwin) == 0.0
    # a net with one attractor per input differs
    mono = attractor_topology(spikedyn.RateRNN(1, 4, 1, activation="relu", alpha=0.1, gain=0.3), n_inits=32,
                              progress=False)  # fmt: skip
    assert mono.counts == (1, 1, 1, 1, 1)
    assert topology_distance(T, mono) == topology_distance(mono, T) > 0


def _brute_force_ged(t1, t2) -> float:
    """Edit distance by enumerating every label-preserving partial matching (the reference)."""
    from itertools import combinations, permutations, product

    P = len(t1.counts)
    L1 = [[i for i, j in enumerate(t1.node_probe) if j == k] for k in range(P)]
    L2 = [[i for i, j in enumerate(t2.node_probe) if j == k] for k in range(P)]

    def partial(a, b):
        out = []
        for k in range(min(len(a), len(b)) + 1):
            for sa in combinations(a, k):
                for sb in permutations(b, k):
                    out.append(dict(zip(sa, sb)))
        return out

    E2 = set(t2.edges)
    best = np.inf
    for maps in product(*[partial(a, b) for a, b in zip(L1, L2)]):
        m = {k: v for d in maps for k, v in d.items()}
        nodes = (t1.n_attractors - len(m)) + (t2.n_attractors - len(m))
        kept = sum(1 for u, w in t1.edges if u in m and w in m and (min(m[u], m[w]), max(m[u], m[w])) in E2)
        best = min(best, nodes + len(t1.edges) + len(t2.edges) - 2 * kept)
    return float(best)


def test_topology_distance_is_the_exact_graph_edit_distance():
    import networkx as nx

    from spikedyn.analysis import topology_distance

    rng = np.random.default_rng(0)
    kw = dict(node_subst_cost=lambda a, b: 0.0 if a["probe"] == b["probe"] else 1e6,
              node_del_cost=lambda a: 1.0, node_ins_cost=lambda a: 1.0,
              edge_del_cost=lambda e: 1.0, edge_ins_cost=lambda e: 1.0)  # fmt: skip

    def random_topology():
        counts = rng.integers(0, 3, size=4)
        counts[rng.integers(4)] = max(1, counts.max())
        ids = np.cumsum(np.r_[0, counts])
        edges = {(a, b) for j in range(3) for a in range(ids[j], ids[j + 1]) for b in range(ids[j + 1], ids[j + 2])
                 if rng.random() < 0.6}  # fmt: skip
        return _topology(counts.tolist(), edges)

    for _ in range(12):
        t1, t2 = random_topology(), random_topology()
        d = topology_distance(t1, t2)
        assert d == _brute_force_ged(t1, t2) == topology_distance(t2, t1)
        # networkx's exact search agrees or (its known suboptimal corner cases, networkx issue 8099) is above
        assert d <= nx.graph_edit_distance(t1.graph(), t2.graph(), **kw)


@pytest.fixture(scope="module")
def trained_rdm():
    """A small RDM net, McMahan et al. 2024's body, trained briefly with BPTT (about 88% accuracy)."""
    from spikedyn import tasks
    from spikedyn.learning import presets

    torch.manual_seed(0)
    preset = presets.get("mcmahan2024")
    task = preset.task("rdm")
    net = preset.build_model(task, seed=0, hidden=24)
    result = spikedyn.train(net, task, steps=120, batch_size=64, lr=5e-3, seed=0, eval_every=60, eval_trials=300,
                            progress=False)  # fmt: skip
    assert isinstance(task, tasks.Task)
    return net, task, result


def test_trained_rdm_net_attractors_at_each_probe_are_where_its_trajectories_end(trained_rdm):
    from spikedyn.analysis import attractor_topology

    net, task, result = trained_rdm
    assert result.final["accuracy"] > 0.75
    batch = task.sample(16, np.random.default_rng(1))
    T = attractor_topology(net, inputs=batch, n_inits=96, progress=False)
    assert all(c >= 1 for c in T.counts)
    m = copy.deepcopy(net).double()
    x_trials = m(torch.as_tensor(batch.inputs, dtype=torch.float64)).r  # f(x) along the trials
    assert x_trials.shape[-1] == 24
    for fp, u in zip(T.fixed_points, T.inputs):
        # independent check: run the network itself under the constant probe from states of the trials
        x = torch.atanh(torch.as_tensor(x_trials[::10].reshape(-1, 24)) - 1.0).clamp(-8, 8)  # f = 1 + tanh
        state = spikedyn.models.rate.RateState(x)
        with torch.no_grad():
            for _ in range(1500):
                state, r = m.step(state, u[None].expand(x.shape[0], -1))
        dist = torch.cdist(r, fp.attractors).min(dim=1).values
        assert float(dist.max()) < 1e-4  # every trajectory ends on an attractor the finder returned
        reached = torch.cdist(fp.attractors, r).min(dim=1).values
        assert float(reached.max()) < 1e-3 or fp.n_stable > 1  # and (one attractor) it is the one reached


# -- pulse experiment (McMahan et al. 2024 Fig. 4) --------------------------------------------------------
def test_pulse_experiment_tells_stable_from_transient_integrators(trained_rdm):
    import json

    from spikedyn.experiments.pulse import pulse_experiment

    bistable = _bistable_relu_net()
    with torch.no_grad():
        bistable.W_out.copy_(torch.tensor([[1.0, -1.0, 0.0, 0.0]]))
        bistable.b_out.zero_()
    rec = pulse_experiment(bistable, amplitude=0.5, off_ms=500.0, n_inits=64)
    # y = f(x1) - f(x2): 2 (1 + 0.5) = 3 at the end of the pulse, the zero-input attractor's 2 afterwards
    assert rec.integrator == "stable" and rec.attractors_at_zero == 2 and rec.consistent
    np.testing.assert_allclose(rec.y_off, (3.0, -3.0), atol=1e-4)
    np.testing.assert_allclose(rec.y_end, (2.0, -2.0), atol=1e-4)
    assert rec.decay_ms is None and rec.retention == pytest.approx(2 / 3, abs=1e-4)
    json.dumps(rec.to_dict())
    # its spiking twin keeps the memory too
    twin = spikedyn.mirror(bistable, inputs=torch.zeros(100, 32, 1), substeps=10, percentile=100.0)
    rec_twin = pulse_experiment(twin, amplitude=0.5, off_ms=200.0, n_inits=32)
    assert rec_twin.integrator == "stable" and rec_twin.attractors_at_zero == 2
    np.testing.assert_allclose(rec_twin.y_end, (2.0, -2.0), atol=0.05)
    # the trained RDM net forgets: one zero-input attractor, the separation decays
    net, task, _ = trained_rdm
    rec_rdm = pulse_experiment(net, n_inits=64, fixed_point_inputs=task.sample(16, np.random.default_rng(2)),
                               dt_ms=task.dt)  # fmt: skip
    assert rec_rdm.integrator == "transient" and rec_rdm.attractors_at_zero == 1 and rec_rdm.consistent
    assert rec_rdm.retention < 0.1 and rec_rdm.decay_ms is not None
    assert rec_rdm.on_ms == 380.0 and rec_rdm.dt_ms == 10.0  # 375 ms rounds to 38 steps of 10 ms


def test_pulse_command_rejects_bad_options():
    from spikedyn.experiments.pulse import main

    with pytest.raises(SystemExit) as e:
        main(["--noise", "low,high", "--out", "unused"])
    assert e.value.code == 2


def test_neighbour_signature_is_mcmahan_et_al_nearest_neighbour_embedding():
    """The topology embedding of McMahan et al.'s code: the probe inputs of each of the first fixed points'
    nearest fixed points; checked against scikit-learn's NearestNeighbors (what their code calls), and
    unchanged by rotating, scaling and shifting state space."""
    from sklearn.neighbors import NearestNeighbors

    from spikedyn.analysis.topology import SIGNATURE_PROBES, neighbour_signature

    assert SIGNATURE_PROBES[:5] == (0.0, 0.003, -0.003, 0.006, -0.006) and len(SIGNATURE_PROBES) == 21
    rng = np.random.default_rng(0)
    probes = list(SIGNATURE_PROBES[:7])
    points = [rng.normal(size=(k, 6)) for k in (3, 1, 1, 2, 1, 0, 1)]  # e.g. two attractors and a saddle at 0
    sig = neighbour_signature(points, probes, n_neighbors=3, n_points=8)
    X = np.concatenate([p for p in points if len(p)])
    inp = np.concatenate([[q] * len(p) for p, q in zip(points, probes)])
    _, idx = NearestNeighbors(n_neighbors=3).fit(X).kneighbors(X)
    np.testing.assert_array_equal(sig, inp[idx][:8].reshape(-1))
    Q = np.linalg.qr(rng.normal(size=(6, 6)))[0]
    moved = [2.5 * p @ Q + 1.0 for p in points]
    np.testing.assert_array_equal(neighbour_signature(moved, probes, n_neighbors=3, n_points=8), sig)
    # a line of single fixed points, one per input, ordered by input: each point's neighbours are the
    # neighbouring inputs; too few points leave zero rows
    line = [np.array([[10.0 * q, 0.0]]) for q in probes]
    sig = neighbour_signature(line, probes, n_neighbors=3, n_points=9).reshape(9, 3)
    np.testing.assert_allclose(sig[0], [0.0, 0.003, -0.003])
    np.testing.assert_allclose(sig[1, 0], 0.003)
    assert set(np.round(sig[1, 1:], 6)) == {0.0, 0.006}
    np.testing.assert_array_equal(sig[7:], 0.0)
