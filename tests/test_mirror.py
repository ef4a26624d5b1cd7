"""mirror(): the spiking twin of a trained rate net keeps its accuracy and tracks its rates."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import spikedyn
from spikedyn.experiments.build import build_model, build_task
from spikedyn.learning import evaluate
from spikedyn.models import RateRNN, mirror


def test_if_neuron_rate_code_matches_the_linearised_activation():
    """One unit, no recurrence: lam * rate of the twin equals lam * clip(k x + c, 0, 1) for constant x."""
    for act in ("relu", "shifted_tanh"):
        rate = RateRNN(1, 1, 1, alpha=0.1, activation=act)
        with torch.no_grad():
            rate.W_rec.zero_()
            rate.W_in.fill_(1.0)
            rate.b.zero_()
        xs = torch.linspace(-1.5, 1.5, 13)
        u = xs.repeat(400, 1)[:, :, None]  # [T, B=13, 1], constant drive: x -> u
        twin = mirror(rate, inputs=torch.rand(50, 4, 1) * 2, substeps=10)
        lam, k, c = twin.mirror_scale
        with torch.no_grad():
            counts = twin(u).r[200:].mean(0)[:, 0] / twin.substeps  # spikes per substep, after the transient
        expected = np.clip(k * xs.numpy() + c, 0, 1)
        np.testing.assert_allclose(counts.numpy(), expected, atol=0.02)


def test_tanh_has_no_twin_and_relu_needs_calibration():
    with pytest.raises(ValueError, match="signed rates"):
        mirror(RateRNN(2, 4, 1, activation="tanh"))
    with pytest.raises(ValueError, match="calibration inputs"):
        mirror(RateRNN(2, 4, 1, activation="relu"))


def test_mirror_keeps_90_percent_of_a_trained_rdm_net():
    task = build_task("rdm", {"dt": 10.0})
    rate = build_model("rate", task, hidden=64, seed=0)
    spikedyn.train(rate, task, steps=300, batch_size=64, lr=3e-3, seed=0, eval_every=300, eval_trials=200,
                   progress=False)
    held_out = task.sample(2000, np.random.default_rng(11), split="test")
    calib = task.sample(64, np.random.default_rng(12)).inputs
    twin = mirror(rate, inputs=calib, substeps=10, dt=task.dt)
    acc_rate = evaluate(rate, task, held_out)["accuracy"]
    acc_twin = evaluate(twin, task, held_out)["accuracy"]
    assert acc_rate >= 0.9
    assert acc_twin >= 0.9 * acc_rate, (acc_rate, acc_twin)
    # the twin's filtered spikes track the rate units: lam * rbar ~ f(x), correlated unit by unit
    u = torch.as_tensor(held_out.inputs[:, :16])
    with torch.no_grad():
        r_rate = rate(u).r
    r_twin = twin.mirror_scale[0] * twin.filtered_spikes(u)
    active = r_rate.std(dim=(0, 1)) > 0.05
    corr = [np.corrcoef(r_rate[..., i].flatten(), r_twin[..., i].flatten())[0, 1] for i in np.flatnonzero(active)]
    assert np.median(corr) > 0.8, np.median(corr)
