"""Base class, batch container and small numpy helpers shared by every task.

Conventions (all tasks):

* arrays are time-major: ``inputs [T, B, I]``, ``targets [T, B, O]``, ``mask [T, B, O]``, float32;
* ``task.dt`` is the duration of one step in milliseconds (sequence tasks that have no physical time,
  e.g. copy memory, use ``dt = 1.0`` and count in steps);
* for ``loss == "ce"`` the targets are one-hot over the ``O`` classes at every step and the mask is the
  same in all ``O`` columns (1 where the step counts in the loss); for ``loss == "mse"`` the mask marks
  the (step, output) entries of the loss ``((y - target)**2 * mask).sum() / mask.sum()``;
* every random draw comes from the ``numpy.random.Generator`` built by :func:`as_rng`, so one seed gives
  identical arrays.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SPLITS = ("train", "test")
MAX_TRIAL_STEPS = 10_000_000  # a longer trial is a unit mistake (dt in s instead of ms?), not a task


@dataclass(frozen=True)
class TaskBatch:
    """One batch of trials (time-major float32 arrays plus per-trial information).

    ``meta`` maps names to numpy arrays whose first axis is the trial (length ``B``).
    """

    inputs: np.ndarray
    targets: np.ndarray
    mask: np.ndarray
    meta: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_steps(self) -> int:
        """Number of time steps ``T``."""
        return int(self.inputs.shape[0])

    @property
    def batch_size(self) -> int:
        """Number of trials ``B``."""
        return int(self.inputs.shape[1])


def as_rng(rng: int | np.random.Generator | None) -> np.random.Generator:
    """Turn an int seed, a ``Generator`` or ``None`` (fresh entropy) into a ``numpy.random.Generator``."""
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(None if rng is None else int(rng))
    if isinstance(rng, np.random.Generator):
        return rng
    raise TypeError(f"rng must be an int seed, a numpy.random.Generator or None, not {type(rng).__name__}")


def n_steps(duration_ms: float, dt: float, what: str) -> int:
    """Number of steps of ``dt`` ms in ``duration_ms`` ms; ``ValueError`` unless dt divides it exactly
    (and the duration is a finite number of ms >= 0 and at most ``MAX_TRIAL_STEPS`` steps)."""
    check_nonnegative(duration_ms, what)
    check_positive(dt, "dt")
    if duration_ms / dt > MAX_TRIAL_STEPS:
        raise ValueError(f"{what}={duration_ms} ms is {duration_ms / dt:.3g} steps of dt={dt} ms, more than "
                         f"{MAX_TRIAL_STEPS:,}; durations and dt are in ms")
    steps = int(round(duration_ms / dt))
    if abs(steps * dt - duration_ms) > 1e-9 * max(1.0, abs(duration_ms)):
        raise ValueError(f"dt={dt} ms does not divide {what}={duration_ms} ms; choose a dt that divides it")
    return steps


def _real(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{what} must be a number, got {value!r}")
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"{what} must be a finite number, got {x}")
    return x


def check_positive(value: float, what: str) -> None:
    """``ValueError`` unless ``value`` is a finite number > 0."""
    if not _real(value, what) > 0:
        raise ValueError(f"{what} must be > 0, got {value}")


def check_nonnegative(value: float, what: str) -> None:
    """``ValueError`` unless ``value`` is a finite number >= 0."""
    if not _real(value, what) >= 0:
        raise ValueError(f"{what} must be >= 0, got {value}")


def check_int(value: Any, what: str, low: int, high: int | None = None) -> int:
    """Return ``value`` as int; ``ValueError`` unless it is an integer in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"{what} must be {bound}, got {value}")
    return int(value)


def check_choice(value: Any, what: str, options: tuple[str, ...]) -> str:
    """``ValueError`` unless ``value`` is one of ``options``."""
    if value not in options:
        raise ValueError(f"{what} must be one of {list(options)}, got {value!r}")
    return value


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """float32 one-hot encoding along a new last axis; labels < 0 give all-zero rows (padding)."""
    labels = np.asarray(labels)
    out = np.zeros((*labels.shape, n_classes), dtype=np.float32)
    valid = labels >= 0
    np.put_along_axis(out, np.where(valid, labels, 0)[..., None], 1.0, axis=-1)
    out[~valid] = 0.0
    return out


def log_softmax(x: np.ndarray) -> np.ndarray:
    """Numerically stable log-softmax over the last axis (float64)."""
    x = np.asarray(x, dtype=np.float64)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean natural-log cross-entropy of softmax(logits) [..., C] against integer labels [...]."""
    logp = log_softmax(logits)
    picked = np.take_along_axis(logp, np.asarray(labels)[..., None], axis=-1)[..., 0]
    return float(-picked.mean())


def final_step_scores(outputs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy (argmax == label) and cross-entropy of the last step of ``outputs [T, B, C]``."""
    final = outputs[-1]
    return {"accuracy": float(np.mean(final.argmax(axis=-1) == labels)),
            "cross_entropy": cross_entropy(final, labels)}


def masked_mse(outputs: np.ndarray, batch: TaskBatch) -> float:
    """The library's training MSE: ``((y - target)**2 * mask).sum() / mask.sum()``."""
    err = (np.asarray(outputs, dtype=np.float64) - batch.targets) ** 2 * batch.mask
    return float(err.sum() / batch.mask.sum())


class Task:
    """A trial generator and scorer.

    Subclasses set ``name``, ``loss``, ``dt`` (ms per step), ``n_inputs`` and ``n_outputs`` in
    ``__init__``, record their parameters with :meth:`_remember`, and implement ``_sample`` and
    ``_score``.
    """

    name: str = "task"
    loss: str = "mse"
    dt: float = 1.0
    n_inputs: int
    n_outputs: int

    def _remember(self, **params: Any) -> None:
        self._params = dict(params)

    def config(self) -> dict[str, Any]:
        """``{"name": ..., **params}`` such that ``spikedyn.tasks.make(**config)`` rebuilds this task."""
        return {"name": self.name, **getattr(self, "_params", {})}

    def sample(self, batch_size: int, rng: int | np.random.Generator | None = None,
               split: str = "train") -> TaskBatch:
        """Draw ``batch_size`` trials.

        ``rng`` is an int seed, a ``numpy.random.Generator`` or ``None``; ``split`` is "train" or "test"
        (synthetic tasks make fresh trials for either: pass another rng for held-out trials; dataset
        tasks draw from the matching split).
        """
        batch_size = check_int(batch_size, "batch_size", 1)
        check_choice(split, "split", SPLITS)
        batch = self._sample(batch_size, as_rng(rng), split)
        if batch.n_steps < 1:
            raise ValueError(f"task {self.name!r} made trials of 0 steps; give its periods/durations at least one dt")
        return batch

    def score(self, outputs: np.ndarray, batch: TaskBatch) -> dict[str, float]:
        """Scores of network ``outputs [T, B, O]`` (numpy) on ``batch``; always ``accuracy`` (0..1)."""
        outputs = np.asarray(outputs, dtype=np.float64)
        if outputs.shape != batch.targets.shape:
            raise ValueError(f"outputs have shape {outputs.shape}, expected {batch.targets.shape} (T, B, O)")
        return {k: float(v) for k, v in self._score(outputs, batch).items()}

    def _sample(self, batch_size: int, rng: np.random.Generator, split: str) -> TaskBatch:
        raise NotImplementedError

    def _score(self, outputs: np.ndarray, batch: TaskBatch) -> dict[str, float]:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in getattr(self, "_params", {}).items())
        return f"{type(self).__name__}({args})"


def parameter_names(cls: type) -> list[str]:
    """Keyword parameters accepted by a task class's constructor."""
    return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]


def make_batch(inputs: np.ndarray, targets: np.ndarray, mask: np.ndarray, **meta: Any) -> TaskBatch:
    """Build a :class:`TaskBatch`, casting arrays to float32 and meta values to numpy arrays."""
    return TaskBatch(
        inputs=np.ascontiguousarray(inputs, dtype=np.float32),
        targets=np.ascontiguousarray(targets, dtype=np.float32),
        mask=np.ascontiguousarray(mask, dtype=np.float32),
        meta={k: np.asarray(v) for k, v in meta.items()},
    )
