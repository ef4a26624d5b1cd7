"""Deployments that cannot silently give wrong results (issue 17): a bundle directory per run (two
concurrent runs sharing a work directory keep their own spikes), every option checked at the API
boundary and in the Lava runner (chunk >= 1, finite inputs, T, B >= 1), ``Deployment.run`` returning a
``Rollout``, and the Loihi 2 threshold test ``v > vth << 6`` (strict) pinned at the boundary.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from spikedyn.hardware import run as runner
from spikedyn.hardware.bundle import GRAPH, INPUTS, OPTIONS, RESULT_INFO, read_bundle, write_bundle, write_result
from spikedyn.hardware.nir_io import spec_from_nir
from spikedyn.hardware.quantize import quantize_loihi2
from spikedyn.hardware.reference import simulate_fixed, simulate_float

import spikedyn
from spikedyn.export.deploy import HardwareRollout, torch_reference
from spikedyn.export.nir import spec_from_model, to_nir
from spikedyn.models import Rollout, SpikingRNN

ROOT = Path(__file__).resolve().parent.parent
I, N = 3, 12


def _net(seed: int, **kw) -> SpikingRNN:
    torch.manual_seed(seed)
    m = SpikingRNN(I, N, 2, **{"du": 0.5, "dv": 0.1, "reset": "zero", "delay_in": 1, "gain": 3.0, **kw})
    with torch.no_grad():
        m.b.uniform_(0.0, 0.1)
        m.W_in.mul_(2.0)
    return m


def _x(T: int = 40, B: int = 2, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(T, B, I))


# -- a fake Lava interpreter: the numpy reference simulator, run on the bundle ----------------------------
def _fake_runner(barrier: threading.Barrier | None = None):
    """``run_bundle_subprocess`` stand-in: reads the bundle, simulates it with the numpy reference and
    writes the result, after ``barrier`` (both runs have written their bundles before either reads)."""
    seen: list[Path] = []

    def run(directory: Path, python: str | None = None, timeout: float | None = None) -> None:
        seen.append(Path(directory))
        if barrier is not None:
            barrier.wait(timeout=60)
        graph, u, options = read_bundle(directory)
        spikes = simulate_float(spec_from_nir(graph), u)
        write_result(directory, spikes, {"ok": True, "error": None, "seconds": 0.0, "steps": spikes.shape[0]})

    return run, seen


def test_concurrent_runs_sharing_a_workdir_keep_their_own_spikes(tmp_path, monkeypatch):
    """Issue 17: two concurrent Deployment.run(workdir=same) used to share one bundle directory, and one
    run could receive the other network's spikes. Each run now has its own bundle-* directory."""
    barrier = threading.Barrier(2)
    fake, seen = _fake_runner(barrier)
    monkeypatch.setattr("spikedyn.hardware.runtime.run_bundle_subprocess", fake)
    nets = [_net(1), _net(2)]  # same sizes, different weights
    x = _x()
    deps = [spikedyn.deploy(m, lava_python="/fake/lava/python") for m in nets]
    results: dict[int, HardwareRollout] = {}
    errors: list[BaseException] = []

    def go(k: int) -> None:
        try:
            results[k] = deps[k].run(x, progress=False, workdir=tmp_path)
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=go, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    for k, m in enumerate(nets):
        want = simulate_float(spec_from_model(m), x)
        assert want.sum() > 50
        np.testing.assert_array_equal(results[k].spikes, want, err_msg=f"run {k} got another network's spikes")
    assert len(set(seen)) == 2 and all(d.parent == tmp_path and d.name.startswith("bundle-") for d in seen)
    assert {results[0].bundle, results[1].bundle} == set(seen)  # kept, one per run
    assert not (tmp_path / GRAPH).exists()


def test_run_returns_a_rollout_with_the_hardware_extras(tmp_path, monkeypatch):
    """Issue 10: ``y, r, state = deployment.run(u)`` works (it used to return a 6-field tuple)."""
    fake, _ = _fake_runner()
    monkeypatch.setattr("spikedyn.hardware.runtime.run_bundle_subprocess", fake)
    m, x = _net(3), _x(T=30, B=3)
    out = spikedyn.deploy(m, lava_python="/fake/lava/python").run(torch.as_tensor(x), progress=False)
    y, r, state = out
    assert isinstance(out, Rollout) and len(out) == 3 and state is None
    spikes, counts, y_ref = torch_reference(m, x, "float")
    np.testing.assert_array_equal(out.spikes, spikes)
    np.testing.assert_array_equal(r, counts)
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-12)
    assert out.seconds >= 0 and isinstance(out.timing, dict) and out.bundle is None  # temporary bundle: removed
    assert (out.y is y) and (out.r is r)


def test_deploy_refuses_bad_options_and_inputs_in_one_line(monkeypatch):
    """Issue 17: chunk=-1 used to report ok with zero spikes; NaN/Inf inputs gave a spike-free run."""
    fake, seen = _fake_runner()
    monkeypatch.setattr("spikedyn.hardware.runtime.run_bundle_subprocess", fake)
    m = _net(4)
    for chunk in (-1, 0, 1.5, True, "2"):
        with pytest.raises(ValueError, match="chunk"):
            spikedyn.deploy(m, chunk=chunk, lava_python="/fake")
    dep = spikedyn.deploy(m, lava_python="/fake")
    dep.chunk = -1  # set after construction: run() checks again
    with pytest.raises(ValueError, match="chunk"):
        dep.run(_x(), progress=False)
    dep.chunk = None
    x = _x()
    for bad, match in ((np.nan, "non-finite"), (np.inf, "non-finite"), (-np.inf, "non-finite")):
        xb = x.copy()
        xb[5, 1, 2] = bad
        with pytest.raises(ValueError, match=match) as info:
            dep.run(xb, progress=False)
        assert "step 5, trial 1, input 2" in str(info.value) and "\n" not in str(info.value)
    for shape in ((0, 2, I), (10, 0, I)):
        with pytest.raises(ValueError, match="both must be >= 1"):
            dep.run(np.zeros(shape), progress=False)
    with pytest.raises(ValueError, match=r"shape \[T, B, 3\]"):
        dep.run(np.zeros((10, 2, I + 1)), progress=False)
    assert seen == []  # nothing reached the runner, nothing was written


def _raw_bundle(directory: Path, m: SpikingRNN, u: np.ndarray, options: dict) -> Path:
    """A bundle written by hand (as another tool, or a damaged one, might): no checks on the way in."""
    import io

    import nir

    directory.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    nir.write(buf, to_nir(m))
    (directory / GRAPH).write_bytes(buf.getvalue())
    np.savez(directory / INPUTS, u=u)
    (directory / OPTIONS).write_text(json.dumps(options))
    return directory


@pytest.mark.parametrize(
    "options, inputs, message",
    [
        ({"precision": "float", "chunk": -1}, None, "chunk"),
        ({"precision": "float", "chunk": 0}, None, "chunk"),
        ({"precision": "float", "chunk": "all"}, None, "chunk"),
        ({"precision": "double"}, None, "precision"),
        ({"precision": "float", "chunks": 2}, None, "unknown option"),
        ({"precision": "float"}, "nan", "non-finite"),
        ({"precision": "fixed"}, "inf", "non-finite"),
        ({"precision": "float"}, "empty", "both must be >= 1"),
        ({"precision": "float"}, "wide", r"\[T, B, 3\]"),
    ],
)
def test_runner_refuses_bad_bundles_before_running(tmp_path, options, inputs, message):
    """The runner (python -m spikedyn.hardware.run) checks a bundle before compiling it: in-process here
    (no Lava needed, nothing reaches Lava), through the real Lava interpreter below."""
    x = _x(T=10)
    if inputs == "nan":
        x[3, 0, 0] = np.nan
    elif inputs == "inf":
        x[0, 1, 2] = np.inf
    elif inputs == "empty":
        x = np.zeros((0, 2, I))
    elif inputs == "wide":
        x = np.zeros((10, 2, I + 2))
    d = _raw_bundle(tmp_path / "b", _net(5), x, options)
    assert runner.main([str(d)]) == 1
    info = json.loads((d / RESULT_INFO).read_text())
    assert info["ok"] is False
    assert re.search(message, info["error"]), info["error"]
    assert not (d / "result.npz").exists()


@pytest.mark.lava
def test_lava_runner_refuses_chunk_minus_one_and_nan_inputs(tmp_path, lava_python):
    """Issue 17 in the real Lava environment: both used to finish with ok: true."""
    x_nan = _x(T=10)
    x_nan[4, 1, 0] = np.nan
    for name, options, x in (("chunk", {"precision": "float", "chunk": -1}, _x(T=10)),
                             ("nan", {"precision": "fixed"}, x_nan)):
        d = _raw_bundle(tmp_path / name, _net(6), x, options)
        out = subprocess.run([lava_python, "-m", "spikedyn.hardware.run", str(d)], capture_output=True, text=True,
                             timeout=300)
        info = json.loads((d / RESULT_INFO).read_text())
        assert out.returncode == 1 and info["ok"] is False, (name, info)
        assert ("chunk" if name == "chunk" else "non-finite") in info["error"]
        assert out.stderr.strip().count("\n") == 0, out.stderr


def test_write_bundle_refuses_before_writing(tmp_path):
    g = to_nir(_net(7))
    bad = _x()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        write_bundle(tmp_path / "b1", g, bad, {"precision": "float"})
    with pytest.raises(ValueError, match="chunk"):
        write_bundle(tmp_path / "b2", g, _x(), {"precision": "float", "chunk": -3})
    assert not (tmp_path / "b1").exists() and not (tmp_path / "b2").exists()


# -- two processes, the real Lava runtime ------------------------------------------------------------------
_WORKER = textwrap.dedent("""
    import sys, numpy as np, torch
    torch.set_num_threads(1)
    sys.path.insert(0, {tests!r})
    from test_hardware_safety import _net, _x
    import spikedyn
    from spikedyn.export.deploy import torch_reference
    seed, workdir, python = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    m, x = _net(seed), _x(T=40, B=2)
    out = spikedyn.deploy(m, precision="fixed", lava_python=python).run(x, progress=False, workdir=workdir)
    want = torch_reference(m, x, "fixed")[0]
    assert want.sum() > 50
    print("same" if np.array_equal(out.spikes, want) else "DIFFERENT", out.bundle)
""")


@pytest.mark.lava
def test_two_processes_deploying_into_one_workdir_on_lava(tmp_path, lava_python):
    script = tmp_path / "worker.py"
    script.write_text(_WORKER.format(tests=str(Path(__file__).parent)))
    workdir = tmp_path / "shared"
    procs = [subprocess.Popen([sys.executable, str(script), str(seed), str(workdir), lava_python],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in (11, 12)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (stdout, stderr) in zip(procs, outs):
        assert p.returncode == 0, stderr[-3000:]
        assert stdout.split()[0] == "same", stdout
    bundles = {stdout.split()[1] for stdout, _ in outs}
    assert len(bundles) == 2 and all(Path(b).parent == workdir for b in bundles)


# -- Loihi 2: the membrane exactly at the threshold does not spike (v > vth << 6, strict) ------------------
def _threshold_net(body: str = "float") -> SpikingRNN:
    """Two non-leaky neurons without input or recurrence, driven by their bias only. In Loihi 2 units
    (scale = 64 * 4096 per unit of v_th = 1) neuron 0 adds 131072 per step and reaches v = 262144 =
    vth << 6 exactly at step 1; neuron 1 adds 131136 and is one bias step above it there."""
    m = SpikingRNN(1, 2, 1, du=1.0, dv=0.0, v_th=1.0, reset="zero", self_connections=False, tau_out=0.0)
    with torch.no_grad():
        m.W_in.zero_()
        m.W_rec.zero_()
        m.b.copy_(torch.tensor([0.5, 0.5 + 2.0**-12]))  # binary fractions: exact in float32 and in Loihi units
    return m.quantized("loihi2") if body == "loihi2" else m


EXPECTED = np.zeros((9, 2), dtype=np.uint8)
EXPECTED[[2, 5, 8], 0] = 1  # v: 131072, 262144 (== threshold: no spike), 393216 (spike, reset to 0), ...
EXPECTED[[1, 3, 5, 7], 1] = 1  # v: 131136, 262272 (> threshold: spike), reset, ...


def test_loihi2_membrane_at_threshold_does_not_spike_in_torch():
    """Issue 17.8: with ``>=`` instead of ``>`` neuron 0 would spike at step 1 (checked by mutating the
    torch body's and the numpy reference's comparison: this test then fails)."""
    q = quantize_loihi2(np.zeros((2, 1)), np.zeros((2, 2)), np.array([0.5, 0.5 + 2.0**-12]), 1.0, 1.0, 0.0)
    assert list(q.effective_bias) == [131072, 131136] and q.vth << 6 == 262144 and (q.du, q.dv) == (4095, 0)
    x = np.zeros((9, 1, 1))
    for body in ("loihi2", "float"):  # the Loihi 2 integer body, and the float map (v == v_th: no spike either)
        z = _threshold_net(body).spike_trains(torch.as_tensor(x, dtype=torch.float32)).numpy()[:, 0]
        np.testing.assert_array_equal(z, EXPECTED, err_msg=f"body={body}")
    spec = spec_from_model(_threshold_net("loihi2"))
    np.testing.assert_array_equal(simulate_fixed(spec, q, x)[:, 0], EXPECTED)


@pytest.mark.lava
def test_loihi2_membrane_at_threshold_does_not_spike_on_lava(lava_python):
    m = _threshold_net()
    x = np.zeros((9, 1, 1))
    for precision in ("fixed", "float"):
        out = spikedyn.deploy(m, precision=precision, lava_python=lava_python).run(x, progress=False)
        np.testing.assert_array_equal(out.spikes[:, 0], EXPECTED, err_msg=precision)


def test_network_spec_refuses_non_finite_numbers():
    """A NaN threshold or weight used to build a network that never spikes; dt_ms = nan was accepted."""
    from spikedyn.hardware.spec import NetworkSpec

    base = dict(W_in=np.ones((2, 1)), W_rec=np.zeros((2, 2)), bias=np.zeros(2), W_out=np.ones((1, 2)),
                b_out=np.zeros(1))
    for change, match in (({"v_th": np.nan}, "v_th"), ({"dt_ms": np.nan}, "dt_ms"), ({"dt_ms": 0.0}, "dt_ms"),
                          ({"W_rec": np.full((2, 2), np.inf)}, "W_rec"), ({"bias": np.array([0.0, np.nan])}, "bias")):
        with pytest.raises(ValueError, match=match):
            NetworkSpec(**{**base, **change})
