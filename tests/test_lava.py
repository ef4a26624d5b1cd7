"""The hardware layer: Loihi 2 quantisation, the numpy references, torch's quantize="loihi2", and the
real Lava 0.10 runtime (float and bit-accurate fixed point) against torch, spike for spike.

Tests marked ``lava`` run Lava in its own interpreter (Python 3.10, ``.venv-lava``, built by ``make lava``);
tests/conftest.py skips them, with the reason, only when no such interpreter exists and CI does not require one.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from spikedyn.hardware.quantize import MANT_MAX, quantize_input, quantize_loihi2
from spikedyn.hardware.reference import readout, simulate_fixed, simulate_float
from spikedyn.hardware.runtime import LavaNotFound

import spikedyn
from spikedyn.export.deploy import spike_agreement, torch_reference
from spikedyn.export.nir import spec_from_model
from spikedyn.models import Loihi2RNN, SpikingRNN, from_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _net(n_hidden=64, n_in=4, **kw) -> SpikingRNN:
    """A strongly recurrent (chaotic) LIF net with Lava's settings unless overridden."""
    kw = {"du": 0.1, "dv": 0.05, "reset": "zero", "delay_in": 1, "gain": 3.0, **kw}
    m = SpikingRNN(n_in, n_hidden, 2, **kw)
    with torch.no_grad():
        m.b.uniform_(0.0, 0.06)
    return m


def _x(T=120, B=3, I=4, seed=1) -> torch.Tensor:
    return torch.randn(T, B, I, generator=torch.Generator().manual_seed(seed))


# -- quantisation and the references (no Lava needed) -------------------------------------------------
def test_quantizer_formats():
    rng = np.random.default_rng(0)
    W_in, W_rec, b = rng.normal(size=(16, 3)), rng.normal(size=(16, 16)) * 0.3, rng.uniform(-0.2, 0.2, 16)
    q = quantize_loihi2(W_in, W_rec, b, v_th=1.5, du=0.25, dv=0.125)
    for w in (q.w_in, q.w_rec):
        assert np.all(w % 2 == 0) and np.abs(w // 2).max() <= MANT_MAX + 1  # 2 * 8-bit mantissa
        assert np.abs(w // 2).max() > MANT_MAX // 2  # the exponent is the smallest that fits
    assert q.vth * 64 == pytest.approx(1.5 * q.scale)  # the real threshold lands on vth << 6 exactly
    assert (q.du, q.dv) == (1023, 512)  # u decays by (4096 - du - 1) / 4096, v by (4096 - dv) / 4096
    assert np.all(np.abs(q.bias_mant) <= 4095) and np.all((0 <= q.bias_exp) & (q.bias_exp <= 7))
    assert np.all(np.abs(q.effective_bias / q.scale - b) <= 2.0**q.bias_exp / (2 * q.scale))
    w_rec_real = q.w_rec * 2.0**q.w_rec_exp * 64 / q.scale
    assert np.abs(w_rec_real - W_rec).max() <= q.report["w_rec_step"] / 2 + 1e-12
    w_in_real = q.w_in * 2.0 ** (q.w_in_exp + q.input_frac_bits) * 64 / q.scale
    assert np.abs(w_in_real - W_in).max() <= q.report["w_in_step"] / 2 + 1e-12
    np.testing.assert_array_equal(quantize_input(np.array([0.5, -1.25, 1e9]), 8), [128, -320, 2**23 - 1])


def test_torch_float_equals_numpy_reference_for_every_neuron_type():
    torch.set_default_dtype(torch.float64)
    try:
        for kw in (dict(), dict(delay_in=0, delay_rec=2, substeps=2),
                   dict(neuron="alif", reset="subtract", refractory=2.0, tau_adapt=200.0, beta_adapt=0.3),
                   dict(v_leak=0.2, v_reset=-0.3, refractory=1.0), dict(reset="subtract", v_leak=-0.1)):
            m, x = _net(n_hidden=24, **kw), _x(T=80)
            spec = spec_from_model(m)
            z = simulate_float(spec, x.numpy())
            assert z.sum() > 100
            np.testing.assert_array_equal(m.spike_trains(x).numpy(), z)
            counts, y = readout(spec, z)
            out = m(x)
            np.testing.assert_array_equal(out.r.detach().numpy(), counts)
            np.testing.assert_allclose(out.y.detach().numpy(), y, rtol=0, atol=1e-12)
    finally:
        torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize("kw", [dict(), dict(delay_in=0, substeps=3), dict(delay_in=2, delay_rec=1, du=1.0)])
def test_torch_quantized_equals_numpy_fixed_point_reference(kw):
    m, x = _net(n_hidden=32, **kw), _x(T=100)
    spec = spec_from_model(m)
    q = quantize_loihi2(spec.W_in, spec.W_rec, spec.bias, spec.v_th, spec.du, spec.dv)
    ref = simulate_fixed(spec, q, x.numpy())
    mq = m.quantized("loihi2")
    z = mq.spike_trains(x).numpy()
    assert ref.sum() > 100
    np.testing.assert_array_equal(z, ref)
    out, loop = mq(x), mq.loop(x)
    torch.testing.assert_close(out.r, loop.r)
    np.testing.assert_array_equal(out.r.numpy(), readout(spec, ref)[0])
    # fixed point is a close, not identical, copy of the float network
    assert 0.5 < spike_agreement(m.spike_trains(x).numpy().astype(np.uint8), z)["spike_agreement"] < 1.0
    np.testing.assert_array_equal(mq.as_float().spike_trains(x).numpy(), m.spike_trains(x).numpy())


def test_loihi2_body_rejects_what_loihi_lif_cannot_do():
    with pytest.raises(ValueError, match="reset='zero'"):
        SpikingRNN(2, 8, 1, reset="subtract").quantized("loihi2")
    with pytest.raises(ValueError, match="neuron='lif'"):
        Loihi2RNN(2, 8, 1, neuron="alif", reset="zero")
    with pytest.raises(ValueError, match="v_leak"):
        Loihi2RNN(2, 8, 1, reset="zero", v_reset=0.5)
    m = Loihi2RNN(2, 8, 1, reset="zero")
    assert m.config()["kind"] == "loihi2" and type(from_config(m.config())) is Loihi2RNN
    assert m.quantize == "loihi2" and SpikingRNN(2, 8, 1).quantize is None


def test_quantize_keyword_still_works_with_one_deprecation_warning(monkeypatch):
    import spikedyn.models.spiking as sp

    monkeypatch.setattr(sp, "_QUANTIZE_WARNED", False)
    with pytest.warns(DeprecationWarning, match="quantized"):
        m = SpikingRNN(2, 8, 1, reset="zero", quantize="loihi2")
    assert isinstance(m, Loihi2RNN) and isinstance(m, SpikingRNN)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once: the second use does not warn again
        SpikingRNN(2, 8, 1, reset="zero", quantize="loihi2")
        f = SpikingRNN(2, 8, 1, reset="zero")
        f.quantize = "loihi2"  # the old attribute switch, too
    assert type(f) is Loihi2RNN
    f.quantize = None
    assert type(f) is SpikingRNN
    with pytest.raises(ValueError, match="quantize"):
        SpikingRNN(2, 8, 1, quantize="int8")
    with pytest.raises(ValueError, match="reset='zero'"):
        SpikingRNN(2, 8, 1, reset="subtract", quantize="loihi2")


def test_hardware_package_never_imports_torch():
    """spikedyn.hardware must import in the torch-free Lava environment: block torch and import it all."""
    code = r"""
import importlib, pkgutil, sys
sys.modules["torch"] = None  # any `import torch` now raises ImportError
import spikedyn.hardware as hw
bad = []
for info in pkgutil.iter_modules(hw.__path__):
    try:
        importlib.import_module(f"spikedyn.hardware.{info.name}")
    except ImportError as e:
        if "torch" in str(e) or getattr(e, "name", "") == "torch":
            bad.append(f"{info.name}: {e}")
        elif not (getattr(e, "name", "") or "").startswith("lava"):
            raise
print("BAD" if bad else "OK", bad)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("OK"), out.stdout


@pytest.mark.parametrize("change, message", [
    (dict(W_rec=np.zeros((3, 4))), r"W_in must be \[N, I\], W_rec \[N, N\]"),
    (dict(bias=np.zeros(2)), r"bias and beta must have shape \[4\]"),
    (dict(W_out=np.zeros((2, 3))), r"W_out must be \[O, 4\], b_out \[O\]"),
    (dict(reset="hard"), "unknown reset 'hard'"),
    (dict(du=1.5), r"du must be in \[0, 1\], got 1.5"),
    (dict(v_th=0.0), "v_th must be > 0"),
    (dict(substeps=0), r"substeps must be a non-negative integer \(substeps >= 1\), got 0"),
    (dict(delay_in=-1), "delay_in must be a non-negative integer"),
    (dict(reset="subtract", v_reset=0.5), "v_reset is the value reset='zero' resets to"),
])  # fmt: skip
def test_network_spec_refuses_what_no_backend_can_run_in_one_line(change, message):
    """``NetworkSpec`` (what every hardware backend compiles) refuses malformed networks in one line."""
    from dataclasses import replace

    from spikedyn.hardware.spec import NetworkSpec

    ok = NetworkSpec(W_in=np.zeros((4, 2)), W_rec=np.zeros((4, 4)), bias=np.zeros(4), W_out=np.zeros((2, 4)),
                     b_out=np.zeros(2), du=0.5, dv=0.1, v_th=1.0)
    assert ok.lava_lif_compatible() and ok.beta.shape == (4,)
    with pytest.raises(ValueError, match=message) as e:
        replace(ok, **change)
    assert "\n" not in str(e.value)


def test_missing_lava_runtime_is_one_clear_line(monkeypatch):
    from spikedyn.hardware import runtime

    monkeypatch.setenv("SPIKEDYN_LAVA_PYTHON", "/nonexistent/python3.10")
    runtime.find_lava_python.cache_clear()
    try:
        with pytest.raises(LavaNotFound, match="SPIKEDYN_LAVA_PYTHON=/nonexistent") as e:
            runtime.find_lava_python()
        assert "\n" not in str(e.value) and "make lava" in str(e.value)
    finally:
        runtime.find_lava_python.cache_clear()


def test_results_files_name_the_lava_interpreter_without_a_local_path(monkeypatch, tmp_path):
    """``lava_runtime`` (what benchmarks write into docs/results): the lava-nc version and where the
    interpreter was found, in words; a results file once recorded ``/work/wt-hd/.venv-lava/bin/python``."""
    from spikedyn.hardware import runtime

    repo_venv = str(runtime.repo_root() / ".venv-lava" / "bin" / "python")
    monkeypatch.delenv("SPIKEDYN_LAVA_PYTHON", raising=False)
    assert runtime.describe_lava_python(repo_venv) == ".venv-lava"
    assert runtime.describe_lava_python(str(tmp_path / "elsewhere" / "python")) == "a Python 3.10 with lava-nc"
    assert runtime.describe_lava_python("/home/u/.pyenv/versions/3.10.14/bin/python") == "pyenv 3.10"
    monkeypatch.setenv("SPIKEDYN_LAVA_PYTHON", str(tmp_path / "lava" / "python"))
    assert runtime.describe_lava_python(str(tmp_path / "lava" / "python")) == "SPIKEDYN_LAVA_PYTHON"
    # torch's Python has no lava-nc; an interpreter that cannot start has no version either
    assert runtime.lava_version(sys.executable) is None
    assert runtime.lava_runtime(str(tmp_path / "missing")) == {"lava_nc": None,
                                                                 "lava_python": "a Python 3.10 with lava-nc"}


@pytest.mark.lava
def test_lava_runtime_reports_the_lava_version(lava_python):
    from spikedyn.hardware.runtime import lava_runtime

    info = lava_runtime(lava_python)
    assert info["lava_nc"] == "0.10.0" and "/" not in info["lava_python"]


def test_deploy_rejects_bad_requests_before_running():
    with pytest.raises(ValueError, match="backend"):
        spikedyn.deploy(_net(n_hidden=8), backend="loihi3")
    with pytest.raises(ValueError, match="precision"):
        spikedyn.deploy(_net(n_hidden=8), precision="int4")
    with pytest.raises(ValueError, match="precision='float'"):
        spikedyn.deploy(_net(n_hidden=8, neuron="alif"), precision="fixed")
    with pytest.raises(ValueError, match="v_reset"):
        spikedyn.deploy(_net(n_hidden=8, v_reset=0.5), precision="fixed")
    with pytest.raises(ValueError, match="mirror"):
        spikedyn.deploy(spikedyn.RateRNN(2, 8, 1))


# -- the real Lava runtime --------------------------------------------------------------------------------
@pytest.mark.lava
@pytest.mark.parametrize("precision", ["float", "fixed"])
def test_lava_equals_torch_spike_for_spike(precision, lava_python):
    """64 strongly recurrent LIF neurons, 600 steps, 3 trials (block-diagonal batch): every spike equal."""
    m = _net(n_hidden=64)
    x = _x(T=600, B=3)
    out = spikedyn.deploy(m, precision=precision, lava_python=lava_python).run(x, progress=False)
    spikes, counts, y = torch_reference(m, x, precision)
    assert spikes.sum() > 5000
    np.testing.assert_array_equal(out.spikes, spikes)
    np.testing.assert_array_equal(out.r, counts)
    np.testing.assert_allclose(out.y, y, rtol=0, atol=1e-5)


@pytest.mark.lava
def test_lava_timing_variants_and_single_trial(lava_python):
    """delay_in = 0 (pre-loaded input synapse), delay_in = 2 and delay_rec = 1 (DelayDense), substeps;
    one trial (Dense) and two (Sparse), float and fixed point."""
    cases = [(dict(delay_in=0, substeps=2), 1, "float"), (dict(delay_in=2, delay_rec=1), 2, "fixed"),
             (dict(delay_in=0, delay_rec=1, du=1.0), 2, "float")]
    for kw, B, precision in cases:
        m, x = _net(n_hidden=24, **kw), _x(T=60, B=B)
        out = spikedyn.deploy(m, precision=precision, lava_python=lava_python).run(x, progress=False)
        np.testing.assert_array_equal(out.spikes, torch_reference(m, x, precision)[0], err_msg=str(kw))


@pytest.mark.lava
def test_lava_runs_alif_subtract_refractory_in_float(lava_python):
    m = _net(n_hidden=24, neuron="alif", reset="subtract", refractory=2.0, tau_adapt=100.0, beta_adapt=0.5,
             n_adaptive=12, du=1.0)
    x = _x(T=80, B=2)
    out = spikedyn.deploy(m, precision="float", lava_python=lava_python).run(x, progress=False)
    spikes = torch_reference(m, x, "float")[0]
    assert spikes.sum() > 100
    np.testing.assert_array_equal(out.spikes, spikes)


@pytest.mark.lava
def test_lava_float_runs_nir_v_leak_and_v_reset(lava_python):
    """NIR's LIF option of the one map (leak toward v_leak, reset to v_reset): torch, the numpy reference
    and Lava's float simulator (SpikedynLIF runs the same map) agree spike for spike."""
    torch.set_default_dtype(torch.float64)
    try:
        m, x = _net(n_hidden=24, v_leak=0.15, v_reset=-0.4), _x(T=80, B=2)
    finally:
        torch.set_default_dtype(torch.float32)
    spikes = torch_reference(m, x, "float")[0]
    np.testing.assert_array_equal(simulate_float(spec_from_model(m), x.double().numpy()), spikes)
    out = spikedyn.deploy(m, precision="float", lava_python=lava_python).run(x, progress=False)
    assert spikes.sum() > 100
    np.testing.assert_array_equal(out.spikes, spikes)


def test_inputs_that_would_overflow_lavas_int32_accumulator_are_refused():
    """Lava's bit-accurate Dense sums ``w @ X`` in int32, where numpy wraps silently (the torch body would
    not): ``check_input_range`` (once defined and never called) now guards both fixed-point compilers."""
    from spikedyn.hardware.quantize import check_input_range, quantize_input

    w = np.full((4, 3), 510)  # the largest 8-bit mantissa, doubled
    X = quantize_input(np.full((5, 2, 3), 100.0))  # 3 * 25600 * 510 = 3.9e7: fits
    check_input_range(X, w)
    with pytest.raises(ValueError, match=r"too large for Loihi's 32-bit input accumulator .*>= 2\*\*31"):
        check_input_range(X, w, exp=6)  # << 6 after the sum: 2.5e9
    with pytest.raises(ValueError, match="scale the inputs down"):
        check_input_range(quantize_input(np.full((5, 2, 3), 6000.0)), w)


@pytest.mark.lava
@pytest.mark.parametrize("kind", ["rnn", "network"])
def test_lava_fixed_point_refuses_inputs_its_accumulator_would_wrap(kind, lava_python):
    from spikedyn.hardware.runtime import LavaRunFailed

    from spikedyn.models import SpikingNetwork

    m = _net(n_hidden=8) if kind == "rnn" else SpikingNetwork.from_rnn(_net(n_hidden=8))
    x = 1e5 * torch.ones(4, 1, 4)
    with pytest.raises(LavaRunFailed, match="ValueError: inputs too large for Loihi's 32-bit input accumulator"):
        spikedyn.deploy(m, precision="fixed", lava_python=lava_python).run(x, progress=False)


@pytest.mark.lava
def test_lava_loihi_backend_says_what_is_missing(lava_python):
    with pytest.raises(RuntimeError, match="lava-loihi"):
        spikedyn.deploy(_net(n_hidden=8), backend="lava-loihi", lava_python=lava_python)


@pytest.mark.lava
def test_runner_reports_a_broken_bundle_in_one_line(tmp_path, lava_python):
    out = subprocess.run([lava_python, "-m", "spikedyn.hardware.run", str(tmp_path)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 1
    assert "not a spikedyn bundle" in out.stderr and out.stderr.strip().count("\n") == 0
    assert json.loads((tmp_path / "result.json").read_text())["ok"] is False


@pytest.mark.lava
def test_cli_deploy_writes_the_comparison_table(tmp_path, lava_python):
    run = tmp_path / "run"
    env = {**os.environ, "SPIKEDYN_LAVA_PYTHON": lava_python}
    spikedyn_cli = [sys.executable, "-m", "spikedyn.cli"]
    train = subprocess.run(
        [*spikedyn_cli, "train", "--task", "rdm", "--task-param", "dt=50", "--model", "lif", "--hidden", "16",
         "--steps", "2", "--eval-every", "2", "--eval-trials", "20", "--model-param", "reset=zero",
         "--model-param", "delay_in=1", "--model-param", "du=0.5", "--model-param", "dv=0.25",
         "--run-dir", str(run), "--no-progress"], capture_output=True, text=True, env=env, timeout=600)
    assert train.returncode == 0, train.stderr[-2000:]
    dep = subprocess.run([*spikedyn_cli, "deploy", "--run-dir", str(run), "--precision", "fixed", "--trials", "20",
                          "--json"], capture_output=True, text=True, env=env, timeout=600)
    assert dep.returncode == 0, dep.stderr[-2000:]
    summary = json.loads(dep.stdout)
    assert summary["spike_agreement"] == 1.0 and summary["trials_identical"] == 1.0
    table = json.loads((run / "deploy.json").read_text())["runs"]["lava-sim fixed"]["rows"]
    assert [r["body"] for r in table] == ["torch float32 (as trained)", "torch Loihi 2 fixed point", "lava-sim fixed"]
    assert table[1]["accuracy"] == table[2]["accuracy"]
    assert "spike agreement" in (run / "deploy.md").read_text()
    bad = subprocess.run([*spikedyn_cli, "deploy", "--run-dir", str(tmp_path / "missing")], capture_output=True,
                         text=True, env=env, timeout=300)
    assert bad.returncode == 2 and bad.stderr.startswith("spikedyn: error:") and bad.stderr.count("\n") == 1
