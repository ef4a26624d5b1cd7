"""Ray Tune schedulers for sweeps run on Ray (``scheduler = "asha"`` in the sweep file, with ``--ray``).

Each trial is one Ray Tune trial: it trains into its own run directory exactly as ``run_trial`` does and
reports its held-out scores at every evaluation (``eval_every`` steps; one Tune ``training_iteration``
each), so a scheduler can stop the trials that trail the others (ASHA, Li et al. 2020; the median
stopping rule; HyperBand). A trial the scheduler stops is recorded with ``status = "pruned"`` and the
scores of its last evaluation (its run directory keeps what training wrote until then, no final model;
a re-run of the sweep does not train it again); trials that
run to the end are recorded exactly as in a sweep without a scheduler. Tune's own files go to
``<sweep>/tune/``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .trial import lost_worker_result

SCHEDULERS = ("asha", "median", "hyperband")
RESULT_KEY = "spikedyn_result"  # the trial's full result, in its last report


def make_scheduler(name: str, params: dict[str, Any], metric: str, mode: str, max_t: int) -> Any:
    """A Ray Tune scheduler by name; ``params`` are its keyword arguments (``grace_period``,
    ``reduction_factor``, ``max_t`` for ASHA and HyperBand, ``grace_period``, ``min_samples_required``
    for the median rule), in evaluations (Tune's ``training_iteration``)."""
    from ray.tune import schedulers

    kinds = {"asha": schedulers.ASHAScheduler, "median": schedulers.MedianStoppingRule,
             "hyperband": schedulers.HyperBandScheduler}  # fmt: skip
    kwargs = dict(params)
    if name in ("asha", "hyperband"):
        kwargs.setdefault("max_t", max_t)
    try:
        return kinds[name](metric=metric, mode=mode, **kwargs)
    except TypeError as e:
        raise ValueError(f"bad scheduler_params for {name!r}: {e}") from None


def _numbers(record: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in record.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))}  # fmt: skip


def _trainable(config: dict[str, Any], payload: list[tuple[dict, str]], figures: bool, metric: str) -> None:
    """One Tune trial: ``run_trial`` with a report at every evaluation, then the whole result."""
    from ray import tune

    from .trial import run_trial

    trial, run_dir = payload[config["index"]]
    last: dict[str, float] = {}

    def report(step: int, record: dict[str, Any]) -> None:
        if "eval_loss" in record:
            last.clear()
            last.update(_numbers(record))
            tune.report({**last, "step": step})

    out = run_trial(trial, run_dir, figures, callback=report)
    final = {**last, **_numbers(out.get("final", {}))}
    final.setdefault(metric, float("nan"))  # a failed trial has no score; the scheduler needs the key
    tune.report({**final, "step": out.get("steps_run", 0), RESULT_KEY: json.dumps(out)})


def tune_executor(pending: list[tuple[Any, Path]], cfg: Any, root: Path, figures: bool,
                  resources: dict[str, float]) -> Any:  # fmt: skip
    """Run ``pending`` (trial, run_dir) pairs as Tune trials under ``cfg.scheduler``; yields (trial, result)
    once Tune has finished them all."""
    from ray import tune

    mode = "max" if cfg.direction == "maximize" else "min"
    # evaluations per trial, plus the last report (the whole result)
    max_t = max(math.ceil(t.config.steps / t.config.eval_every) for t, _ in pending) + 1
    scheduler = make_scheduler(cfg.scheduler, cfg.scheduler_params, cfg.metric, mode, max_t)
    payload = [(t.config.model_dump(mode="json"), str(Path(d).resolve())) for t, d in pending]
    trainable = tune.with_parameters(_trainable, payload=payload, figures=figures, metric=cfg.metric)
    trainable = tune.with_resources(trainable, {"cpu": resources["num_cpus"], "gpu": resources["num_gpus"]})
    tuner = tune.Tuner(
        trainable,
        param_space={"index": tune.grid_search(list(range(len(pending))))},
        tune_config=tune.TuneConfig(scheduler=scheduler, num_samples=1),
        run_config=tune.RunConfig(name=cfg.name, storage_path=str((root / "tune").resolve()), verbose=0),
    )
    grid = tuner.fit()
    for res in grid:
        trial = pending[res.config["index"]][0]
        metrics = res.metrics or {}
        if RESULT_KEY in metrics:
            result = json.loads(metrics[RESULT_KEY])
        elif res.error is not None:  # the Tune trial itself died (worker lost, out of memory)
            result = lost_worker_result(res.error)
        else:  # stopped by the scheduler after an evaluation
            scores = {k: v for k, v in metrics.items() if k not in _TUNE_KEYS and isinstance(v, (int, float))}
            result = {"status": "pruned", "error": None, "final": scores, "steps_run": int(metrics.get("step", 0)),
                      "stopped_early": False, "lyapunov_max": None,
                      "seconds": round(float(metrics.get("time_total_s", 0.0)), 3)}  # fmt: skip
        yield trial, result


# what Tune adds to every report; the rest of a pruned trial's last report are its held-out scores
_TUNE_KEYS = {"step", "timestamp", "checkpoint_dir_name", "done", "training_iteration", "trial_id", "date",
              "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip", "time_since_restore",
              "iterations_since_restore", "config", "experiment_tag"}  # fmt: skip
