"""The head-direction circuit as Park et al. (Sec. 2.11, Fig. 6A) draw it: intrinsically oscillating neurons.

Where :class:`~spikedyn.circuits.HeadDirectionCircuit` builds each oscillator from memoryless relays and
advances its phase with logic (latch, gates, veto), here each oscillator is the paper's pair of
*intrinsically oscillating* neurons ``PL``, ``PR`` coupled across the hemispheres with ``tau/2`` conduction
delays, and the velocity enters as a synaptic input with a constant phase-response curve. Per oscillator
``o`` in {+, -} there are 3 neurons; the Jeffress readout (``D`` coincidence detectors, 8 segments) is the
same as the digital circuit's. Every neuron is Lava's float LIF (same :class:`DelayNetwork`, same
simulators, runs on Lava spike for spike).

* ``PL``, ``PR``: pacemakers, non-leaky integrate-and-fire neurons (``du = 1, dv = 0``, threshold 1) with a
  bias ``b``: alone each fires every ``T0 = 1/b`` steps. ``b = 1 / (D - 1/2)`` puts ``T0`` at the loop
  period ``D`` (its crossing falls half a step of bias after step ``D``). ``PL -> PR`` and ``PR -> PL``
  excite each other through axons of ``D/2`` steps with weight 0.5: a kick that arrives in the second half
  of the partner's ramp fires it at once (Lava's LIF resets to 0, so the kick *resets* the partner's phase:
  the pair locks in antiphase, Fig. 6B), and the kicks arrive exactly when the ramps end.
* ``A``: the velocity encoder (as in the digital circuit: non-leaky IF, reset by subtraction, driven by
  ``(tau / 2 pi) [omega]_+``), one spike per quantum of phase. Its spike reaches ``PL`` with weight
  ``b``: one step's worth of bias. A pacemaker's membrane is a linear ramp, so an input of charge ``b``
  makes it cross threshold one step earlier *wherever in the cycle it arrives*: the constant
  phase-response curve of Eq. 22-23. ``PL`` fires a step early, its kick reaches ``PR`` a step early and
  resets it there: the whole oscillator has advanced by one step.

Why quanta and not an analog current into ``PL``: in discrete time a pacemaker that resets to zero loses
the charge it holds beyond threshold at each spike, so an analog velocity current below one step of bias
per cycle (``< 450 deg/s`` at the defaults) would be lost every cycle. The encoder keeps the remainder.

Margins (what a perturbation must exceed to move a spike; see docs/circuits.md):

* bias: the ramp crosses at step ``D`` only while ``(D - 1) b <= 1 < D b``: ``+-0.5 / (D - 1)`` (0.63%
  for D = 80). A faster pacemaker fires before its kick arrives and runs its oscillator at ``D - 1``
  steps: a period mismatch, drift of one quantum per cycle (450 deg/s). A slower one is still reset by
  its kick (no drift) but no longer advances on a quantum (the quanta are lost).
* quantum weight: ``(0.5 b, 1.5 b]``: +-50%. Coupling weight: ``(0.5 b, 1 - b]``.
* latencies: a loop axon one step longer or shorter changes that oscillator's period by a step.
"""
from __future__ import annotations

import numpy as np

from ..hardware.delay_network import DelayNetwork
from .head_direction import HeadDirectionCircuit

UNIT = ("A", "PL", "PR")


class IntrinsicHeadDirectionCircuit(HeadDirectionCircuit):
    """Two oscillators of intrinsically oscillating (bias-driven IF) neurons, locked by ``tau/2`` delays,
    integrating angular velocity into their relative phase (Park et al. Sec. 2.11, Fig. 6A).

    Args:
        period: tau (ms): the loop delay ``2 x tau/2`` and the pacemakers' intrinsic period.
        n_segments, dt, cd_window, readout_tau: as :class:`HeadDirectionCircuit`.
        coupling: weight of the contralateral kick (threshold 1).
        quantum_weight: weight of an encoder spike onto ``PL`` and ``PR``, in units of the pacemaker bias.
        refractory: the pacemakers' refractory period (ms): a kick arriving within it is ignored.
    """

    def __init__(self, period: float = 10.0, n_segments: int = 8, dt: float = 0.125, cd_window: float = 0.625,
                 readout_tau: float = 20.0, coupling: float = 0.5, quantum_weight: float = 1.0,
                 refractory: float = 0.5) -> None:
        self.coupling, self.quantum_weight = float(coupling), float(quantum_weight)
        D = round(period / dt)
        self.refractory_steps = int(round(refractory / dt))
        if not 1 <= self.refractory_steps < D // 4:
            raise ValueError(f"refractory must be at least one step ({dt} ms) and below period / 4 ms")
        self.pacemaker_bias = 1.0 / (D - self.refractory_steps - 0.5)
        super().__init__(period=period, n_segments=n_segments, dt=dt, cd_window=cd_window,
                         readout_tau=readout_tau)

    @property
    def kick_neurons(self) -> tuple[str, str]:
        return ("PL+", "PL-")

    @property
    def bias_margin(self) -> float:
        """Relative pacemaker-bias error that still keeps every spike in place (both signs)."""
        return 0.5 / (self.D - self.refractory_steps - 1)

    @property
    def max_speed_deg_s(self) -> float:
        """Fastest turn integrated without losing quanta: a pacemaker advanced by k steps in one cycle
        receives its partner's previous kick k steps after its own spike, which the refractory period
        must absorb: at most ``refractory_steps`` quanta per cycle."""
        return 360.0 / (self.period / 1000.0 * self.D) * self.refractory_steps

    @property
    def saturation_speed_deg_s(self) -> float:
        return self.max_speed_deg_s

    def _build(self) -> DelayNetwork:
        D, half, b = self.D, self.D // 2, self.pacemaker_bias
        names = [f"{u}{o}" for o in "+-" for u in UNIT] + [f"CD{k}" for k in range(D)]
        n = len(names)
        idx = {name: i for i, name in enumerate(names)}
        du, dv, vth, bias = np.ones(n), np.ones(n), np.ones(n), np.zeros(n)
        syn: list[tuple[int, int, float, int, bool, bool]] = []

        def connect(pre: str, post: str, weight: float, latency: int, perturb: bool = True,
                    axonal: bool = False) -> None:
            syn.append((idx[pre], idx[post], weight, latency, perturb, axonal))

        for o in "+-":
            a = f"A{o}"
            du[idx[a]] = 0.0  # integrator: u is the membrane, one quantum per spike
            connect(a, a, -1.0, 1, perturb=False)  # reset by subtraction
            for side in ("PL", "PR"):
                connect(a, f"{side}{o}", self.quantum_weight * b, 1)  # one step of bias: one step earlier
                i = idx[f"{side}{o}"]
                du[i], dv[i], bias[i] = 1.0, 0.0, b  # pacemaker: v ramps by b per step, resets to 0
            connect(f"PL{o}", f"PR{o}", self.coupling, half, axonal=True)  # across the hemispheres
            connect(f"PR{o}", f"PL{o}", self.coupling, half, axonal=True)
        cd0 = names.index("CD0")
        for k in range(D):
            j = (k + half) % D
            if j > half:
                j -= D
            connect("PL+", f"CD{k}", 1.0, 1 + max(j, 0), axonal=True)
            connect("PR-", f"CD{k}", 1.0, 1 + max(-j, 0), axonal=True)
        dv[cd0:], vth[cd0:] = self.cd_dv, 1.5
        vth[[idx["A+"], idx["A-"]]] = 1.0
        refractory = np.zeros(n, np.int64)
        refractory[[idx[f"{s}{o}"] for s in ("PL", "PR") for o in "+-"]] = self.refractory_steps
        pre, post, weight, latency, perturb, axonal = (np.asarray(c) for c in zip(*syn, strict=True))
        return DelayNetwork(names, du, dv, vth, bias, pre, post, weight, latency, perturb, axonal, refractory)

    def _pulses(self, theta0: np.ndarray) -> np.ndarray:
        """Initial charges that make PL+ fire at step 0, PR+ at D/2, PL- at the step encoding ``theta0``
        and PR- half a period later (a ramp holding ``1 - (t + 1/2) b`` crosses at step t)."""
        B, D, b = theta0.shape[0], self.D, self.pacemaker_bias
        k0 = self.initial_steps(theta0)
        p = np.zeros((1, B, self.net.n_neurons))
        for name, t in (("PL+", np.zeros(B, int)), ("PR+", np.full(B, D // 2)), ("PL-", k0),
                        ("PR-", (k0 + D // 2) % D)):
            p[0, :, self.index[name]] = 1.0 - (t + 0.5) * b
        p[0, :, [self.index["A+"], self.index["A-"]]] = 0.5
        return p

    def __repr__(self) -> str:
        return (f"IntrinsicHeadDirectionCircuit(period={self.period} ms, dt={self.dt} ms, D={self.D} steps, "
                f"n_segments={self.n_segments}, pacemaker bias={self.pacemaker_bias:.6f} "
                f"(margin +-{100 * self.bias_margin:.2f}%), quantum={self.quantum_deg:.2f} deg, "
                f"neurons={self.net.n_neurons}, synapses={self.net.n_synapses})")
