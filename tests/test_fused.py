"""The fused BPTT path of SpikingRNN equals autograd through the step loop: same spikes, same gradients."""
from __future__ import annotations

import pytest
import torch

from spikedyn.models import SpikingRNN

VARIANTS = [
    dict(neuron="lif"),
    dict(neuron="lif", reset="zero", tau_syn=5.0),
    dict(neuron="alif", refractory=2.0, self_connections=False),
    dict(neuron="alif", n_adaptive=8, substeps=3, surrogate="triangle", tau_out=5.0),
    dict(neuron="lif", substeps=4, surrogate="atan", tau_mem=float("inf"), tau_out=0.0),
]


@pytest.mark.parametrize("kw", VARIANTS)
@pytest.mark.parametrize("truncated", [False, True])
def test_fused_gradients_equal_autograd_through_the_loop(kw, truncated):
    torch.manual_seed(0)
    m = SpikingRNN(3, 16, 2, **kw).double()
    u = 3 * torch.randn(30, 5, 3, dtype=torch.float64)
    target = torch.randn(30, 5, 2, dtype=torch.float64)

    def loss_of(rollout):  # uses both outputs of the rollout: y and the spike counts r
        return ((rollout.y - target) ** 2).sum() + 0.01 * rollout.r.sum()

    # reference: autograd through the plain substep loop (the model's loop, with the truncation flag)
    from dataclasses import replace

    from spikedyn.models.spiking import spiking_substep

    p = replace(m.params, detach_recurrent=truncated)
    state, i_ext, ys, rs = m.init_state(5), u @ m.W_in.T, [], []
    for t in range(30):
        count = 0
        for _ in range(m.substeps):
            state = spiking_substep(p, m.W_rec_eff, m.b, m.beta, state, i_ext[t])
            count = count + state.z
        rs.append(count)
        ys.append(m.output(state))
    ref_y, ref_r = torch.stack(ys), torch.stack(rs)
    g_ref = torch.autograd.grad(((ref_y - target) ** 2).sum() + 0.01 * ref_r.sum(), list(m.parameters()))

    fused = m(u, detach_recurrent=truncated)  # grad enabled, zero state: the fused path
    assert torch.equal(fused.r, ref_r) and ref_r.sum() > 0
    torch.testing.assert_close(fused.y, ref_y, rtol=0, atol=0)
    g = torch.autograd.grad(loss_of(fused), list(m.parameters()))
    for (name, _), a, b in zip(m.named_parameters(), g_ref, g):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12, msg=name)


def test_fused_final_state_continues_the_trajectory():
    torch.manual_seed(1)
    m = SpikingRNN(2, 12, 1, neuron="alif", refractory=2.0)
    u = 3 * torch.randn(40, 3, 2)
    whole = m.loop(u)
    first = m(u[:25])  # fused (grad enabled)
    rest = m(u[25:], state=first.state)  # loop from the fused path's final state
    torch.testing.assert_close(torch.cat([first.r, rest.r]), whole.r)
    torch.testing.assert_close(torch.cat([first.y, rest.y]), whole.y)
