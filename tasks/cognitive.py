"""NeuroGym-style cognitive tasks ``2af``, ``dms`` and ``romo`` (used by Liu et al.).

Vectorised re-implementations of NeuroGym 2.x ``PerceptualDecisionMaking-v0``, ``DelayMatchSample-v0``
and ``DelayComparison-v0`` (files ``neurogym/envs/native/perceptualdecisionmaking.py``,
``delaymatchsample.py``, ``delaycomparison.py``): same default ``dt`` (100 ms), period timings (all fixed
durations in NeuroGym's defaults, none drawn at random), observation layout, noise
``N(0, (sigma / sqrt(dt))^2)`` with dt in ms, and ground truth. The outputs are NeuroGym's actions
(0 = fixate, then the choices); targets are one-hot actions at every step: "fixate" before the decision
period and the correct choice during it.

Differences from NeuroGym: a whole batch is generated at once with ``numpy.random.Generator`` (so the
random streams differ from NeuroGym's ``RandomState``); a ``dt`` that does not divide a period raises
``ValueError`` instead of NeuroGym's silent flooring of the period to a multiple of ``dt``; timings
must be fixed numbers (NeuroGym also accepts random distributions, none of which these envs use by
default).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base import (
    Task,
    TaskBatch,
    check_choice,
    check_int,
    check_nonnegative,
    check_positive,
    make_batch,
    n_steps,
    one_hot,
)

MASKS = ("all", "decision")


class _PeriodTask(Task):
    """A trial made of consecutive fixed periods, the last one being "decision"."""

    loss = "ce"
    periods: tuple[str, ...] = ()
    default_timing: dict[str, float] = {}

    def _setup_periods(self, dt: float, timing: dict[str, float] | None, sigma: float, mask: str) -> None:
        check_positive(dt, "dt")
        check_nonnegative(sigma, "sigma")
        self.mask_mode = check_choice(mask, "mask", MASKS)
        if timing is not None and not isinstance(timing, dict):
            raise ValueError(f"timing must map period names to ms, e.g. {{'decision': 100}}, got {timing!r}")
        timing = dict(timing or {})
        unknown = sorted(set(timing) - set(self.periods))
        if unknown:
            raise ValueError(f"unknown period(s) {unknown} in timing; periods are {list(self.periods)}")
        self.timing = {**self.default_timing, **timing}
        for period, value in self.timing.items():
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ValueError(f"timing['{period}'] must be a number of ms, got {value!r}")
        self.dt = float(dt)
        self.noise_std = float(sigma) / float(np.sqrt(dt))  # NeuroGym: sigma / sqrt(dt), dt in ms
        self.start: dict[str, int] = {}
        self.end: dict[str, int] = {}
        t = 0
        for period in self.periods:
            self.start[period] = t
            t += n_steps(self.timing[period], dt, f"timing['{period}']")
            self.end[period] = t
        self.n_steps = t
        if self.end["decision"] == self.start["decision"]:
            raise ValueError("the decision period must last at least one step (timing['decision'] >= dt)")

    def span(self, period: str) -> slice:
        """Step indices of ``period``."""
        return slice(self.start[period], self.end[period])

    def _finish(self, inputs: np.ndarray, choice: np.ndarray, **meta: np.ndarray) -> TaskBatch:
        T, B = inputs.shape[:2]
        actions = np.zeros((T, B), dtype=np.int64)
        actions[self.span("decision")] = choice
        targets = one_hot(actions, self.n_outputs)
        mask = np.ones_like(targets) if self.mask_mode == "all" else np.zeros_like(targets)
        mask[self.span("decision")] = 1.0
        return make_batch(inputs, targets, mask, choice=choice, **meta)

    def _noise(self, rng: np.random.Generator, period: str, batch_size: int, width: int) -> np.ndarray:
        length = self.end[period] - self.start[period]
        return self.noise_std * rng.standard_normal((length, batch_size, width))

    def _score(self, outputs: np.ndarray, batch: TaskBatch) -> dict[str, float]:
        decision = outputs[self.span("decision"), :, 1:].mean(axis=0)  # choice outputs, fixation excluded
        scores = {"accuracy": np.mean(decision.argmax(axis=-1) + 1 == batch.meta["choice"])}
        before = outputs[: self.start["decision"]]
        if before.shape[0] > 0:
            scores["fixation_accuracy"] = np.mean(before.argmax(axis=-1) == 0)
        return scores


def _ring(dim_ring: int) -> np.ndarray:
    return np.linspace(0.0, 2 * np.pi, dim_ring, endpoint=False)


class TwoAF(_PeriodTask):
    """Two-alternative forced choice (NeuroGym ``PerceptualDecisionMaking-v0``).

    Inputs ``[fixation, stimulus_1..stimulus_dim_ring]``: fixation is 1 during the fixation period only
    (as in NeuroGym); during "stimulus" channel ``i`` carries ``cos(theta_i - theta_gt) * coh / 200 + 0.5``
    plus noise, ``theta_i = 2 pi i / dim_ring`` (rad). Outputs ``[fixate, choice_1..choice_dim_ring]``.

    Args:
        dt: ms per step (NeuroGym default 100).
        timing: ms per period, overriding {"fixation": 100, "stimulus": 2000, "delay": 0, "decision": 100}.
        cohs: coherences in percent, drawn uniformly per trial (default [0, 6.4, 12.8, 25.6, 51.2]).
        sigma: input noise; per-step std is sigma / sqrt(dt / 1 ms).
        dim_ring: number of stimulus locations / choices (>= 2).
        mask: "all" (every step, as NeuroGym supervised training) or "decision" (decision period only).
    """

    name = "2af"
    periods = ("fixation", "stimulus", "delay", "decision")
    default_timing = {"fixation": 100, "stimulus": 2000, "delay": 0, "decision": 100}

    def __init__(self, dt: float = 100, timing: dict[str, float] | None = None,
                 cohs: Sequence[float] | None = None, sigma: float = 1.0, dim_ring: int = 2,
                 mask: str = "all") -> None:
        self._setup_periods(dt, timing, sigma, mask)
        self.dim_ring = check_int(dim_ring, "dim_ring", 2)
        self.cohs = np.asarray([0, 6.4, 12.8, 25.6, 51.2] if cohs is None else cohs, dtype=np.float64)
        if self.cohs.ndim != 1 or self.cohs.size == 0 or not np.all(np.isfinite(self.cohs)):
            raise ValueError(f"cohs must be a non-empty list of coherences in percent, got {cohs!r}")
        self.theta = _ring(self.dim_ring)
        self.n_inputs = self.n_outputs = 1 + self.dim_ring
        self._remember(dt=dt, timing=dict(self.timing), cohs=self.cohs.tolist(), sigma=sigma,
                       dim_ring=self.dim_ring, mask=mask)

    def _sample(self, batch_size: int, rng: np.random.Generator, split: str) -> TaskBatch:
        B = batch_size
        gt = rng.integers(0, self.dim_ring, size=B)
        coh = rng.choice(self.cohs, size=B)
        inputs = np.zeros((self.n_steps, B, self.n_inputs))
        inputs[self.span("fixation"), :, 0] = 1.0
        stim = np.cos(self.theta[None, :] - self.theta[gt][:, None]) * (coh[:, None] / 200) + 0.5
        inputs[self.span("stimulus"), :, 1:] = stim + self._noise(rng, "stimulus", B, self.dim_ring)
        return self._finish(inputs, gt + 1, coherence=coh, stim_theta=self.theta[gt])

    def _score(self, outputs: np.ndarray, batch: TaskBatch) -> dict[str, float]:
        """``accuracy`` counts only trials with coherence > 0: at coherence 0 the stimulus carries no
        information and NeuroGym's ground truth is a coin flip, so no observer can beat 50% there and
        the all-trial ceiling is about 0.9 (``accuracy_all`` reports it)."""
        scores = super()._score(outputs, batch)
        decision = outputs[self.span("decision"), :, 1:].mean(axis=0)
        correct = decision.argmax(axis=-1) + 1 == batch.meta["choice"]
        informative = batch.meta["coherence"] > 0
        scores["accuracy_all"] = scores["accuracy"]
        scores["accuracy"] = float(np.mean(correct[informative])) if informative.any() else float("nan")
        return scores


class DMS(_PeriodTask):
    """Delayed match-to-sample (NeuroGym ``DelayMatchSample-v0``).

    Inputs ``[fixation, stimulus_1..stimulus_dim_ring]``: fixation is 1 in every period except
    "decision"; the sample (test) stimulus ``cos(theta_i - theta) * 0.5 + 0.5`` plus noise is shown during
    "sample" ("test"). The test angle equals the sample angle on match trials and is the sample + pi (rad)
    on non-match trials. Outputs ``[fixate, match, non-match]``.

    Args:
        dt: ms per step (NeuroGym default 100).
        timing: ms per period, overriding
            {"fixation": 300, "sample": 500, "delay": 1000, "test": 500, "decision": 900}.
        sigma: input noise; per-step std is sigma / sqrt(dt / 1 ms).
        dim_ring: number of stimulus channels (sample angles 2 pi i / dim_ring), >= 2.
        mask: "all" or "decision".
    """

    name = "dms"
    periods = ("fixation", "sample", "delay", "test", "decision")
    default_timing = {"fixation": 300, "sample": 500, "delay": 1000, "test": 500, "decision": 900}
    n_outputs = 3

    def __init__(self, dt: float = 100, timing: dict[str, float] | None = None, sigma: float = 1.0,
                 dim_ring: int = 2, mask: str = "all") -> None:
        self._setup_periods(dt, timing, sigma, mask)
        self.dim_ring = check_int(dim_ring, "dim_ring", 2)
        self.theta = _ring(self.dim_ring)
        self.n_inputs = 1 + self.dim_ring
        self._remember(dt=dt, timing=dict(self.timing), sigma=sigma, dim_ring=self.dim_ring, mask=mask)

    def _sample(self, batch_size: int, rng: np.random.Generator, split: str) -> TaskBatch:
        B = batch_size
        choice = rng.integers(1, 3, size=B)  # 1 = match, 2 = non-match
        sample_theta = self.theta[rng.integers(0, self.dim_ring, size=B)]
        test_theta = np.where(choice == 1, sample_theta, np.mod(sample_theta + np.pi, 2 * np.pi))
        inputs = np.zeros((self.n_steps, B, self.n_inputs))
        inputs[: self.start["decision"], :, 0] = 1.0
        for period, angle in (("sample", sample_theta), ("test", test_theta)):
            stim = np.cos(self.theta[None, :] - angle[:, None]) * 0.5 + 0.5
            inputs[self.span(period), :, 1:] = stim + self._noise(rng, period, B, self.dim_ring)
        return self._finish(inputs, choice, match=(choice == 1).astype(np.int64),
                            sample_theta=sample_theta, test_theta=test_theta)


class Romo(_PeriodTask):
    """Delayed comparison of two vibration frequencies (Romo; NeuroGym ``DelayComparison-v0``).

    Inputs ``[fixation, stimulus]``: fixation is 1 in every period except "decision"; during
    "stimulus1"/"stimulus2" the stimulus channel carries ``(1 + (f - f_min) / (f_max - f_min)) / 2``
    (0.5..1) and both channels (fixation included, as in NeuroGym) get noise. Each trial draws a pair
    ``(a, b)`` from ``vpairs`` (Hz, a > b) and its order: choice 1 means f1 > f2 (f1 = a), choice 2 means
    f1 < f2. Outputs ``[fixate, f1 > f2, f1 < f2]``.

    Args:
        dt: ms per step (NeuroGym default 100).
        timing: ms per period, overriding
            {"fixation": 500, "stimulus1": 500, "delay": 1000, "stimulus2": 500, "decision": 100}.
        vpairs: frequency pairs (larger, smaller) in Hz; default (18,10), (22,14), (26,18), (30,22), (34,26).
        sigma: input noise; per-step std is sigma / sqrt(dt / 1 ms).
        mask: "all" or "decision".
    """

    name = "romo"
    periods = ("fixation", "stimulus1", "delay", "stimulus2", "decision")
    default_timing = {"fixation": 500, "stimulus1": 500, "delay": 1000, "stimulus2": 500, "decision": 100}
    n_inputs = 2
    n_outputs = 3

    def __init__(self, dt: float = 100, timing: dict[str, float] | None = None,
                 vpairs: Sequence[Sequence[float]] | None = None, sigma: float = 1.0,
                 mask: str = "all") -> None:
        self._setup_periods(dt, timing, sigma, mask)
        default = [(18, 10), (22, 14), (26, 18), (30, 22), (34, 26)]
        self.vpairs = np.asarray(default if vpairs is None else vpairs, dtype=np.float64)
        if (self.vpairs.ndim != 2 or self.vpairs.shape[1] != 2 or len(self.vpairs) == 0
                or not np.all(np.isfinite(self.vpairs))):
            raise ValueError(f"vpairs must be a non-empty list of (larger, smaller) pairs, got {vpairs!r}")
        if np.any(self.vpairs[:, 0] <= self.vpairs[:, 1]):
            raise ValueError("each vpair must be (larger, smaller) so that choice 1 means f1 > f2")
        self.f_min, self.f_max = float(self.vpairs.min()), float(self.vpairs.max())
        self._remember(dt=dt, timing=dict(self.timing), vpairs=self.vpairs.tolist(), sigma=sigma, mask=mask)

    def represent(self, f: np.ndarray) -> np.ndarray:
        """NeuroGym's input code of a frequency: linear map of [f_min, f_max] onto [0.5, 1]."""
        return (1 + (f - self.f_min) / (self.f_max - self.f_min)) / 2

    def _sample(self, batch_size: int, rng: np.random.Generator, split: str) -> TaskBatch:
        B = batch_size
        choice = rng.integers(1, 3, size=B)
        pair = rng.integers(0, len(self.vpairs), size=B)
        big, small = self.vpairs[pair, 0], self.vpairs[pair, 1]
        f1, f2 = np.where(choice == 1, big, small), np.where(choice == 1, small, big)
        inputs = np.zeros((self.n_steps, B, self.n_inputs))
        inputs[: self.start["decision"], :, 0] = 1.0
        for period, f in (("stimulus1", f1), ("stimulus2", f2)):
            inputs[self.span(period), :, 1] = self.represent(f)
            inputs[self.span(period)] += self._noise(rng, period, B, self.n_inputs)
        return self._finish(inputs, choice, f1=f1, f2=f2, pair_index=pair)
