"""The README's Python tour runs top to bottom (at tiny scale, in a fresh directory) and leaves the
repository's ``git status`` as it was."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _tour() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## A short tour", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def _tiny(code: str) -> str:
    """Same calls, tiny budgets: 2 training steps, 16 held-out trials."""
    return re.sub(r"\bsteps=\d+", "steps=2, eval_trials=16", code)


def _status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO, capture_output=True,
                          text=True, check=True).stdout


def _run(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env=env)


def test_the_tour_is_found_and_made_tiny():
    code = _tour()
    assert "spikedyn.train(" in code and "spikedyn.deploy(" in code
    assert "steps=300" not in _tiny(code) and "steps=2, eval_trials=16" in _tiny(code)


def test_readme_tour_runs_and_leaves_the_repository_clean(tmp_path):
    before = _status()
    code = "\n".join(line for line in _tiny(_tour()).splitlines() if "deploy" not in line)  # the Lava lines
    done = _run(code + "\nprint('tour done', y.shape, len(spectrum), type(model).__name__)", tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "tour done" in done.stdout and "RateRNN" in done.stdout
    assert (tmp_path / "runs" / "rate" / "model.pt").is_file()  # relative paths land in the cwd
    assert _status() == before


@pytest.mark.lava
def test_readme_tour_with_its_lava_line(tmp_path, lava_python):
    before = _status()
    done = _run(_tiny(_tour()) + "\nprint('deployed', deployment.precision, lava.y.shape)", tmp_path,
                SPIKEDYN_LAVA_PYTHON=lava_python)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "deployed float" in done.stdout
    assert _status() == before
