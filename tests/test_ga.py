"""The genetic algorithm (McMahan et al. 2024 Sec. 2.3): selection, mutation, result, resume; rate and LIF."""
from __future__ import annotations

import math

import numpy as np
import pytest
import spikedyn.tasks as T
import torch

import spikedyn
from spikedyn.learning.ga import GA
from spikedyn.learning.rules import batch_tensors, make_rule, member_losses
from spikedyn.models import RateRNN, SpikingRNN
from spikedyn.models.population import Population


def _task():
    return T.make("rdm", dt=50.0)


def _rate():
    return RateRNN(1, 10, 1, alpha=0.2, activation="shifted_tanh", x0_std=0.3**0.5, bias=False)


def test_one_generation_keeps_the_best_parents_and_mutates_every_weight_matrix():
    task = _task()
    pop = Population.init(_rate, 20, seed=0)
    ga = GA(parents=4, children=30, sigma_is="variance")
    state = ga.init_state(pop, task, seed=0)
    batch = task.sample(64, np.random.default_rng(1))
    u, target, mask = batch_tensors(pop, batch)
    torch.manual_seed(3)
    expected = member_losses(pop.outputs(u), target, mask, "mse")
    torch.manual_seed(3)  # the update scores the generation with the same draws
    record = ga.update(pop, batch, state, step=1)
    order = torch.argsort(expected)[:4]
    assert math.isclose(record["loss"], float(expected.min()), rel_tol=1e-6)
    nxt = state["population"]
    assert nxt["W_rec"].shape == (34, 10, 10) and len(state["configs"]) == 34
    torch.testing.assert_close(nxt["W_rec"][:4], pop.W_rec.detach()[order])  # parents carried over unchanged
    # each child is one of the parents plus N(0, 0.005) noise (read as variance here: std 0.0707) on the W_*
    parents = pop.W_rec.detach()[order]
    diffs = (nxt["W_rec"][4:, None] - parents[None]).flatten(2)  # [children, parents, N*N]
    nearest = diffs.pow(2).mean(-1).argmin(1)
    noise = diffs[torch.arange(30), nearest]
    assert abs(float(noise.std()) - math.sqrt(0.005)) < 0.1 * math.sqrt(0.005)
    for name in ("W_in", "W_out"):
        d = nxt[name][4:] - pop.get_parameter(name).detach()[order][nearest]
        assert abs(float(d.std()) - math.sqrt(0.005)) < 0.15 * math.sqrt(0.005), name
    torch.testing.assert_close(nxt["b_out"][4:], pop.b_out.detach()[order][nearest])  # biases are not weights
    assert GA().noise_std == 0.005 and GA(sigma_is="variance").noise_std == pytest.approx(0.0707, abs=1e-4)


def test_the_result_is_the_best_member_of_the_last_scored_generation():
    task = _task()
    torch.manual_seed(0)
    net = _rate()
    res = spikedyn.train(net, task, rule="ga", steps=3, batch_size=64, seed=1, eval_every=3, eval_trials=100,
                         rule_kwargs={"population": 12, "parents": 3, "children": 9}, progress=False)  # fmt: skip
    assert res.model is net and [r["population"] for r in res.history] == [12, 12, 12]
    # the returned network has the lowest loss of generation 2 on that generation's batch
    losses = [r["loss"] for r in res.history]
    assert losses[-1] <= losses[0] + 1e-6, "parents are carried over, so the best loss cannot get worse by much"


@pytest.mark.parametrize("body", ["rate", "lif"])
def test_ga_from_a_population_runs_and_resumes(body, tmp_path, interrupt_and_resume):
    task = _task()
    factory = _rate if body == "rate" else (lambda: SpikingRNN(1, 10, 1, dt=50.0, tau_mem=100.0, tau_out=50.0,
                                                                gain=2.0))  # fmt: skip

    def run(run_dir=None, callback=None):
        pop = Population.init(factory, 8, seed=2)
        return spikedyn.train(pop, task, rule="ga", steps=6, batch_size=32, seed=4, eval_every=2, eval_trials=50,
                              rule_kwargs={"parents": 2, "children": 6}, run_dir=run_dir, progress=False,
                              callback=callback)  # fmt: skip

    reference, _ = interrupt_and_resume(run, tmp_path, kill_at=5)
    assert type(reference.model) is type(factory()), "the GA returns one standalone network"
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    assert saved["config"]["model"]["kind"] == ("rate" if body == "rate" else "spiking")


def test_ga_options_are_checked():
    with pytest.raises(ValueError, match="sigma_is"):
        make_rule("ga", sigma_is="var")
    with pytest.raises(ValueError, match="parents <= population"):
        GA(population=3, parents=5)
    with pytest.raises(ValueError, match="bad option for rule 'ga'"):
        make_rule("ga", popsize=3)
