"""``Deployment.run`` in-process (a Python where lava-nc imports) honours ``progress`` and ``workdir``
exactly as the Lava subprocess does: both hand the same bundle to the same runner
(``spikedyn.hardware.run``). The numpy references stand in for Lava here (``tests/test_lava.py`` and
``tests/test_nir_network.py`` show that they equal it spike for spike)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from spikedyn.hardware.bundle import GRAPH, INPUTS, OPTIONS, RESULT, RESULT_INFO
from spikedyn.hardware.network import simulate_network_float
from spikedyn.hardware.reference import simulate_float

import spikedyn
from spikedyn.export.deploy_network import network_torch_reference
from spikedyn.models import SpikingNetwork, SpikingRNN


def _chunked(simulate):
    """A ``run_lava`` / ``run_network_lava`` stand-in: the reference, chunk by chunk, reporting progress."""
    def run(spec, x, precision="float", hardware="sim", q=None, chunk=None, progress=None, stats=None,
            **_):
        B, step = x.shape[1], chunk or 1
        parts = []
        for start in range(0, B, step):
            parts.append(simulate(spec, x[:, start:start + step]))
            if progress is not None:
                progress(min(B, start + step), B)
        if stats is not None:
            stats.update(setup_s=0.0, step_s=0.0, steps=0)
        if isinstance(parts[0], dict):
            return {k: np.concatenate([p[k] for p in parts], axis=1) for k in parts[0]}
        return np.concatenate(parts, axis=1)

    return run


@pytest.fixture
def in_process(monkeypatch):
    """lava-nc 'imports here': deploy() chooses the in-process runner (python=None)."""
    monkeypatch.setattr("spikedyn.export.deploy._lava_here", lambda: True)
    monkeypatch.setattr("spikedyn.hardware.lava_backend.run_lava", _chunked(simulate_float))
    monkeypatch.setattr("spikedyn.hardware.lava_network.run_network_lava", _chunked(simulate_network_float))

    def no_subprocess(*a, **k):
        raise AssertionError("the in-process path started a Lava subprocess")

    monkeypatch.setattr("spikedyn.hardware.runtime.run_bundle_subprocess", no_subprocess)


def _rnn() -> SpikingRNN:
    torch.manual_seed(0)
    m = SpikingRNN(3, 10, 2, du=0.5, dv=0.1, reset="zero", delay_in=1, gain=3.0)
    with torch.no_grad():
        m.W_in.mul_(2.0)
    return m


def _net() -> SpikingNetwork:
    return SpikingNetwork.build(3, [dict(size=8, neuron="lif", recurrent=True, gain=2.0, du=0.5, dv=0.1),
                                    dict(size=4, neuron="lif", du=1.0, dv=0.2)], n_out=2, seed=1)  # fmt: skip


X = 2.0 * np.random.default_rng(0).normal(size=(25, 3, 3))


@pytest.mark.parametrize("kind", ["rnn", "network"])
def test_in_process_run_honours_progress_and_workdir(kind, in_process, tmp_path, capfd):
    model = _rnn() if kind == "rnn" else _net()
    dep = spikedyn.deploy(model, chunk=1)
    assert dep.python is None  # in-process
    out = dep.run(X, progress=True, workdir=tmp_path / "work")
    err = capfd.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("lava:")] == [f"lava: {k}/3 trials" for k in (1, 2, 3)]
    # the bundle is kept under workdir, with what the subprocess path writes
    assert out.bundle is not None and out.bundle.parent == tmp_path / "work" and out.bundle.name.startswith("bundle-")
    assert all((out.bundle / f).is_file() for f in (GRAPH, INPUTS, OPTIONS, RESULT, RESULT_INFO))
    assert json.loads((out.bundle / OPTIONS).read_text())["progress"] is True
    assert json.loads((out.bundle / RESULT_INFO).read_text())["ok"] is True
    # and the spikes are the torch run's
    if kind == "rnn":
        from spikedyn.export.deploy import torch_reference

        want = torch_reference(model, X, "float")[0]
    else:
        want = np.concatenate(list(network_torch_reference(model, X, "float")[0].values()), axis=2)
    assert want.sum() > 30
    np.testing.assert_array_equal(out.spikes, want)
    # progress=False: silent; no workdir: a temporary bundle, removed
    quiet = dep.run(X, progress=False)
    assert "lava:" not in capfd.readouterr().err and quiet.bundle is None
    np.testing.assert_array_equal(quiet.spikes, out.spikes)


def test_in_process_failure_is_reported_like_the_subprocess(in_process, monkeypatch, tmp_path):
    """A failing in-process run: the same one-line RuntimeError as the subprocess path, the bundle kept
    with ``{"ok": false, "error": ...}`` under ``workdir``."""
    def boom(*a, **k):
        raise ValueError("Lava refused the graph")

    monkeypatch.setattr("spikedyn.hardware.lava_backend.run_lava", boom)
    dep = spikedyn.deploy(_rnn())
    with pytest.raises(RuntimeError, match=r"^Lava run failed: ValueError: Lava refused the graph \(bundle kept in "):
        dep.run(X, progress=False, workdir=tmp_path)
    (bundle,) = tmp_path.iterdir()
    info = json.loads((bundle / RESULT_INFO).read_text())
    assert info == {"ok": False, "error": "ValueError: Lava refused the graph"}
    assert not (bundle / RESULT).exists()


# -- the subprocess path's outcomes (fake interpreters) -------------------------------------------------
@pytest.mark.parametrize("outcome, error, message", [
    ("nothing", "LavaRunFailed", r"^Lava run failed: no result written \(see messages above\)$"),
    ("damaged", "ValueError", r"^cannot read the Lava result .*result.json: JSONDecodeError"),
    ("list", "ValueError", r"result.json is not a result object$"),
])  # fmt: skip
def test_subprocess_results_that_say_nothing_are_one_line(outcome, error, message, monkeypatch):
    from spikedyn.hardware import runtime

    def fake(directory, python=None, timeout=None):
        if outcome != "nothing":
            (directory / RESULT_INFO).write_text("{ok" if outcome == "damaged" else "[1, 2]")

    monkeypatch.setattr("spikedyn.hardware.runtime.run_bundle_subprocess", fake)
    with pytest.raises((runtime.LavaRunFailed, ValueError), match=message) as e:
        spikedyn.deploy(_rnn(), lava_python="/fake").run(X, progress=False)
    assert type(e.value).__name__ == error and "\n" not in str(e.value)


def test_an_interpreter_that_cannot_start_or_dies_is_one_line(tmp_path):
    from spikedyn.hardware.runtime import LavaNotFound, LavaRunFailed, run_bundle_subprocess

    with pytest.raises(LavaNotFound, match="cannot start the Lava interpreter .*; run `make lava`"):
        run_bundle_subprocess(tmp_path, str(tmp_path / "no-python"))
    dying = tmp_path / "python"
    dying.write_text("#!/bin/sh\nexit 3\n")
    dying.chmod(0o755)
    with pytest.raises(LavaRunFailed, match=r"exited with code 3; see the messages above$"):
        run_bundle_subprocess(tmp_path, str(dying))


@pytest.mark.parametrize("kind", ["rnn", "network"])
def test_both_models_choose_the_lava_interpreter_alike(kind, monkeypatch):
    """``SpikingRNN`` and ``SpikingNetwork`` deployments pick the interpreter in one place: in-process when
    lava-nc imports here, else the one given; ``lava-loihi`` without lava-loihi is one ``LavaNotFound`` line
    (a network used to skip that check and fail later, inside the Lava runner)."""
    from spikedyn.hardware.runtime import LavaNotFound

    model = _rnn() if kind == "rnn" else _net()
    monkeypatch.setattr("spikedyn.export.deploy._lava_here", lambda: True)
    assert spikedyn.deploy(model).python is None
    assert spikedyn.deploy(model, lava_python="/given").python == "/given"
    monkeypatch.setattr("spikedyn.hardware.lava_backend.loihi_available", lambda: False)
    with pytest.raises(LavaNotFound, match=r"^backend 'lava-loihi' needs Intel's lava-loihi \(not installed\)"):
        spikedyn.deploy(model, backend="lava-loihi")
    monkeypatch.setattr("spikedyn.hardware.runtime.loihi_installed", lambda python: False)
    with pytest.raises(LavaNotFound, match="which /given cannot import; use 'lava-sim'"):
        spikedyn.deploy(model, backend="lava-loihi", lava_python="/given")


def test_a_network_deployment_checks_its_options_as_a_deployment_does():
    dep = spikedyn.deploy(_net(), lava_python="/fake")
    for change, message in ((dict(backend="loihi3"), "backend"), (dict(precision="int4"), "precision"),
                            (dict(chunk=-1), "chunk")):
        with pytest.raises(ValueError, match=message):
            type(dep)(**{**dep.__dict__, **change})
