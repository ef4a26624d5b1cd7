"""One-line CLI errors name the option the user gave and give advice that works (review2 C2)."""
from __future__ import annotations

import pytest

from spikedyn.cli import main


def _one_line_error(capsys, args):
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("flag", ["--trials", "--repeat", "--k"])
def test_analyze_spectrum_names_the_option_given(flag, capsys):
    err = _one_line_error(capsys, ["analyze", "spectrum", "--hidden", "4", flag, "0"])
    assert f"{flag} must be a positive integer, got 0" in err


def _tiny_run(path, *extra):
    assert main(["train", "--task", "rdm", "--task-param", "dt=50", "--hidden", "4", "--steps", "1", "--eval-every",
                 "1", "--eval-trials", "8", "--batch-size", "4", "--no-progress", "--json", "--run-dir", str(path),
                 *extra]) == 0  # fmt: skip
    return path


def test_analyze_spectrum_names_a_task_of_the_wrong_input_size_and_refuses_a_population(tmp_path, capsys):
    run = _tiny_run(tmp_path / "run")
    err = _one_line_error(capsys, ["analyze", "spectrum", "--run-dir", str(run), "--task", "cdi"])
    assert "--task cdi has 4 inputs" in err and "takes 1" in err
    pop = _tiny_run(tmp_path / "pop", "--population", "2")
    err = _one_line_error(capsys, ["analyze", "spectrum", "--run-dir", str(pop)])
    assert "holds a Population of 2" in err and "trials/<key>" in err


def test_rflo_with_population_advises_what_works(capsys):
    err = _one_line_error(capsys, ["train", "--population", "2", "--rule", "rflo", "--steps", "1", "--hidden", "4",
                                   "--no-progress"])  # fmt: skip
    assert "no --population" in err and "bptt" in err and "EProp" not in err  # e-prop trains no Population either
    assert main(["train", "--population", "2", "--rule", "bptt", "--steps", "1", "--hidden", "4", "--eval-every", "1",
                 "--eval-trials", "8", "--batch-size", "4", "--no-progress", "--json"]) == 0  # the advice works
