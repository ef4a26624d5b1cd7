"""Liu et al.'s headline: e-prop and BPTT loss curves on Romo for initial gains {0.2, 0.5, 1.0, 1.5}.

    python benchmarks/eprop_gain.py                    # reduced protocol (lr chosen on seed 0), 2 workers
    python benchmarks/eprop_gain.py --full-grid        # every seed at every learning rate
    python benchmarks/eprop_gain.py --iterations 5000 --bptt-iterations 1500 --lrs 3e-4,1e-3 --seeds 2 \
        --workers 1                                    # the study in docs/eprop.md

Writes docs/figures/eprop_gain_romo.png (loss curves, Fig. 1), docs/figures/eprop_gain_lyapunov.png (max
Lyapunov exponent before/after training, Fig. 3) and docs/results/eprop_gain.json; runs are cached in
runs/eprop_gain/ (an interrupted sweep resumes). Same as ``spikedyn bench eprop-gain``.
"""
from __future__ import annotations

import sys

from spikedyn.cli import main

if __name__ == "__main__":
    # this script regenerates the docs' copy; `spikedyn bench eprop-gain` alone writes under runs/
    args = sys.argv[1:]
    defaults = [] if "--out" in args else ["--out", "docs"]
    sys.exit(main(["bench", "eprop-gain", *defaults, *args]))
