"""Plain-numpy simulators of a ``NetworkSpec``: float (spikedyn's neuron map) and Loihi 2 fixed point.

They are references written from the equations (``spec.py``, ``quantize.py``), independent of torch
and of Lava: tests compare the torch model and the Lava processes against them, and the readout of a
Lava run is computed here on the host (``readout``), with the same formula torch uses.
"""
from __future__ import annotations

import numpy as np

from .neuron import NeuronConstants, SpikingState, numpy_ops, readout_filter, substep
from .quantize import Loihi2Params, fixed_constants, fixed_substep, quantize_input, shift
from .spec import NetworkSpec


def _check_x(spec: NetworkSpec, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[-1] != spec.n_in:
        raise ValueError(f"input must have shape [T, B, {spec.n_in}] (time, batch, inputs), got {x.shape}")
    return x


def constants_of(spec: NetworkSpec) -> NeuronConstants:
    """The map's constants for ``spec`` (``neuron.NeuronConstants``)."""
    return NeuronConstants(du=spec.du, dv=spec.dv, v_th=spec.v_th, reset=spec.reset, rho=spec.rho,
                           n_ref=spec.n_ref, kappa=spec.kappa, delay_in=spec.delay_in, delay_rec=spec.delay_rec,
                           adaptive=spec.adaptive, v_leak=spec.v_leak, v_reset=spec.v_reset)  # fmt: skip


def simulate_float(spec: NetworkSpec, x: np.ndarray) -> np.ndarray:
    """Spikes ``[T * substeps, B, N]`` (uint8) of the float neuron map for inputs ``x [T, B, I]``: the one
    map (``neuron.substep``) on numpy arrays, float64."""
    x = _check_x(spec, x).astype(np.float64)
    T, B, _ = x.shape
    N = spec.n_hidden
    c, ops = constants_of(spec), numpy_ops()
    zeros = np.zeros((B, N))
    s = SpikingState(zeros, zeros, zeros, zeros, zeros, zeros, np.zeros((spec.delay_in, B, N)),
                     np.zeros((spec.delay_rec, B, N)))  # fmt: skip
    out = np.zeros((T * spec.substeps, B, N), dtype=np.uint8)
    W_rec_T = spec.W_rec.T
    for t in range(T):
        i_ext = x[t] @ spec.W_in.T
        for k in range(spec.substeps):
            s = substep(c, ops, s, i_ext, W_rec_T, spec.bias, spec.beta)
            out[t * spec.substeps + k] = s.z
    return out


def simulate_fixed(spec: NetworkSpec, q: Loihi2Params, x: np.ndarray) -> np.ndarray:
    """Spikes ``[T * substeps, B, N]`` of Lava's bit-accurate LIF + Dense integer arithmetic."""
    if not spec.lava_lif_compatible():
        raise ValueError(f"fixed point runs Lava's LIF only; this network has {spec.lava_lif_reason()}")
    x = _check_x(spec, x)
    X = quantize_input(x, q.input_frac_bits)
    T, B, _ = x.shape
    N = spec.n_hidden
    w_in_T, w_rec_T = q.w_in.T.astype(np.int64), q.w_rec.T.astype(np.int64)
    c = fixed_constants(q, spec.kappa)
    ints, zeros = np.zeros((B, N), dtype=np.int64), np.zeros((B, N))
    s = SpikingState(ints, ints, zeros, zeros, zeros, zeros, np.zeros((spec.delay_in, B, N), dtype=np.int64),
                     np.zeros((spec.delay_rec, B, N)))  # fmt: skip

    def recurrent(z_rec: np.ndarray) -> np.ndarray:
        return shift(z_rec.astype(np.int64) @ w_rec_T, q.w_rec_exp)

    out = np.zeros((T * spec.substeps, B, N), dtype=np.uint8)
    for t in range(T):
        a_ext = shift(X[t] @ w_in_T, q.w_in_exp)
        for k in range(spec.substeps):
            s = fixed_substep(c, s, a_ext, recurrent, q.effective_bias)
            out[t * spec.substeps + k] = s.z
    return out


def readout(spec: NetworkSpec, spikes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spike counts ``[T, B, N]`` per input step and outputs ``y [T, B, O]`` from spikes
    ``[T * substeps, B, N]``: ``rbar = kappa rbar + (1 - kappa) z`` every substep, ``y = W_out rbar +
    b_out`` at the end of each input step (the torch model's readout, computed on the host)."""
    S, B, N = spikes.shape
    if S % spec.substeps:
        raise ValueError(f"{S} spike steps is not a multiple of substeps={spec.substeps}")
    z = spikes.astype(np.float64)
    rbar = np.zeros((B, N))
    rbars = np.zeros((S // spec.substeps, B, N))
    for s in range(S):
        rbar = readout_filter(spec.kappa, rbar, z[s])
        if (s + 1) % spec.substeps == 0:
            rbars[s // spec.substeps] = rbar
    counts = z.reshape(S // spec.substeps, spec.substeps, B, N).sum(axis=1)
    return counts, rbars @ spec.W_out.T + spec.b_out
