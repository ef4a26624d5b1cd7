"""The NIR paper's Braille graphs: spikedyn torch vs Lava (float, fixed point) vs norse, on the same inputs.

    .venv/bin/python benchmarks/nir_braille.py [--trials 300] [--steps 256] [--lava-trials 300]
        [--out runs/nir_braille/braille.json]

For each graph (``tests/data/nir_braille``: ``noDelay_bias_zero`` read with reset to zero,
``noDelay_noBias_subtract`` with ``reset="subtract_decayed"``; dt = 1e-4 s) on ``--trials`` synthetic
inputs (12 taxels, Bernoulli events with a rate per taxel and trial drawn from U(0, 0.25), ``--steps``
steps, seed 0):

* spikedyn torch float32 (the body as imported), float64, and the Loihi-2 fixed-point body;
* Lava 0.10 ``Loihi2SimCfg`` float and bit-accurate fixed point through ``spikedyn.deploy`` on the first
  ``--lava-trials`` inputs (every spike of every layer compared with the matching torch run);
* norse 1.1 ``norse.torch.from_nir`` of the paper's own file (``reset_method=reset_subtract`` for the
  subtract graph, as well as norse's default reset to value), float32, and spikedyn run with nirtorch's
  convention for cycles (the recurrent bias missing at the first step).

It reports per-layer spike agreement (fraction of equal (step, trial, neuron) entries), identical trials,
and the agreement of output-class decisions (argmax over the 7 output neurons of the spike count over the
trial; trials with a tie for the top count are counted apart). Writes a JSON file and prints markdown
tables (those in ``docs/hardware.md``) and a raster figure next to the JSON (``.png``).
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "nir_braille"
GRAPHS = {"bias_zero": "zero", "noBias_subtract": "subtract_decayed"}


def synthetic_inputs(trials: int, steps: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rates = rng.uniform(0.0, 0.25, size=(1, trials, 12))
    return (rng.random((steps, trials, 12)) < rates).astype(np.float64)


def decisions(out_spikes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class per trial (argmax of the output spike counts) and whether the top count is tied."""
    counts = out_spikes.sum(axis=0)
    top = counts.max(axis=1, keepdims=True)
    return counts.argmax(axis=1), (counts == top).sum(axis=1) > 1


def compare(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, float]:
    row = {}
    for (ka, za), zb in zip(a.items(), b.values()):
        row[f"agree_{ka}"] = float((za == zb).mean())
        row[f"identical_trials_{ka}"] = float((za == zb).all(axis=(0, 2)).mean())
    da, ta = decisions(list(a.values())[-1])
    db, tb = decisions(list(b.values())[-1])
    clear = ~(ta | tb)
    row["decisions_agree"] = float((da == db).mean())
    row["decisions_agree_untied"] = float((da[clear] == db[clear]).mean()) if clear.any() else float("nan")
    row["untied_trials"] = int(clear.sum())
    return row


def norse_spikes(graph, x: np.ndarray, **kw) -> dict[str, np.ndarray]:
    import norse.torch as norse

    logging.disable(logging.WARNING)
    try:
        m = norse.from_nir(graph, dt=1e-4, **kw)
    finally:
        logging.disable(logging.NOTSET)
    mods = [(n, mod) for n, mod in m.named_modules() if type(mod).__name__ == "CubaLIF"]
    rec = {n: [] for n, _ in mods}
    for n, mod in mods:
        mod.register_forward_hook(lambda mod, inp, out, n=n: rec[n].append(out[0]))
    state = None
    with torch.no_grad():
        for t in range(x.shape[0]):
            _, state = m(torch.as_tensor(x[t], dtype=torch.float32), state)
    return {n: torch.stack(r).numpy().astype(np.uint8) for n, r in rec.items()}


def nirtorch_convention(net, x: np.ndarray) -> dict[str, np.ndarray]:
    """spikedyn's network run as nirtorch runs a cycle: the recurrent Affine's bias absent at step 0 (an
    extra input channel, 0 at the first step and 1 after, carries it)."""
    from spikedyn.hardware.network import NetworkGraph, simulate_network_float

    g = net.to_graph()
    fc1, rec, fc2 = g.projections
    if rec.bias is None:
        return simulate_network_float(g, x)
    emu = NetworkGraph(13, g.layers, [replace(fc1, weight=np.concatenate([fc1.weight, rec.bias[:, None]], 1)),
                                      replace(rec, bias=None), fc2], g.readout, g.dt_ms)
    xe = np.concatenate([x, np.ones(x.shape[:2] + (1,))], -1)
    xe[0, :, -1] = 0.0
    return simulate_network_float(emu, xe)


def raster_figure(figures: dict, path: Path, trial: int = 0) -> None:
    """Trial ``trial`` of each graph: spikedyn's spikes (black) with the entries where norse's import
    (blue) and the Loihi-2 fixed-point body (red) differ from them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spikedyn.atomic import atomic_save_figure

    fig, axes = plt.subplots(2, len(figures), figsize=(6 * len(figures), 6), sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": [4, 1]})
    for col, (name, (ref, norse_z, fixed)) in enumerate(figures.items()):
        for row, layer in enumerate(ref):
            ax = axes[row, col]
            z = ref[layer][:, trial]
            t, n = np.nonzero(z)
            ax.scatter(t * 0.1, n, s=2, c="k", marker="|", label="spikedyn (torch = Lava float)")
            for other, colour, label in ((list(norse_z.values())[row], "tab:blue", "norse differs"),
                                         (fixed[layer], "tab:red", "Loihi-2 fixed point differs")):
                t, n = np.nonzero(other[:, trial] != z)
                ax.scatter(t * 0.1, n + 0.3, s=4, c=colour, marker="x", label=label)
            ax.set_ylabel(f"{layer} neuron")
            if row == 0:
                ax.set_title(f"braille_noDelay_{name}, trial {trial}")
        axes[-1, col].set_xlabel("time (ms)")
    axes[0, 0].legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    atomic_save_figure(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--lava-trials", type=int, default=300)
    ap.add_argument("--out", default="runs/nir_braille/braille.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from norse.torch.functional.reset import reset_subtract
    from spikedyn.hardware.nir_io import NIRRepairWarning, read_graph
    from spikedyn.hardware.runtime import lava_python_or_none

    import spikedyn
    from spikedyn.export.deploy_network import network_torch_reference
    from spikedyn.export.nir import from_nir, to_nir

    x = synthetic_inputs(args.trials, args.steps)
    xl = x[:, : args.lava_trials]
    lava_python = lava_python_or_none()
    results: dict = {"trials": args.trials, "steps": args.steps, "lava_trials": int(xl.shape[1]),
                     "load_average": os.getloadavg(), "machine": platform.platform(), "graphs": {}}
    figures: dict = {}
    for name, reset in GRAPHS.items():
        t0 = time.perf_counter()
        path = DATA / f"braille_noDelay_{name}.nir"
        net = from_nir(path, dt=1e-4, reset=reset)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NIRRepairWarning)
            sub = from_nir(DATA / f"braille_noDelay_{name}_subgraph.nir", dt=1e-4, reset=reset)
        xt = torch.as_tensor(x)
        with torch.no_grad():
            f32 = {k: v.numpy().astype(np.uint8) for k, v in net.layer_spikes(xt.float()).items()}
        f64 = network_torch_reference(net, x, "float")[0]
        sub64 = network_torch_reference(sub, x, "float")[0]
        rows: dict = {"spikes_torch_float64": {k: int(v.sum()) for k, v in f64.items()}}
        rows["subgraph file vs flat (torch float64)"] = compare(f64, sub64)
        rows["torch float32 vs float64"] = compare(f64, f32)
        # re-exported graph -> norse, and norse on the paper's own file
        kw = {"reset_method": reset_subtract} if reset == "subtract_decayed" else {}
        paper = norse_spikes(read_graph(path), x, **kw)
        ours_in_norse = norse_spikes(to_nir(net), x, **kw)
        rows["norse: spikedyn's export vs the paper's file"] = compare(paper, ours_in_norse)
        rows["norse" + (" (reset_subtract)" if kw else "") + " vs torch float64"] = compare(f64, paper)
        if kw:
            rows["norse (default reset to value) vs torch float64"] = compare(f64, norse_spikes(read_graph(path), x))
        rows["norse vs spikedyn with nirtorch's cycle start"] = compare(nirtorch_convention(net, x), paper)
        fixed = network_torch_reference(net, x, "fixed")[0]
        rows["torch Loihi-2 fixed point vs float64"] = compare(f64, fixed)
        figures[name] = (f64, paper, fixed)
        if lava_python is not None:
            for precision in ("float", "fixed"):
                dep = spikedyn.deploy(net, precision=precision, lava_python=lava_python)
                out = dep.run(xl, progress=False)
                ref = network_torch_reference(net, xl, precision)[0]
                label = "float64" if precision == "float" else "Loihi-2 fixed point"
                row = compare(ref, out.layers)
                row.update(lava_seconds=out.seconds, lava_spikes={k: int(v.sum()) for k, v in out.layers.items()})
                rows[f"Lava {precision} vs torch {label}"] = row
        rows["seconds"] = time.perf_counter() - t0
        results["graphs"][name] = rows
        print(f"## {name} ({args.trials} trials x {args.steps} steps; Lava: {xl.shape[1]} trials)")
        print("| comparison | " + " | ".join(["lif1 agree", "lif1 identical trials", "lif2 agree",
                                             "lif2 identical trials", "decisions agree", "untied: agree (n)"]) + " |")
        print("| --- " * 7 + "|")
        for label, row in rows.items():
            if not isinstance(row, dict) or "decisions_agree" not in row:
                continue
            vals = [v for k, v in row.items() if k.startswith(("agree_", "identical_"))]
            print(f"| {label} | " + " | ".join(f"{v:.4f}" for v in vals) +
                  f" | {row['decisions_agree']:.3f} | {row['decisions_agree_untied']:.3f} ({row['untied_trials']}) |")
        print(f"spikes (torch float64): {rows['spikes_torch_float64']}; {rows['seconds']:.0f} s\n", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    raster_figure(figures, out.with_suffix(".png"))
    from spikedyn.atomic import atomic_write_json

    atomic_write_json(out, results)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
