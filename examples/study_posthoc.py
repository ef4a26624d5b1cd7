"""Checks on a finished ``spikedyn study`` directory that the study itself does not print (docs/comparison.md):

* silhouettes of every distance matrix with only the networks that reached the target accuracy;
* SVCCA on the pre-activations ``x`` (what McMahan et al.'s code records) instead of the rates ``f(x)``;
* the dimension of the condition activity (components for 95 % of the variance) and the SVCCA between the
  first two networks of each rule, from a random x0 (McMahan et al.'s x0 ~ N(0, 0.3)) and from x0 = 0;
* attractors at zero input counted by the two fixed-point searches: seeded from the task's trajectories
  (the topology graph) and from uniform initial states in [-5, 5] (McMahan et al.'s, the signature), for
  all analysed networks and for those that reached the target;
* with ``--pulse``: McMahan et al.'s pulse experiment (Fig. 4, ``spikedyn.experiments.pulse``) on every
  analysed network: stable or transient integrator by its output, against its attractor count;
* the mean distance within and between labels of every distance matrix;
* the silhouettes of McMahan et al.'s own saved SVCCA distances (``distances.npy`` of their repository,
  N-CDI with N = 1..6, BPTT vs GA), if ``--mcmahan DIR`` names a copy of it.

    python examples/study_posthoc.py runs/study/rules-rdm [--mcmahan PATH_TO_RNN_Learning_Rules] [--pulse] \
        [--json out.json]

On a ``study contexts`` directory the checks run on each ``ncdi-N`` sub-study.
The results name the study by its directory's name (``"study": "rules-rdm"``), not by the path as typed.
Reads the study's ``study.json``, ``distances.npz``, ``analysis/*.npz`` and its trained networks (read back,
never retrained); writes nothing unless ``--json`` is given (then atomically, never over an existing file).
"""
from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch


def subset_silhouettes(D: dict[str, np.ndarray], labels: list[str], keep: np.ndarray) -> dict[str, dict[str, float]]:
    from spikedyn.analysis.similarity import silhouette, silhouette_rows

    lab = [x for x, k in zip(labels, keep) if k]
    out = {}
    for name, M in D.items():
        S = M[np.ix_(keep, keep)]
        if len(set(lab)) > 1 and len(lab) > len(set(lab)):
            out[name] = {"silhouette": silhouette(S, lab), "silhouette_rows": silhouette_rows(S, lab)}
    return out


def preactivation_svcca(study: Path, summary: dict) -> dict[str, float]:
    """SVCCA distances on ``x = atanh(r - c)`` (c = 1 for 1 + tanh units, 0 for tanh) of the rate networks."""
    from spikedyn.analysis.similarity import activity, distance_matrix, silhouette, silhouette_rows
    from spikedyn.experiments import study as X

    cfg = X.recorded_config(summary)
    task = X.make_task(cfg)
    u = torch.as_tensor(X.condition_inputs(task))
    acts, labels = [], []
    ids = summary["ids"]
    nets = X.load_study_nets(study, ids)  # read back, never trained
    for i in ids:
        m = nets[i].model
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            r = activity(m, u)
        shift = 1.0 if getattr(m, "activation", "") == "shifted_tanh" else 0.0
        acts.append(np.arctanh(np.clip(r - shift, -1 + 1e-12, 1 - 1e-12)))
        labels.append(nets[i].label)
    D = distance_matrix(acts, "svcca", progress=False)
    heb = [lab if lab == "hebbian" else "rest" for lab in labels]
    out = {"silhouette": silhouette(D, labels), "silhouette_rows": silhouette_rows(D, labels)}
    if "hebbian" in labels:
        out.update(hebbian_vs_rest=silhouette(D, heb), hebbian_vs_rest_rows=silhouette_rows(D, heb))
    return out


def initial_state_effect(study: Path, summary: dict, per_rule: int = 4) -> dict[str, dict[str, list]]:
    """Per rule: K (components for 95 % of the variance) of the condition activity of its first ``per_rule``
    networks from the preset's random x0 and from x0 = 0, and the SVCCA of its first two networks."""
    from spikedyn.analysis.similarity import activity, svcca
    from spikedyn.experiments import study as X

    cfg = X.recorded_config(summary)
    task = X.make_task(cfg)
    u = torch.as_tensor(X.condition_inputs(task))

    def k95(A: np.ndarray) -> int:
        s = np.linalg.svd(A - A.mean(0), compute_uv=False)
        return int(np.searchsorted(np.cumsum(s**2) / np.sum(s**2), 0.95 - 1e-12) + 1)

    out = {}
    by_group: dict[str, list] = {}
    for n in X.load_study_nets(study).values():  # read back, never trained
        by_group.setdefault(n.group, []).append(n)
    for group in by_group.values():
        nets = [n for n in group[:per_rule] if n.model is not None]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            random_x0 = [activity(n.model, u) for n in nets]
        zero_x0 = [X.condition_activity(n.model, task).astype(np.float64) for n in nets]
        out[group[0].label] = {"K_random_x0": [k95(a) for a in random_x0], "K_x0_zero": [k95(a) for a in zero_x0],
                        "svcca_first_two_random_x0": svcca(random_x0[0], random_x0[1]),
                        "svcca_first_two_x0_zero": svcca(zero_x0[0], zero_x0[1])}  # fmt: skip
    return out


def zero_input_attractors(study: Path, summary: dict, only: set[str] | None = None) -> dict[str, dict[str, float]]:
    """Per label: mean attractors at u = 0 found by each search, and the fraction with two or more (``only``:
    just these network ids)."""
    probes = summary["config"]["probes"]
    z = probes.index(0.0)
    out: dict[str, dict[str, list]] = {}
    for i, lab in zip(summary["ids"], summary["labels"]):
        if only is not None and i not in only:
            continue
        with np.load(study / "analysis" / f"{i.replace('/', '-')}.npz") as a:
            graph = int(a["counts"][z])
            uniform = int(a["sig_stable_0"].sum())  # SIGNATURE_PROBES[0] = 0
            points = int(len(a["sig_stable_0"]))
        d = out.setdefault(lab, {"trajectory": [], "uniform": [], "uniform_all": []})
        d["trajectory"].append(graph)
        d["uniform"].append(uniform)
        d["uniform_all"].append(points)
    return {lab: {"attractors_trajectory_seeded": float(np.mean(d["trajectory"])),
                  "attractors_uniform_seeded": float(np.mean(d["uniform"])),
                  "fixed_points_uniform_seeded": float(np.mean(d["uniform_all"])),
                  "stable_integrators_trajectory": float(np.mean(np.asarray(d["trajectory"]) >= 2)),
                  "stable_integrators_uniform": float(np.mean(np.asarray(d["uniform"]) >= 2))}
            for lab, d in out.items()}  # fmt: skip


def pulse_integrators(study: Path, summary: dict) -> dict[str, Any]:
    """McMahan et al.'s pulse experiment (``pulse_experiment``: a noiseless pulse of +-0.1857 for 375 ms,
    then 5 s of zero input, at the study's step) on every analysed network, read back from its run."""
    from spikedyn.experiments import study as X
    from spikedyn.experiments.pulse import pulse_experiment

    cfg = X.recorded_config(summary)
    nets = X.load_study_nets(study, summary["ids"])  # read back, never trained: any study kind
    per: dict[str, list[dict[str, Any]]] = {}
    for i, lab in zip(summary["ids"], summary["labels"]):
        rec = pulse_experiment(nets[i].model, n_inits=cfg.n_inits, seed=cfg.seed)
        per.setdefault(lab, []).append({"id": i, "reached": bool(nets[i].reached), "integrator": rec.integrator,
                                        "retention": rec.retention, "attractors_at_zero": rec.attractors_at_zero,
                                        "consistent": rec.consistent})  # fmt: skip
    return {lab: {"stable_by_pulse": float(np.mean([r["integrator"] == "stable" for r in rows])),
                  "consistent_with_attractors": float(np.mean([r["consistent"] for r in rows])), "nets": rows}
            for lab, rows in per.items()}  # fmt: skip


class _LabelCountsUnpickler(pickle.Unpickler):
    """Unpickles McMahan et al.'s ``distance_labels.npy`` (a 0-d object array holding a dict of group name ->
    number of networks) and nothing else: only numpy's array / dtype / scalar reconstruction, plain builtins
    and ``_codecs.encode`` for latin-1 bytes resolve; any other global (``os.system``, ``builtins.eval``...)
    is refused, so the file cannot run code."""

    _NUMPY = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
              ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
              ("numpy._core.multiarray", "scalar")}  # fmt: skip
    _BUILTINS = {"dict": dict, "list": list, "tuple": tuple, "int": int, "float": float, "str": str, "bool": bool}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._NUMPY:
            if name in ("ndarray", "dtype"):
                return getattr(np, name)
            core = np._core if hasattr(np, "_core") else np.core  # numpy 2 moved numpy.core to numpy._core
            return getattr(core.multiarray, name)
        if module == "builtins" and name in self._BUILTINS:
            return self._BUILTINS[name]
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a pickled file (it could run code)")


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    if encoding != "latin1" or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refusing _codecs.encode({type(text).__name__}, {encoding!r}) in a pickled file")
    return text.encode("latin1")


def load_label_counts(path: Path) -> dict[str, int]:
    """McMahan et al.'s ``distance_labels.npy``: group name (``BPTT1``, ``GA3``, ``total``...) -> number of
    networks. Read with ``_LabelCountsUnpickler`` (never ``np.load(..., allow_pickle=True)`` on a user-given
    file); anything but a dict of str -> int is refused with one line."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        _, _, dtype = header(f)
        if not dtype.hasobject:
            raise ValueError(f"{path}: expected a pickled dict of label counts, found a {dtype} array")
        value = _LabelCountsUnpickler(f).load()
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value.item()
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, (int, np.integer))
                                              for k, v in value.items()):  # fmt: skip
        raise ValueError(f"{path}: expected a dict of label -> number of networks, got {type(value).__name__}")
    return {k: int(v) for k, v in value.items()}


def mcmahan_saved(path: Path) -> list[dict[str, float]]:
    """Silhouettes of McMahan et al.'s saved SVCCA distances (BPTT vs GA at each N)."""
    from spikedyn.analysis.similarity import silhouette, silhouette_rows

    d = np.load(path / "distances.npy")
    counts = load_label_counts(path / "distance_labels.npy")
    D = np.maximum((d + d.T) / 2, 0.0)
    np.fill_diagonal(D, 0.0)
    start, idx = 0, {}
    for k, v in counts.items():
        if k != "total":
            idx[k] = np.arange(start, start + v)
            start += v
    rows = []
    for n in range(1, 7):
        a, b = idx.get(f"BPTT{n}"), idx.get(f"GA{n}")
        if a is None or b is None:
            continue
        ii = np.concatenate([a, b])
        M = D[np.ix_(ii, ii)]
        lab = ["bptt"] * len(a) + ["ga"] * len(b)
        within_b = M[: len(a), : len(a)][np.triu_indices(len(a), 1)].mean()
        within_g = M[len(a):, len(a):][np.triu_indices(len(b), 1)].mean()
        rows.append({"N": n, "nets": [len(a), len(b)], "within_bptt": float(within_b), "within_ga": float(within_g),
                     "between": float(M[: len(a), len(a):].mean()), "silhouette": silhouette(M, lab),
                     "silhouette_rows": silhouette_rows(M, lab)})  # fmt: skip
    return rows


def label_means(D: np.ndarray, labels: list[str]) -> dict[str, float]:
    """Mean distance within each label (off-diagonal pairs) and between each pair of labels."""
    lab = np.asarray(labels)
    names = list(dict.fromkeys(labels))
    out = {}
    for i, a in enumerate(names):
        for b in names[i:]:
            ia, ib = np.flatnonzero(lab == a), np.flatnonzero(lab == b)
            M = D[np.ix_(ia, ib)]
            v = M[np.triu_indices(len(ia), 1)] if a == b else M.ravel()
            out[f"within {a}" if a == b else f"{a} - {b}"] = float(v.mean()) if v.size else float("nan")
    return out


def study_name(study: Path, top: Path | None = None) -> str:
    """How the results name ``study``: its directory's name (``noise-rdm``), or for an ``ncdi-N`` sub-study of
    the contexts study ``top`` that name and its path inside ``top`` (``contexts/ncdi-2``) -- not the path as
    typed (``/tmp/...``), which would name nothing in a copy (``study.json`` records its paths relative too)."""
    from spikedyn.experiments.study import relative_to_study

    if top is None:
        return Path(study).resolve().name
    return f"{study_name(top)}/{relative_to_study(study, top)}"


def posthoc(study: Path, pulse: bool = False, name: str | None = None) -> dict:
    """The checks of the module doc on one study directory (``study rules|noise|bodies``, or one ``ncdi-N``
    of ``study contexts``); ``name``: what the results' ``study`` field says (default ``study_name``)."""
    summary = json.loads((study / "study.json").read_text())
    with np.load(study / "distances.npz") as f:
        from spikedyn.experiments.study import DISTANCES

        D = {k: f[f"{k}_distance"] for k in DISTANCES}
    reached = {n["id"]: bool(n["reached"]) for n in summary["nets"]}
    keep = np.asarray([reached[i] for i in summary["ids"]])
    res = {"study": name or study_name(study), "reached_only": subset_silhouettes(D, summary["labels"], keep),
           "reached_per_label": {lab: int(sum(k for k, x in zip(keep, summary["labels"]) if x == lab))
                                 for lab in dict.fromkeys(summary["labels"])},
           "mean_distances": {k: label_means(M, summary["labels"]) for k, M in D.items()},
           "zero_input_attractors": zero_input_attractors(study, summary),
           "zero_input_attractors_reached": zero_input_attractors(
               study, summary, {i for i, k in zip(summary["ids"], keep) if k})}  # fmt: skip
    if summary["kind"].startswith("rules_") and len(set(summary["labels"])) > 1:  # silhouettes need two rules
        res["svcca_preactivation"] = preactivation_svcca(study, summary)
        res["initial_state"] = initial_state_effect(study, summary)
    if pulse:
        res["pulse"] = pulse_integrators(study, summary)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("study", type=Path)
    ap.add_argument("--mcmahan", type=Path, default=None, help="a copy of McMahan et al.'s repository")
    ap.add_argument("--pulse", action="store_true", help="run the pulse experiment on every analysed network")
    ap.add_argument("--json", type=Path, default=None, help="write the results here (refuses an existing file)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    summary = json.loads((args.study / "study.json").read_text())
    if summary["kind"] == "contexts":  # one sub-study per N (paths relative to the study, or absolute if older)
        from spikedyn.experiments.study import study_path

        subs = {n: study_path(args.study, p).parent for n, p in summary["studies"].items()}
        res = {"study": study_name(args.study),
               "contexts": {n: posthoc(sub, args.pulse, name=study_name(sub, args.study)) for n, sub in subs.items()}}
    else:
        res = posthoc(args.study, args.pulse)
    if args.mcmahan is not None:
        res["mcmahan_saved_distances"] = mcmahan_saved(args.mcmahan)
    print(json.dumps(res, indent=1))
    if args.json is not None:
        if args.json.exists():
            raise SystemExit(f"{args.json} exists; choose another --json path")
        from spikedyn.atomic import atomic_write_json

        atomic_write_json(args.json, res)


if __name__ == "__main__":
    main()
