"""Evidence-integration tasks RDM, CDI and N-CDI (McMahan et al. 2024, McMahan, Kleinman & Kao, Sec. 2.2).

Each trial draws a coherence ``mu ~ U[-0.1857, +0.1857]`` per noisy stream and feeds
``u_t ~ N(mu, noise_var * (1 ms / dt))`` at every step ``t = 0, dt, ..., duration_ms`` (both ends
included, so ``duration_ms / dt + 1`` steps). The paper samples at 1 ms with unit variance; for another
``dt`` the standard deviation is scaled by ``sqrt(1 ms / dt)`` so that the evidence per unit time
(``sum_t u_t * dt``) has the same statistics whatever ``dt`` (NeuroGym scales its noise the same way,
``sigma / sqrt(dt)``). The single output must be 0 at ``t = 0`` and ``sign(mu)`` of the relevant stream
(+1 or -1) at the final step; only those steps are in the loss. ``response_ms > 0`` widens the final
window to every step with ``t >= duration_ms - response_ms``.

Input layout: RDM ``[stream]``; CDI ``[context_1, context_2, stream_1, stream_2]``; N-CDI
``[context_1..context_N, stream_1..stream_N]``. Context inputs are one-hot and constant over the trial.
"""

from __future__ import annotations

import numpy as np

from .base import (
    Task,
    TaskBatch,
    check_int,
    check_nonnegative,
    check_positive,
    make_batch,
    masked_mse,
    n_steps,
    one_hot,
)

COHERENCE_MAX = 0.1857  # McMahan et al. 2024, Sec. 2.2: the largest mean evidence of a trial (the one definition)


class _Integration(Task):
    loss = "mse"
    n_outputs = 1

    def _setup(self, n_streams: int, with_context: bool, duration_ms: float, dt: float,
               noise_var: float, coherence_max: float, response_ms: float) -> None:
        check_positive(dt, "dt")
        check_positive(duration_ms, "duration_ms")
        check_positive(coherence_max, "coherence_max")
        check_nonnegative(noise_var, "noise_var")
        check_nonnegative(response_ms, "response_ms")
        if not 0 <= response_ms < duration_ms:
            raise ValueError(f"response_ms must be in [0, duration_ms={duration_ms}), got {response_ms}")
        self.dt = float(dt)
        self.n_streams = n_streams
        self.with_context = with_context
        self.n_steps = n_steps(duration_ms, dt, "duration_ms") + 1
        self.n_response = n_steps(response_ms, dt, "response_ms") + 1
        self.noise_std = float(np.sqrt(noise_var * 1.0 / dt))  # per-step std, 1 ms reference
        self.coherence_max = float(coherence_max)
        self.n_inputs = n_streams * (2 if with_context else 1)

    def _sample(self, batch_size: int, rng: np.random.Generator, split: str) -> TaskBatch:
        T, B, N = self.n_steps, batch_size, self.n_streams
        mu = rng.uniform(-self.coherence_max, self.coherence_max, size=(B, N))
        context = rng.integers(0, N, size=B) if self.with_context else np.zeros(B, dtype=np.int64)
        streams = mu[None] + self.noise_std * rng.standard_normal((T, B, N))
        if self.with_context:
            contexts = np.broadcast_to(one_hot(context, N)[None], (T, B, N))
            inputs = np.concatenate([contexts, streams], axis=-1)
        else:
            inputs = streams
        relevant = mu[np.arange(B), context]
        choice = np.where(relevant >= 0, 1, -1)
        targets = np.zeros((T, B, 1))
        targets[T - self.n_response:, :, 0] = choice
        mask = np.zeros((T, B, 1))
        mask[0] = 1.0
        mask[T - self.n_response:] = 1.0
        meta = {"coherence": relevant, "context": context, "choice": choice}
        if self.with_context:
            meta["coherences"] = mu
        return make_batch(inputs, targets, mask, **meta)

    def _score(self, outputs: np.ndarray, batch: TaskBatch) -> dict[str, float]:
        decision = outputs[-self.n_response:, :, 0].mean(axis=0)
        correct = np.sign(decision) == batch.meta["choice"]
        return {"accuracy": correct.mean(), "mse": masked_mse(outputs, batch)}


class RDM(_Integration):
    """Random-dots motion: integrate one noisy stream and report the sign of its mean.

    Args:
        duration_ms: trial length in ms (steps at t = 0..duration_ms inclusive).
        dt: ms per step; must divide ``duration_ms`` and ``response_ms``.
        noise_var: per-step input variance at dt = 1 ms (std scales as sqrt(1 ms / dt)).
        coherence_max: mu ~ U[-coherence_max, +coherence_max].
        response_ms: width of the supervised final window in ms (0: final step only).
    """

    name = "rdm"

    def __init__(self, duration_ms: float = 750.0, dt: float = 1.0, noise_var: float = 1.0,
                 coherence_max: float = COHERENCE_MAX, response_ms: float = 0.0) -> None:
        self._setup(1, False, duration_ms, dt, noise_var, coherence_max, response_ms)
        self._remember(duration_ms=duration_ms, dt=dt, noise_var=noise_var, coherence_max=coherence_max,
                       response_ms=response_ms)


class NCDI(_Integration):
    """N-input context-dependent integration: N contexts (one-hot) select one of N noisy streams.

    Args:
        n_contexts: number of contexts and streams N (2..6, as trained in McMahan et al. 2024).
        duration_ms, dt, noise_var, coherence_max, response_ms: as in :class:`RDM`.
    """

    name = "ncdi"

    def __init__(self, n_contexts: int = 3, duration_ms: float = 750.0, dt: float = 1.0,
                 noise_var: float = 1.0, coherence_max: float = COHERENCE_MAX,
                 response_ms: float = 0.0) -> None:
        n_contexts = check_int(n_contexts, "n_contexts", 2, 6)
        self._setup(n_contexts, True, duration_ms, dt, noise_var, coherence_max, response_ms)
        self._remember(n_contexts=n_contexts, duration_ms=duration_ms, dt=dt, noise_var=noise_var,
                       coherence_max=coherence_max, response_ms=response_ms)


class CDI(_Integration):
    """Context-dependent integration: N-CDI with two contexts (inputs [ctx1, ctx2, stream1, stream2])."""

    name = "cdi"

    def __init__(self, duration_ms: float = 750.0, dt: float = 1.0, noise_var: float = 1.0,
                 coherence_max: float = COHERENCE_MAX, response_ms: float = 0.0) -> None:
        self._setup(2, True, duration_ms, dt, noise_var, coherence_max, response_ms)
        self._remember(duration_ms=duration_ms, dt=dt, noise_var=noise_var, coherence_max=coherence_max,
                       response_ms=response_ms)
