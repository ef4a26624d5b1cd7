"""``spikedyn.train``: one training loop for every body, every rule and populations of networks.

The loop is the same for every rule (``spikedyn.learning.rules``): ``rule.init_state`` once, then per
step one batch and ``rule.update``; evaluation, early stopping, checkpoints, the metrics log and progress
are the loop's. Gradient rules apply Adam inside ``update``; the genetic algorithm, Hebbian and
full-FORCE rules change the weights themselves.

Reproducibility by construction: the batch of step ``s`` is sampled with ``rng = [seed, s]`` and the
model's own noise with a torch seed derived from ``(seed, s)``, so a run resumed from any checkpoint
replays exactly what an uninterrupted run would have done (same final weights on CPU). A ``Population``
sees the same batches and the same noise in every member (common random numbers), so member i trained
in a population equals the same model trained alone with the same ``seed``.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .checkpoint import (
    DEFAULT_LR,
    RESTART_HINT,
    RunError,
    atomic_torch_save,
    atomic_write_json,
    locks_run_dir,
    open_run,
    plain,
    save_checkpoint,
    write_metrics,
)
from .losses import task_loss
from .reprs import result_repr
from .rules import LearningRule, Rule, TrainingDiverged, is_population, make_rule, member_losses, seed_of

log = logging.getLogger("spikedyn.runs")

EVAL_SEED_OFFSET = 1_000_003  # the held-out trials come from a stream no training step uses


@dataclass
class TrainResult:
    """``history``: one record per step (``step``, ``loss`` and the rule's other entries, e.g. ``grad_norm``;
    evaluation steps add ``eval_loss``, ``accuracy`` and the task's other scores; for a Population the
    per-member values as ``member_*`` lists). ``model`` is the trained model (the GA's best member)."""

    history: list[dict[str, Any]]
    model: torch.nn.Module
    run_dir: Path | None = None
    stopped_early: bool = False
    final: dict[str, Any] = field(default_factory=dict)

    def curve(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of ``key`` over the records that have it (values [S, E] for member lists)."""
        rows = [(r["step"], r[key]) for r in self.history if key in r]
        if not rows:
            return np.zeros(0), np.zeros(0)
        s, v = zip(*rows)
        return np.asarray(s), np.asarray(v, dtype=float)

    __repr__ = result_repr


@dataclass
class MemberBatches:
    """One TaskBatch per Population member (members trained with their own seeds), stacked:
    ``inputs [E, T, B, I]``, ``targets`` and ``mask [E, T, B, O]``; ``batches[i]`` is member i's."""

    batches: list[Any]

    def __post_init__(self) -> None:
        self.inputs, self.targets, self.mask = (np.stack([getattr(b, k) for b in self.batches])
                                                for k in ("inputs", "targets", "mask"))  # fmt: skip


def sample_batch(task: Any, batch_size: int, seed: int | Sequence[int], stream: int, split: str = "train") -> Any:
    """The trials ``train`` uses for ``stream`` (a step, or ``EVAL_SEED_OFFSET``): ``rng = [seed, stream]``;
    with one seed per member a ``MemberBatches``."""
    if isinstance(seed, Sequence):
        return MemberBatches([task.sample(batch_size, np.random.default_rng([int(s), stream]), split=split)
                              for s in seed])  # fmt: skip
    return task.sample(batch_size, np.random.default_rng([seed, stream]), split=split)


def _to_tensors(batch: Any, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    return tuple(torch.as_tensor(a, device=device, dtype=dtype) for a in (batch.inputs, batch.targets, batch.mask))


def _step_seed(seed: int, step: int) -> int:
    """The torch seed of ``stream`` (a step, or -1 for evaluation) of a run seeded ``seed``: ``rules.seed_of``."""
    return seed_of(seed, step)


@contextmanager
def _torch_draws(model: torch.nn.Module, seed: int | Sequence[int], stream: int) -> Iterator[None]:
    """The model's own random numbers for ``stream`` (a step, or -1 for evaluation): the global torch
    generator seeded from ``(seed, stream)``; with one seed per Population member, each member's own
    generator (``Population.member_rng``), so it draws what it would draw alone."""
    with torch.random.fork_rng(devices=[]):
        if isinstance(seed, Sequence):
            torch.manual_seed(_step_seed(seed[0], stream))
            with model.member_rng([_step_seed(s, stream) for s in seed]):
                yield
        else:
            torch.manual_seed(_step_seed(seed, stream))
            yield


@torch.no_grad()
def evaluate(model: torch.nn.Module, task: Any, batch: Any, chunk: int = 1000,
             seed: int | Sequence[int] = 0) -> dict[str, Any]:
    """Loss and task scores of ``model`` on a fixed batch of trials (chunked over the batch). For a
    ``Population``: the mean over members, and every member's value as ``member_<score>`` lists."""
    if is_population(model):
        return evaluate_population(model, task, batch, chunk=chunk, seed=seed)
    was_training = model.training
    model.eval()
    u, target, mask = _to_tensors(batch, model.W_out.device, model.W_out.dtype)
    ys = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i in range(0, u.shape[1], chunk):
            ys.append(model(u[:, i : i + chunk]).y)
    y = torch.cat(ys, dim=1)
    model.train(was_training)
    scores = {"eval_loss": float(task_loss(y, target, mask, task.loss))}
    scores.update({k: float(v) for k, v in task.score(y.float().cpu().numpy(), batch).items()})
    return scores


@torch.no_grad()
def population_outputs(pop: torch.nn.Module, u: Tensor, chunk: int = 1000,
                       seed: int | Sequence[int] | None = None) -> Tensor:
    """All members' outputs ``[E, T, B, O]`` on ``u [T, B, I]`` (or per member ``[E, T, B, I]``), ``chunk``
    trials at a time (the chunks and draws of ``evaluate`` on one model, so each member sees what it
    would see alone; ``seed``: one torch seed, or one per member)."""
    B = u.shape[-2]
    with torch.random.fork_rng(devices=[]):
        if seed is not None and not isinstance(seed, Sequence):
            torch.manual_seed(seed)
        with pop.member_rng(seed) if isinstance(seed, Sequence) else nullcontext():
            return torch.cat([pop.outputs(u[..., i : i + chunk, :]) for i in range(0, B, chunk)], dim=2)


def evaluate_population(
    pop: torch.nn.Module, task: Any, batch: Any, chunk: int = 1000, seed: int | Sequence[int] = 0
) -> dict[str, Any]:
    """``evaluate`` for every member of a ``Population`` at once (one batched rollout per chunk); ``batch``
    may be a ``MemberBatches`` (each member its own trials) and ``seed`` one torch seed per member."""
    u, target, mask = _to_tensors(batch, pop.device, pop.dtype)
    y = population_outputs(pop, u, chunk=chunk, seed=seed)
    losses = member_losses(y, target, mask, task.loss).double().cpu().tolist()
    y_np = y.float().cpu().numpy()
    own = batch.batches if isinstance(batch, MemberBatches) else [batch] * pop.size
    per_member = [{k: float(v) for k, v in task.score(y_np[e], own[e]).items()} for e in range(pop.size)]
    out: dict[str, Any] = {"eval_loss": float(np.mean(losses))}
    for key in per_member[0]:
        out[key] = float(np.mean([m[key] for m in per_member]))
    out["member_eval_loss"] = losses
    for key in per_member[0]:
        out[f"member_{key}"] = [m[key] for m in per_member]
    return out


def make_run_config(model: torch.nn.Module, task: Any, rule: Any, **train_settings: Any) -> dict[str, Any]:
    """The ``config.json`` of a run: model, task, rule and training settings (``steps``, ``batch_size``,
    ``lr``, ``seed``, ``clip``, ``eval_every``, ``eval_trials``, ``target_accuracy``, ``weight_decay``)."""
    return plain({
        "model": model.config() if hasattr(model, "config") else type(model).__name__,
        "task": task.config() if hasattr(task, "config") else getattr(task, "name", str(task)),
        "rule": rule.config() if hasattr(rule, "config") else {"name": rule.name},
        "train": train_settings,
    })  # fmt: skip


@locks_run_dir  # one writer per run directory: a second process gets RunLocked (one line)
def train(
    model: torch.nn.Module,
    task: Any,
    rule: str | Rule = "bptt",
    steps: int = 1000,
    batch_size: int = 64,
    lr: float | Sequence[float] | None = None,
    seed: int | Sequence[int] = 0,
    run_dir: str | Path | None = None,
    clip: float | None = 1.0,
    eval_every: int = 50,
    eval_trials: int = 1000,
    target_accuracy: float | None = None,
    checkpoint_every: int | None = None,
    resume: bool = True,
    progress: bool = True,
    weight_decay: float = 0.0,
    callback: Callable[[int, dict], None] | None = None,
    rule_kwargs: dict[str, Any] | None = None,
    restart: bool = False,
    device: Any = None,
    on_member_divergence: str = "raise",
) -> TrainResult:
    """Train ``model`` (or every member of a ``Population``) on ``task`` with ``rule``.

    Args:
        model: a spikedyn model (RateRNN, GRURNN, SpikingRNN, ...) or a ``spikedyn.Population``.
        task: a ``spikedyn.tasks`` Task (its ``loss`` picks masked MSE or cross-entropy).
        rule: a rule name ("bptt", "eprop", "rflo", "ga", "hebbian", "full_force") or a rule object
            (``spikedyn.learning.rules``); ``rule_kwargs`` configure a rule given by name.
        steps: training steps, one batch each (for "ga": generations). batch_size: trials per batch.
        lr: Adam learning rate of the gradient rules (None: 1e-3 for a new run, the run's own when
            resuming; a new value on resume takes effect from the resume step and is recorded in
            config.json's ``lr_changes``; one per member allowed for a Population, whose own ``pop.lr``
            wins). clip: max global gradient norm, per member (None = none). weight_decay: Adam's L2
            term. These three configure gradient rules; other rules ignore them.
        seed: seeds the batches, the held-out set, the model's noise and the rule's draws (not the init).
            For a ``Population`` trained with a gradient rule, one seed per member: member i then sees
            the batches, held-out set and noise of ``train(pop.member(i), seed=seed[i])`` (what a sweep
            of same-shaped trials with different seeds runs as one Population).
        run_dir: if given, write config.json, metrics.jsonl, checkpoints/ and model.pt there (holding
            ``run_dir/.lock``), and resume from the newest intact checkpoint when ``resume`` is True.
            Resuming with other settings raises ``RunError`` (see ``spikedyn.learning.checkpoint.open_run``);
            a finished run is returned as it is (nothing trained or written); ``restart=True`` starts the
            run over there.
        eval_every: evaluate on ``eval_trials`` held-out trials every this many steps (and at the end).
        target_accuracy: stop once held-out accuracy reaches it (McMahan et al. 2024 used 0.9); in a
            Population each member stops changing when it reaches it, the run when all have.
        checkpoint_every: steps between checkpoints (default: ``eval_every``).
        callback: called as ``callback(step, record)`` after every step (logging, tests).
        device: "cpu", "cuda" or "cuda:N": move ``model`` there first (None: where it is). Progress:
            a bar on a terminal, a log line every 30 s otherwise (``spikedyn.progress``).
        on_member_divergence: "raise" (default: a NaN/Inf in any member still training raises
            ``TrainingDiverged`` for the run; members frozen at their target are not watched) or "freeze"
            (a ``Population`` trained with a gradient rule only): a member whose loss or
            gradient turns NaN/Inf is frozen at its last finite weights, like a member at its target, and
            the step is re-run for the others with the same batch and draws (so they end as in a run
            where it did not diverge); from then on every record has ``member_diverged`` (one bool per
            member), that member's ``member_loss``/``member_grad_norm`` (and non-finite held-out scores)
            are None and ``loss``, ``eval_loss``, ``accuracy``... are means over the others. Only when
            every active member diverges is ``TrainingDiverged`` raised.
    """
    if steps < 1 or batch_size < 1 or eval_every < 1:
        raise ValueError("steps, batch_size and eval_every must be positive integers")
    rule_obj = make_rule(rule, **(rule_kwargs or {}))
    if device is not None:
        from ..device import resolve_device

        model.to(resolve_device(device))
    lr_new_run = DEFAULT_LR if lr is None else plain(lr)  # on resume: the run's own, unless lr is given
    if isinstance(rule_obj, LearningRule):
        rule_obj.set_optimizer(lr=lr_new_run, clip=clip, weight_decay=weight_decay)
    per_member = is_population(model) and not getattr(rule_obj, "trains_population", False)
    if on_member_divergence not in ("raise", "freeze"):
        raise ValueError(f"on_member_divergence must be 'raise' or 'freeze', got {on_member_divergence!r}")
    freeze = on_member_divergence == "freeze"
    if freeze and not (per_member and isinstance(rule_obj, LearningRule)):
        raise ValueError("on_member_divergence='freeze' applies to a Population trained with a gradient rule "
                         "(bptt, eprop, rflo)")  # fmt: skip
    if isinstance(seed, Sequence):
        if not (per_member and isinstance(rule_obj, LearningRule)):
            raise ValueError("one seed per member needs a Population trained with a gradient rule (bptt, eprop, "
                             "rflo); give one seed")  # fmt: skip
        if len(seed) != model.size:
            raise ValueError(f"{len(seed)} seeds for a Population of {model.size}")
        seed = [int(s) for s in seed]
    checkpoint_every = checkpoint_every or eval_every
    eval_batch = sample_batch(task, eval_trials, seed, EVAL_SEED_OFFSET, split="test")
    eval_seed = [_step_seed(s, -1) for s in seed] if isinstance(seed, list) else _step_seed(seed, -1)

    run_path = Path(run_dir) if run_dir is not None else None
    history: list[dict[str, Any]] = []
    start, stopped_early, last_ckpt, finished = 1, False, None, False
    run_config = make_run_config(model, task, rule_obj, steps=steps, batch_size=batch_size, lr=lr_new_run, seed=seed,
                                 clip=clip, eval_every=eval_every, eval_trials=eval_trials,
                                 target_accuracy=target_accuracy, weight_decay=weight_decay,
                                 **({"on_member_divergence": "freeze"} if freeze else {}))  # fmt: skip
    state = rule_obj.init_state(model, task, seed=seed)
    if per_member:
        state["active"] = torch.ones(model.size, dtype=torch.bool)
    if freeze:
        state["diverged"] = torch.zeros(model.size, dtype=torch.bool)
    if run_path is not None:
        resumed = open_run(run_path, run_config, lr=lr, resume=resume, restart=restart)
        if resumed is not None:
            ck, run_config = resumed.checkpoint, resumed.config
            if "rule_state" not in ck:
                raise RunError(f"{resumed.path} has no rule state (written by an older spikedyn); {RESTART_HINT}")
            model.load_state_dict(ck["model"])
            state = ck["rule_state"]
            if isinstance(rule_obj, LearningRule):  # a new lr on resume: Adam's moments are kept
                rule_obj.set_optimizer(lr=resumed.lr, clip=clip, weight_decay=weight_decay)
            history, start, last_ckpt = ck["history"], ck["step"] + 1, resumed.path
            stopped_early, finished = ck.get("stopped_early", False), resumed.finished

    def checkpoint(step: int) -> None:
        nonlocal last_ckpt
        if run_path is None:
            return
        payload = {"step": step, "model": model.state_dict(), "rule_state": state, "history": history,
                   "config": run_config, "stopped_early": stopped_early}  # fmt: skip
        last_ckpt = save_checkpoint(run_path, step, payload)
        write_metrics(run_path / "metrics.jsonl", history)

    def result_model() -> torch.nn.Module:
        pick = getattr(rule_obj, "result_model", None)
        return model if pick is None else pick(model, state)

    bar = None
    if progress and start <= steps and not stopped_early:
        from ..progress import progress as make_progress

        bar = make_progress(steps, f"train {getattr(task, 'name', '')}", unit="step", initial=start - 1)
    model.train()
    step = start - 1
    for step in range(start, steps + 1):
        if stopped_early:
            break
        batch = sample_batch(task, batch_size, seed, step)
        frozen = _freeze_inactive(model, state) if per_member else None
        try:
            try:
                with _torch_draws(model, seed, step):
                    update = rule_obj.update(model, batch, state, step=step)
            except TrainingDiverged as e:
                if not (freeze and e.members and _freeze_diverged(state, e.members, step)):
                    raise
                with _torch_draws(model, seed, step):  # the step again without them: same batch, same draws
                    update = rule_obj.update(model, batch, state, step=step)
        except TrainingDiverged as e:
            where = f"last good checkpoint: {last_ckpt}" if last_ckpt else "no checkpoint was written"
            hint = getattr(rule_obj, "divergence_hint", "lower lr, enable clip, or check inputs")
            raise TrainingDiverged(f"{e} ({where}); {hint}", members=e.members) from None
        loss_value = float(update["loss"])
        if not np.isfinite(loss_value):
            where = f"last good checkpoint: {last_ckpt}" if last_ckpt else "no checkpoint was written"
            raise TrainingDiverged(f"loss became NaN/Inf at step {step} ({where}); check the rule's settings")
        if frozen:
            _restore(model, frozen)
        record: dict[str, Any] = {"step": step, **update}
        if freeze and bool(state["diverged"].any()):
            record["member_diverged"] = state["diverged"].tolist()
        if step % eval_every == 0 or step == steps:
            scores = evaluate(result_model(), task, eval_batch, seed=eval_seed)
            record.update(_without(scores, state["diverged"]) if freeze and bool(state["diverged"].any()) else scores)
            stopped_early = _early_stop(record, state, target_accuracy, per_member)
        history.append(record)
        if callback is not None:
            callback(step, record)
        if bar is not None:
            bar.update(1)
            bar.set_postfix({k: f"{record[k]:.3g}" for k in ("loss", "accuracy") if k in record})
        if step % checkpoint_every == 0 or step == steps or stopped_early:
            checkpoint(step)
    if bar is not None:
        bar.close()

    final = next((dict(r) for r in reversed(history) if "eval_loss" in r), {})
    trained = result_model()
    if run_path is not None and not finished:  # a finished run is returned as it is, never rewritten
        atomic_torch_save(run_path / "model.pt", {"config": {**run_config, "model": trained.config()},
                                                  "model": trained.state_dict()})  # fmt: skip
        last = history[-1]["step"] if history else step  # an early stop leaves ``step`` one past the last step run
        atomic_write_json(run_path / "summary.json", {"final": final, "steps": last, "stopped_early": stopped_early})
    return TrainResult(history=history, model=trained, run_dir=run_path, stopped_early=stopped_early, final=final)


def _early_stop(record: dict[str, Any], state: dict, target: float | None, per_member: bool) -> bool:
    """Whether the run is done; for a population, marks the members at the target inactive."""
    if target is None:
        return False
    if not per_member:
        return record.get("accuracy", -1.0) >= target
    reached = torch.tensor(record.get("member_accuracy", [-1.0] * len(state["active"]))) >= target
    state["active"] &= ~reached
    record["members_active"] = int(state["active"].sum())
    return not bool(state["active"].any())


def _without(scores: dict[str, Any], diverged: torch.Tensor) -> dict[str, Any]:
    """A Population's evaluation without its diverged members: each score the mean over the others, and
    the diverged members' non-finite ``member_*`` values None."""
    keep = (~diverged).tolist()
    out = dict(scores)
    for key, values in scores.items():
        if key.startswith("member_") and key[len("member_"):] in scores:
            out[key] = [v if k or np.isfinite(v) else None for v, k in zip(values, keep)]
            out[key[len("member_"):]] = float(np.mean([v for v, k in zip(values, keep) if k]))
    return out


def _freeze_diverged(state: dict, members: list[int], step: int) -> bool:
    """Mark ``members`` diverged and inactive (frozen from now on) if other members are still active;
    False (nothing changed) when no active member would be left."""
    idx = torch.as_tensor(members, dtype=torch.long)
    left = state["active"].clone()
    left[idx] = False
    if not bool(left.any()):
        return False
    state["active"], state["diverged"][idx] = left, True
    log.warning("members %s diverged at step %d: frozen at their last finite weights (member_diverged)",
                members, step)
    return True


def _freeze_inactive(model: torch.nn.Module, state: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor]] | None:
    """Copies of the inactive members' parameters (None when every member is active)."""
    active = state["active"]
    if bool(active.all()):
        return None
    idx = torch.nonzero(~active).flatten().to(model.device)
    return {n: (idx, p.detach()[idx].clone()) for n, p in model.named_parameters()}


@torch.no_grad()
def _restore(model: torch.nn.Module, frozen: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
    for n, p in model.named_parameters():
        idx, saved = frozen[n]
        p[idx] = saved
