"""Where a Population training step spends its time, and the GEMM roofline of the population kernel.

The set-up of ``benchmarks/population.py`` (McMahan et al. 2024's CTRNN, ``mcmahan2024`` preset: N = 50,
1 + tanh, alpha = 0.1; ``rdm`` at 10 ms steps, T = 75; batch 64; BPTT with Adam and clipping), at one
torch thread, timed in thread CPU time (``time.thread_time``: what this thread computed, not the time
other jobs on the machine took from it). Three parts:

1. **Phases** of one training step of a 64-member Population and of one lone network (the same code
   ``LearningRule.update`` and ``train`` run, taken apart): batch sampling, forward (the fused rollout),
   loss, backward (the hand-written adjoint), gradient norms + clipping + Adam, and evaluation (forward
   only, on 64 held-out trials; ``population.py`` evaluates once per 5 steps, so its share is divided
   by ``--eval-every``), per network-step.
2. **Operators** of the Population's forward + backward (``torch.profiler``, self time): batched GEMMs
   (``bmm``/``baddbmm``) vs the rest.
3. **Roofline**: the three GEMMs of one time step (forward ``(1 - alpha) X + alpha W Z``, adjoint
   ``W_rec^T c``, weight gradient ``Z c^T``; ``E x [K, K] x [K, B]``, K = N + I + 1) timed alone on
   cache-resident operands and on operands read from a stored rollout of the training size
   (``[T + 1, E, K, B]``, as the backward reads it), the FLOPs of one network-step, and the achieved
   GFLOP/s of the whole step against them.

    .venv/bin/python benchmarks/population_profile.py [--members 64] [--out runs/population_profile.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path


def _median_time(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        t0 = time.thread_time()
        fn()
        times.append(time.thread_time() - t0)
    return statistics.median(times)


def phases(model, task, reps: int, eval_every: int) -> dict:
    """Thread CPU seconds per training step of each phase (``eval`` already divided by ``eval_every``)."""
    import importlib

    import torch

    from spikedyn.learning.losses import task_loss
    from spikedyn.learning.rules import BPTT, adam_step, batch_tensors, grad_norms, is_population, member_losses
    from spikedyn.models.population import lone_rate_rollout

    tr = importlib.import_module("spikedyn.learning.train")
    rule = BPTT()
    rule.set_optimizer(lr=1e-3, clip=1.0)
    state = rule.init_state(model, task, seed=0)
    pop = is_population(model)
    eval_batch = tr.sample_batch(task, 64, 0, tr.EVAL_SEED_OFFSET, split="test")
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    acc: dict[str, list[float]] = {}
    for step in range(reps + 1):
        marks = [("start", time.thread_time())]
        mark = lambda name, marks=marks: marks.append((name, time.thread_time()))  # noqa: E731

        batch = tr.sample_batch(task, 64, 0, step + 1)
        u, target, mask = batch_tensors(model, batch)
        mark("sample batch")
        with tr._torch_draws(model, 0, step + 1):
            roll = model(u, rates=False) if pop else lone_rate_rollout(model, u, rates=False)
            mark("forward")
            loss = member_losses(roll.y, target, mask, "mse") if pop else task_loss(roll.y, target, mask, "mse")
            mark("loss")
            grads = dict(zip(params, torch.autograd.grad(loss.sum(), list(params.values()))))
            mark("backward")
            members = model.size if pop else None
            norms = grad_norms(grads, members)
            float(loss.detach().double().sum()), bool(torch.isfinite(norms).all())
            coef = (rule.clip / (norms + 1e-6)).clamp(max=1.0)
            grads = {n: g * (coef.reshape(-1, *[1] * (g.dim() - 1)).to(g) if pop else coef.to(g))
                     for n, g in grads.items()}  # fmt: skip

            adam_step(params, grads, state["adam"], rule._lr(model), active=torch.ones(members, dtype=torch.bool)
                      if pop else None)  # fmt: skip
            mark("norms, clip, Adam")
        tr.evaluate(model, task, eval_batch, seed=5)
        mark("evaluation")
        if step == 0:
            continue  # warm-up
        for (_, t0), (name, t1) in zip(marks, marks[1:]):
            acc.setdefault(name, []).append(t1 - t0)
    out = {name: statistics.median(v) for name, v in acc.items()}
    out["evaluation"] /= eval_every
    out["total"] = sum(out.values())
    return out


def operators(pop, task) -> dict:
    """Self CPU time of the Population's forward + loss + backward by operator group (torch.profiler)."""
    import importlib

    import torch
    from torch.profiler import ProfilerActivity, profile

    from spikedyn.learning.rules import batch_tensors, member_losses

    tr = importlib.import_module("spikedyn.learning.train")
    u, target, mask = batch_tensors(pop, tr.sample_batch(task, 64, 0, 1))
    params = list(pop.parameters())

    def step() -> None:
        loss = member_losses(pop(u, rates=False).y, target, mask, "mse")
        torch.autograd.grad(loss.sum(), params)

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(2):
            step()
    rows = [(e.key, e.self_cpu_time_total) for e in prof.key_averages()]
    total = sum(t for _, t in rows)
    groups = {"batched GEMMs (bmm, baddbmm)": ("aten::bmm", "aten::baddbmm", "aten::baddbmm_"),
              "activation (sigmoid) and its derivative": ("aten::sigmoid", "aten::sigmoid_backward"),
              "copies and fills": ("aten::copy_", "aten::fill_", "aten::zero_", "aten::zeros", "aten::empty"),
              "lerp (adjoint leak)": ("aten::lerp",)}  # fmt: skip
    out = {g: sum(t for k, t in rows if k in names) / total for g, names in groups.items()}
    out["everything else (loss, autograd, views, Python)"] = 1.0 - sum(out.values())
    top = sorted(rows, key=lambda r: -r[1])[:8]
    out["top operators (self CPU share)"] = {k: t / total for k, t in top}
    return out


def roofline(E: int, B: int, K: int, T: int, reps: int) -> dict:
    """Thread CPU seconds of the three per-step GEMMs alone, in the kernel's ``[E, K, B]`` layout:
    cache-resident, and reading the blocks from a stored rollout ``[T + 1, E, K, B]`` as the backward does."""
    import torch

    g = torch.Generator().manual_seed(0)
    Z, X, C = (torch.randn(E, K, B, generator=g) for _ in range(3))
    W = torch.randn(E, K, K, generator=g)
    out, dWT = torch.empty(E, K, B), torch.zeros(E, K, K)
    stored = torch.randn(T + 1, E, K, B, generator=g)

    def hot() -> None:
        for _ in range(T):
            X.baddbmm_(W, Z, beta=0.9, alpha=0.1)  # forward
            torch.bmm(W, C, out=out)  # adjoint through W_rec
            dWT.baddbmm_(Z, C.mT)  # weight gradient

    def streamed() -> None:
        for t in range(T, 0, -1):
            X.baddbmm_(W, stored[t], beta=0.9, alpha=0.1)
            torch.bmm(W, C, out=out)
            dWT.baddbmm_(stored[t - 1], C.mT)

    big = torch.randn(1024, 1024, generator=g)
    big_out = torch.empty(1024, 1024)
    t_big = _median_time(lambda: torch.mm(big, big, out=big_out), reps)
    return {"gemm_step_hot_s": _median_time(hot, reps) / T, "gemm_step_streamed_s": _median_time(streamed, reps) / T,
            "gemm_flop_per_step": 3 * 2 * E * B * K * K, "sgemm_1024_gflops": 2 * 1024**3 / t_big / 1e9}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3, help="timed training steps per round (median)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of all parts, interleaved (median)")
    ap.add_argument("--eval-every", type=int, default=5, help="steps per evaluation (population.py: 5)")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()
    if min(args.members, args.reps, args.rounds, args.eval_every) < 1:
        ap.error("--members, --reps, --rounds and --eval-every must be >= 1")
    import torch

    torch.set_num_threads(1)
    import spikedyn.tasks as tasks

    from spikedyn.learning.presets import get
    from spikedyn.models.population import Population

    task = tasks.make("rdm", dt=10.0, duration_ms=740.0)
    p = get("mcmahan2024")
    E, B, T = args.members, 64, task.n_steps
    N, I = p.hidden, task.n_inputs
    K = N + I + 1
    pop = Population.stack([p.build_model(task, seed=i) for i in range(E)])
    lone = p.build_model(task, seed=0)
    res: dict = {"members": E, "batch": B, "T": T, "K": K, "rounds": args.rounds, "load_before": os.getloadavg()[0]}
    # FLOPs of one network-step: 3 GEMMs per time step in training, 1 per time step in each evaluation
    flop = (3 + 1 / args.eval_every) * T * 2 * B * K * K
    gemm_share = T * (1 + 1 / (3 * args.eval_every)) / E  # per-step GEMM time -> per network-step
    rounds = []
    for _ in range(args.rounds):  # the parts alternate, so a change of load hits all of them
        ph_pop, ph_lone = phases(pop, task, args.reps, args.eval_every), phases(lone, task, args.reps, args.eval_every)
        roof = roofline(E, B, K, T, args.reps)
        pop_s, lone_s = ph_pop["total"] / E, ph_lone["total"]
        hot, streamed = roof["gemm_step_hot_s"] * gemm_share, roof["gemm_step_streamed_s"] * gemm_share
        rounds.append({"population_phases_s_per_step": ph_pop, "lone_phases_s_per_step": ph_lone,
                       "roofline": roof, "population_s": pop_s, "lone_s": lone_s, "gemm_only_hot_s": hot,
                       "gemm_only_streamed_s": streamed,
                       "ratio_now_1_thread": lone_s / pop_s, "ratio_bound_gemm_hot_1_thread": lone_s / hot,
                       "ratio_bound_gemm_streamed_1_thread": lone_s / streamed,
                       "gemm_fraction_streamed": streamed / pop_s})  # fmt: skip
    res["rounds_detail"] = rounds
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0] if isinstance(rounds[0][k], float)}
    for side in ("population", "lone"):
        key = f"{side}_phases_s_per_step"
        res[key] = {k: statistics.median(r[key][k] for r in rounds) for k in rounds[0][key]}
    res["roofline"] = {k: statistics.median(r["roofline"][k] for r in rounds) for k in rounds[0]["roofline"]}
    roof = res["roofline"]
    res["population_operators"] = operators(pop, task)
    res["per_network_step"] = {"flop": flop, **med, "population_gflops": flop / med["population_s"] / 1e9,
                               "lone_gflops": flop / med["lone_s"] / 1e9,
                               "gemm_hot_gflops": flop / med["gemm_only_hot_s"] / 1e9,
                               "gemm_streamed_gflops": flop / med["gemm_only_streamed_s"] / 1e9}  # fmt: skip
    res["load_after"] = os.getloadavg()[0]
    for side in ("population", "lone"):
        ph = res[f"{side}_phases_s_per_step"]
        n = E if side == "population" else 1
        print(f"{side}: " + ", ".join(f"{k} {1e3 * v / n:.3f}" for k, v in ph.items()) + " ms per network-step")
    print("population operators: " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in res["population_operators"].items()
                                               if isinstance(v, float)))  # fmt: skip
    pn = res["per_network_step"]
    print(f"per network-step: {pn['flop'] / 1e6:.1f} MFLOP; population {1e3 * pn['population_s']:.2f} ms "
          f"({pn['population_gflops']:.1f} GFLOP/s), lone {1e3 * pn['lone_s']:.2f} ms "
          f"({pn['lone_gflops']:.1f} GFLOP/s); "
          f"GEMMs alone {1e3 * pn['gemm_only_hot_s']:.2f} ms hot ({pn['gemm_hot_gflops']:.1f} GFLOP/s), "
          f"{1e3 * pn['gemm_only_streamed_s']:.2f} ms streamed ({pn['gemm_streamed_gflops']:.1f} GFLOP/s); "
          f"1024^3 sgemm {roof['sgemm_1024_gflops']:.1f} GFLOP/s")  # fmt: skip
    print(f"ratio lone/population at 1 thread: now {pn['ratio_now_1_thread']:.2f}x; bound with GEMMs only: "
          f"{pn['ratio_bound_gemm_hot_1_thread']:.2f}x hot, {pn['ratio_bound_gemm_streamed_1_thread']:.2f}x streamed; "
          f"GEMMs {100 * pn['gemm_fraction_streamed']:.0f}% of the Population's time (streamed); "
          f"medians of {args.rounds} rounds; load {res['load_before']:.1f}-{res['load_after']:.1f}")  # fmt: skip
    if args.out is not None:
        from spikedyn.atomic import atomic_write_json

        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.out, res)
    else:
        print(json.dumps(res["population_operators"]["top operators (self CPU share)"]))


if __name__ == "__main__":
    main()
