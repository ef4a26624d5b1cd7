"""e-prop/RFLO vs BPTT: peak memory and time per step for T in {100, 1000, 10000} (H = 256, B = 32).

    python benchmarks/eprop_memory.py                  # CPU, writes docs/results/eprop_memory.json and
                                                       # the e-prop section of docs/benchmarks.md
    python benchmarks/eprop_memory.py --device cuda    # the same on a GPU

Each (model, rule, T) runs in a fresh Python process (``spikedyn.experiments.eprop_memory.memory_worker``), so
that one measurement cannot inherit another's memory; e-prop and BPTT are measured in the same run.
Same as ``spikedyn bench eprop-memory``.
"""
from __future__ import annotations

import sys

from spikedyn.cli import main

if __name__ == "__main__":
    # this script regenerates the docs' copy; `spikedyn bench eprop-memory` alone writes under runs/
    args = sys.argv[1:]
    defaults = [] if "--out" in args else ["--out", "docs", "--docs", "docs/benchmarks.md"]
    sys.exit(main(["bench", "eprop-memory", *defaults, *args]))
