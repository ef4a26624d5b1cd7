"""Build tasks and models from names and parameter dicts, with defaults that suit each task's dt.

One place for the defaults the CLI, the demo and the benchmarks share:
- rate nets are leaky with tau = 100 ms (``alpha = min(1, dt / 100 ms)``) and ReLU units, so that they
  can be mirrored into spikes;
- spiking nets run their neurons at <= 50 ms per substep (``substeps = ceil(dt / 50 ms)``) with the
  task's dt as the input step, a 50 ms readout filter, and membranes slow enough to integrate evidence
  over the decision tasks' stimulus periods (tau_mem = 50 ms for dt < 50 ms, 200 ms for the 100 ms
  NeuroGym tasks: with 20 ms membranes a LIF net stays at chance on 2af's 2 s stimulus).
"""
from __future__ import annotations

import math
from typing import Any

import torch

RATE_TAU_MS = 100.0
MAX_NEURON_DT_MS = 50.0


def build_task(name: str, params: dict[str, Any] | None = None) -> Any:
    """``spikedyn.tasks.make(name, **params)``; unknown or wrongly typed parameters are one-line
    ``ConfigError``s naming ``task_params.<key>`` (checked against the task's own signature)."""
    import spikedyn.tasks as tasks

    from ..config import check_params

    params = {} if params is None else params
    cls = tasks._REGISTRY.get(name) if isinstance(name, str) else None
    if cls is not None:
        check_params(cls.__init__, params, "task_params")
    return tasks.make(name, **params)


def _model_class(model: str) -> Any:
    from ..models import GRURNN, LSTMRNN, RateRNN, SpikingRNN

    return {"rate": RateRNN, "gru": GRURNN, "lstm": LSTMRNN, "lif": SpikingRNN, "alif": SpikingRNN}.get(model)


def default_model_params(model: str, task: Any) -> dict[str, Any]:
    dt = float(getattr(task, "dt", 1.0))
    if model == "rate":
        return {"alpha": min(1.0, dt / RATE_TAU_MS), "activation": "relu"}
    if model in ("lif", "alif"):
        return {"dt": dt, "substeps": max(1, math.ceil(dt / MAX_NEURON_DT_MS - 1e-9)),
                "tau_mem": 50.0 if dt < 50 else 200.0, "tau_out": 50.0}
    return {}


def build_model(model: str, task: Any, hidden: int = 64, params: dict[str, Any] | None = None,
                seed: int | None = 0) -> torch.nn.Module:
    """A model sized for ``task`` (inputs/outputs), with defaults from ``default_model_params``."""
    from ..config import check_params
    from ..models import build

    cls = _model_class(model)
    if cls is not None:
        check_params(cls.__init__, params or {}, "model_params", skip=4)  # self, n_in, n_hidden, n_out
    kwargs = {**default_model_params(model, task), **(params or {})}
    if seed is not None:
        torch.manual_seed(seed)
    try:
        return build(model, task.n_inputs, task.n_outputs, n_hidden=hidden, **kwargs)
    except TypeError as e:  # unknown keyword from --model-param
        raise ValueError(f"bad model parameter for {model}: {e}") from None
