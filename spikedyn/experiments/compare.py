"""``spikedyn.compare``: one table for any set of trained bodies on the same held-out trials.

    table = spikedyn.compare({"rate": rate, "mirror": spikedyn.mirror(rate), "eprop LIF": lif}, task,
                             n_trials=200, lava="float")
    print(table); table.to_json("cmp.json"); table.to_csv("cmp.csv"); table.plot("cmp.png")

Every body sees the same ``n_trials`` trials, drawn from the held-out stream of ``seed`` (what
``spikedyn.train(..., seed=seed)`` evaluates on). Per body: accuracy and loss (``spikedyn.learning.evaluate``),
the top Lyapunov exponents per second of task time (one input step = ``task.dt``; ``lyapunov_spectrum`` on the
first ``lyapunov_trials`` trials), the
fixed points at zero input and the integrator type they imply (``fixed_points``; see
``spikedyn.analysis.compare``), for spiking bodies the mean firing rate and the synaptic operations per
trial, and SVCCA / linear CKA to every other body (``activity``: rates, or the readout's r̄ for spikes).
With ``lava="float"|"fixed"|"auto"`` every spiking body is also deployed on Lava's simulator
(``spikedyn.deploy``), run on the same trials, and gets a row of its own: accuracy, loss, rate, SynOps and
its agreement with torch (spikes equal to the torch body of the same precision; choices equal to the
trained float32 body's).

The table itself (``ComparisonTable``) and the per-body measurements live in ``spikedyn.analysis.compare``;
this layer adds what needs ``spikedyn.learning`` (held-out scores) and ``spikedyn.export`` (Lava), and
``load_bodies`` / ``run`` for ``spikedyn compare RUN_DIR...``.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis.compare import (
    ComparisonTable,
    body_dynamics,
    filtered_rates,
    pca_project,
    similarity_matrices,
    spike_statistics,
)

LAVA_PRECISIONS = ("float", "fixed", "auto")
VIEW_TRIALS = 8  # trials drawn per body in the PCA panels


def _as_bodies(bodies: Mapping[str, Any] | Sequence[Any]) -> dict[str, Any]:
    import torch

    if isinstance(bodies, Mapping):
        named = {str(k): v for k, v in bodies.items()}
    else:
        named = {}
        for i, m in enumerate(bodies):
            named[f"{i}:{getattr(m, 'kind', type(m).__name__)}"] = m
    if not named:
        raise ValueError("compare needs at least one body")
    for label, m in named.items():
        if not isinstance(m, torch.nn.Module) or not hasattr(m, "n_hidden"):
            raise TypeError(f"body {label!r} is a {type(m).__name__}, not a spikedyn model")
        if getattr(m, "kind", None) == "population":
            raise ValueError(f"body {label!r} is a Population; pass its members (pop.members()) as bodies")
    return named


class NotDeployable(ValueError):
    """A spiking body that the NIR/Lava path cannot express (e.g. a non-leaky current-based neuron)."""


def _lava_precision(model: Any, label: str, lava: str) -> tuple[str, str | None]:
    from ..export.nir import spec_from_model

    spec = spec_from_model(model)
    if lava == "float" or spec.lava_lif_compatible():
        return ("fixed" if lava != "float" else "float"), None
    if lava == "fixed":
        raise ValueError(f"body {label!r} cannot run on Lava's fixed-point LIF ({spec.lava_lif_reason()}); "
                         "use lava='float' or 'auto' (--lava float|auto)")  # fmt: skip
    return "float", f"Lava float: the fixed-point LIF has no {spec.lava_lif_reason()}"


def _decision(y: np.ndarray, task: Any) -> np.ndarray:
    """The choice of each trial: the sign of the mean output over the response window (decision tasks),
    else the arg-max class at the last step."""
    n = int(getattr(task, "n_response", 1))
    tail = np.asarray(y, dtype=np.float64)[-n:].mean(axis=0)
    return np.sign(tail[:, 0]) if tail.shape[-1] == 1 else tail.argmax(axis=-1)


def compare(
    bodies: Mapping[str, Any] | Sequence[Any],
    task: Any,
    *,
    n_trials: int = 200,
    seed: int = 0,
    lava: str | None = None,
    lyapunov_k: int = 3,
    lyapunov_trials: int = 8,
    n_inits: int = 128,
    lava_python: str | None = None,
    rules: Mapping[str, str] | None = None,
    progress: bool = True,
) -> ComparisonTable:
    """Compare trained ``bodies`` (a dict label -> model, or a list) on ``n_trials`` held-out trials of
    ``task`` (see the module doc).

    Args:
        bodies: spikedyn models (RateRNN, GRURNN, LSTMRNN, SpikingRNN, Loihi2RNN) taking ``task``'s inputs.
        n_trials: held-out trials every body runs (accuracy, loss, activity, firing rates, Lava).
        seed: picks the held-out trials (``spikedyn.train``'s evaluation stream of that seed) and seeds the
            analyses (model noise, Lyapunov tangent vectors, fixed-point initial states).
        lava: None (no Lava), "float", "fixed" (Loihi 2 fixed point; every spiking body must allow it) or
            "auto" (fixed where the body allows it, else float, with a note).
        lyapunov_k: exponents per body (per second); lyapunov_trials: trials they are averaged over.
        n_inits: initial states of the fixed-point search at zero input.
        lava_python: the Lava interpreter (default: found as ``spikedyn.deploy`` finds it).
        rules: optional label -> learning-rule name, shown in the rows.
    """
    import torch

    from ..analysis.similarity import activity
    from ..learning.train import EVAL_SEED_OFFSET, evaluate
    from ..progress import track

    named = _as_bodies(bodies)
    if int(n_trials) != n_trials or n_trials < 2:
        raise ValueError(f"n_trials must be an integer >= 2, got {n_trials!r}")
    if lava is not None and lava not in LAVA_PRECISIONS:
        raise ValueError(f"lava must be None or one of {list(LAVA_PRECISIONS)}, got {lava!r}")
    for label, m in named.items():
        if (m.n_in, m.n_out) != (task.n_inputs, task.n_outputs):
            raise ValueError(f"body {label!r} takes {m.n_in} inputs and gives {m.n_out} outputs; task "
                             f"{task.name} has {task.n_inputs} and {task.n_outputs}")  # fmt: skip
    batch = task.sample(int(n_trials), np.random.default_rng([seed, EVAL_SEED_OFFSET]), split="test")
    u64 = torch.as_tensor(batch.inputs, dtype=torch.float64)
    lyap_u = u64[:, : max(1, min(int(lyapunov_trials), int(n_trials)))]
    view = slice(0, min(VIEW_TRIALS, int(n_trials)))
    choice = np.asarray(batch.meta.get("choice", np.ones(int(n_trials))))[view]
    rows, activities, views, trained_y = [], {}, {}, {}
    jobs = [(label, m) for label, m in named.items()]
    for label, model in track(jobs, "compare", unit="body", enabled=progress):
        model = copy.deepcopy(model).cpu().eval()  # the caller's model is left as it is
        scores = evaluate(model, task, batch, seed=seed)
        row: dict[str, Any] = {"body": label, "kind": model.kind, "rule": (rules or {}).get(label),
                               "n_hidden": int(model.n_hidden), "accuracy": scores.get("accuracy"),
                               "loss": scores["eval_loss"]}  # fmt: skip
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            trained_y[label] = model(torch.as_tensor(batch.inputs, dtype=model.dtype)).y.double().numpy()
        step_ms = float(task.dt)  # one input step is one task step, whatever dt the body was built with
        if abs(float(getattr(model, "dt", step_ms)) - step_ms) > 1e-9 * step_ms:
            row["note"] = (f"the body's dt is {float(model.dt):g} ms, the task's {step_ms:g} ms: rates and "
                           "exponents are per second of task time")  # fmt: skip
        dyn = body_dynamics(model, lyap_u, k=lyapunov_k, n_inits=n_inits, seed=seed, step_ms=step_ms)
        row.update({k: dyn[k] for k in ("lyapunov", "fixed_points", "stable_fixed_points", "integrator")})
        if model.kind == "spiking":
            spikes = model.spike_trains(torch.as_tensor(batch.inputs, dtype=model.dtype))
            row.update(spike_statistics(spikes, model.W_rec_eff, step_ms / model.substeps))
        with torch.random.fork_rng(devices=[]):  # a rate body's random initial state: same seed, same activity
            torch.manual_seed(seed)
            act = activity(model, torch.as_tensor(batch.inputs, dtype=model.dtype))
        activities[label] = act
        T, N = batch.inputs.shape[0], act.shape[-1]
        traj, pts = pca_project(act.reshape(T, -1, N)[:, view], dyn["points"])
        views[label] = {"trajectories": traj, "choice": choice, "fixed_points": pts, "stable": dyn["stable"]}
        rows.append(row)
        if lava is not None and model.kind == "spiking":
            try:
                lava_row, lava_act = _lava_row(model, label, task, batch, lava, lava_python, trained_y[label],
                                               progress)  # fmt: skip
            except NotDeployable as e:
                row["note"] = "; ".join(filter(None, [row.get("note"), f"no Lava run: {e}"]))
                continue
            rows.append(lava_row)
            activities[lava_row["body"]] = lava_act
            traj, = pca_project(lava_act.reshape(T, -1, N)[:, view])
            views[lava_row["body"]] = {"trajectories": traj, "choice": choice}
    labels = [r["body"] for r in rows]
    meta = {"task": task.config() if hasattr(task, "config") else task.name, "task_name": task.name,
            "n_trials": int(n_trials), "seed": int(seed), "lava": lava, "lyapunov_unit": "1/s",
            "lyapunov_trials": int(lyap_u.shape[1]), "n_inits": int(n_inits),
            "activity": "rates f(x); spiking bodies and Lava: the readout's filtered spikes r̄",
            "synops": "spikes x recurrent fan-out (non-zero W_rec entries), per trial"}  # fmt: skip
    return ComparisonTable(rows=rows, labels=labels, similarity=similarity_matrices(activities), views=views,
                           meta=meta)


def _lava_row(model: Any, label: str, task: Any, batch: Any, lava: str, lava_python: str | None,
              y_trained: np.ndarray, progress: bool) -> tuple[dict[str, Any], np.ndarray]:
    from ..export.deploy import deploy, spike_agreement, torch_reference
    from ..learning.losses import task_loss

    precision, note = _lava_precision(model, label, lava)
    try:
        dep = deploy(model, backend="lava-sim", precision=precision, lava_python=lava_python)
    except ValueError as e:  # the network has no NIR / Lava form; the other bodies still run
        raise NotDeployable(str(e).splitlines()[0]) from None
    out = dep.run(batch.inputs, progress=progress)
    spikes_t, _, _ = torch_reference(model, batch.inputs, precision)
    agree = spike_agreement(spikes_t, out.spikes)
    import torch

    y = np.asarray(out.y, dtype=np.float64)
    loss = float(task_loss(torch.as_tensor(y), torch.as_tensor(batch.targets, dtype=torch.float64),
                           torch.as_tensor(batch.mask, dtype=torch.float64), task.loss))  # fmt: skip
    row: dict[str, Any] = {"body": f"{label} @ lava-sim {precision}", "kind": "lava", "rule": None,
                           "n_hidden": int(model.n_hidden),
                           "accuracy": task.score(y.astype(np.float32), batch).get("accuracy"), "loss": loss,
                           **spike_statistics(out.spikes, dep.spec.W_rec, float(task.dt) / model.substeps),
                           "lava_spike_agreement": agree["spike_agreement"],
                           "lava_trials_identical": agree["trials_identical"],
                           "lava_first_mismatch_step": agree["first_mismatch_step"],
                           "lava_decision_agreement": float(np.mean(_decision(y, task) == _decision(y_trained, task))),
                           "lava_seconds": float(out.seconds), "note": note}  # fmt: skip
    act = filtered_rates(out.spikes, dep.spec.kappa, dep.spec.substeps)
    return row, act.reshape(-1, act.shape[-1])


# -- run directories (spikedyn compare RUN_DIR...) --------------------------------------------------------
def _label(run_dir: Path, taken: set[str]) -> str:
    base = run_dir.name or str(run_dir)
    label, i = base, 2
    while label in taken:
        label, i = f"{base}#{i}", i + 1
    return label


def load_bodies(run_dirs: Sequence[str | Path], mirror: bool = False, mirror_substeps: int = 10,
                mirror_tau_mem: float | None = None) -> tuple[dict[str, Any], Any, dict[str, str]]:
    """(bodies, task, rules) from finished ``spikedyn train`` run directories (``spikedyn.load_run``: nothing
    read can run code). Every run must have been trained on the same task. ``mirror=True`` adds the spiking
    twin (``spikedyn.mirror``, ``mirror_substeps`` substeps) of every rate run after it; ``mirror_tau_mem``
    (ms) gives its membrane a leak (default None: the mirror's non-leaky membrane, which NIR, and so Lava,
    cannot express; a long leak such as 10,000 ms makes the twin deployable at a small approximation)."""
    from ..models import RateRNN
    from ..models import mirror as make_mirror
    from ..runs import load_run

    if not run_dirs:
        raise ValueError("give at least one run directory (written by `spikedyn train`)")
    bodies: dict[str, Any] = {}
    rules: dict[str, str] = {}
    task, task_cfg, first = None, None, None
    for d in run_dirs:
        path = Path(d)
        run = load_run(path)
        model = run.model
        if getattr(model, "kind", None) == "population":
            raise ValueError(f"{path} holds a Population; spikedyn compare takes runs of single networks")
        cfg = run.config.get("task")
        if task_cfg is None:
            task, task_cfg, first = run.task, cfg, path
        elif cfg != task_cfg:
            raise ValueError(f"{path} was trained on task {cfg}, but {first} on {task_cfg}; compare needs one task")
        label = _label(path, set(bodies))
        bodies[label] = model
        rule = run.config.get("rule", {})
        rules[label] = rule.get("name") if isinstance(rule, dict) else str(rule)
        if mirror and isinstance(model, RateRNN):
            calib = task.sample(64, np.random.default_rng([0, 7]), split="train").inputs
            try:
                extra = {} if mirror_tau_mem is None else {"tau_mem": float(mirror_tau_mem)}
                twin = make_mirror(model, inputs=calib, substeps=mirror_substeps, **extra)
            except ValueError as e:
                raise ValueError(f"--mirror: {path}: {e}") from None
            twin_label = _label(Path(f"mirror({label})"), set(bodies))
            bodies[twin_label] = twin
            rules[twin_label] = f"mirror of {rules[label]}"
    return bodies, task, rules


def run(run_dirs: Sequence[str | Path], out: str | Path, *, n_trials: int = 200, seed: int = 0,
        lava: str | None = None, mirror: bool = False, mirror_substeps: int = 10,
        mirror_tau_mem: float | None = None, lyapunov_k: int = 3,
        n_inits: int = 128, lava_python: str | None = None, progress: bool = True) -> tuple[ComparisonTable, dict]:
    """``spikedyn compare``: load the runs, compare them, write ``out/comparison.{txt,json,csv,png}``.
    Returns the table and the paths written. Refuses to overwrite an existing comparison in ``out``."""
    from ..atomic import atomic_write_bytes

    out = Path(out)
    names = {"text": "comparison.txt", "json": "comparison.json", "csv": "comparison.csv",
             "figure": "comparison.png"}  # fmt: skip
    existing = [n for n in names.values() if (out / n).exists()]
    if existing:
        raise FileExistsError(f"{out / existing[0]} exists; choose another --out directory (results are never "
                              "overwritten)")  # fmt: skip
    bodies, task, rules = load_bodies(run_dirs, mirror=mirror, mirror_substeps=mirror_substeps,
                                      mirror_tau_mem=mirror_tau_mem)
    table = compare(bodies, task, n_trials=n_trials, seed=seed, lava=lava, lyapunov_k=lyapunov_k,
                    n_inits=n_inits, lava_python=lava_python, rules=rules, progress=progress)  # fmt: skip
    table.meta["runs"] = [str(d) for d in run_dirs]
    paths = {k: out / v for k, v in names.items()}
    atomic_write_bytes(paths["text"], (str(table) + "\n").encode())
    table.to_json(paths["json"])
    table.to_csv(paths["csv"])
    table.plot(paths["figure"])
    return table, {k: str(v) for k, v in paths.items()}


__all__ = ["LAVA_PRECISIONS", "NotDeployable", "compare", "load_bodies", "run"]
