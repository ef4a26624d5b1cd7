"""Moved to ``spikedyn.experiments.build``; this name keeps working (same functions)."""
from __future__ import annotations

from .experiments.build import MAX_NEURON_DT_MS, RATE_TAU_MS, build_model, build_task, default_model_params

__all__ = ["MAX_NEURON_DT_MS", "RATE_TAU_MS", "build_model", "build_task", "default_model_params"]
