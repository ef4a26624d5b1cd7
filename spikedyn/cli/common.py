"""Helpers shared by the CLI commands: building tasks/models from options, printing results."""
from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer

T = TypeVar("T")


def json_option() -> Any:
    return typer.Option(False, "--json", help="Print a JSON summary on stdout (progress goes to stderr).")


def emit(summary: dict[str, Any], as_json: bool, title: str) -> None:
    """Print ``summary`` as JSON or as an aligned table."""
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
        return
    print(title)
    width = max(len(k) for k in summary)
    for k, v in summary.items():
        if isinstance(v, float):
            v = f"{v:.4g}"
        print(f"  {k:<{width}}  {v}")
    sys.stdout.flush()


def comma_list(text: str, option: str, cast: Callable[[str], T] = str, minimum: float | None = None) -> tuple[T, ...]:
    """Parse a comma-separated option value (``"0.2,0.5"``); one-line ``ValueError`` naming ``option``."""
    try:
        values = tuple(cast(x.strip()) for x in text.split(",") if x.strip())
    except ValueError:
        kind = {int: "integers", float: "numbers"}.get(cast, "values")
        raise ValueError(f"{option} must be comma-separated {kind}, got {text!r}") from None
    if not values:
        raise ValueError(f"{option} is empty")
    if minimum is not None and min(values) < minimum:
        raise ValueError(f"{option} values must be >= {minimum:g}, got {text!r}")
    return values


def device_option(default: str | None = "cpu") -> Any:
    return typer.Option(default, "--device", help="Where the model runs: cpu, cuda or cuda:N (one-line error, "
                        "exit 2, when CUDA is asked for and absent).")  # fmt: skip


def out_option(name: str, what: str = "figures/ and results/") -> Any:
    """``--out`` of a command that writes files: default ``runs/<name>``; ``--out docs`` regenerates the docs."""
    from pathlib import Path

    return typer.Option(Path("runs") / name, "--out", help=f"Output directory: writes {what} under it. "
                        "--out docs regenerates the documentation's copy.")  # fmt: skip


def threads_option(why: str = "these small nets gain nothing from a second thread, and on a busy 2-core "
                   "machine two threads made them 15-25x slower") -> Any:
    """``--threads N`` (default 1) of a command that trains or analyses small networks."""
    return typer.Option(1, "--threads", min=1, help=f"torch and BLAS CPU threads (default 1: {why}).")


@contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` threads for torch and for numpy/scipy's BLAS (threadpoolctl), and give the
    caller's thread counts back afterwards (a caller of the CLI's ``main()`` in its own process keeps
    its own)."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        with threadpool_limits(limits=int(n)):
            yield
    finally:
        torch.set_num_threads(before)
