"""``spikedyn bench eprop-memory`` and ``spikedyn bench eprop-gain``: e-prop's benchmark, seed 001's headline.

* ``eprop-memory``: peak memory and time per step of one gradient computation, online e-prop/RFLO vs
  BPTT, for T in {100, 1000, 10000} steps (H = 256 units, batch 32). Every configuration runs in a fresh
  Python process so that one measurement cannot inherit another's memory. CPU: peak resident memory
  (``VmHWM``, reset with ``/proc/self/clear_refs`` after the model and inputs are built); CUDA:
  ``torch.cuda.max_memory_allocated``. Writes ``docs/results/eprop_memory.json`` and the e-prop section
  of ``docs/benchmarks.md``.
* ``eprop-gain``: seed 001's Fig. 1 (Liu et al.): loss curves of e-prop and BPTT on Romo for initial
  recurrent gains {0.2, 0.5, 1.0, 1.5} (W_rec ~ N(0, gain^2 / N)), 64 ReLU units, batch 32, Adam with the
  best learning rate per gain from {1e-4, 3e-4, 1e-3, 3e-3}, 5 seeds. Default (reduced) protocol: the
  learning rate is chosen on seed 0, then seeds 1-4 run at that rate; ``--full-grid`` runs every seed at
  every rate and chooses by the seed mean. Each run is cached as JSON, so an interrupted sweep resumes.

``benchmarks/eprop_memory.py`` and ``benchmarks/eprop_gain.py`` call the same functions.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import typer

from ..atomic import atomic_save_figure
from .common import comma_list, emit, json_option
from .groups import bench_app

MEMORY_T = (100, 1000, 10000)
DOCS_BEGIN, DOCS_END = "<!-- eprop:begin -->", "<!-- eprop:end -->"


# -- memory benchmark -------------------------------------------------------------------------------
def _status_kb(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def _memory_model(kind: str, hidden: int, n_in: int, n_out: int):
    from ..models import RateRNN, SpikingRNN

    if kind == "rate":
        return RateRNN(n_in, hidden, n_out, alpha=0.1, activation="relu")
    if kind in ("lif", "alif"):
        return SpikingRNN(n_in, hidden, n_out, neuron=kind, dt=1.0, tau_mem=20.0, tau_out=20.0,
                          surrogate="triangle", refractory=2.0, self_connections=False)  # fmt: skip
    raise ValueError(f"unknown model {kind!r}; choose rate, lif or alif")


def memory_worker(kind: str, rule: str, T: int, hidden: int, batch: int, device: str, threads: int) -> dict:
    """One measurement (run it in a fresh process): peak memory and time of one ``loss_and_gradients``."""
    import torch

    from ..learning import make_rule

    torch.set_num_threads(threads)
    # BPTT's adjoint can decay over 10,000 steps into subnormal floats, which cost the CPU up to ~100x per
    # operation; flush them so both rules are timed on the arithmetic they do, not on a denormal penalty.
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    n_in, n_out = 4, 2
    model = _memory_model(kind, hidden, n_in, n_out).to(device)
    gen = torch.Generator().manual_seed(1)
    u = torch.randn(T, batch, n_in, generator=gen).to(device)
    target = torch.randn(T, batch, n_out, generator=gen).to(device)
    mask = torch.ones(T, batch, n_out, device=device)
    rule_obj = make_rule("eprop" if rule == "eprop" else "bptt")
    # warm-up (thread pools, allocator) on one trial, so that the batch's own buffers still count below
    rule_obj.loss_and_gradients(model, u[:10, :1], target[:10, :1], mask[:10, :1], "mse")
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        import gc

        gc.collect()
        with open("/proc/self/clear_refs", "w") as fh:  # reset VmHWM to the current RSS (Linux >= 4.0)
            fh.write("5")
        base = _status_kb("VmRSS") * 1024
    t0, c0 = time.perf_counter(), time.process_time()
    rule_obj.loss_and_gradients(model, u, target, mask, "mse")
    if cuda:
        torch.cuda.synchronize()
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    peak = torch.cuda.max_memory_allocated() if cuda else _status_kb("VmHWM") * 1024
    return {"model": kind, "rule": rule, "T": T, "hidden": hidden, "batch": batch, "device": device,
            "threads": threads, "peak_mb": peak / 2**20, "base_mb": base / 2**20,
            "extra_mb": (peak - base) / 2**20, "ms_per_step": 1e3 * seconds / T,
            "cpu_ms_per_step": 1e3 * cpu_seconds / T}  # fmt: skip


def measure_in_subprocess(**kwargs: Any) -> dict:
    """``memory_worker(**kwargs)`` in a fresh Python process (its memory starts from scratch)."""
    code = ("import json, sys; from spikedyn.cli.bench_eprop import memory_worker; "
            "print(json.dumps(memory_worker(**json.loads(sys.argv[1]))))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code, json.dumps(kwargs)], capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"memory measurement {kwargs} failed: {tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_memory_benchmark(
    models: tuple[str, ...] = ("lif", "alif", "rate"),
    lengths: tuple[int, ...] = MEMORY_T,
    hidden: int = 256,
    batch: int = 32,
    device: str = "cpu",
    threads: int = 1,
    progress: bool = True,
) -> list[dict]:
    """e-prop vs BPTT for every model and length, each in its own process (CPU or CUDA)."""
    from tqdm.auto import tqdm

    cases = [(m, T, r) for m in models for T in lengths for r in ("eprop", "bptt")]
    rows = []
    for m, T, r in tqdm(cases, desc="eprop-memory", disable=None if progress else True):
        rows.append(measure_in_subprocess(kind=m, rule=r, T=T, hidden=hidden, batch=batch, device=device,
                                          threads=threads))  # fmt: skip
    return rows


def memory_table(rows: list[dict]) -> str:
    """Markdown table: one line per (model, T), e-prop and BPTT side by side. Time per step is CPU time
    of the process on CPU (robust on a shared machine; one thread, so close to wall time when idle) and
    synchronised wall time on CUDA."""
    by = {(r["model"], r["T"], r["rule"]): r for r in rows}
    cuda = any(r["device"].startswith("cuda") for r in rows)
    key, unit = ("ms_per_step", "ms/step") if cuda else ("cpu_ms_per_step", "CPU ms/step")
    lines = [f"| model | T | e-prop peak MB | e-prop extra MB | e-prop {unit} | BPTT peak MB | BPTT extra MB "
             f"| BPTT {unit} | extra memory BPTT / e-prop | time e-prop / BPTT |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for model, T in sorted({(r["model"], r["T"]) for r in rows}):
        e, b = by.get((model, T, "eprop")), by.get((model, T, "bptt"))
        if e is None or b is None:
            continue
        mem = b["extra_mb"] / max(e["extra_mb"], 1e-9)
        speed = e[key] / max(b[key], 1e-12)
        lines.append(f"| {model} | {T} | {e['peak_mb']:.0f} | {e['extra_mb']:.1f} | {e[key]:.2f} | "
                     f"{b['peak_mb']:.0f} | {b['extra_mb']:.1f} | {b[key]:.2f} | {mem:.3g}x | {speed:.2f}x |")
    return "\n".join(lines)


def flatness(rows: list[dict]) -> dict[str, float]:
    """Peak (and extra) memory of e-prop at the longest T relative to the shortest, per model."""
    out = {}
    for model in sorted({r["model"] for r in rows}):
        e = sorted((r for r in rows if r["model"] == model and r["rule"] == "eprop"), key=lambda r: r["T"])
        b = sorted((r for r in rows if r["model"] == model and r["rule"] == "bptt"), key=lambda r: r["T"])
        if len(e) >= 2:
            out[f"{model}_eprop_peak_ratio"] = e[-1]["peak_mb"] / e[0]["peak_mb"]
            out[f"{model}_eprop_extra_ratio"] = e[-1]["extra_mb"] / max(e[0]["extra_mb"], 1e-9)
        if len(b) >= 2:
            out[f"{model}_bptt_peak_ratio"] = b[-1]["peak_mb"] / b[0]["peak_mb"]
    return out


def write_docs_section(path: Path, body: str) -> None:
    """Replace the e-prop section of the shared ``docs/benchmarks.md`` (between our markers) atomically."""
    from ..learning.checkpoint import atomic_write_bytes

    path = Path(path)
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{DOCS_BEGIN}\n{body.strip()}\n{DOCS_END}"
    if DOCS_BEGIN in text and DOCS_END in text:
        head, rest = text.split(DOCS_BEGIN, 1)
        text = head + block + rest.split(DOCS_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    atomic_write_bytes(path, text.encode())


def memory_section(rows: list[dict], command: str) -> str:
    import platform

    import torch

    dev = rows[0]["device"] if rows else "cpu"
    if dev.startswith("cuda"):
        where = f"GPU: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else dev}"
        what = "peak = `torch.cuda.max_memory_allocated` during the call; extra = peak − allocated before it"
    else:
        threads = rows[0]["threads"] if rows else 1
        where = f"CPU: {platform.processor() or platform.machine()}, {threads} torch thread(s)"
        what = ("peak = the process's peak resident memory (VmHWM) during the call, reset after the model "
                "and inputs were built and a one-trial warm-up call; extra = peak − resident memory before "
                "the call")
    fl = flatness(rows)
    flat_lines = [f"- {m}: e-prop peak at T={max(MEMORY_T)} / T={min(MEMORY_T)} = "
                  f"{fl.get(f'{m}_eprop_peak_ratio', float('nan')):.3f} (extra memory "
                  f"{fl.get(f'{m}_eprop_extra_ratio', float('nan')):.2f}x); BPTT peak "
                  f"{fl.get(f'{m}_bptt_peak_ratio', float('nan')):.1f}x"
                  for m in sorted({r['model'] for r in rows})]  # fmt: skip
    return "\n".join([
        "## e-prop: memory and time, online e-prop/RFLO vs BPTT",
        "",
        f"One gradient computation (`rule.loss_and_gradients`) on H = {rows[0]['hidden']} units, batch "
        f"{rows[0]['batch']}, mse loss on every step; each configuration in a fresh process. {where}. "
        f"{what}. "
        "`lif`/`alif`: e-prop with the readout filter (tau_out = 20 ms, so the filtered traces are "
        "[N, B, I+N+1]); `rate`: RFLO. Time per step = time of the call / T.",
        "",
        memory_table(rows),
        "",
        *flat_lines,
        "",
        "Peaks include the inputs, targets and masks (`[T, B, ...]`, built before the call), which is why "
        "e-prop's peak still grows slightly with T while its extra memory does not.",
        "",
        f"Produced by `{command}` (also `python benchmarks/eprop_memory.py`). No GPU was lent to this "
        "task; on a CUDA machine run `spikedyn bench eprop-memory --device cuda` to add GPU numbers.",
        "",
        "The e-prop training results (`spikedyn bench eprop-accuracy`) and seed 001's initial-gain figure "
        "(`spikedyn bench eprop-gain`, `docs/figures/eprop_gain_romo.png`) are in [eprop.md](eprop.md).",
    ])  # fmt: skip


@bench_app.command("eprop-memory")
def eprop_memory(
    models: str = typer.Option("lif,alif,rate", help="Comma-separated models (lif, alif, rate)."),
    lengths: str = typer.Option("100,1000,10000", help="Comma-separated sequence lengths T."),
    hidden: int = typer.Option(256, help="Units H."),
    batch: int = typer.Option(32, help="Batch size B."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    threads: int = typer.Option(1, help="torch CPU threads per measurement."),
    out: str = typer.Option("docs/results/eprop_memory.json", help="Where to write the rows."),
    docs: str = typer.Option("docs/benchmarks.md", help="Markdown file whose e-prop section to replace ('' = skip)."),
    as_json: bool = json_option(),
) -> None:
    """Peak memory and time per step of e-prop/RFLO vs BPTT for growing T (one fresh process each)."""
    from ..learning.checkpoint import atomic_write_json

    model_list = comma_list(models, "--models")
    for m in model_list:
        if m not in ("lif", "alif", "rate"):
            raise ValueError(f"unknown model {m!r}; choose from lif, alif, rate")
    T_list = comma_list(lengths, "--lengths", int, 1)
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError("--device cuda asked for, but torch sees no CUDA device")
    rows = run_memory_benchmark(model_list, T_list, hidden, batch, device, threads)
    atomic_write_json(Path(out), {"rows": rows, "flatness": flatness(rows)})
    command = "spikedyn bench eprop-memory" + ("" if device == "cpu" else f" --device {device}")
    if docs:
        write_docs_section(Path(docs), memory_section(rows, command))
    summary = {f"{r['model']}/{r['rule']}/T={r['T']}": f"{r['peak_mb']:.0f} MB peak, {r['extra_mb']:.1f} MB "
               f"extra, {r['ms_per_step']:.2f} ms/step" for r in rows}  # fmt: skip
    summary.update({k: round(v, 3) for k, v in flatness(rows).items()})
    emit(summary, as_json, f"e-prop vs BPTT memory -> {out}")


# -- accuracy of the online rules (done-when: >= 90%) -----------------------------------------------
_LIF = {"neuron": "lif", "self_connections": False, "surrogate": "triangle", "tau_out": 100.0}
ACCURACY_CASES: dict[str, dict[str, Any]] = {
    "eprop/lif/2af": {"task": "2af", "task_params": {}, "model": "spiking", "rule": "eprop", "steps": 400,
                      "lr": 3e-3, "stop_at": 0.92,
                      "model_params": {**_LIF, "dt": 100.0, "substeps": 2, "tau_mem": 200.0}},
    "eprop/lif/rdm": {"task": "rdm", "task_params": {"dt": 10.0}, "model": "spiking", "rule": "eprop",
                      "steps": 800, "lr": 3e-3, "stop_at": None,
                      "model_params": {**_LIF, "dt": 10.0, "tau_mem": 50.0}},
    # ALIF: default adaptation (beta 0.07, tau_a 2 s); on rdm half the units adapt, as in Bellec's LSNN
    "eprop/alif/2af": {"task": "2af", "task_params": {}, "model": "spiking", "rule": "eprop", "steps": 400,
                       "lr": 3e-3, "stop_at": 0.92,
                       "model_params": {**_LIF, "neuron": "alif", "dt": 100.0, "substeps": 2, "tau_mem": 200.0}},
    "eprop/alif/rdm": {"task": "rdm", "task_params": {"dt": 10.0}, "model": "spiking", "rule": "eprop",
                       "steps": 800, "lr": 3e-3, "stop_at": None,
                       "model_params": {**_LIF, "neuron": "alif", "n_adaptive": 32, "dt": 10.0, "tau_mem": 50.0}},
    **{f"rflo/rate/{name}": {"task": name, "task_params": {}, "model": "rate", "rule": "rflo", "steps": 800,
                             "lr": 1e-2, "stop_at": 0.92, "model_params": {"alpha": 0.1, "activation": "relu"}}
       for name in ("2af", "romo", "dms")},
}  # fmt: skip
"""Settings of the training tests (tests/test_eprop.py) and of the accuracy table in docs/eprop.md:
64 units, batch 32, Adam; training stops early once 500 held-out trials reach ``stop_at`` (checked
every 25 steps). rdm runs all its steps: its optimum (~92%) is too close to a 92% stopping rule."""


def build_accuracy_case(name: str, seed: int = 0):
    """(task, untrained model) of ``ACCURACY_CASES[name]``, the model initialised from ``seed``."""
    import torch

    from ..experiment import build_task
    from ..models import RateRNN, SpikingRNN

    case = ACCURACY_CASES[name]
    task = build_task(case["task"], case["task_params"])
    torch.manual_seed(seed)
    cls = RateRNN if case["model"] == "rate" else SpikingRNN
    return task, cls(task.n_inputs, 64, task.n_outputs, **case["model_params"])


def run_accuracy_case(name: str, seed: int = 0, held_out: int = 1000) -> dict:
    """Train one case with its rule and score it on ``held_out`` fresh test trials."""
    import numpy as np

    from ..learning import evaluate, train

    case = ACCURACY_CASES[name]
    task, model = build_accuracy_case(name, seed)
    t0 = time.perf_counter()
    result = train(model, task, rule=case["rule"], steps=case["steps"], batch_size=32, lr=case["lr"], seed=seed,
                   eval_every=25, eval_trials=500, target_accuracy=case["stop_at"], progress=False)  # fmt: skip
    batch = task.sample(held_out, np.random.default_rng([seed, 12345]), split="test")
    return {"case": name, "seed": seed, "accuracy": evaluate(model, task, batch)["accuracy"],
            "steps_run": result.history[-1]["step"], "seconds": time.perf_counter() - t0}  # fmt: skip


@bench_app.command("eprop-accuracy")
def eprop_accuracy(
    seeds: int = typer.Option(3, help="Seeds per case."),
    held_out: int = typer.Option(4000, help="Fresh test trials per evaluation."),
    out: str = typer.Option("docs/results/eprop_accuracy.json", help="Where to write the rows."),
    as_json: bool = json_option(),
) -> None:
    """Train the e-prop (LIF) and RFLO (rate) cases of the tests for several seeds; held-out accuracy."""
    from tqdm.auto import tqdm

    from ..learning.checkpoint import atomic_write_json

    jobs = [(name, s) for name in ACCURACY_CASES for s in range(seeds)]
    rows = [run_accuracy_case(name, s, held_out) for name, s in tqdm(jobs, desc="eprop-accuracy", disable=None)]
    atomic_write_json(Path(out), {"held_out": held_out, "cases": ACCURACY_CASES, "rows": rows})
    summary = {}
    for name in ACCURACY_CASES:
        accs = [r["accuracy"] for r in rows if r["case"] == name]
        steps = [r["steps_run"] for r in rows if r["case"] == name]
        summary[name] = f"accuracy {min(accs):.3f}..{max(accs):.3f} over {len(accs)} seeds, steps {steps}"
    emit(summary, as_json, f"online rules, held-out accuracy -> {out}")


# -- seed 001: initial gain vs learning speed ------------------------------------------------------
GAINS = (0.2, 0.5, 1.0, 1.5)
LRS = (1e-4, 3e-4, 1e-3, 3e-3)


def gain_run(rule: str, gain: float, lr: float, seed: int, iterations: int, hidden: int, batch: int,
             dt: float, tau: float, eval_trials: int, mask: str = "decision") -> dict:  # fmt: skip
    """One training run on Romo: the per-iteration training loss and the final held-out accuracy.
    ``mask="decision"`` supervises the decision period only (as Schuessler et al.'s Romo, which seed 001
    follows); with "all" the loss is dominated by the easy fixation steps."""
    import torch

    from ..experiment import build_task
    from ..learning import train
    from ..models import RateRNN

    torch.set_num_threads(1)
    task = build_task("romo", {"dt": dt, "mask": mask})
    torch.manual_seed(seed)
    alpha = min(1.0, dt / tau)
    net = RateRNN(task.n_inputs, hidden, task.n_outputs, alpha=alpha, activation="relu", gain=gain)
    t0 = time.perf_counter()
    result = train(net, task, rule=rule, steps=iterations, batch_size=batch, lr=lr, seed=seed,
                   eval_every=iterations, eval_trials=eval_trials, progress=False)  # fmt: skip
    return {"rule": rule, "gain": gain, "lr": lr, "seed": seed, "iterations": iterations,
            "loss": [r["loss"] for r in result.history], "accuracy": result.final.get("accuracy"),
            "eval_loss": result.final.get("eval_loss"), "seconds": time.perf_counter() - t0}  # fmt: skip


def _run_key(rule: str, gain: float, lr: float, seed: int) -> str:
    return f"{rule}_g{gain:g}_lr{lr:g}_s{seed}"


def _cached_run(cache: Path, cfg: dict, rule: str, gain: float, lr: float, seed: int) -> dict:
    from ..learning.checkpoint import atomic_write_json

    path = Path(cache) / f"{_run_key(rule, gain, lr, seed)}.json"
    if path.exists():
        data = json.loads(path.read_text())
        if data.get("config") == cfg:
            return data
    data = gain_run(rule, gain, lr, seed, **cfg)
    data["config"] = cfg
    atomic_write_json(path, data)
    return data


def _pool_map(jobs: list[tuple], cache: Path, cfg: dict, workers: int, desc: str) -> list[dict]:
    from concurrent.futures import ProcessPoolExecutor

    from tqdm.auto import tqdm

    if workers <= 1:
        return [_cached_run(cache, cfg, *j) for j in tqdm(jobs, desc=desc, disable=None)]
    import multiprocessing

    # spawn, not fork: forking a process whose torch already started OpenMP threads can hang
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_cached_run, cache, cfg, *j) for j in jobs]
        return [f.result() for f in tqdm(futures, desc=desc, disable=None)]


def tail_loss(losses: list[float], fraction: float = 0.1) -> float:
    """Mean training loss over the last ``fraction`` of the iterations (the learning-rate criterion)."""
    n = max(1, int(len(losses) * fraction))
    return float(sum(losses[-n:]) / n)


def smooth(values: list[float], window: int) -> list[float]:
    """Trailing moving average (the first ``window - 1`` points average what exists so far)."""
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def run_gain_sweep(
    gains: tuple[float, ...] = GAINS,
    lrs: tuple[float, ...] = LRS,
    seeds: int = 5,
    iterations: int = 1500,
    hidden: int = 64,
    batch: int = 32,
    dt: float = 20.0,
    tau: float = 100.0,
    eval_trials: int = 1000,
    mask: str = "decision",
    full_grid: bool = False,
    workers: int = 1,
    cache: Path = Path("runs/eprop_gain"),
    rules: tuple[str, ...] = ("eprop", "bptt"),
) -> dict:
    """Seed 001's sweep; returns {rule: {gain: {"lr", "runs": [...]}}} plus the learning-rate table."""
    cfg = {"iterations": iterations, "hidden": hidden, "batch": batch, "dt": dt, "tau": tau,
           "eval_trials": eval_trials, "mask": mask}  # fmt: skip
    select_seeds = list(range(seeds)) if full_grid else [0]
    jobs = [(r, g, lr, s) for r in rules for g in gains for lr in lrs for s in select_seeds]
    first = _pool_map(jobs, cache, cfg, workers, "eprop-gain: learning rates")
    choice: dict[str, dict[float, dict]] = {r: {} for r in rules}
    lr_table = []
    for r in rules:
        for g in gains:
            scores = {}
            for lr in lrs:
                runs = [d for d in first if d["rule"] == r and d["gain"] == g and d["lr"] == lr]
                scores[lr] = sum(tail_loss(d["loss"]) for d in runs) / len(runs)
            best = min(scores, key=scores.get)
            choice[r][g] = {"lr": best, "lr_scores": scores}
            lr_table.append({"rule": r, "gain": g, **{f"lr={lr:g}": round(v, 4) for lr, v in scores.items()},
                             "best_lr": best})  # fmt: skip
    rest = [(r, g, choice[r][g]["lr"], s) for r in rules for g in gains for s in range(seeds)
            if s not in select_seeds]  # fmt: skip
    second = _pool_map(rest, cache, cfg, workers, "eprop-gain: seeds")
    for r in rules:
        for g in gains:
            lr = choice[r][g]["lr"]
            choice[r][g]["runs"] = sorted((d for d in first + second if d["rule"] == r and d["gain"] == g
                                           and d["lr"] == lr), key=lambda d: d["seed"])  # fmt: skip
    return {"config": {**cfg, "gains": list(gains), "lrs": list(lrs), "seeds": seeds, "full_grid": full_grid},
            "choice": choice, "lr_table": lr_table}


def gain_summary(sweep: dict, window: int = 50, start: int = 200, loss_threshold: float = 0.1) -> list[dict]:
    """Per rule and gain: best lr; the smoothed training loss at the end and averaged from ``start``
    (mean ± std over seeds); per seed, the first iteration whose smoothed loss is below
    ``loss_threshold`` (None: never); held-out accuracy and how many seeds reach 90%."""
    import numpy as np

    rows = []
    for rule, per_gain in sweep["choice"].items():
        for g, v in per_gain.items():
            c = np.array([smooth(d["loss"], window) for d in v["runs"]])
            after = c[:, start:].mean(1)
            to_threshold = [int(np.argmax(row <= loss_threshold)) + 1 if (row <= loss_threshold).any() else None
                            for row in c]  # fmt: skip
            acc = [d["accuracy"] for d in v["runs"] if d["accuracy"] is not None]
            rows.append({"rule": rule, "gain": g, "lr": v["lr"], "seeds": len(v["runs"]),
                         "final_loss": float(c[:, -1].mean()), "final_loss_std": float(c[:, -1].std()),
                         "mean_loss_after_start": float(after.mean()),
                         "mean_loss_after_start_std": float(after.std()),
                         "loss_threshold": loss_threshold, "iterations_to_threshold": to_threshold,
                         "accuracy": float(np.mean(acc)) if acc else None,
                         "accuracy_per_seed": acc, "seeds_at_90": int(sum(a >= 0.9 for a in acc))})  # fmt: skip
    return rows


def plot_gain_sweep(sweep: dict, out: Path, window: int = 50, start: int = 200) -> Path:
    """Two panels (BPTT, e-prop): seed-mean ± std of the smoothed training loss per initial gain."""

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np


    cfg = sweep["config"]
    rules = [r for r in ("bptt", "eprop") if r in sweep["choice"]]
    fig, axes = plt.subplots(1, len(rules), figsize=(5.2 * len(rules), 3.9), squeeze=False)
    colours = plt.cm.viridis(np.linspace(0.0, 0.9, len(cfg["gains"])))
    for ax, rule in zip(axes[0], rules, strict=True):
        top = 0.0
        for colour, (g, v) in zip(colours, sweep["choice"][rule].items(), strict=True):
            c = np.array([smooth(d["loss"], window) for d in v["runs"]])
            x = np.arange(1, c.shape[1] + 1)[start:]
            m, s = c.mean(0)[start:], c.std(0)[start:]
            solved = sum((d["accuracy"] or 0) >= 0.9 for d in v["runs"])
            ax.plot(x, m, color=colour, label=f"gain {g:g} (lr {v['lr']:g}; {solved}/{len(v['runs'])} ≥ 90%)")
            ax.fill_between(x, np.maximum(m - s, 0.0), m + s, color=colour, alpha=0.15, lw=0)
            top = max(top, float(np.percentile(m + s, 99)))
        ax.axhline(math.log(2.0), color="0.5", lw=0.8, ls=":", label="ln 2: a coin flip between the choices")
        ax.set_ylim(0.0, min(top * 1.05, 1.2))  # early spikes of unstable runs would flatten the rest
        ax.set_title({"bptt": "BPTT", "eprop": "e-prop (symmetric feedback, online)"}[rule])
        ax.set_xlabel("training iteration")
        ax.legend(fontsize=7.5, frameon=False)
    what = "decision period" if cfg.get("mask", "decision") == "decision" else "all steps"
    axes[0][0].set_ylabel(f"training loss (cross-entropy, {what};\n{window}-iteration moving mean)")
    protocol = "lr chosen per gain by the seed mean" if cfg.get("full_grid") else "lr chosen per gain on seed 0"
    fig.suptitle(f"Romo: {cfg['hidden']} ReLU units, tau {cfg['tau']:g} ms, dt {cfg['dt']:g} ms, batch "
                 f"{cfg['batch']}, Adam ({protocol}); mean ± std over {cfg['seeds']} seeds", fontsize=9)
    fig.tight_layout()
    return atomic_save_figure(fig, out, dpi=130)


@bench_app.command("eprop-gain")
def eprop_gain(
    gains: str = typer.Option("0.2,0.5,1.0,1.5", help="Initial recurrent gains."),
    lrs: str = typer.Option("1e-4,3e-4,1e-3,3e-3", help="Adam learning rates to choose from."),
    seeds: int = typer.Option(5, help="Seeds per gain."),
    iterations: int = typer.Option(1500, help="Training iterations per run."),
    hidden: int = typer.Option(64, help="Units."),
    batch: int = typer.Option(32, help="Trials per batch."),
    dt: float = typer.Option(20.0, help="Task step in ms."),
    tau: float = typer.Option(100.0, help="Unit time constant in ms (alpha = dt / tau)."),
    mask: str = typer.Option("decision", help="Romo's loss mask: decision (Schuessler et al.) or all."),
    full_grid: bool = typer.Option(False, help="Run every seed at every lr (else choose the lr on seed 0)."),
    workers: int = typer.Option(max(1, min(2, os.cpu_count() or 1)), help="Parallel training processes."),
    cache: str = typer.Option("runs/eprop_gain", help="Per-run JSON cache (resumes; delete to rerun)."),
    out: str = typer.Option("docs/figures/eprop_gain_romo.png", help="Figure path."),
    summary_out: str = typer.Option("docs/results/eprop_gain.json", help="Summary JSON path."),
    as_json: bool = json_option(),
) -> None:
    """Seed 001's headline: e-prop and BPTT loss curves on Romo for several initial gains (figure + table)."""
    from ..learning.checkpoint import atomic_write_json

    if seeds < 1 or iterations < 1 or workers < 1:
        raise ValueError("--seeds, --iterations and --workers must be positive")
    if iterations <= 200:
        raise ValueError("--iterations must exceed 200 (curves are shown from iteration 200, as in seed 001)")
    gain_list, lr_list = comma_list(gains, "--gains", float, 0.0), comma_list(lrs, "--lrs", float, 0.0)
    sweep = run_gain_sweep(gain_list, lr_list, seeds, iterations, hidden, batch, dt, tau, mask=mask,
                           full_grid=full_grid, workers=workers, cache=Path(cache))  # fmt: skip
    plot_gain_sweep(sweep, Path(out))
    rows = gain_summary(sweep)
    atomic_write_json(Path(summary_out), {"config": sweep["config"], "lr_table": sweep["lr_table"],
                                    "summary": rows})
    emit({f"{r['rule']}/gain={r['gain']:g}": f"lr {r['lr']:g}, loss(end) {r['final_loss']:.3f} ± "
          f"{r['final_loss_std']:.3f}, {r['seeds_at_90']}/{r['seeds']} seeds >= 90%, iterations to loss "
          f"< {r['loss_threshold']:g}: {r['iterations_to_threshold']}" for r in rows},
         as_json, f"seed 001 gain sweep -> {out}")  # fmt: skip
