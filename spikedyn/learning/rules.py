"""Learning rules as objects: each estimates the gradient of the task loss for one batch.

``rule.gradients(model, u, target, mask, loss="mse") -> {param_name: grad}`` keyed like
``model.named_parameters()``. ``spikedyn.train`` applies the estimate with Adam; custom loops can
use it directly. BPTT's estimate is autograd's exact gradient.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .losses import task_loss

RULES: dict[str, type[LearningRule]] = {}


def register_rule(name: str):
    def deco(cls):
        RULES[name] = cls
        cls.name = name
        return cls

    return deco


class LearningRule:
    """Base class. Subclasses implement ``loss_and_gradients``."""

    name = "base"

    def loss_and_gradients(
        self, model: torch.nn.Module, u: Tensor, target: Tensor, mask: Tensor, loss: str = "mse"
    ) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError

    def gradients(
        self, model: torch.nn.Module, u: Tensor, target: Tensor, mask: Tensor, loss: str = "mse"
    ) -> dict[str, Tensor]:
        """The rule's estimate of dLoss/dparam for one batch (see module doc)."""
        return self.loss_and_gradients(model, u, target, mask, loss)[1]

    def config(self) -> dict[str, Any]:
        return {"name": self.name}


@register_rule("bptt")
class BPTT(LearningRule):
    """Backpropagation through time: autograd through the whole rollout (surrogate gradients for spikes)."""

    def loss_and_gradients(self, model, u, target, mask, loss="mse"):
        params = dict((n, p) for n, p in model.named_parameters() if p.requires_grad)
        value = task_loss(model(u).y, target, mask, loss)
        grads = torch.autograd.grad(value, list(params.values()), allow_unused=True)
        return value.detach(), {
            n: (g if g is not None else torch.zeros_like(p)) for (n, p), g in zip(params.items(), grads)
        }


def make_rule(rule: str | LearningRule, **kwargs: Any) -> LearningRule:
    """A rule object from its name (or pass an object through)."""
    if isinstance(rule, LearningRule):
        return rule
    if rule not in RULES:
        raise ValueError(f"unknown learning rule {rule!r}; available: {sorted(RULES)}")
    return RULES[rule](**kwargs)
