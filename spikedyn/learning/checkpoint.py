"""Run directories: checkpoints, the metrics log, the run's lock and the checks made before resuming.

A run directory written by ``spikedyn.train`` holds ``config.json`` (the whole training
configuration), ``metrics.jsonl``, ``checkpoints/step_XXXXXXX.pt``, and, once finished, ``model.pt``
and ``summary.json`` (written last: it marks the run finished). Every file is written atomically and
read with ``torch.load(weights_only=True)`` or ``json``, so nothing read from a run directory can run
code. One process at a time may write a run directory (``run_lock``). A directory is recognised as a
run by its config.json (the sections ``model``, ``task``, ``rule``, ``train``: ``is_run_dir``); in any
other directory files with these names are the user's, and ``train`` refuses to write over or delete
them (``check_not_foreign``).
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import io
import json
import logging
import math
import pickle
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from ..atomic import atomic_write_bytes, remove_stale_temp_files
from ..atomic import atomic_write_json as _atomic_write_json

log = logging.getLogger("spikedyn.runs")

CKPT_DIR = "checkpoints"
KEEP = 2  # checkpoints kept; older ones are deleted after a new one is safely on disk
LOCK_NAME = ".lock"
DEFAULT_LR = 1e-3
_CKPT_NAME = re.compile(r"step_(\d+)\.pt")
# what ``restart=True`` removes: everything spikedyn writes into a run directory (all derived from the run)
RUN_FILES = ("config.json", "metrics.jsonl", "model.pt", "summary.json", "deploy.json", "deploy.md", "report.html")
# settings runs record since a version of spikedyn; a run written before it is resumed without checking them
RECORDED_SINCE = ("rule.teacher_weights_sha256",)
RESTART_HINT = "start it over with `spikedyn train --restart` (train(..., restart=True)) or use another --run-dir"

F = TypeVar("F", bound=Callable[..., Any])


class RunError(ValueError):
    """A run directory cannot be used as asked; the message is one line that says what to do."""


class RunLocked(RunError):
    """Another process is writing the run directory."""


class RunFinished(RunError):
    """A finished run (``is_finished``) was asked to change; it is never rewritten."""


class UnreadableFile(RunError):
    """A run file is damaged or is not a plain spikedyn file (e.g. it holds pickled Python objects)."""


# -- writing -----------------------------------------------------------------------------------------
def atomic_write_json(path: Path, obj: Any) -> None:
    """``obj`` as JSON, written atomically; tensors and numpy values are converted."""
    _atomic_write_json(path, obj, default=_json_default)


def atomic_torch_save(path: Path, obj: Any) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def state_digest(module: torch.nn.Module) -> str:
    """sha256 of a module's ``state_dict`` (names, shapes and values as float64, in the dict's order): two
    modules with the same digest hold the same weights. What a run records of a network it uses but does
    not train (full-FORCE's trained teacher), so a resume with another one is refused."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        t = t.detach().to("cpu", torch.float64).contiguous()
        h.update(f"{name}{list(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def plain(obj: Any) -> Any:
    """``obj`` as JSON would give it back (tuples -> lists, numpy/tensor scalars -> numbers): what is
    stored in config.json and in checkpoints, and what resume compares."""
    return json.loads(json.dumps(obj, default=_json_default))


def write_metrics(path: Path, history: list[dict]) -> None:
    """Rewrite metrics.jsonl from the in-memory history (atomic; used at every checkpoint)."""
    atomic_write_bytes(path, "".join(json.dumps(r, default=_json_default) + "\n" for r in history).encode())


# -- reading without running code ----------------------------------------------------------------------
def safe_torch_load(path: Path) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU: tensors and plain containers only, never code.
    Any failure is one ``UnreadableFile`` line naming the file."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError:
        why = "it is damaged or holds Python objects, which spikedyn never loads (they could run code)"
    except EOFError:
        why = "it is empty or truncated"
    except Exception as e:  # torch raises RuntimeError/ValueError/... for damaged zip archives
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        why = f"it is damaged ({first})"
    raise UnreadableFile(f"cannot read {path}: {why}")


def load_json(path: Path) -> Any:
    """A JSON file of a run directory, or one ``UnreadableFile`` line naming it."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise
    except (ValueError, UnicodeDecodeError) as e:
        raise UnreadableFile(f"cannot read {path}: not valid JSON ({e})") from None


# -- checkpoints ----------------------------------------------------------------------------------------
def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CKPT_DIR / f"step_{step:07d}.pt"


def save_checkpoint(run_dir: Path, step: int, payload: dict[str, Any]) -> Path:
    path = checkpoint_path(run_dir, step)
    atomic_torch_save(path, payload)
    for old in list_checkpoints(run_dir)[:-KEEP]:
        old.unlink(missing_ok=True)
    return path


def _checkpoint_files(run_dir: Path) -> tuple[list[Path], list[Path]]:
    """(well-named checkpoints sorted by step, files in checkpoints/ that only look like one)."""
    d = Path(run_dir) / CKPT_DIR
    if not d.is_dir():
        return [], []
    good, bad = [], []
    for p in d.glob("step_*"):
        (good if _CKPT_NAME.fullmatch(p.name) else bad).append(p)
    return sorted(good, key=lambda p: int(_CKPT_NAME.fullmatch(p.name).group(1))), sorted(bad)


def list_checkpoints(run_dir: Path) -> list[Path]:
    """The run's checkpoints ``step_<int>.pt``, oldest first (by step number)."""
    return _checkpoint_files(run_dir)[0]


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint written by ``spikedyn.train``, loaded with ``weights_only=True`` and checked: a dict
    with ``step`` (equal to the one in its name), ``model``, ``history`` and ``config`` (and the rule's or
    optimiser's state)."""
    path = Path(path)
    ck = safe_torch_load(path)
    if not isinstance(ck, dict) or not {"step", "model", "history", "config"} <= set(ck):
        raise UnreadableFile(f"cannot read {path}: not a spikedyn checkpoint (keys missing)")
    m = _CKPT_NAME.fullmatch(path.name)
    if not isinstance(ck["step"], int) or (m is not None and int(m.group(1)) != ck["step"]):
        raise UnreadableFile(f"cannot read {path}: it holds step {ck['step']!r}, its name says another")
    return ck


def newest_intact_checkpoint(run_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint that loads and passes ``load_checkpoint``'s checks. Damaged ones and
    misnamed files are reported by name (a warning on the ``spikedyn.runs`` logger) and skipped; when
    checkpoints exist but none is intact, ``RunError`` says which and why."""
    good, bad = _checkpoint_files(run_dir)
    for p in bad:
        log.warning("ignoring %s: checkpoints are named step_<number>.pt", p)
    problems = []
    for p in reversed(good):
        try:
            ck = load_checkpoint(p)
        except UnreadableFile as e:
            problems.append(str(e))
            continue
        for problem in problems:
            log.warning("%s; resuming from %s, the newest intact checkpoint", problem, p.name)
        return p, ck
    if problems:
        raise RunError(f"no intact checkpoint in {Path(run_dir) / CKPT_DIR} ({problems[0]}); {RESTART_HINT}")
    return None


# -- the run directory's lock ------------------------------------------------------------------------------
@contextmanager
def run_lock(run_dir: Path, timeout: float = 0.0) -> Iterator[None]:
    """Hold ``run_dir/.lock`` (an OS file lock, released when the process ends, even by SIGKILL) for
    the block; a second writer gets ``RunLocked`` after ``timeout`` seconds (0: at once)."""
    from filelock import FileLock, Timeout

    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"run directory {run_dir} is a file; pass a directory")
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(run_dir / LOCK_NAME), timeout=timeout)
    try:
        lock.acquire()
    except Timeout:
        raise RunLocked(
            f"run directory {run_dir} is in use by another spikedyn process ({run_dir / LOCK_NAME} is held); "
            "wait for it to finish or use another --run-dir"
        ) from None
    try:
        yield
    finally:
        lock.release()


def locks_run_dir(fn: F) -> F:
    """Decorator: hold ``run_lock(run_dir)`` while ``fn`` runs, when its ``run_dir`` argument is given. A
    directory that is not recognisably a run (``check_not_foreign``) is refused before the lock file is
    made in it (and checked again under the lock, by ``open_run``)."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        run_dir = signature.bind_partial(*args, **kwargs).arguments.get("run_dir")
        if run_dir is None:
            return fn(*args, **kwargs)
        if Path(run_dir).is_dir():
            check_not_foreign(Path(run_dir))
        with run_lock(Path(run_dir)):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


# -- resuming ----------------------------------------------------------------------------------------------
def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix or "value": d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(_flat(v, key) if isinstance(v, dict) and v else {key: v})
    return out


def config_changes(recorded: dict[str, Any], new: dict[str, Any], ignore: tuple[str, ...] = ()) -> list[str]:
    """``["train.seed: 3 -> 4", ...]``: the settings that differ between two run configurations
    (a changed ``name``/``kind`` first: it explains the settings that come and go with it)."""
    a, b = _flat(plain(recorded)), _flat(plain(new))

    def show(d: dict[str, Any], key: str) -> str:
        return repr(d[key]) if key in d else "(unset)"

    changed = [k for k in set(a) | set(b) if k not in ignore and not _same(a.get(k, _UNSET), b.get(k, _UNSET))]
    changed.sort(key=lambda k: (k.rsplit(".", 1)[-1] not in ("name", "kind"), k))
    return [f"{k}: {show(a, k)} -> {show(b, k)}" for k in changed]


_UNSET = object()


def _same(x: Any, y: Any) -> bool:
    if isinstance(x, float) and isinstance(y, float):
        return math.isclose(x, y, rel_tol=1e-12) or (math.isnan(x) and math.isnan(y))
    return x == y


def current_lr(config: dict[str, Any]) -> Any:
    """The learning rate in effect at the end of a recorded run: the last ``lr_changes`` entry, else ``lr``
    (a number, or one number per Population member)."""
    train = config.get("train", {})
    changes = train.get("lr_changes") or []
    return changes[-1]["lr"] if changes else train.get("lr", DEFAULT_LR)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate (Adam's moments are kept)."""
    for group in optimizer.param_groups:
        group["lr"] = lr


@dataclass
class Resume:
    """What ``open_run`` found: the checkpoint to continue from and the configuration to record from now
    on (the recorded one, plus an ``lr_changes`` entry when a new lr takes effect at ``step + 1``).
    ``finished``: the run was already finished; ``train`` returns its results and writes nothing."""

    path: Path
    checkpoint: dict[str, Any]
    config: dict[str, Any]
    lr: Any  # the learning rate from the resume step on (a number, or one per Population member)
    finished: bool = False

    @property
    def step(self) -> int:
        return int(self.checkpoint["step"])


def is_finished(run_dir: Path) -> bool:
    """A run is finished once its ``summary.json`` is written (after ``model.pt``)."""
    return (Path(run_dir) / "summary.json").is_file() and (Path(run_dir) / "model.pt").is_file()


RUN_KEYS = ("model", "task", "rule", "train")  # the sections of every run's config.json (make_run_config)


def is_run_config(obj: Any) -> bool:
    """Whether ``obj`` (a parsed config.json) is a ``spikedyn.train`` run's: a dict with the sections
    ``model``, ``task``, ``rule`` and ``train`` (a dict)."""
    return isinstance(obj, dict) and all(k in obj for k in RUN_KEYS) and isinstance(obj["train"], dict)


def is_run_dir(run_dir: Path) -> bool:
    """Whether ``run_dir`` is recognisably a spikedyn run directory: its ``config.json`` is a run's
    (``is_run_config``), or, without a config.json, its newest intact checkpoint (the one ``open_run``
    would resume from; damaged newer ones are skipped) is a spikedyn run's."""
    run_dir = Path(run_dir)
    cfg = run_dir / "config.json"
    if cfg.is_file():
        try:
            return is_run_config(json.loads(cfg.read_text()))
        except (ValueError, UnicodeDecodeError, OSError):
            return False
    if cfg.exists():
        return False
    try:
        found = newest_intact_checkpoint(run_dir)
    except (RunError, OSError):
        return False
    return found is not None and is_run_config(found[1].get("config"))


def _run_file_names(run_dir: Path) -> list[str]:
    """The names in ``run_dir`` that spikedyn writes in a run directory (``RUN_FILES``, a non-empty
    ``checkpoints/``)."""
    found = [name for name in RUN_FILES if (run_dir / name).exists()]
    ckpt = run_dir / CKPT_DIR
    if ckpt.exists() and (not ckpt.is_dir() or any(ckpt.iterdir())):
        found.append(f"{CKPT_DIR}/")
    return found


def check_not_foreign(run_dir: Path) -> None:
    """Refuse (one ``RunError`` line) a directory that holds files with spikedyn's run-file names but is
    not recognisably a run (``is_run_dir``): they are someone else's, and spikedyn never writes over or
    deletes them."""
    run_dir = Path(run_dir)
    names = _run_file_names(run_dir)
    if not names or is_run_dir(run_dir):
        return
    why = ("its config.json has no model/task/rule/train settings" if "config.json" in names
           else f"it holds {', '.join(names)} but no run config.json")
    raise RunError(f"{run_dir} is not a spikedyn run directory: {why}; spikedyn does not write over or delete "
                   "those files: use another --run-dir (a new or empty directory)")


def clear_run(run_dir: Path) -> None:
    """Remove what spikedyn wrote into the run directory ``run_dir`` (``RUN_FILES`` and the checkpoints
    ``checkpoints/step_<n>.pt``; the folder too once empty); other files stay. A directory that is not
    recognisably a run (``check_not_foreign``) is refused and nothing is removed."""
    run_dir = Path(run_dir)
    check_not_foreign(run_dir)
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    for ckpt in list_checkpoints(run_dir):
        ckpt.unlink(missing_ok=True)
    if (run_dir / CKPT_DIR).is_dir() and not any((run_dir / CKPT_DIR).iterdir()):
        (run_dir / CKPT_DIR).rmdir()


def open_run(run_dir: Path, config: dict[str, Any], *, lr: Any, resume: bool = True,
             restart: bool = False) -> Resume | None:
    """Prepare ``run_dir`` for training with ``config`` (call it holding ``run_lock``).

    Removes temp files left by killed writes; ``restart=True`` then removes the previous run (see
    ``clear_run``). Returns ``None`` for a fresh start (config.json written) or the ``Resume`` point:
    the newest intact checkpoint. A new ``lr`` (not None and not the one in effect) is applied from the
    resume step on and recorded in ``train.lr_changes``. A finished run with the same settings comes back
    as ``Resume(finished=True)``: nothing is written, ``train`` returns its results.

    Refused with one ``RunError`` line: a directory that holds files with the run files' names but is
    not recognisably a run (``check_not_foreign``: e.g. a config.json of the user's own, which is never
    written over or deleted); settings that differ from the recorded ones (anything but an unfinished
    run's ``lr``); a ``model.pt`` without the checkpoint it was saved from; checkpoints none of which is
    intact; any existing run when ``resume=False``.
    """
    run_dir = Path(run_dir)
    for tmp in remove_stale_temp_files(run_dir) + remove_stale_temp_files(run_dir / CKPT_DIR):
        log.info("removed %s, left by an interrupted write", tmp)
    check_not_foreign(run_dir)  # spikedyn writes over (or deletes) only a run's own files
    if restart:
        clear_run(run_dir)
    finished = is_finished(run_dir)
    found = newest_intact_checkpoint(run_dir)
    final_step = load_json(run_dir / "summary.json").get("steps") if finished else None
    if found is None or (finished and found[1]["step"] != final_step):
        if (run_dir / "model.pt").is_file():
            where = f"its checkpoint of step {final_step} is gone" if finished else "it has no checkpoints"
            raise RunError(f"{run_dir} holds a model.pt but {where}; it is not trained over. Load it with "
                           f"spikedyn.load_run, or {RESTART_HINT}")
        atomic_write_json(run_dir / "config.json", config)
        return None
    path, ck = found
    if not resume:
        raise RunError(f"{run_dir} holds a run (checkpoint {path.name}) and resume=False; {RESTART_HINT}")
    recorded = ck["config"]
    unrecorded = [k for k in RECORDED_SINCE if k not in _flat(plain(recorded))]
    if unrecorded and any(k in _flat(plain(config)) for k in unrecorded):
        log.warning("%s was written before spikedyn recorded %s; resuming it without checking that", run_dir,
                    ", ".join(unrecorded))
    changes = config_changes(recorded, config, ignore=("train.lr", "train.lr_changes", *unrecorded))
    if changes:
        more = f" (and {len(changes) - 3} more)" if len(changes) > 3 else ""
        what = "finished run was" if finished else "run was"
        raise RunError(f"{run_dir}: this {what} trained with other settings ({'; '.join(changes[:3])}{more}); "
                       f"use the recorded ones (config.json), or {RESTART_HINT}")
    new_config, in_effect = plain(recorded), current_lr(recorded)
    if lr is not None and not _same(plain(lr), in_effect):
        if finished:
            raise RunFinished(f"{run_dir} holds a finished run (lr {in_effect}); a new lr cannot change it. "
                              f"{RESTART_HINT[0].upper()}{RESTART_HINT[1:]}")
        new_config["train"].setdefault("lr_changes", []).append({"step": ck["step"] + 1, "lr": plain(lr)})
        log.warning("lr changed from %s to %s from step %d on (recorded in config.json)", in_effect, plain(lr),
                    ck["step"] + 1)
        in_effect = plain(lr)
    if finished:
        log.warning("%s is a finished run (%d steps): its results are returned, nothing is trained or written "
                    "(restart=True / --restart trains it again)", run_dir, ck["step"])
    else:
        atomic_write_json(run_dir / "config.json", new_config)
    return Resume(path=path, checkpoint=ck, config=new_config, lr=in_effect, finished=finished)
