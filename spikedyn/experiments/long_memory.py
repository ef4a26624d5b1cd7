"""Long-memory benchmark of Park et al. (Table S1, Fig. 5C): which initialisation lets BPTT learn long delays.

Every model has the same number of units N, and is trained with the same budget (steps, batch size,
learning rate, clipping) by ``spikedyn.train`` (Adam, BPTT, cross-entropy on the task's mask), for
several seeds. Results: held-out cross-entropy and accuracy curves per run (``metrics.jsonl`` in the run
directories, resumable), a table in the shape of Table S1 and a learning-curve figure.

Models (name -> body and recurrent initialisation; input weights are each body's default):

Every body starts from PyTorch's defaults (Park et al., S2): weights and biases U(-1/sqrt(N), 1/sqrt(N)),
including the tanh RNN's input weights (RateRNN's own N(0, 1/I) input weights are ~7x larger at N = 128
and I = 8; with them PTA tanh stayed at chance on temporal ordering in a pilot: each random distractor
kicks the oscillators' phases). Only W_rec differs between variants:

| name | body | W_rec |
| --- | --- | --- |
| ``tanh`` | RateRNN, alpha = 1, tanh (vanilla RNN) | PyTorch default U(-1/sqrt(N), 1/sqrt(N)) ("def.") |
| ``tanh-pta`` | same | PTA, discrete regime (Eq. 19, 21) |
| ``tanh-orth`` | same | Haar orthogonal ("W^T W = I") |
| ``gru`` | GRURNN | PyTorch default |
| ``gru-pta`` | GRURNN | PTA on the candidate weights (see ``spikedyn.init.pta``) |
| ``lstm`` | LSTMRNN | PyTorch default |
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_save_figure
from ..models.gru import GRURNN
from .base import ExperimentConfig

MODELS = ("tanh", "tanh-pta", "tanh-orth", "gru", "gru-pta", "lstm")
TASKS = ("copy_memory", "temporal_order", "random_delay_copy")
TEST_SEED_OFFSET = 2_000_003  # the test trials come from a stream neither training nor validation uses


def build_benchmark_model(name: str, n_in: int, n_out: int, hidden: int, seed: int) -> torch.nn.Module:
    """One of ``MODELS``, seeded (torch's global RNG for the body's default init, ``seed`` for ours)."""
    from ..init import orthogonal, pta, torch_default
    from ..models.lstm import LSTMRNN
    from ..models.rate import RateRNN

    if name not in MODELS:
        raise ValueError(f"unknown benchmark model {name!r}; choose from {', '.join(MODELS)}")
    torch.manual_seed(seed)
    if name.startswith("tanh"):
        model = RateRNN(n_in, hidden, n_out, alpha=1.0, activation="tanh")
        with torch.no_grad():  # input weights and bias as torch.nn.RNN (Park et al. S2: PyTorch defaults)
            k = 1.0 / math.sqrt(hidden)
            model.W_in.uniform_(-k, k)
            model.b.copy_(torch.empty(2, hidden).uniform_(-k, k).sum(0))
        {"tanh": torch_default, "tanh-pta": pta, "tanh-orth": orthogonal}[name](model, seed=seed)
        return model
    if name.startswith("gru"):
        model = GRURNN(n_in, hidden, n_out)
        return pta(model, seed=seed) if name == "gru-pta" else model
    return LSTMRNN(n_in, hidden, n_out)


class BenchmarkConfig(ExperimentConfig):
    """Task (and copy delay k in steps), models, units N, seeds, and the training budget shared by all."""

    task: str = "copy_memory"
    delay: int = 100
    models: tuple[str, ...] = MODELS
    hidden: int = 128
    seeds: int = 3
    steps: int = 1500
    batch_size: int = 64
    lr: float = 1e-3
    clip: float = 1.0
    eval_every: int = 50
    eval_trials: int = 500

    def task_params(self) -> dict[str, Any]:
        if self.task == "copy_memory":
            return {"delay": self.delay}
        if self.task == "random_delay_copy":
            return {"delay_min": self.delay, "delay_max": self.delay + 20}
        return {}


def run(cfg: BenchmarkConfig, out_dir: Path, progress: bool = True, log: Callable[[str], None] = print,
        device: Any = None) -> dict[str, Any]:  # fmt: skip
    """Train every (model, seed) pair, model by model in the order given (so an interrupted benchmark has
    all seeds of the first models), resuming any run already in ``out_dir/<task>/<model>/seed<k>``;
    returns the summary (also ``summary.json``)."""
    from ..atomic import atomic_write_json
    from ..device import resolve_device
    from ..learning import evaluate, train
    from .build import build_task

    if cfg.task not in TASKS:
        raise ValueError(f"unknown memory task {cfg.task!r}; choose from {', '.join(TASKS)}")
    for name in cfg.models:
        if name not in MODELS:
            raise ValueError(f"unknown benchmark model {name!r}; choose from {', '.join(MODELS)}")
    dev = resolve_device(device)
    task = build_task(cfg.task, cfg.task_params())
    root = Path(out_dir) / cfg.task
    atomic_write_json(root / "benchmark_config.json", cfg.model_dump())
    for name in cfg.models:
        for seed in range(cfg.seeds):
            run_dir = root / name / f"seed{seed}"
            if (run_dir / "summary.json").exists():
                continue
            t0 = time.perf_counter()
            model = build_benchmark_model(name, task.n_inputs, task.n_outputs, cfg.hidden, seed).to(dev)
            test_batch = task.sample(cfg.eval_trials, np.random.default_rng([seed, TEST_SEED_OFFSET]), split="test")

            def add_test_scores(step: int, record: dict, model=model, test_batch=test_batch) -> None:
                # train() scores its own held-out set ("eval_loss": the validation set that early stopping
                # selects on); a second, disjoint test set gives the reported numbers
                if "eval_loss" in record:
                    scores = evaluate(model, task, test_batch)
                    record["test_ce"], record["test_accuracy"] = scores["eval_loss"], scores["accuracy"]

            train(model, task, steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, seed=seed, run_dir=run_dir,
                  clip=cfg.clip, eval_every=cfg.eval_every, eval_trials=cfg.eval_trials, progress=progress,
                  callback=add_test_scores)  # fmt: skip
            r = final_scores(read_curves(run_dir))
            log(f"{cfg.task} {name} seed {seed}: test CE {r['ce_final']:.4g} (early-stopped {r['ce_early']:.4g}), "
                f"accuracy {r['acc_final']:.3f} ({time.perf_counter() - t0:.0f} s)")
    summary = summarize(root, cfg)
    atomic_write_json(root / "summary.json", summary)
    return summary


CURVE_KEYS = ("step", "eval_loss", "accuracy", "test_ce", "test_accuracy")


def read_curves(run_dir: Path) -> dict[str, np.ndarray]:
    """Held-out curves of one run: ``step``, validation ``eval_loss``/``accuracy``, ``test_ce``/``test_accuracy``."""
    rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if line]
    rows = [r for r in rows if "eval_loss" in r]
    return {k: np.array([r.get(k, np.nan) for r in rows], dtype=float) for k in CURVE_KEYS}


def final_scores(c: dict[str, np.ndarray]) -> dict[str, float]:
    """Test scores at the last step and early-stopped (at the step of the lowest validation loss, as
    Park et al. S2.3 selected models on a validation set)."""
    best = int(np.nanargmin(c["eval_loss"]))
    return {"ce_final": float(c["test_ce"][-1]), "acc_final": float(c["test_accuracy"][-1]),
            "ce_early": float(c["test_ce"][best]), "acc_early": float(c["test_accuracy"][best]),
            "early_step": float(c["step"][best])}  # fmt: skip


def summarize(root: Path, cfg: BenchmarkConfig) -> dict[str, Any]:
    """Test cross-entropy / accuracy per model over the finished seeds (final and early-stopped)."""
    out: dict[str, Any] = {"task": cfg.task, "config": cfg.model_dump(), "models": {}}
    for name in cfg.models:
        rows = [final_scores(read_curves(root / name / f"seed{s}")) for s in range(cfg.seeds)
                if (root / name / f"seed{s}" / "summary.json").exists()]  # fmt: skip
        if not rows:
            continue
        entry: dict[str, Any] = {"seeds": len(rows)}
        for key in ("ce_final", "acc_final", "ce_early", "acc_early", "early_step"):
            v = np.array([r[key] for r in rows])
            entry[f"{key}_mean"], entry[f"{key}_std"] = float(v.mean()), float(v.std())
            entry[f"{key}_per_seed"] = v.tolist()
        out["models"][name] = entry
    return out


def table_markdown(summaries: list[dict[str, Any]]) -> str:
    """Table S1's shape: rows per task (early-stopped and final), one column per model; test cross-entropy
    in nats, mean over seeds (mean test accuracy and the number of seeds in brackets)."""
    models = [m for m in MODELS if any(m in s["models"] for s in summaries)]
    head = "| task | " + " | ".join(models) + " |\n|---|" + "---|" * len(models) + "\n"
    rows = []
    for s in summaries:
        label = s["task"] + (f" k = {s['config']['delay']}" if s["task"] == "copy_memory" else "")
        for kind, title in (("early", "early-stopped"), ("final", "final")):
            cells = []
            for m in models:
                r = s["models"].get(m)
                cells.append("-" if r is None else
                             f"{_fmt(r[f'ce_{kind}_mean'])} ({r[f'acc_{kind}_mean']:.2f}; n={r['seeds']})")  # fmt: skip
            rows.append(f"| {label}, {title} ↓ | " + " | ".join(cells) + " |")
    return head + "\n".join(rows) + "\n"


def _fmt(x: float) -> str:
    return f"{x:.3g}" if x >= 1e-2 else f"{x:.2e}"


def plot_curves(root: Path, cfg: BenchmarkConfig, path: Path) -> Path:
    """Held-out cross-entropy (log scale) vs training step, mean over seeds, min-max shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    colors = dict(zip(MODELS, ("tab:gray", "tab:red", "tab:orange", "tab:blue", "tab:purple", "tab:green")))
    for name in cfg.models:
        curves = [read_curves(root / name / f"seed{s}") for s in range(cfg.seeds)
                  if (root / name / f"seed{s}" / "summary.json").exists()]  # fmt: skip
        if not curves:
            continue
        n = min(len(c["step"]) for c in curves)
        steps = curves[0]["step"][:n]
        ce = np.stack([c["test_ce"][:n] for c in curves])
        ax.plot(steps, np.exp(np.log(ce).mean(0)), color=colors[name], label=f"{name} ({len(curves)} seeds)")
        ax.fill_between(steps, ce.min(0), ce.max(0), color=colors[name], alpha=0.15, lw=0)
    if cfg.task in ("copy_memory", "random_delay_copy"):
        ax.axhline(math.log(8), color="k", ls=":", lw=1, label="chance (log 8)")
    ax.set_yscale("log")
    ax.set_xlabel(f"training step (batch {cfg.batch_size})")
    ax.set_ylabel("test cross-entropy (nats)")
    title = cfg.task + (f", delay {cfg.delay}" if cfg.task == "copy_memory" else "")
    ax.set_title(f"{title}: N = {cfg.hidden}, lr {cfg.lr:g}, BPTT")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return atomic_save_figure(fig, path, dpi=120)


run_benchmark = run  # the name before the experiments layer


def report(cfg: BenchmarkConfig, out_dir: Path) -> dict[str, Any]:
    """The summary of the finished runs under ``out_dir/<task>`` (also written as ``summary.json``)."""
    from ..atomic import atomic_write_json

    root = Path(out_dir) / cfg.task
    summary = summarize(root, cfg)
    atomic_write_json(root / "summary.json", summary)
    return summary


def write_table(summaries: list[dict[str, Any]], out_dir: Path) -> tuple[Path, str]:
    """``out_dir/table.md`` (Table S1's shape); returns (path, table)."""
    from ..atomic import atomic_write_bytes

    table = table_markdown(summaries)
    path = Path(out_dir) / "table.md"
    atomic_write_bytes(path, table.encode())
    return path, table


def result_lines(summaries: list[dict[str, Any]]) -> dict[str, str]:
    """One line per (task, model): test cross-entropy early-stopped and final, mean ± std over seeds."""
    return {f"{s['task']}/{m}": (f"CE {r['ce_early_mean']:.4g} ± {r['ce_early_std']:.2g} early-stopped, "
                                 f"{r['ce_final_mean']:.4g} ± {r['ce_final_std']:.2g} final ({r['seeds']} seeds)")
            for s in summaries for m, r in s["models"].items()}  # fmt: skip
