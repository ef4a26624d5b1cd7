"""e-prop/RFLO vs BPTT: peak memory and time per step for T in {100, 1000, 10000} (H = 256, B = 32).

    python benchmarks/eprop_memory.py                  # CPU, writes docs/results/eprop_memory.json and
                                                       # the e-prop section of docs/benchmarks.md
    python benchmarks/eprop_memory.py --device cuda    # the same on a GPU

Each (model, rule, T) runs in a fresh Python process (``spikedyn.cli.bench_eprop.memory_worker``), so
that one measurement cannot inherit another's memory; e-prop and BPTT are measured in the same run.
Same as ``spikedyn bench eprop-memory``.
"""
from __future__ import annotations

import sys

from spikedyn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "eprop-memory", *sys.argv[1:]]))
