"""``spikedyn demo``: the main job of ``make demo`` — a rate net and its spiking twin on RDM."""
from __future__ import annotations

import time

import typer

from . import app
from .common import emit, json_option


@app.command()
def demo(
    task: str = typer.Option("rdm", help="Decision task (rdm, cdi, ...)."),
    steps: int = typer.Option(400, help="Max BPTT steps for the rate net (stops at 90% held-out accuracy)."),
    finetune_steps: int = typer.Option(20, help="Surrogate-gradient BPTT steps on the spiking twin."),
    hidden: int = typer.Option(64, help="Units N (rate and spiking)."),
    seed: int = typer.Option(0, help="Seed."),
    run_dir: str = typer.Option(None, help="Optional run directory for the rate net's training."),
    as_json: bool = json_option(),
) -> None:
    """Train a small rate RNN with BPTT, mirror it into a spiking (LIF) twin, fine-tune the twin briefly,
    and print both accuracies on the same held-out trials (about a minute on 2 CPU cores)."""
    import numpy as np
    import torch

    from ..experiment import build_model, build_task
    from ..learning import evaluate, train
    from ..models import mirror

    t0 = time.perf_counter()
    params = {"dt": 10.0} if task in ("rdm", "cdi", "ncdi") else {}
    task_obj = build_task(task, params)
    rate = build_model("rate", task_obj, hidden, seed=seed)
    print(f"[1/3] training a rate RNN ({hidden} ReLU units, tau = 100 ms) on {task} with BPTT ...", flush=True)
    train(rate, task_obj, steps=steps, batch_size=64, lr=3e-3, seed=seed, eval_every=25, eval_trials=1000,
          target_accuracy=0.9, run_dir=run_dir)  # fmt: skip
    held_out = task_obj.sample(2000, np.random.default_rng([seed, 99]), split="test")
    calibration = torch.as_tensor(task_obj.sample(64, np.random.default_rng([seed, 98])).inputs)
    print("[2/3] mirroring it into a spiking twin (IF neurons, 10 substeps per step) ...", flush=True)
    twin = mirror(rate, inputs=calibration, substeps=10, dt=task_obj.dt)
    acc_rate = evaluate(rate, task_obj, held_out)["accuracy"]
    acc_twin = evaluate(twin, task_obj, held_out)["accuracy"]
    acc_tuned = acc_twin
    if finetune_steps > 0:
        print(f"[3/3] fine-tuning the twin with surrogate-gradient BPTT for {finetune_steps} steps ...", flush=True)
        # the twin's synaptic weights are the rate weights times du (~0.01): Adam's step size must be
        # that much smaller than the rate net's, or the first steps undo the conversion
        train(twin, task_obj, steps=finetune_steps, batch_size=32, lr=1e-5, seed=seed + 1,
              eval_every=finetune_steps, eval_trials=200)  # fmt: skip
        acc_tuned = evaluate(twin, task_obj, held_out)["accuracy"]
    with torch.no_grad():
        spikes = twin(torch.as_tensor(held_out.inputs[:, :200])).r
    rate_hz = float(spikes.sum() / (spikes.shape[0] * spikes.shape[1] * spikes.shape[2]) / (task_obj.dt / 1000))
    emit(
        {
            "task": task,
            "held_out_trials": held_out.batch_size,
            "rate_accuracy": acc_rate,
            "spiking_twin_accuracy": acc_twin,
            "twin_kept_fraction": acc_twin / max(acc_rate, 1e-9),
            "twin_after_finetune_accuracy": acc_tuned,
            "twin_mean_rate_hz": rate_hz,
            "seconds": round(time.perf_counter() - t0, 1),
        },
        as_json,
        "spikedyn demo: rate RNN vs its spiking twin (same held-out trials)",
    )
