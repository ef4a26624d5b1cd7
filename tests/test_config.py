"""Strict configuration types: every wrong type or unknown key is one line naming the key (no coercion)."""
from __future__ import annotations

import pytest

from spikedyn.config import ConfigError, TrainConfig, check_params, did_you_mean, parse_key_values, validate
from spikedyn.experiments.base import ExperimentConfig
from spikedyn.experiments.build import build_model, build_task


@pytest.mark.parametrize(
    "data, message",
    [
        ({"hidden": True}, "hidden: expected an integer, got true (a boolean)"),
        ({"steps": "2"}, 'steps: expected an integer, got "2" (a string)'),
        ({"lr": "fast"}, 'lr: expected a number, got "fast" (a string)'),
        ({"task_params": "dt=10"}, 'task_params: expected a table of key = value'),
        ({"hiden": 8}, "hiden: unknown key; did you mean 'hidden'?"),
        ({"model": "hh"}, "model: Input should be"),
        ({"steps": 0}, "steps: Input should be greater than or equal to 1"),
        ({"clip": "none"}, 'clip: expected a number, got "none" (a string)'),
    ],
)
def test_wrong_types_are_one_line_naming_the_key(data, message):
    with pytest.raises(ConfigError) as e:
        validate(TrainConfig, data)
    text = str(e.value)
    assert "\n" not in text and text.startswith(message), text


def test_lax_values_that_are_right_pass():
    cfg = validate(TrainConfig, {"lr": 1, "hidden": 8, "run_dir": "runs/x", "clip": None, "task_params": {"dt": 10}})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float) and str(cfg.run_dir) == "runs/x" and cfg.clip is None


def test_task_and_model_params_are_checked_against_their_signatures():
    for params, message in [
        ({"dt": "ten"}, 'task_params.dt: expected a number, got "ten" (a string)'),
        ({"dt": True}, "task_params.dt: expected a number, got true (a boolean)"),
        ({"dtt": 10}, "task_params.dtt: unknown key; did you mean 'dt'?"),
        ("dt=10", "task_params: expected a table"),
    ]:
        with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
            build_task("rdm", params)
    task = build_task("rdm", {"dt": 10})  # an integer where a number is expected is fine
    with pytest.raises(ConfigError, match="^model_params.alpha: expected a number"):
        build_model("rate", task, 4, {"alpha": "x"})
    with pytest.raises(ConfigError, match="^model_params.tau_mme: unknown key; did you mean 'tau_mem'"):
        build_model("lif", task, 4, {"tau_mme": 20.0})
    assert build_model("lif", task, 4, {"tau_mem": 20}).n_hidden == 4


def test_key_value_options_parse_toml_scalars_and_keep_the_rest_as_strings():
    assert parse_key_values(["dt=10", "mask=all", "x=1.5", "flag=true"], "--task-param") == {
        "dt": 10, "mask": "all", "x": 1.5, "flag": True}
    with pytest.raises(ConfigError, match="--task-param expects key=value"):
        parse_key_values(["dt"], "--task-param")
    # dt=abc parses to the string "abc", which the task's signature then refuses
    with pytest.raises(ConfigError, match='task_params.dt: expected a number, got "abc"'):
        build_task("rdm", parse_key_values(["dt=abc"], "--task-param"))


def test_did_you_mean_and_signature_checks_without_annotations():
    assert did_you_mean("stpes", ["steps", "seed"]) == "; did you mean 'steps'?"
    assert did_you_mean("zzz", ["a", "b"]) == "; known keys: a, b"

    def f(a, b=1, **kw):  # **kwargs: anything goes, so nothing is checked
        return a

    assert check_params(f, {"c": "x"}, "p") == {"c": "x"}


def test_experiment_configs_are_strict():
    class C(ExperimentConfig):
        n: int = 1

    with pytest.raises(ValueError):
        C(n="2")
    with pytest.raises(ValueError):
        C(m=1)
