"""Run directories as a user sees them: ``spikedyn.load_run`` and readable summaries of results.

``load_run(path) -> Run(model, config, summary)`` rebuilds the trained model of a finished
``spikedyn.train`` run from its ``model.pt`` (read with ``torch.load(weights_only=True)``: a crafted file
cannot run code) and its ``config.json``/``summary.json``. ``deploy``, ``eval`` and ``analyze`` use it
instead of reading ``model.pt`` themselves.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from .learning.reprs import format_scores, model_name


class Run(NamedTuple):
    """A finished run: ``model`` (trained, in eval mode, on CPU), ``config`` (config.json: model, task,
    rule, train settings incl. ``lr_changes``) and ``summary`` (summary.json: ``final`` scores, ``steps``,
    ``stopped_early``). Unpacks as ``model, config, summary = spikedyn.load_run(path)``."""

    model: Any
    config: dict[str, Any]
    summary: dict[str, Any]

    @property
    def task(self) -> Any:
        """The run's task, rebuilt from ``config["task"]`` (``spikedyn.tasks.make(**config["task"])``)."""
        import spikedyn.tasks as tasks

        return tasks.make(**self.config["task"])

    def __repr__(self) -> str:
        task = self.config.get("task", {})
        rule = self.config.get("rule", {})
        train = self.config.get("train", {})
        parts = [f"model={model_name(self.model)}",
                 f"task={task.get('name') if isinstance(task, dict) else task!r}",
                 f"rule={rule.get('name') if isinstance(rule, dict) else rule!r}",
                 f"steps={self.summary.get('steps', train.get('steps'))}"]  # fmt: skip
        if self.summary.get("final"):
            parts.append(format_scores(self.summary["final"]))
        return f"Run({', '.join(parts)})"


def load_run(path: str | Path) -> Run:
    """The trained model, configuration and summary of a finished ``spikedyn train`` run directory.

    Raises ``FileNotFoundError`` (no such run / not finished) or ``RunError`` (a damaged or unsafe file,
    a model.pt that does not match its config), each one line naming the file.
    """
    from .learning.checkpoint import RunError, UnreadableFile, latest_checkpoint, load_json, safe_torch_load
    from .models import from_config

    run_dir = Path(path)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    weights = run_dir / "model.pt"
    if not weights.is_file():
        ck = latest_checkpoint(run_dir)
        state = f"it is not finished (latest checkpoint: {ck.name})" if ck else "it holds no spikedyn train run"
        raise FileNotFoundError(f"{weights} not found: {state}")
    payload = safe_torch_load(weights)
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), dict):
        raise UnreadableFile(f"cannot read {weights}: not a spikedyn model file")
    cfg_path = run_dir / "config.json"
    config = payload.get("config") if isinstance(payload.get("config"), dict) else load_json(cfg_path)
    model_cfg = config.get("model")
    if not isinstance(model_cfg, dict):
        raise RunError(f"{weights}: its config has no model description (a model saved by spikedyn.train?)")
    try:
        model = from_config(model_cfg)
        model.load_state_dict(payload["model"])
    except (TypeError, ValueError, RuntimeError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RunError(f"{weights} does not match its model config: {first}") from None
    model.eval()
    summary_path = run_dir / "summary.json"
    summary = load_json(summary_path) if summary_path.is_file() else {}
    return Run(model=model, config=config, summary=summary)


def evaluate_run(run: Run, task: Any = None, trials: int | None = None, seed: int | None = None) -> dict[str, Any]:
    """Held-out scores of a loaded run's model (``spikedyn.learning.evaluate``).

    Defaults reproduce the run's own final evaluation: its task, its ``eval_trials`` trials from its
    held-out stream (``seed`` = its training seed; one per member for a Population trained so, as a sweep's
    ``populations/<hash>`` runs are) and its noise seed. ``task`` may be another task with
    the same numbers of inputs and outputs; ``trials`` and ``seed`` pick other held-out trials.
    """
    from .learning.checkpoint import RunError
    from .learning.train import EVAL_SEED_OFFSET, _step_seed, evaluate, sample_batch

    train_cfg = run.config.get("train", {})
    task = run.task if task is None else task
    trials = int(train_cfg.get("eval_trials", 1000) if trials is None else trials)
    seed = train_cfg.get("seed", 0) if seed is None else seed  # a list: one per Population member (sweeps)
    seed = [int(s) for s in seed] if isinstance(seed, list) else int(seed)
    if trials < 1:
        raise ValueError(f"trials must be a positive integer, got {trials}")
    if isinstance(seed, list) and len(seed) != getattr(run.model, "size", None):
        raise RunError(f"the run's config gives {len(seed)} seeds for a model of {getattr(run.model, 'size', 1)}")
    n_in, n_out = run.model.n_in, run.model.n_out
    if (task.n_inputs, task.n_outputs) != (n_in, n_out):
        raise ValueError(f"task {task.name} has {task.n_inputs} inputs and {task.n_outputs} outputs; the run's "
                         f"model takes {n_in} inputs and gives {n_out} outputs")
    batch = sample_batch(task, trials, seed, EVAL_SEED_OFFSET, split="test")  # train's held-out trials
    eval_seed = [_step_seed(s, -1) for s in seed] if isinstance(seed, list) else _step_seed(seed, -1)
    return {"task": task.name, "trials": trials, "seed": seed,
            **evaluate(run.model, task, batch, seed=eval_seed)}  # fmt: skip
