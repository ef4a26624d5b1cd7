"""``spikedyn train --preset bellec2020``: Bellec et al. 2020's network (``spikedyn.learning.bellec2020.model``)
and e-prop with their firing-rate regulariser, from the command line."""
from __future__ import annotations

import json

import pytest
import torch

from spikedyn.cli import main
from spikedyn.experiments.build import build_task
from spikedyn.learning import bellec2020, presets
from spikedyn.models import from_config


def test_bellec2020_is_a_preset_of_the_python_api():
    p = presets.get("bellec2020")
    assert p is bellec2020.PRESET
    task = build_task("rdm", {"dt": 10.0})
    net = p.build_model(task, seed=3, neuron="alif", tau_mem=50.0)
    want = bellec2020.model(task.n_inputs, 64, task.n_outputs, dt=10.0, neuron="alif", tau_mem=50.0)
    assert net.config() == want.config() and net.n_adaptive == 32
    assert torch.equal(net.W_rec, p.build_model(task, seed=3, neuron="alif", tau_mem=50.0).W_rec)  # seeded
    assert p.train_kwargs("eprop") == {"rule": "eprop", "rule_kwargs": {"regularizer": {"strength": 1.0,
                                                                                        "target": 10.0}}}
    with pytest.raises(ValueError, match="--rule eprop"):
        p.train_kwargs("ga")


def test_cli_trains_with_the_bellec2020_preset(tmp_path, capsys):
    run = tmp_path / "run"
    rc = main(["train", "--preset", "bellec2020", "--model", "alif", "--rule", "eprop", "--task", "rdm",
               "--task-param", "dt=50", "--hidden", "8", "--model-param", "tau_mem=50", "--steps", "2",
               "--batch-size", "8", "--eval-every", "2", "--eval-trials", "20", "--no-progress", "--json",
               "--run-dir", str(run)])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    out = json.loads(capsys.readouterr().out)
    assert out["preset"] == "bellec2020" and out["rule"] == "eprop"
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["rule"]["name"] == "eprop" and cfg["rule"]["regularizer"]["target"] == 10.0
    saved = torch.load(run / "model.pt", weights_only=True)["config"]["model"]
    task = build_task("rdm", {"dt": 50.0})
    want = bellec2020.model(task.n_inputs, 8, task.n_outputs, dt=50.0, neuron="alif", tau_mem=50.0).config()
    assert from_config(saved).config() == want  # the preset's network: triangle surrogate, no self-connections...
    assert saved["surrogate"] == "triangle" and saved["self_connections"] is False and saved["v_th"] == 0.6


@pytest.mark.parametrize("args, message", [
    ([], "use --model lif or --model alif"),                          # --model defaults to rate
    (["--model", "lif", "--rule", "ga"], "trains with --rule eprop"),
    (["--model", "lif", "--rule", "eprop", "--model-param", "tau_nope=3"], "tau_nope"),
    (["--model", "lif", "--model-param", "neuron=alif"], "use --model"),
    (["--model", "lif", "--model-param", "hidden=4"], "use --hidden"),
    (["--model", "lif", "--model-param", "rule=bptt"], "use --rule"),
])  # fmt: skip
def test_cli_refuses_what_the_bellec2020_preset_cannot_build_in_one_line(args, message, capsys):
    rc = main(["train", "--preset", "bellec2020", "--task", "rdm", "--steps", "1", "--no-progress", *args])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err
