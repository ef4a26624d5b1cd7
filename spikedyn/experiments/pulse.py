"""The pulse experiment of McMahan et al. 2024 (Fig. 4): transient vs stable integrators.

A trained evidence-integration network (RDM, CDI, N-CDI) receives a noise-free pulse of evidence ``+A``
or ``-A`` for ``on_ms``; then the evidence is turned off (set to 0; on CDI / N-CDI the context input stays
on) for ``off_ms``. A *stable* integrator holds the sign of the pulse in its output indefinitely (the
state relaxes to one of several zero-input attractors); a *transient* integrator forgets it (one
zero-input attractor, approached slowly along a line of slow points).

``pulse_experiment(model)`` is a pure function (no files, no global state; both trials start from the
model's own initial state drawn with ``seed``): it returns a ``PulseRecord`` with

- ``retention = |y_end(+A) - y_end(-A)| / |y_off(+A) - y_off(-A)|``: how much of the output separation
  at the moment the input turns off is left at the end (``y_off``: the last step with input on,
  ``y_end``: the last step);
- ``integrator``: "stable" when ``retention >= threshold`` (default 0.5) and both signs are kept, else
  "transient";
- ``attractors_at_zero``: the number of stable fixed points at the zero-evidence input
  (``spikedyn.analysis.fixed_points``; spiking bodies through their rate-equivalent map), and
  ``consistent``: whether the two criteria agree (stable <=> more than one attractor), as the paper found;
- ``decay_ms``: the time after the input turns off at which the separation first falls below ``1/e`` of its
  value at that moment (None if it never does), and the output traces for plots.

The default off period (5 s) is long on purpose: a transient integrator's slow mode can have a time
constant of about a second (the RDM nets in docs/analysis.md: spectral radius 0.988 per 10 ms step, tau
~ 0.8 s), so a short off period would mistake slow forgetting for memory.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from spikedyn.analysis.fixed_points import FixedPoints, fixed_points
from spikedyn.analysis.topology import probe_input
from spikedyn.tasks.decision import COHERENCE_MAX  # McMahan et al. 2024 Sec. 2.2: the largest mean evidence

from .base import ExperimentConfig, default_out

__all__ = ["PulseConfig", "PulseRecord", "classify_integrators", "plot", "pulse_experiment", "run"]


@dataclass(frozen=True)
class PulseRecord:
    """What ``pulse_experiment`` measured (module doc). Times in ms; outputs are the first readout unit."""

    integrator: str
    retention: float
    attractors_at_zero: int
    consistent: bool
    decay_ms: float | None
    y_off: tuple[float, float]
    y_end: tuple[float, float]
    amplitude: float
    on_ms: float
    off_ms: float
    dt_ms: float
    threshold: float
    trace_pos: list[float] = field(repr=False)
    trace_neg: list[float] = field(repr=False)
    fixed_points_zero: dict[str, Any] = field(repr=False, default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers and lists (JSON-ready)."""
        return asdict(self)


def _steps(ms: float, dt: float, name: str) -> int:
    n = int(round(ms / dt))
    if n < 1:
        raise ValueError(f"{name} = {ms} ms is shorter than one step (dt = {dt} ms)")
    return n


@torch.no_grad()
def pulse_experiment(
    model: Any,
    *,
    amplitude: float = COHERENCE_MAX,
    on_ms: float = 375.0,
    off_ms: float = 5000.0,
    context: int = 0,
    threshold: float = 0.5,
    output: int = 0,
    fixed_point_inputs: Any = None,
    n_inits: int = 128,
    seed: int = 0,
    fps: FixedPoints | None = None,
    dt_ms: float | None = None,
) -> PulseRecord:
    """Pulse ``+amplitude`` / ``-amplitude`` for ``on_ms``, then zero evidence for ``off_ms`` (module doc).

    Args:
        model: a trained body (rate, GRU, LSTM, spiking) of an integration task (1 input, or the CDI/N-CDI
            layout; ``context`` picks the context whose stream gets the pulse).
        amplitude: pulse height (input units; default the task's largest coherence, 0.1857).
        on_ms, off_ms: pulse and silence durations in ms (``model.dt`` ms per step).
        threshold: retention at or above which the net is a stable integrator.
        output: which readout unit to follow.
        fixed_point_inputs: trials ``[T, B, I]`` whose states seed the zero-input fixed-point search
            (default: trajectories under zero evidence); n_inits, seed: passed to ``fixed_points``.
        fps: the zero-input ``FixedPoints`` if already computed (skips the search).
        dt_ms: the length of one input step in ms (default ``model.dt``; give the task's ``dt`` for a model
            built without it).
    """
    if not amplitude > 0 or not 0 < threshold < 1:
        raise ValueError(f"need amplitude > 0 and 0 < threshold < 1, got {amplitude}, {threshold}")
    if not 0 <= output < model.n_out:
        raise ValueError(f"output must be in [0, {model.n_out}), got {output}")
    dt = float(model.dt if dt_ms is None else dt_ms)
    if not dt > 0:
        raise ValueError(f"dt_ms must be > 0, got {dt_ms}")
    T_on, T_off = _steps(on_ms, dt, "on_ms"), _steps(off_ms, dt, "off_ms")
    dtype = next(iter(model.parameters())).dtype
    device = next(iter(model.parameters())).device
    u_pos, u_neg, u_zero = (probe_input(model.n_in, p, context=context).to(device=device, dtype=dtype)
                            for p in (amplitude, -amplitude, 0.0))  # fmt: skip
    ys = []
    for u_on in (u_pos, u_neg):  # both trials from the same initial state (the model's own, seeded)
        u = torch.cat([u_on[None, None].expand(T_on, 1, -1), u_zero[None, None].expand(T_off, 1, -1)]).contiguous()
        state = model.init_state(1, generator=torch.Generator(device=device).manual_seed(seed))
        ys.append(model(u, state=state).y[:, 0, output].double())
    y = torch.stack(ys, dim=1)  # [T, 2]
    sep = (y[:, 0] - y[:, 1]).abs()
    s_off, s_end = float(sep[T_on - 1]), float(sep[-1])
    retention = s_end / s_off if s_off > 0 else 0.0
    keeps_sign = bool(y[-1, 0] > y[-1, 1]) == bool(y[T_on - 1, 0] > y[T_on - 1, 1])
    stable = retention >= threshold and keeps_sign
    below = (sep[T_on:] < s_off / math.e).nonzero()
    decay_ms = float((int(below[0]) + 1) * dt) if below.numel() else None
    if fps is None:
        fps = fixed_points(model, u_zero, n_inits=n_inits, inputs=fixed_point_inputs, seed=seed, progress=False)
    n_attr = fps.n_stable
    return PulseRecord(
        integrator="stable" if stable else "transient", retention=float(retention), attractors_at_zero=n_attr,
        consistent=stable == (n_attr > 1), decay_ms=decay_ms,
        y_off=(float(y[T_on - 1, 0]), float(y[T_on - 1, 1])), y_end=(float(y[-1, 0]), float(y[-1, 1])),
        amplitude=float(amplitude), on_ms=T_on * dt, off_ms=T_off * dt, dt_ms=dt, threshold=float(threshold),
        trace_pos=y[:, 0].tolist(), trace_neg=y[:, 1].tolist(), fixed_points_zero=fps.to_dict(),
    )  # fmt: skip


def classify_integrators(models: list[Any], **kwargs: Any) -> list[PulseRecord]:
    """``pulse_experiment`` for each model (e.g. a Population's members, ``pop.members()``)."""
    from spikedyn.progress import track

    return [pulse_experiment(m, **kwargs) for m in track(models, "pulse experiment", unit="nets")]


# -- the experiment: RDM nets trained at several input-noise levels (McMahan et al. 2024 Fig. 3-4) --------
class PulseConfig(ExperimentConfig):
    """Train ``nets`` RDM networks (McMahan et al. 2024's body, ``mcmahan2024`` preset, BPTT) per input-noise
    variance, then run ``pulse_experiment`` on each. Training is shortened (Adam ``lr``, ``batch_size``
    trials, at most ``steps`` steps, stopping at ``target_accuracy`` on ``eval_trials`` held-out trials)."""

    task: str = "rdm"
    noise_vars: tuple[float, ...] = (0.1, 1.0)
    nets: int = 3
    hidden: int = 50
    steps: int = 400
    batch_size: int = 64
    lr: float = 5e-3
    target_accuracy: float = 0.9
    eval_trials: int = 500
    seed: int = 0
    off_ms: float = 5000.0


def run(cfg: PulseConfig = PulseConfig(), out: Path | None = None, device: Any = None) -> list[dict[str, Any]]:
    """Train, pulse, and write ``OUT/pulse.json`` and ``OUT/pulse.png`` (OUT: ``runs/pulse`` by default)."""
    import numpy as np

    import spikedyn
    from spikedyn.learning import presets

    from ..atomic import atomic_write_json

    out = default_out("pulse") if out is None else Path(out)
    out.mkdir(parents=True, exist_ok=True)
    preset = presets.get("mcmahan2024")
    rows = []
    for var in cfg.noise_vars:
        task = preset.task(cfg.task, noise_var=var)
        for i in range(cfg.nets):
            seed = cfg.seed + i
            net = preset.build_model(task, seed=seed, hidden=cfg.hidden)
            res = spikedyn.train(net, task, steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, seed=seed,
                                 eval_every=25, eval_trials=cfg.eval_trials, target_accuracy=cfg.target_accuracy,
                                 progress=True, device=device)  # fmt: skip
            trials = task.sample(32, np.random.default_rng(10_000 + seed))
            rec = pulse_experiment(res.model, fixed_point_inputs=trials, dt_ms=task.dt, off_ms=cfg.off_ms, seed=seed)
            rows.append({"noise_var": var, "seed": seed, "accuracy": float(res.final.get("accuracy", float("nan"))),
                         "steps": int(res.final.get("step", cfg.steps)), **rec.to_dict()})  # fmt: skip
    atomic_write_json(out / "pulse.json", {"config": cfg.model_dump(), "nets": rows})
    plot(rows, out / "pulse.png")
    return rows


def plot(rows: list[dict[str, Any]], path: Path) -> Path:
    """Output traces of every net after +-pulses (one panel per noise level), as in McMahan et al. Fig. 4a, d."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..atomic import atomic_save_figure

    levels = sorted({r["noise_var"] for r in rows})
    fig, axes = plt.subplots(1, len(levels), figsize=(4.2 * len(levels), 3.2), squeeze=False, sharey=True)
    for ax, var in zip(axes[0], levels):
        for r in (r for r in rows if r["noise_var"] == var):
            t = [(k + 1) * r["dt_ms"] / 1000.0 for k in range(len(r["trace_pos"]))]
            style = "-" if r["integrator"] == "stable" else "--"
            ax.plot(t, r["trace_pos"], style, color="tab:red", lw=1)
            ax.plot(t, r["trace_neg"], style, color="tab:blue", lw=1)
        ax.axvline(rows[0]["on_ms"] / 1000.0, color="k", lw=0.8, ls=":")
        kinds = [f"{r['integrator'][0]}{r['attractors_at_zero']}" for r in rows if r["noise_var"] == var]
        ax.set_title(f"noise variance {var:g}: " + " ".join(kinds), fontsize=9)
        ax.set_xlabel("time (s); input off at the dotted line")
    axes[0][0].set_ylabel("output y")
    fig.suptitle("Pulse experiment (McMahan et al. 2024 Fig. 4): solid = stable, dashed = transient; "
                 "label = type + zero-input attractors", fontsize=9)  # fmt: skip
    fig.tight_layout()
    return atomic_save_figure(fig, Path(path))


def main(argv: list[str] | None = None) -> int:
    """``python -m spikedyn.experiments.pulse [--out DIR] [--noise 0.1,1.0] [--nets 3] [--steps 400]``."""
    import argparse
    import json

    ap = argparse.ArgumentParser(prog="python -m spikedyn.experiments.pulse", description=PulseConfig.__doc__)
    ap.add_argument("--out", type=Path, default=None, help="output directory (default runs/pulse)")
    ap.add_argument("--noise", default="0.1,1.0", help="input-noise variances, comma-separated")
    ap.add_argument("--nets", type=int, default=3, help="networks per noise level")
    ap.add_argument("--steps", type=int, default=400, help="at most this many training steps per net")
    ap.add_argument("--hidden", type=int, default=50, help="units per net")
    args = ap.parse_args(argv)
    try:
        noise = tuple(float(v) for v in args.noise.split(","))
        cfg = PulseConfig(noise_vars=noise, nets=args.nets, steps=args.steps, hidden=args.hidden)
    except ValueError as e:
        ap.exit(2, f"error: {str(e).splitlines()[0]}\n")
    rows = run(cfg, args.out)
    keep = ("noise_var", "seed", "accuracy", "steps", "integrator", "retention", "attractors_at_zero", "consistent",
            "decay_ms")  # fmt: skip
    print(json.dumps([{k: r[k] for k in keep} for r in rows], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
