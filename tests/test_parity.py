"""Spike-for-spike parity of spikedyn's LIF with snntorch's RLeaky and norse's LIFRecurrentCell.

Both libraries are real test dependencies. float64 everywhere, so that no spike can flip on a
last-bit rounding difference between the libraries' orders of summation.
"""
from __future__ import annotations

import pytest
import torch

from spikedyn.models import SpikingRNN

T, B, I, N = 200, 4, 5, 32


@pytest.fixture(autouse=True)
def _float64():
    torch.manual_seed(1)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def test_lif_equals_snntorch_rleaky():
    import snntorch as snn
    beta, vth = 0.9, 1.0
    x = torch.rand(T, B, I) * 2.0
    ref_fc = torch.nn.Linear(I, N, bias=False)
    # spike_grad only changes the dtype of snntorch's spikes (its default casts them to float32)
    ref = snn.RLeaky(beta=beta, threshold=vth, linear_features=N, all_to_all=True, reset_mechanism="subtract",
                     spike_grad=lambda x: (x > 0).to(x.dtype))
    with torch.no_grad():
        ref_fc.weight.mul_(2.0)
        ref.recurrent.weight.mul_(1.5)
    spk, mem = (t.double() for t in ref.init_rleaky())
    ref_spikes = []
    for t in range(T):
        spk, mem = ref(ref_fc(x[t]), spk, mem)
        ref_spikes.append(spk)
    ref_spikes = torch.stack(ref_spikes)

    # RLeaky: U[t] = beta U[t-1] + W_in x[t] + V z[t-1] + bias_V - vth z[t-1]  ==  our LIF with
    # du = 1 (no current), dv = 1 - beta, reset by subtraction, b = the recurrent Linear's bias.
    m = SpikingRNN(I, N, 1, neuron="lif", du=1.0, dv=1.0 - beta, v_th=vth, reset="subtract")
    with torch.no_grad():
        m.W_in.copy_(ref_fc.weight)
        m.W_rec.copy_(ref.recurrent.weight)
        m.b.copy_(ref.recurrent.bias)
    ours = m.spike_trains(x)
    assert ref_spikes.sum() > 0.05 * T * B * N, "parameters must make the network spike a lot"
    torch.testing.assert_close(ours, ref_spikes.detach(), rtol=0, atol=0)


def test_lif_equals_norse_lif_recurrent_cell():
    import norse.torch as norse
    dt, tau_syn_inv, tau_mem_inv = 1e-3, 200.0, 100.0
    p = norse.LIFParameters(tau_syn_inv=torch.tensor(tau_syn_inv), tau_mem_inv=torch.tensor(tau_mem_inv),
                            v_th=torch.tensor(1.0), v_leak=torch.tensor(0.0), v_reset=torch.tensor(0.0))
    cell = norse.LIFRecurrentCell(I, N, p=p, dt=dt, autapses=False)
    with torch.no_grad():
        cell.input_weights.mul_(30.0)
        cell.recurrent_weights.mul_(10.0)
    x = (torch.rand(T, B, I) < 0.3).double()
    s, ref = None, []
    for t in range(T):
        z, s = cell(x[t], s)
        ref.append(z)
    ref = torch.stack(ref).detach()

    # norse: i_jump = i + W x + W_rec z[t-1]; v = (1 - dv) v + dv i_jump; i = (1 - du) i_jump; reset to 0.
    # Our u is norse's i_jump scaled by dv, so our weights are norse's times dv.
    du, dv = dt * tau_syn_inv, dt * tau_mem_inv
    m = SpikingRNN(I, N, 1, neuron="lif", du=du, dv=dv, v_th=1.0, reset="zero", bias=False,
                   self_connections=False)
    W_rec = cell.recurrent_weights.detach()
    assert torch.all(torch.diagonal(W_rec) == 0)
    with torch.no_grad():
        m.W_in.copy_(dv * cell.input_weights)
        m.W_rec.copy_(dv * W_rec)
    ours = m.spike_trains(x)
    assert ref.sum() > 0.02 * T * B * N, "parameters must make the network spike"
    torch.testing.assert_close(ours, ref, rtol=0, atol=0)
