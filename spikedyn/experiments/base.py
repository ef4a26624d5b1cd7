"""What every experiment shares: a strict pydantic config base and the default output location."""
from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

RUNS = Path("runs")


class ExperimentConfig(BaseModel):
    """Base of the experiments' configs: unknown keys and wrong types are errors (no silent coercion)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def default_out(name: str) -> Path:
    """Where an experiment writes when no out directory is given: ``runs/<name>`` (relative to the cwd)."""
    return RUNS / name
