"""The fair long-memory protocol (Park et al. Table S1): search on validation only, resumable, reproducible."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from spikedyn.experiments import long_memory as X

TINY = dict(hidden=6, seeds=2, steps=4, batch_size=8, search_trials=3, eval_every=2, eval_trials=16,
            test_trials=24)  # fmt: skip


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_psdigits_split_is_disjoint_and_training_never_sees_validation_or_test():
    task = X.build_protocol_task(X.BenchmarkConfig(task="psdigits"))
    assert isinstance(task, X.HeldOutSplit)
    fit, val = set(task.fit_index.tolist()), set(task.val_index.tolist())
    assert not fit & val and len(fit) + len(val) == task.base.n_examples("train")
    assert abs(len(val) / task.base.n_examples("train") - 0.2) < 0.01
    train_batch = task.sample(500, np.random.default_rng(0))
    held_out = task.sample(100, np.random.default_rng(1), split="test")
    assert set(train_batch.meta["index"].tolist()) <= fit  # indices into the base task's training images
    assert set(held_out.meta["index"].tolist()) <= val
    test = task.test_batch()
    assert test.inputs.shape[1] == task.base.n_examples("test")
    # the same images as the base task's: split by index, pixels untouched
    ref = task.base.dataset("train")
    i = int(train_batch.meta["index"][0])
    np.testing.assert_array_equal(train_batch.inputs[:, 0], ref.inputs[:, i])


def test_search_reads_only_validation_scores(tmp_path, monkeypatch):
    """No test trial is drawn or scored while searching: the search's runs log no test scores, and the
    search's score of a trial is its lowest validation loss."""
    cfg = X.BenchmarkConfig(task="psdigits", models=("tanh-pta",), **TINY)
    task = X.build_protocol_task(cfg)

    def forbidden(*_, **__):
        raise AssertionError("the search touched the test split")

    monkeypatch.setattr(X.HeldOutSplit, "test_batch", forbidden)
    monkeypatch.setattr(task.base, "dataset", forbidden)
    best = X.search(task, "tanh-pta", cfg, tmp_path, progress=False, log=lambda s: None)
    assert len(best["trials"]) == 3 and set(best["params"]) == {"lr", "clip", "alpha_max"}
    for i, trial in enumerate(best["trials"]):
        rows = [json.loads(x) for x in (tmp_path / "search" / "tanh-pta" / f"trial{i}" / "metrics.jsonl")
                .read_text().splitlines()]  # fmt: skip
        assert not any("test_ce" in r for r in rows)
        assert trial["score"] == min(r["eval_loss"] for r in rows if "eval_loss" in r)
        lo, hi = X.PTA_ALPHA_RANGE["tanh-pta"]
        assert lo <= trial["params"]["alpha_max"] <= hi
        assert X.LR_RANGE[0] <= trial["params"]["lr"] <= X.LR_RANGE[1]
    assert best["score"] == min(t["score"] for t in best["trials"])


def test_same_seed_same_result_and_an_interrupted_benchmark_resumes(tmp_path):
    cfg = X.BenchmarkConfig(task="temporal_order", models=("tanh", "gru"), **TINY)
    first = X.run(cfg, tmp_path / "a", progress=False, log=lambda s: None)
    again = X.run(cfg, tmp_path / "b", progress=False, log=lambda s: None)
    assert json.dumps(first, sort_keys=True) == json.dumps(again, sort_keys=True)
    assert set(first["models"]) == {"tanh", "gru"} and first["models"]["gru"]["seeds"] == 2
    # the chosen settings are the search's best, and every reported run trained with them
    root = tmp_path / "a" / "temporal_order"
    best = json.loads((root / "search" / "gru" / "best.json").read_text())
    run_cfg = json.loads((root / "final" / "gru" / "seed1" / "config.json").read_text())
    assert run_cfg["train"]["lr"] == best["params"]["lr"] and run_cfg["train"]["clip"] == best["params"]["clip"]
    _, table = X.write_table([first], tmp_path / "a")
    assert "Budget: N = 6, 2 seeds x 4 steps of 8 trials" in table and "search 3 trials x 4 steps" in table
    assert json.loads((tmp_path / "a" / "results.json").read_text())["tasks"][0]["task"] == "temporal_order"
    # interrupt: lose the last search trial of gru and its reported runs; the rerun retrains only those
    import shutil

    kept = (root / "search" / "gru" / "trial0" / "model.pt").stat().st_mtime_ns
    shutil.rmtree(root / "search" / "gru" / "trial2")
    shutil.rmtree(root / "final" / "gru")
    (root / "search" / "gru" / "best.json").unlink()
    resumed = X.run(cfg, tmp_path / "a", progress=False, log=lambda s: None)
    assert json.dumps(resumed, sort_keys=True) == json.dumps(first, sort_keys=True)
    assert (root / "search" / "gru" / "trial0" / "model.pt").stat().st_mtime_ns == kept
    # other settings in the same directory are refused (one line), not mixed in
    from spikedyn.learning.checkpoint import RunError

    with pytest.raises(RunError, match="other settings"):
        X.run(X.BenchmarkConfig(task="temporal_order", models=("tanh",), **{**TINY, "steps": 5}), tmp_path / "a",
              progress=False, log=lambda s: None)  # fmt: skip


def test_every_body_and_seed_is_scored_on_one_test_set():
    cfg = X.BenchmarkConfig(task="copy_memory", delay=5, test_trials=20)
    task = X.build_protocol_task(cfg)
    a, b = X.test_batch(task, cfg), X.test_batch(task, cfg)
    np.testing.assert_array_equal(a.inputs, b.inputs)
    # disjoint from the training stream of any seed and from train()'s validation stream
    from spikedyn.learning.train import EVAL_SEED_OFFSET

    for stream in ([0, 1], [0, EVAL_SEED_OFFSET], [1000, EVAL_SEED_OFFSET]):
        other = task.sample(20, np.random.default_rng(stream), split="test")
        assert not np.array_equal(other.meta["tokens"], a.meta["tokens"])


def test_pta_alpha_cap_reaches_the_model():
    low = X.build_benchmark_model("tanh-pta", 10, 9, 32, seed=0, alpha_max=1.2)
    high = X.build_benchmark_model("gru-pta", 10, 9, 32, seed=0, alpha_max=7.5)
    blocks = low.W_rec.detach().reshape(16, 2, 16, 2)[range(16), :, range(16), :]  # the 2x2 diagonal blocks
    gains = torch.linalg.matrix_norm(blocks, ord=2)
    assert float(gains.max()) <= 1.2 + 1e-6 and float(gains.min()) > 1.0
    W_hn = high.W_rec.detach()[64:]
    assert float(torch.linalg.matrix_norm(W_hn, ord=2)) > 3.5  # caps above the old default 3.5 are used
