"""Models: rate RNN, GRU, LSTM, their spiking twins and the Loihi-2 fixed-point body, all with one protocol
(``Body``, see ``base``)."""
from __future__ import annotations

from typing import Any

from .base import Body, RecurrentModel, Rollout
from .conversion import mirror
from .gru import GRURNN, GRUState
from .lstm import LSTMRNN, LSTMState
from .network import Loihi2Network, SpikingNetwork
from .rate import ACTIVATION_TABLE, ACTIVATIONS, RateRNN, RateState, activation_derivative
from .spiking import Loihi2RNN, NeuronParams, SpikingRNN, SpikingState, spiking_substep
from .surrogate import SURROGATES, pseudo_derivative, spike

MODEL_KINDS = {"rate": RateRNN, "gru": GRURNN, "lstm": LSTMRNN, "spiking": SpikingRNN, "loihi2": Loihi2RNN,
               "network": SpikingNetwork, "loihi2_network": Loihi2Network}

__all__ = [
    "ACTIVATIONS", "ACTIVATION_TABLE", "Body", "GRURNN", "GRUState", "LSTMRNN", "LSTMState", "Loihi2Network",
    "Loihi2RNN", "SpikingNetwork",
    "MODEL_KINDS", "NeuronParams", "Population", "RateRNN", "RateState", "RecurrentModel", "Rollout",
    "SURROGATES", "SpikingRNN", "SpikingState", "activation_derivative", "build", "from_config", "mirror",
    "pseudo_derivative", "spike", "spiking_substep",
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
