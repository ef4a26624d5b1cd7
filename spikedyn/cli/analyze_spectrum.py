"""``spikedyn analyze spectrum``: Lyapunov spectrum and adjoint of a trained run (or a fresh model)."""
from __future__ import annotations

import time
from pathlib import Path

import typer

from .common import device_option, emit, json_option
from .groups import analyze_app


@analyze_app.command("spectrum")
def spectrum(
    run_dir: Path = typer.Option(None, help="A run directory of `spikedyn train` (model.pt, config.json)."),
    task: str = typer.Option(None, help="Task whose inputs drive the network (default: the run's task)."),
    model: str = typer.Option("rate", help="Without --run-dir: rate | gru | lstm | lif | alif, freshly built."),
    hidden: int = typer.Option(64, help="Without --run-dir: units N."),
    gain: float = typer.Option(None, help="Without --run-dir: W_rec ~ N(0, gain^2/N) (rate, lif, alif)."),
    init: str = typer.Option(None, help="Without --run-dir: pta | orthogonal | zeros | torch_default."),
    k: int = typer.Option(10, help="Number of exponents."),
    trials: int = typer.Option(8, help="Trials analysed in parallel (spectra averaged)."),
    repeat: int = typer.Option(4, help="Trials concatenated in time per trajectory (longer average)."),
    seed: int = typer.Option(0, help="Seed of the trials, the initial tangent vectors and the model."),
    device: str = device_option(),
    as_json: bool = json_option(),
) -> None:
    """Top-k Lyapunov exponents (QR method, float64) along trajectories driven by a task's inputs, the
    two-trajectory estimate of lambda_1, and the adjoint decay over one trial."""
    import numpy as np
    import torch

    from .. import init as inits
    from ..analysis import adjoint_norms, lyapunov_spectrum, max_lyapunov_perturbation
    from ..device import resolve_device
    from ..experiments.build import build_model, build_task
    from ..runs import load_run

    for flag, value in (("--trials", trials), ("--repeat", repeat), ("--k", k)):
        if value < 1:
            raise ValueError(f"{flag} must be a positive integer, got {value}")
    t0 = time.perf_counter()
    dev = resolve_device(device)
    if run_dir is not None:
        net, cfg, _ = load_run(run_dir)
        if getattr(net, "kind", None) == "population":
            raise ValueError(f"{run_dir} holds a Population of {net.size}; analyze spectrum takes one network's run "
                             "(a sweep's trials/<key>/, or train the member without --population)")
        task_cfg = dict(cfg["task"]) if task is None else {"name": task}
        task_obj = build_task(task_cfg.pop("name"), task_cfg)
    else:
        task_obj = build_task(task or "romo", {})
        params = {} if gain is None else {"gain": gain}
        net = build_model(model, task_obj, hidden, params, seed=seed)
        if init is not None:
            if init not in ("pta", "orthogonal", "zeros", "torch_default"):
                raise ValueError(f"unknown init {init!r}; choose pta, orthogonal, zeros or torch_default")
            getattr(inits, init)(net) if init == "zeros" else getattr(inits, init)(net, seed=seed)
    if task_obj.n_inputs != net.n_in:
        raise ValueError(f"--task {task_obj.name} has {task_obj.n_inputs} inputs; the run's model takes {net.n_in}: "
                         "give a task with as many inputs (or drop --task for the run's own)")
    net = net.to(dev)
    batch = task_obj.sample(trials * repeat, np.random.default_rng([seed, 7]))
    u = torch.as_tensor(batch.inputs, device=dev)
    u = torch.cat(u.split(trials, dim=1), dim=0)  # [T * repeat, trials, I]: a long driven trajectory
    spec = lyapunov_spectrum(net, u, k=k, seed=seed, progress=True)
    lam1 = max_lyapunov_perturbation(net, u, seed=seed)
    adj = adjoint_norms(net, torch.as_tensor(batch.inputs[:, 0], device=dev), seed=seed)
    unit = "1/s"  # lyapunov_spectrum reports every body per second (its dt is in ms)
    emit({
        "model": type(net).__name__, "task": task_obj.name, "steps_per_trajectory": int(u.shape[0]),
        f"spectrum ({unit})": " ".join(f"{s:.4f}" for s in spec),
        f"lambda_1 two-trajectory ({unit})": round(float(lam1), 4),
        "adjoint ||dL/dx(0)|| / ||dL/dx(T)||": float(adj[0] / adj[-1]),
        "seconds": round(time.perf_counter() - t0, 1),
    }, as_json, "Lyapunov spectrum (QR method, warm-up excluded)")  # fmt: skip
