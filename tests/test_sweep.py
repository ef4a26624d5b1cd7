"""Sweeps: the grid of a small gain study (Liu et al.) locally and on a local Ray instance gives the same
table; a killed sweep resumes and runs only the missing trials; failing trials are recorded; random and
Optuna searches are deterministic and resumable."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import spikedyn
from spikedyn.cli import main
from spikedyn.sweeps import expand, load_sweep, load_sweep_config, trial_key

ROOT = Path(__file__).resolve().parents[1]
TINY = {"task": "romo", "model": "rate", "hidden": 8, "steps": 6, "batch_size": 8, "eval_every": 3,
        "eval_trials": 32, "lr": 3e-3, "task_params": {"dt": 20.0, "mask": "decision"}}  # fmt: skip
WALL_CLOCK = ["seconds"]  # the only column that may differ between two runs of the same sweep


def assert_tables_agree(a: pd.DataFrame, b: pd.DataFrame, rtol: float = 1e-4) -> None:
    """Two tables of the same sweep, one trained with same-shaped trials batched as Populations: equal
    but for float32 rounding in the scores (relative 1e-4; GEMMs sum in another order) and the wall time."""
    a, b = a.drop(columns=WALL_CLOCK), b.drop(columns=WALL_CLOCK)
    assert list(a.columns) == list(b.columns)
    floats = [c for c in a.columns if a[c].dtype.kind == "f" and c not in ("model_params.gain", "lr")]
    pd.testing.assert_frame_equal(a.drop(columns=floats), b.drop(columns=floats))
    pd.testing.assert_frame_equal(a[floats], b[floats], check_exact=False, rtol=rtol, atol=1e-6)


def test_gain_study_locally_and_on_ray_gives_identical_tables(gain_study, tmp_path):
    spec, local = gain_study  # 4 gains x 2 rules x 3 seeds on romo (tests/conftest.py), swept locally
    assert len(local.table) == 24 and (local.table["status"] == "ok").all(), local.table["error"].tolist()
    assert sorted(local.table.columns[:6]) == sorted(["trial", "status", "error", "model_params.gain", "rule",
                                                       "seed"])  # fmt: skip
    assert local.table["accuracy"].between(0, 1).all() and (local.table["steps_run"] == 6).all()
    # every trial is a full run directory, keyed by the hash of its resolved config
    for row in local.table.to_dict("records"):
        run = local.out_dir / row["run_dir"]
        cfg = json.loads(row["config"])
        assert row["trial"] == trial_key(spikedyn.sweeps.TrialConfig(**cfg))
        for name in ("config.json", "metrics.jsonl", "model.pt", "summary.json", "learning_curve.png", "result.json",
                     "lyapunov.json"):
            assert (run / name).is_file(), (run, name)
        assert (cfg["model_params"]["gain"], cfg["rule"], cfg["seed"]) == (row["model_params.gain"], row["rule"],
                                                                          row["seed"])  # fmt: skip
    # the two rules really differ (RFLO is not BPTT), and so do the gains
    t = local.table
    assert not t[t.rule == "bptt"]["eval_loss"].reset_index(drop=True).equals(
        t[t.rule == "rflo"]["eval_loss"].reset_index(drop=True))
    assert t.groupby("model_params.gain")["eval_loss"].mean().nunique() == 4

    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = spikedyn.sweep(spec, out_dir=tmp_path / "ray", ray="auto", progress=False)
    finally:
        ray.shutdown()
    assert sorted(remote.ran) == sorted(local.ran)  # every trial ran on Ray (in whatever order they finished)
    # locally the 12 BPTT trials (4 gains x 3 seeds) trained as one Population; on Ray one trial per task
    assert len(list((local.out_dir / "populations").iterdir())) == 1
    assert_tables_agree(local.table, remote.table)
    pd.testing.assert_frame_equal(load_sweep(tmp_path / "ray").drop(columns=WALL_CLOCK),
                                  remote.table.drop(columns=WALL_CLOCK))  # fmt: skip

    again = spikedyn.sweep(spec, out_dir=local.out_dir, progress=False)
    assert again.ran == [] and len(again.skipped) == 24  # idempotent: nothing re-runs
    pd.testing.assert_frame_equal(again.table, local.table)


def _write_toml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_killed_sweep_resumes_and_runs_only_the_missing_trials(tmp_path):
    cfg = _write_toml(tmp_path / "kill.toml", """
name = "kill"
[base]
task = "romo"
model = "rate"
hidden = 8
steps = 40
batch_size = 8
eval_every = 20
eval_trials = 32
task_params = { dt = 20.0 }
[grid]
hidden = [8, 9]
seed = [0, 1, 2, 3]
""")  # two shapes: two Populations of four, one after the other
    out = tmp_path / "sweep"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "spikedyn.cli", "sweep", str(cfg), "--out-dir", str(out),
                             "--no-progress"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 240
    try:
        while len(list(out.glob("trials/*/result.json"))) < 2:
            assert proc.poll() is None, "the sweep ended before it could be killed"
            assert time.monotonic() < deadline, "no trial finished in time"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("trials/*/result.json")}
    keys = [t.key for t in expand(load_sweep_config(cfg))]
    assert 2 <= len(done) < len(keys)
    resumed = spikedyn.sweep(cfg, out_dir=out, progress=False)
    assert sorted(resumed.skipped) == sorted(done)
    assert sorted(resumed.ran) == sorted(set(keys) - set(done))
    assert {p.parent.name: p.stat().st_mtime_ns for p in out.glob("trials/*/result.json") if p.parent.name in done} \
        == done  # the finished trials were not touched
    assert list(resumed.table["trial"]) == keys and (resumed.table["status"] == "ok").all()
    assert (resumed.table["steps_run"] == 40).all()


def test_same_shaped_trials_train_as_one_population_equal_to_one_by_one(tmp_path):
    """Issue 14: a local sweep trains its same-shaped trials (here BPTT at two gains and two seeds) as one
    Population; each gets the run directory and the result it gets trained alone (float32: scores and
    weights to relative 1e-4); other trials (RFLO) run one by one."""
    import torch

    spec = {"name": "pop", "base": {**TINY, "target_accuracy": 0.55},
            "grid": {"model_params.gain": [0.5, 1.5], "rule": ["bptt", "rflo"], "seed": [0, 1]}}  # fmt: skip
    batched = spikedyn.sweep(spec, out_dir=tmp_path / "batched", progress=False)
    alone = spikedyn.sweep({**spec, "populations": False}, out_dir=tmp_path / "alone", progress=False)
    assert [p.name for p in (tmp_path / "batched" / "populations").iterdir()] != []
    assert not (tmp_path / "alone" / "populations").exists()
    assert (batched.table["status"] == "ok").all() and batched.table["stopped_early"].any()
    assert_tables_agree(batched.table, alone.table)
    for row in batched.table[batched.table.rule == "bptt"].to_dict("records"):
        a, b = tmp_path / "batched" / row["run_dir"], tmp_path / "alone" / row["run_dir"]
        assert json.loads((a / "config.json").read_text()) == json.loads((b / "config.json").read_text())
        ma, mb = spikedyn.load_run(a).model, spikedyn.load_run(b).model
        for (n, p), (_, q) in zip(ma.named_parameters(), mb.named_parameters()):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6, msg=n)
        lines = [(a / "metrics.jsonl").read_text().splitlines(), (b / "metrics.jsonl").read_text().splitlines()]
        assert [sorted(json.loads(r)) for r in lines[0]] == [sorted(json.loads(r)) for r in lines[1]]
        assert list((a / "checkpoints").glob("step_*.pt"))  # resumable alone, like a lone run
    again = spikedyn.sweep(spec, out_dir=tmp_path / "batched", progress=False)
    assert again.ran == [] and len(again.skipped) == 8


def test_ray_tune_scheduler_stops_trailing_trials(tmp_path):
    """scheduler = "asha" on Ray: every trial reports its held-out loss at each evaluation; ASHA stops the
    trials that trail (recorded as "pruned" with their last scores), the rest finish as usual. Trials run
    one at a time here (2 CPUs each on a 2-CPU instance), best first, so which are stopped is fixed."""
    spec = {"name": "asha", "base": {**TINY, "steps": 4, "eval_every": 2}, "grid": {"lr": [3e-2, 1e-3, 1e-5]},
            "scheduler": "asha", "scheduler_params": {"grace_period": 1, "reduction_factor": 2},
            "metric": "eval_loss", "direction": "minimize", "resources": {"num_cpus": 2}, "figures": False}
    with pytest.raises(ValueError, match="run the sweep on Ray"):
        spikedyn.sweep(spec, out_dir=tmp_path, progress=False)
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        res = spikedyn.sweep(spec, out_dir=tmp_path, ray="auto", progress=False)
        again = spikedyn.sweep(spec, out_dir=tmp_path, ray="auto", progress=False)
    finally:
        ray.shutdown()
    t = res.table.set_index("lr")
    assert list(t["status"]) == ["ok", "pruned", "pruned"] and res.failed == []
    assert t.loc[3e-2, "steps_run"] == 4 and (t.loc[[1e-3, 1e-5], "steps_run"] == 2).all()
    assert (t["eval_loss"] > 0).all() and t.loc[3e-2, "eval_loss"] < t.loc[1e-3, "eval_loss"]
    ok, pruned = (tmp_path / t.loc[lr, "run_dir"] for lr in (3e-2, 1e-5))
    summary = json.loads((ok / "summary.json").read_text())
    assert summary["final"]["eval_loss"] == pytest.approx(t.loc[3e-2, "eval_loss"])
    assert not (pruned / "model.pt").exists() and (pruned / "config.json").is_file()  # stopped mid-training
    assert again.ran == [] and len(again.skipped) == 3  # recorded, pruned ones included


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(tmp_path, capsys):
    spec = {"name": "fail", "base": TINY,
            "grid": {"model_params.activation": ["relu", "no-such-activation"], "seed": [0]}}  # fmt: skip
    res = spikedyn.sweep(spec, out_dir=tmp_path, progress=False)
    t = res.table.set_index("model_params.activation")
    assert t.loc["relu", "status"] == "ok" and t.loc["no-such-activation", "status"] == "failed"
    assert "no-such-activation" in t.loc["no-such-activation", "error"] and len(res.failed) == 1
    assert (tmp_path / t.loc["no-such-activation", "run_dir"] / "error.txt").is_file()
    assert spikedyn.sweep(spec, out_dir=tmp_path, progress=False).ran == []  # recorded failures are kept
    assert spikedyn.sweep(spec, out_dir=tmp_path, progress=False, retry_failed=True).ran == res.failed
    # the command line exits with 1 after running the others, and names the error
    toml = _write_toml(tmp_path / "fail.toml", """
[base]
task = "romo"
hidden = 8
steps = 2
eval_every = 2
eval_trials = 8
[grid]
init = ["orthogonal", "no_such_init"]
""")
    assert main(["sweep", str(toml), "--out-dir", str(tmp_path / "cli"), "--json"]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["ran"] == 2 and summary["failed"] == 1 and "no_such_init" in next(iter(summary["errors"].values()))


def test_random_and_optuna_searches_are_deterministic_and_resumable(tmp_path):
    space = {"lr": {"low": 1e-4, "high": 1e-2, "log": True}, "model_params.gain": [0.5, 1.0, 1.5]}
    random = {"name": "rnd", "search": "random", "n_trials": 3, "base": TINY, "space": space,
              "grid": {"seed": [0, 1]}}  # fmt: skip
    a, b = expand(random), expand(random)
    assert [t.key for t in a] == [t.key for t in b] and len(a) == 6
    assert all(1e-4 <= t.config.lr <= 1e-2 for t in a) and [t.labels["sample"] for t in a] == [0, 0, 1, 1, 2, 2]
    opt = {**random, "name": "opt", "search": "optuna", "sampler": "tpe", "n_trials": 3, "batch": 2,
           "metric": "eval_loss", "direction": "minimize"}  # fmt: skip
    pytest.importorskip("optuna")
    first = spikedyn.sweep(opt, out_dir=tmp_path / "opt", progress=False)
    assert len(first.table) == 6 and (first.table["status"] == "ok").all()
    best = first.table.groupby("sample")["eval_loss"].mean().min()
    assert first.best is not None and first.best["eval_loss"] == pytest.approx(best)
    again = spikedyn.sweep(opt, out_dir=tmp_path / "opt", progress=False)
    assert again.ran == [] and len(again.skipped) == 6 and again.best == first.best


def test_sweep_command_line(tmp_path, capsys):
    toml = tmp_path / "gain.toml"
    toml.write_text((ROOT / "examples" / "sweeps" / "gain_study_tiny.toml").read_text())
    assert main(["sweep", str(toml), "--dry-run", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == 24 and all("rule=" in v and "seed=" in v for v in listed.values())
    for args, needle in [(["sweep", str(tmp_path / "missing.toml")], "does not exist"),
                         (["sweep", str(toml), "--ray-cpus", "0"], "--ray-cpus")]:  # fmt: skip
        assert main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err
    bad = tmp_path / "bad.toml"
    bad.write_text('[base]\ntask = "romo"\nsteps = 0\n')
    assert main(["sweep", str(bad)]) == 2 and "steps" in capsys.readouterr().err
    bad.write_text('[grid]\n"model_params.gain" = []\n')
    assert main(["sweep", str(bad)]) == 2 and "no values" in capsys.readouterr().err


def test_a_trial_trained_but_not_recorded_is_recorded_without_retraining(tmp_path):
    spec = {"name": "one", "base": {**TINY, "lyapunov": 2}, "grid": {"seed": [0]}}
    first = spikedyn.sweep(spec, out_dir=tmp_path, progress=False)
    run = tmp_path / first.table["run_dir"][0]
    (run / "result.json").unlink()  # as if the sweep was killed between training and recording
    weights = (run / "model.pt").stat().st_mtime_ns
    again = spikedyn.sweep(spec, out_dir=tmp_path, progress=False)
    assert again.ran == first.ran and (run / "model.pt").stat().st_mtime_ns == weights
    pd.testing.assert_frame_equal(again.table.drop(columns=WALL_CLOCK), first.table.drop(columns=WALL_CLOCK))
    assert first.table["lyapunov_max"][0] < 0.5  # a small, trained contracting net (per step)


def _tiny(path: Path, base: dict, grid: dict) -> dict:
    """A study file shrunk to a few steps and one grid point (same structure, same code path)."""
    import tomllib

    cfg = tomllib.loads(path.read_text())
    cfg["base"].update(base)
    cfg["grid"] = grid
    return cfg


def test_ported_studies_train_exactly_what_their_benchmarks_train(tmp_path):
    """examples/sweeps/eprop_gain.toml's trials are `spikedyn bench eprop-gain`'s runs and
    memory_benchmark.toml's are `spikedyn bench memory`'s models, step for step (tiny budgets)."""
    import torch

    from spikedyn.experiments.build import build_task
    from spikedyn.experiments.eprop_gain import gain_run
    from spikedyn.experiments.long_memory import build_benchmark_model

    gain = _tiny(ROOT / "examples" / "sweeps" / "eprop_gain.toml",
                 {"hidden": 8, "steps": 5, "eval_every": 5, "eval_trials": 16},
                 {"rule": ["eprop"], "model_params.gain": [1.5], "lr": [1e-3], "seed": [1]})  # fmt: skip
    res = spikedyn.sweep(gain, out_dir=tmp_path / "gain", progress=False)
    mine = [json.loads(x)["loss"] for x in (tmp_path / "gain" / res.table["run_dir"][0] / "metrics.jsonl")
            .read_text().splitlines()]  # fmt: skip
    ref = gain_run("eprop", 1.5, 1e-3, 1, iterations=5, hidden=8, batch=32, dt=20.0, tau=100.0, eval_trials=16)
    assert mine == ref["loss"] and res.table["accuracy"][0] == ref["accuracy"]

    mem = _tiny(ROOT / "examples" / "sweeps" / "memory_benchmark.toml",
                {"hidden": 8, "steps": 3, "eval_every": 3, "eval_trials": 16, "task_params": {"delay": 5}},
                {"memory_model": ["tanh-pta"], "seed": [2]})  # fmt: skip
    res = spikedyn.sweep(mem, out_dir=tmp_path / "mem", progress=False)
    task = build_task("copy_memory", {"delay": 5})
    model = build_benchmark_model("tanh-pta", task.n_inputs, task.n_outputs, 8, 2)
    torch.set_num_threads(1)
    ref = spikedyn.train(model, task, steps=3, batch_size=64, lr=1e-3, seed=2, eval_every=3, eval_trials=16,
                         progress=False)  # fmt: skip
    assert res.table["eval_loss"][0] == ref.final["eval_loss"] and res.table["steps_run"][0] == 3


def test_variants_set_several_keys_and_are_labelled_by_name():
    tanh_orth = {"name": "tanh-orth", "model": "rate", "model_params": {"activation": "tanh"}, "init": "orthogonal"}
    gru = {"name": "gru-10ms", "model": "gru", "task_params": {"dt": 10.0}}
    trials = expand({"base": TINY, "grid": {"variant": [tanh_orth, gru], "lr": [1e-3, 3e-3]}})
    assert [(t.labels["variant"], t.labels["lr"]) for t in trials] == [
        ("tanh-orth", 1e-3), ("tanh-orth", 3e-3), ("gru-10ms", 1e-3), ("gru-10ms", 3e-3)]
    a, b = trials[0].config, trials[2].config
    assert (a.model, a.model_params, a.init, a.lr) == ("rate", {"activation": "tanh"}, "orthogonal", 1e-3)
    assert b.model == "gru" and b.init is None and b.task_params == {"dt": 10.0, "mask": "decision"}  # merged
    assert len({t.key for t in trials}) == 4 and trial_key(a) == trials[0].key


def test_rule_params_reach_the_rule_and_preset_or_population_are_refused(tmp_path):
    """A sweep axis over ``rule_params`` trains different rules (it was once dropped silently); ``preset`` and
    ``population`` are not sweep settings and fail with one line before anything runs."""
    from spikedyn.config import ConfigError

    spec = {"name": "reg", "base": {**TINY, "steps": 2, "eval_every": 2,
                                    "rule_params": {"regularizer": {"strength": 0.0, "target": 0.5}}},
            "grid": {"rule_params.regularizer.strength": [0.0, 1.0]}}  # fmt: skip
    res = spikedyn.sweep(spec, out_dir=tmp_path / "reg", progress=False)
    assert (res.table["status"] == "ok").all()
    rules = [json.loads((tmp_path / "reg" / d / "config.json").read_text())["rule"] for d in res.table["run_dir"]]
    assert [r["regularizer"]["strength"] for r in rules] == [0.0, 1.0]
    losses = res.table["eval_loss"].tolist()
    assert losses[0] != losses[1]
    for bad in ({"preset": "mcmahan2024"}, {"population": 4}):
        with pytest.raises(ConfigError, match="not a sweep setting"):
            spikedyn.sweep({"name": "bad", "base": {**TINY, **bad}}, out_dir=tmp_path / "bad", progress=False)
