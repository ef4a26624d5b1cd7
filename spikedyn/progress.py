"""Progress of long work: a tqdm bar on a terminal, periodic one-line log records otherwise.

``progress(total, desc)`` returns a small object with ``update(n=1, **postfix)`` and ``close()`` (also a
context manager). On a terminal (or in a notebook) it is a tqdm bar on stderr; when stderr is not a
terminal (a log file, CI, ``nohup``), it emits a log record on the ``spikedyn.progress`` logger at most
every ``every_s`` seconds (default 30, env ``SPIKEDYN_PROGRESS_EVERY``) and one at the end of work that
took that long, e.g.::

    spikedyn: train rdm: 120/500 steps (24%), 31.2 s elapsed, ~98.8 s left, loss=0.412, accuracy=0.81

If the application has not configured logging, the records go to stderr. ``set_quiet(True)`` (the CLI's
``--json``) silences both forms.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

logger = logging.getLogger("spikedyn.progress")
_QUIET = False


def set_quiet(quiet: bool) -> None:
    """Silence (or re-enable) every progress bar and progress log line of this process."""
    global _QUIET
    _QUIET = bool(quiet)


def is_quiet() -> bool:
    """Whether progress is silenced (``set_quiet``; the CLI's ``--json``): for work that reports its own way,
    e.g. the Lava subprocess of a deployment."""
    return _QUIET


def _interactive() -> bool:
    if "ipykernel" in sys.modules:  # a notebook: tqdm.auto draws a widget
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _ensure_handler() -> None:
    """Make the records visible when the application configured no logging (INFO is below lastResort)."""
    if logger.hasHandlers() and logger.getEffectiveLevel() <= logging.INFO:
        return
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("spikedyn: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


class _LogProgress:
    def __init__(self, total: int | None, desc: str, unit: str, initial: int, every_s: float) -> None:
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.every_s, self.t0, self.start = every_s, time.monotonic(), initial
        self.last = self.t0
        self.postfix: dict[str, Any] = {}
        self.closed = self.logged = False
        _ensure_handler()

    def line(self) -> str:
        elapsed = time.monotonic() - self.t0
        head = f"{self.desc}: {self.n}" + (f"/{self.total}" if self.total else "") + f" {self.unit}"
        parts = [head + (f" ({100 * self.n / self.total:.0f}%)" if self.total else ""), f"{elapsed:.1f} s elapsed"]
        done = self.n - self.start
        if self.total and 0 < done and self.n < self.total:
            parts.append(f"~{elapsed / done * (self.total - self.n):.1f} s left")
        parts += [f"{k}={_fmt(v)}" for k, v in self.postfix.items()]
        return ", ".join(parts)

    def update(self, n: int = 1, **postfix: Any) -> None:
        self.n += n
        self.postfix.update(postfix)
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last, self.logged = now, True
            logger.info(self.line())

    def set_postfix(self, postfix: dict[str, Any]) -> None:
        self.postfix.update(postfix)

    def close(self) -> None:
        """The closing line, for work that took at least one period (short work stays silent)."""
        if not self.closed:
            self.closed = True
            if self.logged or time.monotonic() - self.t0 >= self.every_s:
                done = self.total is None or self.n >= self.total
                logger.info(self.line() + (" (done)" if done else ""))


class _BarProgress:
    def __init__(self, total: int | None, desc: str, unit: str, initial: int) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr)

    def update(self, n: int = 1, **postfix: Any) -> None:
        self.bar.update(n)
        if postfix:
            self.set_postfix(postfix)

    def set_postfix(self, postfix: dict[str, Any]) -> None:
        self.bar.set_postfix({k: _fmt(v) for k, v in postfix.items()})

    def close(self) -> None:
        self.bar.close()


class _NoProgress:
    def update(self, n: int = 1, **postfix: Any) -> None:
        pass

    def set_postfix(self, postfix: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class Progress:
    """What ``progress()`` returns: ``update(n, **postfix)``, ``set_postfix(dict)``, ``close()``; a context
    manager that closes itself."""

    def __init__(self, impl: Any) -> None:
        self._impl = impl

    def update(self, n: int = 1, **postfix: Any) -> None:
        self._impl.update(n, **postfix)

    def set_postfix(self, postfix: dict[str, Any]) -> None:
        self._impl.set_postfix(postfix)

    def close(self) -> None:
        self._impl.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress(total: int | None, desc: str, *, unit: str = "it", initial: int = 0, enabled: bool = True,
             every_s: float | None = None, interactive: bool | None = None) -> Progress:
    """A progress reporter for ``total`` units of work (see the module docstring).

    Args:
        total: number of units (None: unknown). desc: what is being done ("train rdm").
        unit: the unit's name ("step", "run"). initial: units already done (a resumed run).
        enabled: False gives a silent reporter. every_s: seconds between log lines (non-terminal mode).
        interactive: force the bar (True) or the log lines (False); default: a bar on a terminal.
    """
    if not enabled or _QUIET:
        return Progress(_NoProgress())
    if interactive if interactive is not None else _interactive():
        return Progress(_BarProgress(total, desc, unit, initial))
    if every_s is None:
        try:
            every_s = float(os.environ.get("SPIKEDYN_PROGRESS_EVERY", "30"))
        except ValueError:
            every_s = 30.0
    return Progress(_LogProgress(total, desc, unit, initial, every_s))


def track(iterable: Any, desc: str, *, total: int | None = None, unit: str = "it", enabled: bool = True) -> Any:
    """Iterate over ``iterable`` while reporting progress (a tqdm-like wrapper)."""
    if total is None:
        try:
            total = len(iterable)
        except TypeError:
            total = None
    with progress(total, desc, unit=unit, enabled=enabled) as p:
        for item in iterable:
            yield item
            p.update(1)
