"""Before/after of a Population kernel change: ``benchmarks/population.py``'s population and sequential
children, run alternately from another checkout (``--before``, e.g. ``git archive fb89f6a spikedyn
benchmarks | tar -x -C /tmp/before``) and from this tree, so both see the same load.

    .venv/bin/python benchmarks/population_before_after.py --before /tmp/before --out runs/before_after.json

Each child trains 64 members as one Population (``population``) or ``--sequential-members`` networks one
after another (``sequential``), 5 steps each, at ``--threads`` torch threads; the order of the two trees
alternates between rounds. Prints network-steps/s (wall and CPU time) and the ratios per round.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def _run(tree: Path, mode: str, args: argparse.Namespace) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    load0 = os.getloadavg()[0]
    done = subprocess.run([sys.executable, str(tree / "benchmarks" / "population.py"), "--members", "64",
                           "--batch", "64", "--steps", "5", "--device", "cpu",
                           "--sequential-members", str(args.sequential_members), "--threads", str(args.threads),
                           "--mode", mode],
                          env=env, check=True, capture_output=True, text=True)  # fmt: skip
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "load": [load0, os.getloadavg()[0]]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, required=True, help="a checkout with spikedyn/ and benchmarks/")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sequential-members", type=int, default=16)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if not (args.before / "benchmarks" / "population.py").is_file():
        ap.error(f"--before {args.before}: no benchmarks/population.py there")
    trees = {"before": args.before.resolve(), "after": HERE}
    rows = []
    for r in range(args.rounds):
        for name in list(trees) if r % 2 == 0 else list(trees)[::-1]:
            cell = {mode: _run(trees[name], mode, args) for mode in ("population", "sequential")}
            rate = {(m, c): cell[m]["network_steps"] / cell[m][f"{c}_s"] for m in cell for c in ("wall", "cpu")}
            pw, pc, sw, sc = (rate[k] for k in [("population", "wall"), ("population", "cpu"), ("sequential", "wall"),
                                                ("sequential", "cpu")])  # fmt: skip
            lo, hi = cell["population"]["load"][0], cell["sequential"]["load"][1]
            print(f"round {r + 1} {name}: population {pw:.0f}/s wall {pc:.0f}/s cpu; sequential {sw:.0f}/s wall "
                  f"{sc:.0f}/s cpu; x{pw / sw:.2f} wall x{pc / sc:.2f} cpu; load {lo:.1f}-{hi:.1f}", flush=True)
            rows.append({"round": r + 1, "tree": name, **cell})
    for name in trees:
        mine = [x for x in rows if x["tree"] == name]
        pop = statistics.median(x["population"]["network_steps"] / x["population"]["cpu_s"] for x in mine)
        ratio = statistics.median((x["population"]["network_steps"] / x["population"]["cpu_s"])
                                  / (x["sequential"]["network_steps"] / x["sequential"]["cpu_s"]) for x in mine)
        print(f"{name}: median population {pop:.0f} network-steps/s (CPU time), x{ratio:.2f} vs sequential (CPU)")
    if args.out is not None:
        from spikedyn.atomic import atomic_write_json

        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.out, {"before": str(trees["before"]), "threads": args.threads, "rounds": rows})


if __name__ == "__main__":
    main()
