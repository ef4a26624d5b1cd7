"""The sparse-spike kernels (models/kernels.py) equal the dense GEMMs, and every spike path of the fused
training kernel gives the spikes and gradients of the one neuron map."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from spikedyn.models import SpikingRNN
from spikedyn.models import kernels as K
from spikedyn.models.spiking import spiking_substep


@pytest.mark.parametrize("rate", [0.0, 0.02, 0.3, 1.0])
def test_sparse_recurrence_and_weight_gradient_equal_the_dense_products(rate):
    gen = torch.Generator().manual_seed(0)
    W_T = torch.randn(40, 40, generator=gen, dtype=torch.float64)
    z = (torch.rand(7, 40, generator=gen) < rate).double()
    torch.testing.assert_close(K.sparse_recurrence(z, W_T), z @ W_T, rtol=1e-13, atol=1e-13)
    du = torch.randn(300, 40, generator=gen, dtype=torch.float64)
    Z = (torch.rand(300, 40, generator=gen) < rate).double()
    torch.testing.assert_close(K.sparse_weight_gradient(du, Z), du.T @ Z, rtol=1e-13, atol=1e-12)
    torch.testing.assert_close(K.sparse_weight_gradient(du, Z.bool()), du.T @ Z, rtol=1e-13, atol=1e-12)


def test_auto_path_follows_the_measured_firing_rate_threshold():
    low = torch.zeros(32, 100)
    low[0, : int(K.SPARSE_RATE * 3200) - 1] = 1.0
    high = torch.ones(32, 100)
    assert K.use_sparse("auto", low, K.SPARSE_RATE) and not K.use_sparse("auto", high, K.SPARSE_RATE)
    assert K.use_sparse("sparse", high, K.SPARSE_RATE) and not K.use_sparse("dense", low, K.SPARSE_RATE)
    with pytest.raises(ValueError, match="spike_path"):
        K.check_path("fast")


def _loop(m, u, truncated=False):
    """Reference: autograd through the one neuron map's substep loop."""
    p = replace(m.params, detach_recurrent=truncated)
    state, i_ext, ys, rs = m.init_state(u.shape[1]), u @ m.W_in.T, [], []
    for t in range(u.shape[0]):
        count = 0
        for _ in range(m.substeps):
            state = spiking_substep(p, m.W_rec_eff, m.b, m.beta, state, i_ext[t])
            count = count + state.z
        rs.append(count)
        ys.append(m.output(state))
    return torch.stack(ys), torch.stack(rs)


KINDS = [dict(neuron="lif"), dict(neuron="alif", refractory=2.0, reset="zero", tau_syn=3.0, substeps=2)]


@pytest.mark.parametrize("kw", KINDS)
@pytest.mark.parametrize("path", ["dense", "sparse", "auto"])
def test_every_spike_path_gives_the_maps_spikes_and_gradients_in_float64(kw, path):
    torch.manual_seed(3)
    m = SpikingRNN(3, 24, 2, gain=0.5, **kw).double()
    m.spike_path = path
    u = 1.5 * torch.randn(40, 4, 3, dtype=torch.float64)
    target = torch.randn(40, 4, 2, dtype=torch.float64)
    ref_y, ref_r = _loop(m, u)
    g_ref = torch.autograd.grad(((ref_y - target) ** 2).sum(), list(m.parameters()))
    out = m(u)
    assert torch.equal(out.r, ref_r) and 0 < ref_r.mean() < 0.5
    g = torch.autograd.grad(((out.y - target) ** 2).sum(), list(m.parameters()))
    for (name, _), a, b in zip(m.named_parameters(), g_ref, g):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12, msg=name)


def test_dense_path_is_bit_identical_to_the_map_in_float32_and_sparse_agrees_to_round_off():
    """float32: the dense kernel repeats the map's operations (bit for bit); the sparse recurrence sums the
    same weights in another order, so a membrane within round-off of threshold may flip a spike. Measured
    here: the spike trains agree on at least 99.9% of (step, trial, neuron) entries, and the recurrent
    currents agree to float32 round-off while the trajectories are identical."""
    torch.manual_seed(0)
    m = SpikingRNN(8, 64, 2, neuron="lif", dv=0.1, tau_out=0.0, gain=0.7)
    u = torch.randn(200, 8, 8)
    ref_y, ref_r = _loop(m, u)
    m.spike_path = "dense"
    dense = m(u)
    assert torch.equal(dense.r, ref_r) and torch.equal(dense.y, ref_y)
    m.spike_path = "sparse"
    sparse = m(u)
    agree = (sparse.r == ref_r).double().mean()
    assert agree >= 0.999, float(agree)
    z = ref_r[10]
    torch.testing.assert_close(K.sparse_recurrence(z, m.W_rec.T.detach()), z @ m.W_rec.T.detach(),
                               rtol=1e-5, atol=1e-5)  # fmt: skip


def test_sparse_and_dense_gradients_agree_at_a_low_firing_rate_in_float32():
    torch.manual_seed(1)
    m = SpikingRNN(8, 64, 2, neuron="lif", dv=0.05, tau_out=5.0, gain=0.3)
    u = 0.4 * torch.randn(120, 8, 8)
    grads = {}
    for path in ("dense", "sparse"):
        m.spike_path = path
        out = m(u)
        grads[path] = torch.autograd.grad(out.y.square().sum(), list(m.parameters()))
        rate = float(out.r.detach().mean())
    assert 0 < rate < 0.05  # a low firing rate: the sparse kernels' regime
    for a, b in zip(grads["dense"], grads["sparse"]):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


# -- e-prop: the factorised LIF traces, over several chunks ----------------------------------------------
_ALIF = dict(neuron="alif", tau_adapt=50.0, beta_adapt=0.4)


@pytest.mark.parametrize("kw", [dict(tau_out=20.0, refractory=2.0), dict(tau_out=0.0, du=0.3),
                                dict(tau_out=5.0, substeps=2, dt=2.0),
                                # ALIF: the adaptation trace eps_a carried across chunk boundaries
                                dict(_ALIF, tau_out=20.0, refractory=2.0), dict(_ALIF, tau_out=0.0, du=0.3),
                                dict(_ALIF, n_adaptive=5, tau_out=5.0, substeps=2, dt=2.0, refractory=2.0),
                                # the zero reset: eps_v gated by each neuron's own spikes, carried per neuron
                                dict(reset="zero", tau_out=20.0, refractory=2.0),
                                dict(_ALIF, reset="zero", du=0.5, substeps=2, dt=2.0, tau_out=5.0),
                                ])  # fmt: skip
@pytest.mark.parametrize(("chunk", "regularised"), [(1, False), (4, False), (7, False), (7, True)])
def test_factorised_eprop_traces_equal_truncated_autograd_across_chunks(kw, chunk, regularised):
    from spikedyn.learning.eprop import eprop_rollout
    from spikedyn.learning.losses import task_loss
    from spikedyn.learning.regularizers import FiringRateRegularizer

    torch.manual_seed(2)
    m = SpikingRNN(3, 12, 2, v_th=0.5, surrogate="triangle", self_connections=False, **{"neuron": "lif", **kw}).double()
    with torch.no_grad():
        m.W_rec.mul_(3.0)
        m.b.fill_(0.05)
    g = torch.Generator().manual_seed(0)
    u = 2.0 * torch.randn(23, 4, 3, generator=g, dtype=torch.float64)
    target = torch.randn(23, 4, 2, generator=g, dtype=torch.float64)
    mask = (torch.rand(23, 4, 2, generator=g) > 0.3).double()
    mask[:3] = 0.0  # the first chunks are not seen by the loss (only their traces move on)
    reg = FiringRateRegularizer(strength=5.0, target=30.0) if regularised else None
    out = m(u, state=m.init_state(4), detach_recurrent=True)  # the plain loop under autograd
    ref = task_loss(out.y, target, mask, "mse") + (reg.loss(m, out.r) if reg else 0.0)
    params = dict(m.named_parameters())
    g_ref = dict(zip(params, torch.autograd.grad(ref, list(params.values()))))
    with torch.no_grad():
        value, grads = eprop_rollout(m, u, target, mask, "mse", m.W_out.detach(), reg, chunk=chunk)
    torch.testing.assert_close(value, ref.detach(), rtol=1e-12, atol=0)
    for name, a in g_ref.items():
        assert float(a.norm()) > 0
        torch.testing.assert_close(grads[name], a, rtol=1e-9, atol=1e-12, msg=name)


def test_fused_kernel_follows_the_map_for_the_decayed_subtractive_reset():
    """reset="subtract_decayed" (the map's NIR/norse variant): the kernel's spikes and gradients equal
    autograd through the map's substep, called directly (SpikingRNN itself offers subtract and zero)."""
    from spikedyn.models.fused import FusedSpikingBPTT

    torch.manual_seed(4)
    m = SpikingRNN(3, 16, 1, neuron="alif", refractory=1.0).double()
    p = replace(m.params, reset="subtract_decayed")
    i_ext = (2.0 * torch.randn(30, 4, 16, dtype=torch.float64)).requires_grad_()
    state, rb = m.init_state(4), []
    for t in range(30):
        state = spiking_substep(p, m.W_rec, m.b, m.beta, state, i_ext[t])
        rb.append(state.rbar)
    ref = torch.stack(rb)
    g_ref = torch.autograd.grad(ref.square().sum(), [i_ext, m.W_rec, m.b])
    rbar, counts, *_ = FusedSpikingBPTT.apply(i_ext, m.W_rec, m.b, m.beta, p, 1, False, "dense")
    assert torch.equal(rbar, ref) and counts.sum() > 0
    for a, b in zip(g_ref, torch.autograd.grad(rbar.square().sum(), [i_ext, m.W_rec, m.b])):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)


def test_population_members_run_in_the_fused_kernel_with_a_member_axis():
    """A Population of SpikingRNNs trains through the fused kernel (member axis): the same spikes, outputs
    and gradients as each member run alone (itself checked against the map above), in float64."""
    from spikedyn.models import Population

    torch.manual_seed(5)
    members = [SpikingRNN(3, 10, 2, neuron="alif", refractory=1.0, gain=2.0, tau_out=4.0).double() for _ in range(3)]
    pop = Population.stack(members)
    u = 2.0 * torch.randn(25, 4, 3, dtype=torch.float64)
    out = pop(u)
    loss = out.y.square().sum()
    grads = dict(zip([n for n, _ in pop.named_parameters()], torch.autograd.grad(loss, list(pop.parameters()))))
    for i, m in enumerate(members):
        alone = m(u)
        assert torch.equal(out.r[i], alone.r)
        torch.testing.assert_close(out.y[i], alone.y, rtol=1e-12, atol=1e-12)
        g_alone = torch.autograd.grad(alone.y.square().sum(), list(m.parameters()))
        for (name, _), g in zip(m.named_parameters(), g_alone):
            torch.testing.assert_close(grads[name][i], g, rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible to torch (GPU test)")
@pytest.mark.parametrize("kw", KINDS)
def test_fused_kernel_on_the_gpu_equals_the_cpu_in_float64(kw):
    torch.manual_seed(6)
    m = SpikingRNN(3, 32, 2, gain=0.5, **kw).double()
    u = 1.5 * torch.randn(40, 4, 3, dtype=torch.float64)
    out = {}
    for dev in ("cpu", "cuda"):
        md = m.to(dev)
        roll = md(u.to(dev))
        grads = torch.autograd.grad(roll.y.square().sum(), list(md.parameters()))
        out[dev] = (roll.r.cpu(), [g.cpu() for g in grads])
    assert torch.equal(out["cpu"][0], out["cuda"][0])
    for a, b in zip(out["cpu"][1], out["cuda"][1]):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-11)


# -- benchmarks/sparse_threshold.py: the crossover it reports ---------------------------------------------
def _benchmark(name):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_sparse_threshold_reports_the_first_rate_at_which_sparse_loses(capsys):
    """It used to report the last rate at which sparse won, even past a loss (a noisy win at 20% after a
    loss at 10% read as "sparse wins up to 20%")."""
    import json

    bench = _benchmark("sparse_threshold")
    got = bench.crossover([0.01, 0.05, 0.1, 0.2, 0.3], [True, True, False, True, False])
    assert got == {"sparse_first_loses_at": 0.1, "sparse_wins_up_to": 0.05, "sparse_wins_again_at": [0.2]}
    assert bench.crossover([0.01, 0.1], [False, True])["sparse_wins_up_to"] is None
    assert bench.crossover([0.01, 0.1], [True, True])["sparse_first_loses_at"] is None
    n = torch.get_num_threads()
    try:
        bench.main(["--hidden", "16", "--batch", "2", "--steps", "4", "--threads", "1"])
    finally:
        torch.set_num_threads(n)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == len(bench.RATES) + 1 and all(row["threads"] == 1 for row in lines[:-1])
    assert set(lines[-1]["recurrence"]) == {"sparse_first_loses_at", "sparse_wins_up_to", "sparse_wins_again_at"}
