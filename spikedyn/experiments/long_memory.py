"""Long-memory benchmark of Park et al. (Table S1, Fig. 5C), run with a fair protocol.

Which initialisation lets BPTT learn long delays? Every body has the same number of units N and the same
training budget (steps, batch size), and every body gets **the same hyper-parameter search**, as Park et
al. tuned every model (S2.3, Ray Tune):

1. **Search** (per task and body): ``search_trials`` Optuna TPE trials (seeded; the first half are random
   start-up points) over the Adam learning rate and the gradient-norm clip, both log-uniform over ranges
   fixed before any run (``LR_RANGE``, ``CLIP_RANGE``: inside Park et al.'s 1e-5..1 and 1e-2..1e2). The
   PTA bodies also search their block-gain cap ``alpha_max`` like any other hyper-parameter
   (``PTA_ALPHA_RANGE``: from just past the onset of oscillation of the region map, Park et al. Fig.
   5B, to the edge of the shipped map). A trial is trained from its own seed (``SEARCH_SEED + i``: inits
   and batches disjoint from the reported seeds) and scored by its lowest **validation** cross-entropy
   over the evaluations (early stopping on validation, as S2.3). The test trials are never touched.
2. **Test**: ``seeds`` fresh realisations (seeds 0..seeds-1) at the chosen settings, each scored every
   ``eval_every`` steps on its validation set and on one fixed test set shared by every body and seed.
   Reported: test cross-entropy at the step of the lowest validation loss ("early-stopped") and at the
   last step ("final").

Splits: for the synthetic tasks (copy memory, temporal order, random-delay copy) training, validation and
test trials come from disjoint random streams (training ``[seed, step]``, validation ``train``'s own
``[seed, EVAL_SEED_OFFSET]``, test ``[TEST_SEED_OFFSET]``). For psdigits (the bundled stand-in for
psMNIST) the validation images are a fixed ``validation_fraction`` of the training images
(``HeldOutSplit``), the test images are the task's test split, scored whole.

Bodies (name -> body and recurrent initialisation). Every body starts from PyTorch's defaults (Park et
al. S2): weights and biases U(-1/sqrt(N), 1/sqrt(N)), including the tanh RNN's input weights (RateRNN's
own N(0, 1/I) input weights are ~7x larger at N = 128 and I = 8). Only W_rec differs between variants:

| name | body | W_rec |
| --- | --- | --- |
| ``tanh`` | RateRNN, alpha = 1, tanh (vanilla RNN) | PyTorch default U(-1/sqrt(N), 1/sqrt(N)) ("def.") |
| ``tanh-pta`` | same | PTA, discrete regime (Eq. 19, 21) |
| ``tanh-orth`` | same | Haar orthogonal ("W^T W = I") |
| ``gru`` | GRURNN | PyTorch default |
| ``gru-pta`` | GRURNN | PTA on the candidate weights (see ``spikedyn.init.pta``) |
| ``lstm`` | LSTMRNN | PyTorch default |

Layout of ``out_dir/<task>``: ``protocol.json`` (the settings; a second run with other settings is
refused), ``search/<body>/trial<i>/`` (run directory + ``point.json``), ``search/<body>/best.json``,
``final/<body>/seed<k>/``, ``summary.json``. Every run directory resumes (``spikedyn.train``), and the
search replays its finished trials, so an interrupted benchmark continues where it stopped and the same
settings give the same result.
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
TASKS = ("copy_memory", "temporal_order", "random_delay_copy", "psdigits")
DATASET_TASKS = ("psdigits",)
TEST_SEED_OFFSET = 2_000_003  # the test trials come from a stream neither training nor validation uses
SEARCH_SEED = 1000  # search trial i is trained from seed SEARCH_SEED + i (the reported seeds are 0..seeds-1)
# search ranges (log-uniform), fixed before any benchmark run: inside Park et al.'s S2.3 ranges
LR_RANGE = (1e-4, 3e-2)
CLIP_RANGE = (0.1, 10.0)
# PTA's block-gain cap alpha_max (blocks are drawn uniformly from the zero-exponent region with alpha <=
# alpha_max): from just past the onset of oscillation (discrete alpha > 1, GRU alpha > 2; Park et al.
# Fig. 5B) to the edge of the shipped region map (spikedyn.analysis.pta_map.DEFAULTS)
PTA_ALPHA_RANGE = {"tanh-pta": (1.1, 3.0), "gru-pta": (2.2, 8.0)}
CHANCE = {"copy_memory": math.log(8), "random_delay_copy": math.log(8), "temporal_order": math.log(4),
          "psdigits": math.log(10)}  # fmt: skip


def build_benchmark_model(name: str, n_in: int, n_out: int, hidden: int, seed: int,
                          alpha_max: float | None = None) -> torch.nn.Module:  # fmt: skip
    """One of ``MODELS``, seeded (torch's global RNG for the body's default init, ``seed`` for ours);
    ``alpha_max`` bounds PTA's block gains (None: ``spikedyn.init.DEFAULT_ALPHA_MAX``)."""
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
        if name == "tanh-pta":
            return pta(model, seed=seed, alpha_max=alpha_max)
        {"tanh": torch_default, "tanh-orth": orthogonal}[name](model, seed=seed)
        return model
    if name.startswith("gru"):
        model = GRURNN(n_in, hidden, n_out)
        return pta(model, seed=seed, alpha_max=alpha_max) if name == "gru-pta" else model
    return LSTMRNN(n_in, hidden, n_out)


class HeldOutSplit:
    """A dataset task (psdigits, psmnist) whose training images are split once into a fit part and a
    validation part: ``sample(split="train")`` draws from the fit part, ``sample(split="test")`` (what
    ``spikedyn.train`` scores and early-stops on) from the validation part; ``test_batch()`` is the base
    task's own test split, whole. Scores and loss are the base task's."""

    def __init__(self, base: Any, fraction: float = 0.2, seed: int = 0) -> None:
        if not 0 < fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {fraction}")
        self.base = base
        self.name, self.loss, self.dt = base.name, base.loss, base.dt
        self.n_inputs, self.n_outputs = base.n_inputs, base.n_outputs
        self._all = base.dataset("train")
        n = self._all.inputs.shape[1]
        order = np.random.default_rng([seed, 0xA11D]).permutation(n)
        n_val = int(round(fraction * n))
        self.val_index, self.fit_index = np.sort(order[:n_val]), np.sort(order[n_val:])
        self.fraction, self.seed = float(fraction), int(seed)

    def config(self) -> dict[str, Any]:
        return self.base.config()  # the task itself; the split is recorded in protocol.json

    def _subset(self, index: np.ndarray) -> Any:
        from spikedyn.tasks.base import make_batch

        b = self._all
        return make_batch(b.inputs[:, index], b.targets[:, index], b.mask[:, index],
                          **{k: v[index] for k, v in b.meta.items()})  # fmt: skip

    def sample(self, batch_size: int, rng: Any = None, split: str = "train") -> Any:
        from spikedyn.tasks.base import as_rng, check_choice, check_int

        batch_size = check_int(batch_size, "batch_size", 1)
        pool = self.fit_index if check_choice(split, "split", ("train", "test")) == "train" else self.val_index
        pick = as_rng(rng).choice(len(pool), size=batch_size, replace=batch_size > len(pool))
        return self._subset(pool[pick])

    def score(self, outputs: np.ndarray, batch: Any) -> dict[str, float]:
        return self.base.score(outputs, batch)

    def test_batch(self) -> Any:
        return self.base.dataset("test")


class BenchmarkConfig(ExperimentConfig):
    """Task (and copy delay k in steps), bodies, units N, seeds, the training budget shared by all, and
    the search (``search_trials = 0``: no search, every body trains with ``lr`` and ``clip``)."""

    task: str = "copy_memory"
    delay: int = 100
    models: tuple[str, ...] = MODELS
    hidden: int = 64
    seeds: int = 5
    steps: int = 600
    batch_size: int = 32
    search_trials: int = 6
    search_steps: int | None = None  # steps of a search trial (None: ``steps``)
    search_seed: int = 0  # the Optuna sampler's seed (the same for every body)
    lr: float = 1e-3  # only without a search
    clip: float = 1.0  # only without a search
    eval_every: int = 50
    eval_trials: int = 300  # validation trials per evaluation (psdigits: at most the validation images)
    test_trials: int = 1000  # synthetic tasks; psdigits scores its whole test split
    validation_fraction: float = 0.2  # psdigits: share of the training images held out for validation

    def task_params(self) -> dict[str, Any]:
        if self.task == "copy_memory":
            return {"delay": self.delay}
        if self.task == "random_delay_copy":
            return {"delay_min": self.delay, "delay_max": self.delay + 20}
        return {}

    @property
    def trial_steps(self) -> int:
        return self.steps if self.search_steps is None else self.search_steps


def build_protocol_task(cfg: BenchmarkConfig) -> Any:
    """The task of ``cfg`` (a dataset task wrapped in ``HeldOutSplit``)."""
    from .build import build_task

    task = build_task(cfg.task, cfg.task_params())
    return HeldOutSplit(task, cfg.validation_fraction) if cfg.task in DATASET_TASKS else task


def test_batch(task: Any, cfg: BenchmarkConfig) -> Any:
    """The one test set of a benchmark (the same for every body and seed)."""
    if isinstance(task, HeldOutSplit):
        return task.test_batch()
    return task.sample(cfg.test_trials, np.random.default_rng([TEST_SEED_OFFSET]), split="test")


def search_space(name: str) -> dict[str, tuple[float, float, bool]]:
    """The Optuna space of body ``name`` as ``{key: (low, high, log)}``: lr and clip (log-uniform), plus
    alpha_max for the PTA bodies. (Plain tuples: the experiments layer does not import spikedyn.sweeps,
    which builds on it.)"""
    space = {"lr": (LR_RANGE[0], LR_RANGE[1], True), "clip": (CLIP_RANGE[0], CLIP_RANGE[1], True)}
    if name in PTA_ALPHA_RANGE:
        lo, hi = PTA_ALPHA_RANGE[name]
        space["alpha_max"] = (lo, hi, False)
    return space


def _eval_trials(task: Any, cfg: BenchmarkConfig) -> int:
    return min(cfg.eval_trials, len(task.val_index)) if isinstance(task, HeldOutSplit) else cfg.eval_trials


def train_body(task: Any, name: str, params: dict[str, float], seed: int, steps: int, run_dir: Path,
               cfg: BenchmarkConfig, test: Any = None, progress: bool = False,
               device: Any = None) -> dict[str, Any]:  # fmt: skip
    """Train body ``name`` with ``params`` (lr, clip, optional alpha_max) from ``seed`` into ``run_dir``
    (resuming); with ``test`` (a batch) every evaluation also scores it. Returns ``read_curves``, or
    ``{"error": ...}`` if training diverged (recorded in ``failed.json``, not retried)."""
    from ..atomic import atomic_write_json
    from ..learning import evaluate, train
    from ..learning.rules import TrainingDiverged

    failed = run_dir / "failed.json"
    if failed.exists():
        return json.loads(failed.read_text())
    model = build_benchmark_model(name, task.n_inputs, task.n_outputs, cfg.hidden, seed,
                                  alpha_max=params.get("alpha_max"))  # fmt: skip

    def add_test_scores(step: int, record: dict) -> None:
        # train() scores its own held-out set ("eval_loss": validation); the test set is separate
        if test is not None and "eval_loss" in record:
            scores = evaluate(model, task, test)
            record["test_ce"], record["test_accuracy"] = scores["eval_loss"], scores["accuracy"]

    try:
        train(model, task, steps=steps, batch_size=cfg.batch_size, lr=params["lr"], clip=params["clip"], seed=seed,
              run_dir=run_dir, eval_every=cfg.eval_every, eval_trials=_eval_trials(task, cfg), progress=progress,
              callback=add_test_scores, device=device)  # fmt: skip
    except TrainingDiverged as e:
        record = {"error": str(e).splitlines()[0]}
        atomic_write_json(failed, record)
        return record
    return read_curves(run_dir)


def search(task: Any, name: str, cfg: BenchmarkConfig, root: Path, progress: bool = True,
           log: Callable[[str], None] = print, device: Any = None) -> dict[str, Any]:  # fmt: skip
    """The hyper-parameter search of body ``name`` (module doc, step 1); returns and writes ``best.json``:
    ``{"params", "score", "trial", "trials": [{"params", "score" | "error"}]}``. Only validation scores
    are read. Finished trials are replayed (not retrained), so an interrupted search resumes."""
    import optuna

    from ..atomic import atomic_write_json
    from ..learning.checkpoint import RunError

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=cfg.search_seed, n_startup_trials=max(1, cfg.search_trials // 2))
    study = optuna.create_study(direction="minimize", sampler=sampler)
    space, trials = search_space(name), []
    for i in range(cfg.search_trials):
        asked = study.ask()
        point = {key: asked.suggest_float(key, lo, hi, log=log) for key, (lo, hi, log) in space.items()}
        run_dir = root / "search" / name / f"trial{i}"
        saved = run_dir / "point.json"
        if saved.exists() and json.loads(saved.read_text()) != point:
            raise RunError(f"{run_dir} was trained at {saved.read_text()} but the search now asks {point}; "
                           "use another --out for other search settings")  # fmt: skip
        atomic_write_json(saved, point)
        t0 = time.perf_counter()
        curves = train_body(task, name, point, SEARCH_SEED + i, cfg.trial_steps, run_dir, cfg, progress=progress,
                            device=device)  # fmt: skip
        if "error" in curves:
            study.tell(asked, state=optuna.trial.TrialState.FAIL)
            trials.append({"params": point, "error": curves["error"]})
            log(f"{cfg.task} {name} search {i}: {_point_text(point)} diverged")
            continue
        score = float(np.nanmin(curves["eval_loss"]))
        study.tell(asked, score)
        trials.append({"params": point, "score": score})
        log(f"{cfg.task} {name} search {i}: {_point_text(point)} -> validation CE {score:.4g} "
            f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
    scored = [(t["score"], i) for i, t in enumerate(trials) if "score" in t]
    if not scored:
        raise RuntimeError(f"every search trial of {name} on {cfg.task} diverged; see {root / 'search' / name}")
    score, best = min(scored)
    result = {"params": trials[best]["params"], "score": score, "trial": best, "trials": trials}
    atomic_write_json(root / "search" / name / "best.json", result)
    return result


def _point_text(point: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3g}" for k, v in point.items())


def _check_protocol(root: Path, cfg: BenchmarkConfig) -> None:
    """Refuse an out directory that holds a benchmark with other settings (the models list may grow)."""
    from ..atomic import atomic_write_json
    from ..learning.checkpoint import RunError

    path = root / "protocol.json"
    mine = json.loads(json.dumps({k: v for k, v in cfg.model_dump().items() if k != "models"}))
    if path.exists():
        theirs = {k: v for k, v in json.loads(path.read_text()).items() if k != "models"}
        if theirs != mine:
            diff = sorted(k for k in {*theirs, *mine} if theirs.get(k) != mine.get(k))
            raise RunError(f"{root} holds a benchmark run with other settings ({', '.join(diff)}); "
                           "use another --out, or the same settings to resume it")  # fmt: skip
    atomic_write_json(path, cfg.model_dump())


def run(cfg: BenchmarkConfig, out_dir: Path, progress: bool = True, log: Callable[[str], None] = print,
        device: Any = None) -> dict[str, Any]:  # fmt: skip
    """Search (unless ``search_trials == 0``) and train every body's seeds, body by body in the order
    given (an interrupted benchmark has the first bodies complete), resuming whatever ``out_dir/<task>``
    already holds; returns the summary (also ``summary.json``)."""
    from ..atomic import atomic_write_json
    from ..device import resolve_device

    if cfg.task not in TASKS:
        raise ValueError(f"unknown memory task {cfg.task!r}; choose from {', '.join(TASKS)}")
    for name in cfg.models:
        if name not in MODELS:
            raise ValueError(f"unknown benchmark model {name!r}; choose from {', '.join(MODELS)}")
    dev = resolve_device(device)
    task = build_protocol_task(cfg)
    root = Path(out_dir) / cfg.task
    _check_protocol(root, cfg)
    test = test_batch(task, cfg)
    for name in cfg.models:
        if cfg.search_trials:
            params = search(task, name, cfg, root, progress=progress, log=log, device=dev)["params"]
        else:
            params = {"lr": cfg.lr, "clip": cfg.clip}
        for seed in range(cfg.seeds):
            run_dir = root / "final" / name / f"seed{seed}"
            if (run_dir / "summary.json").exists() or (run_dir / "failed.json").exists():
                continue
            t0 = time.perf_counter()
            curves = train_body(task, name, params, seed, cfg.steps, run_dir, cfg, test=test, progress=progress,
                                device=dev)  # fmt: skip
            if "error" in curves:
                log(f"{cfg.task} {name} seed {seed}: diverged ({curves['error']})")
                continue
            r = final_scores(curves)
            log(f"{cfg.task} {name} seed {seed}: test CE {r['ce_early']:.4g} early-stopped ({r['ce_final']:.4g} "
                f"final), accuracy {r['acc_early']:.3f} ({time.perf_counter() - t0:.0f} s)")  # fmt: skip
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


def _final_dirs(root: Path, name: str, cfg: BenchmarkConfig) -> list[Path]:
    return [d for s in range(cfg.seeds) if ((d := root / "final" / name / f"seed{s}") / "summary.json").exists()]


def summarize(root: Path, cfg: BenchmarkConfig) -> dict[str, Any]:
    """Test cross-entropy / accuracy per body over the finished seeds (final and early-stopped), the
    chosen settings and the search's validation scores."""
    out: dict[str, Any] = {"task": cfg.task, "config": cfg.model_dump(), "chance_ce": CHANCE[cfg.task],
                           "models": {}}  # fmt: skip
    for name in cfg.models:
        rows = [final_scores(read_curves(d)) for d in _final_dirs(root, name, cfg)]
        if not rows:
            continue
        entry: dict[str, Any] = {"seeds": len(rows),
                                 "diverged": sum((root / "final" / name / f"seed{s}" / "failed.json").exists()
                                                 for s in range(cfg.seeds))}  # fmt: skip
        best = root / "search" / name / "best.json"
        if cfg.search_trials and best.exists():
            b = json.loads(best.read_text())
            entry["params"], entry["search"] = b["params"], {"best_validation_ce": b["score"], "trials": b["trials"]}
        else:
            entry["params"] = {"lr": cfg.lr, "clip": cfg.clip}
        for key in ("ce_final", "acc_final", "ce_early", "acc_early", "early_step"):
            v = np.array([r[key] for r in rows])
            entry[f"{key}_mean"], entry[f"{key}_std"] = float(v.mean()), float(v.std())
            entry[f"{key}_per_seed"] = v.tolist()
        out["models"][name] = entry
    out["ratios"] = ratios(out)
    return out


RATIO_PAIRS = (("tanh", "tanh-pta"), ("gru", "gru-pta"), ("lstm", "tanh-pta"), ("lstm", "gru-pta"))


def ratios(summary: dict[str, Any]) -> dict[str, float]:
    """Early-stopped mean test CE of a baseline over a PTA body (``"tanh/tanh-pta"``), where both ran."""
    m = summary["models"]
    return {f"{a}/{b}": m[a]["ce_early_mean"] / m[b]["ce_early_mean"]
            for a, b in RATIO_PAIRS if a in m and b in m and m[b]["ce_early_mean"] > 0}  # fmt: skip


def budget_text(cfg: BenchmarkConfig) -> str:
    """The budget of one benchmark, in words (what every ratio is conditional on)."""
    search = (f"search {cfg.search_trials} trials x {cfg.trial_steps} steps per body"
              if cfg.search_trials else f"no search (lr {cfg.lr:g}, clip {cfg.clip:g})")  # fmt: skip
    return (f"N = {cfg.hidden}, {cfg.seeds} seeds x {cfg.steps} steps of {cfg.batch_size} trials "
            f"({cfg.steps * cfg.batch_size:,} training trials per run), {search}")


def _label(s: dict[str, Any]) -> str:
    return s["task"] + (f" k = {s['config']['delay']}" if s["task"] == "copy_memory" else "")


def table_markdown(summaries: list[dict[str, Any]]) -> str:
    """Table S1's shape: rows per task (early-stopped and final), one column per body; test cross-entropy
    in nats, mean ± std over seeds (mean test accuracy and the number of seeds in brackets)."""
    models = [m for m in MODELS if any(m in s["models"] for s in summaries)]
    head = "| task | " + " | ".join(models) + " |\n|---|" + "---|" * len(models) + "\n"
    rows = []
    for s in summaries:
        for kind, title in (("early", "early-stopped"), ("final", "final")):
            cells = []
            for m in models:
                r = s["models"].get(m)
                cells.append("-" if r is None else f"{_fmt(r[f'ce_{kind}_mean'])} ± {_fmt(r[f'ce_{kind}_std'])} "
                             f"({r[f'acc_{kind}_mean']:.2f}; n={r['seeds']})")  # fmt: skip
            rows.append(f"| {_label(s)}, {title} ↓ | " + " | ".join(cells) + " |")
    return head + "\n".join(rows) + "\n"


def settings_markdown(summaries: list[dict[str, Any]]) -> str:
    """The chosen settings per task and body (lr, clip, alpha_max) and the best validation CE."""
    models = [m for m in MODELS if any(m in s["models"] for s in summaries)]
    head = "| task | " + " | ".join(models) + " |\n|---|" + "---|" * len(models) + "\n"
    rows = []
    for s in summaries:
        cells = []
        for m in models:
            r = s["models"].get(m)
            if r is None:
                cells.append("-")
                continue
            text = _point_text(r["params"]).replace("alpha_max", "α ≤")
            if "search" in r:
                text += f"; val {_fmt(r['search']['best_validation_ce'])}"
            cells.append(text)
        rows.append(f"| {_label(s)} | " + " | ".join(cells) + " |")
    return head + "\n".join(rows) + "\n"


def _fmt(x: float) -> str:
    return f"{x:.3g}" if abs(x) >= 1e-2 or x == 0 else f"{x:.2e}"


def plot_curves(root: Path, cfg: BenchmarkConfig, path: Path) -> Path:
    """Test cross-entropy (log scale) vs training step at the chosen settings, geometric mean over seeds,
    min-max shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    colors = dict(zip(MODELS, ("tab:gray", "tab:red", "tab:orange", "tab:blue", "tab:purple", "tab:green")))
    for name in cfg.models:
        curves = [read_curves(d) for d in _final_dirs(root, name, cfg)]
        if not curves:
            continue
        n = min(len(c["step"]) for c in curves)
        steps = curves[0]["step"][:n]
        ce = np.clip(np.stack([c["test_ce"][:n] for c in curves]), 1e-12, None)
        ax.plot(steps, np.exp(np.log(ce).mean(0)), color=colors[name], label=f"{name} ({len(curves)} seeds)")
        ax.fill_between(steps, ce.min(0), ce.max(0), color=colors[name], alpha=0.15, lw=0)
    ax.axhline(CHANCE[cfg.task], color="k", ls=":", lw=1, label=f"chance ({CHANCE[cfg.task]:.3g})")
    ax.set_yscale("log")
    ax.set_xlabel(f"training step (batch {cfg.batch_size})")
    ax.set_ylabel("test cross-entropy (nats)")
    title = cfg.task + (f", delay {cfg.delay}" if cfg.task == "copy_memory" else "")
    tuned = f"tuned on validation ({cfg.search_trials} trials)" if cfg.search_trials else f"lr {cfg.lr:g}"
    ax.set_title(f"{title}: N = {cfg.hidden}, BPTT, {tuned}", fontsize=9)
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
    """``out_dir/table.md`` (Table S1's shape, the chosen settings and the budget) and
    ``out_dir/results.json`` (every task's summary); returns (table path, table text)."""
    from ..atomic import atomic_write_bytes, atomic_write_json

    budgets = sorted({budget_text(BenchmarkConfig.model_validate(s["config"], strict=False)) for s in summaries})
    table = (table_markdown(summaries) + "\nChosen settings (validation CE of the best search trial):\n\n"
             + settings_markdown(summaries) + "\nBudget: " + "; ".join(budgets) + "\n")  # fmt: skip
    path = Path(out_dir) / "table.md"
    atomic_write_bytes(path, table.encode())
    atomic_write_json(Path(out_dir) / "results.json", {"budget": budgets, "tasks": summaries})
    return path, table


def included_summaries(path: Path, tasks: list[str]) -> list[dict[str, Any]]:
    """The task summaries of an earlier benchmark's ``results.json`` (``write_table``'s), to report them in
    one table beside this run's ``tasks``; each is marked ``included_from`` (the file: not rerun here). A
    task that this run also has is refused (one table, one result per task)."""
    try:
        data = json.loads(Path(path).read_text())
        earlier = list(data["tasks"])
        names = [s["task"] for s in earlier]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is not a results.json of `spikedyn bench memory` ({type(e).__name__}: {e})") from e
    both = sorted(set(names) & set(tasks))
    if both:
        raise ValueError(f"{path} already has {', '.join(both)}; include a file without the tasks this run has")
    return [{**s, "included_from": str(path)} for s in earlier]


def result_lines(summaries: list[dict[str, Any]]) -> dict[str, str]:
    """One line per (task, body): test cross-entropy early-stopped and final, mean ± std over seeds;
    and one per ratio."""
    lines = {f"{s['task']}/{m}": (f"CE {r['ce_early_mean']:.4g} ± {r['ce_early_std']:.2g} early-stopped, "
                                  f"{r['ce_final_mean']:.4g} ± {r['ce_final_std']:.2g} final ({r['seeds']} seeds)")
             for s in summaries for m, r in s["models"].items()}  # fmt: skip
    for s in summaries:
        for pair, value in s.get("ratios", {}).items():
            lines[f"{s['task']}/ratio {pair}"] = f"{value:.3g}"
    return lines
