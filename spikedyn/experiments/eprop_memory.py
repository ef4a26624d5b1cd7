"""e-prop's memory benchmark: peak memory and time per step of one gradient computation, online
e-prop/RFLO vs BPTT, for T in {100, 1000, 10000} steps (H = 256 units, batch 32).

Every configuration runs in a fresh Python process so that one measurement cannot inherit another's
memory. CPU: peak resident memory (``VmHWM``, reset with ``/proc/self/clear_refs`` after the model and
inputs are built); CUDA: ``torch.cuda.max_memory_allocated``. ``run(cfg, device=...)`` returns the rows;
``write(rows, out_dir, docs=...)`` writes ``results/eprop_memory.json`` and, when asked, replaces the e-prop
section of a markdown file (``docs/benchmarks.md`` when the docs are regenerated).

``spikedyn bench eprop-memory`` and ``benchmarks/eprop_memory.py`` call these functions.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..progress import track
from .base import ExperimentConfig

MEMORY_T = (100, 1000, 10000)
DOCS_BEGIN, DOCS_END = "<!-- eprop:begin -->", "<!-- eprop:end -->"
MODELS = ("lif", "alif", "rate")


class EpropMemoryConfig(ExperimentConfig):
    """Models (lif, alif: e-prop; rate: RFLO), sequence lengths T (steps), units H, batch B, torch threads."""

    models: tuple[str, ...] = MODELS
    lengths: tuple[int, ...] = MEMORY_T
    hidden: int = 256
    batch: int = 32
    threads: int = 1

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
    code = ("import json, sys; from spikedyn.experiments.eprop_memory import memory_worker; "
            "print(json.dumps(memory_worker(**json.loads(sys.argv[1]))))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code, json.dumps(kwargs)], capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"memory measurement {kwargs} failed: {tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(cfg: EpropMemoryConfig = EpropMemoryConfig(), device: Any = None, progress: bool = True) -> list[dict]:
    """e-prop vs BPTT for every model and length, each in its own process (``device``: cpu, cuda, cuda:N)."""
    from ..device import resolve_device

    for m in cfg.models:
        if m not in MODELS:
            raise ValueError(f"unknown model {m!r}; choose from {', '.join(MODELS)}")
    dev = str(resolve_device(device))
    cases = [(m, T, r) for m in cfg.models for T in cfg.lengths for r in ("eprop", "bptt")]
    return [measure_in_subprocess(kind=m, rule=r, T=T, hidden=cfg.hidden, batch=cfg.batch, device=dev,
                                  threads=cfg.threads)
            for m, T, r in track(cases, "eprop-memory", unit="measurement", enabled=progress)]  # fmt: skip


def write(rows: list[dict], out_dir: Path, docs: Path | None = None, command: str = "spikedyn bench eprop-memory"
          ) -> Path:  # fmt: skip
    """``out_dir/results/eprop_memory.json`` (rows and flatness); with ``docs``, also replace the e-prop section of
    that markdown file. Returns the JSON path."""
    from ..atomic import atomic_write_json

    path = Path(out_dir) / "results" / "eprop_memory.json"
    atomic_write_json(path, {"rows": rows, "flatness": flatness(rows)})
    if docs is not None:
        write_docs_section(Path(docs), memory_section(rows, command))
    return path


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
    from ..atomic import atomic_write_bytes

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
        f"Produced by `{command}` (also `python benchmarks/eprop_memory.py`). On a CUDA machine "
        "`spikedyn bench eprop-memory --device cuda` adds GPU numbers.",
        "",
        "The e-prop training results (`spikedyn bench eprop-accuracy`) and the initial-gain figure of Liu et al. "
        "(`spikedyn bench eprop-gain`, `docs/figures/eprop_gain_romo.png`) are in [eprop.md](eprop.md).",
    ])  # fmt: skip

