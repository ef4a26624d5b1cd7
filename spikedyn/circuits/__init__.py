"""Hand-built circuits: the delay-line head-direction oscillator circuit and a ring-attractor baseline.

>>> from spikedyn.circuits import HeadDirectionCircuit, RingAttractor, phase_model
>>> circuit = HeadDirectionCircuit(period=10.0, n_segments=8, dt=0.125)
>>> result = circuit.run(omega, dt=1.0)           # omega: rad/s, [T] or [T, B] (B instances, batched)
>>> result.decoded, result.heading, result.bump   # rad, rad, [T, 8]

See docs/circuits.md.
"""
from .head_direction import HeadDirectionCircuit, Weights
from .intrinsic import IntrinsicHeadDirectionCircuit
from .phase import PhaseModelResult, phase_model
from .readout import HDResult
from .ring_attractor import RingAttractor

__all__ = ["HDResult", "HeadDirectionCircuit", "IntrinsicHeadDirectionCircuit", "PhaseModelResult", "RingAttractor",
           "Weights", "phase_model"]
