"""benchmarks/bench_sim.py: several thread counts timed in one interleaved run, and its tables."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_sim  # noqa: E402


def test_thread_list_times_every_case_at_every_count_and_picks_each_cases_fastest(tmp_path):
    out = tmp_path / "b.jsonl"
    bench_sim.main(["--small", "--rounds", "2", "--threads", "1,2", "--cases", "spikedyn_lif,torch_rnn_tanh",
                    "--out", str(out), "--memory-shape", "0,0,0"])
    rows = [json.loads(line) for line in out.read_text().splitlines()][1:]
    timed = [r for r in rows if "best_threads" not in r]
    assert {(r["case"], r["threads"]) for r in timed} == {(c, n) for c in ("spikedyn_lif", "torch_rnn_tanh")
                                                           for n in (1, 2)}
    for n in (1, 2):  # ratios are taken within one thread count
        at = {r["case"]: r for r in timed if r["threads"] == n}
        assert at["torch_rnn_tanh"]["ratio_to_spikedyn_lif"] == pytest.approx(
            at["torch_rnn_tanh"]["median_s"] / at["spikedyn_lif"]["median_s"], rel=1e-2)
    best = {r["case"]: r for r in rows if "best_threads" in r}
    for case, r in best.items():
        mine = {t["threads"]: t["median_s"] for t in timed if t["case"] == case}
        assert r["median_s"] == min(mine.values()) and mine[r["best_threads"]] == r["median_s"]
    assert best["torch_rnn_tanh"]["ratio_to_spikedyn_lif_best"] == pytest.approx(
        best["torch_rnn_tanh"]["median_s"] / best["spikedyn_lif"]["median_s"], rel=1e-2)
    text = bench_sim.table(str(out))
    assert "2 thread(s)" in text and "fastest at threads" in text


def test_bad_thread_list_exits_with_a_message():
    with pytest.raises(SystemExit, match="--threads"):
        bench_sim.main(["--small", "--threads", "1,x"])
