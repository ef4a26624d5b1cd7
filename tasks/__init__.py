"""spikedyn.tasks: trial generators and scorers (numpy only; never imports torch).

>>> import spikedyn.tasks as T
>>> task = T.make("cdi", dt=10.0)
>>> batch = task.sample(32, rng=0)          # inputs/targets/mask [T, B, .] float32, meta per trial
>>> task.score(batch.targets, batch)["accuracy"]
1.0

``T.make("neurogym:<EnvId>", **env_kwargs)`` wraps an installed NeuroGym environment. See docs/tasks.md.
"""

from __future__ import annotations

from typing import Any

from .base import Task, TaskBatch, parameter_names
from .cognitive import DMS, Romo, TwoAF
from .decision import CDI, NCDI, RDM
from .head_direction import HeadDirection
from .memory import CopyMemory, RandomDelayCopy, TemporalOrder
from .sequential import PSMNIST, PSDigits, read_idx

_REGISTRY: dict[str, type[Task]] = {
    cls.name: cls
    for cls in (RDM, CDI, NCDI, Romo, TwoAF, DMS, CopyMemory, TemporalOrder, RandomDelayCopy, PSDigits,
                PSMNIST, HeadDirection)
}
NEUROGYM_PREFIX = "neurogym:"

__all__ = ["Task", "TaskBatch", "available", "make", "read_idx",
           *sorted(c.__name__ for c in _REGISTRY.values())]


def available() -> list[str]:
    """Names accepted by :func:`make` (plus ``"neurogym:<EnvId>"`` for any installed NeuroGym env)."""
    return sorted(_REGISTRY)


def make(name: str, **params: Any) -> Task:
    """Build the task ``name`` with ``params``; ``make(**task.config())`` rebuilds ``task``."""
    if isinstance(name, str) and name.startswith(NEUROGYM_PREFIX):
        from .neurogym_adapter import NeuroGymTask

        return NeuroGymTask(name[len(NEUROGYM_PREFIX):], **params)
    if name not in _REGISTRY:
        raise ValueError(f"unknown task {name!r}; available: {', '.join(available())} or 'neurogym:<EnvId>'")
    cls = _REGISTRY[name]
    allowed = parameter_names(cls)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"task {name!r} has no parameter(s) {unknown}; its parameters are {allowed}")
    return cls(**params)
