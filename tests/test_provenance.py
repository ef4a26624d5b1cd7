"""benchmarks/provenance.py: the commit a benchmark's result file records (bench_sim.py, population.py)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from provenance import git_commit  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git executable")


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def test_git_commit_clean_dirty_and_outside_a_checkout(tmp_path):
    outside = tmp_path / "plain"
    outside.mkdir()
    assert git_commit(outside) is None
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.txt").write_text("1\n")
    _git(repo, "add", "a.txt")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", "one")
    head = _git(repo, "rev-parse", "HEAD")
    assert git_commit(repo) == head
    (repo / "a.txt").write_text("2\n")
    assert git_commit(repo) == head + "+dirty"
