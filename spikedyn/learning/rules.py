"""Learning rules as objects, all behind one protocol that ``spikedyn.train`` drives.

```python
class Rule(Protocol):
    name: str
    def init_state(self, model, task, *, seed: int) -> dict: ...          # tensors / python scalars only
    def update(self, model, batch, state, *, step: int) -> dict: ...       # one batch; returns {"loss": ...}
```

``train`` calls ``init_state`` once and ``update`` once per training batch (a ``spikedyn.tasks`` TaskBatch);
the rule changes the model's parameters in place and returns a record (``loss`` at least) that goes to
``metrics.jsonl``. The state is checkpointed with ``torch.save`` and read back with ``weights_only=True``,
so it holds tensors, python scalars, strings and lists/dicts of them. Optional attributes:

- ``result_model(model, state) -> nn.Module``: the network the run produced (default: ``model``);
  ``train`` evaluates, early-stops on and saves that one (the genetic algorithm returns its best member).
- ``trains_population = True``: the rule treats a ``Population`` as one search (GA), so ``train`` does not
  evaluate or early-stop its members one by one.
- ``trains_members = True``: the rule trains every member of a ``Population`` as its own network (one
  batched run equals the members trained one by one); ``spikedyn study`` batches only rules that say so.

For a ``Population``, ``train`` keeps ``state["active"]`` (bool ``[E]``): members that reached the target
accuracy (or diverged, with ``on_member_divergence="freeze"``: ``state["diverged"]``) are False and ``train``
restores their weights after every update, so they stop changing. A gradient rule checks only the active
members for NaN/Inf; ``TrainingDiverged.members`` names the ones that diverged.

Gradient rules (``bptt``, ``eprop``, ``rflo``) subclass ``LearningRule``: they implement
``loss_and_gradients(model, u, target, mask, loss) -> (loss, {param_name: grad})`` (BPTT's is autograd's)
and inherit an ``update`` that clips the gradient (global norm, per member for a Population) and applies
Adam, whose moments live in ``state["adam"]`` (one Adam per member: a member's step count, learning rate
and moments are its own). Rules are found by name with ``make_rule``; ``ga``, ``hebbian`` and ``full_force``
are imported on first use from their modules.
"""
from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from .losses import task_loss

RULES: dict[str, type] = {}
# rules that live in their own module, imported when first asked for by name
LAZY_RULES: dict[str, tuple[str, str]] = {
    "ga": ("spikedyn.learning.ga", "GA"),
    "hebbian": ("spikedyn.learning.hebbian", "Hebbian"),
    "full_force": ("spikedyn.learning.full_force", "FullForce"),
}


class TrainingDiverged(RuntimeError):
    """Raised when the loss or a gradient becomes NaN/Inf. ``members``: for a Population, the members that
    diverged (indices), when the rule can tell; None otherwise."""

    def __init__(self, message: str, members: list[int] | None = None) -> None:
        super().__init__(message)
        self.members = members


@runtime_checkable
class Rule(Protocol):
    """What ``spikedyn.train`` needs from a learning rule (see the module doc)."""

    name: str

    def init_state(self, model: torch.nn.Module, task: Any, *, seed: int) -> dict: ...

    def update(self, model: torch.nn.Module, batch: Any, state: dict, *, step: int) -> dict: ...


def register_rule(name: str):
    def deco(cls):
        RULES[name] = cls
        cls.name = name
        return cls

    return deco


def available_rules() -> list[str]:
    """Rule names ``make_rule`` accepts (lazy ones included when their module is installed)."""
    lazy = [n for n, (mod, _) in LAZY_RULES.items() if importlib.util.find_spec(mod) is not None]
    return sorted({*RULES, *lazy})


def make_rule(rule: Any, **kwargs: Any) -> Rule:
    """A rule object from its name (``make_rule("ga", population=50)``), or pass an object through."""
    if not isinstance(rule, str):
        if not isinstance(rule, Rule):
            raise TypeError(f"a learning rule needs init_state() and update(); got {type(rule).__name__}")
        if kwargs:
            raise ValueError("rule options apply to a rule given by name; configure the rule object instead")
        return rule
    if rule not in RULES and rule in LAZY_RULES:
        module, attr = LAZY_RULES[rule]
        try:
            RULES[rule] = getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
    if rule not in RULES:
        raise ValueError(f"unknown learning rule {rule!r}; available: {available_rules()}")
    try:
        return RULES[rule](**kwargs)
    except TypeError as e:
        raise ValueError(f"bad option for rule {rule!r}: {e}") from None


def is_population(model: Any) -> bool:
    """Whether ``model`` is a ``spikedyn.Population`` (the one definition every rule imports)."""
    from spikedyn.models.population import Population

    return isinstance(model, Population)


def body_of(model: Any) -> Any:
    """The member body of a Population (its hyper-parameters: ``f``, ``alpha``, ``dt``...), or the model itself."""
    return model.body if is_population(model) else model


def batch_tensors(model: torch.nn.Module, batch: Any) -> tuple[Tensor, Tensor, Tensor]:
    """(inputs, targets, mask) of a TaskBatch as tensors on the model's device and dtype."""
    return tuple(torch.as_tensor(np.asarray(a), device=model.W_out.device, dtype=model.W_out.dtype)
                 for a in (batch.inputs, batch.targets, batch.mask))  # fmt: skip


def member_losses(y: Tensor, target: Tensor, mask: Tensor, kind: str) -> Tensor:
    """The task loss of every member of a population output ``y [E, T, B, O]``: ``[E]``."""
    from torch.func import vmap

    dims = tuple(0 if t.dim() == 4 else None for t in (target, mask))
    return vmap(lambda y_e, t_e, m_e: task_loss(y_e, t_e, m_e, kind), in_dims=(0, *dims))(y, target, mask)


# -- Adam, one per member ---------------------------------------------------------------------------
def adam_init(params: dict[str, Tensor], members: int | None) -> dict[str, Any]:
    """Zero moments; ``t`` counts the steps taken (per member: ``[E]``)."""
    t = torch.zeros(() if members is None else (members,), dtype=torch.float64)
    return {"t": t, "m": {n: torch.zeros_like(p) for n, p in params.items()},
            "v": {n: torch.zeros_like(p) for n, p in params.items()}}  # fmt: skip


def _per_member(x: Tensor, like: Tensor) -> Tensor:
    """Broadcast a [E] (or scalar) tensor over a parameter ``[E, ...]``."""
    return x.reshape(x.shape + (1,) * (like.dim() - x.dim())).to(like)


@torch.no_grad()
def adam_step(params: dict[str, Tensor], grads: dict[str, Tensor], adam: dict[str, Any], lr: Tensor | float,
              betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
              active: Tensor | None = None) -> None:
    """``torch.optim.Adam``'s update, written out (the same operations for one model), with a step count
    and a learning rate per member for a population (``adam["t"]`` and ``lr`` of shape ``[E]``); members
    whose ``active`` is False are left untouched."""
    b1, b2 = betas
    per_member = adam["t"].dim() == 1
    adam["t"] = adam["t"] + (1.0 if active is None else active.to(torch.float64))
    t = adam["t"]
    if not per_member:  # one model: python floats, exactly torch.optim.Adam's arithmetic
        bc1, bc2_sqrt = 1.0 - b1 ** float(t), (1.0 - b2 ** float(t)) ** 0.5
        for name, p in params.items():
            if name in grads:
                g = grads[name].to(p.dtype)
                g = g.add(p, alpha=weight_decay) if weight_decay else g
                m, v = adam["m"][name], adam["v"][name]
                m.lerp_(g, 1.0 - b1)
                v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
                p.addcdiv_(m, (v.sqrt() / bc2_sqrt).add_(eps), value=-float(lr) / bc1)
        return
    lr = torch.as_tensor(lr, dtype=torch.float64).expand_as(t)
    step_size = torch.where(t > 0, lr / (1.0 - b1**t).clamp(min=1e-300), torch.zeros_like(t))
    bc2_sqrt = torch.where(t > 0, (1.0 - b2**t).sqrt(), torch.ones_like(t))
    for name, p in params.items():
        if name not in grads:
            continue
        g = grads[name].to(p.dtype)
        g = g.add(p, alpha=weight_decay) if weight_decay else g
        m, v = adam["m"][name], adam["v"][name]
        m_new = m.lerp(g, 1.0 - b1)
        v_new = v.mul(b2).addcmul_(g, g, value=1.0 - b2)
        denom = (v_new.sqrt() / _per_member(bc2_sqrt, p)).add_(eps)
        p_new = p - _per_member(step_size, p) * (m_new / denom)
        if active is None:
            m.copy_(m_new), v.copy_(v_new), p.copy_(p_new)
        else:
            keep = _per_member(active, p).bool()
            m.copy_(torch.where(keep, m_new, m)), v.copy_(torch.where(keep, v_new, v))
            p.copy_(torch.where(keep, p_new, p))


def grad_norms(grads: dict[str, Tensor], members: int | None) -> Tensor:
    """Global gradient 2-norm (float64): a scalar, or ``[E]`` (one per member) for a population."""
    if members is None:
        return torch.sqrt(sum((g.double() ** 2).sum() for g in grads.values()))
    return torch.sqrt(sum((g.double() ** 2).reshape(members, -1).sum(1) for g in grads.values()))


def nonfinite_members(w: Tensor) -> list[int]:
    """The Population members (indices along the first axis of ``w [E, ...]``) whose entries hold a NaN/Inf."""
    return torch.nonzero(~torch.isfinite(w.reshape(w.shape[0], -1)).all(1)).flatten().tolist()


class LearningRule:
    """Base of the gradient rules: ``loss_and_gradients`` estimates dLoss/dparam, ``update`` clips the
    estimate and applies Adam. ``lr``, ``clip``, ``weight_decay``, ``betas`` are the optimiser's settings
    (``train`` sets them from its arguments); ``lr`` may be one value per Population member."""

    name = "base"
    lr: float | list[float] = 1e-3
    clip: float | None = 1.0
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def __init__(self, lr: float | Sequence[float] = 1e-3, clip: float | None = 1.0, weight_decay: float = 0.0,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.set_optimizer(lr=lr, clip=clip, weight_decay=weight_decay, betas=betas, eps=eps)

    def set_optimizer(self, lr: float | Sequence[float] = 1e-3, clip: float | None = 1.0,
                      weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999),
                      eps: float = 1e-8) -> None:
        lrs = [float(v) for v in (lr if isinstance(lr, Sequence) else [lr])]
        if any(not v > 0 for v in lrs) or (clip is not None and not clip > 0) or weight_decay < 0:
            raise ValueError(f"need lr > 0, clip > 0 (or None) and weight_decay >= 0; got lr={lr}, clip={clip}, "
                             f"weight_decay={weight_decay}")  # fmt: skip
        self.lr = lrs if isinstance(lr, Sequence) else lrs[0]
        self.clip, self.weight_decay, self.betas, self.eps = clip, float(weight_decay), tuple(betas), float(eps)

    def optimizer_config(self) -> dict[str, Any]:
        return {"lr": self.lr, "clip": self.clip, "weight_decay": self.weight_decay, "betas": list(self.betas),
                "eps": self.eps}  # fmt: skip

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

    # -- the Rule protocol --------------------------------------------------------------------------
    def _members(self, model: torch.nn.Module) -> int | None:
        return model.size if is_population(model) else None

    def _lr(self, model: torch.nn.Module) -> Tensor | float:
        members = self._members(model)
        lr = self.lr
        if members is not None and getattr(model, "lr", None) is not None:
            lr = model.lr  # the members' own learning rates
        if isinstance(lr, list):
            if members is None or len(lr) != members:
                raise ValueError(f"{len(lr)} learning rates given for "
                                 f"{'one model' if members is None else f'{members} members'}")  # fmt: skip
            return torch.tensor(lr, dtype=torch.float64)
        return float(lr)

    def init_state(self, model: torch.nn.Module, task: Any, *, seed: int) -> dict:
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        self._lr(model)  # checks the learning rates fit the model
        return {"adam": adam_init(params, self._members(model)), "loss_kind": getattr(task, "loss", "mse")}

    def update(self, model: torch.nn.Module, batch: Any, state: dict, *, step: int) -> dict:
        """One Adam step on the rule's gradient estimate for ``batch`` (clipped to ``clip``)."""
        u, target, mask = batch_tensors(model, batch)
        loss, grads = self.loss_and_gradients(model, u, target, mask, state["loss_kind"])
        members = self._members(model)
        norms = grad_norms(grads, members)
        loss64 = loss.detach().double()
        finite = torch.isfinite(loss64) & torch.isfinite(norms)
        active = state.get("active")  # a frozen member (reached its target, or diverged) is not watched
        watched = finite if active is None else finite | ~active.to(finite.device)
        if not bool(watched.all()):
            failing = ~watched
            what = "NaN/Inf" if bool((failing & ~torch.isfinite(loss64)).any()) else "finite but a gradient NaN/Inf"
            bad = None if members is None else torch.nonzero(failing).flatten().tolist()
            where = "" if bad is None else f" (members {bad})"
            raise TrainingDiverged(f"loss became {what} at step {step}{where}", members=bad)
        if self.clip is not None:
            coef = (self.clip / (norms + 1e-6)).clamp(max=1.0)
            grads = {n: g * _per_member(coef, g) if members is not None else g * coef.to(g) for n, g in grads.items()}
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        adam_step(params, grads, state["adam"], self._lr(model), self.betas, self.eps, self.weight_decay,
                  state.get("active"))  # fmt: skip
        if members is None:
            return {"loss": float(loss64), "grad_norm": float(norms)}
        # a diverged member, frozen (train(..., on_member_divergence="freeze")), is left out from then on, even
        # where its loss is finite again: means over the others, None for it
        diverged = state.get("diverged")
        counted = finite if diverged is None else finite & ~diverged.to(finite.device)
        if bool(counted.all()):
            return {"loss": float(loss64.mean()), "grad_norm": float(norms.mean()),
                    "member_loss": loss64.tolist(), "member_grad_norm": norms.tolist()}  # fmt: skip
        return {"loss": float(loss64[counted].mean()), "grad_norm": float(norms[counted].mean()),
                "member_loss": [v if ok else None for v, ok in zip(loss64.tolist(), counted.tolist())],
                "member_grad_norm": [v if ok else None for v, ok in zip(norms.tolist(), counted.tolist())]}


@register_rule("bptt")
class BPTT(LearningRule):
    """Backpropagation through time: autograd through the whole rollout (surrogate gradients for spikes).
    For a ``Population``, the loss is the sum of the members' losses, so each member gets its own gradient
    from one batched backward pass; the returned loss is per member ``[E]``. ``regularizer``: a firing-rate
    term added to the loss (``spikedyn.learning.regularizers``; None = off). A lone ``RateRNN`` runs
    through the population kernel with one member (``population.lone_rate_rollout``: the same map and
    draws, a hand-written backward, about 2.3x cheaper per step on a CPU); ``fused=False`` uses autograd
    through the model's own ``forward`` instead (the reference the kernel is tested against)."""

    trains_members = True  # a Population's members train as independent networks (module doc)

    def __init__(self, *args: Any, regularizer: Any = None, fused: bool = True, **kwargs: Any) -> None:
        from .regularizers import as_regularizer

        super().__init__(*args, **kwargs)
        self.regularizer = as_regularizer(regularizer)
        self.fused = bool(fused)

    def config(self) -> dict[str, Any]:
        reg = getattr(self, "regularizer", None)
        return {"name": self.name, **({"regularizer": reg.config()} if reg is not None else {}),
                **({} if getattr(self, "fused", True) else {"fused": False})}  # fmt: skip

    def loss_and_gradients(self, model: torch.nn.Module, u: Tensor, target: Tensor, mask: Tensor,
                           loss: str = "mse") -> tuple[Tensor, dict[str, Tensor]]:
        """Autograd's loss and gradients of ``model`` (a body or a Population: per-member losses) on one batch;
        a lone leaky ``RateRNN`` runs through ``population.lone_rate_rollout`` where it applies."""
        params = dict((n, p) for n, p in model.named_parameters() if p.requires_grad)
        rates = getattr(self, "regularizer", None) is not None  # a Population without a regulariser: y only
        if is_population(model):
            roll = model(u, rates=rates)
        else:  # a lone rate net through the population kernel (E = 1) where it applies: same map, same draws
            from spikedyn.models.population import lone_rate_rollout

            roll = lone_rate_rollout(model, u, rates=rates) if getattr(self, "fused", True) else None
            roll = model(u) if roll is None else roll
        y = roll.y
        value = member_losses(y, target, mask, loss) if is_population(model) else task_loss(y, target, mask, loss)
        if getattr(self, "regularizer", None) is not None:
            value = value + self.regularizer.loss(model, roll.r)
        grads = torch.autograd.grad(value.sum(), list(params.values()), allow_unused=True)
        return value.detach(), {
            n: (g if g is not None else torch.zeros_like(p)) for (n, p), g in zip(params.items(), grads)
        }


def seed_of(seed: int, step: int, salt: int = 0) -> int:
    """A deterministic 63-bit seed from (seed, step, salt): the one formula behind every derived torch seed
    (``train``'s per-step and evaluation noise seeds are ``seed_of(seed, step)``; rules that draw their own
    random numbers add a ``salt``)."""
    return (int(seed) * 1_000_033 + int(step) * 7919 + int(salt) * 104_729 + 17) % (2**63 - 1)


__all__ = [
    "BPTT", "LAZY_RULES", "LearningRule", "RULES", "Rule", "TrainingDiverged", "adam_init", "adam_step",
    "available_rules", "batch_tensors", "body_of", "grad_norms", "is_population", "make_rule", "member_losses",
    "nonfinite_members",
    "register_rule", "seed_of",
]  # fmt: skip
