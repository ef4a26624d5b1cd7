"""Rewrite the absolute paths of a ``study.json`` written before ``spikedyn study`` recorded them relative to
the study's directory (run directories, the figure, a contexts study's sub-studies), so that a copy names its
own files. Paths only: every other field is kept, and each rewritten path is checked to read back
(``spikedyn.experiments.study.study_path``) as the absolute one it replaces. Writes a new file (atomically,
never over an existing one):

    python examples/study_relative_paths.py docs/results/study_rules_rdm.json --study-dir /tmp/study-runs/rules-rdm \
        --out new.json   # then review and move it

``--study-dir``: the directory the study was run in (default: the one its paths name, before ``/nets/`` or
``/figures/``). docs/results/study_{rules_rdm,rules_rdm_tau10,noise_rdm,rules_rdm_tau10_dt1,
rules_rdm_tau10_dt1_ga}.json were rewritten with it.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path, PurePosixPath

from spikedyn.atomic import atomic_write_json
from spikedyn.experiments.study import study_path


def recorded_dir(summary: dict) -> PurePosixPath:
    """The study directory the absolute paths of ``summary`` name (one, or an error)."""
    paths = [n.get("run_dir") for n in summary.get("nets", [])] + [summary.get("figure")]
    dirs = {p.split(marker)[0] for p in paths if p and p.startswith("/")
            for marker in ("/nets/", "/figures/") if marker in p}  # fmt: skip
    if len(dirs) != 1:
        raise SystemExit(f"cannot tell the study directory from its paths ({sorted(dirs) or 'none absolute'}); "
                         "give --study-dir")  # fmt: skip
    return PurePosixPath(dirs.pop())


def relative(summary: dict, study_dir: PurePosixPath) -> tuple[dict, int]:
    """``summary`` with its absolute paths under ``study_dir`` made relative to it; and how many changed."""
    out = json.loads(json.dumps(summary))
    changed = 0

    def rel(p: str | None) -> str | None:
        nonlocal changed
        if p is None or not p.startswith("/"):
            return p
        r = PurePosixPath(p).relative_to(study_dir).as_posix()  # ValueError: a path outside the study
        if study_path(Path(study_dir), r) != Path(p):
            raise SystemExit(f"{r} does not read back as {p}")
        changed += 1
        return r

    for n in out.get("nets", []):
        n["run_dir"] = rel(n.get("run_dir"))
    if "figure" in out:
        out["figure"] = rel(out["figure"])
    if "studies" in out:
        out["studies"] = {k: rel(v) for k, v in out["studies"].items()}
    return out, changed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("study_json", type=Path)
    ap.add_argument("--study-dir", type=PurePosixPath, default=None, help="the directory the study was run in")
    ap.add_argument("--out", type=Path, required=True, help="the rewritten file (refuses an existing one)")
    args = ap.parse_args()
    if args.out.exists():
        raise SystemExit(f"{args.out} exists; choose another --out")
    summary = json.loads(args.study_json.read_text())
    new, changed = relative(summary, args.study_dir or recorded_dir(summary))
    print(f"{changed} paths made relative")
    atomic_write_json(args.out, new)


if __name__ == "__main__":
    main()
