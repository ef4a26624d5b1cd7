"""The mcmahan2024 preset (McMahan et al. 2024 Sec. 2.1-2.3) and `spikedyn train --preset/--population/--rule`."""
from __future__ import annotations

import json
import math

import pytest
import torch

from spikedyn.cli import main
from spikedyn.learning import presets
from spikedyn.models import RateRNN
from spikedyn.models.population import Population


def test_preset_builds_the_papers_network():
    p = presets.get("mcmahan2024")
    assert presets.get("seed002") is p
    task = p.task("cdi")
    assert task.dt == 10.0 and task.n_inputs == 4
    nets = [p.build_model(task, seed=s) for s in range(40)]
    net = nets[0]
    assert isinstance(net, RateRNN) and net.n_hidden == 50 and net.activation == "shifted_tanh"
    assert net.alpha == pytest.approx(0.1) and net.x0_std == pytest.approx(math.sqrt(0.3)) and not net.has_bias
    std = {k: float(torch.stack([getattr(m, k).detach() for m in nets]).std()) for k in ("W_in", "W_rec", "W_out")}
    assert std["W_in"] == pytest.approx(math.sqrt(0.5), rel=0.05)  # N(0, 0.5)
    assert std["W_out"] == pytest.approx(math.sqrt(0.1), rel=0.1)  # N(0, 0.1)
    assert std["W_rec"] == pytest.approx(1.0 / math.sqrt(50), rel=0.05)  # N(0, g^2/N), g = 1
    assert float(net.b_out.detach().abs().max()) == 0.0
    assert torch.equal(p.build_model(task, seed=3).W_rec, nets[3].W_rec)
    assert p.build_model(task, rule="hebbian").activation == "tanh"
    kw = p.train_kwargs("bptt")
    assert (kw["lr"], kw["batch_size"], kw["eval_trials"], kw["target_accuracy"]) == (5e-4, 500, 2000, 0.9)
    ga = p.train_kwargs("ga")
    assert ga["rule_kwargs"] == {"population": 50, "parents": 5, "children": 50, "sigma": 0.005}
    from spikedyn.learning.rules import make_rule

    ff = make_rule("full_force", **p.train_kwargs("full_force")["rule_kwargs"])  # McMahan et al.'s code settings
    assert (ff.target_fill, ff.fit_from_ms, ff.rls_alpha) == ("next", 200.0, 100.0)
    pop = p.build_population(task, 3, seed=7)
    assert isinstance(pop, Population) and torch.equal(pop.W_rec[1], p.build_model(task, seed=8).W_rec)
    with pytest.raises(ValueError, match="unknown preset"):
        presets.get("nope")


def test_cli_trains_a_population_and_runs_the_ga(tmp_path, capsys):
    rc = main(["train", "--preset", "seed002", "--task", "rdm", "--steps", "2", "--population", "3",
               "--batch-size", "16", "--eval-every", "2", "--eval-trials", "40", "--no-progress", "--json",
               "--run-dir", str(tmp_path / "pop")])  # fmt: skip
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["population"] == 3 and len(out["member_accuracy"]) == 3
    cfg = json.loads((tmp_path / "pop" / "config.json").read_text())
    assert cfg["model"]["kind"] == "population" and cfg["train"]["lr"] == 5e-4 and cfg["train"]["clip"] is None
    rc = main(["train", "--task", "rdm", "--task-param", "dt=50", "--model", "lif", "--hidden", "8", "--rule", "ga",
               "--population", "6", "--rule-param", "parents=2", "--rule-param", "children=4",
               "--rule-param", "sigma_is=std", "--steps", "2", "--batch-size", "16", "--eval-trials", "20",
               "--no-progress", "--json", "--run-dir", str(tmp_path / "ga")])  # fmt: skip
    assert rc == 0
    cfg = json.loads((tmp_path / "ga" / "config.json").read_text())
    assert cfg["rule"]["sigma_is"] == "std" and cfg["rule"]["parents"] == 2
    saved = torch.load(tmp_path / "ga" / "model.pt", weights_only=True)
    assert saved["config"]["model"]["kind"] == "spiking"
    capsys.readouterr()
    assert main(["train", "--preset", "nope", "--steps", "1"]) == 2
    assert "unknown preset" in capsys.readouterr().err
    assert main(["train", "--rule", "ga", "--rule-param", "sigma_is=var", "--steps", "1"]) == 2


def _train_preset(tmp_path, name, *args):
    rc = main(["train", "--preset", "mcmahan2024", "--task", "rdm", "--steps", "1", "--batch-size", "8",
               "--eval-trials", "20", "--no-progress", "--json", "--run-dir", str(tmp_path / name), *args])  # fmt: skip
    assert rc == 0
    return json.loads((tmp_path / name / "config.json").read_text())["model"]


def test_cli_preset_honours_model_params_and_keeps_its_own_without_them(tmp_path, capsys):
    # "flags given here win": --model-param over the preset's network, for one model and for --population
    one = _train_preset(tmp_path, "one", "--model-param", "noise_std=0.5", "--model-param", "alpha=0.5")
    assert (one["alpha"], one["noise_std"], one["n_hidden"], one["activation"]) == (0.5, 0.5, 50, "shifted_tanh")
    pop = _train_preset(tmp_path, "pop", "--population", "2", "--model-param", "tau=20")
    assert [m["alpha"] for m in pop["members"]] == [0.5, 0.5]  # tau = 20 ms at the preset's dt = 10 ms
    plain = _train_preset(tmp_path, "plain")  # without flags: the preset's values
    assert (plain["alpha"], plain["noise_std"], plain["bias"]) == (0.1, 0.0, False)
    assert plain["x0_std"] == pytest.approx(math.sqrt(0.3))
    p = presets.get("mcmahan2024")
    task = p.task("rdm")
    assert torch.equal(p.build_model(task, seed=1, noise_std=0.2).W_rec, p.build_model(task, seed=1).W_rec)
    capsys.readouterr()
    for bad, says in (("seed=3", "use --seed"), ("n_hidden=3", "use --hidden"), ("foo=1", "model_params.foo")):
        assert main(["train", "--preset", "mcmahan2024", "--model-param", bad, "--steps", "1", "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1
