"""``spikedyn eval`` / ``spikedyn report`` / ``evaluate_run`` on a Population run trained with one seed per
member (what every sweep's ``populations/<hash>/`` directory holds): each member is scored on the held-out
trials and noise of the same model trained alone with its seed (``train(pop.member(i), seed=seed[i])``)."""
from __future__ import annotations

import copy
import json

import pytest
import torch

import spikedyn
from spikedyn.cli import main
from spikedyn.models import RateRNN
from spikedyn.models.population import Population
from spikedyn.runs import evaluate_run, load_run

SEEDS = [3, 5]
SETTINGS = dict(steps=2, batch_size=8, eval_every=1, eval_trials=24, progress=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("popruns")
    task = spikedyn.tasks.make("rdm", dt=50.0)
    nets = []
    for s in SEEDS:
        torch.manual_seed(s)
        nets.append(RateRNN(task.n_inputs, 8, task.n_outputs, alpha=0.5, noise_std=0.3))  # noise: eval seeds matter
    alone = [root / f"alone{s}" for s in SEEDS]
    for net, s, d in zip(nets, SEEDS, alone):
        spikedyn.train(copy.deepcopy(net), task, seed=s, run_dir=d, **SETTINGS)
    spikedyn.train(Population.stack(nets), task, seed=SEEDS, run_dir=root / "pop", **SETTINGS)
    return root / "pop", alone


def test_evaluate_run_scores_each_member_with_its_own_seed(runs):
    pop_dir, alone = runs
    assert json.loads((pop_dir / "config.json").read_text())["train"]["seed"] == SEEDS
    scores = evaluate_run(load_run(pop_dir))
    assert scores["seed"] == SEEDS
    want = [evaluate_run(load_run(d)) for d in alone]
    assert scores["member_accuracy"] == pytest.approx([w["accuracy"] for w in want], abs=1e-12)
    assert scores["member_eval_loss"] == pytest.approx([w["eval_loss"] for w in want], rel=1e-5)
    final = json.loads((pop_dir / "summary.json").read_text())["final"]  # the defaults reproduce train's own
    assert scores["member_eval_loss"] == pytest.approx(final["member_eval_loss"], rel=1e-6)


def test_cli_eval_and_report_work_on_a_per_member_seed_population(runs, tmp_path, capsys):
    pop_dir, _ = runs
    assert main(["eval", "--run-dir", str(pop_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["seed"] == SEEDS and len(out["member_accuracy"]) == 2
    assert main(["report", str(pop_dir), "--out", str(tmp_path / "pop.html")]) == 0
    page = (tmp_path / "pop.html").read_text()
    assert "the trained model (member 0 of 2)" in page and "<img" in page
