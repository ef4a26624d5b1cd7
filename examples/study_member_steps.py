"""Correct the per-network ``steps`` of a ``study.json`` written before each Population member's own stop step
was recorded (older ``spikedyn study`` recorded the population's last step for every member of a group
trained as one ``Population``: BPTT, Hebbian, full-FORCE).

For every such network it reads the group's run directory (``metrics.jsonl``: ``member_accuracy`` at each
evaluation; ``config.json``: the run's ``target_accuracy``) and records the member's first evaluation at the
target (``spikedyn.experiments.study.member_stop_steps``, what the study now records), after checking that the
member's accuracy there is the accuracy the study recorded (a frozen member keeps it). Networks trained one by
one (the GA, e-prop, twins) are left as they are. Writes a new file (atomically, never over an existing one):

    python examples/study_member_steps.py STUDY_DIR/study.json --out new.json   # then review and move it

docs/results/study_{rules_rdm,rules_rdm_tau10,noise_rdm,rules_rdm_tau10_dt1}.json were corrected with it from
their run directories (/tmp/study-runs/...; docs/comparison.md).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from spikedyn.atomic import atomic_write_json
from spikedyn.experiments.study import member_stop_steps, study_path


def corrected(summary: dict, study_dir: Path) -> tuple[dict, list[str]]:
    """``summary`` with each Population member's own stop step; and one line per changed network."""
    out = json.loads(json.dumps(summary))
    runs: dict[Path, tuple[list[dict], list]] = {}
    changes = []
    for n in out["nets"]:
        run_dir = study_path(study_dir, n.get("run_dir"))
        if run_dir is None or run_dir.name.startswith("net-"):  # one network per run: its own last step
            continue
        if run_dir not in runs:
            history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]
            target = float(json.loads((run_dir / "config.json").read_text())["train"]["target_accuracy"])
            size = len(next(r["member_accuracy"] for r in history if "member_accuracy" in r))
            runs[run_dir] = (history, member_stop_steps(history, target, size))
        history, stops = runs[run_dir]
        index = int(n["id"].rsplit("/", 1)[1])
        step = stops[index]
        at = next(r for r in history if r["step"] == step)["member_accuracy"][index]
        if abs(at - n["accuracy"]) > 1e-9:
            raise SystemExit(f"{n['id']}: accuracy {at} at step {step} in {run_dir}/metrics.jsonl, but the study "
                             f"recorded {n['accuracy']}; not corrected")  # fmt: skip
        if step != n["steps"]:
            changes.append(f"{n['id']}: steps {n['steps']} -> {step} (accuracy {at:.4f})")
            n["steps"] = step
    return out, changes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("study_json", type=Path, help="a study.json (its run directories are read from beside it)")
    ap.add_argument("--study-dir", type=Path, default=None,
                    help="the study's directory, if study_json is a copy elsewhere (its run_dir paths are absolute)")
    ap.add_argument("--out", type=Path, required=True, help="the corrected file (refuses an existing one)")
    args = ap.parse_args()
    if args.out.exists():
        raise SystemExit(f"{args.out} exists; choose another --out")
    summary = json.loads(args.study_json.read_text())
    new, changes = corrected(summary, args.study_dir or args.study_json.parent)
    print("\n".join(changes) or "nothing to correct")
    atomic_write_json(args.out, new)


if __name__ == "__main__":
    main()
