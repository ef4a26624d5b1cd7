"""spikedyn.progress: a bar on a terminal, periodic one-line log records otherwise, silent when quiet."""
from __future__ import annotations

import logging

import pytest

from spikedyn import progress as P


@pytest.fixture
def records(caplog):
    caplog.set_level(logging.INFO, logger="spikedyn.progress")
    return caplog


def test_log_lines_when_not_a_terminal(records):
    with P.progress(10, "train rdm", unit="step", interactive=False, every_s=0.0) as p:
        for i in range(10):
            p.update(1, loss=1.0 / (i + 1))
    lines = [r.getMessage() for r in records.records if r.name == "spikedyn.progress"]
    assert len(lines) == 11  # one per update (every_s=0) and the closing one
    assert lines[0].startswith("train rdm: 1/10 step (10%)") and "loss=1" in lines[0] and "s left" in lines[0]
    assert lines[-1].startswith("train rdm: 10/10 step (100%)") and lines[-1].endswith("(done)")
    assert all("\n" not in line for line in lines)


def test_log_lines_are_periodic_not_per_step(records):
    p = P.progress(1000, "work", interactive=False, every_s=3600.0)  # a period longer than the work
    for _ in range(1000):
        p.update()
    p.close()
    lines = [r.getMessage() for r in records.records if r.name == "spikedyn.progress"]
    assert not lines  # nothing within the hour: not one line per step


def test_resumed_progress_counts_from_initial(records):
    p = P.progress(10, "train", initial=4, interactive=False, every_s=0.0)
    p.update()
    p.close()
    assert "5/10" in records.records[0].getMessage()


def test_quiet_and_disabled_are_silent(records):
    P.set_quiet(True)
    try:
        list(P.track(range(5), "quiet", enabled=True))
        with P.progress(3, "q", interactive=False, every_s=0.0) as p:
            p.update(3)
    finally:
        P.set_quiet(False)
    with P.progress(3, "off", enabled=False, interactive=False, every_s=0.0) as p:
        p.update(3)
    assert not [r for r in records.records if r.name == "spikedyn.progress"]


def test_track_yields_every_item(records):
    assert list(P.track(iter([1, 2, 3]), "items")) == [1, 2, 3]


def test_short_work_is_silent_in_logs(records):
    with P.progress(5, "quick", interactive=False, every_s=3600.0) as p:
        p.update(5)
    assert not [r for r in records.records if r.name == "spikedyn.progress"]


def test_training_reports_progress_in_logs(records, monkeypatch):
    monkeypatch.setenv("SPIKEDYN_PROGRESS_EVERY", "0")
    import spikedyn.tasks as T

    from spikedyn.learning import train
    from spikedyn.models import RateRNN

    task = T.make("rdm", dt=10.0)
    P.set_quiet(False)
    train(RateRNN(task.n_inputs, 4, task.n_outputs), task, steps=3, eval_every=3, eval_trials=8, batch_size=4)
    lines = [r.getMessage() for r in records.records if r.name == "spikedyn.progress"]
    assert lines and lines[-1].startswith("train rdm: 3/3 step") and "loss=" in lines[-1]


def test_sweeps_and_lyapunov_spectra_report_progress_in_logs(records, monkeypatch, tmp_path):
    """Issue 14 item 5 beyond training: a sweep reports over its trials and a Lyapunov spectrum over its
    steps (log lines off a terminal), and both are silent when quiet (the CLI's --json)."""
    monkeypatch.setenv("SPIKEDYN_PROGRESS_EVERY", "0")
    monkeypatch.setattr(P, "_interactive", lambda: False)
    import torch

    import spikedyn
    from spikedyn.analysis import lyapunov_spectrum
    from spikedyn.models import RateRNN

    def lines() -> list[str]:
        return [r.getMessage() for r in records.records if r.name == "spikedyn.progress"]

    torch.manual_seed(0)
    net, u = RateRNN(1, 4, 1, alpha=0.5), torch.zeros(12, 2, 1)
    lyapunov_spectrum(net, u, k=2, progress=True)
    assert lines() and lines()[-1].startswith("Lyapunov spectrum: 12/12 step (100%)")
    spec = {"name": "p", "base": {"task": "romo", "hidden": 4, "steps": 2, "eval_every": 2, "eval_trials": 8,
                                  "batch_size": 4, "task_params": {"dt": 20.0}}, "grid": {"seed": [0, 1]},
            "figures": False}  # fmt: skip
    spikedyn.sweep(spec, out_dir=tmp_path / "s")
    assert any(line.startswith("sweep p: 2/2 trials (100%)") for line in lines())
    records.clear()
    P.set_quiet(True)
    try:
        lyapunov_spectrum(net, u, k=2, progress=True)
        spikedyn.sweep(spec, out_dir=tmp_path / "q")
    finally:
        P.set_quiet(False)
    assert not lines()
