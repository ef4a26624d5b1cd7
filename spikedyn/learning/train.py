"""``spikedyn.train``: one training loop for every body and every gradient-estimating rule.

Reproducibility by construction: the batch of step ``s`` is sampled with ``rng = [seed, s]`` and the
model's own noise with a torch seed derived from ``(seed, s)``, so a run resumed from any checkpoint
replays exactly what an uninterrupted run would have done (same final weights on CPU).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .checkpoint import (
    DEFAULT_LR,
    atomic_torch_save,
    atomic_write_json,
    locks_run_dir,
    open_run,
    plain,
    save_checkpoint,
    set_lr,
    write_metrics,
)
from .losses import task_loss
from .reprs import result_repr
from .rules import LearningRule, make_rule

EVAL_SEED_OFFSET = 1_000_003  # the held-out trials come from a stream no training step uses


class TrainingDiverged(RuntimeError):
    """Raised when the loss or a gradient becomes NaN/Inf."""


@dataclass
class TrainResult:
    """``history``: one record per step (``step``, ``loss``, ``grad_norm``; evaluation steps add
    ``eval_loss``, ``accuracy`` and the task's other scores). ``model`` is the trained model."""

    history: list[dict[str, float]]
    model: torch.nn.Module
    run_dir: Path | None = None
    stopped_early: bool = False
    final: dict[str, float] = field(default_factory=dict)

    def curve(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of ``key`` over the records that have it."""
        rows = [(r["step"], r[key]) for r in self.history if key in r]
        if not rows:
            return np.zeros(0), np.zeros(0)
        s, v = zip(*rows)
        return np.asarray(s), np.asarray(v, dtype=float)

    __repr__ = result_repr


def _to_tensors(batch: Any, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    return tuple(torch.as_tensor(a, device=device, dtype=dtype) for a in (batch.inputs, batch.targets, batch.mask))


def _step_seed(seed: int, step: int) -> int:
    return (int(seed) * 1_000_033 + int(step) * 7919 + 17) % (2**63 - 1)


@torch.no_grad()
def evaluate(model: torch.nn.Module, task: Any, batch: Any, chunk: int = 1000, seed: int = 0) -> dict[str, float]:
    """Loss and task scores of ``model`` on a fixed batch of trials (chunked over the batch)."""
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


@locks_run_dir  # one writer per run directory: a second process gets RunLocked (one line)
def train(
    model: torch.nn.Module,
    task: Any,
    rule: str | LearningRule = "bptt",
    steps: int = 1000,
    batch_size: int = 64,
    lr: float | None = None,
    seed: int = 0,
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
) -> TrainResult:
    """Train ``model`` on ``task`` with ``rule`` and Adam.

    Args:
        model: a spikedyn model (RateRNN, GRURNN, SpikingRNN, ...).
        task: a ``spikedyn.tasks`` Task (its ``loss`` picks masked MSE or cross-entropy).
        rule: "bptt" (or any registered rule name / LearningRule object, e.g. e-prop).
        steps: optimiser steps (one batch each). batch_size: trials per batch.
        lr: Adam learning rate (None: 1e-3 for a new run, the run's own when resuming; a new value on
            resume takes effect from the resume step and is recorded in config.json's ``lr_changes``).
        seed: seeds the batches, the held-out set and the model's noise (not the model's init).
        run_dir: if given, write config.json, metrics.jsonl, checkpoints/ and model.pt there (holding
            ``run_dir/.lock``), and resume from the newest intact checkpoint when ``resume`` is True.
            Resuming with other settings raises ``RunError`` (see ``spikedyn.learning.checkpoint.open_run``);
            a finished run is returned as it is (nothing trained or written); ``restart=True`` starts the
            run over there.
        clip: max global gradient norm (None = no clipping).
        eval_every: evaluate on ``eval_trials`` held-out trials every this many steps (and at the end).
        target_accuracy: stop early once held-out accuracy reaches it (seed 002 used 0.9).
        checkpoint_every: steps between checkpoints (default: ``eval_every``).
        callback: called as ``callback(step, record)`` after every step (logging, tests).
        device: "cpu", "cuda" or "cuda:N": move ``model`` there first (None: where it is). Progress:
            a bar on a terminal, a log line every 30 s otherwise (``spikedyn.progress``).
    """
    if steps < 1 or batch_size < 1 or eval_every < 1:
        raise ValueError("steps, batch_size and eval_every must be positive integers")
    rule_obj = make_rule(rule, **(rule_kwargs or {}))
    if device is not None:
        from ..device import resolve_device

        model.to(resolve_device(device))
    device, dtype = model.W_out.device, model.W_out.dtype
    params = [p for p in model.parameters() if p.requires_grad]
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    lr_new_run = DEFAULT_LR if lr is None else float(lr)  # on resume: the run's own, unless lr is given
    optimizer = torch.optim.Adam(params, lr=lr_new_run, weight_decay=weight_decay)
    checkpoint_every = checkpoint_every or eval_every
    eval_batch = task.sample(eval_trials, np.random.default_rng([seed, EVAL_SEED_OFFSET]), split="test")

    run_path = Path(run_dir) if run_dir is not None else None
    history: list[dict[str, float]] = []
    start, stopped_early, last_ckpt, finished = 1, False, None, False
    run_config = plain({
        "model": model.config() if hasattr(model, "config") else type(model).__name__,
        "task": task.config() if hasattr(task, "config") else getattr(task, "name", str(task)),
        "rule": rule_obj.config(),
        "train": dict(steps=steps, batch_size=batch_size, lr=lr_new_run, seed=seed, clip=clip, eval_every=eval_every,
                      eval_trials=eval_trials, target_accuracy=target_accuracy, weight_decay=weight_decay),
    })  # fmt: skip
    if run_path is not None:
        resumed = open_run(run_path, run_config, lr=lr, resume=resume, restart=restart)
        if resumed is not None:
            ck, run_config = resumed.checkpoint, resumed.config
            model.load_state_dict(ck["model"])
            optimizer.load_state_dict(ck["optimizer"])
            set_lr(optimizer, resumed.lr)
            history, start, last_ckpt = ck["history"], ck["step"] + 1, resumed.path
            stopped_early, finished = ck.get("stopped_early", False), resumed.finished

    def checkpoint(step: int) -> None:
        nonlocal last_ckpt
        if run_path is None:
            return
        payload = {"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                   "history": history, "config": run_config, "stopped_early": stopped_early}  # fmt: skip
        last_ckpt = save_checkpoint(run_path, step, payload)
        write_metrics(run_path / "metrics.jsonl", history)

    bar = None
    if progress and start <= steps and not stopped_early:
        from ..progress import progress as make_progress

        bar = make_progress(steps, f"train {getattr(task, 'name', '')}", unit="step", initial=start - 1)
    model.train()
    step = start - 1
    for step in range(start, steps + 1):
        if stopped_early:
            break
        batch = task.sample(batch_size, np.random.default_rng([seed, step]))
        u, target, mask = _to_tensors(batch, device, dtype)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_step_seed(seed, step))
            loss, grads = rule_obj.loss_and_gradients(model, u, target, mask, task.loss)
        loss_value = float(loss)
        grad_norm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads.values()))
        if not (math.isfinite(loss_value) and math.isfinite(grad_norm)):
            where = f"last good checkpoint: {last_ckpt}" if last_ckpt else "no checkpoint was written"
            raise TrainingDiverged(
                f"loss became {'NaN/Inf' if not math.isfinite(loss_value) else 'finite but a gradient NaN/Inf'} "
                f"at step {step} ({where}); lower lr, enable clip, or check inputs"
            )
        for name, p in named.items():
            p.grad = grads[name].to(p.dtype) if name in grads else None
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        record: dict[str, float] = {"step": step, "loss": loss_value, "grad_norm": grad_norm}
        if step % eval_every == 0 or step == steps:
            record.update(evaluate(model, task, eval_batch, seed=_step_seed(seed, -1)))
            if target_accuracy is not None and record.get("accuracy", -1.0) >= target_accuracy:
                stopped_early = True
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
    if run_path is not None and not finished:  # a finished run is returned as it is, never rewritten
        atomic_torch_save(run_path / "model.pt", {"config": run_config, "model": model.state_dict()})
        atomic_write_json(run_path / "summary.json", {"final": final, "steps": step, "stopped_early": stopped_early})
    return TrainResult(history=history, model=model, run_dir=run_path, stopped_early=stopped_early, final=final)
