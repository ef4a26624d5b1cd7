"""Initial gain vs learning speed, Liu et al.'s Fig. 1: loss curves of e-prop and BPTT on Romo for
initial recurrent gains {0.2, 0.5, 1.0, 1.5} (W_rec ~ N(0, gain^2 / N)), 64 ReLU units, batch 32, Adam with
the best learning rate per gain from {1e-4, 3e-4, 1e-3, 3e-3}, 5 seeds.

Default (reduced) protocol: the learning rate is chosen on seed 0, then seeds 1-4 run at that rate;
``full_grid=True`` runs every seed at every rate and chooses by the seed mean. Each run is cached as JSON,
so an interrupted sweep resumes. ``spikedyn bench eprop-gain`` and ``benchmarks/eprop_gain.py`` call
``run`` / ``plot`` / ``write``.

Liu et al.'s Fig. 3 comes from the same runs (``lyapunov=True``, the default of ``EpropGainConfig``): the
maximum Lyapunov exponent of each network before and after training, on a fixed probe of Romo trials
(QR method, ``spikedyn.analysis.lyapunov_spectrum``, k = 1, per 20 ms step; ``plot_lyapunov``).
BPTT may train for fewer iterations than e-prop (``bptt_iterations``): its loss has settled long before.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from ..atomic import atomic_save_figure
from ..progress import track
from .base import ExperimentConfig

GAINS = (0.2, 0.5, 1.0, 1.5)
LRS = (1e-4, 3e-4, 1e-3, 3e-3)


PROBE_TRIALS = 32  # Romo trials the maximum Lyapunov exponent is averaged over (a fixed draw, seed 12345)


def max_lyapunov(net: Any, task: Any, trials: int = PROBE_TRIALS) -> float:
    """The maximum Lyapunov exponent of ``net`` driven by ``trials`` fixed Romo trials (rng seed 12345),
    per input step (20 ms at Liu et al.'s dt): QR method with k = 1, the first quarter of each trial as
    warm-up, from the model's own initial state (no perturbation), trial-averaged."""
    import numpy as np
    import torch

    from ..analysis.lyapunov import lyapunov_spectrum

    probe = torch.as_tensor(task.sample(trials, np.random.default_rng(12345), split="test").inputs)
    return float(lyapunov_spectrum(net, probe.to(net.W_out.device), k=1, x0_std=0.0, unit="per_step")[0])


def gain_run(rule: str, gain: float, lr: float, seed: int, iterations: int, hidden: int, batch: int,
             dt: float, tau: float, eval_trials: int, mask: str = "decision", device: Any = None,
             lyapunov: bool = False) -> dict:  # fmt: skip
    """One training run on Romo: the per-iteration training loss and the final held-out accuracy.
    ``mask="decision"`` supervises the decision period only (as Schuessler et al.'s Romo, which Liu et al.
    follow); with "all" the loss is dominated by the easy fixation steps. ``lyapunov``: also the maximum
    Lyapunov exponent before and after training (``max_lyapunov``; it does not change the training)."""
    import torch

    from ..device import resolve_device
    from ..learning import train
    from ..models import RateRNN
    from .build import build_task

    torch.set_num_threads(1)
    task = build_task("romo", {"dt": dt, "mask": mask})
    torch.manual_seed(seed)
    alpha = min(1.0, dt / tau)
    net = RateRNN(task.n_inputs, hidden, task.n_outputs, alpha=alpha, activation="relu", gain=gain)
    net = net.to(resolve_device(device))
    t0 = time.perf_counter()
    before = max_lyapunov(net, task) if lyapunov else None
    result = train(net, task, rule=rule, steps=iterations, batch_size=batch, lr=lr, seed=seed,
                   eval_every=iterations, eval_trials=eval_trials, progress=False)  # fmt: skip
    out = {"rule": rule, "gain": gain, "lr": lr, "seed": seed, "iterations": iterations,
           "loss": [r["loss"] for r in result.history], "accuracy": result.final.get("accuracy"),
           "eval_loss": result.final.get("eval_loss")}  # fmt: skip
    if lyapunov:
        out.update(lyapunov_before=before, lyapunov_after=max_lyapunov(net, task))
    return {**out, "seconds": time.perf_counter() - t0}


def _run_key(rule: str, gain: float, lr: float, seed: int) -> str:
    return f"{rule}_g{gain:g}_lr{lr:g}_s{seed}"


def _cached_run(cache: Path, cfg: dict, device: Any, rule: str, gain: float, lr: float, seed: int) -> dict:
    from ..atomic import atomic_write_json

    path = Path(cache) / f"{_run_key(rule, gain, lr, seed)}.json"
    if path.exists():
        data = json.loads(path.read_text())
        if data.get("config") == cfg:
            return data
    data = gain_run(rule, gain, lr, seed, **cfg, device=device)  # cfg: gain_run's keyword arguments
    data["config"] = cfg
    atomic_write_json(path, data)
    return data


def _pool_map(jobs: list[tuple], cache: Path, cfgs: dict[str, dict], workers: int, desc: str, device: Any = None,
              progress: bool = True) -> list[dict]:  # fmt: skip
    """Run (or read from ``cache``) every ``(rule, gain, lr, seed)`` job with its rule's ``cfgs[rule]``."""
    from concurrent.futures import ProcessPoolExecutor

    if workers <= 1:
        return [_cached_run(cache, cfgs[j[0]], device, *j) for j in track(jobs, desc, unit="run", enabled=progress)]
    import multiprocessing

    # spawn, not fork: forking a process whose torch already started OpenMP threads can hang
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_cached_run, cache, cfgs[j[0]], device, *j) for j in jobs]
        return [f.result() for f in track(futures, desc, unit="run", enabled=progress)]


def tail_loss(losses: list[float], fraction: float = 0.1) -> float:
    """Mean training loss over the last ``fraction`` of the iterations (the learning-rate criterion)."""
    n = max(1, int(len(losses) * fraction))
    return float(sum(losses[-n:]) / n)


def smooth(values: list[float], window: int) -> list[float]:
    """Trailing moving average (the first ``window - 1`` points average what exists so far)."""
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def run_gain_sweep(
    gains: tuple[float, ...] = GAINS,
    lrs: tuple[float, ...] = LRS,
    seeds: int = 5,
    iterations: int = 1500,
    hidden: int = 64,
    batch: int = 32,
    dt: float = 20.0,
    tau: float = 100.0,
    eval_trials: int = 1000,
    mask: str = "decision",
    full_grid: bool = False,
    workers: int = 1,
    cache: Path = Path("runs/eprop_gain/cache"),
    rules: tuple[str, ...] = ("eprop", "bptt"),
    device: Any = None,
    progress: bool = True,
    bptt_iterations: int | None = None,
    lyapunov: bool = False,
) -> dict:
    """Liu et al.'s sweep; returns {rule: {gain: {"lr", "runs": [...]}}} plus the learning-rate table.
    ``bptt_iterations``: BPTT's own budget (None: ``iterations``); ``lyapunov``: record every run's maximum
    Lyapunov exponent before and after training (Fig. 3)."""
    cfg = {"iterations": iterations, "hidden": hidden, "batch": batch, "dt": dt, "tau": tau,
           "eval_trials": eval_trials, "mask": mask}  # fmt: skip
    if lyapunov:
        cfg["lyapunov"] = True
    cfgs = {r: {**cfg, "iterations": bptt_iterations if r == "bptt" and bptt_iterations else iterations}
            for r in rules}  # fmt: skip
    select_seeds = list(range(seeds)) if full_grid else [0]
    jobs = [(r, g, lr, s) for r in rules for g in gains for lr in lrs for s in select_seeds]
    first = _pool_map(jobs, cache, cfgs, workers, "eprop-gain: learning rates", device, progress)
    choice: dict[str, dict[float, dict]] = {r: {} for r in rules}
    lr_table = []
    for r in rules:
        for g in gains:
            scores = {}
            for lr in lrs:
                runs = [d for d in first if d["rule"] == r and d["gain"] == g and d["lr"] == lr]
                scores[lr] = sum(tail_loss(d["loss"]) for d in runs) / len(runs)
            best = min(scores, key=scores.get)
            choice[r][g] = {"lr": best, "lr_scores": scores}
            lr_table.append({"rule": r, "gain": g, **{f"lr={lr:g}": round(v, 4) for lr, v in scores.items()},
                             "best_lr": best})  # fmt: skip
    rest = [(r, g, choice[r][g]["lr"], s) for r in rules for g in gains for s in range(seeds)
            if s not in select_seeds]  # fmt: skip
    second = _pool_map(rest, cache, cfgs, workers, "eprop-gain: seeds", device, progress)
    for r in rules:
        for g in gains:
            lr = choice[r][g]["lr"]
            choice[r][g]["runs"] = sorted((d for d in first + second if d["rule"] == r and d["gain"] == g
                                           and d["lr"] == lr), key=lambda d: d["seed"])  # fmt: skip
    iters = {r: c["iterations"] for r, c in cfgs.items()}
    return {"config": {**cfg, "iterations_per_rule": iters, "gains": list(gains), "lrs": list(lrs), "seeds": seeds,
                       "full_grid": full_grid},
            "choice": choice, "lr_table": lr_table}  # fmt: skip


def gain_summary(sweep: dict, window: int = 50, start: int = 200, loss_threshold: float = 0.1) -> list[dict]:
    """Per rule and gain: best lr; the smoothed training loss at the end and averaged from ``start``
    (mean ± std over seeds); per seed, the first iteration whose smoothed loss is below
    ``loss_threshold`` (None: never); held-out accuracy and how many seeds reach 90%."""
    import numpy as np

    rows = []
    for rule, per_gain in sweep["choice"].items():
        for g, v in per_gain.items():
            c = np.array([smooth(d["loss"], window) for d in v["runs"]])
            after = c[:, start:].mean(1)
            to_threshold = [int(np.argmax(row <= loss_threshold)) + 1 if (row <= loss_threshold).any() else None
                            for row in c]  # fmt: skip
            acc = [d["accuracy"] for d in v["runs"] if d["accuracy"] is not None]
            rows.append({"rule": rule, "gain": g, "lr": v["lr"], "seeds": len(v["runs"]),
                         "final_loss": float(c[:, -1].mean()), "final_loss_std": float(c[:, -1].std()),
                         "mean_loss_after_start": float(after.mean()),
                         "mean_loss_after_start_std": float(after.std()),
                         "loss_threshold": loss_threshold, "iterations_to_threshold": to_threshold,
                         "accuracy": float(np.mean(acc)) if acc else None,
                         "accuracy_per_seed": acc, "seeds_at_90": int(sum(a >= 0.9 for a in acc))})  # fmt: skip
            if all("lyapunov_after" in d for d in v["runs"]):
                rows[-1].update(lyapunov_summary(v["runs"]))
    return rows


def lyapunov_summary(runs: list[dict]) -> dict:
    """Mean, std and per-seed values of the maximum Lyapunov exponent before and after training."""
    import numpy as np

    out = {}
    for when in ("before", "after"):
        lam = np.array([d[f"lyapunov_{when}"] for d in runs], dtype=float)
        out.update({f"lyapunov_{when}": float(lam.mean()), f"lyapunov_{when}_std": float(lam.std()),
                    f"lyapunov_{when}_per_seed": lam.tolist()})  # fmt: skip
    return out


def plot_lyapunov(sweep: dict, out: Path) -> Path:
    """Liu et al.'s Fig. 3: the maximum Lyapunov exponent against the initial gain, before and after
    training, one panel per rule (mean ± std over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cfg = sweep["config"]
    rules = [r for r in ("bptt", "eprop") if r in sweep["choice"]]
    fig, axes = plt.subplots(1, len(rules), figsize=(4.6 * len(rules), 3.7), squeeze=False, sharey=True)
    for ax, rule in zip(axes[0], rules, strict=True):
        gains = sorted(sweep["choice"][rule])
        for when, colour, style in (("before", "0.45", "--"), ("after", "tab:red", "-")):
            lam = np.array([[d[f"lyapunov_{when}"] for d in sweep["choice"][rule][g]["runs"]] for g in gains])
            m, sd = lam.mean(1), lam.std(1)
            label = "before training" if when == "before" else "after training"
            ax.plot(gains, m, style, marker="o", color=colour, label=label)
            ax.fill_between(gains, m - sd, m + sd, color=colour, alpha=0.18, lw=0)
        ax.axhline(0.0, color="k", lw=0.7)
        iters = cfg.get("iterations_per_rule", {}).get(rule, cfg["iterations"])
        ax.set_title(f"{'BPTT' if rule == 'bptt' else 'e-prop (online, symmetric feedback)'}, {iters} iterations",
                     fontsize=9)  # fmt: skip
        ax.set_xlabel("initial gain g  (W_rec ~ N(0, g²/N))")
        ax.legend(fontsize=8, frameon=False)
    axes[0][0].set_ylabel(f"max Lyapunov exponent (per {cfg['dt']:g} ms step)")
    n = len(next(iter(sweep["choice"][rules[0]].values()))["runs"])
    fig.suptitle(f"Romo, {cfg['hidden']} ReLU units: max Lyapunov exponent on {PROBE_TRIALS} fixed trials; "
                 + ("one seed" if n == 1 else f"mean ± std over {n} seeds"), fontsize=9)  # fmt: skip
    fig.tight_layout()
    return atomic_save_figure(fig, out, dpi=130)


def plot_gain_sweep(sweep: dict, out: Path, window: int = 50, start: int = 200) -> Path:
    """Two panels (BPTT, e-prop): seed-mean ± std of the smoothed training loss per initial gain."""

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cfg = sweep["config"]
    rules = [r for r in ("bptt", "eprop") if r in sweep["choice"]]
    fig, axes = plt.subplots(1, len(rules), figsize=(5.2 * len(rules), 3.9), squeeze=False)
    colours = plt.cm.viridis(np.linspace(0.0, 0.9, len(cfg["gains"])))
    for ax, rule in zip(axes[0], rules, strict=True):
        top = 0.0
        for colour, (g, v) in zip(colours, sweep["choice"][rule].items(), strict=True):
            c = np.array([smooth(d["loss"], window) for d in v["runs"]])
            x = np.arange(1, c.shape[1] + 1)[start:]
            m, s = c.mean(0)[start:], c.std(0)[start:]
            solved = sum((d["accuracy"] or 0) >= 0.9 for d in v["runs"])
            ax.plot(x, m, color=colour, label=f"gain {g:g} (lr {v['lr']:g}; {solved}/{len(v['runs'])} ≥ 90%)")
            ax.fill_between(x, np.maximum(m - s, 0.0), m + s, color=colour, alpha=0.15, lw=0)
            top = max(top, float(np.percentile(m + s, 99)))
        ax.axhline(math.log(2.0), color="0.5", lw=0.8, ls=":", label="ln 2: a coin flip between the choices")
        ax.set_ylim(0.0, min(top * 1.05, 1.2))  # early spikes of unstable runs would flatten the rest
        ax.set_title({"bptt": "BPTT", "eprop": "e-prop (symmetric feedback, online)"}[rule])
        ax.set_xlabel("training iteration")
        ax.legend(fontsize=7.5, frameon=False)
    what = "decision period" if cfg.get("mask", "decision") == "decision" else "all steps"
    axes[0][0].set_ylabel(f"training loss (cross-entropy, {what};\n{window}-iteration moving mean)")
    protocol = "lr chosen per gain by the seed mean" if cfg.get("full_grid") else "lr chosen per gain on seed 0"
    fig.suptitle(f"Romo: {cfg['hidden']} ReLU units, tau {cfg['tau']:g} ms, dt {cfg['dt']:g} ms, batch "
                 f"{cfg['batch']}, Adam ({protocol}); " + ("one seed" if cfg["seeds"] == 1 else
                 f"mean ± std over {cfg['seeds']} seeds"), fontsize=9)  # fmt: skip
    fig.tight_layout()
    return atomic_save_figure(fig, out, dpi=130)



class EpropGainConfig(ExperimentConfig):
    """The sweep: gains, learning rates, seeds, iterations per run; network and task settings (dt, tau in ms)."""

    gains: tuple[float, ...] = GAINS
    lrs: tuple[float, ...] = LRS
    seeds: int = 5
    iterations: int = 1500
    hidden: int = 64
    batch: int = 32
    dt: float = 20.0
    tau: float = 100.0
    eval_trials: int = 1000
    mask: str = "decision"
    full_grid: bool = False
    bptt_iterations: int | None = None
    lyapunov: bool = True


def run(cfg: EpropGainConfig = EpropGainConfig(), cache: Path = Path("runs/eprop_gain/cache"), workers: int = 1,
        device: Any = None, progress: bool = True) -> dict:  # fmt: skip
    """The sweep (see ``run_gain_sweep``), each run cached under ``cache``; ``workers`` parallel processes."""
    if cfg.seeds < 1 or cfg.iterations < 1 or workers < 1:
        raise ValueError("seeds, iterations and workers must be positive")
    if min(cfg.iterations, cfg.bptt_iterations or cfg.iterations) <= 200:
        raise ValueError("iterations must exceed 200 (curves are shown from iteration 200, as in Liu et al.)")
    return run_gain_sweep(cfg.gains, cfg.lrs, cfg.seeds, cfg.iterations, cfg.hidden, cfg.batch, cfg.dt, cfg.tau,
                          cfg.eval_trials, cfg.mask, cfg.full_grid, workers, Path(cache), device=device,
                          progress=progress, bptt_iterations=cfg.bptt_iterations, lyapunov=cfg.lyapunov)  # fmt: skip


def plot(sweep: dict, out_dir: Path) -> list[Path]:
    """``out_dir/figures/eprop_gain_romo.png`` (loss curves, Fig. 1) and, when the runs have their Lyapunov
    exponents, ``out_dir/figures/eprop_gain_lyapunov.png`` (Fig. 3)."""
    paths = [plot_gain_sweep(sweep, Path(out_dir) / "figures" / "eprop_gain_romo.png")]
    runs = [d for per_gain in sweep["choice"].values() for v in per_gain.values() for d in v["runs"]]
    if runs and all("lyapunov_after" in d for d in runs):
        paths.append(plot_lyapunov(sweep, Path(out_dir) / "figures" / "eprop_gain_lyapunov.png"))
    return paths


def write(sweep: dict, out_dir: Path) -> tuple[Path, list[dict]]:
    """``out_dir/results/eprop_gain.json`` (config, learning-rate table, summary rows); returns (path, rows)."""
    from ..atomic import atomic_write_json

    rows = gain_summary(sweep)
    path = Path(out_dir) / "results" / "eprop_gain.json"
    atomic_write_json(path, {"config": sweep["config"], "lr_table": sweep["lr_table"], "summary": rows})
    return path, rows
