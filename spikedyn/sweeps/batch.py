"""Same-shaped trials of a local sweep run as one ``spikedyn.Population``.

Trials that differ only in what a Population lets its members differ in -- the seed (the initialisation,
the batches, the held-out set and the noise: ``train(pop, seed=[...])``), the learning rate, the
initialisation (``init``, ``init_params``), the ``gain`` and ``noise_std`` model parameters and the
after-training ``lyapunov`` -- are trained together: one batched forward and backward per step for
all of them. Each member then gets the run directory it would have had trained alone (config.json,
metrics.jsonl, a checkpoint with its own Adam state, model.pt, summary.json, figures, result.json):
``train(pop, seed=[...])`` gives member i what ``train(model_i, seed=seed_i)`` gives it
(``tests/test_population.py``; float32 sweeps agree to rounding, ``tests/test_sweep.py``).

The Population trains in ``<sweep>/populations/<hash of the member keys>/`` (a ``spikedyn.train`` run
directory: a killed sweep resumes it from its last checkpoint). Trials that cannot be batched (another
rule than BPTT, a trial that is already part-trained on its own, a body or shape no other trial has)
run one by one, and so does a group whose Population fails (each trial then records its own error).
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("spikedyn.sweeps")

POPULATIONS_DIR = "populations"
BATCH_RULES = ("bptt",)  # rules whose Population training equals training the members alone
MEMBER_FIELDS = ("seed", "lr", "init", "init_params", "lyapunov")  # may differ between members


def population_signature(cfg: Any) -> str | None:
    """Trials with the same signature can train as one Population (None: this one trains alone)."""
    from ..models.population import PER_MEMBER

    if cfg.rule not in BATCH_RULES or cfg.rule_params or cfg.memory_model is not None:
        return None
    d = cfg.model_dump(mode="json", exclude={"run_dir", *MEMBER_FIELDS})
    d["model_params"] = {k: v for k, v in d["model_params"].items() if k not in PER_MEMBER}
    return json.dumps(d, sort_keys=True)


def _fresh(run_dir: Path) -> bool:
    """No training of this trial on its own has started (a part-trained one resumes alone)."""
    from ..learning.checkpoint import list_checkpoints

    return not (run_dir / "checkpoints").is_dir() or not list_checkpoints(run_dir)


def plan_groups(pending: list[tuple[Any, Path]], max_size: int) -> list[list[tuple[Any, Path]]]:
    """``pending`` (trial, run_dir) pairs cut into groups: same-signature fresh trials together (at most
    ``max_size`` per group, in sweep order), every other trial alone."""
    groups: dict[str, list[list[tuple[Any, Path]]]] = {}
    order: list[list[tuple[Any, Path]]] = []
    for item in pending:
        sig = population_signature(item[0].config) if _fresh(item[1]) else None
        if sig is None:
            order.append([item])
            continue
        chunks = groups.setdefault(sig, [])
        if not chunks or len(chunks[-1]) >= max_size:
            chunks.append([])
            order.append(chunks[-1])
        chunks[-1].append(item)
    return order


def _member_record(record: dict[str, Any], i: int) -> dict[str, Any]:
    """Member i's view of a Population's metrics record (``member_loss[i]`` -> ``loss``, ...)."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key == "members_active":
            continue
        if key.startswith("member_"):
            out[key[len("member_"):]] = value[i]
        elif f"member_{key}" not in record:
            out[key] = value
    return out


def _member_history(history: list[dict[str, Any]], i: int, target: float | None) -> tuple[list[dict], bool]:
    """Member i's records up to where it would have stopped alone (its first evaluation at the target)."""
    out = []
    for record in history:
        mine = _member_record(record, i)
        out.append(mine)
        if target is not None and "accuracy" in mine and mine["accuracy"] >= target:
            return out, True
    return out, False


def write_member_run(run_dir: Path, run_config: dict[str, Any], model: Any, adam: dict[str, Any], i: int,
                     loss_kind: str, history: list[dict[str, Any]], stopped_early: bool) -> None:
    """Member i's ``spikedyn.train`` run directory, as training it alone writes it (finished)."""
    from ..learning.checkpoint import (
        atomic_torch_save,
        atomic_write_json,
        run_lock,
        save_checkpoint,
        write_metrics,
    )

    step = int(history[-1]["step"])
    state = {"adam": {"t": adam["t"][i].clone(), "m": {n: m[i].clone() for n, m in adam["m"].items()},
                      "v": {n: v[i].clone() for n, v in adam["v"].items()}}, "loss_kind": loss_kind}  # fmt: skip
    final = next((dict(r) for r in reversed(history) if "eval_loss" in r), {})
    with run_lock(run_dir):
        atomic_write_json(run_dir / "config.json", run_config)
        save_checkpoint(run_dir, step, {"step": step, "model": model.state_dict(), "rule_state": state,
                                        "history": history, "config": run_config, "stopped_early": stopped_early})
        write_metrics(run_dir / "metrics.jsonl", history)
        atomic_torch_save(run_dir / "model.pt", {"config": run_config, "model": model.state_dict()})
        atomic_write_json(run_dir / "summary.json", {"final": final, "steps": step, "stopped_early": stopped_early})


def _population_dir(root: Path, group: list[tuple[Any, Path]]) -> Path:
    key = hashlib.sha256(",".join(t.key for t, _ in group).encode()).hexdigest()[:16]
    return root / POPULATIONS_DIR / key


def run_group(group: list[tuple[Any, Path]], root: Path, figures: bool) -> Iterator[tuple[Any, dict[str, Any]]]:
    """Train a group of same-shaped trials as one Population and yield each trial's result; a single
    trial, or a group whose Population fails, runs one trial at a time (``run_trial``)."""
    from .trial import run_trial

    if len(group) > 1:
        try:
            results = _train_population(group, root, figures)
        except Exception as e:  # e.g. one member diverged: each trial then runs and records on its own
            log.warning("the Population of %d trials failed (%s: %s); running them one by one", len(group),
                        type(e).__name__, str(e).splitlines()[0] if str(e) else "")
        else:
            yield from zip((t for t, _ in group), results)
            return
    for trial, run_dir in group:
        yield trial, run_trial(trial.config.model_dump(mode="json"), run_dir, figures)


def _train_population(group: list[tuple[Any, Path]], root: Path, figures: bool) -> list[dict[str, Any]]:
    import torch

    from ..learning import train
    from ..learning.checkpoint import DEFAULT_LR, newest_intact_checkpoint
    from ..learning.rules import make_rule
    from ..learning.train import make_run_config
    from ..models.population import Population
    from .trial import build_trial, finish_trial, new_result, record_failure

    t0 = time.perf_counter()
    cfgs = [t.config for t, _ in group]
    c0 = cfgs[0]
    threads = torch.get_num_threads()
    torch.set_num_threads(c0.threads)
    try:
        built = [build_trial(c) for c in cfgs]
        task = built[0][0]
        lrs = [DEFAULT_LR if c.lr is None else c.lr for c in cfgs]
        pop = Population.stack([m for _, m in built], lr=lrs)
        pop_dir = _population_dir(root, group)
        settings = dict(steps=c0.steps, batch_size=c0.batch_size, clip=c0.clip, eval_every=c0.eval_every,
                        eval_trials=c0.eval_trials, target_accuracy=c0.target_accuracy)  # fmt: skip
        train(pop, task, rule=c0.rule, seed=[c.seed for c in cfgs], run_dir=pop_dir, progress=False, **settings)
        _, ck = newest_intact_checkpoint(pop_dir)
        pop.load_state_dict(ck["model"])
        adam, loss_kind = ck["rule_state"]["adam"], ck["rule_state"]["loss_kind"]
        results = []
        for i, ((_, run_dir), cfg) in enumerate(zip(group, cfgs)):
            out = new_result()
            try:
                model = pop.member(i)
                run_config = make_run_config(model, task, make_rule(cfg.rule), steps=c0.steps,
                                             batch_size=c0.batch_size, lr=lrs[i], seed=cfg.seed, clip=c0.clip,
                                             eval_every=c0.eval_every, eval_trials=c0.eval_trials,
                                             target_accuracy=c0.target_accuracy, weight_decay=0.0)  # fmt: skip
                history, stopped = _member_history(ck["history"], i, c0.target_accuracy)
                write_member_run(run_dir, run_config, model, adam, i, loss_kind, history, stopped)
                final = next((dict(r) for r in reversed(history) if "eval_loss" in r), {})
                finish_trial(cfg, task, model, history, final, stopped, run_dir, figures, out)
            except Exception as e:  # e.g. this member's Lyapunov spectrum failed
                record_failure(out, e, run_dir)
            results.append(out)
    finally:
        torch.set_num_threads(threads)
    share = round((time.perf_counter() - t0) / len(group), 3)  # the Population's wall time, per trial
    for out in results:
        out["seconds"] = share
    return results
