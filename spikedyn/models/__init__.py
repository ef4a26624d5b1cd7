"""Models: rate RNN, GRU and their spiking twins, all with one protocol (see ``base``)."""
from __future__ import annotations

from typing import Any

from .base import RecurrentModel, Rollout
from .conversion import mirror
from .gru import GRURNN, GRUState
from .lstm import LSTMRNN, LSTMState
from .rate import ACTIVATIONS, RateRNN, RateState
from .spiking import NeuronParams, SpikingRNN, SpikingState, spiking_substep
from .surrogate import SURROGATES, pseudo_derivative, spike

MODEL_KINDS = {"rate": RateRNN, "gru": GRURNN, "lstm": LSTMRNN, "spiking": SpikingRNN}

__all__ = [
    "ACTIVATIONS", "GRURNN", "GRUState", "LSTMRNN", "LSTMState", "MODEL_KINDS", "NeuronParams", "RateRNN",
    "RateState",
    "RecurrentModel", "Rollout", "SURROGATES", "SpikingRNN", "SpikingState", "build", "from_config",
    "mirror", "pseudo_derivative", "spike", "spiking_substep", "Population",
]  # fmt: skip


def __getattr__(name: str) -> Any:  # Population is imported on first use
    if name == "Population":
        from .population import Population

        return Population
    raise AttributeError(f"module 'spikedyn.models' has no attribute {name!r}")


def from_config(cfg: dict[str, Any]) -> RecurrentModel:
    """Rebuild a model (untrained) from ``model.config()``."""
    cfg = dict(cfg)
    kind = cfg.pop("kind", None)
    if kind == "population":
        from .population import Population

        return Population.from_config({**cfg, "kind": kind})
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {sorted(MODEL_KINDS)}")
    return MODEL_KINDS[kind](**cfg)


def build(model: str, n_in: int, n_out: int, n_hidden: int = 64, **kwargs: Any) -> RecurrentModel:
    """Build a model by short name: "rate" | "gru" | "lif" | "alif" (the CLI's ``--model``)."""
    if model == "rate":
        return RateRNN(n_in, n_hidden, n_out, **kwargs)
    if model == "gru":
        return GRURNN(n_in, n_hidden, n_out, **kwargs)
    if model == "lstm":
        return LSTMRNN(n_in, n_hidden, n_out, **kwargs)
    if model in ("lif", "alif"):
        return SpikingRNN(n_in, n_hidden, n_out, neuron=model, **kwargs)
    raise ValueError(f"unknown model {model!r}; choose one of rate, gru, lstm, lif, alif")
