"""How much the end point of a flossed e-prop run on Romo depends on float32 rounding (docs/analysis.md,
"Local flossing before e-prop on Romo"). For one seed, the flossed arm of ``spikedyn analyze flossing-romo``
(its defaults: gain 0.2, 64 ReLU units, 100 local-flossing steps, 1500 e-prop iterations) is trained twice
from the same flossed network: as it is, and with every entry of ``W_rec`` moved by one float32 ulp (a change
of about 1e-7 relative, the size of a different summation order). It prints and writes the relative
difference of the two training-loss curves at a few iterations, each run's held-out accuracy at the end,
its best, and its largest training loss. ``--compare REF FILE...`` instead compares seed ``--seed`` of results
files of ``spikedyn analyze flossing-romo`` (e.g. made by older trees) with REF: whether the flossing exponents
are bit-identical, and how far each arm's loss curve drifts. docs/analysis.md gives the commands behind its
figures; this one wrote ``docs/results/flossing_rounding_seed0.json``:

    python benchmarks/flossing_rounding.py --seed 0 --out /tmp/flossing_rounding.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)

CHECKPOINTS = (10, 100, 300, 400, 600, 800, 1000, 1500)


def flossed_arm(cfg, seed: int, ulp: bool) -> dict:
    """Train the flossed arm of seed ``seed`` exactly as ``spikedyn.experiments.flossing.run`` does (the
    network, flossing, rule and training settings all come from its ``flossed_arms``); ``ulp``: first move
    every ``W_rec`` entry up by one ulp."""
    from spikedyn.experiments.flossing import flossed_arms
    from spikedyn.learning import train

    arms = flossed_arms(cfg, seed)
    net = arms.flossed
    if ulp:
        with torch.no_grad():
            net.W_rec.copy_(torch.nextafter(net.W_rec, torch.full_like(net.W_rec, float("inf"))))
    t0 = time.perf_counter()
    res = train(net, arms.task, rule=arms.rule, **arms.train_kwargs)
    return {"loss": [r["loss"] for r in res.history], "accuracy": res.curve("accuracy")[1].tolist(),
            "seconds": time.perf_counter() - t0}  # fmt: skip


def _up_to(a: list[float], b: list[float]) -> dict[int, float]:
    """Largest relative difference |a - b| / |a| of two loss curves over iterations 1..t, for each checkpoint t."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    rel = np.abs(a - b) / np.abs(a)
    return {t: float(rel[:t].max()) for t in sorted({*(t for t in CHECKPOINTS if t < len(a)), len(a)})}


def _end_point(loss: list[float], accuracy: list[float]) -> dict:
    return {"final_accuracy": accuracy[-1], "best_accuracy": max(accuracy), "max_training_loss": max(loss),
            "iteration_of_max_loss": int(np.argmax(loss)) + 1}  # fmt: skip


def compare(path_a: str, path_b: str, seed: int = 0) -> dict:
    """Seed ``seed`` of two results files of ``spikedyn analyze flossing-romo`` (any code version, e.g. an
    old tree's ``results.json`` against ``docs/results/flossing_romo.json``): whether the flossing
    exponents (every flossing step, and lambda before/after) are bit-identical, and per arm the relative
    difference of the training-loss curves and both end points."""
    runs = [next(r for r in json.loads(Path(p).read_text())["runs"] if r["seed"] == seed) for p in (path_a, path_b)]
    out: dict = {"a": str(path_a), "b": str(path_b), "seed": seed}
    for key in ("floss_lambdas", "lambda_before", "lambda_after"):
        x, y = (np.asarray(r[key], dtype=float) for r in runs)
        out[f"{key}_identical"] = bool(x.shape == y.shape and np.array_equal(x, y))
    for arm in runs[0]["curves"]:
        ca, cb = runs[0]["curves"][arm], runs[1]["curves"][arm]
        n = min(len(ca["loss"]), len(cb["loss"]))
        out[arm] = {"max_relative_loss_difference_up_to": _up_to(ca["loss"][:n], cb["loss"][:n]),
                    "a": _end_point(ca["loss"], ca["accuracy"]), "b": _end_point(cb["loss"], cb["accuracy"])}
    return out


def main(argv: list[str] | None = None) -> dict:
    from spikedyn.atomic import atomic_write_json
    from spikedyn.experiments.flossing import FlossingRomoConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=FlossingRomoConfig().steps, help="e-prop iterations")
    ap.add_argument("--floss-steps", type=int, default=FlossingRomoConfig().floss_steps)
    ap.add_argument("--out", default="", help="also write the result to this JSON file")
    ap.add_argument("--compare", nargs="+", metavar="FILE",
                    help="instead: compare seed --seed of results files of `spikedyn analyze flossing-romo` "
                    "(e.g. made by older trees), each against the first")  # fmt: skip
    args = ap.parse_args(argv)
    if args.compare:
        if len(args.compare) < 2:
            ap.error("--compare needs a reference file and at least one file to compare with it")
        out = {"reference": args.compare[0], "seed": args.seed,
               "comparisons": [compare(args.compare[0], other, seed=args.seed) for other in args.compare[1:]]}
        print(json.dumps(out, indent=1))
        if args.out:
            atomic_write_json(Path(args.out), json.loads(json.dumps(out)))
        return out
    cfg = FlossingRomoConfig(seeds=1, steps=args.steps, floss_steps=args.floss_steps)
    runs = {name: flossed_arm(cfg, args.seed, ulp) for name, ulp in (("as_is", False), ("one_ulp", True))}
    out = {"config": cfg.model_dump(), "seed": args.seed,
           "max_relative_loss_difference_up_to": _up_to(runs["as_is"]["loss"], runs["one_ulp"]["loss"]),
           **{name: {**_end_point(r["loss"], r["accuracy"]), "accuracy": r["accuracy"], "loss": r["loss"],
                     "seconds": r["seconds"]} for name, r in runs.items()}}  # fmt: skip
    for name in runs:
        r = out[name]
        print(f"{name}: final accuracy {r['final_accuracy']:.3f}, best {r['best_accuracy']:.3f}, "
              f"max training loss {r['max_training_loss']:.3g} at iteration {r['iteration_of_max_loss']}")
    print("max relative difference of the loss curves up to iteration:", out["max_relative_loss_difference_up_to"])
    if args.out:
        atomic_write_json(Path(args.out), json.loads(json.dumps(out)))
    return out


if __name__ == "__main__":
    main()
