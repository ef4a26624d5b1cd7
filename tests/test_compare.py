"""spikedyn.compare / `spikedyn compare`: one table over trained bodies on the same held-out trials."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import spikedyn.tasks as T
import torch

import spikedyn
from spikedyn.analysis.compare import (
    ComparisonTable,
    filtered_rates,
    integrator_type,
    spike_statistics,
)
from spikedyn.cli import main
from spikedyn.learning import evaluate
from spikedyn.learning.train import EVAL_SEED_OFFSET
from spikedyn.models import RateRNN, SpikingRNN


# -- the per-body measurements against hand counts ---------------------------------------------------------
def test_spike_statistics_count_spikes_and_fan_out():
    # 2 substeps of 1 ms, 2 trials, 3 neurons; neuron 0 reaches 2 targets, neuron 1 one, neuron 2 none
    W = np.array([[0.0, 0.5, 0.0], [1.0, 0.0, 0.0], [-2.0, 0.0, 0.0]])
    z = np.zeros((2, 2, 3))
    z[0, 0, 0] = z[1, 0, 0] = 1  # trial 0: neuron 0 twice
    z[1, 1, 1] = z[0, 1, 2] = 1  # trial 1: neuron 1 once, neuron 2 once
    s = spike_statistics(z, W, dt_sub_ms=1.0)
    assert s["spikes_per_trial"] == 2.0
    assert s["synops_per_trial"] == (2 * 2 + 1 * 1 + 1 * 0) / 2
    assert s["firing_rate_hz"] == pytest.approx(4 / (3 * 2 * 0.002))
    with pytest.raises(ValueError, match="W_rec must be"):
        spike_statistics(z, np.zeros((2, 2)), 1.0)


def test_filtered_rates_give_the_models_own_readout():
    torch.manual_seed(0)
    m = SpikingRNN(2, 6, 1, substeps=3, dt=3.0, tau_out=5.0, gain=2.0).double()
    u = torch.randn(7, 4, 2, dtype=torch.float64)
    rbar = filtered_rates(m.spike_trains(u).numpy(), m.params.kappa, m.substeps)
    np.testing.assert_allclose(rbar, m.filtered_spikes(u).numpy(), atol=1e-12)


def test_integrator_type_follows_mcmahan_et_al():
    assert [integrator_type(n) for n in (0, 1, 2, 5)] == ["none", "transient", "stable", "stable"]


def test_table_prints_and_writes_json_and_csv(tmp_path):
    rows = [{"body": "a", "kind": "rate", "accuracy": 0.9, "loss": 0.1, "lyapunov": [-1.0, -2.0],
             "fixed_points": 3, "stable_fixed_points": 2, "integrator": "stable"},
            {"body": "b", "kind": "spiking", "accuracy": 0.8, "loss": 0.2, "lyapunov": [0.5],
             "firing_rate_hz": 12.5, "synops_per_trial": 1e4, "note": "a note"}]
    S = np.array([[1.0, 0.25], [0.25, 1.0]])
    table = ComparisonTable(rows=rows, labels=["a", "b"], similarity={"svcca": S, "cka": S},
                            meta={"n_trials": 4, "seed": 0, "task_name": "rdm"})
    text = str(table)
    assert "2/3" in text and "stable" in text and "12.5" in text and "note: b: a note" in text
    assert table.similarity_to("a") == {"b": 0.25}
    data = json.loads(table.to_json(tmp_path / "t.json").read_text())
    assert data["rows"][1]["synops_per_trial"] == 1e4 and data["similarity"]["cka"] == S.tolist()
    with open(table.to_csv(tmp_path / "t.csv")) as fh:
        got = list(csv.DictReader(fh))
    assert got[0]["lyapunov_2"] == "-2.0" and got[1]["lyapunov_2"] == "" and got[1]["svcca:a"] == "0.25"


# -- end to end ---------------------------------------------------------------------------------------------
def _tiny_runs(tmp_path):
    """A shifted-tanh rate run and an e-prop LIF run on a short RDM (trained a few steps: the table, not
    the accuracy, is under test)."""
    task = T.make("rdm", dt=10.0, duration_ms=150.0)
    torch.manual_seed(0)
    rate = RateRNN(1, 8, 1, alpha=0.2, activation="shifted_tanh", dt=10.0)
    spikedyn.train(rate, task, steps=3, batch_size=8, eval_every=3, eval_trials=16, seed=0, progress=False,
                   run_dir=tmp_path / "rate")
    lif = SpikingRNN(1, 8, 1, dt=10.0, tau_mem=50.0, surrogate="triangle", self_connections=False, reset="zero",
                     gain=2.0)
    spikedyn.train(lif, task, rule="eprop", steps=3, batch_size=8, eval_every=3, eval_trials=16, seed=0,
                   progress=False, run_dir=tmp_path / "lif")
    return task


def test_compare_cli_errors_are_one_line(tmp_path, capsys):
    _tiny_runs(tmp_path)
    other = T.make("rdm", dt=10.0, duration_ms=100.0)
    spikedyn.train(RateRNN(1, 4, 1, dt=10.0), other, steps=1, batch_size=4, eval_every=1, eval_trials=4,
                   progress=False, run_dir=tmp_path / "other")
    for args, needle in [
        ([str(tmp_path / "missing")], "does not exist"),
        ([str(tmp_path / "rate"), "--lava", "fast"], "--lava must be one of"),
        ([str(tmp_path / "rate"), str(tmp_path / "other")], "compare needs one task"),
    ]:
        assert main(["compare", *args, "--out", str(tmp_path / "o")]) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("spikedyn: error:") and needle in err[0], (args, err)


def test_compare_runs_a_rate_net_its_mirror_and_a_lif_on_the_same_trials(tmp_path, one_thread_seeded):
    task = _tiny_runs(tmp_path)
    rate = spikedyn.load_run(tmp_path / "rate").model
    twin = spikedyn.mirror(rate, substeps=4)
    lif = spikedyn.load_run(tmp_path / "lif").model
    table = spikedyn.compare({"rate": rate, "mirror": twin, "lif": lif}, task, n_trials=6, n_inits=16,
                             lyapunov_k=2, lyapunov_trials=2, progress=False)
    assert table.labels == ["rate", "mirror", "lif"]
    r = table.row("rate")
    assert r["kind"] == "rate" and 0 <= r["accuracy"] <= 1 and r["loss"] > 0 and len(r["lyapunov"]) == 2
    assert r["integrator"] in ("transient", "stable", "none") and r.get("synops_per_trial") is None
    for name in ("mirror", "lif"):
        s = table.row(name)
        assert s["kind"] == "spiking" and s["firing_rate_hz"] >= 0 and s["synops_per_trial"] >= 0
    # the spiking statistics are those of the spikes on these trials (recomputed independently here)
    batch = task.sample(6, np.random.default_rng([0, EVAL_SEED_OFFSET]), split="test")
    z = lif.spike_trains(torch.as_tensor(batch.inputs, dtype=lif.dtype)).numpy()
    fan = (lif.W_rec_eff.detach().numpy() != 0).sum(axis=0)
    assert table.row("lif")["synops_per_trial"] == pytest.approx(float((z.sum(axis=(0, 1)) * fan).sum() / 6))
    assert table.row("lif")["accuracy"] == evaluate(lif, task, batch, seed=0)["accuracy"]
    S = table.similarity["svcca"]
    assert S.shape == (3, 3) and np.allclose(np.diag(S), 1) and np.allclose(S, S.T)
    assert (S >= -1e-9).all() and (S <= 1 + 1e-9).all()
    fig = table.plot(tmp_path / "cmp.png")
    assert fig is not None and (tmp_path / "cmp.png").stat().st_size > 1000


def test_a_body_lava_cannot_run_gets_a_note_not_an_error(tmp_path):
    task = T.make("rdm", dt=10.0, duration_ms=100.0)
    torch.manual_seed(0)
    rate = RateRNN(1, 4, 1, alpha=0.2, activation="shifted_tanh", dt=10.0)
    twin = spikedyn.mirror(rate, substeps=2)  # a non-leaky membrane with a current filter: no NIR form
    table = spikedyn.compare({"mirror": twin}, task, n_trials=4, n_inits=4, lyapunov_k=1, lava="float",
                             progress=False)
    assert table.labels == ["mirror"] and "no Lava run: NIR has no current-based" in table.row("mirror")["note"]


@pytest.mark.lava
def test_compare_cli_with_lava_prints_one_table(tmp_path, capsys, lava_python, monkeypatch, one_thread_seeded):
    monkeypatch.setenv("SPIKEDYN_LAVA_PYTHON", lava_python)
    _tiny_runs(tmp_path)
    out = tmp_path / "cmp"
    args = ["compare", str(tmp_path / "rate"), str(tmp_path / "lif"), "--mirror", "--mirror-substeps", "4",
            "--mirror-tau-mem", "10000", "--lava", "float", "--trials", "4", "--n-inits", "8", "--lyapunov-k", "1",
            "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    for body in ("rate", "mirror(rate)", "lif", "lif @ lava-sim float", "mirror(rate) @ lava-sim float"):
        assert body in text
    data = json.loads((out / "comparison.json").read_text())
    lava_rows = [r for r in data["rows"] if r["kind"] == "lava"]
    assert len(lava_rows) == 2
    for r in lava_rows:  # Lava's float models equal torch float64 spike for spike
        assert r["lava_spike_agreement"] == 1.0 and r["lava_trials_identical"] == 1.0
    assert len(data["labels"]) == 5 and np.asarray(data["similarity"]["svcca"]).shape == (5, 5)
    assert (out / "comparison.csv").is_file() and (out / "comparison.png").is_file()
    assert main(args) == 2  # never over an existing comparison
    assert "exists" in capsys.readouterr().err
