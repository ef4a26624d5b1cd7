"""Firing-rate regularisation (Bellec et al. 2020, Methods), one definition for every learning rule.

    L_reg = (c_reg / 2) * sum_j (f_j - f_target)^2

``f_j`` is unit j's mean activity over the batch and the whole sequence:

* spiking nets (``SpikingRNN``): spikes per ms, ``f_j = sum_{b,s} z_j(b, s) / (B * T * dt)`` (``T`` input steps
  of ``dt`` ms; the substeps' spikes add up), and ``f_target`` is given in Hz and divided by 1000. These
  are the units of the e-prop code (rates in kHz), so its coefficients carry over: ``c_reg = 1`` toward
  10 Hz in its evidence-accumulation tutorial (the NEST port writes the same value as 300 = 2 x 150 ms x 1).
* rate nets (``RateRNN``): the mean of ``r_j = f(x_j)`` over batch and steps, ``f_target`` in the
  activation's units (the rate-unit analogue).

Its gradient is ``c_reg * sum_j (f_j - f_target) * d f_j / d theta``; each rule takes ``d f_j / d theta``
the way it takes the task gradient:

* BPTT: autograd of ``L_reg`` (added to the task loss) through the whole rollout.
* e-prop: ``d z_j(s) / d W_ji`` is replaced by the eligibility trace ``e_ji(s)`` (the same truncation as
  for the task loss), so ``grad_ji = c_reg (f_j - f_target) / (B T dt) * sum_{b,s} e_ji(b, s)``: Bellec et
  al.'s form, a local learning signal ``c_reg (f_j - f_target) / (B T dt)`` added to neuron j's at every
  substep. ``f_j`` is known at the end of the sequence, so the rule accumulates ``sum e`` online and
  multiplies once. (The e-prop tutorials multiply this signal with the readout-filtered trace; we use the
  unfiltered ``e``, which makes it the exact truncated gradient of ``L_reg``.)
* RFLO: ``d r_j(t) / d W_ji`` is replaced by ``f'(x_j(t)) P_i(t)`` (RFLO's trace).
* GA: ``L_reg`` of each member is added to the loss its selection ranks by.
* Hebbian (Miconi 2017): ``L_reg`` of each trial's own rates is added to that trial's loss ``R``.
* full-FORCE: not applicable (docs/eprop.md): its recursive least squares fits the recurrent input to
  the teacher network's, and has no loss term to add a rate target to.

A rule takes ``regularizer=`` as a ``FiringRateRegularizer``, a dict of its fields (``{"strength": 1.0,
"target": 10.0}``, what a rule's config and checkpoints hold) or None (off, the default).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from .rules import body_of


@dataclass(frozen=True)
class FiringRateRegularizer:
    """``L_reg = (strength / 2) sum_j (f_j - target)^2`` (module doc).

    Args:
        strength: ``c_reg`` (Bellec et al.'s evidence-accumulation tutorial: 1, rates in kHz).
        target: ``f_target``: Hz for spiking nets (Bellec et al.: 10 Hz), the activation's units for rate nets.
    """

    strength: float = 1.0
    target: float = 10.0

    def __post_init__(self) -> None:
        if not self.strength >= 0 or not self.target >= 0:
            raise ValueError(f"the firing-rate regulariser needs strength >= 0 and target >= 0, got "
                             f"strength={self.strength}, target={self.target}")  # fmt: skip

    def config(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}

    def target_in_model_units(self, model: Any) -> float:
        """``f_target`` in the units of ``mean_rates``: spikes per ms for spiking nets, as given for rate nets."""
        return self.target / 1000.0 if is_spiking(model) else self.target

    def mean_rates(self, model: Any, r: Tensor, per_trial: bool = False) -> Tensor:
        """``f_j`` from a rollout's unit outputs ``r [..., T, B, N]`` (spike counts per input step for spiking
        nets): ``[..., N]``, or ``[..., B, N]`` per trial."""
        dims = (-3,) if per_trial else (-3, -2)
        if is_spiking(model):
            return r.mean(dim=dims) / float(body_of(model).dt)
        return r.mean(dim=dims)

    def penalty(self, model: Any, rates: Tensor) -> Tensor:
        """``L_reg`` of mean rates ``[..., N]``: ``[...]``."""
        return 0.5 * self.strength * ((rates - self.target_in_model_units(model)) ** 2).sum(-1)

    def rate_error(self, model: Any, rates: Tensor) -> Tensor:
        """``d L_reg / d f_j = c_reg (f_j - f_target)``, ``[..., N]``."""
        return self.strength * (rates - self.target_in_model_units(model))

    def loss(self, model: Any, r: Tensor) -> Tensor:
        """``L_reg`` of a rollout's ``r [..., T, B, N]`` (differentiable: BPTT adds it to the task loss)."""
        return self.penalty(model, self.mean_rates(model, r))


def as_regularizer(value: Any) -> FiringRateRegularizer | None:
    """None, a ``FiringRateRegularizer`` or a dict of its fields -> the regulariser (or None)."""
    if value is None or isinstance(value, FiringRateRegularizer):
        return value
    if isinstance(value, dict):
        try:
            return FiringRateRegularizer(**value)
        except TypeError:
            raise ValueError(f"regularizer takes the keys strength and target, got {sorted(value)}") from None
    raise ValueError(f"regularizer must be None, a FiringRateRegularizer or a dict, got {type(value).__name__}")


def is_spiking(model: Any) -> bool:
    return getattr(body_of(model), "kind", None) == "spiking"


# -- e-prop / RFLO: the online accumulators ----------------------------------------------------------
class OnlineRateTerm:
    """What the online rules accumulate for the regulariser during one rollout: the activity of every unit
    and ``sum_{b,s}`` of the per-synapse derivative estimate (e-prop: ``e_ji``; RFLO: ``f'(x_j) P_i``),
    ``[N, P]`` in the rule's ``[W_in | W_rec | b]`` column layout. ``finish`` adds ``L_reg`` to the loss and
    its gradient estimate to ``G``."""

    def __init__(self, reg: FiringRateRegularizer, model: Any, like: Tensor, N: int, P: int) -> None:
        self.reg, self.model = reg, model
        self.activity = like.new_zeros(N)
        self.deriv = like.new_zeros(N, P)

    def add_spiking(self, z: Tensor, psi: Tensor, eps_v: Tensor, eps_a: Tensor | None, beta: Tensor) -> None:
        """One substep of e-prop: spikes ``z [B, N]``, and ``sum_b e_ji = sum_b psi_j (eps_v - beta_j eps_a)``
        with ``eps_v`` ``[B, P]`` (presynaptic-only) or ``[N, B, P]``, ``eps_a`` ``[N, B, P]`` or None."""
        self.activity += z.sum(0)
        if eps_v.dim() == 2:
            self.deriv += psi.T @ eps_v
        else:
            self.deriv += torch.bmm(psi.T[:, None, :], eps_v)[:, 0, :]
        if eps_a is not None:
            self.deriv -= torch.bmm((psi * beta).T[:, None, :], eps_a)[:, 0, :]

    def add_rate(self, r: Tensor, dr_dx: Tensor, trace: Tensor) -> None:
        """One step of RFLO: rates ``r [B, N]`` and ``sum_b f'(x_j) P_i`` (``dr_dx [B, N]``, ``trace [B, P]``)."""
        self.activity += r.sum(0)
        self.deriv += dr_dx.T @ trace

    def finish(self, T: int, B: int, value: Tensor, G: Tensor) -> Tensor:
        """Mean rates over ``T`` input steps and ``B`` trials; adds the gradient to ``G`` in place and
        returns ``value + L_reg``."""
        scale = T * B * (float(self.model.dt) if is_spiking(self.model) else 1.0)
        rates = self.activity / scale
        G += self.reg.rate_error(self.model, rates)[:, None] * self.deriv / scale
        return value + self.reg.penalty(self.model, rates)


def online_term(reg: FiringRateRegularizer | None, model: Any, like: Tensor) -> OnlineRateTerm | None:
    """The accumulator of an online rollout (None when the rule has no regulariser)."""
    if reg is None:
        return None
    return OnlineRateTerm(reg, model, like, model.n_hidden, model.n_in + model.n_hidden + 1)


# -- GA and Hebbian ---------------------------------------------------------------------------------------
@torch.no_grad()
def population_outputs_and_penalty(reg: FiringRateRegularizer | None, pop: Any, u: Tensor,
                                   chunk: int = 100) -> tuple[Tensor, Tensor | float]:  # fmt: skip
    """Every member's outputs ``y [E, T, B, O]`` on inputs ``u [T, B, I]`` and, from the same rollout, its
    ``L_reg`` ``[E]`` (0.0 without a regulariser), over chunks of ``chunk`` trials (memory bound only)."""
    if reg is None:
        return torch.cat([pop.outputs(u[:, i : i + chunk]) for i in range(0, u.shape[1], chunk)], dim=2), 0.0
    ys, total = [], None
    for i in range(0, u.shape[1], chunk):
        roll = pop(u[:, i : i + chunk])
        ys.append(roll.y)
        part = roll.r.sum(dim=(-3, -2))
        total = part if total is None else total + part
    rates = total / (u.shape[0] * u.shape[1]) / (float(body_of(pop).dt) if is_spiking(pop) else 1.0)
    return torch.cat(ys, dim=2), reg.penalty(pop, rates).double()


def population_penalty(reg: FiringRateRegularizer | None, pop: Any, u: Tensor, chunk: int = 100) -> Tensor | float:
    """``L_reg`` of every member of a Population on inputs ``u [T, B, I]``: ``[E]`` (0.0 without a regulariser)."""
    return population_outputs_and_penalty(reg, pop, u, chunk)[1]


def trial_penalty(reg: FiringRateRegularizer | None, model: Any, r: Tensor) -> Tensor | float:
    """``L_reg`` of each trial's own rates, ``r [T, B, N]`` -> ``[B]`` (0.0 without a regulariser)."""
    if reg is None:
        return 0.0
    return reg.penalty(model, reg.mean_rates(model, r, per_trial=True))


__all__ = ["FiringRateRegularizer", "OnlineRateTerm", "as_regularizer", "online_term",
           "population_outputs_and_penalty", "population_penalty", "trial_penalty"]  # fmt: skip
