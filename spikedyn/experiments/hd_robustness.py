"""Head-direction robustness under the perturbations that can break it (Park et al. Sec. 2.10-2.11).

Three realisations of the oscillator circuit and the ring attractor, each perturbed by one class of frozen
(D-type) perturbation at a time, ``n`` realisations per level; for each realisation the drift of the held
heading in darkness and the path-integration error under OU angular velocity (the same perturbed instance
in both). Angles in deg, durations in s, latencies in steps of the circuit's ``dt`` (0.125 ms).

Models:

* ``digital``: :class:`HeadDirectionCircuit`, memoryless relays and velocity logic (spikedyn's design);
* ``digital_tau``: the same with finite-time-constant relay stages (``relay_tau``), whose weights set their
  spike latency;
* ``intrinsic``: :class:`IntrinsicHeadDirectionCircuit`, the paper's pacemaker pairs locked by tau/2 delays;
* ``ring``: :class:`RingAttractor` (Zhang 1996, calibrated).

Perturbation classes (the ring's analogue in brackets):

* ``weight``: every synapse ``w (1 + sigma xi)`` [every W_ij, R_ij];
* ``latency``: every axonal synapse's latency ``+ round(sigma xi)`` steps, sigma in steps [per-neuron axonal
  delays ``sigma |xi|`` x 0.125 ms, linearly interpolated];
* ``mismatch``: the - oscillator's period ``D + m`` steps (m / D of the period) [a static asymmetric weight
  component ``(m / D) R``: the same fraction of the ring's rotation weights, at rest];
* ``tau``: every finite synaptic/membrane time constant ``tau (1 + sigma xi)`` (detectors; the relay stages
  of ``digital_tau``) [every neuron's tau];
* ``bias``: every bias ``b (1 + sigma xi)`` (the tonic N neurons of the digital circuits; the pacemakers of
  ``intrinsic``) [every neuron's uniform drive].

Drift is measured on the circuits' oscillator phase (an integer number of steps of phase: a drift of 0
steps in ``T`` s means ``|drift| < quantum / T``, the detection floor) and on the ring's decoded bump
(floor: ``RING_FLOOR`` = 0.001 deg/s, far above the float32 round-off of the unperturbed ring, ~1e-6
deg/s). Medians come with percentile-bootstrap 95% confidence intervals over the ``n`` realisations. No
ratio is taken against a floored value.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..circuits.head_direction import HeadDirectionCircuit
from ..circuits.intrinsic import IntrinsicHeadDirectionCircuit
from ..circuits.readout import drift_deg_per_s
from ..circuits.ring_attractor import RingAttractor
from ..tasks.head_direction import ou_velocity

DT = 1.0  # ms per velocity sample
RING_FLOOR = 1e-3  # deg/s: drift of the ring counted as such (its decoding round-off is ~1e-6 deg/s)
MODELS = ("digital", "digital_tau", "intrinsic", "ring")
LABELS = {"digital": "digital (relays + logic)", "digital_tau": "digital, finite-tau relays",
          "intrinsic": "intrinsic oscillators (paper)", "ring": "ring attractor"}
CLASSES: dict[str, dict[str, Any]] = {
    "weight": {"levels": (0.0, 0.05, 0.1, 0.2), "unit": "sigma (relative)"},
    "latency": {"levels": (0.0, 0.25, 0.5, 1.0), "unit": "std (steps of 0.125 ms)"},
    "mismatch": {"levels": (-2.0, -1.0, 0.0, 1.0, 2.0), "unit": "steps (fraction = m / 80)"},
    "tau": {"levels": (0.0, 0.05, 0.1, 0.2), "unit": "sigma (relative)"},
    "bias": {"levels": (0.0, 0.002, 0.005, 0.01, 0.02), "unit": "sigma (relative)"},
}


@dataclass(frozen=True)
class RobustnessConfig:
    """What ``spikedyn circuit hd-robustness`` measures (durations in s)."""

    duration: float = 10.0
    realisations: int = 20
    classes: tuple[str, ...] = tuple(CLASSES)
    models: tuple[str, ...] = MODELS
    levels: dict[str, tuple[float, ...]] = field(default_factory=dict)  # overrides CLASSES' levels
    period: float = 10.0
    dt: float = 0.125
    relay_tau: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        bad = [c for c in self.classes if c not in CLASSES] + [m for m in self.models if m not in MODELS]
        if bad:
            raise ValueError(f"unknown class/model {bad}; classes: {list(CLASSES)}, models: {list(MODELS)}")
        if self.duration < 1 or self.realisations < 2:
            raise ValueError("duration must be >= 1 s and realisations >= 2")

    def levels_of(self, cls: str) -> tuple[float, ...]:
        return tuple(self.levels.get(cls, CLASSES[cls]["levels"]))


def build_models(cfg: RobustnessConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in cfg.models:
        if m == "digital":
            out[m] = HeadDirectionCircuit(period=cfg.period, dt=cfg.dt)
        elif m == "digital_tau":
            out[m] = HeadDirectionCircuit(period=cfg.period, dt=cfg.dt, relay_tau=cfg.relay_tau)
        elif m == "intrinsic":
            out[m] = IntrinsicHeadDirectionCircuit(period=cfg.period, dt=cfg.dt)
        else:
            out[m] = RingAttractor()
    return out


# -- perturbations ----------------------------------------------------------------------------------------
def circuit_perturbation(c: HeadDirectionCircuit, cls: str, level: float, n: int, seed: int) -> dict:
    """``run`` keyword arguments for ``n`` frozen realisations of one perturbation of a circuit."""
    net = c.network()
    out: dict[str, Any] = {"weights": np.broadcast_to(net.weight, (n, net.n_synapses)).copy(),
                           "latencies": np.broadcast_to(net.latency, (n, net.n_synapses)).copy(),
                           "neurons": {k: np.broadcast_to(getattr(net, k), (n, net.n_neurons)).copy()
                                       for k in ("du", "dv", "bias")}}
    if level == 0 and cls != "mismatch":
        return out
    if cls == "weight":
        out["weights"] = c.perturbed_weights(level, n, seed)
    elif cls == "latency":
        out["latencies"] = c.perturbed_latencies(level, n, seed)
    elif cls == "mismatch":
        out["latencies"] = np.broadcast_to(c.mismatched_latencies(int(level)), (n, net.n_synapses)).copy()
    elif cls == "tau":
        out["neurons"].update(c.heterogeneous_time_constants(level, n, seed))
    elif cls == "bias":
        out["neurons"].update(c.heterogeneous_bias(level, n, seed))
    return out


def ring_perturbation(r: RingAttractor, cls: str, level: float, n: int, seed: int, circuit_dt: float,
                      circuit_steps: int) -> dict:
    """``RingAttractor.run`` keyword arguments for ``n`` frozen realisations of the ring's analogue."""
    rng = np.random.default_rng(seed)
    N = r.n
    out: dict[str, Any] = {"weights": None, "tau": np.full((n, N), r.tau), "drive": np.full((n, N), r.drive),
                           "delays": None, "gamma_offset": np.zeros(n)}
    if cls == "weight":  # every level batched with its own [n, N, N] weights (level 0: the exact ones)
        out["weights"] = (r.perturbed_weights(level, n, seed) if level > 0 else
                          (np.broadcast_to(r.W, (n, N, N)).copy(), np.broadcast_to(r.R, (n, N, N)).copy()))
    elif cls == "latency":
        out["delays"] = level * circuit_dt * np.abs(rng.standard_normal((n, N)))
    elif cls == "mismatch":
        out["gamma_offset"] = np.full(n, level / circuit_steps)
    elif cls == "tau":
        out["tau"] = r.tau * np.maximum(1.0 + level * rng.standard_normal((n, N)), 0.05)
    elif cls == "bias":
        out["drive"] = r.drive * (1.0 + level * rng.standard_normal((n, N)))
    return out


def _stack(parts: list[dict]) -> dict:
    out: dict[str, Any] = {}
    for key in parts[0]:
        vals = [p[key] for p in parts]
        if isinstance(vals[0], dict):
            out[key] = {k: np.concatenate([v[k] for v in vals]) for k in vals[0]}
        elif any(v is None for v in vals):
            out[key] = None
        elif isinstance(vals[0], tuple):
            out[key] = tuple(np.concatenate([v[i] for v in vals]) for i in range(len(vals[0])))
        else:
            out[key] = np.concatenate(vals)
    return out


# -- measuring --------------------------------------------------------------------------------------------
def initial_headings(n: int, seed: int) -> np.ndarray:
    """``n`` initial headings (rad), uniform."""
    return np.random.default_rng([seed, 1]).uniform(0, 2 * np.pi, n)


def ou(duration_s: float, n: int, seed: int, std_deg_s: float = 120.0, tau_s: float = 0.08) -> np.ndarray:
    """OU angular velocity [T, n] (rad/s) at DT ms (FIELD_NOTES: 120 deg/s std, 0.08 s coherence)."""
    return ou_velocity(int(round(duration_s * 1000 / DT)), DT, np.random.default_rng([seed, 2]), std_deg_s,
                       tau_s, batch=n)


def settle_ms(model: Any) -> float:
    """Time after which a readout reflects its state: one period plus 5 filter constants (circuits), the
    same 110 ms for the ring (its cue has already settled it)."""
    if isinstance(model, HeadDirectionCircuit):
        return model.period + 5 * model.readout_tau
    return 110.0


def phase_drift_deg_s(phase: np.ndarray, start_ms: float) -> np.ndarray:
    """Net change of the oscillators' relative phase (deg/s) from ``start_ms`` to the end, unwrapped
    sample by sample; NaN where an oscillator stopped (phase undefined at the end)."""
    k0 = int(round(start_ms / DT))
    x = phase[k0:]
    dead = np.isnan(x).any(axis=0)
    path = np.unwrap(np.where(np.isnan(x), 0.0, x), axis=0)
    seconds = (x.shape[0] - 1) * DT / 1000.0
    return np.where(dead, np.nan, np.rad2deg(path[-1] - path[0]) / seconds)


def measure(model: Any, kind: str, cls: str, levels: tuple[float, ...], n: int, duration_s: float, seed: int,
            circuit_dt: float = 0.125, circuit_steps: int = 80, device: Any = None,
            progress: bool | None = None) -> dict:
    """One batched run of ``model`` under every level of ``cls``: ``n`` realisations per level, each in
    darkness and under its own OU trajectory (both from the same frozen perturbation). Arrays [L, n]."""
    L, T = len(levels), int(round(duration_s * 1000 / DT))
    seeds = [seed + 1000 * i + 97 * list(CLASSES).index(cls) for i in range(L)]
    if kind == "ring":
        parts = [ring_perturbation(model, cls, lv, n, s, circuit_dt, circuit_steps) for lv, s in zip(levels, seeds,
                                                                                                   strict=True)]
    else:
        parts = [circuit_perturbation(model, cls, lv, n, s) for lv, s in zip(levels, seeds, strict=True)]
    p = _stack(parts + parts)  # the first L*n columns in darkness, the next L*n under OU velocity
    B = 2 * L * n
    th0 = np.tile(initial_headings(n, seed), 2 * L)
    w = np.concatenate([np.zeros((T, L * n)), ou(duration_s, L * n, seed + 7)], axis=1)
    if kind == "ring":
        res = model.run(w, DT, th0, weights=p["weights"], tau=p["tau"], drive=p["drive"], delays=p["delays"],
                        gamma_offset=p["gamma_offset"], device=device, progress=progress)
    else:
        res = model.run(w, DT, th0, weights=p["weights"], latencies=p["latencies"], neurons=p["neurons"],
                        device=device, progress=progress)
    k0 = settle_ms(model)
    dark, light = slice(0, B // 2), slice(B // 2, B)
    decoded_drift = np.abs(drift_deg_per_s(res.decoded[:, dark], DT, k0))
    rmse = res.rmse_deg(k0)[light]
    out = {"levels": list(levels), "decoded_drift_deg_s": decoded_drift.reshape(L, n),
           "rmse_deg": rmse.reshape(L, n)}
    if res.phase_heading is not None:
        pd = np.abs(phase_drift_deg_s(res.phase_heading[:, dark], k0))
        dead_light = np.isnan(res.phase_heading[int(k0):, light]).any(axis=0)
        out["phase_drift_deg_s"] = pd.reshape(L, n)
        out["failed"] = (np.isnan(pd) | dead_light).reshape(L, n)
        out["floor_deg_s"] = float(model.quantum_deg / ((T - int(k0) - 1) * DT / 1000.0))
        out["floor_note"] = f"below one quantum ({model.quantum_deg:g} deg) in {(T - k0) / 1000:.1f} s"
    else:
        out["failed"] = np.isnan(decoded_drift).reshape(L, n) | np.isnan(rmse).reshape(L, n)
    return out


def bootstrap_median_ci(x: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Median of ``x`` and its percentile-bootstrap 95% confidence interval (NaNs dropped)."""
    x = np.asarray(x, dtype=np.float64)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    meds = np.median(x[rng.integers(0, x.size, (n_boot, x.size))], axis=1)
    return float(np.median(x)), float(np.percentile(meds, 2.5)), float(np.percentile(meds, 97.5))


def summarise(raw: dict) -> list[dict]:
    """One row per (class, level, model): medians with 95% CIs of drift and RMSE over the realisations
    that did not fail, failures counted, and whether the drift is below the detection floor."""
    rows = []
    floors: dict[str, list[float]] = {}
    for per_model in raw["classes"].values():
        for model, r in per_model.items():
            if model == "ring" and "floor_deg_s" not in r:  # the unperturbed ring's largest drift
                i0 = [i for i, lv in enumerate(r["levels"]) if lv == 0]
                floors.setdefault(model, [])
                if i0:
                    floors[model].append(float(np.nanmax(r["decoded_drift_deg_s"][i0[0]])))
    # the unperturbed ring's largest drift is float32 round-off (~1e-6 deg/s); count drift from RING_FLOOR
    ring_floor = max([RING_FLOOR] + floors.get("ring", []))
    for cls, per_model in raw["classes"].items():
        for model, r in per_model.items():
            drift = np.asarray(r.get("phase_drift_deg_s", r["decoded_drift_deg_s"]), dtype=np.float64)
            floor = r.get("floor_deg_s", ring_floor)
            note = r.get("floor_note", f"{ring_floor:.2g} deg/s (the unperturbed ring's largest "
                                       f"drift is {max(floors.get('ring', [0.0])):.1g} deg/s, float32 round-off)")
            for i, lv in enumerate(r["levels"]):
                failed = np.asarray(r["failed"][i], bool)
                d = np.where(failed, np.nan, drift[i])
                e = np.where(failed, np.nan, np.asarray(r["rmse_deg"][i], dtype=np.float64))
                dm, dlo, dhi = bootstrap_median_ci(d)
                em, elo, ehi = bootstrap_median_ci(e)
                ok = ~np.isnan(d)
                rows.append({
                    "class": cls, "level": lv, "model": model, "realisations": int(failed.size),
                    "failed": int(failed.sum()),
                    "drift_median": dm, "drift_ci": [dlo, dhi],
                    "drift_max": float(np.max(d[ok])) if ok.any() else float("nan"),
                    "drifting": int(np.sum(d[ok] > floor)),
                    "drift_median_of_drifting": float(np.median(d[ok][d[ok] > floor])) if np.any(d[ok] > floor)
                    else float("nan"),
                    "below_floor": bool(ok.any() and np.all(d[ok] <= floor)),
                    "floor_deg_s": floor, "floor_note": note,
                    "rmse_median": em, "rmse_ci": [elo, ehi],
                    "decoded_drift_median": float(np.nanmedian(np.where(failed, np.nan, r["decoded_drift_deg_s"][i])))
                    if np.any(~failed) else float("nan"),
                })  # fmt: skip
    return rows


def run(cfg: RobustnessConfig = RobustnessConfig(), device: Any = None, log: Callable[[str], None] = print,
        progress: bool | None = None) -> dict:
    """Every (model, class) of ``cfg`` on ``device`` (cpu, cuda, cuda:N; default cpu): raw per-realisation
    arrays and the summary rows."""
    from ..device import resolve_device

    device = str(resolve_device(device))
    t_start = time.perf_counter()
    models = build_models(cfg)
    circuit_steps = int(round(cfg.period / cfg.dt))
    raw: dict[str, Any] = {"config": asdict(cfg), "classes": {}}
    jobs = [(c, m) for c in cfg.classes for m in cfg.models]
    for i, (cls, name) in enumerate(jobs):
        levels = cfg.levels_of(cls)
        log(f"[{i + 1}/{len(jobs)}] {cls}: {LABELS[name]}, levels {list(levels)} x {cfg.realisations} "
            f"realisations x {cfg.duration:g} s (dark + OU) ...")
        kind = "ring" if name == "ring" else "circuit"
        raw["classes"].setdefault(cls, {})[name] = measure(
            models[name], kind, cls, levels, cfg.realisations, cfg.duration, cfg.seed, cfg.dt, circuit_steps,
            device=device, progress=progress)
    margins = {}
    if "digital_tau" in models:
        lo, hi = models["digital_tau"].relay_weight_margin
        margins["digital_tau_relay_weight"] = [lo, hi]
    if "intrinsic" in models:
        margins["intrinsic_bias"] = models["intrinsic"].bias_margin
    raw["margins"] = margins
    raw["models"] = {k: repr(v) for k, v in models.items()}
    raw["rows"] = summarise(raw)
    raw["seconds"] = round(time.perf_counter() - t_start, 1)
    return raw


# -- writing ----------------------------------------------------------------------------------------------
def _fmt(x: float, ci: list[float] | None = None, digits: int = 3) -> str:
    if x != x:  # NaN
        return "-"
    s = f"{x:.{digits}g}"
    if ci is not None and ci[0] == ci[0]:
        s += f" [{ci[0]:.{digits}g}, {ci[1]:.{digits}g}]"
    return s


def markdown(res: dict) -> str:
    """Tables: one per perturbation class, a row per level, drift and RMSE of each model."""
    cfg = res["config"]
    L = [f"<!-- written by `spikedyn circuit hd-robustness` (duration {cfg['duration']:g} s, "
         f"{cfg['realisations']} realisations, seed {cfg['seed']}, {res['seconds']:.0f} s) -->", ""]
    by = {(r["class"], r["level"], r["model"]): r for r in res["rows"]}
    L += summary_table(res) + [""]
    for cls in cfg["classes"]:
        models = [m for m in cfg["models"] if m in res["classes"].get(cls, {})]
        levels = res["classes"][cls][models[0]]["levels"]
        L += [f"**{cls}** ({CLASSES[cls]['unit']}): drift in darkness (deg/s) and path-integration RMSE "
              f"(deg), median [95% CI] over realisations; 'n': realisations drifting above the floor "
              f"(+ stopped: an oscillator died)", "",
              "| level | " + " | ".join(f"{LABELS[m]} drift | RMSE | n" for m in models) + " |",
              "| --- |" + " --- | --- | --- |" * len(models)]
        for lv in levels:
            cells = []
            for m in models:
                r = by[(cls, lv, m)]
                drift = ("0 (< floor)" if r["below_floor"] and r["drift_median"] == r["drift_median"]
                         else _fmt(r["drift_median"], r["drift_ci"]))
                n = f"{r['drifting']}/{r['realisations']}" + (f" (+{r['failed']} stopped)" if r["failed"] else "")
                cells += [drift, _fmt(r["rmse_median"], r["rmse_ci"]), n]
            L.append(f"| {lv:g} | " + " | ".join(cells) + " |")
        L.append("")
    floors = {r["model"]: r["floor_note"] for r in res["rows"]}
    L += ["Detection floors: " + "; ".join(f"{LABELS[m]}: {note}" for m, note in floors.items()) + ".", ""]
    if res.get("margins"):
        L += ["Margins: " + ", ".join(f"{k} = {np.round(np.asarray(v, dtype=float), 4).tolist()}"
                                      for k, v in res["margins"].items()), ""]
    return "\n".join(L) + "\n"


def summary_table(res: dict) -> list[str]:
    """One table, a row per class, a column per model: the largest level at which no realisation drifts
    above the floor (or stops), and the first level at which some do (how many, median drift)."""
    cfg = res["config"]
    models = [m for m in cfg["models"] if any(m in res["classes"].get(c, {}) for c in cfg["classes"])]
    by = {(r["class"], r["level"], r["model"]): r for r in res["rows"]}
    L = ["**Summary**: per perturbation class, the largest size at which no realisation drifts (or stops), "
         "and the first size at which some do: how many of the realisations drift, and the median drift of "
         "those (deg/s)", "",
         "| class (size) | " + " | ".join(LABELS[m] for m in models) + " |",
         "| --- |" + " --- |" * len(models)]
    for cls in cfg["classes"]:
        cells = []
        for m in models:
            if m not in res["classes"].get(cls, {}):
                cells.append("-")
                continue
            levels = sorted(res["classes"][cls][m]["levels"], key=lambda x: (abs(x), x))
            held = [lv for lv in levels if by[(cls, lv, m)]["drifting"] == 0 and by[(cls, lv, m)]["failed"] == 0]
            bad = [lv for lv in levels if lv not in held]
            if not bad:
                cells.append(f"holds at all sizes (up to {max(levels, key=abs):g})")
                continue
            first = min(bad, key=abs)
            same = [lv for lv in bad if abs(lv) == abs(first)]
            parts = []
            for lv in same:
                r = by[(cls, lv, m)]
                stopped = f", {r['failed']} stopped" if r["failed"] else ""
                parts.append(f"{lv:g} ({r['drifting']}/{r['realisations']} drift, median "
                             f"{_fmt(r['drift_median_of_drifting'])}{stopped})")
            below = [lv for lv in held if abs(lv) < abs(first)]
            lead = f"holds to {max(below, key=abs):g}; " if below and max(below, key=abs) != 0 else ""
            extra = [f"{lv:g} holds" for lv in held if abs(lv) >= abs(first)]
            cells.append(lead + "fails at " + ", ".join(parts) + ("; " + ", ".join(extra) if extra else ""))
        L.append(f"| {cls} ({CLASSES[cls]['unit']}) | " + " | ".join(cells) + " |")
    return L


def figure(res: dict, path: Path) -> Path:
    """Drift and RMSE against perturbation size, one row per class, every model (median and 95% CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..atomic import atomic_save_figure

    cfg = res["config"]
    classes = cfg["classes"]
    fig, axes = plt.subplots(len(classes), 2, figsize=(9, 2.4 * len(classes)), squeeze=False)
    by = {(r["class"], r["level"], r["model"]): r for r in res["rows"]}
    colors = {"digital": "tab:red", "digital_tau": "tab:orange", "intrinsic": "tab:purple", "ring": "tab:blue"}
    styles = {"digital": "o-", "digital_tau": "s--", "intrinsic": "^-.", "ring": "d-"}
    offset = {"digital": -1.5, "digital_tau": -0.5, "intrinsic": 0.5, "ring": 1.5}  # % of the x range
    for row, cls in enumerate(classes):
        for m in cfg["models"]:
            if m not in res["classes"].get(cls, {}):
                continue
            levels = res["classes"][cls][m]["levels"]
            span = float(np.ptp(np.asarray(levels, dtype=float))) or 1.0
            lv = np.asarray(levels, dtype=float) + offset[m] / 100 * span  # side by side where they overlap
            for col, (key, ci) in enumerate((("drift_median", "drift_ci"), ("rmse_median", "rmse_ci"))):
                rs = [by[(cls, x, m)] for x in levels]
                floor = rs[0]["floor_deg_s"]
                y = np.array([max(r[key], floor / 3) if col == 0 else r[key] for r in rs], dtype=float)
                lo = np.array([max(r[ci][0], floor / 3) if col == 0 else r[ci][0] for r in rs], dtype=float)
                hi = np.array([max(r[ci][1], floor / 3) if col == 0 else r[ci][1] for r in rs], dtype=float)
                ax = axes[row, col]
                ax.plot(lv, y, styles[m], color=colors[m], label=LABELS[m], ms=3, lw=1)
                ax.fill_between(lv, lo, hi, color=colors[m], alpha=0.15)
                failed = [r["failed"] for r in rs]
                for x, yy, f in zip(lv, y, failed, strict=True):
                    if f:
                        ax.annotate(f"{f}x", (x, yy), fontsize=6, color=colors[m])
                if col == 0:
                    ax.axhline(floor, color=colors[m], ls=":", lw=0.7)
        axes[row, 0].set_yscale("log")
        axes[row, 1].set_yscale("log")
        axes[row, 0].set_ylabel(f"{cls}\ndrift (deg/s)")
        axes[row, 1].set_ylabel("RMSE (deg)")
        for ax in axes[row]:
            ax.set_xlabel(CLASSES[cls]["unit"], fontsize=8)
    axes[0, 0].legend(fontsize=6)
    fig.suptitle("drift in darkness and path-integration error against each perturbation (median, 95% CI; "
                 "dotted: detection floors, values below drawn at floor/3; 'Nx': N failed)", fontsize=8)
    fig.tight_layout()
    return atomic_save_figure(fig, path, dpi=120, bbox_inches="tight")


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        return None if x != x else float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def write(res: dict, out: Path) -> dict[str, Path]:
    """``out/results/hd_robustness.{json,md}`` and ``out/figures/hd_robustness_classes.png`` (atomic)."""
    import json

    from ..atomic import atomic_write_bytes

    out = Path(out)
    paths = {"json": out / "results" / "hd_robustness.json", "md": out / "results" / "hd_robustness.md",
             "figure": out / "figures" / "hd_robustness_classes.png"}
    atomic_write_bytes(paths["json"], (json.dumps(_jsonable(res), indent=1) + "\n").encode())
    atomic_write_bytes(paths["md"], markdown(res).encode())
    figure(res, paths["figure"])
    return paths
