"""The demo (``make demo``, ``spikedyn demo``): a rate net and its spiking twin on a decision task.

Train a small leaky ReLU rate RNN with BPTT, mirror it into a spiking (LIF) twin, fine-tune the twin
briefly with surrogate-gradient BPTT, and score both on the same held-out trials.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .base import ExperimentConfig


class DemoConfig(ExperimentConfig):
    """Task, BPTT steps of the rate net (it stops at 90% held-out accuracy), fine-tuning steps of the twin,
    units N, seed."""

    task: str = "rdm"
    steps: int = 400
    finetune_steps: int = 20
    hidden: int = 64
    seed: int = 0


def run(cfg: DemoConfig = DemoConfig(), run_dir: Any = None, device: Any = None,
        log: Callable[[str], None] = print) -> dict[str, Any]:  # fmt: skip
    """The demo's numbers (accuracies, twin firing rate in Hz, seconds); ``run_dir`` keeps the rate net's run."""
    import numpy as np
    import torch

    from ..device import resolve_device
    from ..learning import evaluate, train
    from ..models import mirror
    from .build import build_model, build_task

    if cfg.steps < 1 or cfg.finetune_steps < 0 or cfg.hidden < 1:
        raise ValueError("steps and hidden must be >= 1 and finetune-steps >= 0")
    dev = resolve_device(device)
    t0 = time.perf_counter()
    task = build_task(cfg.task, {"dt": 10.0} if cfg.task in ("rdm", "cdi", "ncdi") else {})
    rate = build_model("rate", task, cfg.hidden, seed=cfg.seed).to(dev)
    log(f"[1/3] training a rate RNN ({cfg.hidden} ReLU units, tau = 100 ms) on {cfg.task} with BPTT ...")
    train(rate, task, steps=cfg.steps, batch_size=64, lr=3e-3, seed=cfg.seed, eval_every=25, eval_trials=1000,
          target_accuracy=0.9, run_dir=run_dir)  # fmt: skip
    held_out = task.sample(2000, np.random.default_rng([cfg.seed, 99]), split="test")
    calibration = torch.as_tensor(task.sample(64, np.random.default_rng([cfg.seed, 98])).inputs, device=dev)
    log("[2/3] mirroring it into a spiking twin (IF neurons, 10 substeps per step) ...")
    twin = mirror(rate, inputs=calibration, substeps=10, dt=task.dt)
    acc_rate = evaluate(rate, task, held_out)["accuracy"]
    acc_twin = acc_tuned = evaluate(twin, task, held_out)["accuracy"]
    if cfg.finetune_steps > 0:
        log(f"[3/3] fine-tuning the twin with surrogate-gradient BPTT for {cfg.finetune_steps} steps ...")
        # the twin's synaptic weights are the rate weights times du (~0.01): Adam's step size must be
        # that much smaller than the rate net's, or the first steps undo the conversion
        train(twin, task, steps=cfg.finetune_steps, batch_size=32, lr=1e-5, seed=cfg.seed + 1,
              eval_every=cfg.finetune_steps, eval_trials=200)  # fmt: skip
        acc_tuned = evaluate(twin, task, held_out)["accuracy"]
    with torch.no_grad():
        spikes = twin(torch.as_tensor(held_out.inputs[:, :200], device=dev)).r
    rate_hz = float(spikes.sum() / (spikes.shape[0] * spikes.shape[1] * spikes.shape[2]) / (task.dt / 1000))
    return {"task": cfg.task, "held_out_trials": held_out.batch_size, "rate_accuracy": acc_rate,
            "spiking_twin_accuracy": acc_twin, "twin_kept_fraction": acc_twin / max(acc_rate, 1e-9),
            "twin_after_finetune_accuracy": acc_tuned, "twin_mean_rate_hz": rate_hz,
            "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
