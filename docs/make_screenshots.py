"""Regenerate docs/figures/report_sweep.png and docs/figures/report_run.png (the screenshots in
docs/sweeps.md): a 24-trial gain study (Liu et al.; 4 gains x 2 rules x 3 seeds on Romo, 32 units, 150
steps) and one LIF trial trained with e-prop on 2af (with its Lyapunov spectrum), their reports, and
headless Chromium screenshots of both.

    .venv/bin/python docs/make_screenshots.py [--out-dir runs/screenshots]

Needs chromium + chromedriver (apt-get install chromium chromium-driver) and selenium. About 2 CPU minutes.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import spikedyn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from browser import open_page  # noqa: E402

GAIN_STUDY = {
    "name": "gain-romo",
    "base": {"task": "romo", "model": "rate", "hidden": 32, "steps": 150, "batch_size": 32, "lr": 3e-3,
             "eval_every": 25, "eval_trials": 500, "task_params": {"dt": 20.0, "mask": "decision"}},
    "grid": {"model_params.gain": [0.2, 0.5, 1.0, 1.5], "rule": ["bptt", "rflo"], "seed": [0, 1, 2]},
}  # fmt: skip
LIF_RUN = {
    "name": "lif-2af",
    "base": {"task": "2af", "model": "lif", "hidden": 48, "rule": "eprop", "steps": 150, "batch_size": 32,
             "lr": 3e-3, "eval_every": 25, "eval_trials": 500, "lyapunov": 8,
             "model_params": {"substeps": 2, "tau_mem": 200.0, "tau_out": 100.0, "surrogate": "triangle",
                              "self_connections": False}},
    "grid": {"seed": [0]},
}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", type=Path, default=Path("runs/screenshots"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    figures = ROOT / "docs" / "figures"
    sweep = spikedyn.sweep(GAIN_STUDY, out_dir=args.out_dir / "gain-romo")
    page = open_page(spikedyn.write_report(sweep.out_dir), screenshot=figures / "report_sweep.png")
    assert not page.console_errors and all(i["width"] > 0 for i in page.images), page
    lif = spikedyn.sweep(LIF_RUN, out_dir=args.out_dir / "lif-2af")
    run_dir = lif.out_dir / lif.table["run_dir"][0]
    page = open_page(spikedyn.write_report(run_dir), screenshot=figures / "report_run.png")
    assert not page.console_errors and all(i["width"] > 0 for i in page.images), page
    print(sweep.table.groupby(["rule", "model_params.gain"])["accuracy"].agg(["mean", "std"]))
    print(lif.table[["accuracy", "lyapunov_max"]])


if __name__ == "__main__":
    main()
