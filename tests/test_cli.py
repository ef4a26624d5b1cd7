"""The spikedyn command line: one-line errors with exit code 2, --json, config files, kill and resume."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from spikedyn.cli import main

SPIKEDYN = [sys.executable, "-m", "spikedyn.cli"]


def run(args, **kw):
    return subprocess.run([*SPIKEDYN, *args], capture_output=True, text=True, timeout=300, **kw)


def test_help_lists_the_commands():
    out = run(["--help"]).stdout
    for cmd in ("train", "demo", "bench", "analyze", "circuit"):
        assert cmd in out


def test_bad_arguments_are_one_line_errors_with_exit_code_2():
    for args, needle in [
        (["train", "--steps", "x"], "--steps"),
        (["train", "--task", "nope", "--steps", "1"], "unknown task 'nope'"),
        (["train", "--model", "hh"], "model"),
        (["train", "--bogus"], "--bogus"),
        (["train", "--task-param", "dt"], "key=value"),
        (["train", "--model-param", "nonsense=1", "--steps", "1"], "bad model parameter"),
        (["train", "--config", "missing.toml"], "does not exist"),
        (["train", "--rule", "hebb", "--steps", "1"], "hebb"),
        (["bench", "eprop-memory", "--lengths", "100,x"], "--lengths must be comma-separated integers"),
        (["circuit", "hd", "--sigmas", "0,-0.1"], "--sigmas values must be >= 0"),
        (["train", "--model", "gru", "--rule", "eprop", "--steps", "1"], "RateRNN and SpikingRNN"),
    ]:
        p = run(args)
        assert p.returncode == 2, (args, p.stderr)
        err = p.stderr.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("spikedyn: error:") and needle in err[0], (args, p.stderr)
        assert "Traceback" not in p.stderr


def test_train_json_summary(capsys, tmp_path):
    rc = main(["train", "--task", "rdm", "--task-param", "dt=10", "--model", "lif", "--hidden", "8",
               "--steps", "3", "--eval-every", "3", "--eval-trials", "20", "--json", "--no-progress",
               "--run-dir", str(tmp_path / "run")])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["model"] == "lif" and summary["steps_run"] == 3 and 0 <= summary["accuracy"] <= 1
    assert (tmp_path / "run" / "metrics.jsonl").is_file()


def test_train_with_the_online_rules(capsys, tmp_path):
    for model, rule in (("lif", "eprop"), ("rate", "rflo")):
        rc = main(["train", "--task", "2af", "--model", model, "--rule", rule, "--hidden", "8", "--steps", "2",
                   "--eval-every", "2", "--eval-trials", "20", "--json", "--no-progress",
                   "--run-dir", str(tmp_path / rule)])  # fmt: skip
        assert rc == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["steps_run"] == 2 and 0 <= summary["accuracy"] <= 1


def test_config_file_with_flags_overriding(tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text('task = "cdi"\nsteps = 2\nhidden = 8\neval_every = 1\neval_trials = 10\n'
                   '[task_params]\ndt = 10.0\n[model_params]\nalpha = 0.2\n')
    assert main(["train", "--config", str(cfg), "--steps", "1", "--json", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["task"] == "cdi" and summary["steps_run"] == 1
    yml = tmp_path / "run.yaml"
    yml.write_text("task: rdm\nsteps: 1\nhidden: 4\neval_trials: 10\ntask_params: {dt: 10.0}\nlearning: 3\n")
    assert main(["train", "--config", str(yml), "--no-progress"]) == 2
    assert "learning" in capsys.readouterr().err


def _weights(path: Path) -> dict:
    return torch.load(path / "model.pt", weights_only=True)["model"]


def test_kill_and_resume_gives_the_same_final_weights(tmp_path):
    args = ["train", "--task", "rdm", "--task-param", "dt=10", "--hidden", "32", "--steps", "120",
            "--batch-size", "16", "--eval-every", "20", "--eval-trials", "20", "--no-progress", "--seed", "5"]
    ref = run([*args, "--run-dir", str(tmp_path / "ref")])
    assert ref.returncode == 0, ref.stderr
    run_dir = tmp_path / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([*SPIKEDYN, *args, "--run-dir", str(run_dir)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list((run_dir / "checkpoints").glob("step_0000040.pt")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "model.pt").exists(), "the run must have been killed before it finished"
    resumed = run([*args, "--run-dir", str(run_dir)])
    assert resumed.returncode == 0, resumed.stderr
    a, b = _weights(tmp_path / "ref"), _weights(run_dir)
    for k in a:
        assert torch.equal(a[k], b[k]), k
