"""One-line summaries of models and results (``repr(TrainResult)``, ``repr(spikedyn.load_run(...))``)."""
from __future__ import annotations

from typing import Any

SCORE_KEYS = ("accuracy", "eval_loss")  # shown first in reprs, when present
_NOT_SCORES = ("step", "loss", "grad_norm")  # the last training step's record, not held-out scores


def format_scores(scores: dict[str, Any], limit: int = 3) -> str:
    """``"accuracy=0.931, eval_loss=0.123"``: held-out scores, main ones first, 4 significant digits."""
    rest = [k for k in scores if k not in SCORE_KEYS and k not in _NOT_SCORES]
    keys = [k for k in SCORE_KEYS if k in scores] + rest
    shown = [f"{k}={scores[k]:.4g}" if isinstance(scores[k], float) else f"{k}={scores[k]!r}" for k in keys[:limit]]
    return ", ".join(shown + (["..."] if len(keys) > limit else []))


def model_name(model: Any) -> str:
    cfg = model.config() if hasattr(model, "config") else {}
    sizes = "" if not cfg else f"{cfg.get('n_in')}->{cfg.get('n_hidden')}->{cfg.get('n_out')}"
    neuron = f", {cfg['neuron']}" if cfg.get("neuron") else ""
    return f"{type(model).__name__}({sizes}{neuron})"


def result_repr(result: Any) -> str:
    """``TrainResult(steps=300, accuracy=0.931, eval_loss=0.123, model=RateRNN(3->64->3), run_dir=...)``
    (the per-step history is in ``result.history``, not in the repr)."""
    steps = result.history[-1]["step"] if result.history else 0
    parts = [f"steps={steps}"]
    if result.final:
        parts.append(format_scores(result.final))
    if result.stopped_early:
        parts.append("stopped_early=True")
    parts.append(f"model={model_name(result.model)}")
    if result.run_dir is not None:
        parts.append(f"run_dir={str(result.run_dir)!r}")
    return f"{type(result).__name__}({', '.join(parts)})"
