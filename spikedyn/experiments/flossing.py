"""Liu et al.'s Fig. 4: local gradient-flossing pretraining before e-prop, on Romo at a poor initial gain.

For each seed, two copies of one leaky ReLU rate RNN (W_rec ~ N(0, gain^2/N), gain 0.2) are trained on
Romo with the same e-prop budget; one of them is first pretrained with *local* gradient flossing
(``spikedyn.init.flossing(..., local=True)``: the top-k Lyapunov exponents pushed towards 0 with the
e-prop truncation of the gradient, Liu et al. App. B). Their settings: 64 units, batch 32, ReLU,
100 flossing iterations; tau = 100 ms with dt = 20 ms (alpha = 0.2).

``rule="eprop"`` uses the online rule of ``spikedyn.learning.eprop`` (RFLO form for rate units, equal to
autograd through ``model(u, detach_recurrent=True)``); ``rule="bptt-detach"`` computes that same
truncated gradient with autograd, for when the online rule is not available.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from ..atomic import atomic_save_figure
from .base import ExperimentConfig


class FlossingRomoConfig(ExperimentConfig):
    """Seeds, initial gain, network (units, dt and tau in ms), e-prop budget and the flossing pretraining."""

    seeds: int = 3
    gain: float = 0.2
    hidden: int = 64
    dt: float = 20.0
    tau: float = 100.0
    steps: int = 1500
    batch_size: int = 32
    lr: float = 1e-3
    floss_steps: int = 100
    floss_k: int = 16
    floss_lr: float = 1e-3
    floss_batch: int = 8
    rule: str = "eprop"


def _loss_with_detached_recurrence():
    """A learning rule object: autograd through ``model(u, detach_recurrent=True)`` (e-prop's gradient)."""
    from ..learning.losses import task_loss
    from ..learning.rules import LearningRule

    class DetachedBPTT(LearningRule):
        name = "bptt-detach"

        def loss_and_gradients(self, model, u, target, mask, loss="mse"):
            params = dict((n, p) for n, p in model.named_parameters() if p.requires_grad)
            value = task_loss(model(u, detach_recurrent=True).y, target, mask, loss)
            grads = torch.autograd.grad(value, list(params.values()), allow_unused=True)
            return value.detach(), {n: (g if g is not None else torch.zeros_like(p))
                                    for (n, p), g in zip(params.items(), grads, strict=True)}  # fmt: skip

    return DetachedBPTT()


class FlossedArms(NamedTuple):
    """One seed's set-up of both arms: the Romo task, the rule (a name or a rule object), the initial
    network (the plain e-prop arm), its locally flossed copy, the flossing record and the keyword
    arguments of ``spikedyn.learning.train`` that both arms are trained with."""

    task: Any
    rule: Any
    base: torch.nn.Module
    flossed: torch.nn.Module
    floss: Any
    train_kwargs: dict[str, Any]


def _rule(cfg: FlossingRomoConfig) -> Any:
    if cfg.rule not in ("eprop", "bptt-detach"):
        raise ValueError(f"rule must be eprop or bptt-detach, got {cfg.rule!r}")
    return cfg.rule if cfg.rule != "bptt-detach" else _loss_with_detached_recurrence()


def flossed_arms(cfg: FlossingRomoConfig, seed: int, device: Any = None) -> FlossedArms:
    """Build seed ``seed``'s two arms from ``cfg`` (on ``device``: as ``resolve_device``, None = the CPU):
    ``torch.manual_seed(seed)``, the gain-``cfg.gain`` ReLU ``RateRNN`` (alpha = dt / tau), a copy of it
    pretrained with ``cfg.floss_steps`` steps of local flossing. The one definition of the experiment's
    networks: ``run`` and ``benchmarks/flossing_rounding.py`` both train what this returns, with
    ``train(model, arms.task, rule=arms.rule, **arms.train_kwargs)``."""
    from ..device import resolve_device
    from ..init import flossing
    from ..models.rate import RateRNN
    from .build import build_task

    rule = _rule(cfg)
    task = build_task("romo", {"dt": cfg.dt})
    torch.manual_seed(seed)
    base = RateRNN(task.n_inputs, cfg.hidden, task.n_outputs, alpha=cfg.dt / cfg.tau, activation="relu",
                   gain=cfg.gain).to(resolve_device(device))  # fmt: skip
    flossed = copy.deepcopy(base)
    fl = flossing(flossed, task, steps=cfg.floss_steps, k=cfg.floss_k, local=True, lr=cfg.floss_lr,
                  batch_size=cfg.floss_batch, seed=seed, progress=False)  # fmt: skip
    kwargs = {"steps": cfg.steps, "batch_size": cfg.batch_size, "lr": cfg.lr, "seed": seed,
              "eval_every": max(1, cfg.steps // 20), "eval_trials": 500, "progress": False}  # fmt: skip
    return FlossedArms(task, rule, base, flossed, fl, kwargs)


def run(cfg: FlossingRomoConfig, out: Path, log: Callable[[str], None] = print, device: Any = None
        ) -> dict[str, Any]:  # fmt: skip
    """Train both arms (``flossed_arms``) for every seed (on ``device``); returns (and writes to ``out``, a
    .json path, or ``out/results.json`` for a directory) the loss curves and the leading Lyapunov exponents
    before/after flossing."""
    from ..analysis.lyapunov import lyapunov_spectrum
    from ..atomic import atomic_write_json
    from ..device import resolve_device
    from ..learning import train

    _rule(cfg)  # a wrong rule fails before any work
    dev = resolve_device(device)
    path = Path(out) if str(out).endswith(".json") else Path(out) / "results.json"
    out: dict[str, Any] = {"config": cfg.model_dump(), "runs": []}
    for seed in range(cfg.seeds):
        t0 = time.perf_counter()
        arms = flossed_arms(cfg, seed, dev)
        probe = torch.as_tensor(arms.task.sample(16, np.random.default_rng(12345)).inputs, device=dev)
        lam_before = lyapunov_spectrum(arms.base, probe, k=cfg.floss_k, x0_std=0.0, unit="per_step")
        lam_after = lyapunov_spectrum(arms.flossed, probe, k=cfg.floss_k, x0_std=0.0, unit="per_step")
        log(f"seed {seed}: local flossing {time.perf_counter() - t0:.0f} s, lambda_1 per step "
            f"{lam_before[0]:.3f} -> {lam_after[0]:.3f}")
        curves = {}
        for arm, model in (("e-prop", arms.base), ("flossing + e-prop", arms.flossed)):
            t0 = time.perf_counter()
            res = train(model, arms.task, rule=arms.rule, **arms.train_kwargs)
            curves[arm] = {"loss": [r["loss"] for r in res.history],
                           "eval_step": res.curve("eval_loss")[0].tolist(),
                           "eval_loss": res.curve("eval_loss")[1].tolist(),
                           "accuracy": res.curve("accuracy")[1].tolist()}  # fmt: skip
            log(f"seed {seed} {arm}: final loss {res.final.get('eval_loss', float('nan')):.4f}, accuracy "
                f"{res.final.get('accuracy', float('nan')):.3f} ({time.perf_counter() - t0:.0f} s)")
        out["runs"].append({"seed": seed, "lambda_before": lam_before.tolist(), "lambda_after": lam_after.tolist(),
                            "floss_lambdas": arms.floss.lambdas.tolist(), "curves": curves})  # fmt: skip
        atomic_write_json(path, out)
    return out


def smooth(x: np.ndarray, w: int) -> np.ndarray:
    """Running mean over ``w`` steps (valid part)."""
    w = max(1, min(w, len(x)))
    return np.convolve(x, np.ones(w) / w, mode="valid")


def plot(results: dict[str, Any], path: Path) -> Path:
    """Training loss (running mean) of both arms, mean +- sd over seeds, as Liu et al.'s Fig. 4; held-out
    accuracy; the top-k exponents before and after flossing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = results["config"]
    fig, (ax, ax3, ax2) = plt.subplots(1, 3, figsize=(13, 3.6), gridspec_kw={"width_ratios": [2, 1.2, 1]})
    w = max(1, cfg["steps"] // 40)
    for arm, color in (("e-prop", "tab:gray"), ("flossing + e-prop", "tab:red")):
        curves = np.stack([smooth(np.asarray(r["curves"][arm]["loss"]), w) for r in results["runs"]])
        steps = np.arange(curves.shape[1]) + w
        mu, sd = curves.mean(0), curves.std(0)
        ax.plot(steps, mu, color=color, label=f"{arm} ({len(curves)} seeds)")
        ax.fill_between(steps, mu - sd, mu + sd, color=color, alpha=0.2, lw=0)
        acc = np.stack([r["curves"][arm]["accuracy"] for r in results["runs"]])
        eval_steps = results["runs"][0]["curves"][arm]["eval_step"]
        ax3.errorbar(eval_steps, acc.mean(0), yerr=acc.std(0), color=color, capsize=2, lw=1, label=arm)
    ax3.set_xlabel("training iteration")
    ax3.set_ylabel("held-out accuracy (500 trials)")
    ax3.set_title("decision accuracy (mean ± sd)")
    ax3.legend(fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel("training iteration")
    ax.set_ylabel(f"training loss (cross-entropy, running mean of {w})")
    ax.set_title(f"Romo, gain {cfg['gain']}, e-prop ({cfg['rule']}), N = {cfg['hidden']}")
    ax.legend(fontsize=8)
    before = np.array([r["lambda_before"] for r in results["runs"]])
    after = np.array([r["lambda_after"] for r in results["runs"]])
    i = np.arange(1, before.shape[1] + 1)
    ax2.plot(i, before.mean(0), "o-", color="tab:gray", ms=3, label=f"initial (gain {cfg['gain']:.1f})")
    ax2.plot(i, after.mean(0), "o-", color="tab:red", ms=3, label="after local flossing")
    ax2.axhline(0, color="k", lw=0.8)
    ax2.set_xlabel("exponent index i")
    ax2.set_ylabel(f"lambda_i (per step of {cfg['dt']:g} ms)")
    ax2.set_title(f"top {cfg['floss_k']} exponents")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return atomic_save_figure(fig, path, dpi=120)


def summary(results: dict[str, Any]) -> dict[str, str]:
    """One line per arm: training loss over the last 10%, held-out loss and accuracy; lambda_1 per seed."""
    out = {}
    tail = max(1, results["config"]["steps"] // 10)
    for arm in ("e-prop", "flossing + e-prop"):
        last = [float(np.mean(r["curves"][arm]["loss"][-tail:])) for r in results["runs"]]
        final = [r["curves"][arm]["eval_loss"][-1] for r in results["runs"]]
        out[f"{arm}: train loss, last 10%"] = f"{np.mean(last):.4f} ± {np.std(last):.4f}"
        out[f"{arm}: held-out loss"] = f"{np.mean(final):.4f} ± {np.std(final):.4f}"
        acc = [r["curves"][arm]["accuracy"][-1] for r in results["runs"]]
        per_seed = ", ".join(f"{a:.3f}" for a in acc)
        out[f"{arm}: held-out accuracy"] = f"{np.mean(acc):.3f} ± {np.std(acc):.3f} ({per_seed})"
    out["lambda_1 before / after flossing"] = " ".join(
        f"{r['lambda_before'][0]:.3f}/{r['lambda_after'][0]:.3f}" for r in results["runs"])
    return out


run_flossing_romo = run  # the names before the experiments layer
plot_flossing_romo = plot
