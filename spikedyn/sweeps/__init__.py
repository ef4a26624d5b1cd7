"""Sweeps: grid, random and Optuna searches over ``spikedyn train`` configurations, run locally or on
Ray, with one run directory per trial and one Parquet table per sweep (``load_sweep``). See docs/sweeps.md.
"""
from .config import SweepConfig, TrialConfig, load_sweep_config, trial_key
from .run import SweepResult, Trial, expand, sweep
from .store import is_sweep_dir, load_sweep
from .trial import run_trial

__all__ = [
    "SweepConfig", "SweepResult", "Trial", "TrialConfig", "expand", "is_sweep_dir", "load_sweep",
    "load_sweep_config", "run_trial", "sweep", "trial_key",
]  # fmt: skip
