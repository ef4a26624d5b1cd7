"""Training losses on masked outputs (the definitions every learning rule estimates the gradient of)."""
from __future__ import annotations

import torch
from torch import Tensor

LOSSES = ("mse", "ce")


def masked_mse(y: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """``((y - target)**2 * mask).sum() / mask.sum()`` over [T, B, O]."""
    return ((y - target) ** 2 * mask).sum() / mask.sum().clamp(min=1.0)


def masked_cross_entropy(y: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean over masked steps of ``-sum_k target_k log softmax(y)_k``; ``mask[..., 0]`` weights the steps."""
    weight = mask[..., 0]
    nll = -(target * torch.log_softmax(y, dim=-1)).sum(-1)
    return (nll * weight).sum() / weight.sum().clamp(min=1.0)


def task_loss(y: Tensor, target: Tensor, mask: Tensor, kind: str) -> Tensor:
    """The loss named by a task's ``loss`` attribute ("mse" or "ce")."""
    if kind == "mse":
        return masked_mse(y, target, mask)
    if kind == "ce":
        return masked_cross_entropy(y, target, mask)
    raise ValueError(f"unknown loss {kind!r}; choose one of {list(LOSSES)}")


def loss_normaliser(mask: Tensor, kind: str) -> Tensor:
    """The denominator of the masked loss over the whole sequence (known before a rollout starts)."""
    if kind == "mse":
        return mask.sum().clamp(min=1.0)
    if kind == "ce":
        return mask[..., 0].sum().clamp(min=1.0)
    raise ValueError(f"unknown loss {kind!r}; choose one of {list(LOSSES)}")


def loss_and_error(y: Tensor, target: Tensor, mask: Tensor, kind: str, norm: Tensor) -> tuple[Tensor, Tensor]:
    """The masked loss of ``y [..., O]`` and its gradient ``dLoss/dy`` in closed form, with the normaliser
    ``norm`` (``loss_normaliser`` of the whole sequence): the one loss-gradient helper. Per step (``[B, O]``)
    the shares sum to ``task_loss`` and ``output_error``. The cross-entropy error is ``softmax(y) sum_k y*_k
    - y*``, exact also for targets that do not sum to 1."""
    if kind == "mse":
        diff = (y - target) * mask
        return (diff * (y - target)).sum() / norm, 2.0 * diff / norm
    if kind == "ce":
        weight = mask[..., :1]
        logp = torch.log_softmax(y, dim=-1)
        value = -((target * logp).sum(-1, keepdim=True) * weight).sum() / norm
        error = (logp.exp() * target.sum(-1, keepdim=True) - target) * weight / norm
        return value, error
    raise ValueError(f"unknown loss {kind!r}; choose one of {list(LOSSES)}")


def output_error(y: Tensor, target: Tensor, mask: Tensor, kind: str) -> Tensor:
    """dLoss/dy [T, B, O] in closed form: the learning signal online rules broadcast to neurons."""
    return loss_and_error(y, target, mask, kind, loss_normaliser(mask, kind))[1]
