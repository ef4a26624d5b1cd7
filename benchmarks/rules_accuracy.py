"""Accuracy of BPTT and the genetic algorithm with McMahan et al. 2024's network (the ``mcmahan2024`` preset).

Each case trains until 90 % on 2,000 validation trials (checked every ``--eval-every`` steps/generations)
or the budget runs out, and records steps (generations), wall and CPU time and the accuracy on 4,000
fresh test trials. Results go to ``--out`` (JSON, one entry per case, rewritten after each case).

    .venv/bin/python benchmarks/rules_accuracy.py --out runs/rules_accuracy.json
    .venv/bin/python benchmarks/rules_accuracy.py --cases ga:rdm:lif --out runs/ga_lif.json
    .venv/bin/python benchmarks/rules_accuracy.py --cases ga:ncdi:rate --run-dir runs/acc   # resumable

Cases ``RULE:TASK:BODY``: rule bptt|ga, task rdm|cdi|ncdi (3 contexts), body rate (the preset's CTRNN:
N = 50, 1 + tanh, the paper's init) or lif (a 50-unit LIF net, ``spikedyn.experiments.build`` defaults,
changed by ``--lif-params``).
GA runs the paper's settings (50 + 5 members, 500 trials per generation, N(0, 0.005), 0.005 read as
the standard deviation unless ``--ga-sigma-is variance``). BPTT runs the preset's Adam at ``--bptt-lr`` /
``--bptt-batch`` (test-sized defaults 3e-3 and 64; the paper's 5e-4 and 500: ``--bptt-lr 5e-4
--bptt-batch 500``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

import spikedyn
from spikedyn.experiments.build import build_model
from spikedyn.learning import evaluate
from spikedyn.learning.presets import get

DEFAULT_CASES = ["ga:rdm:rate", "bptt:rdm:rate", "ga:cdi:rate", "bptt:cdi:rate", "ga:ncdi:rate",
                 "bptt:ncdi:rate", "ga:rdm:lif"]  # fmt: skip


def run_case(case: str, args: argparse.Namespace) -> dict:
    rule, task_name, body = case.split(":")
    p = get("mcmahan2024")
    task = p.task(task_name, **({"n_contexts": 3} if task_name == "ncdi" else {}))
    kw = p.train_kwargs(rule)
    if rule == "bptt":
        kw.update(lr=args.bptt_lr, batch_size=args.bptt_batch)
        steps = args.bptt_steps
        net = (p.build_model(task, seed=args.seed) if body == "rate"
               else build_model(body, task, 50, args.lif_params, seed=args.seed))  # fmt: skip
    else:
        steps = args.ga_generations
        kw["rule_kwargs"] = {**kw["rule_kwargs"], "sigma_is": args.ga_sigma_is}
        size = kw["rule_kwargs"]["population"]
        if args.init_from is not None:  # continue a GA run: its last bred generation is generation zero
            from spikedyn.learning.checkpoint import newest_intact_checkpoint
            from spikedyn.models.population import Population

            found = newest_intact_checkpoint(args.init_from)
            if found is None:
                raise SystemExit(f"--init-from {args.init_from}: no checkpoint there")
            ga_state = found[1]["rule_state"]
            net = Population.from_tensors(ga_state["configs"], ga_state["population"])
            print(f"{case}: generation zero = generation {ga_state['generation']} of {found[0]}", file=sys.stderr)
        elif body == "rate":
            net = p.build_population(task, size, seed=args.seed)
        else:
            from spikedyn.models.population import Population

            net = Population.stack([build_model(body, task, 50, args.lif_params, seed=args.seed + i)
                                    for i in range(size)])  # fmt: skip
    kw["eval_every"] = args.eval_every if rule == "ga" else 2 * args.eval_every
    t0, c0 = time.perf_counter(), time.process_time()

    first: list[int] = []

    def log(step: int, record: dict) -> None:
        if not first:
            first.append(step)
        if "accuracy" in record:
            print(f"{case} step {step}: loss {record['loss']:.4f} validation accuracy {record['accuracy']:.4f} "
                  f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)

    run_dir = None if args.run_dir is None else args.run_dir / case.replace(":", "_")
    res = spikedyn.train(net, task, steps=steps, seed=args.seed, progress=args.progress, callback=log,
                         run_dir=run_dir, checkpoint_every=args.checkpoint_every, **kw)  # fmt: skip
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    test = task.sample(4000, np.random.default_rng([args.seed, 4242]), split="test")
    acc = evaluate(res.model, task, test)["accuracy"]
    return {"case": case, "rule": rule, "task": task_name, "body": body, "steps": res.history[-1]["step"],
            "reached_target": res.stopped_early, "validation_accuracy": res.final.get("accuracy"),
            "test_accuracy_4000": acc, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "settings": {k: v for k, v in kw.items() if k != "rule"}, "seed": args.seed,
            "lif_params": args.lif_params if body == "lif" else None,
            "init_from": None if args.init_from is None else str(args.init_from),
            "first_step_this_process": first[0] if first else None,
            "load_average_1min_at_end": round(os.getloadavg()[0], 2)}  # fmt: skip


def time_generation(args: argparse.Namespace) -> dict:
    """CPU seconds to score one GA generation (55 members x 500 trials, rdm) in chunks of 500 and of 100
    trials, rate and LIF bodies, interleaved in one process (5 rounds, the median)."""
    from spikedyn.models.population import Population

    p = get("mcmahan2024")
    task = p.task("rdm")
    pops = {"rate": p.build_population(task, 55, seed=0),
            "lif": Population.stack([build_model("lif", task, 50, seed=i) for i in range(55)])}  # fmt: skip
    u = torch.as_tensor(task.sample(500, np.random.default_rng(0)).inputs, dtype=torch.float32)
    times: dict[str, list[float]] = {}
    for _ in range(5):
        for body, pop in pops.items():
            for chunk in (500, 100):
                c0 = time.process_time()
                torch.cat([pop.outputs(u[:, i : i + chunk]) for i in range(0, 500, chunk)], dim=2)
                times.setdefault(f"{body}/chunk={chunk}", []).append(time.process_time() - c0)
    med = {k: float(np.median(v)) for k, v in times.items()}
    ratios = {b: med[f"{b}/chunk=500"] / med[f"{b}/chunk=100"] for b in pops}
    return {"cpu_s_per_generation": med, "speedup_chunk100_over_500": ratios,
            "load_average_1min": round(os.getloadavg()[0], 2)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(DEFAULT_CASES))
    ap.add_argument("--out", type=Path, default=Path("runs/rules_accuracy.json"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--bptt-lr", type=float, default=3e-3)
    ap.add_argument("--bptt-batch", type=int, default=64)
    ap.add_argument("--bptt-steps", type=int, default=2000)
    ap.add_argument("--ga-generations", type=int, default=400)
    ap.add_argument("--ga-sigma-is", choices=["variance", "std"], default="std",
                    help="read the paper's N(0, 0.005) as a standard deviation (default) or a variance")
    ap.add_argument("--lif-params", type=json.loads, default={},
                    help='SpikingRNN arguments of the lif body as JSON, e.g. \'{"tau_mem": 200, "tau_out": 100}\' '
                         "(default: spikedyn.experiments.build's defaults for the task's dt)")
    ap.add_argument("--run-dir", type=Path, default=None,
                    help="checkpoint each case under RUN_DIR/RULE_TASK_BODY and resume from there (wall and CPU "
                         "times then count only this process's part)")
    ap.add_argument("--checkpoint-every", type=int, default=None)
    ap.add_argument("--init-from", type=Path, default=None,
                    help="GA only: start from the last generation checkpointed in this run directory (a "
                         "continued run; use another --seed for fresh batches)")
    ap.add_argument("--time-generation", action="store_true",
                    help="only time the scoring of one GA generation (chunks of 500 vs 100 trials) and print it")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.time_generation:
        print(json.dumps(time_generation(args), indent=1))
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = []
    for case in args.cases.split(","):
        row = run_case(case, args)
        results.append(row)
        print(json.dumps(row), flush=True)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps({"machine": f"{os.cpu_count()} CPUs, torch threads {args.threads}",
                                   "results": results}, indent=1))  # fmt: skip
        os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
