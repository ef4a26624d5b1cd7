"""``spikedyn bench mirror`` and ``spikedyn bench accuracy``: the foundation's figures and tables."""
from __future__ import annotations

import time
from pathlib import Path

import typer

from ..atomic import atomic_save_figure
from .common import emit, json_option
from .groups import bench_app

# (task, model, steps, lr) -- the settings of tests/test_training.py, at full evaluation size
ACCURACY_CASES = [
    ("rdm", "rate", 300, 3e-3), ("cdi", "rate", 400, 3e-3), ("2af", "rate", 300, 3e-3),
    ("romo", "rate", 300, 3e-3), ("dms", "rate", 300, 3e-3), ("rdm", "lif", 300, 2e-3),
    ("cdi", "lif", 400, 2e-3), ("2af", "lif", 300, 3e-3), ("rdm", "alif", 300, 2e-3),
]  # fmt: skip


def _task(name: str):
    from ..experiment import build_task

    return build_task(name, {"dt": 10.0} if name in ("rdm", "cdi") else {})


@bench_app.command("accuracy")
def accuracy(
    out: Path = typer.Option(Path("docs/results/training_accuracy.json"), help="Where to write the table."),
    held_out: int = typer.Option(4000, help="Held-out trials per evaluation."),
    seed: int = typer.Option(0, help="Seed."),
    as_json: bool = json_option(),
) -> None:
    """Train rate / LIF / ALIF nets with BPTT on the decision tasks and tabulate held-out accuracy."""
    import numpy as np
    from tqdm.auto import tqdm

    from ..experiment import build_model
    from ..learning import evaluate, train
    from ..learning.checkpoint import atomic_write_json

    rows = []
    for name, model, steps, lr in tqdm(ACCURACY_CASES, desc="accuracy table", disable=None):
        task = _task(name)
        net = build_model(model, task, hidden=64, seed=seed)
        t0 = time.perf_counter()
        train(net, task, steps=steps, batch_size=64, lr=lr, seed=seed, eval_every=steps, eval_trials=200,
              progress=False)  # fmt: skip
        acc = evaluate(net, task, task.sample(held_out, np.random.default_rng(777), split="test"))["accuracy"]
        rows.append({"task": name, "model": model, "steps": steps, "lr": lr, "accuracy": round(acc, 4),
                     "train_seconds": round(time.perf_counter() - t0, 1)})  # fmt: skip
    atomic_write_json(out, {"held_out_trials": held_out, "seed": seed, "rows": rows})
    emit({f"{r['model']}/{r['task']}": r["accuracy"] for r in rows}, as_json, f"held-out accuracy -> {out}")


@bench_app.command("mirror")
def mirror_figure(
    out: Path = typer.Option(Path("docs/figures"), help="Folder for mirror_rdm.png."),
    seed: int = typer.Option(0, help="Seed."),
    as_json: bool = json_option(),
) -> None:
    """Train a ReLU rate net on RDM, mirror it into spikes and plot rates, outputs and accuracy vs substeps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    from ..experiment import build_model
    from ..learning import evaluate, train
    from ..models import mirror

    task = _task("rdm")
    rate = build_model("rate", task, hidden=64, seed=seed)
    train(rate, task, steps=300, batch_size=64, lr=3e-3, seed=seed, eval_every=300, eval_trials=200)
    held_out = task.sample(2000, np.random.default_rng(11), split="test")
    calib = task.sample(64, np.random.default_rng(12)).inputs
    acc_rate = evaluate(rate, task, held_out)["accuracy"]
    sub_list, accs = [1, 2, 5, 10, 20], []
    for k in sub_list:
        accs.append(evaluate(mirror(rate, inputs=calib, substeps=k, dt=task.dt), task, held_out)["accuracy"])
    twin = mirror(rate, inputs=calib, substeps=10, dt=task.dt)
    u = torch.as_tensor(held_out.inputs[:, :4])
    with torch.no_grad():
        ro, tw = rate(u), twin(u)
        spikes = twin.spike_trains(u)[:, 0]
    r_twin = twin.mirror_scale[0] * twin.filtered_spikes(u)
    t_ms = np.arange(u.shape[0]) * task.dt
    units = np.argsort(-ro.r[:, 0].std(0).numpy())[:3]

    fig, ax = plt.subplots(2, 2, figsize=(10, 6.5))
    for j, i in enumerate(units):
        ax[0, 0].plot(t_ms, ro.r[:, 0, i], color=f"C{j}", label=f"rate unit {i}: f(x)")
        ax[0, 0].plot(t_ms, r_twin[:, 0, i], color=f"C{j}", ls="--", label=f"twin {i}: λ·r̄")
    ax[0, 0].set(xlabel="time (ms)", ylabel="rate (a.u.)", title="units: rate net vs spiking twin")
    ax[0, 0].legend(fontsize=7)
    st, ni = np.nonzero(spikes.numpy())
    ax[0, 1].scatter(st * task.dt / twin.substeps, ni, s=0.3, color="k")
    ax[0, 1].set(xlabel="time (ms)", ylabel="neuron", title="twin spikes (trial 0)")
    for b in range(4):
        ax[1, 0].plot(t_ms, ro.y[:, b, 0], color=f"C{b}")
        ax[1, 0].plot(t_ms, tw.y[:, b, 0], color=f"C{b}", ls="--")
    ax[1, 0].set(xlabel="time (ms)", ylabel="output y", title="outputs: rate (solid) vs twin (dashed)")
    ax[1, 1].plot(sub_list, accs, "o-", label="spiking twin")
    ax[1, 1].axhline(acc_rate, color="k", ls=":", label="rate net")
    ax[1, 1].axhline(0.9 * acc_rate, color="r", ls=":", label="90% of rate net")
    ax[1, 1].set(xscale="log", xlabel="substeps per 10 ms input step", ylabel="held-out accuracy",
                 title="RDM accuracy (2000 trials)", ylim=(0.5, 1.0))  # fmt: skip
    ax[1, 1].legend(fontsize=8)
    fig.tight_layout()
    atomic_save_figure(fig, out / "mirror_rdm.png", dpi=110)
    emit({"rate_accuracy": acc_rate, **{f"twin_substeps_{k}": a for k, a in zip(sub_list, accs)},
          "figure": str(out / "mirror_rdm.png")}, as_json, "mirror: rate net vs spiking twin on RDM")  # fmt: skip
