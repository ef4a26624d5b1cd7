"""``python -m spikedyn.hardware.run BUNDLE``: run a deployment bundle on Lava (in the Lava environment).

Reads ``BUNDLE/graph.nir``, ``inputs.npz`` and ``options.json`` (see ``bundle.py``), checks them
(``validation.py``: known options, ``chunk >= 1``, inputs ``[T >= 1, B >= 1, n_in]`` and finite),
compiles the network to Lava processes, runs it and writes ``result.npz`` and ``result.json``.
Progress goes to stderr; a failure writes ``{"ok": false, "error": ...}``, prints one line and exits
with 1.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from .bundle import read_bundle, write_result
from .validation import check_inputs


def _progress_printer(total_steps: int):
    """A tqdm bar on a terminal (when tqdm is installed), else one line per chunk (log files, CI)."""
    if sys.stderr.isatty():
        try:
            import threading

            from tqdm.auto import tqdm

            # tqdm's default lock is a multiprocessing lock, which fixes multiprocessing's start method
            # before Lava sets its own ("context has already been set"): use a thread lock instead.
            tqdm.set_lock(threading.RLock())
            bar = tqdm(total=total_steps, desc="lava", unit="trial", file=sys.stderr)

            def update(done: int, total: int) -> None:
                bar.update(done - bar.n)
                if done >= total:
                    bar.close()

            return update
        except ImportError:
            pass

    def line(done: int, total: int) -> None:
        print(f"lava: {done}/{total} trials", file=sys.stderr, flush=True)

    return line


def run_bundle(directory: Path) -> dict:
    """Run one bundle; returns the info written to ``result.json``."""
    import numpy as np

    from .lava_backend import run_lava
    from .nir_io import spec_from_nir
    from .nir_network import NETWORK_KEY, graph_from_nir

    graph, u, options = read_bundle(directory)
    network = isinstance(graph.metadata, dict) and NETWORK_KEY in graph.metadata
    spec = graph_from_nir(graph) if network else spec_from_nir(graph)
    u = check_inputs(u, spec.n_in, f"the inputs of {directory}")
    t0 = time.perf_counter()
    progress = _progress_printer(u.shape[1]) if options.get("progress") else None
    stats: dict = {}
    if network:  # every layer's spikes, concatenated in the network's layer order
        from .lava_network import run_network_lava

        layers = run_network_lava(spec, u, precision=options["precision"], hardware=options["hardware"],
                                  chunk=options["chunk"], progress=progress, stats=stats)
        spikes = np.concatenate([layers[L.name] for L in spec.layers], axis=2)
    else:
        spikes = run_lava(spec, u, precision=options["precision"], hardware=options["hardware"],
                          chunk=options["chunk"], progress=progress, stats=stats)
    seconds = time.perf_counter() - t0
    info = {"ok": True, "error": None, "seconds": seconds, "steps": int(spikes.shape[0]),
            "trials": int(spikes.shape[1]), "neurons": int(spikes.shape[2]), **stats}
    write_result(directory, spikes, info)
    return info


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    directory = Path(args[0])
    try:
        run_bundle(directory)
    except Exception as e:  # reported to the torch side through result.json
        message = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        if directory.is_dir():
            write_result(directory, None, {"ok": False, "error": message})
        print(f"spikedyn.hardware.run: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
