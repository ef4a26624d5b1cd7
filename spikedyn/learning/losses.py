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


def output_error(y: Tensor, target: Tensor, mask: Tensor, kind: str) -> Tensor:
    """dLoss/dy [T, B, O] in closed form: the learning signal online rules broadcast to neurons."""
    if kind == "mse":
        return 2.0 * (y - target) * mask / mask.sum().clamp(min=1.0)
    if kind == "ce":
        weight = mask[..., :1]
        return (torch.softmax(y, dim=-1) - target) * weight / weight.sum().clamp(min=1.0)
    raise ValueError(f"unknown loss {kind!r}; choose one of {list(LOSSES)}")
