"""The foundation's table and figure: held-out accuracy of rate / LIF / ALIF nets trained with BPTT on the
decision tasks (``spikedyn bench accuracy``), and a rate net beside its spiking twin on RDM
(``spikedyn bench mirror``). ``run_accuracy`` / ``run_mirror`` measure, ``plot_mirror`` draws.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..atomic import atomic_save_figure
from ..progress import track

# (task, model, steps, lr) -- the settings of tests/test_training.py, at full evaluation size
ACCURACY_CASES = [
    ("rdm", "rate", 300, 3e-3), ("cdi", "rate", 400, 3e-3), ("2af", "rate", 300, 3e-3),
    ("romo", "rate", 300, 3e-3), ("dms", "rate", 300, 3e-3), ("rdm", "lif", 300, 2e-3),
    ("cdi", "lif", 400, 2e-3), ("2af", "lif", 300, 3e-3), ("rdm", "alif", 300, 2e-3),
]  # fmt: skip


def _task(name: str):
    from .build import build_task

    return build_task(name, {"dt": 10.0} if name in ("rdm", "cdi") else {})


def run_accuracy(held_out: int = 4000, seed: int = 0, device: Any = None, progress: bool = True) -> list[dict]:
    """Train every case of ``ACCURACY_CASES`` (on ``device``) and score it on ``held_out`` fresh trials."""
    import numpy as np

    from ..device import resolve_device
    from ..learning import evaluate, train
    from .build import build_model

    dev = resolve_device(device)
    rows = []
    for name, model, steps, lr in track(ACCURACY_CASES, "accuracy table", unit="case", enabled=progress):
        task = _task(name)
        net = build_model(model, task, hidden=64, seed=seed).to(dev)
        t0 = time.perf_counter()
        train(net, task, steps=steps, batch_size=64, lr=lr, seed=seed, eval_every=steps, eval_trials=200,
              progress=False)  # fmt: skip
        acc = evaluate(net, task, task.sample(held_out, np.random.default_rng(777), split="test"))["accuracy"]
        rows.append({"task": name, "model": model, "steps": steps, "lr": lr, "accuracy": round(acc, 4),
                     "train_seconds": round(time.perf_counter() - t0, 1)})  # fmt: skip
    return rows


def write_accuracy(rows: list[dict], held_out: int, seed: int, out_dir: Path) -> Path:
    """``out_dir/results/training_accuracy.json``."""
    from ..atomic import atomic_write_json

    path = Path(out_dir) / "results" / "training_accuracy.json"
    atomic_write_json(path, {"held_out_trials": held_out, "seed": seed, "rows": rows})
    return path


def run_mirror(seed: int = 0, device: Any = None) -> dict[str, Any]:
    """Train a ReLU rate net on RDM, mirror it into spikes for several substep counts; accuracies (2000
    held-out trials) and the traces ``plot_mirror`` draws."""
    import numpy as np
    import torch

    from ..device import resolve_device
    from ..learning import evaluate, train
    from ..models import mirror
    from .build import build_model

    dev = resolve_device(device)
    task = _task("rdm")
    rate = build_model("rate", task, hidden=64, seed=seed).to(dev)
    train(rate, task, steps=300, batch_size=64, lr=3e-3, seed=seed, eval_every=300, eval_trials=200)
    held_out = task.sample(2000, np.random.default_rng(11), split="test")
    calib = task.sample(64, np.random.default_rng(12)).inputs
    acc_rate = evaluate(rate, task, held_out)["accuracy"]
    sub_list, accs = [1, 2, 5, 10, 20], []
    for k in sub_list:
        accs.append(evaluate(mirror(rate, inputs=calib, substeps=k, dt=task.dt), task, held_out)["accuracy"])
    twin = mirror(rate, inputs=calib, substeps=10, dt=task.dt)
    u = torch.as_tensor(held_out.inputs[:, :4], device=dev)
    with torch.no_grad():
        ro, tw = rate(u), twin(u)
        spikes = twin.spike_trains(u)[:, 0]
        r_twin = (twin.mirror_scale[0] * twin.filtered_spikes(u)).cpu()
    return {"task_dt": task.dt, "substeps": sub_list, "twin_accuracy": accs, "rate_accuracy": acc_rate,
            "rate_r": ro.r.cpu(), "rate_y": ro.y.cpu(), "twin_y": tw.y.cpu(), "twin_r": r_twin,
            "spikes": spikes.cpu(), "twin_substeps": twin.substeps}  # fmt: skip


def plot_mirror(m: dict[str, Any], out_dir: Path) -> Path:
    """Rates, spikes, outputs and accuracy vs substeps: ``out_dir/figures/mirror_rdm.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    ro_r, r_twin, spikes, sub_list, accs = m["rate_r"], m["twin_r"], m["spikes"], m["substeps"], m["twin_accuracy"]
    acc_rate, dt = m["rate_accuracy"], m["task_dt"]
    t_ms = np.arange(ro_r.shape[0]) * dt
    units = np.argsort(-ro_r[:, 0].std(0).numpy())[:3]

    fig, ax = plt.subplots(2, 2, figsize=(10, 6.5))
    for j, i in enumerate(units):
        ax[0, 0].plot(t_ms, ro_r[:, 0, i], color=f"C{j}", label=f"rate unit {i}: f(x)")
        ax[0, 0].plot(t_ms, r_twin[:, 0, i], color=f"C{j}", ls="--", label=f"twin {i}: λ·r̄")
    ax[0, 0].set(xlabel="time (ms)", ylabel="rate (a.u.)", title="units: rate net vs spiking twin")
    ax[0, 0].legend(fontsize=7)
    st, ni = np.nonzero(spikes.numpy())
    ax[0, 1].scatter(st * dt / m["twin_substeps"], ni, s=0.3, color="k")
    ax[0, 1].set(xlabel="time (ms)", ylabel="neuron", title="twin spikes (trial 0)")
    for b in range(4):
        ax[1, 0].plot(t_ms, m["rate_y"][:, b, 0], color=f"C{b}")
        ax[1, 0].plot(t_ms, m["twin_y"][:, b, 0], color=f"C{b}", ls="--")
    ax[1, 0].set(xlabel="time (ms)", ylabel="output y", title="outputs: rate (solid) vs twin (dashed)")
    ax[1, 1].plot(sub_list, accs, "o-", label="spiking twin")
    ax[1, 1].axhline(acc_rate, color="k", ls=":", label="rate net")
    ax[1, 1].axhline(0.9 * acc_rate, color="r", ls=":", label="90% of rate net")
    ax[1, 1].set(xscale="log", xlabel="substeps per 10 ms input step", ylabel="held-out accuracy",
                 title="RDM accuracy (2000 trials)", ylim=(0.5, 1.0))  # fmt: skip
    ax[1, 1].legend(fontsize=8)
    fig.tight_layout()
    return atomic_save_figure(fig, Path(out_dir) / "figures" / "mirror_rdm.png", dpi=110)
