"""Plain-numpy simulators of a ``NetworkSpec``: float (spikedyn's neuron map) and Loihi 2 fixed point.

They are references written from the equations (``spec.py``, ``quantize.py``), independent of torch
and of Lava: tests compare the torch model and the Lava processes against them, and the readout of a
Lava run is computed here on the host (``readout``), with the same formula torch uses.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .quantize import ACT_SHIFT, DECAY_UNITY, UV_MAX, Loihi2Params, decay, quantize_input, shift, wrap24
from .spec import NetworkSpec


def _check_x(spec: NetworkSpec, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[-1] != spec.n_in:
        raise ValueError(f"input must have shape [T, B, {spec.n_in}] (time, batch, inputs), got {x.shape}")
    return x


@dataclass(frozen=True)
class NeuronConstants:
    """Per-substep constants of the float neuron map (see ``spec.NetworkSpec``)."""

    du: float
    dv: float
    v_th: float
    rho: float
    n_ref: int
    reset: str


def neuron_update(
    c: NeuronConstants, bias: np.ndarray, beta: np.ndarray, u: np.ndarray, v: np.ndarray, z: np.ndarray,
    a: np.ndarray, ref: np.ndarray, current: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """One float substep given the summed synaptic input ``current = W_in x + W_rec z_rec``.

    ``v`` is kept *before* the reset of its own spike (applied at the next update), as in torch.
    Returns the new ``(u, v, z, a, ref)``; the same operations in the same order as
    ``spikedyn.models.spiking.spiking_substep``, so float64 results agree bit for bit.
    """
    u = u * (1.0 - c.du) + current
    if c.reset == "zero":
        v = (v * (1.0 - z)) * (1.0 - c.dv) + u + bias
    else:
        v = v * (1.0 - c.dv) + u + bias - c.v_th * z
    if np.any(beta != 0):
        a = c.rho * a + z
        threshold = c.v_th + beta * a
    else:
        threshold = c.v_th
    z_new = (v - threshold > 0).astype(np.float64)
    if c.n_ref:
        z_new = z_new * (ref <= 0)
        ref = np.where(z_new > 0, float(c.n_ref), np.maximum(ref - 1, 0.0))
    return u, v, z_new, a, ref


def constants_of(spec: NetworkSpec) -> NeuronConstants:
    return NeuronConstants(du=spec.du, dv=spec.dv, v_th=spec.v_th, rho=spec.rho, n_ref=spec.n_ref,
                           reset=spec.reset)


def _delayed(buffer: list[np.ndarray], value: np.ndarray) -> np.ndarray:
    """One step of a synaptic delay line (a FIFO of the delay's length): push ``value``, return the
    oldest entry. An empty buffer is no delay."""
    if not buffer:
        return value
    buffer.append(value)
    return buffer.pop(0)


def simulate_float(spec: NetworkSpec, x: np.ndarray) -> np.ndarray:
    """Spikes ``[T * substeps, B, N]`` (uint8) of the float neuron map for inputs ``x [T, B, I]``."""
    x = _check_x(spec, x).astype(np.float64)
    T, B, _ = x.shape
    N = spec.n_hidden
    c = constants_of(spec)
    u, v, z, a, ref = (np.zeros((B, N)) for _ in range(5))
    in_buf = [np.zeros((B, N)) for _ in range(spec.delay_in)]
    z_buf = [np.zeros((B, N)) for _ in range(spec.delay_rec)]
    out = np.zeros((T * spec.substeps, B, N), dtype=np.uint8)
    W_rec_T = spec.W_rec.T
    for t in range(T):
        i_ext = x[t] @ spec.W_in.T
        for k in range(spec.substeps):
            i_now, z_rec = _delayed(in_buf, i_ext), _delayed(z_buf, z)
            u, v, z, a, ref = neuron_update(c, spec.bias, spec.beta, u, v, z, a, ref, i_now + z_rec @ W_rec_T)
            out[t * spec.substeps + k] = z
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
    bias = q.effective_bias
    vth = q.vth << ACT_SHIFT
    u, v, z = (np.zeros((B, N), dtype=np.int64) for _ in range(3))
    in_buf = [np.zeros((B, N), dtype=np.int64) for _ in range(spec.delay_in)]
    z_buf = [np.zeros((B, N), dtype=np.int64) for _ in range(spec.delay_rec)]
    out = np.zeros((T * spec.substeps, B, N), dtype=np.uint8)
    for t in range(T):
        a_ext = shift(X[t] @ w_in_T, q.w_in_exp)
        for k in range(spec.substeps):
            a_now, z_rec = _delayed(in_buf, a_ext), _delayed(z_buf, z)
            a_in = a_now + shift(z_rec @ w_rec_T, q.w_rec_exp)
            u = wrap24(decay(u, DECAY_UNITY - q.du - 1) + np.left_shift(a_in, ACT_SHIFT))
            v = np.clip(decay(v, DECAY_UNITY - q.dv) + u + bias, -UV_MAX + 1, UV_MAX - 1)
            z = (v > vth).astype(np.int64)
            v = np.where(z > 0, 0, v)
            out[t * spec.substeps + k] = z
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
        rbar = spec.kappa * rbar + (1.0 - spec.kappa) * z[s]
        if (s + 1) % spec.substeps == 0:
            rbars[s // spec.substeps] = rbar
    counts = z.reshape(S // spec.substeps, spec.substeps, B, N).sum(axis=1)
    return counts, rbars @ spec.W_out.T + spec.b_out
