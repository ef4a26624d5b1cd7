"""``spikedyn.sweep(config)``: run every trial of a sweep, locally or on Ray, and keep the table current.

Idempotent and resumable: a trial whose ``trials/<key>/result.json`` exists is not run again; a trial
killed mid-training resumes from its last checkpoint (``spikedyn.train``'s run directory); the table is
rewritten (atomically) after every finished trial. A trial that fails is recorded with its error and the
sweep goes on. The table is ordered by the sweep's trial order, not by completion order, so a local
sweep and the same sweep on Ray give the same table (up to the ``seconds`` column).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_json
from .batch import plan_groups, run_group
from .config import (
    SweepConfig,
    TrialConfig,
    as_sweep_config,
    axis_label,
    grid_points,
    optuna_suggest,
    random_points,
    resolve_trial,
    sweep_dir,
    trial_key,
)
from .store import SWEEP_FILE, TABLE_FILE, TRIALS_DIR, build_table, write_table
from .trial import RESULT_FILE, lost_worker_result, read_result, run_trial


@dataclass
class Trial:
    """One planned trial: its key, resolved config and the axis labels shown in the table."""

    key: str
    config: TrialConfig
    labels: dict[str, Any]


@dataclass
class SweepResult:
    """What ``sweep`` returns: the table, where it is, and what this call did."""

    table: Any  # pandas.DataFrame
    out_dir: Path
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    best: dict[str, Any] | None = None  # Optuna: the best point and its mean metric

    def summary(self) -> dict[str, Any]:
        out = {"out_dir": str(self.out_dir), "table": str(self.out_dir / TABLE_FILE), "trials": len(self.table),
               "ran": len(self.ran), "skipped": len(self.skipped), "failed": len(self.failed)}  # fmt: skip
        pruned = int((self.table["status"] == "pruned").sum()) if self.table is not None and len(self.table) else 0
        if pruned:
            out["pruned"] = pruned  # stopped by a Ray Tune scheduler
        if self.best is not None:
            out["best"] = self.best
        return out


def _labels(point: dict[str, Any]) -> dict[str, Any]:
    return {k: axis_label(v) for k, v in point.items()}


def plan_trials(cfg: SweepConfig, points: list[dict[str, Any]]) -> list[Trial]:
    """Resolve ``points`` against the base configuration (duplicates, by key, are dropped)."""
    seen: dict[str, Trial] = {}
    for point in points:
        labels = _labels({k: v for k, v in point.items() if k != "sample"})
        if "sample" in point:
            labels = {"sample": point["sample"], **labels}
        trial = resolve_trial(cfg.base, {k: v for k, v in point.items() if k != "sample"})
        key = trial_key(trial)
        seen.setdefault(key, Trial(key, trial, labels))
    return list(seen.values())


def expand(config: SweepConfig | dict[str, Any] | str | Path) -> list[Trial]:
    """Every trial of a grid or random sweep, in order (Optuna sweeps are planned round by round)."""
    cfg = as_sweep_config(config)
    grid = grid_points(cfg.grid)
    if cfg.search == "grid":
        return plan_trials(cfg, grid)
    if cfg.search == "random":
        samples = random_points(cfg.space, cfg.n_trials, cfg.seed)
        return plan_trials(cfg, [{"sample": i, **s, **g} for i, s in enumerate(samples) for g in grid])
    raise ValueError("Optuna sweeps are planned one round at a time; call spikedyn.sweep(config)")


# -- progress ----------------------------------------------------------------------------------------
class _Progress:
    """Progress over the trials (``spikedyn.progress``): a bar on a terminal, otherwise a log line at most
    every 30 s (``SPIKEDYN_PROGRESS_EVERY``) and one at the end; silent when disabled or under ``--json``."""

    def __init__(self, total: int, done: int, enabled: bool, desc: str) -> None:
        from ..progress import progress

        self.bar = progress(total, desc, unit="trials", initial=done, enabled=enabled)

    def update(self, key: str, status: str) -> None:
        self.bar.update(1, last=f"{key[:8]} {status}")

    def close(self) -> None:
        self.bar.close()


# -- executors ---------------------------------------------------------------------------------------
def _local_executor(pending: list[tuple[Trial, Path]], figures: bool, root: Path, populations: bool,
                    max_population: int) -> Iterator[tuple[Trial, dict]]:  # fmt: skip
    """Trials in this process: same-shaped ones as one Population each (``spikedyn.sweeps.batch``)."""
    if not populations:
        for trial, run_dir in pending:
            yield trial, run_trial(trial.config.model_dump(mode="json"), run_dir, figures)
        return
    for group in plan_groups(pending, max_population):
        yield from run_group(group, root, figures)


def _ray_trial(trial: dict[str, Any], run_dir: str, figures: bool) -> dict[str, Any]:
    """The body of one Ray task (module-level, so Ray pickles it by reference)."""
    return run_trial(trial, run_dir, figures)


def _ray_executor(pending: list[tuple[Trial, Path]], figures: bool, resources: dict[str, float]
                  ) -> Iterator[tuple[Trial, dict]]:  # fmt: skip
    import ray

    remote = ray.remote(_ray_trial).options(max_retries=0, **resources)
    refs = {remote.remote(t.config.model_dump(mode="json"), str(d.resolve()), figures): t for t, d in pending}
    waiting = list(refs)
    while waiting:
        done, waiting = ray.wait(waiting, num_returns=1)
        trial = refs[done[0]]
        try:
            result = ray.get(done[0])
        except Exception as e:  # the worker died (out of memory, node lost): record it, go on
            result = lost_worker_result(e)
        yield trial, result


class _RayContext:
    """Connect to (or start) Ray for the duration of a sweep; a Ray instance started here is shut down."""

    def __init__(self, address: str, num_cpus: int | None) -> None:
        self.address, self.num_cpus, self.started = address, num_cpus, False

    def __enter__(self) -> _RayContext:
        try:
            import ray
        except ImportError:
            raise ValueError("--ray needs Ray: pip install 'spikedyn[sweep]' (or pip install ray)") from None
        if ray.is_initialized():
            return self
        if self.address == "auto":
            try:  # a cluster from RAY_ADDRESS or `ray start` on this machine
                ray.init(address="auto", log_to_driver=False)
            except ConnectionError:  # none: a local instance for this sweep
                ray.init(num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=False)
        else:
            try:
                ray.init(address=self.address, log_to_driver=False)
            except ConnectionError as e:
                raise ValueError(f"cannot reach a Ray cluster at {self.address!r}: {e}") from None
        self.started = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.started:
            import ray

            ray.shutdown()


# -- the sweep ---------------------------------------------------------------------------------------
class _Recorder:
    """Writes each finished trial's ``result.json`` and keeps ``sweep.parquet`` current."""

    def __init__(self, root: Path, axes: list[str]) -> None:
        self.root, self.axes = root, axes
        self.records: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []

    def plan(self, trials: list[Trial]) -> None:
        """Fix the table order (the sweep's trial order, whatever order the trials finish in)."""
        self.order.extend(t.key for t in trials if t.key not in self.order)

    def add(self, trial: Trial, record: dict[str, Any]) -> None:
        """Keep an already recorded trial (``result.json`` as read back)."""
        if trial.key not in self.order:
            self.order.append(trial.key)
        self.records[trial.key] = {**record, "labels": trial.labels}

    def finish(self, trial: Trial, result: dict[str, Any]) -> dict[str, Any]:
        """Record a trial that has just run: its ``result.json`` first, then the table row."""
        record = {"key": trial.key, "config": trial.config.model_dump(mode="json"), "labels": trial.labels,
                  **result}  # fmt: skip
        atomic_write_json(self.root / TRIALS_DIR / trial.key / RESULT_FILE, record)
        self.add(trial, record)
        return record

    def write(self) -> Any:
        table = build_table([self.records[k] for k in self.order if k in self.records], self.axes)
        write_table(table, self.root / TABLE_FILE)
        return table


def _finished(trial: Trial, root: Path, retry_failed: bool) -> dict[str, Any] | None:
    rec = read_result(root / TRIALS_DIR / trial.key)
    if rec is None or rec.get("config") != trial.config.model_dump(mode="json"):
        return None
    if rec.get("status") == "failed" and retry_failed:
        return None
    return rec


def _run_round(trials: list[Trial], root: Path, recorder: _Recorder, out: SweepResult, executor: Callable,
               bar: _Progress, retry_failed: bool) -> None:  # fmt: skip
    recorder.plan(trials)
    pending = []
    for trial in trials:
        rec = _finished(trial, root, retry_failed)
        if rec is not None:
            recorder.add(trial, rec)
            out.skipped.append(trial.key)
        else:
            pending.append((trial, root / TRIALS_DIR / trial.key))
    if not pending:
        return
    for trial, result in executor(pending):
        rec = recorder.finish(trial, result)
        out.ran.append(trial.key)
        if rec["status"] == "failed":
            out.failed.append(trial.key)
        recorder.write()
        bar.update(trial.key, rec["status"] if rec["status"] == "ok" else f"failed: {rec.get('error')}")


def sweep(
    config: SweepConfig | dict[str, Any] | str | Path,
    out_dir: str | Path | None = None,
    ray: str | None = None,
    ray_num_cpus: int | None = None,
    retry_failed: bool = False,
    progress: bool = True,
) -> SweepResult:
    """Run a sweep (grid, random or Optuna search over ``spikedyn train`` configurations).

    Args:
        config: a ``SweepConfig``, its dict, or the path of a TOML/YAML sweep file
            (see ``spikedyn.sweeps.config``).
        out_dir: the sweep directory (default: the file's ``out_dir``, else ``runs/sweeps/<name>``).
        ray: None runs every trial here, in this process, one after another. ``"auto"`` runs one Ray task
            per trial (resources from the file's ``[resources]``) on the running Ray instance, the cluster
            in ``RAY_ADDRESS`` / started by ``ray start``, or else a new local one; any other string is a
            cluster address (``ray://host:10001`` or ``host:6379``). On a multi-node cluster ``out_dir``
            must be on a file system every node sees.
        ray_num_cpus: CPUs of a local Ray instance started here (default: all).
        retry_failed: run trials that failed before again (finished trials are always skipped).
        progress: a progress bar over the trials on a terminal, otherwise a log line (``spikedyn.progress``
            logger) at most every 30 s and one at the end; False = quiet.

    Returns:
        a ``SweepResult``: the table (also in ``<out_dir>/sweep.parquet``), and the keys of the trials
        run, skipped (already done) and failed.
    """
    cfg = as_sweep_config(config)
    root = sweep_dir(cfg, out_dir)
    root.mkdir(parents=True, exist_ok=True)
    axes = [*(["sample"] if cfg.search != "grid" else []), *cfg.space, *cfg.grid]
    recorder = _Recorder(root, axes)
    out = SweepResult(table=None, out_dir=root)
    resources = cfg.resources.model_dump()

    if cfg.scheduler is not None and ray is None:
        raise ValueError(f"scheduler = {cfg.scheduler!r} is a Ray Tune scheduler: run the sweep on Ray (--ray auto, "
                         "or ray='auto'), or remove it")  # fmt: skip

    def make_executor() -> Callable:
        if ray is None:
            return lambda pending: _local_executor(pending, cfg.figures, root, cfg.populations, cfg.max_population)
        if cfg.scheduler is not None:
            from .tune import tune_executor

            return lambda pending: tune_executor(pending, cfg, root, cfg.figures, resources)
        return lambda pending: _ray_executor(pending, cfg.figures, resources)

    ctx = _RayContext(ray, ray_num_cpus) if ray is not None else None
    if ctx is not None:
        ctx.__enter__()
    try:
        executor = make_executor()
        if cfg.search in ("grid", "random"):
            trials = expand(cfg)
            atomic_write_json(root / SWEEP_FILE, {"config": cfg.model_dump(mode="json"),
                                                  "trials": [t.key for t in trials]})  # fmt: skip
            done = sum(_finished(t, root, retry_failed) is not None for t in trials)
            bar = _Progress(len(trials), done, progress, f"sweep {cfg.name}")
            try:
                _run_round(trials, root, recorder, out, executor, bar, retry_failed)
            finally:
                bar.close()
        else:
            out.best = _optuna_sweep(cfg, root, recorder, out, executor, progress, retry_failed)
    finally:
        if ctx is not None:
            ctx.__exit__(None, None, None)
    out.table = recorder.write()
    return out


def _optuna_sweep(cfg: SweepConfig, root: Path, recorder: _Recorder, out: SweepResult, executor: Callable,
                  progress: bool, retry_failed: bool) -> dict[str, Any] | None:  # fmt: skip
    """Ask Optuna ``batch`` points per round, run each point crossed with the grid axes (seeds), tell it
    the mean of ``metric`` over them. Seeded sampler + cached trials = a re-run replays the same points."""
    try:
        import optuna
    except ImportError:
        raise ValueError("search = 'optuna' needs Optuna: pip install 'spikedyn[sweep]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    samplers = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler,
                "qmc": optuna.samplers.QMCSampler}  # fmt: skip
    study = optuna.create_study(direction=cfg.direction, sampler=samplers[cfg.sampler](seed=cfg.seed))
    grid = grid_points(cfg.grid)
    keys: list[str] = []
    bar = _Progress(cfg.n_trials * len(grid), 0, progress, f"sweep {cfg.name} (optuna)")
    try:
        while len(study.trials) < cfg.n_trials:
            asked = [study.ask() for _ in range(min(cfg.batch, cfg.n_trials - len(study.trials)))]
            points = [optuna_suggest(t, cfg.space) for t in asked]
            per_point = [plan_trials(cfg, [{"sample": t.number, **p, **g} for g in grid])
                         for t, p in zip(asked, points)]  # fmt: skip
            flat = [tr for group in per_point for tr in group]
            n_before = len(out.skipped)
            _run_round(flat, root, recorder, out, executor, bar, retry_failed)
            for _ in range(len(out.skipped) - n_before):
                bar.update("cached", "ok")
            keys.extend(tr.key for tr in flat)
            for t, group in zip(asked, per_point):
                recs = [recorder.records[tr.key] for tr in group]
                values = [r["final"].get(cfg.metric) for r in recs if r["status"] == "ok"]
                values = [v for v in values if v is not None]
                if values:
                    study.tell(t, float(sum(values) / len(values)))
                else:
                    study.tell(t, state=optuna.trial.TrialState.FAIL)
    finally:
        bar.close()
    atomic_write_json(root / SWEEP_FILE, {"config": cfg.model_dump(mode="json"), "trials": keys})
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        return None
    best = study.best_trial
    return {"sample": best.number, "params": best.params, cfg.metric: best.value}
