"""One trial of a sweep: build the task and model, initialise, ``spikedyn.train`` into the trial's run
directory, optionally measure the Lyapunov spectrum, and return the trial's row of the sweep table.

``run_trial`` never raises for a failing trial (bad parameter, diverged training, ...): the row has
``status = "failed"`` and the error, and the traceback goes to ``error.txt`` in the run directory. The same
function runs in this process (local sweeps) and inside a Ray task (``--ray``).
"""
from __future__ import annotations

import json
import time
import traceback
from pathlib import Path
from typing import Any

RESULT_FILE = "result.json"


def _apply_init(model: Any, name: str, params: dict[str, Any], seed: int) -> None:
    import inspect

    from .. import init as init_mod

    fn = getattr(init_mod, name, None)
    public = [n for n in ("gaussian", "orthogonal", "zeros", "pta", "torch_default", "flossing")
              if callable(getattr(init_mod, n, None))]  # fmt: skip
    if name.startswith("_") or not callable(fn) or name not in public:
        raise ValueError(f"unknown init {name!r}; choose one of {', '.join(public)}")
    kwargs = dict(params)
    if "seed" in inspect.signature(fn).parameters:
        kwargs.setdefault("seed", seed)
    fn(model, **kwargs)


def _lyapunov(model: Any, task: Any, k: int, seed: int) -> dict[str, Any]:
    import numpy as np

    from ..analysis import lyapunov_spectrum

    batch = task.sample(8, np.random.default_rng([seed, 424242]), split="test")
    # dt=1: exponents per input step for every body, so that rate and spiking trials compare directly
    exps = lyapunov_spectrum(model, batch.inputs, k=min(k, model.n_hidden), seed=seed, unit="per_step")
    return {"k": int(len(exps)), "exponents": [float(x) for x in exps], "unit": "1/step"}


def _learning_curve_figure(history: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..atomic import atomic_save_figure

    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    steps = [r["step"] for r in history]
    ax.plot(steps, [r["loss"] for r in history], lw=1, label="training loss")
    ev = [(r["step"], r["eval_loss"]) for r in history if "eval_loss" in r]
    if ev:
        ax.plot(*zip(*ev), "o-", ms=3, label="held-out loss")
    ax.set_xlabel("training step")
    ax.set_ylabel("loss")
    ax.set_title(title, fontsize=9)
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=100)


def build_trial(cfg: Any) -> tuple[Any, Any]:
    """The task and the freshly built, initialised model of a trial (a ``TrialConfig``)."""
    from ..device import resolve_device
    from ..experiments.build import build_model, build_task

    task = build_task(cfg.task, cfg.task_params)
    if cfg.memory_model is not None:
        from ..experiments.long_memory import build_benchmark_model

        model = build_benchmark_model(cfg.memory_model, task.n_inputs, task.n_outputs, cfg.hidden, cfg.seed)
    else:
        model = build_model(cfg.model, task, cfg.hidden, cfg.model_params, seed=cfg.seed)
    if cfg.init is not None:
        _apply_init(model, cfg.init, cfg.init_params, cfg.seed)
    return task, model.to(resolve_device(cfg.device))


def new_result() -> dict[str, Any]:
    return {"status": "ok", "error": None, "final": {}, "steps_run": 0, "stopped_early": False, "lyapunov_max": None}


def error_line(e: BaseException) -> str:
    """``"TypeName: first line of the message"`` (just the type name for an empty message)."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def lost_worker_result(e: BaseException) -> dict[str, Any]:
    """The result of a trial whose Ray worker died (out of memory, node lost): failed, nothing measured."""
    return {**new_result(), "status": "failed", "error": error_line(e), "seconds": None}


def finish_trial(cfg: Any, task: Any, model: Any, history: list[dict], final: dict, stopped_early: bool,
                 run_dir: Path, figures: bool, out: dict[str, Any]) -> None:
    """Fill ``out`` from a trained trial; the Lyapunov spectrum and the figure go to ``run_dir``."""
    out["final"] = {k: v for k, v in final.items() if k != "step"}
    out["steps_run"] = int(history[-1]["step"]) if history else 0
    out["stopped_early"] = bool(stopped_early)
    if cfg.lyapunov:
        from ..learning.checkpoint import atomic_write_json

        spectrum = _lyapunov(model, task, cfg.lyapunov, cfg.seed)
        atomic_write_json(run_dir / "lyapunov.json", spectrum)
        out["lyapunov_max"] = spectrum["exponents"][0]
    if figures:
        _learning_curve_figure(history, run_dir / "learning_curve.png",
                               f"{cfg.model} / {cfg.rule} on {cfg.task}, seed {cfg.seed}")  # fmt: skip


def record_failure(out: dict[str, Any], e: Exception, run_dir: Path) -> None:
    """A failing trial is recorded, not raised: the error line in ``out``, the traceback in error.txt."""
    from ..atomic import atomic_write_bytes

    out["status"] = "failed"
    out["error"] = error_line(e)
    atomic_write_bytes(Path(run_dir) / "error.txt", traceback.format_exc().encode())


def run_trial(trial: dict[str, Any], run_dir: str | Path, figures: bool = True,
              callback: Any = None) -> dict[str, Any]:
    """Train one trial (``trial`` = a ``TrialConfig`` as a dict) into ``run_dir``; returns its result.
    ``callback(step, record)`` is ``train``'s (Ray Tune reports each evaluation through it).

    The result is ``{"status": "ok"|"failed", "error", "final": {...held-out scores}, "steps_run",
    "stopped_early", "seconds", "lyapunov_max"}``; the caller records it (``result.json``).
    """
    import torch

    from ..learning import train
    from ..learning.checkpoint import is_finished
    from ..learning.rules import make_rule
    from ..runs import load_run
    from .config import TrialConfig

    run_dir = Path(run_dir)
    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    out = new_result()
    try:
        cfg = TrialConfig(**trial)
        torch.set_num_threads(cfg.threads)
        task, model = build_trial(cfg)
        if is_finished(run_dir):  # trained before the sweep was killed, but not yet recorded
            run = load_run(run_dir)
            model, history = run.model, read_metrics(run_dir)
            final, stopped_early = dict(run.summary.get("final", {})), bool(run.summary.get("stopped_early"))
        else:
            result = train(
                model, task, rule=make_rule(cfg.rule, **cfg.rule_params), steps=cfg.steps, batch_size=cfg.batch_size,
                lr=cfg.lr, seed=cfg.seed,
                run_dir=run_dir, clip=cfg.clip, eval_every=cfg.eval_every, eval_trials=cfg.eval_trials,
                target_accuracy=cfg.target_accuracy, progress=False, callback=callback,
            )  # fmt: skip
            model, history, final, stopped_early = result.model, result.history, result.final, result.stopped_early
        finish_trial(cfg, task, model, history, final, stopped_early, run_dir, figures, out)
    except Exception as e:  # a failing trial is recorded, not raised: the sweep goes on
        record_failure(out, e, run_dir)
    finally:
        torch.set_num_threads(threads)
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def read_result(run_dir: Path) -> dict[str, Any] | None:
    """The recorded result of a finished trial, or None (not run, or killed before it finished)."""
    path = Path(run_dir) / RESULT_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, OSError):
        return None
