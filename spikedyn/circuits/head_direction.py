"""The delay-line head-direction oscillator circuit (Park et al. Sec. 2.11, Eq. 22-28, Fig. 6).

Heading is held in the relative phase ``dphi = phi+ - phi-`` of two identical spiking oscillators, not in
an attractor. Every neuron is a Lava float LIF (``hardware/delay_network.py``); time advances in steps
of ``dt`` ms; one period is ``D = period / dt`` steps. Per oscillator o in {+, -} (7 neurons):

* ``PL``, ``PR``: the oscillator, two relay neurons (no memory: ``du = dv = 1``, threshold 0.5) that
  excite each other through axons of latency ``D/2`` steps. Each spike triggers the next (weight 1 >
  threshold), so the period is ``D`` steps whatever the weights are, as long as they stay above threshold:
  the period is set by conduction delays (Fig. 6A-B).
* ``A``: the velocity encoder, a non-leaky integrate-and-fire neuron with reset by subtraction, driven by
  ``c = (period / 2 pi) [omega]_+`` (rad/s -> steps of phase per step; ``[-omega]_+`` for ``-``). It is an
  exact phase accumulator: its k-th spike marks the moment when the integral of c crosses k (a constant
  phase-response curve). Each spike is one *quantum*: "advance the oscillator by one step".
* ``Q`` (latch: holds one pending quantum by self-excitation), ``N`` (tonically active, silenced by Q),
  ``GL``/``GR`` (gates near PR/PL, on PL's/PR's axon at latency ``D/2 - 2``): when the oscillator spike
  passes and a quantum is pending (N silent), the gate fires, its neighbour fires one step early (latency
  1), the on-time spike is vetoed (latency 2) and the latch is cleared. Phase advances by exactly one step
  per quantum, so ``dphi`` counts quanta: Eq. 22-26 with the phase quantised to ``dt``.

Readout (Eq. 27-28, Fig. 6C-E): ``D`` coincidence detectors ``CD_k`` (leaky, threshold 1.5, two
synapses of weight 1) receive ``PL+`` and ``PR-`` through delays chosen so that both spikes arrive
together when ``dphi = k`` steps; a CD fires once per period when ``|dphi - k| <= cd_window``. CDs are
pooled into ``n_segments`` segments (the ellipsoid body), low-pass filtered (``readout_tau``) into the
bump, and the bump's population vector is the decoded heading.

Every logical operation is "one input above threshold" or "an excitation vetoed by a 4x larger
inhibition": weights may be off by up to ~40% before any spike changes. Weight noise therefore leaves the
period and the phase untouched (no drift) until a synapse crosses its margin, and then the failure is
abrupt. Valid velocity range: at most one quantum per half period, ``|omega| < 360 deg / (period *
(D/2 + 2))`` (857 deg/s for the defaults); faster turns lose quanta and the held heading turns at most at
``360 deg / (period * (D/2 - 1))`` (923 deg/s), so it lags.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..hardware.delay_network import DelayNetwork
from ..tasks.head_direction import integrate_heading
from .delay_sim import simulate
from .readout import HDResult, lowpass, population_vector, wrap

OSCILLATOR_NEURONS = ("PL+", "PR+", "PL-", "PR-")
UNIT = ("A", "Q", "N", "PL", "PR", "GL", "GR")  # per oscillator, in this order


@dataclass(frozen=True)
class Weights:
    """Synaptic weights of the logic (thresholds are 0.5 for logic units, 1.5 for CDs)."""

    excite: float = 1.0  # relay, latch self-excitation, early spike, CD inputs
    veto: float = 4.0  # N -> gate, gate -> on-time spike, latch -> N
    set: float = 16.0  # encoder -> latch (wins over a simultaneous clear)
    clear: float = 4.0  # gate -> latch


class HeadDirectionCircuit:
    """Two delay-line oscillators that integrate angular velocity into their relative phase.

    Args:
        period: oscillation period tau in ms (set by the conduction delays).
        n_segments: readout segments (8: the fly's ellipsoid body).
        dt: simulation step in ms; ``period / dt`` must be an even integer divisible by ``n_segments``.
        cd_window: largest |phase offset| (ms) at which a coincidence detector still fires.
        readout_tau: time constant (ms) of the low-pass filter that turns CD spikes into the bump.
        weights: the logic's synaptic weights (see :class:`Weights`).
        relay_tau: None (default: memoryless relays) or the synaptic and membrane time constant (ms) of a
            *finite-time-constant* output stage of each oscillator neuron (the variant in which a relay's
            synaptic weight sets its spike latency, so weight noise can move spikes; see
            :meth:`relay_response`). Each oscillator neuron is then a logic relay ``JL``/``JR`` (fires early
            or on time, as in the default) followed by a leaky neuron ``PL``/``PR`` that fires
            ``relay_latency`` steps after its input; the axonal latencies are shortened to keep the period.
        relay_latency: nominal spike latency (steps) of the finite-time-constant stage (threshold at the
            geometric mean of its membrane response at ``relay_latency - 1`` and ``relay_latency`` steps).
    """

    def __init__(self, period: float = 10.0, n_segments: int = 8, dt: float = 0.125, cd_window: float = 0.625,
                 readout_tau: float = 20.0, weights: Weights | None = None, relay_tau: float | None = None,
                 relay_latency: int = 2) -> None:
        if period <= 0 or dt <= 0:
            raise ValueError(f"period and dt must be > 0 ms, got period={period}, dt={dt}")
        D = period / dt
        if abs(D - round(D)) > 1e-9 or round(D) % 2 or round(D) < 8:
            raise ValueError(f"period / dt must be an even integer >= 8 (steps per cycle), got {D:g}")
        D = int(round(D))
        if n_segments < 1 or D % n_segments:
            raise ValueError(f"period / dt = {D} steps must be divisible by n_segments={n_segments}")
        e_max = int(round(cd_window / dt))
        if not 0 <= e_max < D // 4:
            raise ValueError(f"cd_window must lie in [0, period/4) ms, got {cd_window}")
        self.period, self.dt, self.n_segments, self.D = float(period), float(dt), int(n_segments), D
        self.cd_window, self.cd_steps, self.readout_tau = float(cd_window), e_max, float(readout_tau)
        self.w = weights or Weights()
        # CD membrane: after an input w, a second w arriving e steps later crosses 1.5 w iff e <= e_max
        self.cd_dv = 1.0 - 0.5 ** (1.0 / (e_max + 0.5))
        self.relay_tau, self.relay_latency = relay_tau, int(relay_latency)
        if relay_tau is not None:
            if relay_tau <= 0 or not 1 <= relay_latency <= D // 2 - 4:
                raise ValueError(f"need relay_tau > 0 ms and 1 <= relay_latency <= {D // 2 - 4} steps")
            self.relay_decay, self.relay_vth, self.relay_cancel = self._finite_relay()
        self.net = self._build()
        self.index = {name: i for i, name in enumerate(self.net.names)}
        self.cd = np.flatnonzero([n.startswith("CD") for n in self.net.names])
        m = D // n_segments
        self.pool = np.zeros((self.net.n_neurons, n_segments))
        self.pool[self.cd, np.arange(D) // m] = 1.0
        # preferred heading of a segment: the mean of its CDs' preferred headings (2 pi k / D)
        self.segment_angles = 2 * np.pi * (np.arange(n_segments) * m + (m - 1) / 2) / D

    # -- wiring -----------------------------------------------------------------------------------------
    @property
    def max_speed_deg_s(self) -> float:
        """Largest |angular velocity| (deg/s) integrated without losing quanta: one per half period."""
        return 360.0 / (self.period / 1000.0 * (self.D // 2 + 2))

    @property
    def saturation_speed_deg_s(self) -> float:
        """Fastest turn the circuit can follow at all (deg/s): one quantum per advanced half period
        (``D/2 - 1`` steps); faster input loses quanta and the heading follows at this speed."""
        return 360.0 / (self.period / 1000.0 * (self.D // 2 - 1))

    @property
    def quantum_deg(self) -> float:
        """Heading resolution (deg): one step of relative phase."""
        return 360.0 / self.D

    @property
    def kick_neurons(self) -> tuple[str, str]:
        """The neurons kicked at t = 0 to set the initial phases of the + and - oscillators."""
        return ("PL+", "PL-") if self.relay_tau is None else ("JL+", "JL-")

    def relay_response(self, weight: float = 1.0, steps: int = 12, decay: float | None = None) -> np.ndarray:
        """Membrane of the finite-time-constant relay stage after one input of ``weight`` at step 0 (Lava
        LIF: ``u <- u (1 - d) + a``, ``v <- v (1 - d) + u``, with ``d = 1 - exp(-dt / relay_tau)``)."""
        d = self.relay_decay if decay is None else decay
        k = np.arange(steps)
        return weight * (k + 1) * (1.0 - d) ** k

    def _finite_relay(self) -> tuple[float, float, float]:
        d = 1.0 - np.exp(-self.dt / float(self.relay_tau))
        L = self.relay_latency
        v = self.relay_response(1.0, L + 2, d)
        if not np.all(np.diff(v[: L + 1]) > 0):
            raise ValueError(f"relay_latency={L} steps lies past the peak of the relay's response; use a "
                             f"shorter latency or a longer relay_tau")
        vth = float(np.sqrt(v[L - 1] * v[L])) if L >= 1 else 0.5
        cancel = float((1.0 - d) ** (L + 1))  # refractory self-inhibition: removes the residual current
        return float(d), vth, cancel

    @property
    def relay_weight_margin(self) -> tuple[float, float] | None:
        """Range of the relay-stage weight (relative to nominal) that keeps its latency at
        ``relay_latency`` steps (finite-time-constant variant only)."""
        if self.relay_tau is None:
            return None
        v = self.relay_response(1.0, self.relay_latency + 1)
        return self.relay_vth / v[self.relay_latency], self.relay_vth / v[self.relay_latency - 1]

    def _build(self) -> DelayNetwork:
        D, w = self.D, self.w
        half = D // 2
        finite = self.relay_tau is not None
        lag = 1 + self.relay_latency if finite else 0  # steps from a logic relay's spike to its output's
        extra = ("JL", "JR") if finite else ()
        names = [f"{u}{o}" for o in "+-" for u in UNIT + extra] + [f"CD{k}" for k in range(D)]
        n = len(names)
        idx = {name: i for i, name in enumerate(names)}
        du, dv, vth, bias = np.ones(n), np.ones(n), np.full(n, 0.5), np.zeros(n)
        syn: list[tuple[int, int, float, int, bool, bool]] = []  # pre, post, weight, latency, perturb, axonal

        def connect(pre: str, post: str, weight: float, latency: int, perturb: bool = True,
                    axonal: bool = False) -> None:
            syn.append((idx[pre], idx[post], weight, latency, perturb, axonal))

        for o in "+-":
            a, q, nq = f"A{o}", f"Q{o}", f"N{o}"
            du[idx[a]], vth[idx[a]] = 0.0, 1.0  # integrator: u is the membrane, one quantum per spike
            bias[idx[nq]] = 1.0  # tonically active unless the latch holds a quantum
            connect(a, a, -1.0, 1, perturb=False)  # reset by subtraction (part of the neuron, not a synapse)
            connect(a, q, w.set, 1)
            connect(q, q, w.excite, 1)
            connect(q, nq, -w.veto, 1)
            for src, dst, gate in (("PL", "PR", "GL"), ("PR", "PL", "GR")):
                s, g = f"{src}{o}", f"{gate}{o}"
                d = f"J{dst[1]}{o}" if finite else f"{dst}{o}"  # the neuron the logic acts on
                connect(s, d, w.excite, half - lag, axonal=True)  # the oscillator loop: half a period
                connect(s, g, w.excite, half - 2 - lag, axonal=True)  # the gate sits near the target
                connect(nq, g, -w.veto, 1)
                connect(g, d, w.excite, 1)  # the target fires one step early ...
                connect(g, d, -w.veto, 2)  # ... and the on-time spike is vetoed
                connect(g, q, -w.clear, 1)  # the quantum is used
            if finite:  # logic relay J -> leaky output stage P, whose weight sets its latency
                for side in "LR":
                    p = f"P{side}{o}"
                    connect(f"J{side}{o}", p, w.excite, 1)
                    connect(p, p, -w.excite * self.relay_cancel, 1, perturb=False)  # refractory
                    du[idx[p]] = dv[idx[p]] = self.relay_decay
                    vth[idx[p]] = self.relay_vth * w.excite
        # coincidence detectors: PL+ (fires at a) and PR- (fires at b + D/2, dphi = b - a) meet at CD_k
        # when x_k - y_k = k + D/2 (mod D); latencies 1 .. D/2 + 1
        cd0 = names.index("CD0")
        for k in range(D):
            j = (k + half) % D
            if j > half:
                j -= D
            connect("PL+", f"CD{k}", w.excite, 1 + max(j, 0), axonal=True)
            connect("PR-", f"CD{k}", w.excite, 1 + max(-j, 0), axonal=True)
        dv[cd0:], vth[cd0:] = self.cd_dv, 1.5 * w.excite
        pre, post, weight, latency, perturb, axonal = (np.asarray(c) for c in zip(*syn, strict=True))
        return DelayNetwork(names, du, dv, vth, bias, pre, post, weight, latency, perturb, axonal)

    def network(self) -> DelayNetwork:
        """The circuit as a plain :class:`DelayNetwork` (what Lava runs)."""
        return self.net

    def perturbed_weights(self, sigma: float, n: int, seed: int = 0) -> np.ndarray:
        """``n`` frozen weight-noise realisations ``w (1 + sigma xi)``, xi ~ N(0, 1) per synapse: [n, S].
        The encoders' reset (a property of the neuron, built from a self-synapse) is not perturbed."""
        if sigma < 0 or n < 1:
            raise ValueError(f"need sigma >= 0 and n >= 1, got sigma={sigma}, n={n}")
        xi = np.random.default_rng(seed).standard_normal((n, self.net.n_synapses))
        return self.net.weight * np.where(self.net.perturb, 1.0 + sigma * xi, 1.0)

    def perturbed_latencies(self, sigma_steps: float, n: int, seed: int = 0) -> np.ndarray:
        """``n`` frozen realisations of per-axon latency perturbations: every axonal synapse (oscillator
        loops, gate taps, delay-line axons to the detectors) gets its own latency ``+ round(sigma_steps
        xi)`` steps, xi ~ N(0, 1), kept >= 1: [n, S] (steps; ``sigma_steps / D`` is the fraction of the
        period)."""
        if sigma_steps < 0 or n < 1:
            raise ValueError(f"need sigma_steps >= 0 and n >= 1, got {sigma_steps}, {n}")
        xi = np.random.default_rng(seed).standard_normal((n, self.net.n_synapses))
        shift = np.where(self.net.axonal, np.rint(sigma_steps * xi), 0.0).astype(np.int64)
        return np.maximum(self.net.latency + shift, 1)

    def mismatched_latencies(self, steps: int) -> np.ndarray:
        """Latencies [S] with the - oscillator's ``PL- -> PR-`` axon (the loop synapse and the gate tap on
        it) longer by ``steps`` (negative: shorter): the - oscillator then runs with period ``D + steps``
        steps while + keeps ``D``, a period mismatch of ``steps / D`` (Park et al. Sec. 2.10: the
        relative-phase memory is structurally unstable to exactly this)."""
        lat = self.net.latency.copy()
        names = self.net.names
        src = self.index["PL-"]
        minus = np.array([n.endswith("-") and not n.startswith("CD") for n in names])
        axon = self.net.axonal & (self.net.pre == src) & minus[self.net.post]
        lat[axon] = lat[axon] + int(steps)
        if lat.min() < 1:
            raise ValueError(f"a mismatch of {steps} steps makes a latency < 1")
        return lat

    def heterogeneous_time_constants(self, sigma: float, n: int, seed: int = 0) -> dict[str, np.ndarray]:
        """``n`` frozen realisations of time-constant heterogeneity: every neuron with a finite synaptic
        or membrane time constant (``0 < du, dv < 1``: the detectors, the finite-time-constant relay
        stage) gets ``tau (1 + sigma xi)`` (floored at 5% of tau), independently for u and v. Memoryless
        (d = 1) and non-leaky (d = 0) neurons have no time constant and are unchanged. Returns
        ``{"du": [n, N], "dv": [n, N]}``."""
        rng = np.random.default_rng(seed)
        out = {}
        for key in ("du", "dv"):
            d = getattr(self.net, key)
            leaky = (d > 0) & (d < 1)
            tau = -self.dt / np.log1p(-np.where(leaky, d, 0.5))
            scale = np.maximum(1.0 + sigma * rng.standard_normal((n, d.size)), 0.05)
            out[key] = np.where(leaky, 1.0 - np.exp(-self.dt / (tau * scale)), d)
        return out

    def heterogeneous_bias(self, sigma: float, n: int, seed: int = 0) -> dict[str, np.ndarray]:
        """``n`` frozen realisations of bias heterogeneity ``b (1 + sigma xi)`` on every neuron with a bias
        (the tonic ``N`` neurons here; the pacemakers of :class:`IntrinsicHeadDirectionCircuit`):
        ``{"bias": [n, N]}``."""
        xi = np.random.default_rng(seed).standard_normal((n, self.net.n_neurons))
        return {"bias": self.net.bias * (1.0 + sigma * xi)}

    # -- inputs -----------------------------------------------------------------------------------------
    def velocity_drive(self, angular_velocity: np.ndarray) -> np.ndarray:
        """Encoder input (quanta per step) ``[..., 2]`` for ``[A+, A-]`` from angular velocity in rad/s:
        ``(period / 2 pi) [omega]_+`` and ``(period / 2 pi) [-omega]_+`` (Eq. 22-23)."""
        w = np.asarray(angular_velocity, dtype=np.float64)
        k = self.period / 1000.0 / (2 * np.pi)
        return np.stack([k * np.maximum(w, 0.0), k * np.maximum(-w, 0.0)], axis=-1)

    def initial_steps(self, theta0: np.ndarray) -> np.ndarray:
        """Step at which PL- is kicked (PL+ is kicked at step 0) so that dphi encodes ``theta0`` (rad)."""
        steps = np.round(np.asarray(theta0, dtype=np.float64) * self.D / (2 * np.pi))
        return np.mod(steps, self.D).astype(int)

    def _pulses(self, theta0: np.ndarray) -> np.ndarray:
        B = theta0.shape[0]
        p = np.zeros((self.D, B, self.net.n_neurons))
        kick_plus, kick_minus = self.kick_neurons
        p[0, :, self.index[kick_plus]] = 1.0
        # half a quantum of initial charge: quanta are emitted when the integral crosses k + 1/2, so
        # the phase difference rounds the integrated velocity instead of truncating it
        p[0, :, [self.index["A+"], self.index["A-"]]] = 0.5
        p[self.initial_steps(theta0), np.arange(B), self.index[kick_minus]] = 1.0
        return p

    def _hold(self, dt: float) -> int:
        hold = dt / self.dt
        if dt <= 0 or abs(hold - round(hold)) > 1e-6 or round(hold) < 1:
            raise ValueError(f"the velocity step dt={dt} ms must be a positive multiple of the circuit's "
                             f"dt={self.dt} ms")
        return int(round(hold))

    def external_input(self, angular_velocity: np.ndarray, dt: float, theta0: float = 0.0) -> np.ndarray:
        """Input currents ``[T_sim, N]`` of one instance, step by step (what Lava's sources send)."""
        w = np.asarray(angular_velocity, dtype=np.float64)
        if w.ndim != 1:
            raise ValueError("external_input takes one velocity trace [T]")
        hold = self._hold(dt)
        T = w.shape[0] * hold
        ext = np.zeros((T, self.net.n_neurons))
        ext[:, [self.index["A+"], self.index["A-"]]] = np.repeat(self.velocity_drive(w), hold, axis=0)
        p = self._pulses(np.asarray([theta0], dtype=np.float64))[:, 0]
        n = min(T, p.shape[0])
        ext[:n] += p[:n]
        return ext

    # -- running ----------------------------------------------------------------------------------------
    def run(self, angular_velocity: np.ndarray, dt: float = 1.0, theta0: float | np.ndarray = 0.0,
            weight_noise: float = 0.0, seed: int = 0, weights: np.ndarray | None = None,
            input_noise: float = 0.0, jitter: float = 0.0, record: str | None = None,
            device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
            progress: bool | None = None, latencies: np.ndarray | None = None,
            neurons: dict[str, np.ndarray] | None = None) -> HDResult:
        """Integrate ``angular_velocity`` (rad/s, clockwise positive; [T] or [T, B] sampled every ``dt``
        ms) from ``theta0`` (rad). Columns are independent circuit instances, run together (batched).

        Args:
            weight_noise: sigma of frozen multiplicative weight noise (one realisation per column,
                drawn from ``seed``); ``weights`` [B, S] gives the weights explicitly instead.
            input_noise: std of Gaussian noise added to every neuron's input current each step (S-type).
            jitter: probability that a spike of an oscillator neuron arrives one step early or late
                (axonal conduction jitter, S-type).
            record: None, "oscillators" (the four oscillator neurons) or "all": spike trains in
                ``result.spikes``, one entry per simulation step (memory: T_sim x B x neurons).
            device, dtype: where to simulate (CPU or GPU) and in which precision.
            latencies: [B, S] frozen synaptic latencies per instance (steps >= 1), e.g. from
                :meth:`perturbed_latencies`; default the network's.
            neurons: per-instance neuron constants ``{"du"|"dv"|"vth"|"bias": [B, N]}`` (time-constant or
                bias heterogeneity); default the network's.
        """
        w = np.asarray(angular_velocity, dtype=np.float64)
        single = w.ndim == 1
        w2 = w[:, None] if single else w
        if w2.ndim != 2 or w2.shape[0] < 1:
            raise ValueError(f"angular_velocity must be [T] or [T, B] rad/s, got shape {w.shape}")
        T, B = w2.shape
        th0 = np.broadcast_to(np.asarray(theta0, dtype=np.float64), (B,)).copy()
        hold = self._hold(dt)
        if weights is None:
            weights = (np.broadcast_to(self.net.weight, (B, self.net.n_synapses)) if weight_noise == 0
                       else self.perturbed_weights(weight_noise, B, seed))
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (B, self.net.n_synapses):
            raise ValueError(f"weights must be [{B}, {self.net.n_synapses}], got {weights.shape}")
        if record not in (None, "oscillators", "all"):
            raise ValueError(f"record must be None, 'oscillators' or 'all', got {record!r}")
        rec_names = {None: None, "oscillators": list(OSCILLATOR_NEURONS), "all": list(self.net.names)}[record]
        rec = None if rec_names is None else [self.index[n] for n in rec_names]
        sim = simulate(self.net, T * hold, weight=weights, drive=self.velocity_drive(w2),
                       drive_index=[self.index["A+"], self.index["A-"]], hold=hold, pulses=self._pulses(th0),
                       input_noise=input_noise, jitter=jitter, seed=seed, record=rec, pool=self.pool,
                       bin_steps=hold, track=[self.index["PL+"], self.index["PL-"]], device=device,
                       dtype=dtype, progress=progress, desc=type(self).__name__, latency=latencies,
                       neurons=neurons)
        counts = sim.counts.cpu().double().numpy()
        last = sim.last_spike.cpu().numpy()
        spikes = None
        if rec is not None:
            arr = sim.spikes.cpu().numpy()
            spikes = {name: (arr[:, 0, i] if single else arr[:, :, i]) for i, name in enumerate(rec_names)}
        res = self.readout(counts, last, w2, dt, th0)
        if single:
            res.heading, res.decoded, res.bump = res.heading[:, 0], res.decoded[:, 0], res.bump[:, 0]
            res.phase_heading = res.phase_heading[:, 0]
        res.spikes = spikes
        return res

    def readout(self, counts: np.ndarray, last_spike: np.ndarray, angular_velocity: np.ndarray, dt: float,
                theta0: np.ndarray) -> HDResult:
        """Bump, decoded heading and phase heading from per-sample segment spike counts [T, B, S] and the
        last spike steps of PL+ / PL- [T, B, 2]."""
        m = self.D // self.n_segments
        rate = counts / (m * dt / 1000.0)  # Hz per CD
        bump = lowpass(rate, dt, self.readout_tau)
        decoded = population_vector(bump, self.segment_angles)
        a, b = last_spike[..., 0], last_spike[..., 1]
        dphi = np.mod(b - a, self.D).astype(np.float64)
        # defined while both oscillators run: each fired within the last period (+ a few steps of jitter)
        hold = int(round(dt / self.dt))
        end = (np.arange(a.shape[0]) + 1) * hold - 1
        recent = end.reshape((-1,) + (1,) * (a.ndim - 1)) - self.D - 4
        alive = (a >= 0) & (b >= 0) & ((a >= recent) | (end[:, None] < self.D + 4)) & (
            (b >= recent) | (end[:, None] < self.D + 4))
        phase = np.where(alive, 2 * np.pi * dphi / self.D, np.nan)
        heading = wrap(integrate_heading(angular_velocity, dt, theta0))
        return HDResult(heading, decoded, bump, None, float(dt), self.dt, self.segment_angles, phase)

    def run_lava(self, angular_velocity: np.ndarray, dt: float = 1.0, theta0: float = 0.0,
                 weights: np.ndarray | None = None, python: str | None = None,
                 timeout: float = 1800.0) -> tuple[HDResult, np.ndarray]:
        """Run one instance on Lava (float LIF + DelayDense in Lava's CPU simulator): in this process when
        it can import lava-nc, else through the Lava interpreter (``python``, or the one
        ``spikedyn.hardware.runtime.find_lava_python()`` finds; ``LavaNotFound`` when there is none).
        Returns (result, spikes [T_sim, N] bool of every neuron, in ``network().names`` order)."""
        from ..hardware.delay_network import lava_importable, run_lava, run_lava_subprocess

        w = np.asarray(angular_velocity, dtype=np.float64)
        net = self.net if weights is None else self.net.with_weights(weights)
        ext = self.external_input(w, dt, theta0)
        if python is None and lava_importable():
            spikes = run_lava(net, ext)
        else:
            spikes = run_lava_subprocess(net, ext, python=python, timeout=timeout)
        return self.readout_spikes(spikes, w, dt, theta0), spikes

    def readout_spikes(self, spikes: np.ndarray, angular_velocity: np.ndarray, dt: float,
                       theta0: float = 0.0) -> HDResult:
        """:meth:`readout` of one instance's full spike trains [T_sim, N] (e.g. from Lava)."""
        hold = self._hold(dt)
        T = spikes.shape[0] // hold
        s = spikes[: T * hold].reshape(T, hold, -1).astype(np.float64)
        counts = (s.sum(1) @ self.pool)[:, None]
        last = np.full((T, 1, 2), -1, dtype=np.int64)
        ends = (np.arange(T) + 1) * hold  # a sample covers the steps before its end
        for j, name in enumerate(("PL+", "PL-")):
            steps = np.flatnonzero(spikes[: T * hold, self.index[name]])
            k = np.searchsorted(steps, ends) - 1
            if steps.size:
                last[:, 0, j] = np.where(k >= 0, steps[np.maximum(k, 0)], -1)
        res = self.readout(counts, last, np.asarray(angular_velocity, dtype=np.float64)[:T, None], dt,
                           np.asarray([theta0], dtype=np.float64))
        res.heading, res.decoded, res.bump, res.phase_heading = (res.heading[:, 0], res.decoded[:, 0],
                                                                 res.bump[:, 0], res.phase_heading[:, 0])
        res.spikes = {name: spikes[:, i] for i, name in enumerate(self.net.names)}
        return res

    def phase_model(self, angular_velocity: np.ndarray, dt: float = 1.0, theta0: float = 0.0):
        """The abstract phase model (Eq. 22-28) with this circuit's period, readout and CD tuning."""
        from .phase import phase_model

        return phase_model(angular_velocity, dt, self.period, n_positions=self.D, n_segments=self.n_segments,
                           theta0=theta0, coincidence_window=self.cd_window + self.dt / 2,
                           readout_tau=self.readout_tau)

    def __repr__(self) -> str:
        return (f"HeadDirectionCircuit(period={self.period} ms, dt={self.dt} ms, D={self.D} steps, "
                f"n_segments={self.n_segments}, max_speed={self.max_speed_deg_s:.0f} deg/s, "
                f"quantum={self.quantum_deg:.2f} deg, neurons={self.net.n_neurons}, "
                f"synapses={self.net.n_synapses})")
