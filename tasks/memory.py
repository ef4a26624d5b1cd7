"""Long-memory symbol tasks of Park et al. (Park, Sagodi & Sokol, Supp. S2.2): copy memory, random-delay
copy memory and temporal ordering. These are step-indexed sequence tasks: ``dt = 1.0`` is nominal and all
lengths are in steps.

Copy memory (S2.2.1): 10 tokens from an alphabet of 8, then ``k`` blanks, one start token and 9 blanks
(``k + 20`` steps); the target is ``k + 10`` blanks followed by the 10 tokens. As worded in Park et al. the
start token and the first recall step coincide (step ``k + 10``); the recall steps are always the last 10.
Input symbols (one-hot, 10): tokens 0..7, blank 8, start 9. Output classes (9): tokens 0..7, blank 8.

Random-delay copy (S2.2.3): the same with ``k ~ U{delay_min..delay_max}`` per trial; every trial is
left-padded with all-zero input up to ``delay_max + 20`` steps (a fixed length for every batch), so all
trials end, and recall, in the last 10 steps.

Temporal order: Hochreiter & Schmidhuber (1997), experiment 6a, which Park et al. S2.2.2 follows (its text
only says "symbols A, B at the beginning and throughout the sequence ... classify AA, AB, BA, BB after a
k-step delay, k ~ U{50, 60}"). Length ``l ~ U{100..110}``; start marker E at step 0, end marker B at
step ``l - 1``; the relevant symbols X/Y at ``t1 ~ U{10..20}`` and ``t2 ~ U{50..60}`` (steps counted
from the E marker); random distractors a, b, c, d elsewhere. Classes XX=0, XY=1, YX=2, YY=3, supervised
at the final step. Trials are left-padded with zeros to ``length_max`` steps.
Input symbols (one-hot, 8): a, b, c, d, X, Y, E, B.
"""

from __future__ import annotations

import numpy as np

from .base import (
    Task,
    TaskBatch,
    check_choice,
    check_int,
    cross_entropy,
    final_step_scores,
    make_batch,
    one_hot,
)

N_TOKENS = 10  # tokens to remember
ALPHABET = 8
BLANK, START = 8, 9
COPY_MASKS = ("recall", "all")


def copy_layout(delays: np.ndarray, n_steps: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Symbol layout of copy-memory trials with per-trial ``delays`` (steps), right-aligned in ``n_steps``.

    Returns integer arrays: ``inputs [T, B]`` (-1 on padding), ``targets [T, B]``, ``valid [T, B]`` (bool,
    False on padding), ``tokens [B, 10]``, ``onset [B]`` (first step of each trial).
    """
    B = len(delays)
    t = np.arange(n_steps)[:, None]
    onset = n_steps - (delays + 2 * N_TOKENS)
    valid = t >= onset[None, :]
    tokens = rng.integers(0, ALPHABET, size=(B, N_TOKENS))
    inputs = np.where(valid, BLANK, -1)
    inputs[onset[None, :] + np.arange(N_TOKENS)[:, None], np.arange(B)[None, :]] = tokens.T
    inputs[n_steps - N_TOKENS] = START
    targets = np.full((n_steps, B), BLANK)
    targets[n_steps - N_TOKENS:] = tokens.T
    return {"inputs": inputs, "targets": targets, "valid": valid, "tokens": tokens, "onset": onset}


class _Copy(Task):
    loss = "ce"
    dt = 1.0
    n_inputs = ALPHABET + 2
    n_outputs = ALPHABET + 1

    def _batch(self, delays: np.ndarray, n_steps: int, rng: np.random.Generator) -> TaskBatch:
        lay = copy_layout(delays, n_steps, rng)
        targets = one_hot(lay["targets"], self.n_outputs)
        if self.mask_mode == "all":
            mask = np.repeat(lay["valid"][..., None], self.n_outputs, axis=-1).astype(np.float32)
        else:
            mask = np.zeros_like(targets)
            mask[n_steps - N_TOKENS:] = 1.0
        return make_batch(one_hot(lay["inputs"], self.n_inputs), targets, mask, delay=delays,
                          tokens=lay["tokens"], onset=lay["onset"])

    def _score(self, outputs: np.ndarray, batch: TaskBatch) -> dict[str, float]:
        recall = outputs[-N_TOKENS:]  # [10, B, 9]
        tokens = batch.meta["tokens"].T
        return {
            "accuracy": np.mean(recall.argmax(axis=-1) == tokens),
            "cross_entropy": cross_entropy(recall, tokens),
            "chance_cross_entropy": np.log(ALPHABET),
        }


class CopyMemory(_Copy):
    """Copy memory with a fixed delay (Park et al. S2.2.1); ``delay + 20`` steps.

    Args:
        delay: k, the number of blanks between the tokens and the start token (steps, >= 0).
        mask: "recall" (the 10 recall steps) or "all" (every step).
    """

    name = "copy_memory"

    def __init__(self, delay: int = 100, mask: str = "recall") -> None:
        self.delay = check_int(delay, "delay", 0)
        self.mask_mode = check_choice(mask, "mask", COPY_MASKS)
        self._remember(delay=self.delay, mask=mask)

    def _sample(self, batch_size: int, rng: np.random.Generator, split: str) -> TaskBatch:
        delays = np.full(batch_size, self.delay)
        return self._batch(delays, self.delay + 2 * N_TOKENS, rng)


class RandomDelayCopy(_Copy):
    """Copy memory with ``delay ~ U{delay_min..delay_max}`` per trial (Park et al. S2.2.3).

    Trials are left-padded with zero input to ``delay_max + 20`` steps; the mask is 0 on padding.

    Args:
        delay_min, delay_max: inclusive delay range in steps (Park et al.: 100..120).
        mask: "recall" (each trial's 10 recall steps, always the last 10) or "all" (each trial's own steps).
    """

    name = "random_delay_copy"

    def __init__(self, delay_min: int = 100, delay_max: int = 120, mask: str = "recall") -> None:
        self.delay_min = check_int(delay_min, "delay_min", 0)
        self.delay_max = check_int(delay_max, "delay_max", self.delay_min)
        self.mask_mode = check_choice(mask, "mask", COPY_MASKS)
        self._remember(delay_min=self.delay_min, delay_max=self.delay_max, mask=mask)

    def _sample(self, batch_size: int, rng: np.random.Generator, split: str) -> TaskBatch:
        delays = rng.integers(self.delay_min, self.delay_max + 1, size=batch_size)
        return self._batch(delays, self.delay_max + 2 * N_TOKENS, rng)


SYMBOLS = ("a", "b", "c", "d", "X", "Y", "E", "B")
_X, _E, _B = 4, 6, 7
CLASSES = ("XX", "XY", "YX", "YY")


class TemporalOrder(Task):
    """Temporal order, Hochreiter & Schmidhuber (1997) experiment 6a (see module docstring).

    Args:
        length_min, length_max: inclusive range of sequence lengths l (steps).
        t1_min, t1_max: inclusive range of the first relevant position (steps after the E marker).
        t2_min, t2_max: inclusive range of the second relevant position.
    """

    name = "temporal_order"
    loss = "ce"
    dt = 1.0
    n_inputs = len(SYMBOLS)
    n_outputs = len(CLASSES)

    def __init__(self, length_min: int = 100, length_max: int = 110, t1_min: int = 10, t1_max: int = 20,
                 t2_min: int = 50, t2_max: int = 60) -> None:
        self.t1 = (check_int(t1_min, "t1_min", 1), check_int(t1_max, "t1_max", t1_min))
        self.t2 = (check_int(t2_min, "t2_min", t1_max + 1), check_int(t2_max, "t2_max", t2_min))
        self.length = (check_int(length_min, "length_min", t2_max + 2),
                       check_int(length_max, "length_max", length_min))
        self._remember(length_min=length_min, length_max=length_max, t1_min=t1_min, t1_max=t1_max,
                       t2_min=t2_min, t2_max=t2_max)

    def _sample(self, batch_size: int, rng: np.random.Generator, split: str) -> TaskBatch:
        B, T = batch_size, self.length[1]
        cols = np.arange(B)
        length = rng.integers(self.length[0], self.length[1] + 1, size=B)
        t1 = rng.integers(self.t1[0], self.t1[1] + 1, size=B)
        t2 = rng.integers(self.t2[0], self.t2[1] + 1, size=B)
        first, second = rng.integers(0, 2, size=B), rng.integers(0, 2, size=B)  # 0 = X, 1 = Y
        onset = T - length
        symbols = rng.integers(0, 4, size=(T, B))
        symbols[np.arange(T)[:, None] < onset[None, :]] = -1
        symbols[onset, cols] = _E
        symbols[T - 1] = _B
        symbols[onset + t1, cols] = _X + first
        symbols[onset + t2, cols] = _X + second
        label = 2 * first + second
        targets = one_hot(np.broadcast_to(label, (T, B)), self.n_outputs)
        mask = np.zeros_like(targets)
        mask[-1] = 1.0
        return make_batch(one_hot(symbols, self.n_inputs), targets, mask, label=label, first=first,
                          second=second, t1=t1, t2=t2, length=length, onset=onset)

    def _score(self, outputs: np.ndarray, batch: TaskBatch) -> dict[str, float]:
        return final_step_scores(outputs, batch.meta["label"])
