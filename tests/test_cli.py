"""The spikedyn command line: one-line errors with exit code 2, --json, config files, kill and resume."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import spikedyn.tasks as T
import torch

from spikedyn.cli import main
from spikedyn.learning import train
from spikedyn.models import RateRNN

SPIKEDYN = [sys.executable, "-m", "spikedyn.cli"]


def run(args, **kw):
    return subprocess.run([*SPIKEDYN, *args], capture_output=True, text=True, timeout=300, **kw)


def test_help_lists_the_commands():
    out = run(["--help"]).stdout
    for cmd in ("train", "demo", "bench", "analyze", "circuit"):
        assert cmd in out


def test_bad_arguments_are_one_line_errors_with_exit_code_2(capsys):
    for args, needle in [
        (["train", "--steps", "x"], "--steps"),
        (["train", "--task", "nope", "--steps", "1"], "unknown task 'nope'"),
        (["train", "--model", "hh"], "model"),
        (["train", "--bogus"], "--bogus"),
        (["train", "--task-param", "dt"], "key=value"),
        (["train", "--model-param", "nonsense=1", "--steps", "1"], "model_params.nonsense: unknown key"),
        (["train", "--config", "missing.toml"], "does not exist"),
        (["train", "--rule", "hebb", "--steps", "1"], "hebb"),
        (["bench", "eprop-memory", "--lengths", "100,x"], "--lengths must be comma-separated integers"),
        (["circuit", "hd", "--sigmas", "0,-0.1"], "--sigmas values must be >= 0"),
        (["train", "--task-param", "dt=abc", "--steps", "1"], 'task_params.dt: expected a number, got "abc"'),
        (["train", "--device", "cuda:99", "--steps", "1"], "cuda:99"),
        (["train", "--device", "tpu", "--steps", "1"], "tpu"),
        (["deploy", "--run-dir", "missing-run"], "missing-run"),
        (["train", "--model", "gru", "--rule", "eprop", "--steps", "1"], "RateRNN and SpikingRNN"),
    ]:
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("spikedyn: error:") and needle in err[0], (args, err)
    p = run(["train", "--task", "nope", "--steps", "1"])  # the installed entry point, in its own process
    assert p.returncode == 2 and p.stderr.startswith("spikedyn: error: unknown task 'nope'"), p.stderr
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr


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


# -- moved here from the domain tests: they run the command line ------------------------------------------
def test_bench_memory_cli_smoke(tmp_path):
    rc = main(["bench", "memory", "--task", "copy_memory,temporal_order", "--delay", "3", "--hidden", "8",
               "--steps", "2", "--eval-every", "2", "--eval-trials", "16", "--seeds", "1", "--search-trials", "2",
               "--models", "tanh-pta,gru-pta", "--out", str(tmp_path / "runs"),
               "--no-progress", "--json"])  # fmt: skip
    assert rc == 0
    table = (tmp_path / "runs" / "table.md").read_text()
    assert "copy_memory k = 3, early-stopped" in table and "temporal_order, final" in table
    assert (tmp_path / "runs" / "figures" / "analysis_memory_temporal_order.png").stat().st_size > 1000
    assert main(["bench", "memory", "--models", "tanh,rnn", "--out", str(tmp_path / "x")]) == 2
    # --include: an earlier run's tasks join this run's table and results.json, marked as not rerun here
    earlier = tmp_path / "runs" / "results.json"
    more = ["--delay", "3", "--hidden", "8", "--steps", "2", "--eval-every", "2", "--eval-trials", "16", "--seeds",
            "1", "--search-trials", "0", "--models", "tanh", "--no-progress", "--json"]  # fmt: skip
    assert main(["bench", "memory", "--task", "random_delay_copy", *more, "--include", str(earlier),
                 "--out", str(tmp_path / "more")]) == 0  # fmt: skip
    joined = json.loads((tmp_path / "more" / "results.json").read_text())["tasks"]
    assert [t["task"] for t in joined] == ["copy_memory", "temporal_order", "random_delay_copy"]
    assert [t.get("included_from") for t in joined] == [str(earlier), str(earlier), None]
    assert "copy_memory k = 3, early-stopped" in (tmp_path / "more" / "table.md").read_text()
    # a task in both is refused (exit 2), and so is a file that is not a results.json
    assert main(["bench", "memory", "--task", "temporal_order", *more, "--include", str(earlier),
                 "--out", str(tmp_path / "again")]) == 2  # fmt: skip
    assert main(["bench", "memory", "--task", "random_delay_copy", *more, "--include", str(tmp_path / "runs" /
                 "table.md"), "--out", str(tmp_path / "again")]) == 2  # fmt: skip


def test_analyze_commands(tmp_path):
    assert main(["analyze", "fig3", "--duration", "1", "--spectrum-duration", "3", "--trials", "2",
                 "--out", str(tmp_path / "fig3"), "--json"]) == 0  # fmt: skip
    assert (tmp_path / "fig3" / "figures" / "analysis_fig3.png").stat().st_size > 1000
    assert main(["analyze", "spectrum", "--model", "gru", "--hidden", "8", "--k", "3", "--trials", "2",
                 "--repeat", "1", "--json"]) == 0  # fmt: skip
    assert main(["analyze", "spectrum", "--run-dir", str(tmp_path / "missing")]) == 2
    task = T.make("romo")
    train(RateRNN(task.n_inputs, 8, task.n_outputs), task, steps=2, eval_every=2, eval_trials=8,
          run_dir=tmp_path / "run", progress=False)  # fmt: skip
    assert main(["analyze", "spectrum", "--run-dir", str(tmp_path / "run"), "--k", "2", "--trials", "2",
                 "--json"]) == 0  # fmt: skip


def test_cli_circuit_hd_writes_figures_and_tables(tmp_path) -> None:
    rc = main(["circuit", "hd", "--duration", "1", "--realisations", "2", "--sigmas", "0,0.1",
               "--diffusion-duration", "1", "--diffusion-realisations", "4", "--jitters", "0.01",
               "--input-noises", "0.01", "--no-lava",
               "--out", str(tmp_path), "--json"])
    assert rc == 0
    for name in ("raster", "kymograph", "tuning", "robustness", "diffusion"):
        assert (tmp_path / "figures" / f"hd_{name}.png").stat().st_size > 10_000
    data = json.loads((tmp_path / "results" / "hd.json").read_text())
    assert [r["sigma"] for r in data["robustness"]] == [0.0, 0.1]
    assert "| 0.1 |" in (tmp_path / "results" / "hd.md").read_text()
    assert main(["circuit", "hd", "--sigmas", "a,b", "--no-lava", "--out", str(tmp_path)]) == 2


# -- the error boundary, strict config files, --version, --device, outputs ---------------------------------
def test_version(capsys):
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"spikedyn {version('spikedyn')}"


def test_config_file_type_errors_are_one_line(tmp_path, capsys):
    cases = [
        ("a.toml", "hidden = true\n", "hidden: expected an integer, got true (a boolean)"),
        ("b.yaml", 'steps: "2"\n', 'steps: expected an integer, got "2" (a string)'),
        ("c.toml", 'task_params = "dt=10"\n', "task_params: expected a table of key = value"),
        ("d.toml", 'task_params.dt = "ten"\n', 'task_params.dt: expected a number, got "ten" (a string)'),
        ("e.toml", "stpes = 3\n", "stpes: unknown key; did you mean 'steps'?"),
    ]
    for name, text, message in cases:
        (tmp_path / name).write_text(text)
        assert main(["train", "--config", str(tmp_path / name), "--no-progress"]) == 2, name
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"spikedyn: error: {message}"), (name, err)
    assert main(["train", "--task-param", "dt=abc", "--steps", "1"]) == 2
    assert 'task_params.dt: expected a number, got "abc"' in capsys.readouterr().err
    for text, message in (('trials = "20"\n', 'trials: expected an integer, got "20" (a string)'),
                          ("chunk = -1\n", "chunk: Input should be greater than or equal to 1"),
                          ('precison = "fixed"\n', "precison: unknown key; did you mean 'precision'?")):
        (tmp_path / "deploy.toml").write_text(text)
        assert main(["deploy", "--run-dir", "r", "--config", str(tmp_path / "deploy.toml")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"spikedyn: error: {message}"), err


def test_the_boundary_lets_bugs_show_their_traceback(monkeypatch, capsys):
    import pytest

    from spikedyn.experiments import fig3
    from spikedyn.learning.train import TrainingDiverged

    def fail(exc):
        def run(cfg):
            raise exc
        return run

    args = ["analyze", "fig3", "--duration", "1", "--json"]
    monkeypatch.setattr(fig3, "run", fail(ValueError("a bad value\nsecond line")))
    assert main(args) == 2 and capsys.readouterr().err == "spikedyn: error: a bad value\n"
    monkeypatch.setattr(fig3, "run", fail(TrainingDiverged("loss became NaN at step 3")))
    assert main(args) == 1 and capsys.readouterr().err == "spikedyn: error: loss became NaN at step 3\n"
    monkeypatch.setattr(fig3, "run", fail(TypeError("a bug")))
    with pytest.raises(TypeError, match="a bug"):
        main(args)
    monkeypatch.setenv("SPIKEDYN_DEBUG", "1")  # user errors show their traceback too
    monkeypatch.setattr(fig3, "run", fail(ValueError("bad")))
    with pytest.raises(ValueError):
        main(args)


def test_device_errors(monkeypatch, capsys):
    import pytest

    from spikedyn.device import DeviceError, resolve_device

    assert resolve_device(None).type == "cpu" and resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for bad in ("cuda", "cuda:1", "tpu", "gpu0"):
        with pytest.raises(DeviceError) as e:
            resolve_device(bad)
        assert bad in str(e.value) and "\n" not in str(e.value)
    for cmd in (["train", "--steps", "1"], ["demo"], ["analyze", "spectrum"], ["bench", "memory"],
                ["bench", "eprop-accuracy"], ["analyze", "flossing-romo"], ["circuit", "hd"]):
        assert main([*cmd, "--device", "cuda"]) == 2, cmd
        err = capsys.readouterr().err
        assert err.startswith("spikedyn: error: device 'cuda' asked for, but torch sees no CUDA device"), (cmd, err)


def test_outputs_go_under_runs_and_the_repository_stays_clean(tmp_path, monkeypatch, capsys):
    repo = Path(__file__).resolve().parents[1]

    def status() -> str:
        return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=repo,
                              capture_output=True, text=True).stdout

    before = status()
    monkeypatch.chdir(tmp_path)
    assert main(["analyze", "fig3", "--duration", "1", "--spectrum-duration", "2", "--trials", "1", "--json"]) == 0
    assert (tmp_path / "runs" / "analyze_fig3" / "figures" / "analysis_fig3.png").stat().st_size > 1000
    assert main(["analyze", "pta-map", "--json"]) == 0
    assert (tmp_path / "runs" / "analyze_pta_map" / "figures" / "analysis_pta_map.png").is_file()
    assert status() == before
    help_text = run(["circuit", "hd", "--help"]).stdout
    assert "runs/circuit_hd" in help_text and "--out docs" in help_text


def test_deploy_picks_a_precision_the_model_supports():
    import pytest

    from spikedyn.experiments.build import build_model, build_task
    from spikedyn.experiments.deploy_compare import choose_precision

    task = build_task("rdm", {"dt": 10})
    default_lif = build_model("lif", task, 8)  # what `spikedyn train --model lif` trains
    precision, note = choose_precision(default_lif)
    assert precision == "float" and "--model-param reset=zero" in note
    assert choose_precision(build_model("lif", task, 8, {"reset": "zero", "refractory": 0.0})) == ("fixed", None)
    with pytest.raises(ValueError, match="use --precision float"):
        choose_precision(default_lif, "fixed")


def test_cli_circuit_hd_robustness(tmp_path):
    rc = main(["circuit", "hd-robustness", "--duration", "1", "--realisations", "2", "--classes", "weight",
               "--models", "intrinsic", "--out", str(tmp_path), "--json"])
    assert rc == 0
    assert (tmp_path / "figures" / "hd_robustness_classes.png").stat().st_size > 10_000
    data = json.loads((tmp_path / "results" / "hd_robustness.json").read_text())
    assert {r["model"] for r in data["rows"]} == {"intrinsic"}
    assert main(["circuit", "hd-robustness", "--classes", "gravity", "--out", str(tmp_path)]) == 2


def test_demo_runs_on_its_thread_count_and_gives_the_callers_back(capsys, monkeypatch):
    """``spikedyn demo --threads N`` (default 1) sets torch's threads for the run and restores the caller's
    after it; ``--threads 0`` is a user error (exit 2)."""
    from spikedyn.experiments import demo as X

    seen = []
    monkeypatch.setattr(X, "run", lambda cfg, **kw: seen.append(torch.get_num_threads()) or {"ok": 1})
    torch.set_num_threads(2)
    try:
        assert main(["demo", "--json"]) == 0 and main(["demo", "--threads", "2", "--json"]) == 0
        assert seen == [1, 2] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    assert main(["demo", "--threads", "0"]) == 2
    capsys.readouterr()


def test_cpu_threads_sets_torch_and_blas_threads_and_gives_the_callers_back():
    import torch
    from threadpoolctl import threadpool_info

    from spikedyn.cli.common import cpu_threads

    torch.set_num_threads(2)
    try:
        with cpu_threads(1):
            assert torch.get_num_threads() == 1
            assert all(p["num_threads"] == 1 for p in threadpool_info())
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), cpu_threads(1):  # given back on an error too
            raise RuntimeError("boom")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
