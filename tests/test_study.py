"""`spikedyn study`: McMahan et al. 2024's population studies at a tiny scale, resumable."""
from __future__ import annotations

import pytest

from spikedyn.cli import main
from spikedyn.experiments import study as X


def test_study_errors_are_one_line(tmp_path, capsys):
    for args, needle in [
        (["rules", "--task", "romo"], "--task must be one of"),
        (["rules", "--rules", "bptt,sgd"], "unknown rule 'sgd'"),
        (["rules", "--nets", "1"], "--nets must be >= 2"),
        (["rules", "--task", "ncdi"], "--contexts N"),
        (["rules", "--bodies", "lif", "--rules", "hebbian"], "cannot train lif networks with hebbian"),
        (["rules", "--steps", "bptt=0"], "positive integer"),
        (["contexts", "--contexts", "2,x"], "--contexts must be comma-separated integers"),
        (["noise", "--levels", "0.1,-1"], "--levels values must be >= 0"),
    ]:
        assert main(["study", *args, "--out", str(tmp_path / "s")]) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("spikedyn: error:") and needle in err[0], (args, err)


def test_groups_pair_rules_and_bodies():
    cfg = X.StudyConfig(rules=("bptt", "eprop"), bodies=("rate", "lif")).check()
    assert [g.name for g in X.rule_groups(cfg)] == ["bptt-rate", "eprop-rate", "bptt-lif", "eprop-lif"]
    assert [g.label for g in X.noise_groups((0.1, 1.0))] == ["noise 0.1", "noise 1"]
    twins = [g for g in X.body_groups() if g.source]
    assert {g.derive for g in twins} == {"mirror", "ff_twin"} and all(g.source == "bptt-rate" for g in twins)
    with pytest.raises(ValueError, match="cannot train lif networks with full_force"):
        X.rule_groups(X.StudyConfig(rules=("full_force",), bodies=("lif",)))


def test_twin_distances_compare_own_and_other_parents():
    nets = [X.Net(id=f"{g}/{i}", group=g, label=g, index=i, model=None, accuracy=1.0, steps=1, run_dir=None,
                  reached=True) for g in ("bptt-rate", "mirror") for i in range(3)]
    import numpy as np

    D = np.full((6, 6), 2.0)
    np.fill_diagonal(D, 0.0)
    for i in range(3):
        D[i, 3 + i] = D[3 + i, i] = 0.5  # each twin is closest to its own parent
    D[0, 5] = D[5, 0] = D[1, 5] = D[5, 1] = 0.1  # ... except twin 2, closer to parents 0 and 1
    d = X.twin_distances(D, nets, "mirror", "bptt-rate")
    assert d["pairs"] == 3 and d["own_parent"] == pytest.approx(0.5)
    assert d["other_parents"] == pytest.approx((2.0 + 2.0 + 0.1) / 3)
    assert d["closer_to_own"] == pytest.approx(2 / 3)
