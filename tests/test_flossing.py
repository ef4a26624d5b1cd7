"""Gradient flossing: it reaches its target, and its (local) gradients equal an independent autograd
computation through the model's own (detached) rollout."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from spikedyn.analysis import lyapunov_spectrum
from spikedyn.init import flossing, flossing_loss
from spikedyn.models import GRURNN, RateRNN

pytestmark = pytest.mark.usefixtures("one_thread_seeded")


def test_flossing_moves_top_k_exponents_of_gain_02_rnn_to_zero():
    torch.manual_seed(1)
    m = RateRNN(2, 16, 1, alpha=1.0, gain=0.2)
    gen = torch.Generator().manual_seed(0)
    u_train = 0.5 * torch.randn(40, 4, 2, generator=gen)
    u_test = 0.5 * torch.randn(200, 4, 2, generator=gen)
    before = lyapunov_spectrum(m, u_test, k=3, x0_std=0.0, unit="per_step")
    assert np.all(before < -1.0)
    res = flossing(m, u_train, steps=100, k=3, lr=0.01, progress=False)
    after = lyapunov_spectrum(m, u_test, k=3, x0_std=0.0, unit="per_step")
    assert np.all(np.abs(after) < 0.05), after
    assert res.lambdas.shape == (100, 3) and res.history[-1]["loss"] < 0.01


def _reference_loss(model, u, k, warmup, Q0, detach):
    """Flossing loss from scratch: states from the model's own rollout (tanh: x = atanh(r)), dense
    Jacobians (1 - a) I + a W diag(f'(x)), torch QR."""
    r = model(u, detach_recurrent=detach).r
    xs = torch.cat([model.init_state(u.shape[1]).x[None], torch.atanh(r)])  # x_0 .. x_T
    a, N = model.alpha, model.n_hidden
    Q, logs = Q0, []
    for t in range(u.shape[0]):
        J = (1 - a) * torch.eye(N, dtype=u.dtype) + a * model.W_rec * (1 - torch.tanh(xs[t]) ** 2)[:, None, :]
        Q, R = torch.linalg.qr(J @ Q)
        if t >= warmup:
            logs.append(torch.log(torch.diagonal(R, dim1=-2, dim2=-1).abs()))
    lam = torch.stack(logs).mean(0)
    return (lam**2).sum(-1).mean()


@pytest.mark.parametrize("local", [False, True])
def test_flossing_gradient_equals_autograd_through_rollout(local):
    torch.manual_seed(2)
    m = RateRNN(2, 10, 1, alpha=0.3, gain=0.8).double()
    u = 0.5 * torch.randn(30, 3, 2, dtype=torch.float64)
    params = [m.W_in, m.W_rec, m.b]
    loss, _ = flossing_loss(m, u, k=3, warmup=5, local=local, seed=4)
    grads = torch.autograd.grad(loss, params)
    from spikedyn.analysis.lyapunov import random_orthonormal

    Q0 = random_orthonormal((3,), 10, 3, torch.Generator().manual_seed(4), torch.float64, "cpu")
    ref = _reference_loss(m, u, 3, 5, Q0, detach=local)
    ref_grads = torch.autograd.grad(ref, params)
    torch.testing.assert_close(loss, ref)
    for g, h in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, h, rtol=1e-7, atol=1e-10)


def test_local_gradient_differs_from_full():
    torch.manual_seed(3)
    m = RateRNN(2, 10, 1, alpha=0.3, gain=0.8).double()
    u = 0.5 * torch.randn(30, 2, 2, dtype=torch.float64)
    g_full = torch.autograd.grad(flossing_loss(m, u, 2, 5, local=False)[0], m.W_rec)[0]
    g_local = torch.autograd.grad(flossing_loss(m, u, 2, 5, local=True)[0], m.W_rec)[0]
    assert not torch.allclose(g_full, g_local)


def test_flossing_gru_and_task_inputs_reduce_the_loss():
    import spikedyn.tasks as T

    task = T.make("copy_memory", delay=5)
    m = GRURNN(task.n_inputs, 12, task.n_outputs)
    res = flossing(m, task, steps=15, k=2, lr=0.02, batch_size=4, progress=False)
    assert res.history[-1]["loss"] < 0.5 * res.history[0]["loss"]


def test_flossing_errors():
    m = RateRNN(2, 8, 1)
    with pytest.raises(ValueError, match="shape"):
        flossing(m, torch.zeros(10, 2, 3), steps=1, progress=False)
    with pytest.raises(ValueError, match="positive"):
        flossing(m, torch.zeros(10, 2, 2), steps=0, progress=False)
    with pytest.raises(ValueError, match="RateRNN only"):
        flossing(GRURNN(2, 8, 1), torch.zeros(10, 2, 2), steps=1, local=True, progress=False)


def test_flossing_rounding_benchmark_runs(tmp_path, monkeypatch):
    """benchmarks/flossing_rounding.py (docs/analysis.md's rounding check) on a tiny budget: the one-ulp run
    starts within rounding of the
    unperturbed one, and the result file is written."""
    import json
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    sys.modules.pop("flossing_rounding", None)
    import flossing_rounding

    out = flossing_rounding.main(["--steps", "3", "--floss-steps", "2", "--out", str(tmp_path / "r.json")])
    assert out["max_relative_loss_difference_up_to"][3] < 1e-4  # a rounding-sized change at the start
    from spikedyn.experiments.flossing import FlossingRomoConfig, run

    exp = run(FlossingRomoConfig(**out["config"]), tmp_path / "exp.json", log=lambda s: None)
    flossed = exp["runs"][0]["curves"]["flossing + e-prop"]  # the benchmark trains the experiment's own arm
    assert flossed["accuracy"] == out["as_is"]["accuracy"]
    assert flossed["loss"] == out["as_is"]["loss"]
    # --compare (docs' comparison of code versions): a results file against itself and a perturbed copy
    other = json.loads((tmp_path / "exp.json").read_text())
    other["runs"][0]["curves"]["flossing + e-prop"]["loss"][1] *= 1.01
    (tmp_path / "other.json").write_text(json.dumps(other))
    cmp = flossing_rounding.main(["--compare", str(tmp_path / "exp.json"), str(tmp_path / "exp.json"),
                                  str(tmp_path / "other.json"), "--out", str(tmp_path / "c.json")])  # fmt: skip
    same, perturbed = cmp["comparisons"]
    assert same["floss_lambdas_identical"] and same["lambda_after_identical"]
    assert max(same["flossing + e-prop"]["max_relative_loss_difference_up_to"].values()) == 0.0
    assert perturbed["flossing + e-prop"]["max_relative_loss_difference_up_to"][3] == pytest.approx(0.01)
    assert perturbed["e-prop"]["max_relative_loss_difference_up_to"][3] == 0.0
    assert json.loads((tmp_path / "c.json").read_text())["comparisons"][1]["b"] == str(tmp_path / "other.json")
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["one_ulp"]["final_accuracy"] == out["one_ulp"]["final_accuracy"]
    assert len(saved["as_is"]["accuracy"]) == 3 and 0.0 <= saved["as_is"]["final_accuracy"] <= 1.0
