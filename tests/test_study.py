"""`spikedyn study`: McMahan et al. 2024's population studies at a tiny scale, resumable."""
from __future__ import annotations

from pathlib import Path

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
        (["rules", "--tau-ms", "0"], "--tau-ms must be > 0"),
        (["noise", "--tau-ms", "0"], "--tau-ms must be > 0"),
        (["noise", "--tau-ms", "-10", "--dt-ms", "1"], "--tau-ms must be > 0"),
        (["contexts", "--contexts", "2,x"], "--contexts must be comma-separated integers"),
        (["noise", "--levels", "0.1,-1"], "--levels values must be >= 0"),
        # --steps naming a rule the command does not train (a typo, another command's rule) was ignored
        (["rules", "--steps", "foo=3"], "--steps foo=3: this study trains no rule 'foo'"),
        (["rules", "--rules", "bptt", "--steps", "bpt=10"], "trains no rule 'bpt' (its rules: bptt)"),
        (["noise", "--steps", "hebbian=5"], "trains no rule 'hebbian' (its rules: bptt)"),
        (["bodies", "--steps", "ga=5"], "trains no rule 'ga' (its rules: bptt, eprop, full_force)"),
        (["contexts", "--steps", "hebbian=5"], "trains no rule 'hebbian' (its rules: bptt, ga)"),
        # duplicates were trained or read back twice and counted twice
        (["rules", "--rules", "bptt,ga,bptt"], "--rules names 'bptt' twice"),
        (["rules", "--rules", "bptt,eprop", "--bodies", "rate,lif,rate"], "--bodies names 'rate' twice"),
        (["noise", "--levels", "0.1,1,0.10"], "--levels names 0.1 twice"),
        (["contexts", "--contexts", "2,3,2"], "--contexts names 2 twice"),
        # what the task refuses is refused before anything is written under --out
        (["rules", "--task", "ncdi", "--contexts", "9"], "--task ncdi --contexts 9: n_contexts must be in 2..6"),
        (["contexts", "--contexts", "7"], "n_contexts must be in 2..6"),
        (["contexts", "--contexts", "2,7"], "n_contexts must be in 2..6"),
        (["noise", "--task", "ncdi", "--contexts", "1"], "n_contexts must be in 2..6"),
        (["rules", "--seed", "-1"], "--seed must be >= 0"),
    ]:
        assert main(["study", *args, "--out", str(tmp_path / "s")]) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("spikedyn: error:") and needle in err[0], (args, err)
        # a refused command leaves nothing that would refuse the corrected one (a config.json: "other settings")
        assert not (tmp_path / "s").exists(), (args, sorted((tmp_path / "s").rglob("*")))


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


def test_tiny_rules_study_writes_matrices_figures_and_resumes(tmp_path, capsys, caplog, one_thread_seeded):
    import json

    import numpy as np

    out = tmp_path / "study"
    args = ["study", "rules", "--task", "rdm", "--rules", "bptt,full_force", "--nets", "2", "--eval-trials", "20",
            "--analysis-trials", "4", "--n-inits", "8", "--signature-probes", "5", "--steps", "bptt=3", "--steps",
            "full_force=2", "--include-failed", "--no-progress", "--out", str(out)]
    assert main([*args, "--json"]) == 0
    summary = json.loads((out / "study.json").read_text())
    assert [n["id"] for n in summary["nets"]] == ["bptt-rate/0", "bptt-rate/1", "full_force-rate/0",
                                                  "full_force-rate/1"]
    D = np.load(out / "distances.npz")
    for key in X.DISTANCES:
        M = D[f"{key}_distance"]
        assert M.shape == (4, 4) and np.allclose(M, M.T) and np.allclose(np.diag(M), 0) and (M >= -1e-9).all()
        sc = summary["scores"][key]
        assert -1 <= sc["silhouette"] <= 1 and -1 <= sc["silhouette_rows"] <= 1 and len(sc["mds"]) == 4
    # the topology distance is the Euclidean distance between the networks' neighbour signatures
    cached = [dict(np.load(out / "analysis" / f"{i.replace('/', '-')}.npz")) for i in summary["ids"]]
    sig = np.stack([X.signature(a) for a in cached])
    assert sig.shape == (4, 30) and set(np.round(sig[:, 0], 6)) == {0.0}  # each first point is at u = 0
    np.testing.assert_allclose(D["topology_distance"], np.linalg.norm(sig[:, None] - sig[None], axis=-1))
    assert set(summary["attractors"]) == {"bptt", "full_force"}
    assert (out / "figures" / "rules_rdm.png").stat().st_size > 1000
    cached = sorted(p.name for p in (out / "analysis").iterdir())
    assert cached == ["bptt-rate-0.npz", "bptt-rate-1.npz", "full_force-rate-0.npz", "full_force-rate-1.npz"]
    # resumed: finished networks and analyses are read back, the results are the same, and train's notice
    # for a finished run ("--restart trains it again": study has no --restart) is not shown
    stamp = {p: p.stat().st_mtime_ns for p in (out / "nets").rglob("model.pt")}
    caplog.clear()
    assert main([*args, "--json"]) == 0
    assert not [r for r in caplog.records if "finished run" in r.getMessage()], caplog.text
    assert {p: p.stat().st_mtime_ns for p in (out / "nets").rglob("model.pt")} == stamp
    assert json.loads((out / "study.json").read_text())["scores"] == summary["scores"]
    # other settings in the same directory are refused
    assert main([*[a if a != "2" else "3" for a in args]]) == 2
    capsys.readouterr()
    # ... other step budgets too, up front with a study-level line, and config.json keeps the budgets trained with
    recorded = (out / "config.json").read_text()
    assert main([*[a if a != "bptt=3" else "bptt=4" for a in args]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other step budgets (--steps bptt=3 --steps full_force=2, now --steps bptt=4" in err[0]
    assert "use another --out" in err[0] and "--restart" not in err[0] and "--run-dir" not in err[0], err
    assert (out / "config.json").read_text() == recorded


def test_an_early_stopped_run_is_read_back_finished(tmp_path):
    """A study resumes over early-stopped networks: their summary names the last step run, whose checkpoint
    exists (it used to say one step more, and reading the run back was refused)."""
    import json

    import spikedyn.tasks as T
    import torch

    from spikedyn.learning import train
    from spikedyn.models import RateRNN

    task = T.make("rdm", dt=10.0, duration_ms=100.0)
    torch.manual_seed(0)
    kw = dict(steps=10, batch_size=4, eval_every=2, eval_trials=8, target_accuracy=0.0, progress=False,
              run_dir=tmp_path / "r")
    first = train(RateRNN(1, 4, 1, dt=10.0), task, **kw)
    assert first.stopped_early and json.loads((tmp_path / "r" / "summary.json").read_text())["steps"] == 2
    again = train(RateRNN(1, 4, 1, dt=10.0), task, **kw)
    for p, q in zip(first.model.parameters(), again.model.parameters()):
        assert torch.equal(p, q)


def test_tiny_noise_and_bodies_studies_run_end_to_end(tmp_path, one_thread_seeded):
    """``study noise`` labels networks by their input-noise level; ``study bodies`` derives the mirror and
    full-FORCE twins of its rate parents and measures each twin against its own parent."""
    import json

    common = ["--nets", "2", "--eval-trials", "20", "--analysis-trials", "4", "--n-inits", "8", "--signature-probes",
              "3", "--no-progress"]
    noise = tmp_path / "noise"
    assert main(["study", "noise", "--levels", "0.1,1.0", *common, "--steps", "bptt=3", "--include-failed", "--out",
                 str(noise), "--json"]) == 0
    summary = json.loads((noise / "study.json").read_text())
    assert [n["label"] for n in summary["nets"]] == ["noise 0.1", "noise 0.1", "noise 1", "noise 1"]
    assert all(n["steps"] <= 3 for n in summary["nets"])  # study noise takes --steps too
    assert (noise / "figures" / "noise_rdm.png").stat().st_size > 1000
    bodies = tmp_path / "bodies"
    assert main(["study", "bodies", *common, "--steps", "bptt=3", "--steps", "eprop=2", "--steps", "full_force=2",
                 "--include-failed", "--out", str(bodies), "--json"]) == 0
    summary = json.loads((bodies / "study.json").read_text())
    assert [n["id"].split("/")[0] for n in summary["nets"]][::2] == ["bptt-rate", "mirror", "ff-twin", "bptt-lif",
                                                                     "eprop-lif"]
    # --steps full_force=N is the full-FORCE twins' budget (it was ignored: they trained FF_TWIN_SETTINGS' 40)
    assert [n["steps"] for n in summary["nets"] if n["id"].startswith("ff-twin")] == [2, 2]
    for twin in ("mirror", "ff-twin"):  # each twin is paired with its own parent, on both distances
        for key in ("svcca", "topology"):
            d = summary["twins"][twin][key]
            assert d["pairs"] == 2 and d["own_parent"] >= 0 and d["other_parents"] >= 0
    assert set(summary["attractors"]) == {"rate parent (BPTT)", "mirror twin", "full-FORCE twin", "BPTT LIF",
                                          "e-prop LIF"}
    # one sampling design: networks trained one by one (e-prop) see the study's batches, as a Population's do
    seeds = {json.loads((bodies / "nets" / g / sub / "config.json").read_text())["train"]["seed"]
             for g, sub in (("eprop-lif", "net-00"), ("eprop-lif", "net-01"), ("bptt-lif", "."))}
    assert seeds == {0}


def test_condition_inputs_are_mcmahan_et_al_noiseless_coherences():
    import numpy as np

    rdm = X.make_task(X.StudyConfig(task="rdm"))
    u = X.condition_inputs(rdm)
    assert u.shape == (rdm.n_steps, 10, 1)
    np.testing.assert_allclose(u[0, :, 0], np.linspace(-0.1857, 0.1857, 10))
    assert (u == u[:1]).all()  # constant over the trial, no noise
    cdi = X.make_task(X.StudyConfig(task="ncdi", n_contexts=3))
    u = X.condition_inputs(cdi, levels=4)
    assert u.shape == (cdi.n_steps, 12, 6)
    for k in range(3):  # context k on, its stream carries the coherence, the others are silent
        rows = u[0, 4 * k: 4 * (k + 1)]
        np.testing.assert_array_equal(rows[:, :3], np.eye(3)[[k] * 4])
        np.testing.assert_allclose(rows[:, 3 + k], np.linspace(-0.1857, 0.1857, 4))
        assert not np.delete(rows[:, 3:], k, axis=1).any()
    # the condition activity starts from x0 = 0 whatever the network's random initial state
    import torch

    net = X.build_net(rdm, "rate", "bptt", seed=0)
    assert net.x0_std > 0
    torch.manual_seed(1)
    a = X.condition_activity(net, rdm)
    torch.manual_seed(2)
    np.testing.assert_array_equal(X.condition_activity(net, rdm), a)
    assert a.shape == (rdm.n_steps * 10, 50) and net.x0_std > 0  # the network itself is unchanged


def test_population_batching_is_what_the_rule_declares():
    """BPTT, Hebbian and full-FORCE declare ``trains_members``; e-prop does not and the GA treats a
    population as one search: decided from the declarations, nothing is tried."""
    assert [X.population_capable(r, "rate") for r in ("bptt", "hebbian", "full_force", "eprop", "ga")] == [
        True, True, True, False, False]
    assert X.population_capable("bptt", "lif") and not X.population_capable("eprop", "lif")
    rdm = X.make_task(X.StudyConfig())
    assert X.build_net(rdm, "rate", "bptt", 0).alpha == pytest.approx(0.1)  # the preset: tau = 100 ms
    assert X.build_net(rdm, "rate", "bptt", 0, tau_ms=10.0).alpha == 1.0  # tau = step: no leak
    s = X.rule_settings("ga", "rate", "ncdi")["rule_kwargs"]
    assert s["population"] == s["children"] == X.GA_POPULATION_CONTEXTS == 20
    assert X.rule_settings("ga", "rate", "rdm")["rule_kwargs"]["population"] == 50


def test_a_study_made_by_an_older_spikedyn_is_refused(tmp_path, capsys):
    import json

    old = tmp_path / "old"
    old.mkdir()
    cfg = X.StudyConfig(rules=("bptt", "ga"), nets=2)
    record = {"kind": "rules_rdm", "config": cfg.model_dump(mode="json"),
              "groups": [g.__dict__ for g in X.rule_groups(cfg)]}  # fmt: skip
    (old / "config.json").write_text(json.dumps(record))  # no study_version: made before it was recorded
    with pytest.raises(ValueError, match="made by an older spikedyn.*use a new --out"):
        X._check_out(old, {**record, "study_version": X.STUDY_VERSION})
    (old / "config.json").write_text(json.dumps({**record, "study_version": X.STUDY_VERSION - 1}))
    with pytest.raises(ValueError, match="older spikedyn"):
        X._check_out(old, {**record, "study_version": X.STUDY_VERSION})
    # the CLI: exit 2, one line; --tau-ms at the 10 ms step warns (one line) that alpha = 1
    assert main(["study", "rules", "--rules", "bptt,ga", "--nets", "2", "--tau-ms", "10", "--no-progress",
                 "--out", str(old)]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "alpha = 1 (no leak)" in err[0] and err[0].startswith("spikedyn: warning:"), err
    assert err[1].startswith("spikedyn: error:") and "older spikedyn" in err[1] and "new --out" in err[1], err
    # a new directory records this version
    new = tmp_path / "new"
    X._check_out(new, {**record, "study_version": X.STUDY_VERSION})
    assert json.loads((new / "config.json").read_text())["study_version"] == X.STUDY_VERSION


def test_tau_at_the_step_warns_that_alpha_is_one():
    with pytest.warns(UserWarning, match=r"alpha = 1 \(no leak\), not McMahan et al.'s code"):
        X.StudyConfig(tau_ms=10.0).check()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        X.StudyConfig(tau_ms=20.0).check()
        X.StudyConfig().check()


def test_dt_ms_reaches_the_task_and_alpha_and_is_recorded(tmp_path, capsys, one_thread_seeded):
    """``--dt-ms``: the task's step and the rate nets' alpha = dt / tau (McMahan et al.'s code: tau = 10 ms at
    1 ms steps, alpha 0.1; the task's trial t = 0..750 ms has 751 steps, their code's 750); the input noise
    keeps its variance per 1 ms; study.json records it; a step that is not positive or does not divide the
    750 ms trial exits 2 with one line."""
    import json
    import warnings

    import numpy as np

    with warnings.catch_warnings():  # alpha = 0.1: no alpha = 1 warning at their step
        warnings.simplefilter("error")
        theirs = X.StudyConfig(tau_ms=10.0, dt_ms=1.0).check()
    with pytest.warns(UserWarning, match=r"at the study's 1 ms step gives alpha = 1"):
        X.StudyConfig(tau_ms=1.0, dt_ms=1.0).check()
    task = X.make_task(theirs)
    assert task.dt == 1.0 and task.n_steps == 751 and task.noise_std == pytest.approx(1.0)
    assert X.step_ms(theirs) == 1.0 and X.step_ms(X.StudyConfig()) == 10.0
    net = X.build_net(task, "rate", "bptt", 0, tau_ms=theirs.tau_ms)
    assert net.dt == 1.0 and net.alpha == pytest.approx(0.1)
    lif = X.build_net(task, "lif", "bptt", 0)
    assert lif.dt == 1.0
    preset = X.make_task(X.StudyConfig())
    assert preset.n_steps == 76 and preset.noise_std == pytest.approx(np.sqrt(0.1))
    assert X.condition_inputs(task).shape == (751, 10, 1)
    for bad, needle in [("0", "--dt-ms must be > 0"), ("-1", "--dt-ms must be > 0"),
                        ("7", "--dt-ms 7: dt=7.0 ms does not divide duration_ms=750.0 ms")]:  # fmt: skip
        for cmd in ("rules", "contexts", "noise", "bodies"):
            assert main(["study", cmd, "--dt-ms", bad, "--out", str(tmp_path / "bad")]) == 2, (cmd, bad)
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and err[0].startswith("spikedyn: error:") and needle in err[0], (cmd, bad, err)
    out = tmp_path / "s"
    assert main(["study", "rules", "--rules", "bptt,full_force", "--nets", "2", "--tau-ms", "10", "--dt-ms", "5",
                 "--eval-trials", "8", "--analysis-trials", "2", "--n-inits", "4", "--signature-probes", "1",
                 "--steps", "bptt=1", "--steps", "full_force=1", "--include-failed", "--no-progress",
                 "--out", str(out), "--json"]) == 0  # fmt: skip
    summary = json.loads((out / "study.json").read_text())
    assert summary["config"]["dt_ms"] == 5.0 and summary["config"]["tau_ms"] == 10.0
    cached = np.load(out / "analysis" / "bptt-rate-0.npz")
    assert cached["activity"].shape == (151 * 10, 50)  # 750 ms at 5 ms steps: 151 per condition input
    # the trained networks and their task are the dt = 5 ms ones (alpha = 0.5)
    cfg = json.loads((out / "nets" / "bptt-rate" / "config.json").read_text())
    assert cfg["task"]["dt"] == 5.0 and [(m["dt"], m["alpha"]) for m in cfg["model"]["members"]] == [(5.0, 0.5)] * 2


def test_noise_study_takes_tau_ms_records_it_and_refuses_a_changed_value(tmp_path, capsys, one_thread_seeded):
    """``study noise --tau-ms``: the same option and ``StudyConfig`` field as ``study rules`` (alpha = dt / tau at
    every noise level, McMahan et al.'s code: --tau-ms 10 --dt-ms 1); recorded in study.json / config.json, and a
    resume with another (or no) --tau-ms is refused with one line naming it."""
    import json

    out = tmp_path / "noise"
    tiny = ["--levels", "0.1,1.0", "--nets", "2", "--eval-trials", "8", "--analysis-trials", "2", "--n-inits", "4",
            "--signature-probes", "1", "--steps", "bptt=1", "--include-failed", "--no-progress", "--out", str(out)]
    assert main(["study", "noise", "--tau-ms", "20", "--dt-ms", "5", *tiny, "--json"]) == 0
    capsys.readouterr()
    summary = json.loads((out / "study.json").read_text())
    assert summary["config"]["tau_ms"] == 20.0 and summary["config"]["dt_ms"] == 5.0
    for level in ("0.1", "1"):
        cfg = json.loads((out / "nets" / f"bptt-rate-noise{level}" / "config.json").read_text())
        assert [(m["dt"], m["alpha"]) for m in cfg["model"]["members"]] == [(5.0, 0.25)] * 2, level
    for other in (["--tau-ms", "10"], []):
        assert main(["study", "noise", *other, "--dt-ms", "5", *tiny]) == 2, other
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("spikedyn: error:") and "other settings (tau_ms)" in err[0], err
    assert main(["study", "noise", "--tau-ms", "20", "--dt-ms", "5", *tiny]) == 0  # the same: resumes


def test_study_json_paths_are_relative_to_the_study_so_a_moved_copy_still_names_its_files(tmp_path, one_thread_seeded):
    """``study.json`` records run directories, figures and a contexts study's sub-studies relative to the
    study's directory (they were absolute ``/tmp/...`` paths, wrong in any copy); ``study_path`` reads both."""
    import json
    import shutil

    out = tmp_path / "made-here"
    assert main(["study", "contexts", "--contexts", "2", "--nets", "2", "--eval-trials", "20", "--analysis-trials",
                 "4", "--n-inits", "8", "--signature-probes", "3", "--steps", "bptt=2", "--steps", "ga=1",
                 "--include-failed", "--no-progress", "--out", str(out), "--json"]) == 0
    moved = tmp_path / "copied" / "elsewhere"
    shutil.copytree(out, moved)
    shutil.rmtree(out)
    top = json.loads((moved / "study.json").read_text())
    assert top["studies"] == {"2": "ncdi-2/study.json"} and top["figure"] == "figures/contexts.png"
    assert X.study_path(moved, top["figure"]).is_file()
    sub_dir = X.study_path(moved, top["studies"]["2"]).parent
    sub = json.loads((sub_dir / "study.json").read_text())
    assert [n["run_dir"] for n in sub["nets"]] == ["nets/bptt-rate", "nets/bptt-rate", "nets/ga-rate/net-00",
                                                   "nets/ga-rate/net-01"]
    for n in sub["nets"]:
        assert (X.study_path(sub_dir, n["run_dir"]) / "model.pt").is_file()
    assert X.study_path(sub_dir, sub["figure"]).is_file()
    # what older spikedyn versions recorded (absolute paths) reads back unchanged; None stays None
    assert X.study_path(moved, "/tmp/study-runs/x/nets/bptt-rate") == Path("/tmp/study-runs/x/nets/bptt-rate")
    assert X.study_path(moved, None) is None
    assert X.relative_to_study(tmp_path / "outside", moved) == str(tmp_path / "outside")
    assert X.relative_to_study(None, moved) is None


def _tree(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in sorted(root.rglob("*"))}


def test_posthoc_pulse_reads_every_study_kind_back_without_writing(tmp_path, one_thread_seeded):
    """``examples/study_posthoc.py --pulse`` on a rules and a noise study: the groups come from what the study
    recorded (``study noise`` ids are not rule groups), the networks are read back (``load_study_nets``, the
    same weights the study analysed), and nothing under the study directory is written or resumed."""
    import importlib.util
    import json

    import torch

    spec = importlib.util.spec_from_file_location("study_posthoc", Path(__file__).parents[1] / "examples" /
                                                  "study_posthoc.py")  # fmt: skip
    posthoc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(posthoc)
    tiny = dict(nets=2, eval_trials=20, analysis_trials=4, n_inits=8, signature_probes=3, include_failed=True)
    rules, noise = tmp_path / "rules", tmp_path / "noise"
    X.run_rules(X.StudyConfig(rules=("bptt", "full_force"), steps={"bptt": 3, "full_force": 2}, **tiny), rules,
                progress=False)  # fmt: skip
    X.run_noise(X.StudyConfig(rules=("bptt",), steps={"bptt": 3}, **tiny), noise, levels=(0.1, 1.0), progress=False)
    res = {}
    for study in (rules, noise):
        before = _tree(study)
        res[study] = posthoc.posthoc(study, pulse=True)
        assert _tree(study) == before, study  # nothing written, nothing resumed
        ids = [r["id"] for rows in res[study]["pulse"].values() for r in rows["nets"]]
        assert sorted(ids) == sorted(json.loads((study / "study.json").read_text())["ids"])
    # the results name each study by its directory (not the path as given), a contexts sub-study inside its study
    assert res[rules]["study"] == "rules" and res[noise]["study"] == "noise"
    assert posthoc.study_name(tmp_path / "c" / "ncdi-2", tmp_path / "c") == "c/ncdi-2"
    assert set(res[noise]["pulse"]) == {"noise 0.1", "noise 1"} and set(res[rules]["pulse"]) == {"bptt", "full_force"}
    assert set(res[rules]["initial_state"]) == {"bptt", "full_force"} and "svcca_preactivation" in res[rules]
    # the networks read back are the ones the study trained (a Population member by index)
    nets = X.load_study_nets(noise)
    again = X.train_group(X.recorded_config(json.loads((noise / "config.json").read_text())),
                          X.noise_groups((0.1,))[0], noise, progress=False)  # fmt: skip
    for n in again:
        for a, b in zip(n.model.state_dict().values(), nets[n.id].model.state_dict().values()):
            assert torch.equal(a, b)
    # an unfinished study is refused with one line
    (noise / "study.json").unlink()
    with pytest.raises(FileNotFoundError, match="not a finished spikedyn study"):
        X.load_study_nets(noise)


def test_population_members_record_their_own_stop_step():
    """A Population-trained group records each member's own stop step (its first check at the target, when
    ``train`` freezes it), not the population's last step; a member that never reached it: the last step."""
    history = [{"step": 1, "loss": 1.0}, {"step": 2, "member_accuracy": [0.5, 0.95, 0.2]},
               {"step": 3, "loss": 0.5}, {"step": 4, "member_accuracy": [0.9, 0.95, 0.85]},
               {"step": 6, "member_accuracy": [0.92, 0.95, 0.88]}]  # fmt: skip
    assert X.member_stop_steps(history, 0.9, 3) == [4, 2, 6]
    assert X.member_stop_steps([], 0.9, 2) == [None, None]


def test_mds_of_a_degenerate_distance_matrix_has_no_nan():
    """A study's last step, the MDS plot coordinates, used to fail (NaN) when the distances have fewer than two
    positive classical-MDS eigenvalues (scikit-learn's start takes the square root of a negative one)."""
    import numpy as np

    from spikedyn.analysis.similarity import mds_embedding

    D = np.array([[0.0, 1.0, 3.0], [1.0, 0.0, 1.0], [3.0, 1.0, 0.0]])  # eigenvalues 4.5, 0, -0.83
    emb = mds_embedding(D)
    assert emb.shape == (3, 2) and np.isfinite(emb).all()
    assert abs(emb[0, 0] - emb[2, 0]) > 1.0  # the two far points stay apart


def test_shipped_study_results_name_their_files_portably():
    """The study and post-hoc results under docs/results name studies, run directories and figures relative to
    the study (or by its directory's name), never by the absolute path of the machine they ran on."""
    import json

    def paths(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("study", "run_dir", "figure") and isinstance(v, str):
                    yield v
                yield from paths(v)
        elif isinstance(node, list):
            for v in node:
                yield from paths(v)

    shipped = sorted((Path(__file__).parents[1] / "docs" / "results").glob("study*.json"))
    assert any("posthoc" in f.name for f in shipped)
    for f in shipped:
        for p in paths(json.loads(f.read_text())):
            assert not Path(p).is_absolute(), (f.name, p)


def _posthoc_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("study_posthoc", Path(__file__).parents[1] / "examples" /
                                                  "study_posthoc.py")  # fmt: skip
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _object_npy(path: Path, payload: bytes) -> int:
    """A ``.npy`` file of a 0-d object array whose data is ``payload`` (pickle bytes), as numpy writes one;
    returns where the payload starts."""
    import numpy as np

    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": ()})
        start = f.tell()
        f.write(payload)
    return start


def test_mcmahan_label_counts_load_without_running_code(tmp_path):
    """``study_posthoc.py --mcmahan DIR`` reads McMahan et al.'s ``distance_labels.npy`` (a pickled dict) with a
    restricted unpickler: their file's format loads (protocol 2 with ``_codecs.encode``, as theirs, and numpy's
    own protocol 3), a pickle that would call ``os.system`` is refused and runs nothing (it used
    ``np.load(..., allow_pickle=True)``)."""
    import os
    import pickle

    import numpy as np

    posthoc = _posthoc_module()
    counts = {"BPTT1": 24, "GA1": 25, "BPTT2": 24, "GA2": 24, "total": 97}
    ours = tmp_path / "protocol2.npy"
    _object_npy(ours, pickle.dumps(np.array(counts, dtype=object), protocol=2))
    assert b"_codecs" in ours.read_bytes()  # the bytes of the array's state, as in their file
    assert posthoc.load_label_counts(ours) == counts
    np.save(tmp_path / "numpy.npy", np.array({"BPTT3": 63, "GA3": np.int64(63)}, dtype=object), allow_pickle=True)
    assert posthoc.load_label_counts(tmp_path / "numpy.npy") == {"BPTT3": 63, "GA3": 63}

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    evil = tmp_path / "evil.npy"
    start = _object_npy(evil, pickle.dumps(Evil(), protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="refusing to load posix.system|refusing to load os.system"):
        posthoc.load_label_counts(evil)
    assert not marker.exists()
    pickle.loads(evil.read_bytes()[start:])  # the same bytes, unrestricted: the payload is live
    assert marker.exists()
    _object_npy(tmp_path / "none.npy", pickle.dumps(np.array(None, dtype=object), protocol=2))
    with pytest.raises(ValueError, match="expected a dict of label"):
        posthoc.load_label_counts(tmp_path / "none.npy")


def test_a_diverging_population_member_is_recorded_and_the_rest_train(tmp_path, monkeypatch, one_thread_seeded):
    """One member whose loss turns NaN used to abort its whole Population group (and every resume of it): the
    group is trained one by one instead, the diverging network recorded as diverged, the others trained; a
    resumed study does not run the Population again."""
    import json

    import torch

    cfg = X.StudyConfig(rules=("bptt",), nets=2, eval_trials=8, analysis_trials=2, n_inits=4, signature_probes=1,
                        steps={"bptt": 2}, include_failed=True)  # fmt: skip
    real = X.build_net

    def poisoned(task, body, rule, seed, tau_ms=None):
        net = real(task, body, rule, seed, tau_ms)
        if seed == X.init_seed(cfg, 1):  # network 1 starts from NaN weights: its loss is NaN at step 1
            with torch.no_grad():
                next(net.parameters()).fill_(float("nan"))
        return net

    monkeypatch.setattr(X, "build_net", poisoned)
    out = tmp_path / "s"
    with pytest.warns(UserWarning, match="bptt-rate: the Population run diverged .*one by one"):
        summary = X.run_rules(cfg, out, progress=False)
    a, b = summary["nets"]
    assert a["id"] == "bptt-rate/0" and a["run_dir"] == "nets/bptt-rate/net-00" and a["analysed"] and a["steps"] == 2
    assert b["id"] == "bptt-rate/1" and b["note"].startswith("diverged: loss became NaN") and not b["analysed"]
    assert summary["ids"] == ["bptt-rate/0"]
    # resumed: read back without another Population run (its divergence is not replayed) and without a warning
    pop_files = {p: p.stat().st_mtime_ns for p in (out / "nets" / "bptt-rate").glob("*") if p.is_file()}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = X.run_rules(cfg, out, progress=False)
    assert again["nets"] == summary["nets"]
    assert {p: p.stat().st_mtime_ns for p in pop_files} == pop_files
    nets = X.load_study_nets(out)  # the post-hoc reader finds the one-by-one network
    assert nets["bptt-rate/1"].model is None and nets["bptt-rate/0"].model.n_hidden == 50
    assert json.loads((out / "study.json").read_text())["nets"] == summary["nets"]


def test_study_cli_gives_the_callers_thread_counts_back(tmp_path):
    """``study ... --threads N`` limits torch and BLAS threads while it runs and restores the caller's counts
    (it used to keep them for the rest of the process), also when the study is refused."""
    import torch
    from threadpoolctl import threadpool_info

    out = tmp_path / "s"
    cfg = X.StudyConfig(rules=("bptt",), nets=3)
    X._check_out(out, X.study_record(cfg, X.rule_groups(cfg), "rules_rdm"))
    torch_before, blas_before = torch.get_num_threads(), [p["num_threads"] for p in threadpool_info()]
    try:
        assert main(["study", "rules", "--rules", "bptt", "--nets", "2", "--threads", str(torch_before + 1),
                     "--no-progress", "--out", str(out)]) == 2  # refused: other settings (nets)
        assert torch.get_num_threads() == torch_before
        assert [p["num_threads"] for p in threadpool_info()] == blas_before
    finally:
        torch.set_num_threads(torch_before)


def test_mirror_twins_are_evaluated_as_train_evaluates(tmp_path, monkeypatch, one_thread_seeded):
    """A mirror twin's accuracy is computed on train's held-out trials with train's evaluation seed (it used
    torch seed 0), so that every accuracy of a study's table is computed the same way; a full-FORCE twin that
    diverges is recorded, not fatal."""
    import spikedyn.learning as L
    from spikedyn.learning.train import EVAL_SEED_OFFSET, _step_seed, sample_batch

    cfg = X.StudyConfig(nets=2, seed=3, eval_trials=6)
    task = X.make_task(cfg)
    parent = X.Net(id="bptt-rate/0", group="bptt-rate", label="p", index=0, model=X.build_net(task, "rate", "bptt", 0),
                   accuracy=1.0, steps=1, run_dir=None, reached=True)  # fmt: skip
    seen = []
    real = L.evaluate

    def spy(model, task_, batch, chunk=1000, seed=0):
        seen.append((seed, batch.inputs.copy()))
        return real(model, task_, batch, chunk=chunk, seed=seed)

    monkeypatch.setattr(L, "evaluate", spy)
    group = next(g for g in X.body_groups() if g.derive == "mirror")
    (twin,) = X._derive_group(cfg, group, task, tmp_path, [parent], progress=False)
    assert twin.accuracy is not None and len(seen) == 1
    assert seen[0][0] == _step_seed(3, -1)
    import numpy as np

    np.testing.assert_array_equal(seen[0][1], sample_batch(task, 6, 3, EVAL_SEED_OFFSET, split="test").inputs)
    # a full-FORCE twin whose training diverges is recorded as diverged (it stopped the whole study)
    from spikedyn.learning.full_force import FullForce
    from spikedyn.learning.rules import TrainingDiverged

    def diverge(self, model, batch, state, *, step):
        raise TrainingDiverged(f"loss became NaN/Inf at step {step}")

    monkeypatch.setattr(FullForce, "update", diverge)
    group = next(g for g in X.body_groups() if g.derive == "ff_twin")
    (twin,) = X._derive_group(cfg.model_copy(update={"steps": {"full_force": 2}}), group, task, tmp_path, [parent],
                              progress=False)  # fmt: skip
    assert twin.model is None and twin.note.startswith("diverged: loss became NaN/Inf at step 1") and not twin.reached


def test_a_silent_network_is_left_out_of_the_distances_with_a_note():
    """A network with constant activity on the analysis inputs (a spiking net that stopped spiking) is left out
    with a note and one warning, instead of stopping the whole study at the SVCCA stage."""
    import numpy as np

    rng = np.random.default_rng(0)
    nets = [X.Net(id=f"g/{i}", group="g", label="g", index=i, model=None, accuracy=1.0, steps=1, run_dir=None,
                  reached=True) for i in range(3)]  # fmt: skip
    arrays = [{"activity": rng.standard_normal((20, 5)), "activity_trials": rng.standard_normal((8, 5))}
              for _ in range(3)]  # fmt: skip
    arrays[1]["activity"] = np.zeros((20, 5))
    assert [X.silent(a) for a in arrays] == [False, True, False]
    with pytest.warns(UserWarning, match="g/1 is silent"):
        used, kept = X._drop_silent(nets, arrays)
    assert [n.id for n in used] == ["g/0", "g/2"] and kept == [arrays[0], arrays[2]]
    assert nets[1].note.startswith("silent on the analysis inputs") and not nets[0].note


def test_contexts_study_records_its_settings_and_keeps_earlier_ns(tmp_path, capsys, one_thread_seeded):
    """``study contexts`` checks its --out like the other studies (config.json, study_version; other settings are
    refused) and a second invocation with another N adds it to the trend instead of overwriting the first's."""
    import json

    out = tmp_path / "c"
    tiny = ["--eval-trials", "8", "--analysis-trials", "2", "--n-inits", "4", "--signature-probes", "1", "--steps",
            "bptt=1", "--steps", "ga=1", "--include-failed", "--no-progress", "--out", str(out), "--nets"]
    assert main(["study", "contexts", "--contexts", "3", *tiny, "2", "--json"]) == 0
    assert main(["study", "contexts", "--contexts", "2", *tiny, "2", "--json"]) == 0
    top = json.loads((out / "study.json").read_text())
    assert top["study_version"] == X.STUDY_VERSION and top["contexts"] == [2, 3] == top["trend"]["contexts"]
    assert top["studies"] == {"2": "ncdi-2/study.json", "3": "ncdi-3/study.json"}
    assert top["config"]["n_contexts"] is None and top["config"]["task"] == "ncdi"
    record = json.loads((out / "config.json").read_text())
    assert record["kind"] == "contexts" and record["study_version"] == X.STUDY_VERSION
    capsys.readouterr()
    assert main(["study", "contexts", "--contexts", "4", *tiny, "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other settings (nets)" in err[0], err
    assert not (out / "ncdi-4").exists()


def test_resume_ignores_what_a_study_does_not_train_and_still_compares_its_budgets(tmp_path):
    """Earlier code recorded the default --rules for noise/bodies studies and accepted --steps for rules a
    study does not train (ignored): such a study still resumes; a changed budget of a trained rule does not."""
    _check_out = X._check_out

    def record(kind, rules, steps):
        return {"kind": kind, "study_version": X.STUDY_VERSION,
                "config": {"task": "rdm", "rules": rules, "steps": steps, "include_failed": False}}

    old = record("noise_rdm", ["bptt", "ga", "hebbian", "full_force"], {"bptt": 50, "hebbian": 5})
    _check_out(tmp_path / "n", old)
    _check_out(tmp_path / "n", record("noise_rdm", ["bptt"], {"bptt": 50}))  # resumes
    with pytest.raises(ValueError, match="other step budgets"):
        _check_out(tmp_path / "n", record("noise_rdm", ["bptt"], {"bptt": 60}))
    _check_out(tmp_path / "r", record("rules_rdm", ["bptt", "ga"], {"bptt": 50, "hebbian": 5}))
    _check_out(tmp_path / "r", record("rules_rdm", ["bptt", "ga"], {"bptt": 50}))
    with pytest.raises(ValueError, match="other settings"):
        _check_out(tmp_path / "r", record("rules_rdm", ["bptt"], {"bptt": 50}))
