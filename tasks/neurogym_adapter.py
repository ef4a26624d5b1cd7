"""Adapter that turns any installed NeuroGym environment into a spikedyn task: ``neurogym:<EnvId>``.

``make("neurogym:PerceptualDecisionMaking-v0", dt=20)`` builds the env with ``neurogym.make(env_id,
**env_kwargs)``. ``sample(B, rng)`` seeds the env from ``rng`` (one draw of a 32-bit seed), calls
``env.new_trial()`` B times and stacks ``env.ob`` / ``env.gt`` time-major. Trials of different lengths
are right-padded (the trial starts at step 0, as in the env; padding is zero input, target "fixate" and
mask 0, so it never influences a causal network's outputs on real steps). Targets are one-hot actions,
loss "ce", mask 1 on every real step. Scalar entries of NeuroGym's trial dict (e.g. ``ground_truth``,
``coh``) become ``meta`` arrays, next to ``length`` (steps per trial).

Score: ``accuracy`` is, per trial, the argmax of the outputs averaged over the decision steps (gt != 0)
compared with the (majority) gt of those steps; ``fixation_accuracy`` the per-step argmax == 0 on real
steps with gt == 0. NeuroGym is imported only when such a task is built.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Task, TaskBatch, make_batch, one_hot

PREFIX = "neurogym:"


def _import_neurogym() -> Any:
    try:
        import neurogym
    except ImportError:
        raise ImportError("neurogym is not installed: pip install 'spikedyn[neurogym]'") from None
    return neurogym


class NeuroGymTask(Task):
    """Wrap the NeuroGym environment ``env_id`` (any ``TrialEnv`` with a Discrete action space)."""

    loss = "ce"

    def __init__(self, env_id: str, **env_kwargs: Any) -> None:
        ngym = _import_neurogym()
        try:
            env = ngym.make(env_id, **env_kwargs)
        except Exception as err:  # gymnasium raises several error types for unknown ids / kwargs
            raise ValueError(f"cannot build NeuroGym env {env_id!r} with {env_kwargs}: {err}") from None
        self.env = env.unwrapped
        if not hasattr(self.env, "new_trial"):
            raise ValueError(f"{env_id} is not a NeuroGym TrialEnv (no new_trial)")
        n_actions = getattr(self.env.action_space, "n", None)
        if n_actions is None:
            raise ValueError(f"{env_id} has a non-discrete action space; only Discrete actions are supported")
        obs_shape = self.env.observation_space.shape
        if obs_shape is None or len(obs_shape) != 1:
            raise ValueError(f"{env_id} has observations of shape {obs_shape}; only 1-D ones are supported")
        self.name = PREFIX + env_id
        self.env_id = env_id
        self.dt = float(self.env.dt)
        self.n_inputs = int(obs_shape[0])
        self.n_outputs = int(n_actions)
        self._remember(**env_kwargs)

    def _sample(self, batch_size: int, rng: np.random.Generator, split: str) -> TaskBatch:
        self.env.seed(int(rng.integers(0, 2**32 - 1)))
        obs, gts, trials = [], [], []
        for _ in range(batch_size):
            trial = self.env.new_trial()
            if len(self.env.ob) == 0:
                raise ValueError(f"NeuroGym env {self.env_id!r} made a trial of 0 steps; give its timing periods "
                                 "at least one dt")
            obs.append(np.asarray(self.env.ob, dtype=np.float32).reshape(len(self.env.ob), -1))
            gts.append(np.asarray(self.env.gt).reshape(-1).astype(np.int64))
            trials.append(trial if isinstance(trial, dict) else {})
        lengths = np.array([len(o) for o in obs])
        T = int(lengths.max())
        inputs = np.zeros((T, batch_size, self.n_inputs), dtype=np.float32)
        actions = np.zeros((T, batch_size), dtype=np.int64)
        for b, (ob, gt) in enumerate(zip(obs, gts, strict=True)):
            inputs[: len(ob), b] = ob
            actions[: len(gt), b] = gt
        valid = np.arange(T)[:, None] < lengths[None, :]
        mask = np.repeat(valid[..., None], self.n_outputs, axis=-1)
        meta = {**_scalar_meta(trials), "length": lengths}
        return make_batch(inputs, one_hot(actions, self.n_outputs), mask, **meta)

    def _score(self, outputs: np.ndarray, batch: TaskBatch) -> dict[str, float]:
        gt = batch.targets.argmax(axis=-1)  # [T, B]
        valid = batch.mask[..., 0] > 0
        decision = valid & (gt != 0)
        scores: dict[str, float] = {}
        has = decision.any(axis=0)
        if has.any():
            counts = decision.sum(axis=0)
            mean_out = (outputs * decision[..., None]).sum(axis=0) / np.maximum(counts, 1)[:, None]
            votes = np.stack([(decision & (gt == k)).sum(axis=0) for k in range(self.n_outputs)], axis=-1)
            correct = mean_out.argmax(axis=-1) == votes.argmax(axis=-1)
            scores["accuracy"] = float(correct[has].mean())
        fixate = valid & (gt == 0)
        if fixate.any():
            scores["fixation_accuracy"] = float((outputs.argmax(axis=-1) == 0)[fixate].mean())
        return scores


def _scalar_meta(trials: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Per-trial numeric scalars present in every trial dict, as arrays of length B."""
    if not trials:
        return {}
    keys = set(trials[0]).intersection(*trials[1:])
    meta = {}
    for key in sorted(keys):
        values = [t[key] for t in trials]
        if all(np.ndim(v) == 0 and isinstance(v, (int, float, bool, np.number, np.bool_)) for v in values):
            meta[key] = np.asarray(values)
    return meta
