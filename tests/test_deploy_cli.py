"""``spikedyn deploy`` errors: a missing Lava runtime (or lava-loihi) is one line and exit code 2 (something
to install); a Lava run that fails is one line and exit code 1. Once a ``LavaNotFound`` traceback."""
from __future__ import annotations

import pytest
from spikedyn.hardware import runtime
from spikedyn.hardware.bundle import write_result

from spikedyn.cli import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("deploy") / "lif"
    assert main(["train", "--task", "rdm", "--task-param", "dt=50", "--model", "lif", "--hidden", "6",
                 "--model-param", "reset=zero", "--steps", "1", "--batch-size", "4", "--eval-trials", "8",
                 "--no-progress", "--json", "--run-dir", str(run)]) == 0  # fmt: skip
    return run


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spikedyn: error: "), err
    return lines[0]


def test_missing_lava_is_one_line_and_exit_code_2(run_dir, monkeypatch, capsys):
    monkeypatch.setattr("spikedyn.export.deploy._lava_here", lambda: False)
    monkeypatch.setenv("SPIKEDYN_LAVA_PYTHON", str(run_dir / "no-such-python"))
    runtime.find_lava_python.cache_clear()
    try:
        assert main(["deploy", "--run-dir", str(run_dir), "--trials", "2"]) == 2
    finally:
        runtime.find_lava_python.cache_clear()
    assert "make lava" in _one_line(capsys.readouterr().err)
    # lava-loihi asked for and absent
    monkeypatch.setattr("spikedyn.hardware.runtime.loihi_installed", lambda python: False)
    assert main(["deploy", "--run-dir", str(run_dir), "--backend", "lava-loihi", "--lava-python", "/fake"]) == 2
    assert "needs Intel's lava-loihi" in _one_line(capsys.readouterr().err)


def test_a_failed_lava_run_is_one_line_and_exit_code_1(run_dir, monkeypatch, capsys):
    def failing(directory, python=None, timeout=None):
        write_result(directory, None, {"ok": False, "error": "ValueError: the graph was refused"})

    monkeypatch.setattr("spikedyn.hardware.runtime.run_bundle_subprocess", failing)
    assert main(["deploy", "--run-dir", str(run_dir), "--trials", "2", "--lava-python", "/fake", "--json"]) == 1
    assert _one_line(capsys.readouterr().err).endswith("Lava run failed: ValueError: the graph was refused")
    assert not (run_dir / "deploy.json").exists()  # nothing written for a failed run
