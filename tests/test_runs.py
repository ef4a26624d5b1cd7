"""Run directories you can trust (issue 17): nothing read from a run runs code, one writer at a time,
resume checks what it resumes, damaged checkpoints are skipped, load_run / spikedyn eval, and the
training seed changes the batches with the initialisation held fixed."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import spikedyn
from spikedyn.atomic import atomic_write_bytes
from spikedyn.cli import main
from spikedyn.experiment import build_model, build_task
from spikedyn.learning.checkpoint import RunError, RunLocked, UnreadableFile, checkpoint_path, load_checkpoint

SETTINGS = dict(steps=12, batch_size=8, lr=1e-2, seed=3, eval_every=5, eval_trials=50, progress=False)


class Interrupted(Exception):
    pass


def _task(**params):
    return build_task("rdm", {"dt": 10.0, **params})


def _net(seed=3, hidden=16):
    return build_model("rate", _task(), hidden=hidden, seed=seed, params={"noise_std": 0.05})


def _train(run_dir=None, *, net=None, task=None, stop_at=None, callback=None, **kw):
    """The small run of these tests; ``stop_at=s`` interrupts it after step s (like a kill)."""
    def cb(step, record):
        if callback is not None:
            callback(step, record)
        if step == stop_at:
            raise Interrupted

    settings = {**SETTINGS, **kw}
    net = _net() if net is None else net
    if stop_at is None:
        return spikedyn.train(net, task or _task(), run_dir=run_dir, callback=cb, **settings)
    with pytest.raises(Interrupted):
        spikedyn.train(net, task or _task(), run_dir=run_dir, callback=cb, **settings)
    return net


def _params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _assert_same(a, b):
    for n in a:
        assert torch.equal(a[n], b[n]), n


def _snapshot(run_dir: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(run_dir)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(run_dir.rglob("*")) if p.is_file() and p.name != ".lock"}


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("spikedyn: error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def reference():
    """The uninterrupted run every resumed run must reproduce exactly."""
    return _params(_train().model)


# -- 1. nothing loaded from a run directory runs code ------------------------------------------------------
class Payload:
    """Unpickling this calls ``open(marker, "w")``: a real code-execution primitive (it creates a file)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _plant(path: Path, marker: Path, **extra) -> None:
    buf = __import__("io").BytesIO()
    torch.save({"model": {"W_rec": Payload(marker)}, **extra}, buf)
    atomic_write_bytes(path, buf.getvalue())


def test_the_payload_is_real(tmp_path):
    """The planted file does run code when loaded the old way (so the tests below can fail)."""
    marker = tmp_path / "pwned"
    _plant(tmp_path / "evil.pt", marker)
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.exists()


def test_a_payload_checkpoint_does_not_run_on_resume(tmp_path, reference, caplog, capsys):
    marker = tmp_path / "pwned"
    run_dir = tmp_path / "run"
    _train(run_dir, stop_at=7)  # step_0000005.pt on disk
    evil = checkpoint_path(run_dir, 10)
    _plant(evil, marker, step=10, optimizer={}, history=[], config={})
    with caplog.at_level(logging.WARNING, logger="spikedyn.runs"):
        resumed = _train(run_dir)  # the newest checkpoint is rejected by name, the intact one used
    assert not marker.exists()
    assert "step_0000010.pt" in caplog.text and "Python objects" in caplog.text
    _assert_same(_params(resumed.model), reference)

    run_dir2 = tmp_path / "run2"
    _train(run_dir2, stop_at=7)
    checkpoint_path(run_dir2, 5).unlink()
    _plant(checkpoint_path(run_dir2, 5), marker, step=5, optimizer={}, history=[], config={})
    with pytest.raises(RunError, match=r"no intact checkpoint .*step_0000005\.pt"):
        _train(run_dir2)
    assert main(["train", "--task", "rdm", "--task-param", "dt=10", "--hidden", "16", "--steps", "12",
                 "--run-dir", str(run_dir2), "--no-progress"]) == 2
    assert "step_0000005.pt" in _one_line(capsys)
    assert not marker.exists()


def test_a_payload_model_pt_does_not_run_in_load_run_eval_deploy_analyze(tmp_path, capsys):
    marker = tmp_path / "pwned"
    run_dir = tmp_path / "run"
    _train(run_dir, steps=5, eval_every=5)
    cfg = json.loads((run_dir / "config.json").read_text())
    _plant(run_dir / "model.pt", marker, config=cfg)
    for argv in (["deploy", "--run-dir", str(run_dir)], ["analyze", "spectrum", "--run-dir", str(run_dir)],
                 ["eval", "--run-dir", str(run_dir)]):
        assert main(argv) == 2, argv
        assert not marker.exists(), argv
        assert "model.pt" in _one_line(capsys)
    with pytest.raises(UnreadableFile, match="model.pt.*Python objects"):
        spikedyn.load_run(run_dir)
    assert not marker.exists()


# -- 2. one writer per run directory ---------------------------------------------------------------------
HOLDER = textwrap.dedent("""
    import pathlib, sys, time
    import torch
    torch.set_num_threads(1)
    import spikedyn
    from spikedyn.experiment import build_model, build_task
    run_dir = pathlib.Path(sys.argv[1])
    task = build_task("rdm", {"dt": 10.0})
    def hold(step, record):
        if step == 2:
            (run_dir.parent / "training").touch()
            time.sleep(600)
    spikedyn.train(build_model("rate", task, hidden=8, seed=0), task, steps=5, batch_size=4, eval_every=5,
                   eval_trials=10, run_dir=run_dir, progress=False, callback=hold)
""")


def test_a_second_writer_is_refused_while_a_run_trains(tmp_path, capsys):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 180
        while not (tmp_path / "training").exists():
            assert proc.poll() is None, proc.stderr.read()
            assert time.time() < deadline, "the first writer did not start"
            time.sleep(0.05)
        task = _task()
        with pytest.raises(RunLocked, match="in use by another spikedyn process"):
            spikedyn.train(build_model("rate", task, hidden=8, seed=0), task, steps=5, batch_size=4,
                           eval_every=5, eval_trials=10, run_dir=run_dir, progress=False)
        assert main(["train", "--task", "rdm", "--task-param", "dt=10", "--hidden", "8", "--steps", "5",
                     "--run-dir", str(run_dir), "--no-progress"]) == 2
        assert "in use" in _one_line(capsys)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # the OS releases the lock of a killed process: the run can be taken over
    task = _task()
    res = spikedyn.train(build_model("rate", task, hidden=8, seed=0), task, steps=5, batch_size=4, eval_every=5,
                         eval_trials=10, run_dir=run_dir, progress=False)
    assert res.history[-1]["step"] == 5


# -- 3. resume checks what it resumes ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A run killed after step 7 (its checkpoint: step 5); refusals must leave it as it is."""
    run_dir = tmp_path_factory.mktemp("interrupted")
    _train(run_dir, stop_at=7)
    return run_dir


@pytest.mark.parametrize("change,key", [
    (lambda: dict(seed=4), "train.seed: 3 -> 4"),
    (lambda: dict(batch_size=16), "train.batch_size: 8 -> 16"),
    (lambda: dict(steps=20), "train.steps: 12 -> 20"),
    (lambda: dict(clip=0.5), "train.clip: 1.0 -> 0.5"),
    (lambda: dict(eval_trials=60), "train.eval_trials: 50 -> 60"),
    (lambda: dict(rule="eprop"), "rule.name: 'bptt' -> 'eprop'"),
    (lambda: dict(task=_task(dt=5.0)), "task.dt: 10.0 -> 5.0"),
    (lambda: dict(net=_net(hidden=17)), "model.n_hidden: 16 -> 17"),
])  # fmt: skip
def test_resume_refuses_other_settings_with_one_line(interrupted, change, key):
    before = _snapshot(interrupted)
    with pytest.raises(RunError) as err:
        _train(interrupted, **change())
    message = str(err.value)
    assert "\n" not in message and key in message and "--restart" in message, message
    assert _snapshot(interrupted) == before, "a refused resume must not touch the run"


def test_resume_refuses_other_rule_settings(tmp_path):
    _train(tmp_path, rule="eprop", stop_at=7)
    with pytest.raises(RunError, match="rule.feedback: 'symmetric' -> 'random'"):
        _train(tmp_path, rule="eprop", rule_kwargs={"feedback": "random"})
    resumed = _train(tmp_path, rule="eprop")  # the same rule settings resume
    assert resumed.history[-1]["step"] == 12


def test_resume_without_lr_keeps_the_runs_lr_and_reproduces_the_run(tmp_path, reference):
    _train(tmp_path, stop_at=7)
    resumed = _train(tmp_path, lr=None)
    _assert_same(_params(resumed.model), reference)
    assert "lr_changes" not in json.loads((tmp_path / "config.json").read_text())["train"]


def test_a_new_lr_on_resume_resets_adams_lr_and_is_recorded(tmp_path, reference):
    """Adam's step is proportional to lr for the same gradients and moments, so the update of step 6
    resumed with lr = 4 x 0.01 is exactly 4 times the update with 0.01 (the old code kept 0.01)."""
    updates = {}
    for lr in (1e-2, 4e-2):
        run_dir = tmp_path / f"lr{lr}"
        _train(run_dir, stop_at=7)
        w5 = load_checkpoint(checkpoint_path(run_dir, 5))["model"]["W_rec"]
        net = _net()
        seen = {}
        _train(run_dir, net=net, lr=lr,
               callback=lambda s, r, net=net, seen=seen: seen.setdefault(s, net.W_rec.detach().clone()))
        updates[lr] = seen[6] - w5
        cfg = json.loads((run_dir / "config.json").read_text())["train"]
        assert cfg["lr"] == 1e-2
        assert cfg.get("lr_changes", []) == ([] if lr == 1e-2 else [{"step": 6, "lr": 4e-2}])
        assert torch.load(run_dir / "model.pt", weights_only=True)["config"]["train"] == cfg
    torch.testing.assert_close(updates[4e-2], 4 * updates[1e-2], rtol=1e-4, atol=1e-7)
    assert updates[1e-2].abs().max() > 0


def test_a_finished_run_is_returned_as_it_is_and_never_rewritten(tmp_path, caplog):
    first = _train(tmp_path)
    before = _snapshot(tmp_path)
    steps_run = []
    with caplog.at_level(logging.WARNING, logger="spikedyn.runs"):
        again = _train(tmp_path, callback=lambda s, r: steps_run.append(s))  # the same call again
    assert steps_run == [] and "is a finished run" in caplog.text
    _assert_same(_params(again.model), _params(first.model))
    assert again.history == first.history and again.final == first.final
    for change, match in ((dict(seed=4), r"finished run was trained with other settings \(train.seed: 3 -> 4\)"),
                          (dict(steps=20), "train.steps: 12 -> 20"),
                          (dict(lr=5e-3), "finished run .*a new lr cannot change it")):
        with pytest.raises(RunError, match=match):
            _train(tmp_path, **change)
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("also_summary", [False, True])
def test_a_run_without_checkpoints_is_not_trained_over(tmp_path, also_summary):
    _train(tmp_path)
    for p in (tmp_path / "checkpoints").iterdir():
        p.unlink()
    (tmp_path / "checkpoints").rmdir()
    if also_summary:
        (tmp_path / "summary.json").unlink()
    model_pt = (tmp_path / "model.pt").read_bytes()
    with pytest.raises(RunError, match="holds a model.pt but .*not trained over"):
        _train(tmp_path)
    assert (tmp_path / "model.pt").read_bytes() == model_pt


def test_restart_starts_a_finished_run_over(tmp_path, capsys, caplog):
    _train(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    restarted = _train(tmp_path, seed=4, restart=True)
    fresh = _train(tmp_path / "fresh", seed=4)
    _assert_same(_params(restarted.model), _params(fresh.model))
    assert json.loads((tmp_path / "config.json").read_text())["train"]["seed"] == 4
    assert (tmp_path / "notes.txt").read_text() == "mine", "restart removes only what spikedyn wrote"
    argv = ["train", "--task", "rdm", "--task-param", "dt=10", "--hidden", "8", "--steps", "3", "--batch-size",
            "4", "--eval-every", "3", "--eval-trials", "10", "--no-progress", "--run-dir", str(tmp_path / "cli")]
    assert main(argv) == 0
    with caplog.at_level(logging.WARNING, logger="spikedyn.runs"):
        assert main(argv) == 0 and "is a finished run" in caplog.text  # reported, nothing trained
    assert main([*argv, "--restart"]) == 0


USER_FILES = {"config.json": '{"mine": 1}', "report.html": "<p>my page</p>", "summary.json": "[1, 2]",
              "checkpoints/step_0000001.pt": "my notes"}


@pytest.mark.parametrize("name", sorted(USER_FILES))
def test_a_users_files_with_run_file_names_are_never_written_over_or_deleted(tmp_path, capsys, name):
    """B1 of review 2: a directory that is not recognisably a run (its config.json is not a run's, or it
    has none) keeps every file: train, train --restart and clear_run refuse it in one line (CLI: exit 2)."""
    from spikedyn.learning.checkpoint import clear_run

    user = tmp_path / "mine"
    (user / "checkpoints").mkdir(parents=True)
    (user / name).write_text(USER_FILES[name])
    before = {p.name: p.read_bytes() for p in user.rglob("*") if p.is_file() and p.name != ".lock"}
    for restart in (False, True):
        with pytest.raises(RunError, match=r"mine is not a spikedyn run directory: .*use another --run-dir"):
            _train(user, steps=2, eval_every=2, restart=restart)
    with pytest.raises(RunError, match="not a spikedyn run directory"):
        clear_run(user)
    argv = ["train", "--task", "rdm", "--task-param", "dt=10", "--hidden", "8", "--steps", "2", "--batch-size",
            "4", "--eval-every", "2", "--eval-trials", "10", "--no-progress", "--run-dir", str(user)]
    for extra in ([], ["--restart"]):
        assert main([*argv, *extra]) == 2
        line = _one_line(capsys)
        assert str(user) in line and "use another --run-dir" in line, line
    after = {p.name: p.read_bytes() for p in user.rglob("*") if p.is_file()}
    assert after == before, "nothing is written there, not even the lock file"


def test_a_run_is_recognised_and_restart_keeps_the_users_files_in_it(tmp_path):
    """A run killed before its first checkpoint (config.json only) starts over; restart removes the
    checkpoints spikedyn wrote but not a user's file in checkpoints/; a run without config.json but with
    an intact checkpoint is still a run."""
    from spikedyn.learning.checkpoint import is_run_dir

    small = dict(steps=6, eval_every=3, eval_trials=10, net=_net(hidden=6))
    _train(tmp_path / "early", stop_at=2, **small)  # killed before the first checkpoint (step 3)
    assert is_run_dir(tmp_path / "early") and not (tmp_path / "early" / "checkpoints").exists()
    assert _train(tmp_path / "early", **small).history[-1]["step"] == 6
    run = tmp_path / "run"
    _train(run, stop_at=4, **small)
    (run / "config.json").unlink()
    assert is_run_dir(run)  # recognised by its intact checkpoint
    damaged = run / "checkpoints" / "step_0000009.pt"  # a newer, damaged one: open_run resumes from step 3
    damaged.write_bytes(b"not a checkpoint")
    assert is_run_dir(run)
    damaged.unlink()
    (run / "checkpoints" / "keep.txt").write_text("mine")
    _train(run, restart=True, **small)
    assert (run / "checkpoints" / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["keep.txt", "step_0000003.pt",
                                                                       "step_0000006.pt"]
    assert not is_run_dir(tmp_path / "nothing") and not is_run_dir(tmp_path)


def _truncate(p):
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


DAMAGE = {
    "truncated": _truncate,
    "zero-length": lambda p: p.write_bytes(b""),
    "garbage": lambda p: p.write_bytes(os.urandom(4096)),
    "bad name": lambda p: (p.parent / "step_latest.pt").write_bytes(b"not a checkpoint"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_latest_checkpoint_is_reported_and_an_intact_one_used(tmp_path, reference, damage, caplog):
    _train(tmp_path, stop_at=12)  # checkpoints 5 and 10
    DAMAGE[damage](checkpoint_path(tmp_path, 10))
    with caplog.at_level(logging.WARNING, logger="spikedyn.runs"):
        resumed = _train(tmp_path)
    _assert_same(_params(resumed.model), reference)
    assert ("step_latest.pt" if damage == "bad name" else "step_0000010.pt") in caplog.text
    assert [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()] == list(
        range(1, 13))


def test_no_intact_checkpoint_is_one_line(tmp_path):
    _train(tmp_path, stop_at=7)
    checkpoint_path(tmp_path, 5).write_bytes(b"")
    with pytest.raises(RunError, match=r"no intact checkpoint.*step_0000005\.pt: it is empty or truncated"):
        _train(tmp_path)


def test_temp_files_of_killed_writes_are_removed(tmp_path):
    _train(tmp_path, stop_at=7)
    stale = [tmp_path / ".model.pt.0a1b2c3d4e5f.tmp",  # the names atomic_write_bytes uses
             tmp_path / "checkpoints" / ".step_0000010.pt.k2_9xq0z.tmp"]  # and older versions (mkstemp)
    for p in stale:
        p.write_bytes(b"half a file")
    (tmp_path / ".notes.tmp").write_text("the user's")
    _train(tmp_path)
    assert not any(p.exists() for p in stale)
    assert (tmp_path / ".notes.tmp").read_text() == "the user's", "only temp files of spikedyn's writes go"


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600)])
def test_files_get_the_users_normal_permissions(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        _train(tmp_path, steps=5, eval_every=5)
    finally:
        os.umask(old)
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != ".lock"]
    assert {p.name for p in files} >= {"config.json", "metrics.jsonl", "model.pt", "summary.json",
                                        "step_0000005.pt"}
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {oct(mode)}


# -- 7. load_run, spikedyn eval, readable results ---------------------------------------------------------------
def test_load_run_returns_the_trained_model_config_and_summary(tmp_path):
    result = _train(tmp_path)
    run = spikedyn.load_run(tmp_path)
    model, config, summary = run
    _assert_same(_params(model), _params(result.model))
    assert config == json.loads((tmp_path / "config.json").read_text())
    assert summary["final"]["accuracy"] == result.final["accuracy"]
    assert run.task.config() == _task().config()
    text = repr(run)
    assert text.startswith("Run(model=RateRNN(1->16->1)") and "accuracy=" in text and len(text) < 200, text
    _train(tmp_path / "part", stop_at=7)
    with pytest.raises(FileNotFoundError, match=r"not finished \(latest checkpoint: step_0000005\.pt\)"):
        spikedyn.load_run(tmp_path / "part")


def test_train_result_repr_is_readable(tmp_path):
    text = repr(_train(tmp_path))
    assert text.startswith("TrainResult(steps=12, accuracy=") and "model=RateRNN(1->16->1)" in text, text
    assert "history" not in text and len(text) < 200, text


def test_eval_reproduces_the_runs_final_evaluation(tmp_path, capsys):
    result = _train(tmp_path)
    assert main(["eval", "--run-dir", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["trials"] == SETTINGS["eval_trials"] and out["task"] == "rdm"
    assert out["accuracy"] == result.final["accuracy"] and out["eval_loss"] == result.final["eval_loss"]
    assert main(["eval", "--run-dir", str(tmp_path), "--trials", "200", "--seed", "9", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["trials"] == 200
    assert main(["eval", "--run-dir", str(tmp_path), "--task", "romo"]) == 2
    assert "inputs" in _one_line(capsys)
    assert main(["eval", "--run-dir", str(tmp_path), "--trials", "0"]) == 2
    assert "--trials" in _one_line(capsys)
    assert main(["eval", "--run-dir", str(tmp_path / "missing")]) == 2
    assert "does not exist" in _one_line(capsys)


# -- 8. the training seed changes the batches; the initialisation is held fixed ----------------------------------
class Recording:
    """A task that records the inputs of every training batch it hands out."""

    def __init__(self, task):
        self.task, self.train_inputs = task, []

    def __getattr__(self, name):
        return getattr(self.task, name)

    def sample(self, batch_size, rng=None, split="train"):
        batch = self.task.sample(batch_size, rng, split)
        if split == "train":
            self.train_inputs.append(batch.inputs.copy())
        return batch


def test_the_training_seed_changes_the_batches_with_the_init_held_fixed():
    runs = {}
    for seed in (3, 3, 4):
        net = build_model("rate", _task(), hidden=16, seed=0)  # the same initial weights every time
        task = Recording(_task())
        res = spikedyn.train(net, task, steps=3, batch_size=8, lr=1e-2, seed=seed, eval_every=3, eval_trials=20,
                             progress=False)
        runs.setdefault(seed, []).append((task.train_inputs, _params(res.model), [r["loss"] for r in res.history]))
    (a, b), (c,) = runs[3], runs[4]
    assert all((x == y).all() for x, y in zip(a[0], b[0])) and a[2] == b[2]  # same seed: same batches
    assert all(not (x == y).all() for x, y in zip(a[0], c[0])), "seed 4 must draw other batches than seed 3"
    assert a[2] != c[2] and any(not torch.equal(a[1][n], c[1][n]) for n in a[1])
