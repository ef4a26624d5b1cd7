"""Which code a benchmark ran: recorded in the result files of ``bench_sim.py`` and ``population.py``."""
from __future__ import annotations

import subprocess
from pathlib import Path


def git_commit(where: str | Path | None = None) -> str | None:
    """``git rev-parse HEAD`` of the checkout holding ``where`` (default: this file), with ``"+dirty"``
    appended when ``git status --porcelain`` lists any change; None outside a git checkout or without git."""
    cwd = Path(where) if where is not None else Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True)
        status = subprocess.run(["git", "status", "--porcelain"], cwd=cwd, capture_output=True, text=True,
                                check=True)  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("+dirty" if status.stdout.strip() else "")
