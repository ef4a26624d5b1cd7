"""Sweep configurations: a base trial, the axes to vary, and how to search them.

A sweep file (TOML or YAML) looks like::

    name = "gain-romo"
    search = "grid"                      # grid | random | optuna

    [base]                               # one ``spikedyn train`` configuration shared by every trial
    task = "romo"
    model = "rate"
    hidden = 16
    steps = 20
    task_params = { dt = 20.0, mask = "decision" }

    [grid]                               # every combination of these values (dotted keys reach into dicts)
    "model_params.gain" = [0.2, 0.5, 1.0, 1.5]
    rule = ["bptt", "rflo"]
    seed = [0, 1, 2]

An axis whose values are tables sets several keys at once (a *variant*), e.g.
``variant = [{name = "tanh-pta", model = "rate", model_params = {activation = "tanh"}, init = "pta"}]``.
``[space]`` holds the distributions that ``search = "random"`` and ``search = "optuna"`` sample
``n_trials`` points from (each point crossed with the grid axes, typically seeds): a list is a choice,
a table ``{low, high, log = false, int = false}`` a range.
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..config import ConfigError, TrainConfig, load_config_file, validate

SEED_AXIS = "seed"


class TrialConfig(TrainConfig):
    """One trial: a ``spikedyn train`` configuration plus an initialisation and the torch thread count.

    ``init`` names a function of ``spikedyn.init`` (``gaussian``, ``orthogonal``, ``pta``, ``zeros``, ...)
    applied to the freshly built model with ``init_params`` and the trial's seed.
    """

    model_config = ConfigDict(extra="forbid")

    init: str | None = None
    init_params: dict[str, Any] = Field(default_factory=dict)
    threads: int = Field(1, ge=1)
    device: str = "cpu"  # torch device of the trial: cpu, cuda, cuda:N, or auto (cuda where there is one)
    lyapunov: int = Field(0, ge=0)  # >0: after training, the largest ``lyapunov`` exponents (lyapunov.json)
    # one of Park et al.'s Table S1 bodies (spikedyn bench memory's models: tanh, tanh-pta, tanh-orth, gru,
    # gru-pta, lstm), built exactly as the benchmark builds them; replaces model, model_params and init
    memory_model: str | None = None

    @field_validator("preset", "population")
    @classmethod
    def _not_in_a_sweep(cls, value: Any, info: Any) -> Any:
        # a sweep builds each trial's model itself (and batches same-shaped trials as Populations)
        if value is not None:
            raise ValueError(f"{info.field_name} is not a sweep setting: sweep the model, model_params and rule "
                             "axes instead (same-shaped trials already train as one Population)")
        return value


class Range(BaseModel):
    """A continuous (or integer) range for random / Optuna search."""

    model_config = ConfigDict(extra="forbid")

    low: float
    high: float
    log: bool = False
    int: bool = False


class Resources(BaseModel):
    """What one trial asks of a Ray cluster (``num_gpus`` may be fractional)."""

    model_config = ConfigDict(extra="forbid")

    num_cpus: float = Field(1.0, gt=0)
    num_gpus: float = Field(0.0, ge=0)


class SweepConfig(BaseModel):
    """A validated sweep file (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    name: str = "sweep"
    search: Literal["grid", "random", "optuna"] = "grid"
    base: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    space: dict[str, list[Any] | Range] = Field(default_factory=dict)
    n_trials: int = Field(8, ge=1)
    seed: int = 0
    sampler: Literal["tpe", "random", "cmaes", "qmc"] = "tpe"
    metric: str = "accuracy"
    direction: Literal["maximize", "minimize"] = "maximize"
    batch: int = Field(4, ge=1)  # Optuna: points asked per round (run in parallel on Ray)
    resources: Resources = Field(default_factory=Resources)
    out_dir: Path | None = None
    figures: bool = True
    # local sweeps: train same-shaped trials (differing in seed, lr, init, gain, noise_std) as one Population
    populations: bool = True
    # on Ray: a Ray Tune scheduler that stops trailing trials (asha | median | hyperband), its options
    scheduler: Literal["asha", "median", "hyperband"] | None = None
    scheduler_params: dict[str, Any] = Field(default_factory=dict)
    max_population: int = Field(256, ge=1)  # members per Population at most

    @field_validator("grid")
    @classmethod
    def _non_empty(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in v.items():
            if not values:
                raise ValueError(f"grid axis {key!r} has no values")
        return v

    def model_post_init(self, _: Any) -> None:
        if self.search != "grid" and not self.space:
            raise ConfigError(f"search = {self.search!r} needs a [space] table of the parameters to sample")
        if self.search == "grid" and self.space:
            raise ConfigError("[space] is only used by search = 'random' or 'optuna'; move its keys to [grid]")
        if self.scheduler is not None and self.search == "optuna":
            raise ConfigError("a Ray Tune scheduler runs grid and random searches; use search = 'grid' or 'random'")
        bad = {k for k in [*self.grid, *self.space] if k.split(".")[0] in ("run_dir",)}
        if bad:
            raise ConfigError(f"{sorted(bad)} cannot be swept (each trial gets its own run directory)")


def load_sweep_config(path: str | Path, overrides: dict[str, Any] | None = None) -> SweepConfig:
    """Read and validate a sweep file (TOML/YAML); ``overrides`` replace top-level keys."""
    data = load_config_file(Path(path))
    data.update(overrides or {})
    return as_sweep_config(data)


def as_sweep_config(config: SweepConfig | dict[str, Any] | str | Path) -> SweepConfig:
    """A ``SweepConfig`` from a config object, a dict or a path; every trial it describes is validated."""
    if isinstance(config, (str, Path)):
        return load_sweep_config(config)
    cfg = config if isinstance(config, SweepConfig) else validate(SweepConfig, dict(config))
    validate(TrialConfig, _strip_run_dir(cfg.base))  # a bad base fails before any trial runs
    return cfg


def _strip_run_dir(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != "run_dir"}


# -- trials ------------------------------------------------------------------------------------------
def set_path(d: dict[str, Any], dotted: str, value: Any) -> None:
    """``d["a"]["b"] = value`` for ``dotted = "a.b"`` (creating the inner dicts)."""
    *head, last = dotted.split(".")
    for part in head:
        d = d.setdefault(part, {})
        if not isinstance(d, dict):
            raise ConfigError(f"cannot set {dotted!r}: {part!r} is not a table")
    d[last] = value


def deep_merge(d: dict[str, Any], overrides: dict[str, Any]) -> None:
    """Merge ``overrides`` into ``d`` in place (tables merged key by key, dotted keys followed)."""
    for key, value in overrides.items():
        if "." in key:
            set_path(d, key, value)
        elif isinstance(value, dict) and isinstance(d.get(key), dict):
            deep_merge(d[key], value)
        else:
            d[key] = copy.deepcopy(value)


def axis_label(value: Any) -> Any:
    """The value shown in the sweep table for one axis value (a variant's ``name``, else the value)."""
    if isinstance(value, dict):
        return value.get("name", json.dumps(value, sort_keys=True))
    return value


def apply_axis(d: dict[str, Any], key: str, value: Any) -> None:
    if isinstance(value, dict):  # a variant: several keys at once
        deep_merge(d, {k: v for k, v in value.items() if k != "name"})
    else:
        set_path(d, key, copy.deepcopy(value))


def resolve_trial(base: dict[str, Any], point: dict[str, Any]) -> TrialConfig:
    """The full trial configuration of ``base`` with the axis values of ``point`` applied."""
    d = copy.deepcopy(_strip_run_dir(base))
    for key, value in point.items():
        apply_axis(d, key, value)
    return validate(TrialConfig, d)


def trial_key(trial: TrialConfig) -> str:
    """A stable 16-hex-digit hash of a trial's resolved configuration (every field, defaults included)."""
    payload = json.dumps(trial.model_dump(mode="json", exclude={"run_dir"}), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid axes, the last axis varying fastest (``[{}]`` without axes)."""
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def random_points(space: dict[str, list[Any] | Range], n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` independent draws from ``space`` (numpy, seeded: the same list every time)."""
    rng = np.random.default_rng([seed, 0x5EED])
    points = []
    for _ in range(n):
        point: dict[str, Any] = {}
        for key, dist in space.items():
            if isinstance(dist, list):
                point[key] = dist[int(rng.integers(len(dist)))]
            elif dist.int:
                point[key] = int(rng.integers(int(dist.low), int(dist.high) + 1))
            elif dist.log:
                point[key] = float(np.exp(rng.uniform(np.log(dist.low), np.log(dist.high))))
            else:
                point[key] = float(rng.uniform(dist.low, dist.high))
        points.append(point)
    return points


def optuna_suggest(trial: Any, space: dict[str, list[Any] | Range]) -> dict[str, Any]:
    """Ask an Optuna trial for one point of ``space`` (choices of tables are offered by index)."""
    point: dict[str, Any] = {}
    for key, dist in space.items():
        if isinstance(dist, list):
            labels = [axis_label(v) if isinstance(v, dict) else v for v in dist]
            if all(isinstance(v, (str, int, float, bool)) or v is None for v in labels) and len(set(labels)) == len(
                labels
            ):
                point[key] = dist[labels.index(trial.suggest_categorical(key, labels))]
            else:
                point[key] = dist[trial.suggest_categorical(key, list(range(len(dist))))]
        elif dist.int:
            point[key] = trial.suggest_int(key, int(dist.low), int(dist.high), log=dist.log)
        else:
            point[key] = trial.suggest_float(key, dist.low, dist.high, log=dist.log)
    return point


def sweep_dir(cfg: SweepConfig, out_dir: str | Path | None = None) -> Path:
    """Where a sweep writes: ``out_dir``, else the file's ``out_dir``, else ``runs/sweeps/<name>``."""
    if out_dir is not None:
        return Path(out_dir)
    if cfg.out_dir is not None:
        return Path(cfg.out_dir)
    return Path("runs") / "sweeps" / cfg.name
