"""The bad-input corpus (issue 17): numeric edge cases — NaN, Inf, zero and negative sizes and times,
empty batches — thrown at the models, the tasks, NIR import and Lava bundles with ``hypothesis``.

Every case ends in one of two documented outcomes, never a third:

* a ``ValueError`` (or ``FileNotFoundError`` for a missing file) whose message is one line, or
* a result that is finite and has the documented shape (and, for a bundle, equals the reference
  simulation), with nothing half-written left on disk (no ``*.tmp`` files, ``result.json`` complete).

The searches are derandomised (same examples every run) and small (``max_examples`` 20-40) to keep the
suite fast on two cores.
"""
from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import nir
import numpy as np
import pytest
import spikedyn.tasks as tasks
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from spikedyn.hardware import run as runner
from spikedyn.hardware.bundle import GRAPH, INPUTS, OPTIONS, RESULT, RESULT_INFO
from spikedyn.hardware.quantize import quantize_loihi2
from spikedyn.hardware.reference import simulate_fixed, simulate_float

import spikedyn
from spikedyn.export.nir import from_nir, spec_from_model, to_nir
from spikedyn.models import RateRNN, SpikingRNN

CORPUS = settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

SPECIAL = [math.nan, math.inf, -math.inf, 0.0, -0.0, -1.0, -1e-9, 1e-9, 1e300]
numbers = st.one_of(st.sampled_from(SPECIAL), st.floats(-50, 50, allow_nan=False), st.integers(-3, 6))
odd_values = st.one_of(numbers, st.sampled_from([None, True, False, "7", [], {}]))


def _one_line_error(e: BaseException) -> None:
    text = str(e)
    assert text and "\n" not in text.strip(), f"not one line: {text!r}"
    assert not text.startswith(("index ", "operands could not be broadcast", "cannot convert float NaN")), text


# -- models --------------------------------------------------------------------------------------------
sizes = st.one_of(st.integers(-2, 4), st.sampled_from([0, 2.5, math.nan, math.inf, True, "3"]))
times = st.one_of(st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -1.0, 1e-6]), st.floats(0.1, 100.0))


@CORPUS
@given(n_in=sizes, n_hidden=sizes, dt=times, tau_mem=times, tau_syn=times, tau_out=times, refractory=times,
       v_th=numbers)
def test_spiking_constructor(n_in, n_hidden, dt, tau_mem, tau_syn, tau_out, refractory, v_th):
    try:
        m = SpikingRNN(n_in, n_hidden, 1, dt=dt, tau_mem=tau_mem, tau_syn=tau_syn, tau_out=tau_out,
                       refractory=refractory, v_th=v_th)
    except ValueError as e:
        _one_line_error(e)
        return
    p = m.params
    for name in ("du", "dv", "kappa", "rho"):
        assert 0.0 <= getattr(p, name) <= 1.0 and math.isfinite(getattr(p, name)), (name, getattr(p, name))
    assert p.v_th > 0 and math.isfinite(p.v_th) and m.dt > 0 and math.isfinite(m.dt)


@CORPUS
@given(T=st.integers(0, 3), B=st.integers(0, 2), value=numbers, where=st.integers(0, 100),
       kind=st.sampled_from(["lif", "alif", "lif-loihi2", "rate"]))
def test_rollout_inputs(T, B, value, where, kind):
    """NaN/Inf inputs, T = 0 and B = 0 are ValueErrors (they used to be silent spike-free runs, or an
    IndexError); every accepted input gives finite outputs."""
    torch.manual_seed(0)
    if kind == "rate":
        m = RateRNN(2, 6, 1)
    else:
        m = SpikingRNN(2, 6, 1, neuron=kind[:4].rstrip("-"), reset="zero")
        m = m.quantized("loihi2") if kind.endswith("loihi2") else m
    u = torch.rand(T, B, 2)
    if u.numel():
        u.view(-1)[where % u.numel()] = float(value)
    finite = bool(torch.isfinite(u).all()) and T > 0 and B > 0
    try:
        out = m(u)
    except ValueError as e:
        _one_line_error(e)
        assert not finite, f"refused a valid input: {e}"
        return
    assert finite, "accepted a NaN/Inf/empty input"
    assert out.y.shape == (T, B, 1) and bool(torch.isfinite(out.y).all())


@CORPUS
@given(shape=st.lists(st.integers(0, 3), min_size=1, max_size=4))
def test_rollout_input_shapes(shape):
    m = SpikingRNN(3, 4, 1)
    try:
        out = m(torch.zeros(shape))
    except ValueError as e:
        _one_line_error(e)
        assert len(shape) != 3 or shape[2] != 3 or 0 in shape[:2]
        return
    assert out.r.shape == (shape[0], shape[1], 4)


# -- tasks ---------------------------------------------------------------------------------------------
TASKS = [n for n in tasks.available() if n != "psmnist"]  # psmnist needs the MNIST files


@st.composite
def task_params(draw):
    name = draw(st.sampled_from(TASKS))
    from spikedyn.tasks.base import parameter_names

    params = parameter_names(tasks._REGISTRY[name])
    chosen = draw(st.lists(st.sampled_from(params), max_size=3, unique=True))
    kw = {p: draw(odd_values) for p in chosen}
    if "timing" in params and draw(st.booleans()):
        kw["timing"] = {draw(st.sampled_from(["fixation", "decision", "delay"])): draw(numbers)}
    return name, kw


@CORPUS
@given(case=task_params(), batch=st.sampled_from([1, 2, 0, -1, 1.5]))
@example(case=("2af", {"timing": 100.0}), batch=1)  # each of these used to be a TypeError/OverflowError ...
@example(case=("rdm", {"response_ms": None}), batch=1)
@example(case=("cdi", {"duration_ms": math.inf}), batch=1)
@example(case=("romo", {"timing": {"fixation": math.inf}}), batch=1)
@example(case=("rdm", {"coherence_max": math.inf}), batch=1)
@example(case=("rdm", {"noise_var": math.nan}), batch=1)  # ... or NaN inputs
@example(case=("rdm", {"dt": 1e-9}), batch=1)  # a MemoryError (7.5e11 steps)
def test_tasks(case, batch):
    """Bad task parameters (NaN, Inf, 0, negatives, wrong types) and batch sizes are one-line
    ValueErrors; an accepted task makes trials of at least one step with finite arrays."""
    name, kw = case
    try:
        task = tasks.make(name, **kw)
        b = task.sample(batch, rng=0)
    except ValueError as e:
        _one_line_error(e)
        return
    except KeyError as e:  # timing with a period this task does not have
        pytest.fail(f"KeyError {e} for {name} {kw}")
    if "timing" in kw and not isinstance(kw.get("timing"), dict):
        pytest.fail(f"accepted timing={kw['timing']!r}")
    assert b.n_steps >= 1 and b.batch_size == batch
    for arr in (b.inputs, b.targets, b.mask):
        assert np.all(np.isfinite(arr)), (name, kw)
    assert 0.0 <= task.score(b.targets, b)["accuracy"] <= 1.0


def test_zero_step_trials_are_refused():
    """T = 0: a NeuroGym env whose periods are all 0 ms used to fail inside numpy; a model fed T = 0
    steps raised an IndexError. Both are one-line ValueErrors now."""
    task = tasks.make("neurogym:PerceptualDecisionMaking-v0",
                      timing={"fixation": 0, "stimulus": 0, "delay": 0, "decision": 0})
    with pytest.raises(ValueError, match="0 steps") as info:
        task.sample(2, rng=0)
    _one_line_error(info.value)
    with pytest.raises(ValueError, match="0 time steps"):
        SpikingRNN(2, 3, 1)(torch.zeros(0, 2, 2))


# -- NIR import ----------------------------------------------------------------------------------------
def _graph(kind: str) -> nir.NIRGraph:
    torch.manual_seed(0)
    kw = {"lif": dict(du=1.0, dv=0.1), "cubalif": dict(tau_syn=5.0, bias=False), "if": dict(tau_mem=math.inf)}[kind]
    return to_nir(SpikingRNN(2, 5, 1, reset="zero", **kw), dt=1e-3)


FIELDS = {"lif": ["tau", "r", "v_threshold", "v_leak"], "cubalif": ["tau_syn", "tau_mem", "r", "v_threshold", "w_in"],
          "if": ["r", "v_threshold"]}


@st.composite
def tampered_graphs(draw):
    kind = draw(st.sampled_from(list(FIELDS)))
    g = _graph(kind)
    keep_metadata = draw(st.booleans())
    if not keep_metadata:
        g.metadata = {}
    target = draw(st.sampled_from(["lif", "w_in", "w_rec", "w_out", "input", "output"]))
    value = draw(numbers)
    size = draw(st.sampled_from([5, 4, 1, 0]))
    if target == "lif":
        setattr(g.nodes["lif"], draw(st.sampled_from(FIELDS[kind])), np.full(size, float(value)))
    elif target in ("w_in", "w_rec", "w_out"):
        W = np.array(g.nodes[target].weight, dtype=np.float64)
        if size == 5:
            W.flat[draw(st.integers(0, W.size - 1))] = float(value)
        else:
            W = np.ones((size, W.shape[1]))
        g.nodes[target].weight = W
    elif target == "input":
        g.nodes["input"] = nir.Input(input_type={"input": np.array([size])})
    else:
        g.nodes["output"] = nir.Output(output_type={"output": np.array([size])})
    return g, keep_metadata


@CORPUS
@given(case=tampered_graphs())
def test_nir_import(case):
    """A graph with NaN/Inf/zero/negative constants or weights, wrong sizes or Input/Output sizes that
    disagree with its weights is a one-line ValueError naming the problem; an accepted graph runs to
    finite outputs."""
    g, keep_metadata = case
    try:
        m = from_nir(g) if keep_metadata else from_nir(g, dt=1e-3)
    except ValueError as e:
        _one_line_error(e)
        return
    out = m(torch.rand(4, 2, m.n_in))
    assert bool(torch.isfinite(out.y).all())
    spec = spec_from_model(m)
    assert spec.n_in == np.asarray(g.nodes["w_in"].weight).shape[1]


@settings(max_examples=20, deadline=None, derandomize=True)
@given(data=st.binary(max_size=300), hdf5=st.booleans())
def test_nir_files(data, hdf5):
    """Random bytes (or an HDF5 signature followed by garbage) are one line naming the file."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "net.nir"
        path.write_bytes((b"\x89HDF\r\n\x1a\n" if hdf5 else b"") + data)
        with pytest.raises(ValueError, match="cannot read NIR file") as info:
            from_nir(path)
        assert str(path) in str(info.value)
        _one_line_error(info.value)


# -- Lava bundles (the runner in-process; the numpy reference stands in for Lava) ------------------------
def _reference_lava(spec, x, precision="float", hardware="sim", q=None, chunk=None, progress=None, stats=None):
    """What ``run_lava`` computes, from the numpy references (tests/test_lava.py shows they equal Lava)."""
    if precision == "fixed":
        return simulate_fixed(spec, quantize_loihi2(spec.W_in, spec.W_rec, spec.bias, spec.v_th, spec.du,
                                                    spec.dv), x)
    return simulate_float(spec, x)


@pytest.fixture(scope="module")
def bundle_graph() -> bytes:
    torch.manual_seed(0)
    m = SpikingRNN(2, 6, 1, du=0.5, dv=0.1, reset="zero", delay_in=1, gain=3.0)
    with torch.no_grad():
        m.W_in.mul_(3.0)
    buf = io.BytesIO()
    nir.write(buf, to_nir(m))
    return buf.getvalue()


options_st = st.fixed_dictionaries(
    {},
    optional={"precision": st.sampled_from(["float", "fixed", "double", 1, None]),
              "hardware": st.sampled_from(["sim", "loihi2", None]),
              "chunk": st.one_of(st.integers(-3, 4), st.sampled_from([None, 0, 1.5, "2", True, math.nan])),
              "progress": st.sampled_from([False, "yes"]),
              "chunks": st.just(2)},
)


@st.composite
def bundle_inputs(draw):
    T, B, I = draw(st.integers(0, 4)), draw(st.integers(0, 3)), draw(st.sampled_from([2, 2, 2, 3]))
    x = np.random.default_rng(draw(st.integers(0, 9))).normal(size=(T, B, I))
    if x.size and draw(st.booleans()):
        x.flat[draw(st.integers(0, x.size - 1))] = draw(st.sampled_from([math.nan, math.inf, -math.inf, 1e6]))
    return x


@settings(max_examples=40, deadline=None, derandomize=True)
@given(options=options_st, x=bundle_inputs(), damage=st.sampled_from([None, None, None, "graph", "inputs",
                                                                      "options"]))
def test_bundles(bundle_graph, options, x, damage, monkeypatch_module):
    """A bundle with bad options (chunk < 1, unknown keys, wrong types), NaN/Inf or empty inputs, or a
    damaged file is refused by the runner with ``ok: false`` and one line (exit 1); a good bundle gives
    the reference's spikes. Nothing half-written is left behind."""
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / GRAPH).write_bytes(bundle_graph[: len(bundle_graph) // 3] if damage == "graph" else bundle_graph)
        if damage == "inputs":
            (d / INPUTS).write_bytes(b"PK\x03\x04 truncated")
        else:
            np.savez(d / INPUTS, u=x)
        (d / OPTIONS).write_text("{not json" if damage == "options" else json.dumps(options))
        code = runner.main([str(d)])
        info = json.loads((d / RESULT_INFO).read_text())
        assert not list(d.glob("*.tmp")) and not list(d.glob(".*.tmp"))
        valid = (damage is None and options.get("precision", "float") in ("float", "fixed")
                 and options.get("hardware", "sim") == "sim"
                 and (options.get("chunk") is None or (type(options["chunk"]) is int and options["chunk"] >= 1))
                 and options.get("progress", False) is False and "chunks" not in options
                 and x.ndim == 3 and x.shape[0] >= 1 and x.shape[1] >= 1 and x.shape[2] == 2
                 and np.all(np.isfinite(x)))
        if code == 0:
            assert valid, f"accepted a bad bundle: {options} {x.shape} {damage}"
            assert info["ok"] is True
            with np.load(d / RESULT) as data:
                spikes = data["spikes"]
            want = _reference_lava(spec_from_model(from_nir(d / GRAPH)), x, options.get("precision", "float"))
            np.testing.assert_array_equal(spikes, want)
        else:
            assert code == 1 and info["ok"] is False and not (d / RESULT).exists()
            assert not valid, f"refused a good bundle: {info['error']}"
            _one_line_error(Exception(info["error"]))


@pytest.fixture(scope="module")
def monkeypatch_module():
    """Lava is replaced by the numpy reference for the whole corpus (module scope: hypothesis reruns the
    test body many times in one test call)."""
    mp = pytest.MonkeyPatch()
    mp.setattr("spikedyn.hardware.lava_backend.run_lava", _reference_lava)
    yield mp
    mp.undo()


# -- the API on top: deploy / Deployment.run ----------------------------------------------------------------
@settings(max_examples=25, deadline=None, derandomize=True)
@given(chunk=st.one_of(st.integers(-3, 3), st.sampled_from([None, 1.5, "1", True, math.inf])), x=bundle_inputs())
def test_deploy_api(chunk, x):
    m = SpikingRNN(2, 4, 1, reset="zero")
    try:
        dep = spikedyn.deploy(m, chunk=chunk, lava_python="/no/lava/needed")
        dep.run(x, progress=False)
    except ValueError as e:
        _one_line_error(e)
        ok_chunk = chunk is None or (type(chunk) is int and chunk >= 1)
        ok_x = x.ndim == 3 and x.shape[0] >= 1 and x.shape[1] >= 1 and x.shape[2] == 2 and np.all(np.isfinite(x))
        assert not (ok_chunk and ok_x), f"refused a good call: {e}"
        return
    except RuntimeError as e:  # a good call got as far as looking for the (fake) Lava interpreter
        assert "/no/lava/needed" in str(e) or "Lava" in str(e), e
        return
    pytest.fail("a run without a Lava interpreter cannot succeed")


# -- the command line -------------------------------------------------------------------------------------
def test_cli_deploy_chunk_minus_one_is_a_one_line_error(tmp_path):
    """``spikedyn deploy --chunk -1`` used to report ok with zero spikes and an accuracy. The chunk is
    refused before any Lava interpreter is looked for (none is given here)."""
    run = tmp_path / "run"
    task = tasks.make("rdm", dt=50.0)
    spikedyn.train(SpikingRNN(task.n_inputs, 8, task.n_outputs, dt=50.0, reset="zero"), task, steps=1,
                   batch_size=4, run_dir=str(run), progress=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SPIKEDYN_LAVA_PYTHON": str(tmp_path / "no-lava-python")}
    dep = subprocess.run([sys.executable, "-m", "spikedyn.cli", "deploy", "--run-dir", str(run), "--precision",
                          "float", "--trials", "4", "--chunk", "-1"], capture_output=True, text=True, timeout=600,
                         env=env)
    assert dep.returncode == 2, (dep.returncode, dep.stderr[-2000:])
    assert dep.stderr.startswith("spikedyn: error:") and "chunk" in dep.stderr and dep.stderr.count("\n") == 1
    assert not (run / "deploy.json").exists()
