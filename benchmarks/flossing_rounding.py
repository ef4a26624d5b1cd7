"""How much the end point of a flossed e-prop run on Romo depends on float32 rounding (docs/analysis.md,
"Local flossing before e-prop on Romo"). For one seed, the flossed arm of ``spikedyn analyze flossing-romo``
(its defaults: gain 0.2, 64 ReLU units, 100 local-flossing steps, 1500 e-prop iterations) is trained twice
from the same flossed network: as it is, and with every entry of ``W_rec`` moved by one float32 ulp (a change
of about 1e-7 relative, the size of a different summation order). It prints and writes the relative
difference of the two training-loss curves at a few iterations, each run's held-out accuracy at the end,
its best, and its largest training loss. The figures in docs/analysis.md come from:

    python benchmarks/flossing_rounding.py --seed 0 --out /tmp/flossing_rounding.json
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)

CHECKPOINTS = (10, 100, 300, 400, 600, 800, 1000, 1500)


def flossed_arm(cfg, seed: int, ulp: bool) -> dict:
    """Train the flossed arm of seed ``seed`` as ``spikedyn.experiments.flossing.run`` does (same network,
    same flossing, same training batches); ``ulp``: first move every ``W_rec`` entry up by one ulp."""
    from spikedyn.experiments.build import build_task
    from spikedyn.init import flossing
    from spikedyn.learning import train
    from spikedyn.models.rate import RateRNN

    task = build_task("romo", {"dt": cfg.dt})
    torch.manual_seed(seed)
    base = RateRNN(task.n_inputs, cfg.hidden, task.n_outputs, alpha=cfg.dt / cfg.tau, activation="relu",
                   gain=cfg.gain)  # fmt: skip
    net = copy.deepcopy(base)
    flossing(net, task, steps=cfg.floss_steps, k=cfg.floss_k, local=True, lr=cfg.floss_lr,
             batch_size=cfg.floss_batch, seed=seed, progress=False)  # fmt: skip
    if ulp:
        with torch.no_grad():
            net.W_rec.copy_(torch.nextafter(net.W_rec, torch.full_like(net.W_rec, float("inf"))))
    t0 = time.perf_counter()
    res = train(net, task, rule=cfg.rule, steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, seed=seed,
                eval_every=max(1, cfg.steps // 20), eval_trials=500, progress=False)  # fmt: skip
    return {"loss": [r["loss"] for r in res.history], "accuracy": res.curve("accuracy")[1].tolist(),
            "seconds": time.perf_counter() - t0}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    from spikedyn.atomic import atomic_write_json
    from spikedyn.experiments.flossing import FlossingRomoConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=FlossingRomoConfig().steps, help="e-prop iterations")
    ap.add_argument("--floss-steps", type=int, default=FlossingRomoConfig().floss_steps)
    ap.add_argument("--out", default="", help="also write the result to this JSON file")
    args = ap.parse_args(argv)
    cfg = FlossingRomoConfig(seeds=1, steps=args.steps, floss_steps=args.floss_steps)
    runs = {name: flossed_arm(cfg, args.seed, ulp) for name, ulp in (("as_is", False), ("one_ulp", True))}
    a, b = np.array(runs["as_is"]["loss"]), np.array(runs["one_ulp"]["loss"])
    rel = np.abs(a - b) / np.abs(a)
    out = {"config": cfg.model_dump(), "seed": args.seed,
           "max_relative_loss_difference_up_to": {t: float(rel[:t].max())
                                                  for t in sorted({*(t for t in CHECKPOINTS if t < len(a)), len(a)})},
           **{name: {"final_accuracy": r["accuracy"][-1], "best_accuracy": max(r["accuracy"]),
                     "max_training_loss": max(r["loss"]), "iteration_of_max_loss": int(np.argmax(r["loss"])) + 1,
                     "accuracy": r["accuracy"], "seconds": r["seconds"]} for name, r in runs.items()}}  # fmt: skip
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
