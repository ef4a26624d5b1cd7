"""Reward-modulated Hebbian learning with exploratory perturbations (Miconi 2017, eLife), as used by
McMahan et al. 2024 (Eq. 3-4) to train tanh CTRNNs on RDM and CDI.

During a trial each unit receives rare random kicks (the exploration). Every recurrent synapse
``w_ij`` (post ``i``, pre ``j``) accumulates an eligibility trace

    e_ij  +=  [ r_j(t-1) * (x_i(t) - xbar_i(t)) ]**3          xbar_i: a running average of x_i

where the cube keeps mostly the large, perturbation-driven deviations of ``x_i``. At the end of the
trial the weights move along the trace, signed by how much better or worse the trial went than
usual for its trial type:

    dw_ij = -eta * e_ij * (R - Rbar_type)  [* Rbar_type]        clipped to [-max_dw, +max_dw]
    Rbar_type <- baseline_decay * Rbar_type + (1 - baseline_decay) * R

``R`` is the trial's loss (low is good, hence the minus sign). The factor ``Rbar_type`` and the clip
are in Miconi's published code (``selectiveint/net.cpp``); ``scale_by_baseline=False`` drops the
factor to get McMahan et al.'s Eq. 4 as printed. The output is read from single units (unit ``k`` is
output ``k``, ``readout="unit"``, Miconi's choice) or through the model's fixed linear readout
(``readout="linear"``, the variant McMahan et al. compare in their appendix). The bias ``b`` learns
by the same rule with a constant pre-synaptic activity of 1 (Miconi clamps three units to +-1 for
this). ``W_in`` and the readout stay fixed.

Trials are batched: the ``B`` trials of one batch run in parallel from the same weights, each keeps
its own trace, and the ``B`` clipped per-trial updates are summed, which to first order in ``eta``
equals ``B`` of Miconi's one-trial-at-a-time updates. Every trial of a batch is compared with the
baseline as it stood before the batch.

A ``Population`` of tanh ``RateRNN`` networks trains in the same batched rollout, with a leading member axis
on every tensor (weights ``[E, N, N]``, states ``[E, B, N]``, traces ``[E, B, N, N]``) and its own
baselines per member; the kicks, ``x0`` and any recurrent noise are drawn once and shared (common random
numbers), so member i changes exactly as the same network trained alone on the same batches with the
same seed. ``pop.lr`` (one value per member), when set, is each member's eta.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .regularizers import as_regularizer, trial_penalty
from .rules import TrainingDiverged, batch_tensors, body_of, is_population, nonfinite_members

READOUTS = ("unit", "linear")
REWARDS = ("mse", "abs")
BASELINES = ("running", "batch", "paired", "antithetic")


def rule_generator(seed: int, step: int, device: torch.device) -> torch.Generator:
    """The rule's own random stream for one update: a function of (seed, step) only, so that a resumed
    run replays the same perturbations."""
    g = torch.Generator(device=device)
    g.manual_seed(int(np.random.SeedSequence([int(seed), int(step), 0x4EBB]).generate_state(1)[0]))
    return g


def trial_types(batch: Any, keys: tuple[str, ...] = ("context", "choice")) -> list[str]:
    """One label per trial naming its type, from the ``meta`` entries in ``keys`` that the batch has
    (RDM: the correct choice, 2 types; CDI: context x choice, 4 types, as in Miconi's code); one type
    for every trial when none is present."""
    present = [k for k in keys if k in batch.meta]
    B = batch.inputs.shape[1]
    if not present:
        return ["all"] * B
    cols = [np.asarray(batch.meta[k]).reshape(B, -1).tolist() for k in present]
    return [",".join(f"{k}={v[0] if len(v) == 1 else v}" for k, v in zip(present, (c[b] for c in cols)))
            for b in range(B)]  # fmt: skip


def eligibility_increment(r_prev: Tensor, dx: Tensor) -> Tensor:
    """``[r_j(t-1) * (x_i(t) - xbar_i)]**3`` for every synapse: ``r_prev [..., B, J]``, ``dx [..., B, I]``
    -> ``[..., B, I, J]`` (post, pre); a leading member axis for a Population."""
    return (dx[..., :, None] * r_prev[..., None, :]) ** 3


def rate_noise_scale(model: torch.nn.Module) -> float | Tensor:
    """Std of the recurrent noise added per step: a float, or ``[E, 1, 1]`` for a Population."""
    if is_population(model):
        return ((2.0 * model.body.alpha) ** 0.5 * model.noise_std)[:, None, None]
    return model.noise_scale


def rate_step(model: torch.nn.Module, x: Tensor, u_t: Tensor) -> Tensor:
    """``RateRNN.step``'s Euler update (McMahan et al. 2024 Eq. 1) of ``x [..., B, N]`` for one model or
    every member of a Population (weights with a leading member axis), recurrent noise included: one
    standard-normal ``[B, N]`` draw from torch's generator per step, as ``RateRNN.step`` draws it, shared by
    the members."""
    from spikedyn.models.rate import leaky_update

    body = body_of(model)
    drive = u_t @ model.W_in.mT + model.b[..., None, :]
    x = leaky_update(x, body.f(x) @ model.W_rec.mT, drive, body.alpha)
    if (model.noise_std > 0).any() if is_population(model) else model.noise_std > 0:
        x = x + rate_noise_scale(model) * torch.randn(x.shape[-2:], device=x.device, dtype=x.dtype)
    return x


def rate_output(model: torch.nn.Module, x: Tensor) -> Tensor:
    """``W_out f(x) + b_out`` for one model or every member of a Population."""
    return body_of(model).f(x) @ model.W_out.mT + model.b_out[..., None, :]


@dataclass
class Hebbian:
    """Miconi's (2017) node-perturbation Hebbian rule (see the module doc for the equations).

    Args:
        lr: eta, the learning rate (0.01 in Miconi 2017 and McMahan et al. 2024).
        max_dw: per-trial clip of every weight change (Miconi's ``MAXDW`` = 2e-4); None = no clip.
        scale_by_baseline: multiply the update by the baseline loss Rbar (Miconi's code; False = Eq. 4
            of McMahan et al. as printed).
        perturb_rate: kicks per unit per ms (Miconi: 0.003, i.e. 3 per second); per step the
            probability is ``1 - (1 - rate)**dt``.
        perturb_amp: a kick adds U(-perturb_amp, +perturb_amp) to the pre-activation x (Miconi: 1).
        perturb_after_ms: no kicks in the first ms of a trial (Miconi: 3).
        xbar_decay: per-step decay of the running average xbar of x (Miconi: 0.05 at 1 ms steps, so
            ``x - xbar`` is close to the change of x since the last step).
        baseline_decay: per-trial decay of the loss baseline Rbar of each trial type (Miconi: 0.75).
        reward: the per-trial loss R: "mse" (the task's masked MSE, McMahan et al.) or "abs" (mean
            absolute error over the masked steps, Miconi).
        readout: "unit" (output k is the rate of unit k; W_out and b_out are set to that and frozen) or
            "linear" (the model's own W_out, frozen).
        train_bias: learn the bias b by the same rule (pre-synaptic activity 1) when it is a parameter.
        reduce: "sum" (the B per-trial updates add up, B sequential trials) or "mean".
        baseline: "running" (Rbar per trial type as above, Miconi), "batch" (each trial is compared with
            the mean loss of the other trials of its type in the same batch, a leave-one-out baseline
            that cannot lag behind the weights; the running baseline is still kept and used for the
            ``scale_by_baseline`` factor and for types with a single trial in the batch) or "paired"
            (every trial of the batch is run twice, from the same ``x0`` with the same inputs and two
            independent draws of the kicks, and each run is compared with its twin: the reward predictor is
            the same stimulus explored otherwise, Miconi's "one reward predictor for each possible
            stimulus combination" for tasks whose stimuli are continuous; twice the rollouts per batch) or
            "antithetic" (the same twins, but the twin's kicks are the trial's own with the opposite sign,
            so ``R - R_twin`` keeps the odd orders of the loss's response to the kicks, a central difference).
        reward_ms: None (R is the task's loss over its masked steps, McMahan et al.) or a window in ms:
            R is the error of the output against the trial's final target over the last ``reward_ms``
            of the trial (Miconi's code: the mean absolute error over the last 200 ms of a trial), a
            less noisy reward than the final step alone.
        lr_decay_steps: None (a constant eta) or S: eta / (1 + step / S) at training step ``step``.
    """

    lr: float = 0.01
    max_dw: float | None = 2e-4
    scale_by_baseline: bool = True
    perturb_rate: float = 0.003
    perturb_amp: float = 1.0
    perturb_after_ms: float = 3.0
    xbar_decay: float = 0.05
    baseline_decay: float = 0.75
    reward: str = "mse"
    readout: str = "unit"
    train_bias: bool = True
    reduce: str = "sum"
    baseline: str = "running"
    reward_ms: float | None = None
    lr_decay_steps: float | None = None
    regularizer: dict | None = None  # firing-rate term added to each trial's loss R (learning/regularizers.py)

    name = "hebbian"
    divergence_hint = "lower lr or set max_dw"  # what ``train`` adds to a TrainingDiverged of this rule
    trains_members = True  # a Population's members train as independent networks (rules.py doc)

    def __post_init__(self) -> None:
        for key in ("max_dw", "reward_ms", "lr_decay_steps"):  # optional numbers; "none" from the CLI is None
            value = getattr(self, key)
            if isinstance(value, str) and value.strip().lower() in ("none", "null", "off"):
                setattr(self, key, None)
            elif value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"hebbian {key} must be a number or None (CLI: {key}=none), got {value!r}")
        if self.max_dw is not None and not self.max_dw > 0:
            raise ValueError(f"hebbian max_dw must be > 0 or None, got {self.max_dw}")
        if self.readout not in READOUTS:
            raise ValueError(f"hebbian readout must be one of {list(READOUTS)}, got {self.readout!r}")
        if self.reward not in REWARDS:
            raise ValueError(f"hebbian reward must be one of {list(REWARDS)}, got {self.reward!r}")
        if self.baseline not in BASELINES:
            raise ValueError(f"hebbian baseline must be one of {list(BASELINES)}, got {self.baseline!r}")
        if self.reduce not in ("sum", "mean"):
            raise ValueError(f"hebbian reduce must be 'sum' or 'mean', got {self.reduce!r}")
        if not (self.lr > 0 and 0 <= self.perturb_rate <= 1 and self.perturb_amp >= 0):
            raise ValueError("hebbian needs lr > 0, 0 <= perturb_rate <= 1 and perturb_amp >= 0")
        if not (0 <= self.xbar_decay < 1 and 0 <= self.baseline_decay < 1):
            raise ValueError("hebbian xbar_decay and baseline_decay must be in [0, 1)")
        if self.reward_ms is not None and not self.reward_ms >= 0:
            raise ValueError(f"hebbian reward_ms must be >= 0 or None, got {self.reward_ms}")
        if self.lr_decay_steps is not None and not self.lr_decay_steps > 0:
            raise ValueError(f"hebbian lr_decay_steps must be > 0 or None, got {self.lr_decay_steps}")

    def config(self) -> dict[str, Any]:
        optional = ("regularizer", "reward_ms", "lr_decay_steps")  # recorded only when set: older run dirs resume
        return {"name": self.name, **{k: v for k, v in asdict(self).items() if v is not None or k not in optional}}

    # -- protocol ---------------------------------------------------------------------------------
    def init_state(self, model: torch.nn.Module, task: Any, *, seed: int) -> dict:
        """Check the model, set up the readout, and start with no baselines."""
        from spikedyn.models import RateRNN

        body = body_of(model)
        if not isinstance(body, RateRNN):
            what = f"a Population of {type(body).__name__}" if body is not model else type(model).__name__
            raise TypeError(f"hebbian trains a RateRNN (tanh units) or a Population of them, got {what}")
        if body.activation != "tanh":
            raise ValueError(
                f"hebbian needs tanh units (McMahan et al. 2024: 1 + tanh failed to train), got "
                f"activation={body.activation!r}; build the RateRNN with activation='tanh' (CLI: --model-param "
                "activation=tanh)"
            )
        if self.readout == "unit":
            if model.n_out > model.n_hidden:
                raise ValueError(f"readout='unit' needs n_out <= n_hidden, got {model.n_out} > {model.n_hidden}")
            with torch.no_grad():
                model.W_out.zero_()
                model.W_out[..., : model.n_out] = torch.eye(model.n_out, dtype=model.dtype, device=model.device)
                model.b_out.zero_()
        lr = getattr(model, "lr", None) if is_population(model) else None
        if lr is not None and len(lr) != model.size:
            raise ValueError(f"hebbian: {len(lr)} learning rates for {model.size} members")
        dt = float(getattr(task, "dt", getattr(body, "dt", 1.0)))
        return {"seed": int(seed), "dt": dt, "baseline": {}, "trials": 0}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, batch: Any, state: dict, *, step: int) -> dict:
        """One batch of trials with exploration, then the end-of-trial weight update (every member of a
        Population at once; baselines are per member)."""
        u, target, mask = batch_tensors(model, batch)
        g = rule_generator(state["seed"], step, model.device)
        paired = self.baseline in ("paired", "antithetic")
        kicks = None
        if paired:  # each trial twice: same inputs and x0, other kicks (trials b and b + B are twins)
            if self.baseline == "antithetic":  # the twin's kicks: the same ones, sign flipped
                T, B = u.shape[:2]
                kicks = self.draw_perturbations(T, B, model.n_hidden, state["dt"], model.device, model.dtype, g)
                kicks = torch.cat([kicks, -kicks], 1)
            u, target, mask = (torch.cat([a, a], 1) for a in (u, target, mask))
        roll = self.rollout(model, u, dt=state["dt"], generator=g, perturb=kicks, repeat_x0=2 if paired else 1)
        R = self.trial_loss(roll["y"], target, mask, state["dt"])  # [(E,) B] (2B when paired)
        pop = is_population(model)
        if self.regularizer is not None:  # each trial's own L_reg, per member for a Population
            R = R + trial_penalty(as_regularizer(self.regularizer), model, body_of(model).f(roll["x"]))  # [(E,) B]
        types = trial_types(batch) * (2 if paired else 1)
        groups = {t: [i for i, ti in enumerate(types) if ti == t] for t in dict.fromkeys(types)}
        baseline = state["baseline"]
        fresh = [t for t in groups if t not in baseline]
        for t in fresh:  # a type seen for the first time: its baseline starts at its mean loss
            mean_t = R[..., groups[t]].mean(-1)
            baseline[t] = mean_t.tolist() if pop else float(mean_t)
        Rbar = torch.stack([torch.as_tensor(baseline[t], dtype=R.dtype, device=R.device) for t in types], -1)
        if paired:
            ref = R.roll(R.shape[-1] // 2, -1)  # the twin's loss
        else:
            ref = Rbar if self.baseline == "running" else self.leave_one_out(R, types, Rbar)
        lr = self.lr
        if pop and model.lr is not None:  # the members' own learning rates
            lr = torch.tensor(model.lr, dtype=R.dtype, device=R.device)[:, None]
        if self.lr_decay_steps is not None:
            lr = lr / (1.0 + step / self.lr_decay_steps)
        coef = -lr * (R - ref) * (Rbar if self.scale_by_baseline else 1.0)  # [(E,) B]
        dW = self.weight_change(roll["e_rec"], coef)
        model.W_rec.add_(dW)
        record = {"loss": float(R.mean()), "advantage": float((R - ref).abs().mean()),
                  "dw_abs": float(dW.abs().mean())}  # fmt: skip
        if pop:
            record["member_loss"] = R.mean(-1).tolist()
        if self.train_bias and isinstance(model.b, torch.nn.Parameter):
            db = self.weight_change(roll["e_bias"][..., None], coef)[..., 0]
            model.b.add_(db)
        for t, idx in groups.items():
            if t in fresh:
                continue
            new = self.baseline_decay * torch.as_tensor(baseline[t], dtype=R.dtype) + (
                1.0 - self.baseline_decay) * R[..., idx].mean(-1).cpu()
            baseline[t] = new.tolist() if pop else float(new)
        state["trials"] += int(u.shape[1])
        if not torch.isfinite(model.W_rec).all():
            bad = nonfinite_members(model.W_rec) if pop else None
            raise TrainingDiverged(f"hebbian: W_rec became NaN/Inf at step {step}{f' (members {bad})' if pop else ''}",
                                   members=bad)  # fmt: skip
        return record

    # -- pieces -----------------------------------------------------------------------------------
    @staticmethod
    def leave_one_out(R: Tensor, types: list[str], fallback: Tensor) -> Tensor:
        """For each trial, the mean loss of the other trials of its type in the batch (``fallback``
        where it is the only one); ``R [..., B]``, a leading member axis allowed."""
        out = fallback.clone()
        for t in dict.fromkeys(types):
            idx = [i for i, ti in enumerate(types) if ti == t]
            if len(idx) > 1:
                total = R[..., idx].sum(-1, keepdim=True)
                out[..., idx] = (total - R[..., idx]) / (len(idx) - 1)
        return out

    def weight_change(self, e: Tensor, coef: Tensor) -> Tensor:
        """Sum (or mean) over trials of the clipped per-trial changes ``coef_b * e_b``; ``e [..., B, I, J]``,
        ``coef [..., B]``."""
        dw = coef[..., None, None] * e
        if self.max_dw is not None:
            dw = dw.clamp(-self.max_dw, self.max_dw)
        return dw.sum(-3) if self.reduce == "sum" else dw.mean(-3)

    def trial_loss(self, y: Tensor, target: Tensor, mask: Tensor, dt: float = 1.0) -> Tensor:
        """Per-trial loss ``R [..., B]`` of ``y [..., T, B, O]``: over the masked (step, output) entries, or
        with ``reward_ms`` against the final target over the last ``reward_ms`` of the trial (dt: ms/step)."""
        if self.reward_ms is not None:
            n = int(self.reward_ms / dt + 1e-9) + 1
            target = target[-1:].expand_as(target)
            mask = torch.zeros_like(mask)
            mask[-n:] = 1.0
        err = (y - target) ** 2 if self.reward == "mse" else (y - target).abs()
        return (err * mask).sum((-3, -1)) / mask.sum((0, 2)).clamp(min=1.0)

    @torch.no_grad()
    def rollout(self, model: torch.nn.Module, u: Tensor, *, dt: float, generator: torch.Generator | None = None,
                perturb: Tensor | None = None, repeat_x0: int = 1) -> dict[str, Tensor]:
        """Run the trials with exploratory kicks and accumulate the eligibility traces.

        ``perturb [T, B, N]`` gives the kicks explicitly (tests); by default they are drawn from
        ``generator``. Returns ``y [T, B, O]``, ``x [T, B, N]`` (perturbed pre-activations),
        ``e_rec [B, N, N]`` and ``e_bias [B, N]``, each with a leading member axis ``E`` for a
        Population (the kicks and ``x0`` are shared by its members). ``repeat_x0 = k`` draws ``B / k``
        initial states and repeats them ``k`` times along the trial axis (the paired baseline's twins).
        """
        T, B = u.shape[:2]
        N = model.n_hidden
        lead = (model.size,) if is_population(model) else ()
        if perturb is None:
            perturb = self.draw_perturbations(T, B, N, dt, model.device, model.dtype, generator)
        if B % repeat_x0:
            raise ValueError(f"repeat_x0={repeat_x0} must divide the {B} trials")
        x = body_of(model).init_state(B // repeat_x0, generator).x.repeat(repeat_x0, 1).expand(*lead, B, N)
        xbar = x.clone()
        e_rec = torch.zeros(*lead, B, N, N, device=model.device, dtype=model.dtype)
        e_bias = torch.zeros(*lead, B, N, device=model.device, dtype=model.dtype)
        f = body_of(model).f
        ys, xs = [], []
        for t in range(T):
            r_prev = f(x)
            x = rate_step(model, x, u[t]) + perturb[t]
            dx = x - xbar
            xbar = self.xbar_decay * xbar + (1.0 - self.xbar_decay) * x
            e_rec += eligibility_increment(r_prev, dx)
            e_bias += dx**3
            ys.append(rate_output(model, x))
            xs.append(x)
        dim = len(lead)
        return {"y": torch.stack(ys, dim), "x": torch.stack(xs, dim), "e_rec": e_rec, "e_bias": e_bias}

    def draw_perturbations(self, T: int, B: int, N: int, dt: float, device: torch.device, dtype: torch.dtype,
                           generator: torch.Generator | None) -> Tensor:
        """Kicks ``[T, B, N]``: each unit, each step, with probability ``1 - (1 - perturb_rate)**dt``, a
        U(-amp, amp) value; none in the first ``perturb_after_ms``."""
        p = 1.0 - (1.0 - self.perturb_rate) ** dt
        hit = torch.rand(T, B, N, generator=generator, device=device, dtype=dtype) < p
        amp = (2.0 * torch.rand(T, B, N, generator=generator, device=device, dtype=dtype) - 1.0) * self.perturb_amp
        kicks = hit.to(dtype) * amp
        first = int(np.ceil(self.perturb_after_ms / dt - 1e-9))
        kicks[: min(first, T)] = 0.0
        return kicks
