"""spikedyn: rate RNNs and their spiking twins in one workflow.

The package is lazy (PEP 562): ``import spikedyn.tasks`` and ``import spikedyn.hardware``
never import torch, because the Lava runtime lives in a separate Python 3.10 environment
without torch. Torch-backed names are imported on first attribute access.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> (module, attribute); the module is imported only when the name is used
_LAZY: dict[str, tuple[str, str]] = {
    "RateRNN": ("spikedyn.models", "RateRNN"),
    "GRURNN": ("spikedyn.models", "GRURNN"),
    "SpikingRNN": ("spikedyn.models", "SpikingRNN"),
    "SpikingNetwork": ("spikedyn.models", "SpikingNetwork"),
    "Loihi2RNN": ("spikedyn.models", "Loihi2RNN"),
    "LSTMRNN": ("spikedyn.models", "LSTMRNN"),
    "Rollout": ("spikedyn.models", "Rollout"),
    "Population": ("spikedyn.models.population", "Population"),
    "mirror": ("spikedyn.models", "mirror"),
    "train": ("spikedyn.learning", "train"),
    "TrainResult": ("spikedyn.learning", "TrainResult"),
    "deploy": ("spikedyn.export.deploy", "deploy"),
    "load_run": ("spikedyn.runs", "load_run"),
    "Run": ("spikedyn.runs", "Run"),
    "sweep": ("spikedyn.sweeps", "sweep"),
    "load_sweep": ("spikedyn.sweeps", "load_sweep"),
    "write_report": ("spikedyn.report", "write_report"),
    "compare": ("spikedyn.experiments.compare", "compare"),
}
_SUBMODULES = {"models", "learning", "analysis", "circuits", "export", "experiments", "init", "tasks", "hardware",
               "cli"}
_SUBMODULES |= {"sweeps", "report", "plot"}

__all__ = sorted([*_LAZY, *_SUBMODULES])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"spikedyn.{name}")
    raise AttributeError(f"module 'spikedyn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
