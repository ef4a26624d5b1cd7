"""The measurements behind ``spikedyn circuit hd`` and docs/circuits.md (and, shortened, the tests):
the delay-line head-direction circuit of Park et al. (Sec. 2.11) beside a ring attractor.

Every function runs the circuits batched (one torch run per condition, columns = instances) and returns
plain dicts/arrays. Angles in deg in the outputs, durations in s, dt in ms.
"""
from __future__ import annotations

import numpy as np
import torch

from ..circuits.head_direction import HeadDirectionCircuit
from ..circuits.readout import drift_deg_per_s, tuning_curves
from ..circuits.ring_attractor import RingAttractor
from ..tasks.head_direction import circular_error, constant_velocity, darkness, ou_velocity

DT = 1.0  # ms per velocity sample


def settle_ms(circuit: HeadDirectionCircuit) -> float:
    """Time after which the circuit's readout reflects its phase: one period plus 5 filter constants."""
    return circuit.period + 5 * circuit.readout_tau


def _rmse_deg(a: np.ndarray, b: np.ndarray, start: int) -> np.ndarray:
    return np.rad2deg(np.sqrt(np.nanmean(circular_error(a[start:], b[start:]) ** 2, axis=0)))


def initial_headings(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng([seed, 1]).uniform(0, 2 * np.pi, n)


def ou(duration_s: float, n: int, seed: int, std_deg_s: float = 120.0, tau_s: float = 0.08) -> np.ndarray:
    """OU angular velocity [T, n] (rad/s) at DT ms (FIELD_NOTES: 120 deg/s std, 0.08 s coherence)."""
    return ou_velocity(int(round(duration_s * 1000 / DT)), DT, np.random.default_rng([seed, 2]), std_deg_s,
                       tau_s, batch=n)


def path_integration(circuit: HeadDirectionCircuit, ring: RingAttractor | None, duration_s: float = 60.0,
                     n: int = 4, seed: int = 0, std_deg_s: float = 120.0, device=None,
                     progress: bool | None = None) -> dict:
    """Noise-free path integration of OU angular velocity: RMSE (deg) of each circuit and agreement of the
    spiking circuit with the phase model (RMS difference of decoded headings and of phase headings)."""
    w = ou(duration_s, n, seed, std_deg_s)
    th0 = initial_headings(n, seed)
    k0 = int(round(settle_ms(circuit) / DT))
    res = circuit.run(w, DT, th0, device=device, progress=progress)
    pm = circuit.phase_model(w, DT, th0)
    out = {
        "duration_s": duration_s, "instances": n, "max_speed_deg_s": float(np.rad2deg(np.abs(w).max())),
        "circuit_rmse_deg": _rmse_deg(res.decoded, res.heading, k0),
        "circuit_phase_rmse_deg": _rmse_deg(res.phase_heading, res.heading, k0),
        "phase_model_rmse_deg": _rmse_deg(pm.decoded, res.heading, k0),
        "circuit_vs_phase_model_deg": _rmse_deg(res.decoded, pm.decoded, k0),
        "phase_vs_phase_model_deg": _rmse_deg(res.phase_heading, pm.heading, k0),
    }  # fmt: skip
    if ring is not None:
        rr = ring.run(w, DT, th0, device=device, progress=progress)
        out["ring_rmse_deg"] = _rmse_deg(rr.decoded, rr.heading, k0)
    return out


def _stack_circuit_weights(circuit: HeadDirectionCircuit, sigmas: list[float], n: int,
                           seed: int) -> np.ndarray:
    return np.concatenate([circuit.perturbed_weights(s, n, seed=seed + 1000 * i)
                           for i, s in enumerate(sigmas)])


def _stack_ring_weights(ring: RingAttractor, sigmas: list[float], n: int, seed: int):
    Ws, Rs = zip(*(ring.perturbed_weights(s, n, seed=seed + 1000 * i) for i, s in enumerate(sigmas)),
                 strict=True)
    return np.concatenate(Ws), np.concatenate(Rs)


def robustness(circuit: HeadDirectionCircuit, ring: RingAttractor, sigmas: list[float], n: int = 20,
               duration_s: float = 60.0, seed: int = 0, device=None, progress: bool | None = None) -> dict:
    """Frozen weight noise ``w (1 + sigma xi)`` on every synapse, ``n`` realisations per sigma: drift in
    darkness (deg/s, |net displacement| / time) and path-integration RMSE (deg) under OU velocity, for the
    circuit and the ring. Arrays are [len(sigmas), n]; the same realisation of a model is used in the dark
    and in the light."""
    S, T = len(sigmas), int(round(duration_s * 1000 / DT))
    B = S * n
    th0 = np.tile(initial_headings(n, seed), S)
    k0 = settle_ms(circuit)
    cw = _stack_circuit_weights(circuit, sigmas, n, seed)
    rw = _stack_ring_weights(ring, sigmas, n, seed)
    w_ou = ou(duration_s, B, seed + 7)
    dark = darkness(T, DT, batch=B)
    out: dict = {"sigmas": list(sigmas), "realisations": n, "duration_s": duration_s}
    for name, model, weights in (("circuit", circuit, cw), ("ring", ring, rw)):
        d = model.run(dark, DT, th0, weights=weights, device=device, progress=progress)
        drift = np.abs(drift_deg_per_s(d.decoded, DT, k0))
        p = model.run(w_ou, DT, th0, weights=weights, device=device, progress=progress)
        rmse = p.rmse_deg(k0)
        if name == "circuit":
            # an oscillator that stopped (a relay weight fell below threshold) holds no heading: failed
            dead = np.isnan(d.phase_heading[-1]) | np.isnan(p.phase_heading[-1])
            drift, rmse = np.where(dead, np.nan, drift), np.where(dead, np.nan, rmse)
            out["circuit_phase_drift_deg_s"] = np.abs(drift_deg_per_s(d.phase_heading, DT, k0)).reshape(S, n)
        out[f"{name}_drift_deg_s"], out[f"{name}_rmse_deg"] = drift.reshape(S, n), rmse.reshape(S, n)
    return out


def robustness_table(r: dict) -> list[dict]:
    """One row per sigma: medians and worst cases over realisations, the number of failed realisations
    (an oscillator stopped or the bump fell silent: NaN in ``r``, counted as infinite drift and error). No
    ring/circuit ratio: the circuit's drift is often below what the run resolves (see
    ``spikedyn.experiments.hd_robustness`` for drifts with confidence intervals and detection floors)."""
    rows = []

    def failed_as_inf(x: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(x), np.inf, x)

    for i, s in enumerate(r["sigmas"]):
        cd, rd = failed_as_inf(r["circuit_drift_deg_s"][i]), failed_as_inf(r["ring_drift_deg_s"][i])
        ce, re_ = failed_as_inf(r["circuit_rmse_deg"][i]), failed_as_inf(r["ring_rmse_deg"][i])
        rows.append({
            "sigma": s,
            "circuit_failed": int(np.sum(np.isinf(cd) | np.isinf(ce))),
            "ring_failed": int(np.sum(np.isinf(rd) | np.isinf(re_))),
            "circuit_drift_median": float(np.median(cd)), "circuit_drift_max": float(np.max(cd)),
            "circuit_rmse_median": float(np.median(ce)), "circuit_rmse_max": float(np.max(ce)),
            "ring_drift_median": float(np.median(rd)), "ring_drift_max": float(np.max(rd)),
            "ring_rmse_median": float(np.median(re_)), "ring_rmse_max": float(np.max(re_)),
        })  # fmt: skip
    return rows


def phase_diffusion(circuit: HeadDirectionCircuit, ring: RingAttractor | None, jitters: list[float],
                    input_noises: list[float], ring_noises: list[float], n: int = 20,
                    duration_s: float = 20.0, seed: int = 0, device=None, progress: bool | None = None) -> dict:
    """S-type noise in darkness: mean squared displacement of the held heading vs time.

    Conduction jitter (a spike of an oscillator neuron arrives one step early or late with probability p)
    random-walks each oscillator's phase; input-current noise random-walks the velocity encoders' charge;
    for the ring, white noise on u. Returns, per condition, the times (s), the MSD (deg^2) of the phase
    heading (circuit) or decoded heading (ring), its fitted diffusion constant MSD/t and log-log slope
    (1 = diffusion, Zilli et al. 2009), and for jitter the prediction ``4 p (t / tau) quantum^2``."""
    T = int(round(duration_s * 1000 / DT))
    th0 = initial_headings(n, seed)
    k0 = int(round(settle_ms(circuit) / DT))
    t = (np.arange(T) - k0) * DT / 1000.0
    conds: list[dict] = []

    def msd(theta: np.ndarray) -> np.ndarray:
        x = np.unwrap(np.where(np.isnan(theta), np.nanmean(theta, axis=0), theta)[k0:], axis=0)
        return np.rad2deg(x - x[0]) ** 2

    def fit(m: np.ndarray) -> tuple[float, float]:
        ts, mean = t[k0:][1:], m.mean(1)[1:]
        slope = float(np.sum(ts * mean) / np.sum(ts * ts))  # least squares through the origin
        ok = (ts > ts[-1] / 20) & (mean > 0)
        alpha = float(np.polyfit(np.log(ts[ok]), np.log(mean[ok]), 1)[0]) if ok.sum() > 2 else float("nan")
        return slope, alpha

    def add(kind: str, level: float, m: np.ndarray, predicted: float | None) -> None:
        d, alpha = fit(m)
        conds.append({"noise": kind, "level": level, "msd_per_s": d, "loglog_slope": alpha,
                      "predicted_msd_per_s": predicted, "rms_after_deg": float(np.sqrt(m[-1].mean())),
                      "msd": m.mean(1)})

    dark = darkness(T, DT, batch=n)
    for p in jitters:
        r = circuit.run(dark, DT, th0, jitter=p, seed=seed, device=device, progress=progress)
        predicted = 4 * p * 1000.0 / circuit.period * circuit.quantum_deg**2  # 4 transmissions of var p
        add("conduction jitter p", p, msd(r.phase_heading), predicted)
    for s in input_noises:
        r = circuit.run(dark, DT, th0, input_noise=s, seed=seed, device=device, progress=progress)
        add("input current noise std", s, msd(r.phase_heading), None)
    if ring is not None:
        for s in ring_noises:
            r = ring.run(dark, DT, th0, rate_noise=s, seed=seed, device=device, progress=progress)
            add("ring: noise on u, std", s, msd(r.decoded), None)
    return {"t_s": t[k0:], "duration_s": duration_s, "realisations": n, "conditions": conds}


def tuning(circuit: HeadDirectionCircuit, seconds: float = 10.0, device=None) -> dict:
    """Segment tuning curves (Fig. 6D): one slow full turn at constant speed in ``seconds``; mean bump
    per heading bin, for the spiking circuit and the phase model."""
    k0 = int(round(settle_ms(circuit) / DT))
    T = int(round(seconds * 1000 / DT)) + k0  # the readout settles first, then one full turn is binned
    w = constant_velocity(T, DT, velocity_deg_s=360.0 / seconds)
    r = circuit.run(w, DT, 0.0, device=device)
    p = circuit.phase_model(w, DT, 0.0)
    centres, spiking = tuning_curves(r.bump[k0:], r.heading[k0:])
    _, model = tuning_curves(p.bump[k0:], p.heading[k0:])
    return {"heading_deg": np.rad2deg(centres), "spiking": spiking, "phase_model": model,
            "segment_deg": np.rad2deg(circuit.segment_angles)}


def showcase(circuit: HeadDirectionCircuit, ring: RingAttractor, duration_s: float = 4.0, seed: int = 0,
             device=None) -> dict:
    """One OU trial (kymographs, raster): both circuits' bumps and decoded headings, oscillator spikes."""
    w = ou(duration_s, 1, seed)[:, 0]
    r = circuit.run(w, DT, 0.5, record="oscillators", device=device)
    rr = ring.run(w, DT, 0.5, device=device)
    return {"velocity_deg_s": np.rad2deg(w), "circuit": r, "ring": rr}


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
