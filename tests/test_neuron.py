"""The one neuron map (spikedyn.hardware.neuron) and the one-definition helpers built on it: its partial
derivatives against autograd through the map itself, the activation table and the loss gradient against
autograd, the body protocol, decays stored once, and the map on numpy vs torch."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from spikedyn.hardware import neuron
from spikedyn.hardware.neuron import NeuronConstants, numpy_ops

from spikedyn.learning.losses import loss_and_error, loss_normaliser, output_error, task_loss
from spikedyn.models import (
    ACTIVATION_TABLE,
    GRURNN,
    LSTMRNN,
    Body,
    Loihi2RNN,
    RateRNN,
    SpikingRNN,
    activation_derivative,
    from_config,
)
from spikedyn.models.spiking import torch_ops


@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("detach", [True, False])
@pytest.mark.parametrize("leak", [(0.0, 0.0), (0.3, -0.2)])
def test_partials_equal_autograd_through_the_map(reset, detach, leak):
    v_leak, v_reset = leak
    if reset == "subtract":
        v_reset = 0.0
    c = NeuronConstants(du=0.3, dv=0.2, v_th=1.0, reset=reset, rho=0.9, adaptive=True, detach_reset=detach,
                        v_leak=v_leak, v_reset=v_reset)  # fmt: skip
    ops = torch_ops("fast_sigmoid", 25.0, 1.0)
    g = torch.Generator().manual_seed(0)
    B, N = 3, 5
    u, v, a = (torch.randn(B, N, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    z = (torch.rand(B, N, generator=g, dtype=torch.float64) > 0.5).double().requires_grad_(True)
    ref, cur = torch.zeros(B, N, dtype=torch.float64), torch.randn(B, N, generator=g, dtype=torch.float64)
    beta = torch.full((N,), 0.1, dtype=torch.float64)
    u2, v2, _, a2, _ = neuron.neuron_update(c, ops, u, v, z, a, ref, cur, 0.0, beta)
    d = neuron.partials(c, z.detach(), v.detach())
    ones = torch.ones(B, N, dtype=torch.float64)
    (du_du,) = torch.autograd.grad(u2, u, ones, retain_graph=True)
    dv_dv, dv_dz = torch.autograd.grad(v2, (v, z), ones, retain_graph=True, allow_unused=True)
    (da_da,) = torch.autograd.grad(a2, a, ones, retain_graph=True)
    (da_dz,) = torch.autograd.grad(a2, z, ones)
    torch.testing.assert_close(du_du, torch.full_like(u, d.u_u))
    torch.testing.assert_close(dv_dv, torch.as_tensor(d.v_v, dtype=torch.float64).expand(B, N))
    torch.testing.assert_close(da_da, torch.full_like(a, d.a_a))
    torch.testing.assert_close(da_dz, ones)  # da(s)/dz(s-1) = 1
    # dv/dz(s-1): the reset's path (autograd also sees the u(s) path, which is 0 here: z only enters u via W)
    if d.v_z is None:
        assert dv_dz is None or torch.all(dv_dz == 0)
    else:
        torch.testing.assert_close(dv_dz, torch.as_tensor(d.v_z, dtype=torch.float64).expand(B, N))


def test_the_map_on_numpy_equals_the_map_on_torch_bit_for_bit():
    """Refractoriness, adaptation, both resets, v_leak / v_reset: one function, two array libraries."""
    rng = np.random.default_rng(1)
    B, N = 4, 16
    for c in (NeuronConstants(du=0.2, dv=0.1, v_th=1.0, reset="zero", rho=0.95, n_ref=2, adaptive=True,
                              v_leak=0.1, v_reset=-0.5),
              NeuronConstants(du=1.0, dv=0.05, v_th=0.7, reset="subtract", n_ref=1)):  # fmt: skip
        s_np = [np.zeros((B, N)) for _ in range(5)]
        s_t = [torch.zeros(B, N, dtype=torch.float64) for _ in range(5)]
        bias, beta = rng.uniform(0, 0.1, N), np.full(N, 0.2)
        ops_t = torch_ops("fast_sigmoid", 25.0, c.v_th)
        total = 0.0
        for _ in range(60):
            cur = rng.normal(size=(B, N)) * 0.8
            s_np = neuron.neuron_update(c, numpy_ops(), *s_np, cur, bias, beta)
            s_t = neuron.neuron_update(c, ops_t, *s_t, torch.as_tensor(cur), torch.as_tensor(bias),
                                       torch.as_tensor(beta))  # fmt: skip
            for a, b in zip(s_np, s_t):
                np.testing.assert_array_equal(a, b.numpy())
            total += s_np[2].sum()
        assert total > 50


@pytest.mark.parametrize("name", sorted(ACTIVATION_TABLE))
def test_activation_table_derivatives_equal_autograd(name):
    x = torch.cat([torch.linspace(-6, 6, 101), torch.tensor([19.5, 20.5, 25.0, 40.0])]).double().requires_grad_(True)
    x = x[x != 0].detach().requires_grad_(True)  # relu: autograd's value at 0 is a convention
    (grad,) = torch.autograd.grad(ACTIVATION_TABLE[name].f(x).sum(), x)
    torch.testing.assert_close(activation_derivative(name, x.detach()), grad, rtol=0, atol=1e-15)


@pytest.mark.parametrize("kind", ["mse", "ce"])
def test_loss_gradient_helper_equals_autograd(kind):
    g = torch.Generator().manual_seed(2)
    y = torch.randn(6, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.softmax(torch.randn(6, 3, 4, generator=g, dtype=torch.float64), -1)
    mask = (torch.rand(6, 3, 1, generator=g) > 0.3).double().expand(6, 3, 4)
    (grad,) = torch.autograd.grad(task_loss(y, target, mask, kind), y)
    torch.testing.assert_close(output_error(y.detach(), target, mask, kind), grad)
    value, err = loss_and_error(y.detach(), target, mask, kind, loss_normaliser(mask, kind))
    torch.testing.assert_close(value, task_loss(y.detach(), target, mask, kind))
    torch.testing.assert_close(err, grad)


def test_every_body_follows_the_protocol_with_dt_in_ms():
    bodies = [RateRNN(2, 4, 1, dt=5.0, tau=50.0), GRURNN(2, 4, 1, dt=5.0), LSTMRNN(2, 4, 1, dt=5.0),
              SpikingRNN(2, 4, 1, dt=5.0), Loihi2RNN(2, 4, 1, dt=5.0, reset="zero")]  # fmt: skip
    u = torch.rand(7, 3, 2)
    for m in bodies:
        assert isinstance(m, Body) and m.dt == 5.0
        out = m(u)
        assert out.y.shape == (7, 3, 1) and out.r.shape == (7, 3, 4)
        assert from_config(m.config()).dt == 5.0 and type(from_config(m.config())) is type(m)
        assert "dt=5 ms" in repr(m)
    assert bodies[0].alpha == pytest.approx(0.1) and bodies[0].tau == pytest.approx(50.0)
    assert RateRNN(2, 4, 1, alpha=0.2).config()["alpha"] == 0.2  # alpha= keeps working


def test_decays_are_stored_once_and_config_rebuilds_the_same_map():
    m = SpikingRNN(2, 6, 1, neuron="alif", dt=2.0, substeps=3, tau_mem=17.0, tau_syn=3.0, tau_adapt=300.0,
                   tau_out=40.0, refractory=2.0, v_leak=0.1)  # fmt: skip
    m2 = from_config(m.config())
    assert m2.params == m.params
    assert m.tau_mem == pytest.approx(17.0) and m.tau_out == pytest.approx(40.0) and m.refractory == 2.0
    # the exact decays given directly survive a round trip too (no exp/log in between)
    m3 = SpikingRNN(2, 6, 1, du=0.123456789, dv=0.0987654321, kappa=0.9, rho=0.5)
    assert from_config(m3.config()).params == m3.params


def test_v_leak_v_reset_bodies_train_through_the_loop_with_the_maps_gradient():
    """The fused kernel does not cover v_leak / v_reset: forward falls back to the map's loop, which
    equals the step loop and has autograd's gradient."""
    torch.set_default_dtype(torch.float64)
    try:
        m = SpikingRNN(3, 10, 2, reset="zero", v_leak=0.2, v_reset=-0.1, tau_syn=4.0, gain=2.0)
        u = torch.rand(30, 2, 3) * 2
        out, loop = m(u), m.loop(u)
        torch.testing.assert_close(out.y, loop.y, rtol=0, atol=1e-12)
        torch.testing.assert_close(out.r, loop.r, rtol=0, atol=0)
        assert out.r.sum() > 10
        (g,) = torch.autograd.grad(out.y.square().sum(), m.W_rec)
        assert torch.isfinite(g).all() and g.abs().sum() > 0
    finally:
        torch.set_default_dtype(torch.float32)
